"""The ``xixun`` display type against a loopback RealtimeServer double (reference §5.1): the
warning becomes a PlayXixunTask in the level's colour between ``from`` and ``until``; a player's
error answered with HTTP 200 is still a failure; an offline card is retried; withdrawing a
superseded warning never clears the one that replaced it."""

from __future__ import annotations

import pytest

from broadcaster.channels.displays import DisplayJob
from broadcaster.channels.displays.xixun import XixunConfig, XixunDisplay
from broadcaster.errors import PermanentError, TransientError
from tests.conftest import local
from tests.doubles.display_vendor import XixunRealtimeDouble

CARD = "y10-c14-00140"


def job(delivery_id: int = 7, level: int = 4, colour: str = "#EF6C00") -> DisplayJob:
    return DisplayJob(delivery_id=delivery_id, display_id="dongcun-led", village_id="dongcun",
                      text=f"一氧化碳中毒{level}级 请开窗通风", level=level, colour=colour,
                      start=local(2026, 11, 28, 17, 0), until=local(2026, 11, 29, 8, 0), image_url=None)


def screen(double: XixunRealtimeDouble, card: str = CARD, auth: str | None = "rt-secret") -> XixunDisplay:
    return XixunDisplay(XixunConfig(id="dongcun-led", type="xixun", server=double.url, card_id=card, auth=auth))


def test_warning_is_shown_in_the_levels_colour_until_morning() -> None:
    with XixunRealtimeDouble((CARD,), auth="rt-secret") as rt:
        assert screen(rt).send(job()).provider_id == "co-7"
        prog = rt.screens[CARD]
        assert prog is not None and prog.task_name == "co-7"
        assert prog.texts == ["一氧化碳中毒4级 请开窗通风"]
        assert "color:#EF6C00" in prog.command["task"]["items"][0]["_program"]["layers"][0]["sources"][0]["html"]
        assert prog.schedules[0]["startTime"] == "17:00" and prog.schedules[0]["endTime"] == "08:00"
        with pytest.raises(PermanentError):
            screen(rt, auth="wrong").send(job())


def test_player_error_is_a_failure_and_an_offline_card_is_retried() -> None:
    with XixunRealtimeDouble((CARD,), auth="rt-secret") as rt:
        rt.fail_next(CARD, "player_error", "no space left")
        with pytest.raises(PermanentError, match="no space left"):
            screen(rt).send(job())
        rt.fail_next(CARD, "timeout")
        with pytest.raises(TransientError):
            screen(rt).send(job())
        with pytest.raises(TransientError, match="does not exist"):
            screen(rt, card="offline-card").send(job())
        assert rt.screens[CARD] is None


def test_withdrawing_a_superseded_warning_keeps_its_successor() -> None:
    with XixunRealtimeDouble((CARD,), auth="rt-secret") as rt:
        s = screen(rt)
        s.send(job(7))
        s.send(job(8, level=5, colour="#C62828"))  # the escalation is shown before the old one is withdrawn
        s.withdraw(job(7))
        assert rt.screens[CARD] is not None and rt.screens[CARD].task_name == "co-8"
        s.withdraw(job(8))
        assert rt.screens[CARD] is None
