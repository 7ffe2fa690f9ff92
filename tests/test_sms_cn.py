"""阿里云短信 and 腾讯云短信 (DESIGN A10): registered templates, batches with each number's own
result, receipts by path token, `check`, refused manual broadcasts, and a crash mid-batch.

Every send goes through the official SDK to a loopback double that checks its signature.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.ledger import AuditEntry, Delivery
from broadcaster.runtime.service import Service
from tests.conftest import ROOT, edit_yaml
from tests.doubles.aliyun import AliyunSmsDouble
from tests.doubles.tencent import TencentSmsDouble
from broadcaster.timeutil import FakeClock
from tests.test_api import START, Api, make_api

AK, SK = "test-ak", "test-secret"
SID, SKEY = "test-secret-id", "test-secret-key"
SIGN, APP = "XX镇文化站", "1400000000"
ALI_TOKEN, TC_TOKEN = "ali-receipt-token-0123456789", "tc-receipt-token-0123456789"
ZHANG, LI, WANG = "+8613800138000", "+8613900139001", "+8615000150002"
CADRES = [ZHANG, LI, WANG]
ALI_TEMPLATES = {"SMS_123456789": "${date}夜间一氧化碳中毒气象条件${level}级（${name}），请开窗通风。",
                 "SMS_987654321": "${content}", "SMS_123450000": "截至${time}仍未取得${date}夜间预报"}
TC_TEMPLATES = {"1234567": "{1}夜间一氧化碳中毒气象条件{2}级（{3}），请开窗通风。", "7654321": "{1}"}
TEXT = "今晚大风降温，请通风"


def cn_config(provider: str, port: int):  # type: ignore[no-untyped-def]
    section = ({"access_key_id": AK, "access_key_secret": SK, "sign_name": SIGN, "receipt_token": ALI_TOKEN,
                "endpoint": f"127.0.0.1:{port}", "protocol": "http", "timeout_s": 2}
               if provider == "aliyun" else
               {"secret_id": SID, "secret_key": SKEY, "sdk_app_id": APP, "sign_name": SIGN,
                "receipt_token": TC_TOKEN, "endpoint": f"127.0.0.1:{port}", "protocol": "http", "timeout_s": 2})

    def edit(d: dict) -> None:
        d["sms"] = {"provider": provider, "rate_per_s": 50, provider: section}
        d["rules"] = "rules-cn.yaml"
        d["http"].update(require_approval=False)
    return edit


@pytest.fixture
def aliyun() -> Iterator[AliyunSmsDouble]:
    with AliyunSmsDouble({AK: SK}, templates=ALI_TEMPLATES, sign_names=[SIGN]) as d:
        yield d


@pytest.fixture
def tencent() -> Iterator[TencentSmsDouble]:
    with TencentSmsDouble({SID: SKEY}, sdk_app_id=APP, templates=TC_TEMPLATES, sign_names=[SIGN]) as d:
        yield d


def cn_api(confdir: Path, provider: str, port: int) -> Api:
    shutil.copy(ROOT / "config" / "rules-cn.yaml", confdir / "rules-cn.yaml")
    return make_api(confdir, cn_config(provider, port))


@pytest.fixture
def ali_api(confdir: Path, aliyun: AliyunSmsDouble) -> Iterator[Api]:
    a = cn_api(confdir, "aliyun", aliyun.port)
    yield a
    a.svc.close()


@pytest.fixture
def tc_api(confdir: Path, tencent: TencentSmsDouble) -> Iterator[Api]:
    a = cn_api(confdir, "tencent", tencent.port)
    yield a
    a.svc.close()


def alert(api: Api) -> int:
    """Tonight's automatic alert (the demo feed says level 4: rule `warn` SMS the cadres)."""
    report = api.svc.poll()
    assert report.created, report
    assert api.svc.dispatcher.drain([report.alert_id], timeout=30)
    return report.alert_id


def sms(api: Api, phone: str | None = None) -> list[Delivery]:
    with api.svc.ledger.reader() as s:
        q = select(Delivery).where(Delivery.channel == "sms").order_by(Delivery.id)
        return list(s.scalars(q.where(Delivery.target == phone) if phone else q))


