"""Incident reports (事故上报, issue 16, DESIGN A14): the API's validation, the SMS to group
``leaders`` once, corrections that never change the first record, the audit, the console form and
the report's section.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from broadcaster.auth.accounts import Accounts
from broadcaster.flows.report import build_report, period_from_options
from broadcaster.ledger import Delivery, Incident
from tests.conftest import local
from tests.test_api import START, Api, make_api
from tests.test_console import browser, sign_in

LEADER = "+8613600136006"  # 周九, the demo directory's group `leaders`
GOOD = {"village": "xicun", "occurred_at": "2026-11-28T06:40", "affected": 2, "deaths": 0,
        "description": "王某家两人晨起头晕恶心，疑似煤炉封火导致一氧化碳中毒，已送镇卫生院。",
        "measures": "开窗通风，熄灭炉火，村干部入户检查同组 12 户烟道。"}


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    Accounts(a.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    yield a
    a.svc.close()


def sms_to_leaders(api: Api) -> list[Delivery]:
    with api.svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.channel == "sms", Delivery.target == LEADER)
                              .order_by(Delivery.id)))


@pytest.mark.parametrize("change,field", [
    ({"village": None}, "village"), ({"village": "北村"}, "village"), ({"occurred_at": "昨天早上"}, "occurred_at"),
    ({"occurred_at": "2026-11-28T18:00"}, "occurred_at"),  # later than now (14:00)
    ({"occurred_at": "2025-10-01T06:00"}, "occurred_at"), ({"affected": -1}, "affected"),
    ({"affected": "两人"}, "affected"), ({"affected": True}, "affected"), ({"deaths": None}, "deaths"),
    ({"deaths": 3}, "deaths"),  # more than affected
    ({"description": "  "}, "description"), ({"description": "经过" * 1001}, "description"),
    ({"measures": 12}, "measures"),
])
def test_invalid_input_is_422_naming_the_field(api: Api, change: dict[str, Any], field: str) -> None:
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    r = api.post("/api/v1/incidents", json=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail["field"] == field and re.match(r"[\u4e00-\u9fff]", detail["message"]), detail
    assert sms_to_leaders(api) == [] and api.svc.ledger.reports.recent_incidents() == []


def test_an_incident_is_recorded_audited_and_sent_to_the_leaders_once(api: Api) -> None:
    assert api.post("/api/v1/incidents", who=None, json=GOOD).status_code == 401
    r = api.post("/api/v1/incidents", json={**GOOD, "village": "西村"})  # the name does as well as the id
    assert r.status_code == 201 and r.json() == {"id": r.json()["id"], "sms": 1}
    iid = r.json()["id"]
    (sms,) = sms_to_leaders(api)
    assert sms.sms_group == "leaders" and sms.body == (
        "【XX镇文化站】事故上报：西村发生一氧化碳中毒事故，涉及2人，死亡0人。详情请登录预警平台查看。")
    # The dispatcher sends it; a second pass and a restart's reconcile send nothing more.
    api.svc.dispatcher.drain([sms.alert_id])
    api.svc.dispatcher.reconcile()
    api.svc.dispatcher.drain([sms.alert_id])
    assert [m["to"] for m in api.outbox()] == [LEADER]
    entry = [e for e in api.audit() if e.action == "incident.create"]
    assert [(e.actor, e.object_id) for e in entry] == [("alice", str(iid))]
    assert entry[0].detail["affected"] == 2 and entry[0].detail["occurred_at"] == "2026-11-28T06:40:00+08:00"
    got = api.get(f"/api/v1/incidents/{iid}").json()
    assert (got["village"], got["village_name"], got["created_by"], got["corrections"]) == ("xicun", "西村", "alice", [])


def test_a_correction_is_a_row_of_its_own_and_the_first_record_stays(api: Api) -> None:
    iid = api.post("/api/v1/incidents", json=GOOD).json()["id"]
    api.clock.set(local(2026, 11, 28, 16, 0))
    path = f"/api/v1/incidents/{iid}/corrections"
    assert api.post(path, json={"deaths": 1}).json()["detail"]["field"] == "note"
    assert api.post(path, json={"affected": 2, "note": "无变化"}).json()["detail"]["field"] == "note"
    assert api.post(path, json={"deaths": 5, "note": "x"}).json()["detail"]["field"] == "deaths"
    assert api.post("/api/v1/incidents/999/corrections", json={"deaths": 1, "note": "x"}).status_code == 404
    r = api.post(path, json={"affected": 3, "deaths": 1, "note": "一人抢救无效，又有一人入院"}, who="bob")
    assert r.status_code == 201 and r.json()["sms"] == 1
    r2 = api.post(path, json={"measures": "全村排查烟道", "note": "补充措施"})
    assert r2.status_code == 201 and r2.json()["sms"] == 0  # no change of the casualties: not sent again
    got = api.get(f"/api/v1/incidents/{iid}").json()
    assert (got["affected"], got["deaths"], got["measures"]) == (2, 0, GOOD["measures"])  # as first reported
    assert (got["current"]["affected"], got["current"]["deaths"], got["current"]["measures"]) == (3, 1, "全村排查烟道")
    assert [c["text"] for c in got["corrections"]] == [
        "11-28 16:00 bob：涉及人数由 2 改为 3；死亡人数由 0 改为 1。说明：一人抢救无效，又有一人入院",
        "11-28 16:00 alice：处置措施改为：全村排查烟道。说明：补充措施"]
    with api.svc.ledger.reader() as s:
        row = s.get(Incident, iid)
    assert row is not None and (row.affected, row.deaths) == (2, 0)
    bodies = [d.body for d in sms_to_leaders(api)]
    assert bodies[1] == "【XX镇文化站】事故更正：西村发生一氧化碳中毒事故，涉及3人，死亡1人。详情请登录预警平台查看。"
    assert [e.action for e in api.audit() if e.action.startswith("incident.")] == [
        "incident.create", "incident.correct", "incident.correct"]

    report = build_report(api.svc.cfg, api.svc.ledger, period_from_options("2026-W48", None, None, START.date()),
                          api.clock.now())
    (row_,) = report.incidents
    assert (row_.id, row_.village, row_.affected, row_.deaths, row_.measures) == (iid, "西村", 3, 1, "全村排查烟道")
    assert row_.occurred_at == local(2026, 11, 28, 6, 40) and len(row_.corrections) == 2
    assert [(g.group, g.sent, g.group_name) for g in report.sms_by_group] == [("leaders", 0, "镇领导")]


def test_the_console_form_reports_and_corrects(api: Api) -> None:
    c = browser(api)
    csrf = sign_in(c, "小李")
    page = c.get("/incidents")
    assert page.status_code == 200 and "事故上报" in page.text and 'name="occurred_at"' in page.text
    bad = c.post("/incidents", data={**GOOD, "village": "", "csrf": csrf})
    assert bad.status_code == 422 and 'data-field="village"' in bad.text and "请填写村" in bad.text
    assert c.post("/incidents", data={**GOOD, "csrf": "forged"}).status_code == 403
    r = c.post("/incidents", data={**GOOD, "csrf": csrf}, follow_redirects=False)
    assert r.status_code == 303
    iid = int(re.search(r"/incidents/(\d+)", r.headers["location"]).group(1))
    r = c.post(f"/incidents/{iid}/corrections", data={"deaths": "1", "note": "抢救无效", "csrf": csrf,
                                                      "village": "", "affected": "", "occurred_at": ""},
               follow_redirects=True)
    assert r.status_code == 200 and "更正已记录，已短信通知领导 1 人" in r.text
    assert "死亡人数由 0 改为 1" in r.text and "原始记录" in r.text
    assert [e.actor for e in api.audit() if e.action.startswith("incident.")] == ["小李", "小李"]
    listing = c.get("/incidents").text
    assert f'data-incident="{iid}"' in listing
