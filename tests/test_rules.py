"""Rules are pure: tables of (level, time) -> what is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.rules import decide
from broadcaster.timeutil import Night
from tests.conftest import TZ, edit_yaml, local

NIGHT = Night(local(2026, 11, 28).date(), TZ)


@pytest.fixture
def cfg(confdir: Path):  # type: ignore[no-untyped-def]
    return load_config(confdir / "broadcaster.yaml")


@pytest.mark.parametrize(
    ("level", "sms", "plays", "fired"),
    [
        (1, 0, 0, []),
        (2, 0, 0, []),
        (3, 3, 3, ["warn"]),
        (4, 3, 3, ["warn"]),
        (5, 6, 3, ["warn", "severe"]),  # cadres once, plus vulnerable and duty
    ],
)
def test_levels(cfg, level: int, sms: int, plays: int, fired: list[str]) -> None:  # type: ignore[no-untyped-def]
    d = decide(cfg, level, NIGHT, local(2026, 11, 28, 12))
    assert (len(d.sms), len(d.plays), d.fired) == (sms, plays, fired)
    assert len({p.phone for p in d.sms}) == len(d.sms)  # at most one SMS per contact


def test_template_values(cfg) -> None:  # type: ignore[no-untyped-def]
    d = decide(cfg, 4, NIGHT, local(2026, 11, 28, 12))
    assert d.sms[0].body.startswith("【XX镇文化站】11月28日夜间一氧化碳中毒气象条件4级（容易发生）")
    assert d.plays[0].text and "一氧化碳中毒气象条件4级，容易发生" in d.plays[0].text


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 11, 28, 12), ["19:30"]),  # ahead of time: as configured
        (local(2026, 11, 28, 21, 5), ["21:05"]),  # past: one play as soon as possible
        (local(2026, 11, 29, 3, 0), ["03:00"]),  # night still under way
        (local(2026, 11, 29, 8, 30), []),  # the night is over
    ],
)
def test_play_times(cfg, now, expected) -> None:  # type: ignore[no-untyped-def]
    d = decide(cfg, 4, NIGHT, now)
    assert sorted({p.play_at.astimezone(TZ).strftime("%H:%M") for p in d.plays}) == expected


def test_two_past_times_collapse_into_one_play(confdir: Path) -> None:
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0]["speakers"].update(at=["17:30", "19:30", "20:30"]))
    cfg = load_config(confdir / "broadcaster.yaml")
    d = decide(cfg, 4, NIGHT, local(2026, 11, 28, 20))
    per_speaker = sorted(p.play_at.astimezone(TZ).strftime("%H:%M") for p in d.plays if p.speaker_id == "dongcun-dir")
    assert per_speaker == ["20:00", "20:30"]


def test_quiet_hours_hold_back_unless_level_is_high(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(
        quiet_hours={"from": "21:30", "to": "06:30", "except_level_at_least": 5}))
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0]["speakers"].update(at=["19:30", "22:00"]))
    cfg = load_config(confdir / "broadcaster.yaml")
    d4 = decide(cfg, 4, NIGHT, local(2026, 11, 28, 12))
    assert {p.play_at.astimezone(TZ).strftime("%H:%M") for p in d4.plays} == {"19:30"}
    assert any("22:00" in h and "quiet hours" in h for h in d4.held)
    d5 = decide(cfg, 5, NIGHT, local(2026, 11, 28, 12))
    assert {p.play_at.astimezone(TZ).strftime("%H:%M") for p in d5.plays} == {"19:30", "22:00"}


def test_conditions_weekdays_and_months(confdir: Path) -> None:
    edit_yaml(confdir / "rules.yaml", lambda d: d["rules"][0]["when"].update(weekdays=[6], months=[11, 12]))
    cfg = load_config(confdir / "broadcaster.yaml")
    assert decide(cfg, 4, NIGHT, local(2026, 11, 28, 12)).fired == ["warn"]  # a Saturday in November
    sunday = Night(local(2026, 11, 29).date(), TZ)
    assert decide(cfg, 4, sunday, local(2026, 11, 29, 12)).fired == []


def test_unreachable_numbers_are_skipped_with_reason(cfg) -> None:  # type: ignore[no-untyped-def]
    d = decide(cfg, 4, NIGHT, local(2026, 11, 28, 12), unreachable={"+8613800138000": "21610 unsubscribed"})
    assert "+8613800138000" not in {p.phone for p in d.sms}
    assert any("张三" in h and "21610" in h for h in d.held)
