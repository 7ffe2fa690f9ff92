"""The scheduled Friday report (issue 16, DESIGN A14): made once at ``report.at``, sent by e-mail
through a real SMTP server on loopback (tests/doubles/smtp.py) and handed to the chats, never twice:
not on the next run of the job, not after a restart, not after a retry. WeCom robots get the
workbook and the PDF as files (upload_media); every robot gets the text with the console's link.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import openpyxl
import pytest

from sqlalchemy import select

from broadcaster.ledger import AuditEntry, Delivery
from broadcaster.runtime.scheduler import Scheduler
from broadcaster.runtime.service import Service
from tests.conftest import edit_yaml, local
from tests.doubles.chats import DingtalkRobotDouble, FeishuRobotDouble, Robot, WecomRobotDouble
from tests.doubles.smtp import SmtpDouble, attachments
from tests.support.clock import FAKE_ENV, env_at, fake_now_from
from tests.support.procs import free_port, wait_for
from tests.support.report_week import FRIDAY_1500, build_week, use_file_feed
from tests.support.stack import Stack

PASSWORD = "smtp-secret-4b1d"
TO = ["zhenzhang@xx.gov.cn", "wenhuazhan@xx.gov.cn"]
FILES = {"周报-2026-W48.xlsx", "周报-2026-W48.pdf"}
# The double logs in without TLS on loopback, which aiosmtpd warns about.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def schedule_report(confdir: Path, smtp: SmtpDouble, port: int = 8080) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        report={"at": "FRI 15:00", "email": TO, "chats": ["town-wecom"]},
        smtp={"host": "127.0.0.1", "port": smtp.port, "username": "station", "password": "${SMTP_PASSWORD}",
              "from": "station@xx.gov.cn", "starttls": False}))
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    # The chat the report names must exist (A12); the hand-off itself is recorded below, not sent.
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(chats=[
        {"id": "town-wecom", "type": "wecom", "webhook": "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"}]))


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpDouble]:
    monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
    with SmtpDouble(users={"station": PASSWORD}) as double:
        yield double


@pytest.fixture
def chats(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """What the report hands to the chats (a recording stand-in for the hand-off; tests/test_chats_flow.py
    sends through it)."""
    calls: list[tuple[Any, ...]] = []

    def record(svc: Any, chat_ids: Any, text: str, files: Any = (), link: str | None = None, **kw: Any) -> list[str]:
        calls.append((list(chat_ids), text, [Path(f).name for f in files], link))
        return list(chat_ids)

    monkeypatch.setattr("broadcaster.flows.report_schedule.to_chats", record)
    return calls


def test_friday_1500_sends_once_and_not_again_after_a_restart(
        confdir: Path, make_service: Any, smtp: SmtpDouble, chats: list[tuple[Any, ...]],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    schedule_report(confdir, smtp)
    feed = use_file_feed(confdir)
    svc: Service = make_service(at=local(2026, 11, 22, 12))
    build_week(svc, feed)
    job = Scheduler(svc)
    trigger = job.sched.get_job("weekly-report").trigger
    assert str(trigger) == "cron[day_of_week='4', hour='15', minute='0']"

    svc.clock.set(local(2026, 11, 27, 14, 59))  # type: ignore[attr-defined]
    job.weekly_report()
    assert smtp.messages == [] and chats == []

    svc.clock.set(FRIDAY_1500)  # type: ignore[attr-defined]
    job.weekly_report()
    (msg,) = smtp.messages
    assert smtp.recipients == [TO] and smtp.logins == ["station"]
    assert msg["Subject"] == "XX镇一氧化碳中毒预警周报 2026年第48周（2026年11月23日至2026年11月29日）"
    body = msg.get_body(("plain",)).get_content()
    assert "短信发送 12 条，送达 3 条，失败 3 条" in body and "http://127.0.0.1:8080/reports" in body
    files = attachments(msg)
    assert set(files) == FILES and files["周报-2026-W48.pdf"].startswith(b"%PDF")
    wb = openpyxl.load_workbook(io.BytesIO(files["周报-2026-W48.xlsx"]))
    assert [r for r in wb["短信"].iter_rows(min_row=3, values_only=True)][-1][2:5] == (12, 3, 3)
    (handed,) = chats
    assert handed[0] == ["town-wecom"] and set(handed[2]) == FILES and handed[3] == "http://127.0.0.1:8080/reports"
    assert "短信发送 12 条" in handed[1]
    assert {f.name for f in (confdir.parent / "var" / "reports").iterdir()} == FILES

    svc.clock.set(local(2026, 11, 27, 15, 1))  # type: ignore[attr-defined]
    job.weekly_report()
    svc.close()
    # A restart that same afternoon: the start-up catch-up runs the job, the ledger says it is done.
    again = make_service(at=local(2026, 11, 27, 15, 5))
    Scheduler(again).weekly_report()
    assert len(smtp.messages) == 1 and len(chats) == 1
    rec = again.ledger.reports.record("周报-2026-W48")
    assert rec is not None and rec.sent_at == FRIDAY_1500 and sorted(rec.files) == sorted(FILES)
    assert rec.sent_to == {"email": TO, "refused": {}, "chats": ["town-wecom"]}
    with again.ledger.reader() as s:
        sent = [e for e in s.query(AuditEntry).filter(AuditEntry.action == "report.send")]
    assert [(e.actor, e.object_id) for e in sent] == [("scheduler", "周报-2026-W48")]
    assert PASSWORD not in caplog.text


def test_a_busy_mail_server_is_retried_and_still_sends_once(
        confdir: Path, make_service: Any, smtp: SmtpDouble, chats: list[tuple[Any, ...]]) -> None:
    schedule_report(confdir, smtp)
    svc: Service = make_service(at=FRIDAY_1500)
    job = Scheduler(svc)
    smtp.fail_next(1, 451)
    job.weekly_report()
    assert smtp.refused == [451] and smtp.messages == [] and chats == []
    retry = job.sched.get_job("weekly-report-retry")
    assert retry is not None and retry.trigger.run_date == local(2026, 11, 27, 15, 15)
    rec = svc.ledger.reports.record("周报-2026-W48")
    assert rec is not None and rec.sent_at is None and "451" in (rec.error or "")
    svc.clock.set(local(2026, 11, 27, 15, 15))  # type: ignore[attr-defined]
    job.weekly_report()
    job.weekly_report()
    assert len(smtp.messages) == 1 and len(chats) == 1
    assert svc.ledger.reports.record("周报-2026-W48").sent_at == local(2026, 11, 27, 15, 15)  # type: ignore[union-attr]


def test_a_refused_login_is_recorded_and_not_retried(confdir: Path, make_service: Any, smtp: SmtpDouble,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "wrong")
    schedule_report(confdir, smtp)
    svc: Service = make_service(at=FRIDAY_1500)
    job = Scheduler(svc)
    job.weekly_report()
    assert smtp.messages == [] and job.sched.get_job("weekly-report-retry") is None
    rec = svc.ledger.reports.record("周报-2026-W48")
    assert rec is not None and rec.sent_at is None and "登录被拒绝" in (rec.error or "")


def test_broadcaster_run_sends_at_friday_1500_once_across_a_restart(
        confdir: Path, tmp_path: Path, smtp: SmtpDouble) -> None:
    """The real service on a wall clock started at Friday 14:59:50: APScheduler's cron job sends
    at 15:00; started again at 15:02, the start-up catch-up finds the week sent."""
    port = free_port()
    schedule_report(confdir, smtp, port)
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["report"].update(chats=[]))
    start = local(2026, 11, 27, 14, 59).replace(second=50)
    st = Stack(tmp_path, confdir, port, at=start, env={"SMTP_PASSWORD": PASSWORD})
    try:
        st.start_server()
        # Up well before 15:00 (the usual case), the cron job sends; on a machine so busy that
        # start-up took until 15:00, the start-up catch-up may. Either way: once.
        early = fake_now_from(st.env[FAKE_ENV]) < FRIDAY_1500 - timedelta(seconds=2)
        assert wait_for(lambda: smtp.messages, 40), st.log.read_text()[-3000:]
        st.stop_server()
        st.env.update(env_at(local(2026, 11, 27, 15, 2)))
        st.start_server()
        second = lambda: st.log.read_text().split("broadcaster starting")[-1]  # noqa: E731
        assert wait_for(lambda: "weekly report 周报-2026-W48: already sent" in second(), 15), second()[-3000:]
        time.sleep(1)
    finally:
        st.close()
    assert len(smtp.messages) == 1 and set(attachments(smtp.messages[0])) == FILES
    sends = re.findall(r"weekly report 周报-2026-W48 sent \(([^)]+)\)", st.log.read_text())
    assert sends == ["at FRI 15:00"] if early else sends in (["at FRI 15:00"], ["catch-up"]), sends
    assert "weekly report 周报-2026-W48 sent" not in st.log.read_text().split("broadcaster starting")[-1]


def test_the_console_lists_every_week_for_download(confdir: Path, make_service: Any, smtp: SmtpDouble,
                                                    chats: list[tuple[Any, ...]]) -> None:
    from fastapi.testclient import TestClient

    from broadcaster.auth.accounts import Accounts
    from broadcaster.web.app import create_app
    from broadcaster.web.auth import create_token
    from tests.test_console import sign_in

    schedule_report(confdir, smtp)
    feed = use_file_feed(confdir)
    svc: Service = make_service(at=local(2026, 11, 22, 12))
    build_week(svc, feed)
    svc.clock.set(FRIDAY_1500)  # type: ignore[attr-defined]
    Scheduler(svc).weekly_report()
    svc.clock.set(local(2026, 12, 2, 9, 0))  # the next week's Wednesday  # type: ignore[attr-defined]
    Accounts(svc.ledger).add_user("小李", "operator", "xiaoli-pass", FRIDAY_1500)
    token = create_token(svc.ledger, "script", "operator", FRIDAY_1500)
    c = TestClient(create_app(svc))
    assert c.get("/reports", follow_redirects=False).status_code == 303  # sign in first
    sign_in(c, "小李", "xiaoli-pass")
    page = c.get("/reports").text
    periods = re.findall(r'data-period="([^"]+)"', page)
    assert periods == ["周报-2026-W49", "周报-2026-W48", "周报-2026-W47"]  # this week, then every week with data
    assert "11-27 15:00 已发送" in page and "邮件 2 人" in page
    sent = c.get("/reports/sent/" + quote("周报-2026-W48.pdf"))
    assert sent.status_code == 200 and sent.content == (confdir.parent / "var" / "reports" / "周报-2026-W48.pdf").read_bytes()
    assert "filename*=UTF-8''%E5%91%A8%E6%8A%A5-2026-W48.pdf" in sent.headers["content-disposition"]
    fresh = c.get("/reports/" + quote("周报-2026-W48.xlsx"))
    wb = openpyxl.load_workbook(io.BytesIO(fresh.content))
    assert [r for r in wb["概览"].iter_rows(min_row=7, max_row=13, values_only=True)][6][0] == "2026-11-29"  # whole week now
    for bad in ("周报-2026-W99.pdf", "周报-2026-W48.doc", "..%2F..%2Fconfig%2Fbroadcaster.yaml", "report.pdf"):
        assert c.get(f"/reports/{bad}").status_code == 404, bad
    assert c.get("/reports/sent/" + quote("周报-2026-W47.pdf")).status_code == 404  # never sent
    api = TestClient(create_app(svc))
    assert api.get("/api/v1/reports/" + quote("周报-2026-11-23_2026-11-24.pdf")).status_code == 401
    r = api.get("/api/v1/reports/" + quote("周报-2026-11-23_2026-11-24.pdf"), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.content.startswith(b"%PDF") and r.headers["content-type"] == "application/pdf"


def test_report_and_smtp_settings_are_checked(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from broadcaster.cli import main

    path = str(confdir / "broadcaster.yaml")
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        report={"at": "Friday 3pm", "email": ["zhenzhang.xx.gov.cn"], "chats": ["town-wecom"]}))
    assert main(["check", "-c", path]) == 2
    err = capsys.readouterr().err
    assert "broadcaster.yaml: report.at: 'Friday 3pm' is not a weekday and time such as \"FRI 15:00\"" in err
    assert "broadcaster.yaml: report.email[0]: 'zhenzhang.xx.gov.cn' is not an e-mail address" in err
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        report={"at": "fri 15:00", "email": ["zhenzhang@xx.gov.cn"], "chats": ["town-wecom"]}))
    assert main(["check", "-c", path]) == 2
    err = capsys.readouterr().err
    assert "report.email: sending the report by e-mail needs an `smtp` section" in err
    assert re.search(r"\S*broadcaster.yaml: report.chats: 未知的群 / unknown chat 'town-wecom'", err)
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        smtp={"host": "smtp.xx.gov.cn", "username": "station", "from": "station@xx.gov.cn"}))
    assert main(["check", "-c", path]) == 2
    assert "smtp.password: give the password of `smtp.username`" in capsys.readouterr().err
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["smtp"].update(password="${SMTP_PASSWORD}"))
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(
        contacts=[c for c in d["contacts"] if "leaders" not in c["groups"]],
        chats=[{"id": "town-wecom", "type": "wecom", "webhook": "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"}]))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SMTP_PASSWORD", PASSWORD)
        assert main(["check", "-c", path]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: 分组 leaders 里没有联系人：\S*directory.yaml: contacts: no contact is in group `leaders`", err)


WECOM_KEY = "693a91f6-7c1e-4bc4-97a0-0ec2a1fa5aaa"
DING_TOKEN = "5f0c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"
DING_SECRET = "SEC" + "d1" * 30
FEISHU_TOKEN = "2d2a0d5e-4b1c-4f3a-9e8d-7c6b5a4f3e2d"
REPORTS_LINK = "http://127.0.0.1:8080/reports"


def test_friday_report_gives_wecom_the_files_and_every_robot_the_link_once(
        confdir: Path, make_service: Any, smtp: SmtpDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the dispatcher to the three robot doubles: WeCom receives the .xlsx and .pdf byte
    for byte (after one "system busy" answer, retried) and the text; DingTalk and Feishu the text
    with the console's link; nothing more after a restart."""
    with WecomRobotDouble([WECOM_KEY]) as wecom, DingtalkRobotDouble([Robot(DING_TOKEN, secret=DING_SECRET)]) as ding, \
            FeishuRobotDouble([FEISHU_TOKEN]) as feishu:
        monkeypatch.setenv("DING_SECRET", DING_SECRET)
        schedule_report(confdir, smtp)
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d["report"].update(
            chats=["town-wecom", "cadres-ding", "ops-feishu"]))
        edit_yaml(confdir / "directory.yaml", lambda d: d.update(chats=[
            {"id": "town-wecom", "type": "wecom", "webhook": wecom.webhook_url(WECOM_KEY)},
            {"id": "cadres-ding", "type": "dingtalk", "webhook": ding.webhook_url(DING_TOKEN), "secret": "${DING_SECRET}"},
            {"id": "ops-feishu", "type": "feishu", "webhook": feishu.webhook_url(FEISHU_TOKEN)}]))
        feed = use_file_feed(confdir)
        svc: Service = make_service(at=local(2026, 11, 22, 12))
        build_week(svc, feed)
        svc.clock.set(FRIDAY_1500)  # type: ignore[attr-defined]
        wecom.fail_next(-1, "system busy", robot=WECOM_KEY)
        Scheduler(svc).weekly_report()
        with svc.ledger.reader() as s:
            (alert_id,) = set(s.scalars(select(Delivery.alert_id).where(Delivery.slot.like("file:%"))))
        assert svc.dispatcher.drain([alert_id], timeout=30)
        svc.clock.set(FRIDAY_1500 + timedelta(seconds=70))  # type: ignore[attr-defined]  # past the retry's wait
        assert svc.dispatcher.drain([alert_id], timeout=30)

        written = confdir.parent / "var" / "reports"
        got = {m.filename: m.sha256 for m in wecom.received_files(WECOM_KEY)}
        assert len(wecom.received_files(WECOM_KEY)) == 2
        assert got == {n: hashlib.sha256((written / n).read_bytes()).hexdigest() for n in FILES}
        assert [r.code for r in wecom.requests].count(-1) == 1  # the busy answer, then the retry went through
        (text,) = [m for m in wecom.messages if m.msgtype == "markdown"]
        assert "短信发送 12 条" in text.text and REPORTS_LINK in text.text
        for robot in (ding, feishu):
            (msg,) = robot.messages
            assert "短信发送 12 条" in msg.text and REPORTS_LINK in msg.text, robot.vendor
        with svc.ledger.reader() as s:
            rows = {(d.target, d.slot): (d.state, d.attempts)
                    for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}
        assert set(rows) == {("town-wecom", "text"), ("town-wecom", "file:周报-2026-W48.xlsx"),
                             ("town-wecom", "file:周报-2026-W48.pdf"), ("cadres-ding", "text"),
                             ("ops-feishu", "text")}
        assert {state for state, _ in rows.values()} == {"sent"}
        assert sorted(n for _, n in rows.values()) == [1, 1, 1, 1, 2]
        svc.close()

        again = make_service(at=local(2026, 11, 27, 15, 5))
        Scheduler(again).weekly_report()
        assert again.dispatcher.drain([alert_id], timeout=10)
        assert len(wecom.messages) == 3 and len(wecom.uploads) == 2
        assert len(ding.messages) == 1 and len(feishu.messages) == 1 and len(smtp.messages) == 1
    for double in (wecom, ding, feishu):
        assert double.internal_errors == []
