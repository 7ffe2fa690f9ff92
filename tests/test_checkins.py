"""Check-ins (包户核实, issue 15, DESIGN A13) on the demo with its sample workbooks: the links at
``send_at``, answers through the page, the duty SMS at ``confirm_by`` naming the rest, the board in
the API and the console, refused codes; a changed workbook taken without a restart.

The service runs on a fake clock (2026-11-28, a Saturday in season, demo level 4); the scheduler's
jobs are the functions called here, and the dispatcher sends to the outbox file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.flows.checkins import escalate, send_links
from broadcaster.ledger import AuditEntry
from broadcaster.logutil import mask_text
from tests.conftest import edit_yaml, local
from tests.test_api import Api, make_api
from tests.test_console import browser, sign_in

ZHANGSAN, WU = "+8613800138000", "+8613900139102"  # 包户干部 张三 (东村) and 吴国强 (西村)
ON_DUTY_1128 = ["+8618600186101", "+8618600186102"]  # 刘文华, 陈立新 on the roster for 11-28
LINK = re.compile(r"http://127\.0\.0\.1:8080/c/([A-Za-z0-9_-]+)")


def with_workbooks(confdir: Path) -> None:
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(households_file="households.xlsx",
                                                             duty_file="duty.xlsx"))


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    with_workbooks(confdir)
    a = make_api(confdir, lambda d: d.update(
        checkins={"level_at_least": 4, "send_at": "18:30", "confirm_by": "21:00"}))
    yield a
    a.svc.close()


def outbox(api: Api) -> list[dict[str, str]]:
    path = api.confdir.parent / "var/outbox/sms.jsonl"
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def run(api: Api, job, h: int, m: int) -> int | None:  # type: ignore[no-untyped-def]
    api.clock.set(local(2026, 11, 28, h, m))
    alert_id = job(api.svc)
    if alert_id is not None:
        api.svc.dispatcher.drain([alert_id])
    return alert_id


def households_on(page: str) -> dict[str, str]:
    """户主 -> the form's household id, as the page shows them."""
    return dict((head, hid) for hid, head in re.findall(
        r'data-household="([0-9a-f]+)">\s*<div class="who">([^<{ ]+)', page))


