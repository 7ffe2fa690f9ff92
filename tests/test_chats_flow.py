"""Chats and displays in the automatic flow (DESIGN A12): each message is a delivery in the
ledger, once per alert and target, handed over by the dispatcher, retried after a robot's
rate-limit answer, failed for good on a bad signature, and a display's warning is withdrawn
when an escalation supersedes it. Times are the FakeClock's (28 Nov 2026, Asia/Shanghai)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.ledger import Delivery
from broadcaster.runtime.service import Service
from tests.conftest import edit_yaml, local
from tests.doubles.chats import DingtalkRobotDouble, FeishuRobotDouble, Robot, WecomRobotDouble
from tests.doubles.display import HttpDisplayDouble
from tests.support.service import MakeService

DING_SECRET = "SEC" + "d1" * 30
FEISHU_SECRET = "feishu-secret"
AT = local(2026, 11, 28, 17, 0)
# Robot credentials shaped like the real ones (a WeCom key is a UUID; tokens are long hex).
WECOM_KEY = "693a91f6-7c1e-4bc4-97a0-0ec2a1fa5aaa"
DING_TOKEN = "5f0c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a1f"
FEISHU_TOKEN = "2d2a0d5e-4b1c-4f3a-9e8d-7c6b5a4f3e2d"


@dataclass
class Doubles:
    wecom: WecomRobotDouble
    ding: DingtalkRobotDouble
    feishu: FeishuRobotDouble
    led: HttpDisplayDouble


@pytest.fixture
def doubles(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Doubles]:
    with WecomRobotDouble([WECOM_KEY]) as w, DingtalkRobotDouble([Robot(DING_TOKEN, secret=DING_SECRET)]) as d, \
            FeishuRobotDouble([Robot(FEISHU_TOKEN, secret=FEISHU_SECRET)]) as f, \
            HttpDisplayDouble("led-token-3f9a7c") as led:
        # Secrets come from the environment, as an operator's would.
        monkeypatch.setenv("WECOM_WEBHOOK", w.webhook_url(WECOM_KEY))
        monkeypatch.setenv("DING_SECRET", DING_SECRET)
        monkeypatch.setenv("FEISHU_SECRET", FEISHU_SECRET)
        monkeypatch.setenv("LED_TOKEN", "led-token-3f9a7c")

        def directory(data: dict) -> None:
            data["chats"] = [
                {"id": "town-wecom", "type": "wecom", "webhook": "${WECOM_WEBHOOK}"},
                {"id": "cadres-ding", "type": "dingtalk", "webhook": d.webhook_url(DING_TOKEN), "secret": "${DING_SECRET}"},
                {"id": "ops-feishu", "type": "feishu", "webhook": f.webhook_url(FEISHU_TOKEN), "secret": "${FEISHU_SECRET}"},
            ]
            for v in data["villages"]:
                v["speakers"] = []
                if v["id"] == "dongcun":
                    v["displays"] = [{"id": "dongcun-led", "type": "http", "url": led.show_url, "token": "${LED_TOKEN}"}]

        def rules(data: dict) -> None:
            data["templates"]["chat_warn"] = "{date}夜间一氧化碳中毒气象条件{level}级（{level_name}），请开窗通风、检查烟道。"
            data["templates"]["led_warn"] = "一氧化碳中毒{level}级 请开窗通风"
            for r in data["rules"]:
                r.pop("speakers", None)
            data["rules"][0]["chats"] = {"ids": "all", "template": "chat_warn"}
            data["rules"][0]["displays"] = {"villages": ["dongcun"], "template": "led_warn", "until": "08:00"}

        edit_yaml(confdir / "directory.yaml", directory)
        edit_yaml(confdir / "rules.yaml", rules)
        yield Doubles(w, d, f, led)
        for double in (w, d, f, led):
            assert double.internal_errors == []


def rows(svc: Service, alert_id: int, channel: str) -> dict[tuple[str, str], Delivery]:
    with svc.ledger.reader() as s:
        return {(r.target, r.slot if channel == "chat" else ""): r for r in s.scalars(
            select(Delivery).where(Delivery.alert_id == alert_id, Delivery.channel == channel))}


def run_poll(svc: Service) -> int:
    report = svc.poll()
    assert report.created
    assert svc.dispatcher.drain([report.alert_id], timeout=30)
    return report.alert_id  # type: ignore[return-value]


def test_alert_reaches_every_chat_and_the_screen_once(doubles: Doubles, make_service: MakeService) -> None:
    svc = make_service(at=AT)
    aid = run_poll(svc)
    chats = rows(svc, aid, "chat")
    # WeCom's text and poster are two deliveries; DingTalk and Feishu take no images.
    assert sorted(chats) == [("cadres-ding", "text"), ("ops-feishu", "text"), ("town-wecom", "image"),
                             ("town-wecom", "text")]
    assert {k: r.state for k, r in chats.items()} == dict.fromkeys(chats, "sent")
    md, img = doubles.wecom.messages
    assert "4级（容易发生）" in md.body["markdown"]["content"] and "请开窗通风" in md.body["markdown"]["content"]
    png = base64.b64decode(img.body["image"]["base64"])
    assert png.startswith(b"\x89PNG") and len(png) > 20_000  # the rendered poster
    assert "4级" in doubles.ding.messages[0].body["markdown"]["title"]
    assert doubles.feishu.messages[0].body["card"]["header"]["template"] == "orange"

    (shown,) = doubles.led.on_screen().values()
    assert shown.text == "一氧化碳中毒4级 请开窗通风" and shown.color == "#EF6C00" and shown.level == 4
    assert shown.until == local(2026, 11, 29, 8, 0) and shown.from_ == AT
    assert shown.image_url and shown.image_url.endswith("/public/poster.png")

    # Polling again the same night sends nothing new anywhere.
    assert not svc.poll().created
    svc.dispatcher.drain([aid], timeout=5)
    assert len(doubles.wecom.messages) == 2 and len(doubles.ding.messages) == 1
    assert len(doubles.feishu.messages) == 1 and len(doubles.led.history) == 1


def test_rate_limited_robot_is_retried_after_its_block(doubles: Doubles, make_service: MakeService) -> None:
    doubles.ding.rate_limit_next(1)
    svc = make_service(at=AT)
    aid = run_poll(svc)
    row = rows(svc, aid, "chat")[("cadres-ding", "text")]
    assert row.state == "pending" and "130101" in (row.last_error or "")
    assert row.due_at is not None and (row.due_at - svc.now()).total_seconds() >= 600
    assert doubles.ding.messages == []
    svc.clock.advance(601)  # type: ignore[attr-defined]
    doubles.ding.advance(601)
    assert svc.dispatcher.drain([aid], timeout=30)
    row = rows(svc, aid, "chat")[("cadres-ding", "text")]
    assert row.state == "sent" and row.attempts == 2
    assert len(doubles.ding.messages) == 1


def test_bad_signature_fails_for_good_with_the_robots_message(doubles: Doubles, confdir: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              make_service: MakeService) -> None:
    monkeypatch.setenv("FEISHU_SECRET", "not-the-secret")
    svc = make_service(at=AT)
    aid = run_poll(svc)
    row = rows(svc, aid, "chat")[("ops-feishu", "text")]
    assert row.state == "failed" and row.attempts == 1
    assert "19021" in (row.last_error or "") and "sign match fail" in (row.last_error or "")
    assert doubles.feishu.messages == []
    assert rows(svc, aid, "chat")[("cadres-ding", "text")].state == "sent"  # the others are not held back


def test_escalation_withdraws_the_screen_and_shows_the_new_level(doubles: Doubles, confdir: Path,
                                                                 make_service: MakeService) -> None:
    svc = make_service(at=AT)
    first = run_poll(svc)
    key1 = str(rows(svc, first, "display")[("dongcun-led", "")].id)
    assert list(doubles.led.on_screen()) == [key1]
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=5))
    svc.close()
    svc2 = make_service(at=local(2026, 11, 28, 18, 0))
    second = run_poll(svc2)
    assert svc2.dispatcher.drain([first, second], timeout=30)
    old = rows(svc2, first, "display")[("dongcun-led", "")]
    assert old.state == "cancelled" and old.withdrawal == "done"
    key2 = str(rows(svc2, second, "display")[("dongcun-led", "")].id)
    assert list(doubles.led.on_screen()) == [key2]
    assert ("withdraw", key1) in doubles.led.history
    assert doubles.led.on_screen()[key2].level == 5


def test_manual_broadcast_to_chats_only(doubles: Doubles, confdir: Path) -> None:
    from tests.test_api import make_api

    api = make_api(confdir)
    try:
        bad = api.post("/api/v1/broadcasts", json={"text": "测试", "chats": ["nope"]})
        assert bad.status_code in (400, 422) and "chats" in bad.text and "nope" in bad.text
        text = "今晚镇里组织入户检查烟道，请各户留人。"
        bid = api.post("/api/v1/broadcasts", json={"text": text, "chats": ["cadres-ding", "town-wecom"]}).json()["id"]
        assert api.post(f"/api/v1/broadcasts/{bid}/approve", "carol").status_code == 200
        assert api.svc.dispatcher.drain([bid], timeout=30)
        (ding,) = doubles.ding.messages
        assert ding.body["markdown"]["title"].endswith("广播通知") and text in ding.body["markdown"]["text"]
        assert [m.msgtype for m in doubles.wecom.messages] == ["markdown", "image"]
        assert doubles.feishu.messages == [] and doubles.led.history == []
        got = api.get(f"/api/v1/broadcasts/{bid}").json()
        assert got["chats"] == ["cadres-ding", "town-wecom"]
        assert got["deliveries"]["chat"] == {"sent": 3}
    finally:
        api.svc.close()


def test_report_handoff_queues_one_chat_message_per_key(doubles: Doubles, make_service: MakeService) -> None:
    from broadcaster.flows.handoff import to_chats

    svc = make_service(at=AT)
    text = "本周发布预警2次，短信送达率98%。"
    assert to_chats(svc, ["cadres-ding", "nope"], text, link="http://127.0.0.1:8080/reports",
                    key="report:2026-W48") == ["cadres-ding"]
    assert to_chats(svc, ["cadres-ding"], text, key="report:2026-W48") == ["cadres-ding"]  # same key: once
    with svc.ledger.reader() as s:
        (row,) = s.scalars(select(Delivery).where(Delivery.channel == "chat")).all()
    assert svc.dispatcher.drain([row.alert_id], timeout=30)
    (msg,) = doubles.ding.messages
    assert text in msg.body["markdown"]["text"] and "http://127.0.0.1:8080/reports" in msg.body["markdown"]["text"]


def test_console_compose_offers_chats_and_poster_and_history_shows_each(doubles: Doubles, confdir: Path) -> None:
    import re

    from broadcaster.auth.accounts import Accounts
    from tests.test_api import START, make_api
    from tests.test_console import USERS, browser, sign_in

    api = make_api(confdir)
    try:
        accounts = Accounts(api.svc.ledger)
        for name, (role, pw) in USERS.items():
            accounts.add_user(name, role, pw, START)
        op, boss = browser(api), browser(api)
        csrf = sign_in(op, "小李")
        form = op.get("/compose").text
        assert 'name="chats" value="cadres-ding"' in form and "钉钉" in form and 'id="poster-btn"' in form
        png = op.get("/console/poster.png", params={"text": "今晚检查烟道"})
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        r = op.post("/compose", data={"csrf": csrf, "text": "今晚镇里检查烟道，请留人。", "chats": ["cadres-ding"]},
                    follow_redirects=False)
        assert r.status_code == 303, r.text
        bid = int(re.search(r"/history/(\d+)", r.headers["location"]).group(1))
        boss_csrf = sign_in(boss, "王站长")
        assert boss.post(f"/broadcasts/{bid}/approve", data={"csrf": boss_csrf}, follow_redirects=False).status_code == 303
        assert api.svc.dispatcher.drain([bid], timeout=30)
        page = op.get(f"/history/{bid}").text
        assert "群消息" in page and "cadres-ding（文字）" in page and "已发出" in page
        assert len(doubles.ding.messages) == 1
    finally:
        api.svc.close()


def test_robot_and_screen_credentials_never_reach_the_logs(doubles: Doubles, make_service: MakeService,
                                                           caplog: pytest.LogCaptureFixture,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Everything at DEBUG (urllib3 logs each request's URL): the WeCom key and Feishu token in
    the webhook paths, the DingTalk token, the signing secrets and the screen's token are masked."""
    import logging

    from tests.test_no_secrets_in_logs import install_logging

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        install_logging(caplog)
        doubles.feishu.fail_next(19021, "sign match fail or timestamp is not within one hour from current time")
        svc = make_service(at=AT)
        run_poll(svc)
    finally:
        root.handlers[:], root.level = saved
        for name in ("twilio.http_client", "urllib3", "httpx"):
            logging.getLogger(name).setLevel(logging.WARNING)
    text = "\n".join(r.getMessage() for r in caplog.records) + "\n" + capsys.readouterr().err
    assert "/cgi-bin/webhook/send" in text and "19021" in text  # the requests and the refusal were logged
    for secret in (WECOM_KEY, DING_TOKEN, FEISHU_TOKEN, DING_SECRET, FEISHU_SECRET, "led-token-3f9a7c"):
        assert secret not in text, secret
