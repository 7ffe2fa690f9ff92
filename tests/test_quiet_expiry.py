"""Quiet hours hold plays back (unless the level is high enough); offline speakers end expired."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.ledger import Delivery
from broadcaster.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local
from tests.test_agent_api import agent_directory


def speaker_rows(svc: Service) -> list[Delivery]:
    with svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.channel == "speaker").order_by(Delivery.id)))


@pytest.mark.parametrize("level,plays", [(4, 0), (5, 3)])
def test_quiet_hours_hold_plays_below_the_exception(confdir: Path, level: int, plays: int) -> None:
    def cfg(d: dict) -> None:
        d["feed"]["level"] = level
        d["schedule"]["quiet_hours"] = {"from": "19:00", "to": "06:30", "except_level_at_least": 5}
    edit_yaml(confdir / "broadcaster.yaml", cfg)
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 28, 16, 30)))
    try:
        report = svc.poll()
        assert report.plays == plays and len(speaker_rows(svc)) == plays
        if plays == 0:
            assert len(report.held) == 3 and all("quiet hours" in h for h in report.held)
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


def test_offline_agent_play_ends_expired_and_is_never_played(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent_directory(confdir, monkeypatch)
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    try:
        report = svc.poll()
        svc.dispatcher.drain([report.alert_id])
        agent_rows = [d for d in speaker_rows(svc) if d.kind == "agent"]
        assert len(agent_rows) == 2 and all(d.state == "pending" for d in agent_rows)
        clock.set(local(2026, 11, 28, 23, 0))  # the agents never called all evening
        svc.ledger.expire_due(clock.now())  # what the dispatcher's sweep does every second
        agent_rows = [d for d in speaker_rows(svc) if d.kind == "agent"]
        assert all(d.state == "expired" and d.played_at is None for d in agent_rows)
        # A late "failed"/"expired" report changes nothing; a "played" after expires_at is refused.
        late = clock.now()
        d0 = agent_rows[0]
        assert svc.ledger.report_play(d0.id, d0.target, "played", late, played_at=late) == "expired"
        # ...but an agent that played on time and reports late is believed.
        on_time = d0.play_at
        assert svc.ledger.report_play(d0.id, d0.target, "played", late, played_at=on_time) == "played"
    finally:
        svc.close()
