"""CAP 1.2: our alerts as OASIS CAP messages, their Atom feed, and a reader for others' CAP.

Contract (DESIGN A12): language zh-CN, categories Met and Health, event 一氧化碳中毒气象条件, severity
by level (:mod:`broadcaster.publish.levels`), urgency Expected, certainty Likely, ``expires`` at the
night's end, area the town; times with a ±hh:mm offset, never ``Z``, never fractions; an
escalation is msgType Update with ``references`` to the earlier alert. Every message this module
writes validates against the OASIS XSD (tests/cap/CAP-v1.2.xsd).

The reader (:func:`parse_cap`, in :mod:`broadcaster.publish.cap_read`) is re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from lxml import etree
from lxml.builder import ElementMaker

from broadcaster.publish import levels
from broadcaster.publish.cap_read import (
    CapReading,
    CapReadings,
    parse_cap,
)

__all__ = [
    "ATOM_NS", "CAP_NS", "EVENT", "CapFeedEntry", "CapInput", "CapReading", "CapReadings",
    "CapRef", "cap_alert", "cap_atom_feed", "cap_time", "parse_cap",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM_NS = "http://www.w3.org/2005/Atom"
CAP_MEDIA_TYPE = "application/cap+xml"
EVENT = "一氧化碳中毒气象条件"
# The level number itself travels as a parameter (as the provincial observatories do), because
# severity alone cannot tell level 1 from level 2.
LEVEL_PARAMETER = "一氧化碳中毒气象条件等级"
GEOCODE_NAME = "GB/T2260"
FEED_DAYS = 30

# CAP 1.2 §3.2.1: identifier and sender must not contain spaces, commas or restricted characters.
_CAP_TOKEN = re.compile(r"^[^\s,<&]+$")
_CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")


def cap_time(dt: datetime) -> str:
    """``2026-12-01T20:00:00+08:00``: seconds, numeric offset, ``-00:00`` for UTC (CAP §3.3.2)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"CAP times must be timezone-aware, got {dt!r}")
    text = dt.replace(microsecond=0).isoformat()
    if dt.utcoffset() == timedelta(0):
        text = text[:-6] + "-00:00"
    if not _CAP_TIME.match(text):
        # Only offsets with seconds (historic LMT zones) end up here; CAP cannot express them.
        raise ValueError(f"offset of {dt!r} is not whole minutes")
    return text