def test_checkin_night_links_answers_escalation_and_board(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # httpx logs each request's URL (with the code); an earlier in-process `broadcaster` command in
    # this worker may have set it to WARNING (logutil.setup_logging).
    caplog.set_level(logging.DEBUG, logger="httpx")
    api.clock.set(local(2026, 11, 28, 16, 30))
    assert api.svc.poll().result.ok  # demo level 4: at the configured level
    before = len(outbox(api))
    assert run(api, send_links, 18, 29) is None  # not yet
    first = run(api, send_links, 18, 30)
    assert first is not None and run(api, send_links, 18, 45) is None  # once per night
    sent = [x for x in outbox(api)[before:] if "/c/" in x["body"]]
    links = {x["to"]: x["body"] for x in sent}
    assert len(sent) == 4
    # One SMS per 包户干部 of the workbook, each with a personal link.
    assert sorted(links) == sorted([ZHANGSAN, "+8613800138101", WU, "+8615000150103"])
    assert "请核实您包保的2户重点户" in links[ZHANGSAN]
    codes = {to: LINK.search(body).group(1) for to, body in links.items()}  # type: ignore[union-attr]
    assert len(set(codes.values())) == 4 and all(len(c) >= 22 for c in codes.values())  # >= 128 bits

    # 张三's page: his two households, tap-to-call, nobody else's.
    page = api.client.get(f"/c/{codes[ZHANGSAN]}")
    assert page.status_code == 200 and 'name="viewport"' in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    mine = households_on(page.text)
    assert sorted(mine) == ["刘长贵", "张德顺"]
    assert 'href="tel:+8613800138111"' in page.text and "东村一组12号" in page.text
    assert "李桂兰" not in page.text and "+8613900139121" not in page.text
    # Two answers through the pages, by two cadres.
    r = api.client.post(f"/c/{codes[ZHANGSAN]}", data={"household": mine["张德顺"], "answer": "已电话确认安全"},
                        follow_redirects=False)
    assert r.status_code == 303
    wu = households_on(api.client.get(f"/c/{codes[WU]}").text)
    r = api.client.post(f"/c/{codes[WU]}", data={"household": wu["赵德明"], "answer": "已入户查看"})
    assert r.status_code == 200 and "已记录：赵德明" in r.text and "当前：已入户查看" in r.text
    # Bad answers: not one of the three, another cadre's household.
    bad = api.client.post(f"/c/{codes[WU]}", data={"household": wu["孙玉珍"], "answer": "安全"})
    assert bad.status_code == 422 and "须为 已电话确认安全、已入户查看、联系不上 之一" in bad.text
    assert api.client.post(f"/c/{codes[WU]}", data={"household": mine["刘长贵"],
                                                     "answer": "已入户查看"}).status_code == 422
    # A wrong code is 404 (and never a page of someone's households).
    assert api.client.get("/c/" + "A" * 22).status_code == 404
    assert api.client.post("/c/" + "A" * 22, data={"household": mine["张德顺"], "answer": "联系不上"}).status_code == 404

    # The board in the API: every household, answered ones with their answer and time.
    assert api.get("/api/v1/checkins", who=None).status_code == 401
    assert api.get("/api/v1/checkins", params={"night": "昨晚"}).status_code == 422
    board = api.get("/api/v1/checkins", params={"night": "2026-11-28"}).json()
    assert board["night"] == "2026-11-28" and len(board["households"]) == 10
    answered = {h["head"]: (h["answer"], h["answered_at"][11:16]) for h in board["households"] if h["answer"]}
    assert answered == {"张德顺": ("已电话确认安全", "18:45"), "赵德明": ("已入户查看", "18:45")}
    assert {"village": "dongcun", "head": "李桂兰", "cadre": "周建军", "answer": None,
            "answered_at": None} in board["households"]

    # confirm_by: one SMS to the roster's people on duty that day, naming the 8 open households.
    before = len(outbox(api))
    assert run(api, escalate, 20, 59) is None
    esc = run(api, escalate, 21, 0)
    assert esc is not None and run(api, escalate, 21, 30) == esc
    duty = outbox(api)[before:]
    assert sorted(x["to"] for x in duty) == ON_DUTY_1128
    assert "截至21:00仍有8户未确认安全" in duty[0]["body"]
    assert "东村3户：李桂兰、王秀英、刘长贵" in duty[0]["body"] and "西村2户：孙玉珍、钱福来" in duty[0]["body"]
    assert "张德顺" not in duty[0]["body"] and "赵德明" not in duty[0]["body"]

    # Every answer is audited; no log line holds a whole code.
    with api.svc.ledger.reader() as s:
        audit = list(s.scalars(select(AuditEntry).where(AuditEntry.action == "checkin.answer")))
    assert [(e.actor, e.detail["head"], e.detail["answer"]) for e in audit] == [
        ("cadre:张三", "张德顺", "已电话确认安全"), ("cadre:吴国强", "赵德明", "已入户查看")]
    # (what the service's log handler writes: its MaskingFilter shortens /c/CODE to /c/abcd****)
    logged = [mask_text(rec.getMessage()) for rec in caplog.records]
    assert any("/c/" in line for line in logged)
    assert not any(c[4:] in line for line in logged for c in codes.values())

    # Last night's code is refused the next morning, after the night ended at 08:00.
    api.clock.set(local(2026, 11, 29, 8, 0))
    gone = api.client.get(f"/c/{codes[ZHANGSAN]}")
    assert gone.status_code == 410 and "已过期" in gone.text and "张德顺" not in gone.text


def test_no_checkins_below_the_level_or_without_config(confdir: Path) -> None:
    with_workbooks(confdir)
    a = make_api(confdir, lambda d: d.update(checkins={"level_at_least": 5}))
    try:
        a.clock.set(local(2026, 11, 28, 16, 30))
        a.svc.poll()
        a.clock.set(local(2026, 11, 28, 18, 30))
        assert send_links(a.svc) is None and not a.svc.ledger.checkins.issued(local(2026, 11, 28).date())
    finally:
        a.svc.close()


def test_unknown_codes_are_rate_limited(api: Api) -> None:
    for i in range(20):
        assert api.client.get(f"/c/wrongcode{i:04d}xxxxxxxx").status_code == 404
    assert api.client.get("/c/wrongcode9999xxxxxxxx").status_code == 429


def test_changed_workbook_is_taken_without_restart_and_a_broken_one_is_not(api: Api) -> None:
    path = api.confdir / "households.xlsx"
    wb = load_workbook(path)
    ws = wb["重点户"]
    ws.append(["西村", "新户主", "西村新街1号", "独居老人", "新联系人", "13900139199", "吴国强", "13900139102"])
    wb.save(path)
    taken, problems = api.svc.reload_workbooks(force=True)
    assert taken and [p for p in problems if not p.warning] == []
    assert "新户主" in [h.head for h in api.svc.cfg.book.households]
    assert "+8613900139199" in [p.phone for p, _g in api.svc.cfg.book.recipients(["vulnerable"], api.clock.now(),
                                                                                   api.svc.cfg.tz, False)]
    ws.append(["北村", "坏行", "", "", "", "1380013800", "吴国强", "13900139102"])
    wb.save(path)
    taken, problems = api.svc.reload_workbooks(force=True)
    assert not taken
    messages = [str(p) for p in problems]
    assert any('重点户!A13: 村: 未知的村 "北村"' in m for m in messages)
    assert any('重点户!F13: 联系电话: 无效的手机号 "1380013800"' in m for m in messages)
    assert len(api.svc.cfg.book.households) == 11  # the last good workbook stays in use
    assert api.svc.workbook_problems


def test_console_shows_households_roster_and_board(api: Api) -> None:
    Accounts(api.svc.ledger).add_user("admin1", "admin", "admin1-pass-long", api.clock.now())
    c = browser(api)
    sign_in(c, "admin1", "admin1-pass-long")
    page = c.get("/households")
    assert page.status_code == 200
    assert "东村（4 户）" in page.text and "西村（3 户）" in page.text and "南村（3 户）" in page.text
    assert "2026-11-28（今天）" in page.text and "刘文华、陈立新" in page.text
    assert "东村一组12号" not in page.text and "13800138111" not in page.text  # only the cadre sees these
    board = c.get("/checkins?night=2026-11-28")
    assert board.status_code == 200 and "共 10 户，未确认或联系不上 <strong>10</strong> 户" in board.text


def test_weekly_report_counts_checkins_by_village_and_cadre(api: Api) -> None:
    from broadcaster.flows.report import build_report, period_from_options

    api.clock.set(local(2026, 11, 28, 16, 30))
    api.svc.poll()
    run(api, send_links, 18, 30)
    code = [LINK.search(x["body"]).group(1) for x in outbox(api) if x["to"] == ZHANGSAN and "/c/" in x["body"]][0]  # type: ignore[union-attr]
    mine = households_on(api.client.get(f"/c/{code}").text)
    api.client.post(f"/c/{code}", data={"household": mine["张德顺"], "answer": "已电话确认安全"})
    api.client.post(f"/c/{code}", data={"household": mine["刘长贵"], "answer": "联系不上"})
    r = build_report(api.svc.cfg, api.svc.ledger, period_from_options("2026-W48", None, None, api.clock.now().date()),
                     api.clock.now())
    # Both answers count as answered (联系不上 is an answer; the duty SMS still names it).
    assert sorted((c.name, c.households, c.answered, c.missing) for c in r.checkins_by_village) == sorted(
        [("南村", 3, 0, 3), ("东村", 4, 2, 2), ("西村", 3, 0, 3)])
    assert ("张三", 2, 2, 0) in [(c.name, c.households, c.answered, c.missing) for c in r.checkins_by_cadre]


def test_codes_of_a_run_that_stopped_before_sending_are_replaced(api: Api) -> None:
    api.clock.set(local(2026, 11, 28, 16, 30))
    api.svc.poll()
    night = local(2026, 11, 28).date()
    # A run that stored its codes and stopped before queueing the SMS (a crash, a lost leader).
    assert api.svc.ledger.checkins.issue(night, [("0" * 64, ZHANGSAN, "张三", [])], local(2026, 11, 29, 8), api.clock.now())
    assert run(api, send_links, 18, 30) is not None
    assert len([x for x in outbox(api) if "/c/" in x["body"]]) == 4
    assert api.svc.ledger.checkins.code("0" * 64) is None
    assert not api.svc.ledger.checkins.issue(night, [("1" * 64, ZHANGSAN, "张三", [])], local(2026, 11, 29, 8),
                                             api.clock.now())  # sent: never replaced again


def test_at_level_5_the_open_checkins_reach_the_leader_too(confdir: Path) -> None:
    with_workbooks(confdir)
    a = make_api(confdir, lambda d: d.update(feed={"type": "demo", "level": 5},
                                             checkins={"level_at_least": 4, "send_at": "18:30", "confirm_by": "21:00"}))
    try:
        a.clock.set(local(2026, 11, 28, 16, 30))
        a.svc.poll()
        assert run(a, send_links, 18, 30) is not None
        before = len(outbox(a))
        assert run(a, escalate, 21, 0) is not None
        assert sorted(x["to"] for x in outbox(a)[before:]) == sorted(ON_DUTY_1128 + ["+8613700137102"])  # + 何永红
    finally:
        a.svc.close()