# ------------------------------------------------------------------ check


def test_check_fails_when_a_template_in_use_lacks_the_registration(confdir: Path, capsys) -> None:
    edit_yaml(confdir / "broadcaster.yaml", cn_config("aliyun", 9))  # rules-cn.yaml not there yet
    shutil.copy(ROOT / "config" / "rules-cn.yaml", confdir / "rules-cn.yaml")
    edit_yaml(confdir / "rules-cn.yaml", lambda d: d["templates"]["sms_warn"].pop("aliyun"))
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 2
    err = capsys.readouterr().err
    assert "rules-cn.yaml: templates.sms_warn.aliyun: 模板 sms_warn 缺少 aliyun 的登记" in err
    # The same rules are fine for Tencent, whose registration is there; a plain-text template is not.
    edit_yaml(confdir / "broadcaster.yaml", cn_config("tencent", 9))
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 0, capsys.readouterr().err
    edit_yaml(confdir / "rules-cn.yaml", lambda d: d["templates"].update(sms_warn="【{town}】{level}级"))
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 2
    assert "templates.sms_warn.tencent: 模板 sms_warn 缺少 tencent 的登记" in capsys.readouterr().err
    # The feed-deadline SMS is always in use: its reserved template must be registered too.
    edit_yaml(confdir / "rules-cn.yaml", lambda d: d["templates"].pop("deadline_sms"))
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 2
    assert "templates.deadline_sms.tencent: 模板 deadline_sms 缺少 tencent 的登记" in capsys.readouterr().err


