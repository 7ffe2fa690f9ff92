"""Feed fault table: each fault gives a logged reason, no crash, no alert; at the deadline the duty
group gets one SMS, not one per retry."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.flows.deadline import deadline_check
from tests.conftest import edit_yaml, local
from tests.doubles.faults import FaultPlan
from tests.doubles.feed import FeedServer

NOW = local(2026, 11, 28, 16, 30)


def doc(**forecast) -> dict:  # type: ignore[no-untyped-def]
    f = {"region": "XX镇", "valid_from": "2026-11-28T20:00:00+08:00", "valid_to": "2026-11-29T08:00:00+08:00",
         "level": 4, **forecast}
    return {"issued_at": "2026-11-28T16:00:00+08:00", "source": "XX县气象台", "forecasts": [f]}


FAULTS = {
    "timeout": (dict(body=doc(), delay_s=2.0), "timeout"),
    "http error": (dict(body=doc(), status=503), "HTTP 503"),
    "malformed JSON": (dict(body=b'{"issued_at": "2026-11-28T16:00'), "malformed JSON"),
    "wrong schema": (dict(body={"issued": "x", "items": []}), "wrong schema"),
    "out-of-range level": (dict(body=doc(level=7)), "out of range"),
    "stale reading": (dict(body={**doc(), "issued_at": "2026-11-26T06:00:00+08:00"}), "stale"),
    "missing region": (dict(body=doc(region="YY镇")), "region"),
    "empty forecast list": (dict(body={**doc(), "forecasts": []}), "empty forecast list"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_feed_fault(fault: str, confdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    kwargs, reason = FAULTS[fault]
    with FeedServer() as feed:
        feed.set("/co.json", **kwargs)
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            feed={"type": "http-json", "url": feed.url_for("/co.json"), "timeout_s": 0.5}))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
        try:
            with caplog.at_level(logging.WARNING):
                report = svc.poll()
            assert report.level is None and report.alert_id is None and not report.result.ok
            assert reason in report.result.errors()[0]
            assert any(reason in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
            with svc.ledger.reader() as s:
                from broadcaster.ledger import Alert

                assert s.query(Alert).count() == 0
        finally:
            svc.close()


def test_deadline_sms_goes_to_the_duty_group_once(confdir: Path) -> None:
    with FeedServer() as feed:
        feed.set("/co.json", body=doc(), status=500)
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            feed={"type": "http-json", "url": feed.url_for("/co.json"), "timeout_s": 0.5}))
        clock = FakeClock(NOW)
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
        try:
            for minute in (30, 45):  # the poll and its retries fail
                clock.set(local(2026, 11, 28, 16, minute))
                assert not svc.poll(kind="retry").result.ok
            clock.set(local(2026, 11, 28, 17, 30))
            first = deadline_check(svc)
            second = deadline_check(svc)  # a second check (another retry, a restart) sends nothing new
            assert first is not None and first == second
            svc.dispatcher.drain([first])
        finally:
            svc.close()
    lines = [json.loads(x) for x in (confdir.parent / "var/outbox/sms.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["to"] for x in lines] == ["+8618800188005"]  # 孙八, the only duty contact
    assert "截至17:30仍未取得" in lines[0]["body"]


def test_no_deadline_sms_when_a_reading_arrived(confdir: Path) -> None:
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    try:
        svc.poll(dry_run=False)
        assert deadline_check(svc) is None
    finally:
        svc.close()


def test_flaky_feed_recovers_on_retry(confdir: Path) -> None:
    with FeedServer(FaultPlan(script=[500])) as feed:
        feed.set("/co.json", body=doc())
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            feed={"type": "http-json", "url": feed.url_for("/co.json"), "timeout_s": 2}))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
        try:
            assert not svc.poll().result.ok
            again = svc.poll(kind="retry")
            assert again.level == 4 and again.created
        finally:
            svc.close()
