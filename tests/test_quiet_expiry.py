"""Quiet hours hold plays back (unless the level is high enough); offline speakers end expired.

The expiry tests run on SQLite and the local PostgreSQL (the ``ledger_url`` fixture), as the
issue requires of the kill, retry and expiry tests.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.ledger import Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble
from tests.test_agent_api import agent_directory
from tests.test_kill import SID, TOKEN


def speaker_rows(svc: Service) -> list[Delivery]:
    with svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.channel == "speaker").order_by(Delivery.id)))


@pytest.mark.parametrize("level,held", [(4, True), (5, False)])
def test_quiet_hours_hold_plays_below_the_exception(confdir: Path, level: int, held: bool) -> None:
    def cfg(d: dict) -> None:
        d["feed"]["level"] = level
        d["schedule"]["quiet_hours"] = {"from": "19:00", "to": "06:30", "except_level_at_least": 5}
    edit_yaml(confdir / "broadcaster.yaml", cfg)
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 28, 16, 30)))
    try:
        # One 19:30 play per endpoint of the shipped directory, whatever endpoints it lists.
        endpoints = len(svc.cfg.speakers)
        plays = 0 if held else endpoints
        report = svc.poll()
        assert report.plays == plays and len(speaker_rows(svc)) == plays
        if held:
            assert len(report.held) == endpoints and all("quiet hours" in h for h in report.held)
            assert report.sms == 3  # SMS are not held by quiet hours
        else:
            assert report.held == []
    finally:
        svc.close()


def test_a_past_time_in_quiet_hours_is_not_played_asap(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml",
              lambda d: d["schedule"].update(quiet_hours={"from": "21:30", "to": "06:30", "except_level_at_least": 5}))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 28, 22, 0)))
    try:
        report = svc.poll()
        assert report.plays == 0 and report.held
    finally:
        svc.close()


def sms_rows(svc: Service) -> list[Delivery]:
    with svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.channel == "sms").order_by(Delivery.id)))


def test_offline_agent_play_ends_expired_and_is_never_played(confdir: Path, ledger_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(database=ledger_url))
    agent_directory(confdir, monkeypatch)
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    try:
        report = svc.poll()
        svc.dispatcher.drain([report.alert_id])
        # The two agents agent_directory set up (not any endpoint the shipped directory adds).
        offline = ("dongcun-room", "xicun-room")
        agent_rows = [d for d in speaker_rows(svc) if d.target in offline]
        assert len(agent_rows) == 2 and all(d.state == "pending" for d in agent_rows)
        clock.set(local(2026, 11, 28, 23, 0))  # the agents never called all evening
        svc.ledger.deliveries.expire_due(clock.now())  # what the dispatcher's sweep does every second
        agent_rows = [d for d in speaker_rows(svc) if d.target in offline]
        assert all(d.state == "expired" and d.played_at is None for d in agent_rows)
        # A late "failed"/"expired" report changes nothing; a "played" after expires_at is refused.
        late = clock.now()
        d0 = agent_rows[0]
        assert svc.ledger.deliveries.report(d0.id, d0.target, "played", late, played_at=late) == "expired"
        # ...but an agent that played on time and reports late is believed.
        on_time = d0.play_at
        assert svc.ledger.deliveries.report(d0.id, d0.target, "played", late, played_at=on_time) == "played"
    finally:
        svc.close()


@pytest.mark.timeout(60)
def test_sms_unsent_at_expiry_ends_expired(confdir: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Twilio answers 500 all evening: each SMS is retried, then ends ``expired`` at the end of the
    night with its last error kept, and nothing is sent after that."""
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=FaultPlan(p500=1.0)) as tw:
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            database=ledger_url,
            sms={"provider": "twilio", "rate_per_s": 100,
                 "twilio": {"account_sid": SID, "auth_token": "${TWILIO_AUTH_TOKEN}", "from": "+15005550006",
                            "base_url": tw.url}}))
        clock = FakeClock(local(2026, 11, 28, 16, 30))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
        try:
            report = svc.poll()
            assert report.sms == 3
            # The evening goes by: every retry that comes due is tried and fails again.
            evening = [local(2026, 11, 28, h, 30) for h in (16, 18, 20, 23)] + [local(2026, 11, 29, h) for h in (2, 5, 7)]
            for when in evening:
                clock.set(when)
                assert svc.dispatcher.drain([report.alert_id], timeout=10)
            rows = sms_rows(svc)
            assert [r.state for r in rows] == ["pending"] * 3
            assert all(r.attempts >= 3 and "500" in (r.last_error or "") for r in rows), rows
            night_end = rows[0].expires_at
            assert night_end == local(2026, 11, 29, 8, 0)  # an SMS expires when the night it warns about ends
            tried = len(tw.requests)
            # The morning after: the dispatcher's expiry sweep (every second) expires them, nothing is sent.
            clock.set(local(2026, 11, 29, 8, 1))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(r.state == "pending" for r in sms_rows(svc)):
                svc.dispatcher.step()
                time.sleep(0.1)
            rows = sms_rows(svc)
            assert [r.state for r in rows] == ["expired"] * 3
            assert all("500" in (r.last_error or "") and r.sent_at is None for r in rows)
            assert len(tw.requests) == tried and tw.accepted() == []
            assert svc.ledger.reads.counts([report.alert_id])["sms"] == {"expired": 3}
        finally:
            svc.close()