def test_feed_deadline_sms_goes_through_its_reserved_template(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    from broadcaster.flows.deadline import deadline_check

    alert_id = deadline_check(ali_api.svc)  # no reading tonight by the deadline
    assert alert_id is not None and ali_api.svc.dispatcher.drain([alert_id], timeout=30)
    (m,) = aliyun.messages()  # the duty group: 孙八
    assert (m.phone, m.template_code, m.params) == ("18800188005", "SMS_123450000",
                                                    {"time": "17:30", "date": "11月28日"})
    assert sms(ali_api)[0].body.startswith("【XX镇文化站】截至17:30仍未取得11月28日夜间")


# ------------------------------------------------------------------ Aliyun


def test_aliyun_alert_is_one_request_with_the_registered_template(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    alert(ali_api)
    sends = aliyun.calls_of("SendSms")
    assert len(sends) == 1 and sends[0].params["PhoneNumbers"].split(",") == CADRES
    msgs = aliyun.messages()
    assert sorted("+86" + m.phone for m in msgs) == sorted(CADRES)
    for m in msgs:
        assert (m.sign_name, m.template_code) == (SIGN, "SMS_123456789")
        assert m.params == {"date": "11月28日", "level": "4", "name": "容易发生"}
        assert m.content == f"【{SIGN}】11月28日夜间一氧化碳中毒气象条件4级（容易发生），请开窗通风。"
    rows = sms(ali_api)
    assert {r.state for r in rows} == {"sent"} and {r.provider_id for r in rows} == {msgs[0].biz_id}
    # The ledger and console keep the text as the recipient reads it.
    assert rows[0].body.startswith("【XX镇文化站】11月28日夜间一氧化碳中毒气象条件4级")


def test_aliyun_business_error_fails_that_number_only(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    aliyun.errors[LI[3:]] = "isv.BLACK_KEY_CONTROL_LIMIT"
    aliyun.limit_per_day = 1
    aliyun.messages()  # nothing yet
    alert(ali_api)
    # The batch got a per-number code naming no number: each number was then sent alone.
    assert [len(c.params["PhoneNumbers"].split(",")) for c in aliyun.calls_of("SendSms")] == [3, 1, 1, 1]
    assert sorted("+86" + m.phone for m in aliyun.messages()) == [ZHANG, WANG]
    li = sms(ali_api, LI)[0]
    assert li.state == "failed" and "isv.BLACK_KEY_CONTROL_LIMIT" in li.last_error and li.attempts == 1
    assert {r.state for r in sms(ali_api) if r.target != LI} == {"sent"}


def test_aliyun_frequency_limit_ends_the_delivery_without_retry(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    aliyun.limit_per_day = 1
    r = ali_api.post("/api/v1/broadcasts", json={"text": TEXT, "sms_groups": ["cadres"]})
    assert r.status_code == 201, r.text
    assert ali_api.svc.dispatcher.drain([r.json()["id"]], timeout=30)
    assert len(aliyun.messages()) == 3  # the manual template; now the alert's (another template) ...
    aliyun.limit_per_day = 0
    alert(ali_api)
    rows = [d for d in sms(ali_api) if d.alert_id != r.json()["id"]]
    assert {d.state for d in rows} == {"failed"}
    assert all("isv.BUSINESS_LIMIT_CONTROL" in d.last_error and d.attempts == 1 for d in rows)
    assert len(aliyun.messages()) == 3


def test_aliyun_receipts_by_token_applied_once_forward_only(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    alert(ali_api)
    url = f"/api/v1/sms/aliyun/receipts/{ALI_TOKEN}"
    zhang, li = aliyun.messages(ZHANG)[0], aliyun.messages(LI)[0]
    aliyun.deliver([zhang])
    aliyun.deliver([li], success=False, err_code="MK:0001")
    body = json.dumps(aliyun.receipts([zhang, li]), ensure_ascii=False).encode()
    bad = ali_api.client.post("/api/v1/sms/aliyun/receipts/wrong-token-0123456789", content=body)
    assert bad.status_code == 403
    with ali_api.svc.ledger.reader() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "receipt.bad_signature")).all()
    assert sms(ali_api, ZHANG)[0].state == "sent"
    ok = ali_api.client.post(url, content=body, headers={"Content-Type": "application/json"})
    assert ok.status_code == 200 and ok.json() == {"code": 0, "msg": "成功"}
    assert sms(ali_api, ZHANG)[0].state == "delivered"
    assert sms(ali_api, LI)[0].state == "failed" and "MK:0001" in sms(ali_api, LI)[0].last_error
    assert sms(ali_api, WANG)[0].state == "sent"  # same biz_id, but no receipt for this number
    # Pushed again (Aliyun re-pushes), and a late "failed" for a delivered one: nothing moves.
    late = aliyun.receipts([zhang])
    late[0].update(success=False, err_code="UNDELIV")
    for payload in (body, json.dumps(late).encode()):
        assert ali_api.client.post(url, content=payload).status_code == 200
    assert sms(ali_api, ZHANG)[0].state == "delivered"
    # Unknown ids are acknowledged and ignored.
    assert ali_api.client.post(url, json=[{"biz_id": "nope", "phone_number": "13800138000",
                                           "success": True, "extra": 1}]).status_code == 200


def test_manual_broadcast_refused_when_the_template_cannot_carry_it(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    r = ali_api.post("/api/v1/broadcasts", json={"text": "很" * 36, "sms_groups": ["cadres"]})
    assert r.status_code == 422 and "text" in r.text and "35" in r.text
    r = ali_api.post("/api/v1/broadcasts", json={"text": TEXT, "sms_groups": ["cadres"]})
    assert r.status_code == 201
    assert ali_api.svc.dispatcher.drain([r.json()["id"]], timeout=30)
    assert {(m.template_code, m.params["content"]) for m in aliyun.messages()} == {("SMS_987654321", TEXT)}
    edit_yaml(ali_api.confdir / "rules-cn.yaml", lambda d: d["templates"].pop("manual_sms"))
    svc = Service(load_config(ali_api.confdir / "broadcaster.yaml"), clock=FakeClock(START))
    try:
        from broadcaster.flows.manual import BroadcastRequest, Broadcasts
        from broadcaster.errors import InputError
        with pytest.raises(InputError) as e:
            Broadcasts(svc).create(BroadcastRequest(text=TEXT, villages=[], sms_groups=["cadres"]), "alice")
        assert e.value.field == "text" and "manual_sms" in str(e.value)
    finally:
        svc.close()


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_crash_during_a_batch_then_restart_sends_no_number_twice(
        provider: str, confdir: Path, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> None:
    """As after kill -9: the batch reached the provider, the ledger still says `sending`. The
    restarted service asks the query API (QuerySendDetails, PullSmsSendStatusByPhoneNumber) and
    records them sent instead of sending again; the number the batch never reached is sent."""
    double = aliyun if provider == "aliyun" else tencent
    ali_api = cn_api(confdir, provider, double.port)
    report = ali_api.svc.poll()
    svc = ali_api.svc
    jobs = svc.ledger.deliveries.claim(svc.now(), 10, "sms")
    assert len(jobs) == 3
    from broadcaster.dispatch.recovery import sms_job
    sent = svc.sms.send_batch([sms_job(j) for j in jobs[:2]])  # type: ignore[attr-defined]
    assert all(not isinstance(r, Exception) for r in sent)
    svc.close()  # the outcome is never recorded
    again = Service(load_config(ali_api.confdir / "broadcaster.yaml"), clock=FakeClock(START))
    try:
        again.dispatcher.reconcile()
        assert again.dispatcher.drain([report.alert_id], timeout=30)
        counts = again.ledger.reads.counts([report.alert_id])["sms"]
    finally:
        again.close()
    assert counts == {"sent": 3}
    phones = sorted(m.phone if m.phone.startswith("+") else "+86" + m.phone for m in double.messages())
    assert phones == sorted(CADRES)  # each exactly once
    assert double.calls_of("QuerySendDetails" if provider == "aliyun" else "PullSmsSendStatusByPhoneNumber")


# ------------------------------------------------------------------ Tencent


def test_tencent_alert_with_the_registered_template_and_per_number_results(tc_api: Api, tencent: TencentSmsDouble) -> None:
    tencent.errors[LI] = "LimitExceeded.PhoneNumberDailyLimit"
    alert(tc_api)
    sends = tencent.calls_of("SendSms")
    assert len(sends) == 1 and sends[0].params["PhoneNumberSet"] == CADRES
    assert sends[0].params["TemplateParamSet"] == ["11月28日", "4", "容易发生"]
    assert sorted(m.phone for m in tencent.messages()) == [ZHANG, WANG]
    for m in tencent.messages():
        assert (m.sign_name, m.template_id) == (SIGN, "1234567")
        assert tencent.messages(m.phone)[0].serial_no == sms(tc_api, m.phone)[0].provider_id
    li = sms(tc_api, LI)[0]
    assert li.state == "failed" and "LimitExceeded.PhoneNumberDailyLimit" in li.last_error and li.attempts == 1


def test_tencent_answer_without_send_status_set_is_not_a_success(tc_api: Api, tencent: TencentSmsDouble) -> None:
    tencent.content_type = "application/json; charset=utf-8"  # the SDK then misses Response.Error
    tencent.secret_keys[SID] = "rotated"  # an AuthFailure, under the wrong Content-Type
    report = tc_api.svc.poll()
    tc_api.svc.dispatcher.drain([report.alert_id], timeout=3)
    assert tencent.messages() == []
    assert {d.state for d in sms(tc_api)} <= {"pending", "failed"}
    assert all("SendStatusSet" in (d.last_error or "") for d in sms(tc_api))


def test_tencent_receipts_by_token(tc_api: Api, tencent: TencentSmsDouble) -> None:
    alert(tc_api)
    url = f"/api/v1/sms/tencent/receipts/{TC_TOKEN}"
    zhang = tencent.messages(ZHANG)
    items = tencent.receipts(tencent.deliver(zhang))
    assert tc_api.client.post("/api/v1/sms/tencent/receipts/x" + TC_TOKEN, json=items).status_code == 403
    ok = tc_api.client.post(url, json=items)
    assert ok.status_code == 200 and ok.json() == {"result": 0, "errmsg": "OK"}
    assert sms(tc_api, ZHANG)[0].state == "delivered"
    failed = tencent.receipts(tencent.deliver(tencent.messages(LI), success=False))
    assert tc_api.client.post(url, json=failed + items).status_code == 200
    assert sms(tc_api, LI)[0].state == "failed" and sms(tc_api, ZHANG)[0].state == "delivered"
    late = [dict(items[0], report_status="FAIL")]
    assert tc_api.client.post(url, json=late).status_code == 200
    assert sms(tc_api, ZHANG)[0].state == "delivered"


# ------------------------------------------------------------------ caps


def test_over_the_daily_cap_is_never_sent_and_fails_with_reason_cap(confdir: Path, aliyun: AliyunSmsDouble) -> None:
    shutil.copy(ROOT / "config" / "rules-cn.yaml", confdir / "rules-cn.yaml")
    edit = cn_config("aliyun", aliyun.port)
    api = make_api(confdir, lambda d: (edit(d), d["sms"].update(caps={"per_number_per_day": 2})))
    try:
        ids = []
        for text in ("第一条通知", "第二条通知", "第三条通知"):
            r = api.post("/api/v1/broadcasts", json={"text": text, "sms_groups": ["cadres"]})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
            assert api.svc.dispatcher.drain([ids[-1]], timeout=30)
        third = [d for d in sms(api) if d.alert_id == ids[2]]
        assert {d.state for d in third} == {"failed"} and all(d.last_error.startswith("cap:") for d in third)
        assert len(aliyun.messages()) == 6  # two a number, the third never reached Aliyun
        assert {m.params["content"] for m in aliyun.messages()} == {"第一条通知", "第二条通知"}
        # Staff see why: the console's page of that broadcast shows each failure with its reason.
        from broadcaster.auth.accounts import Accounts
        from tests.test_console import browser, sign_in

        Accounts(api.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
        c = browser(api)
        sign_in(c, "小李", "xiaoli-pass")
        assert c.get(f"/history/{ids[2]}").text.count("cap: 该号码 24 小时内已收到 2 条短信") == 3
        # 24 h later the number may be warned again.
        api.clock.advance(timedelta(hours=24, minutes=1).total_seconds())
        r = api.post("/api/v1/broadcasts", json={"text": "第四条通知", "sms_groups": ["cadres"]})
        assert api.svc.dispatcher.drain([r.json()["id"]], timeout=30)
        assert len(aliyun.messages()) == 9
    finally:
        api.svc.close()


# ------------------------------------------------------------------ failover


@pytest.fixture
def both(confdir: Path, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> Iterator[Api]:
    shutil.copy(ROOT / "config" / "rules-cn.yaml", confdir / "rules-cn.yaml")
    ali, tc = cn_config("aliyun", aliyun.port), cn_config("tencent", tencent.port)

    def edit(d: dict) -> None:
        tc(d)
        tencent_section = d["sms"]["tencent"]
        ali(d)
        d["sms"].update(provider="outbox", providers=["aliyun", "tencent"], tencent=tencent_section)
        d["sms"]["aliyun"]["timeout_s"] = 0.3
    a = make_api(confdir, edit)
    yield a
    a.svc.close()


def test_failover_when_the_first_provider_is_down(both: Api, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> None:
    aliyun.set_down("refused")
    alert(both)
    assert aliyun.messages() == [] and sorted(m.phone for m in tencent.messages()) == CADRES
    assert {d.state for d in sms(both)} == {"sent"}
    assert {d.provider_id for d in sms(both)} == {m.serial_no for m in tencent.messages()}
    # Receipts of the provider that sent them, at its own path.
    items = tencent.receipts(tencent.deliver())
    assert both.client.post(f"/api/v1/sms/tencent/receipts/{TC_TOKEN}", json=items).status_code == 200
    assert {d.state for d in sms(both)} == {"delivered"}
    assert both.client.post(f"/api/v1/sms/tencent/receipts/{ALI_TOKEN}", json=items).status_code == 403


def test_failover_never_moves_a_per_number_answer(both: Api, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> None:
    aliyun.errors[LI[3:]] = "isv.BLACK_KEY_CONTROL_LIMIT"
    alert(both)
    assert sorted("+86" + m.phone for m in aliyun.messages()) == [ZHANG, WANG]
    assert tencent.messages() == []  # Li's answer is about Li: final, not tried at Tencent
    assert sms(both, LI)[0].state == "failed"


def test_failover_settles_an_unknown_outcome_with_the_query_api(both: Api, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> None:
    aliyun.slow_s = 0.6  # Aliyun takes the batch, but its answer comes after the 0.3 s timeout
    alert(both)
    assert sorted("+86" + m.phone for m in aliyun.messages()) == sorted(CADRES)
    assert aliyun.calls_of("QuerySendDetails")
    assert tencent.messages() == []  # found at Aliyun: never sent a second time elsewhere
    assert {d.state for d in sms(both)} == {"sent"}


# ------------------------------------------------------------------ receipts nobody pushed


def test_query_api_settles_receipts_that_never_came(ali_api: Api, aliyun: AliyunSmsDouble) -> None:
    from broadcaster.flows.receipt_poll import poll_receipts

    aliyun.clock = ali_api.clock.now  # the provider's days are the town's (fake) days
    alert(ali_api)
    aliyun.deliver(aliyun.messages(ZHANG))
    aliyun.deliver(aliyun.messages(LI), success=False, err_code="MK:0005")
    assert poll_receipts(ali_api.svc) == 0  # too early: a push normally comes within seconds
    assert not aliyun.calls_of("QuerySendDetails")
    ali_api.clock.advance(11 * 60)
    assert poll_receipts(ali_api.svc) == 2
    assert [sms(ali_api, p)[0].state for p in CADRES] == ["delivered", "failed", "sent"]
    assert "MK:0005" in sms(ali_api, LI)[0].last_error
    assert len(aliyun.calls_of("QuerySendDetails")) == 3  # each waiting number, by its BizId
    assert poll_receipts(ali_api.svc) == 0  # applied once; Wang is still waiting


def test_tencent_pull_settles_receipts_that_never_came(tc_api: Api, tencent: TencentSmsDouble) -> None:
    from broadcaster.flows.receipt_poll import poll_receipts

    alert(tc_api)
    tencent.deliver(tencent.messages(ZHANG))
    tc_api.clock.advance(11 * 60)
    assert poll_receipts(tc_api.svc) == 1
    assert [sms(tc_api, p)[0].state for p in CADRES] == ["delivered", "sent", "sent"]
    tencent.deliver(tencent.messages(WANG), success=False)
    assert poll_receipts(tc_api.svc) == 1 and sms(tc_api, WANG)[0].state == "failed"
    assert poll_receipts(tc_api.svc) == 0


def test_compose_page_shows_the_registered_template_and_what_is_read(ali_api: Api) -> None:
    from broadcaster.auth.accounts import Accounts
    from tests.test_console import browser, sign_in

    Accounts(ali_api.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    c = browser(ali_api)
    sign_in(c, "小李", "xiaoli-pass")
    j = c.get("/console/segments", params={"text": TEXT}).json()
    assert j["sms"] == {"template": "manual_sms", "registrations": [{"provider": "aliyun", "registration": "SMS_987654321"}],
                        "reads": f"【XX镇文化站】{TEXT}", "error": None}
    too_long = c.get("/console/segments", params={"text": "很" * 36}).json()["sms"]
    assert too_long["reads"] is None and "35" in too_long["error"]
    assert 'id="sms-template"' in c.get("/compose").text


def test_failover_moves_a_lost_request_on_when_the_query_api_does_not_find_it(
        both: Api, aliyun: AliyunSmsDouble, tencent: TencentSmsDouble) -> None:
    aliyun.faults.add("reset")  # the connection dies after the request was written, before Aliyun took it
    alert(both)
    assert aliyun.messages() == [] and aliyun.calls_of("QuerySendDetails")  # asked first ...
    assert sorted(m.phone for m in tencent.messages()) == CADRES  # ... then sent by Tencent, once
    assert {d.state for d in sms(both)} == {"sent"}