@dataclass(frozen=True)
class CapRef:
    """An earlier message, as CAP ``references`` names it: ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: datetime

    def __str__(self) -> str:
        return f"{self.sender},{self.identifier},{cap_time(self.sent)}"


@dataclass(frozen=True)
class CapInput:
    """One automatic alert for one town and night. Datetimes are aware, in the town's zone.

    ``references`` non-empty makes it an Update (an escalation of those alerts). ``headline`` and
    ``description`` are composed from the level and town when left empty; ``instruction`` is the
    advice. ``geocode`` is the town's GB/T 2260 administrative code, when configured.
    """

    identifier: str
    sender: str
    sent: datetime
    level: int
    level_name: str
    town: str
    expires: datetime
    sender_name: str
    instruction: str
    headline: str = ""
    description: str = ""
    onset: datetime | None = None
    effective: datetime | None = None
    web: str | None = None
    contact: str | None = None
    geocode: str | None = None
    references: tuple[CapRef, ...] = ()
    status: str = "Actual"


def _headline(a: CapInput) -> str:
    if a.headline:
        return a.headline
    # "东村镇人民政府发布一氧化碳中毒气象预警[4级/容易发生]", naming the town once.
    where = "" if a.town in a.sender_name else a.town
    return f"{a.sender_name}发布{where}一氧化碳中毒气象预警[{a.level}级/{a.level_name}]"


def _description(a: CapInput) -> str:
    if a.description:
        return a.description
    start = a.onset or a.effective or a.sent
    end = a.expires
    return (
        f"预计{start.month}月{start.day}日{start.hour}时至{end.month}月{end.day}日{end.hour}时，"
        f"{a.town}一氧化碳中毒气象条件等级为{a.level}级（{a.level_name}），"
        "请使用煤炉、炭火取暖的家庭注意通风，防范一氧化碳（煤气）中毒。"
    )


def cap_alert(a: CapInput) -> bytes:
    """The CAP 1.2 message for ``a``, UTF-8 with an XML declaration.

    Raises ``ValueError`` for an identifier or sender CAP cannot carry, naive datetimes, a level
    outside 1..5 or ``expires`` not after ``sent``.
    """
    for name in ("identifier", "sender"):
        if not _CAP_TOKEN.match(getattr(a, name)):
            raise ValueError(f"CAP {name} must not be empty or contain spaces, ',', '<' or '&'")
    for ref in a.references:
        if not (_CAP_TOKEN.match(ref.sender) and _CAP_TOKEN.match(ref.identifier)):
            raise ValueError(f"CAP reference {ref!r} has spaces, ',', '<' or '&'")
    if a.expires <= a.sent:
        raise ValueError("CAP expires must be after sent")
    facts = levels.facts(a.level)
    E = ElementMaker(namespace=CAP_NS, nsmap={None: CAP_NS})

    info = E.info(
        E.language("zh-CN"),
        E.category("Met"),
        E.category("Health"),
        E.event(EVENT),
        E.urgency(facts.urgency),
        E.severity(facts.severity),
        E.certainty(facts.certainty),
    )
    if a.effective is not None:
        info.append(E.effective(cap_time(a.effective)))
    if a.onset is not None:
        info.append(E.onset(cap_time(a.onset)))
    info.append(E.expires(cap_time(a.expires)))
    info.append(E.senderName(a.sender_name))
    info.append(E.headline(_headline(a)))
    info.append(E.description(_description(a)))
    info.append(E.instruction(a.instruction))
    if a.web:
        info.append(E.web(a.web))
    if a.contact:
        info.append(E.contact(a.contact))
    info.append(E.parameter(E.valueName(LEVEL_PARAMETER), E.value(str(a.level))))
    area = E.area(E.areaDesc(a.town))
    if a.geocode:
        area.append(E.geocode(E.valueName(GEOCODE_NAME), E.value(a.geocode)))
    info.append(area)

    alert = E.alert(
        E.identifier(a.identifier),
        E.sender(a.sender),
        E.sent(cap_time(a.sent)),
        E.status(a.status),
        E.msgType("Update" if a.references else "Alert"),
        E.scope("Public"),
    )
    if a.references:
        alert.append(E.references(" ".join(str(r) for r in a.references)))
    alert.append(info)
    return etree.tostring(alert, xml_declaration=True, encoding="UTF-8", pretty_print=True)


@dataclass(frozen=True)
class CapFeedEntry:
    """One alert in the Atom feed: its CAP message's URL, headline and sent time."""

    url: str
    title: str
    updated: datetime
    summary: str = ""
    page_url: str | None = None  # the public page, as a text/html alternate


def cap_atom_feed(entries: Iterable[CapFeedEntry], feed_url: str, title: str,
                  updated: datetime, *, author: str | None = None,
                  days: int = FEED_DAYS) -> bytes:
    """An Atom 1.0 feed of the alerts of the last ``days`` days before ``updated``, newest first.

    Each entry links to its message with ``rel="alternate" type="application/cap+xml"`` (the
    OASIS CAP feed convention) and uses that URL as its id.
    """
    since = updated - timedelta(days=days)
    kept = sorted((e for e in entries if e.updated >= since), key=lambda e: e.updated,
                  reverse=True)
    A = ElementMaker(namespace=ATOM_NS, nsmap={None: ATOM_NS})
    feed = A.feed(
        A.id(feed_url),
        A.title(title),
        A.updated(cap_time(updated)),
        A.author(A.name(author or title)),
        A.link(rel="self", type="application/atom+xml", href=feed_url),
    )
    feed.set("{http://www.w3.org/XML/1998/namespace}lang", "zh-CN")
    for e in kept:
        entry = A.entry(
            A.id(e.url),
            A.title(e.title),
            A.updated(cap_time(e.updated)),
            A.link(rel="alternate", type=CAP_MEDIA_TYPE, href=e.url),
        )
        if e.page_url:
            entry.append(A.link(rel="alternate", type="text/html", href=e.page_url))
        if e.summary:
            entry.append(A.summary(e.summary))
        feed.append(entry)
    return etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
