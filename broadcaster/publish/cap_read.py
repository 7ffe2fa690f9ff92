"""Reading CAP from a provincial or national warning feed (``feed.type: cap``).

Accepts one CAP alert (1.2, or 1.1 which has the same fields used here), an Atom feed whose
entries carry alerts inline and/or link to them, or an RSS 2.0 feed doing the same. Each ``info``
whose event matches becomes a :class:`CapReading`; linked alerts are returned as URLs for the
feed source to fetch and pass back here.

The input is untrusted: it is size-limited, parsed without entity expansion, network access or
huge-tree mode, and any document with a DTD is refused (that is where billion-laughs and external
entities live, and CAP never needs one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from broadcaster.errors import FeedError
from broadcaster.publish import levels

CAP_NAMESPACES = ("urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1")
_ATOM = "{http://www.w3.org/2005/Atom}"
MAX_BYTES = 2_000_000   # a provincial feed of a month is a few hundred kB
SOURCE = "cap"


@dataclass(frozen=True)
class CapReading:
    """One matching ``info`` of one alert. Datetimes are aware.

    ``level`` comes from ``severity`` through the level map (``None`` for Unknown); ``effective``
    falls back to ``sent`` as CAP prescribes; ``url`` is the entry's link when read from a feed.
    """

    identifier: str
    sender: str
    sent: datetime
    status: str
    msg_type: str
    references: tuple[str, ...]
    language: str
    event: str
    urgency: str
    severity: str
    certainty: str
    level: int | None
    effective: datetime
    onset: datetime | None
    expires: datetime | None
    sender_name: str
    headline: str
    description: str
    instruction: str
    web: str
    areas: tuple[str, ...]
    geocodes: tuple[tuple[str, str], ...]
    parameters: tuple[tuple[str, str], ...]
    url: str | None = None

    @property
    def area_desc(self) -> str:
        """All ``areaDesc`` of the info joined with 、."""
        return "、".join(self.areas)


class CapReadings(list[CapReading]):
    """The readings (a plain list), plus ``links``: URLs of alerts a feed only links to, to be
    fetched and parsed in turn, and ``skipped``: why unreadable alerts in a feed were left out."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.skipped: list[str] = []


class _Bad(Exception):
    """One alert is unreadable; in a feed it is skipped, alone it fails the read."""


def _parse_xml(data: bytes, max_bytes: int) -> etree._Element:
    if not isinstance(data, bytes):
        raise TypeError("parse_cap takes bytes")
    if len(data) > max_bytes:
        raise FeedError(SOURCE, f"document is {len(data)} bytes, more than the limit {max_bytes}")
    # Refuse before parsing at all; the docinfo check below catches encodings this one misses.
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise FeedError(SOURCE, "documents with a DTD are refused")
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False,
        dtd_validation=False, remove_comments=True, remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise FeedError(SOURCE, f"not well-formed XML: {exc}") from exc
    if root.getroottree().docinfo.doctype or root.getroottree().docinfo.internalDTD is not None:
        raise FeedError(SOURCE, "documents with a DTD are refused")
    return root


def _ns(el: etree._Element) -> str | None:
    qn = etree.QName(el)
    return qn.namespace if qn.localname == "alert" and qn.namespace in CAP_NAMESPACES else None


def _text(el: etree._Element, ns: str, name: str) -> str:
    return (el.findtext(f"{{{ns}}}{name}") or "").strip()


