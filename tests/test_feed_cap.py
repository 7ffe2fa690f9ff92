"""The ``cap`` feed type (DESIGN A12) reads a provincial-style Atom feed of CAP 1.2 alerts over
HTTP: the 一氧化碳 warning gives tonight's level through severity (Severe -> 4, or the configured
``level_map``), an unrelated warning is ignored, linked-only entries are fetched, and our own
CAP messages read back to the level they were made from."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcaster import plugins
from broadcaster.feeds.base import SourceContext
from broadcaster.publish.cap import CapInput, cap_alert
from broadcaster.timeutil import FakeClock, Night
from tests.conftest import local
from tests.doubles.feed import FeedServer

TZ = ZoneInfo("Asia/Shanghai")
SAMPLE = (Path(__file__).parent / "cap" / "sample-province.xml").read_bytes()
NIGHT = Night(date(2026, 12, 12), TZ)


def source(url: str, **kw):  # type: ignore[no-untyped-def]
    cls = plugins.get("feeds", "cap")
    cfg = cls.Config.model_validate({"type": "cap", "url": url, **kw})
    return cls(cfg, SourceContext("东村镇", TZ, Path("."), FakeClock(local(2026, 12, 12, 16, 30))))


@pytest.fixture
def feed():  # type: ignore[no-untyped-def]
    with FeedServer() as srv:
        yield srv


def test_provincial_feed_gives_tonights_level(feed) -> None:  # type: ignore[no-untyped-def]
    feed.set("/cap.atom", SAMPLE, content_type="application/atom+xml")
    out = source(feed.url_for("/cap.atom")).tonight(NIGHT)
    assert out.error is None and out.reading is not None
    r = out.reading
    assert r.level == 4 and r.region == "东村镇"
    assert r.valid_from == local(2026, 12, 12, 18, 0) and r.valid_to == local(2026, 12, 13, 8, 0)
    assert r.source.startswith("cap: ") and r.advice


def test_level_map_and_areas(feed) -> None:  # type: ignore[no-untyped-def]
    feed.set("/cap.atom", SAMPLE, content_type="application/atom+xml")
    url = feed.url_for("/cap.atom")
    assert source(url, level_map={"Severe": 5}).tonight(NIGHT).reading.level == 5
    assert source(url, areas=["涞源县"]).tonight(NIGHT).reading.level == 4
    # A feed with nothing for our area is "no official warning", not an error.
    none = source(url, areas=["别的县"]).tonight(NIGHT)
    assert none.reading is None and none.error is None and none.note == "无官方预警"


def test_linked_entries_are_fetched_and_our_own_cap_reads_back(feed) -> None:  # type: ignore[no-untyped-def]
    msg = cap_alert(CapInput(identifier="co-1", sender="broadcaster@example.invalid", sent=local(2026, 12, 12, 16, 30),
                             level=5, level_name="极易发生", town="东村镇", expires=local(2026, 12, 13, 8, 0),
                             sender_name="东村镇", instruction="请开窗通风。", onset=local(2026, 12, 12, 20, 0)))
    feed.set("/alerts/co-1.xml", msg, content_type="application/cap+xml")
    atom = ('<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><id>x</id><title>t</title>'
            '<updated>2026-12-12T16:30:00+08:00</updated><entry><id>co-1</id><title>t</title>'
            '<updated>2026-12-12T16:30:00+08:00</updated>'
            '<link rel="alternate" type="application/cap+xml" href="alerts/co-1.xml"/></entry></feed>')
    feed.set("/feed.atom", atom.encode(), content_type="application/atom+xml")
    out = source(feed.url_for("/feed.atom")).tonight(NIGHT)
    assert out.reading is not None and out.reading.level == 5 and out.reading.advice == "请开窗通风。"
    assert feed.hits("/alerts/co-1.xml") == 1


def test_broken_feed_is_an_error_naming_the_source(feed) -> None:  # type: ignore[no-untyped-def]
    feed.set("/bad", b"<html>not cap</html>", content_type="text/html")
    out = source(feed.url_for("/bad")).tonight(NIGHT)
    assert out.reading is None and out.error and "neither a CAP alert" in out.error