def _time(text: str, what: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise _Bad(f"{what} {text!r} is not an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise _Bad(f"{what} {text!r} has no offset")
    return dt


def _opt_time(el: etree._Element, ns: str, name: str) -> datetime | None:
    text = _text(el, ns, name)
    return _time(text, name) if text else None


def _pairs(el: etree._Element, ns: str, tag: str) -> tuple[tuple[str, str], ...]:
    return tuple((_text(p, ns, "valueName"), _text(p, ns, "value"))
                 for p in el.iterfind(f"{{{ns}}}{tag}"))


def _read_alert(alert: etree._Element, event_match: str, level_map: Mapping[str, int] | None,
                statuses: tuple[str, ...], url: str | None) -> list[CapReading]:
    ns = _ns(alert)
    assert ns is not None
    identifier, sender = _text(alert, ns, "identifier"), _text(alert, ns, "sender")
    sent_text = _text(alert, ns, "sent")
    if not (identifier and sender and sent_text):
        raise _Bad("alert without identifier, sender or sent")
    sent = _time(sent_text, "sent")
    status = _text(alert, ns, "status")
    if status not in statuses:
        return []  # Test, Exercise, Draft and System messages must not warn anyone
    out = []
    wanted = event_match.casefold()
    for info in alert.iterfind(f"{{{ns}}}info"):
        event = _text(info, ns, "event")
        if wanted not in event.casefold():
            continue
        severity = _text(info, ns, "severity")
        areas = info.findall(f"{{{ns}}}area")
        out.append(CapReading(
            identifier=identifier,
            sender=sender,
            sent=sent,
            status=status,
            msg_type=_text(alert, ns, "msgType"),
            references=tuple(_text(alert, ns, "references").split()),
            language=_text(info, ns, "language") or "en-US",  # CAP's default language
            event=event,
            urgency=_text(info, ns, "urgency"),
            severity=severity,
            certainty=_text(info, ns, "certainty"),
            level=levels.level_for_severity(severity, level_map),
            effective=_opt_time(info, ns, "effective") or sent,
            onset=_opt_time(info, ns, "onset"),
            expires=_opt_time(info, ns, "expires"),
            sender_name=_text(info, ns, "senderName"),
            headline=_text(info, ns, "headline"),
            description=_text(info, ns, "description"),
            instruction=_text(info, ns, "instruction"),
            web=_text(info, ns, "web"),
            areas=tuple(t for a in areas if (t := _text(a, ns, "areaDesc"))),
            geocodes=tuple(g for a in areas for g in _pairs(a, ns, "geocode")),
            parameters=_pairs(info, ns, "parameter"),
            url=url,
        ))
    return out


def _inline_alert(item: etree._Element, max_bytes: int) -> etree._Element | None:
    """The alert an entry carries: as child elements, or as escaped XML text."""
    for el in item.iter():
        if _ns(el):
            return el
    content = item.find(f"{_ATOM}content")
    text = (content.text or "").strip() if content is not None else ""
    if text.startswith("<"):
        try:
            root = _parse_xml(text.encode("utf-8"), max_bytes)
        except FeedError:
            return None
        return root if _ns(root) else None
    return None


def _cap_link(item: etree._Element) -> str | None:
    """The entry's link to its CAP message: typed application/cap+xml, else an alternate .xml."""
    links = item.findall(f"{_ATOM}link")
    for link in links:
        if link.get("type") == "application/cap+xml" and link.get("href"):
            return link.get("href")
    for link in links:
        href = link.get("href") or ""
        if link.get("rel", "alternate") == "alternate" and href.endswith(".xml"):
            return href
    rss_link = (item.findtext("link") or "").strip()  # RSS 2.0 <item><link>
    return rss_link or None


def parse_cap(data: bytes, event_match: str = "一氧化碳", level_map: Mapping[str, int] | None = None,
              *, max_bytes: int = MAX_BYTES, statuses: tuple[str, ...] = ("Actual",)
              ) -> CapReadings:
    """Read CAP from ``data``: every ``info`` whose event contains ``event_match``.

    ``level_map`` overrides the severity → level defaults of :mod:`levels`. Only alerts whose
    status is in ``statuses`` count. Raises :class:`FeedError` for an oversized, malformed or
    DTD-carrying document, a document that is neither CAP nor a feed, or a lone unreadable alert.
    Links are returned as written (possibly relative to the feed's URL).
    """
    root = _parse_xml(data, max_bytes)
    result = CapReadings()
    if _ns(root):
        try:
            result.extend(_read_alert(root, event_match, level_map, statuses, None))
        except _Bad as exc:
            raise FeedError(SOURCE, str(exc)) from exc
        return result
    if root.tag == f"{_ATOM}feed":
        items = root.findall(f"{_ATOM}entry")
    elif root.tag == "rss":
        items = root.findall("channel/item")
    else:
        raise FeedError(SOURCE, f"neither a CAP alert nor an Atom or RSS feed: <{root.tag}>")
    for item in items:
        link = _cap_link(item)
        alert = _inline_alert(item, max_bytes)
        if alert is None:
            if link:
                result.links.append(link)
            continue
        try:
            result.extend(_read_alert(alert, event_match, level_map, statuses, link))
        except _Bad as exc:
            result.skipped.append(f"{link or 'entry'}: {exc}")
    return result
