"""CAP 1.2 (DESIGN A12): every alert kind validates against the OASIS XSD; Atom feed; reader."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from broadcaster.errors import FeedError
from broadcaster.publish import levels
from broadcaster.publish.cap import (
    ATOM_NS,
    CAP_NS,
    EVENT,
    CapFeedEntry,
    CapInput,
    CapRef,
    cap_alert,
    cap_atom_feed,
    cap_time,
    parse_cap,
)

HERE = Path(__file__).parent / "cap"
TZ = ZoneInfo("Asia/Shanghai")
SENT = datetime(2026, 12, 1, 16, 30, 5, 123456, tzinfo=TZ)
ADVICE = "睡前检查烟道是否通畅，门窗留缝通风；不要在密闭室内使用炭火盆；出现头痛、头晕时立即开窗并拨打120。"
SENDER = "cap.dongcun.example.org"
C = {"cap": CAP_NS}


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(HERE / "CAP-v1.2.xsd")))


def alert_input(level: int = 4, **kw) -> CapInput:
    base = dict(
        identifier=f"dongcun-20261201-{level}", sender=SENDER, sent=SENT, level=level,
        level_name=levels.level_name(level), town="东村镇",
        onset=datetime(2026, 12, 1, 20, 0, tzinfo=TZ),
        expires=datetime(2026, 12, 2, 8, 0, tzinfo=TZ),
        sender_name="东村镇人民政府", instruction=ADVICE,
        web="https://dongcun.example.org/public", geocode="130630",
    )
    base.update(kw)
    return CapInput(**base)


def validate(schema: etree.XMLSchema, data: bytes) -> etree._Element:
    doc = etree.fromstring(data)
    assert schema.validate(doc), schema.error_log
    return doc


def all_times(doc: etree._Element) -> list[str]:
    names = ("sent", "effective", "onset", "expires")
    return [el.text for el in doc.iter() if etree.QName(el).localname in names]


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_alert_of_every_level_validates(schema, level):
    doc = validate(schema, cap_alert(alert_input(level)))
    assert doc.findtext("cap:msgType", namespaces=C) == "Alert"
    assert doc.findtext("cap:status", namespaces=C) == "Actual"
    assert doc.findtext("cap:scope", namespaces=C) == "Public"
    assert doc.find("cap:references", namespaces=C) is None
    info = doc.find("cap:info", namespaces=C)
    assert info.findtext("cap:language", namespaces=C) == "zh-CN"
    assert [c.text for c in info.findall("cap:category", namespaces=C)] == ["Met", "Health"]
    assert info.findtext("cap:event", namespaces=C) == EVENT == "一氧化碳中毒气象条件"
    assert info.findtext("cap:urgency", namespaces=C) == "Expected"
    assert info.findtext("cap:certainty", namespaces=C) == "Likely"
    expected = {1: "Minor", 2: "Minor", 3: "Moderate", 4: "Severe", 5: "Extreme"}[level]
    assert info.findtext("cap:severity", namespaces=C) == expected
    assert info.findtext("cap:expires", namespaces=C) == "2026-12-02T08:00:00+08:00"
    assert info.findtext("cap:instruction", namespaces=C) == ADVICE
    assert info.findtext("cap:area/cap:areaDesc", namespaces=C) == "东村镇"
    assert info.findtext("cap:area/cap:geocode/cap:value", namespaces=C) == "130630"
    assert f"[{level}级/{levels.level_name(level)}]" in info.findtext("cap:headline", namespaces=C)
    assert "一氧化碳" in info.findtext("cap:description", namespaces=C)


def test_times_have_offsets_and_no_z_or_fractions(schema):
    doc = validate(schema, cap_alert(alert_input(effective=SENT)))
    times = all_times(doc)
    assert len(times) == 4
    for t in times:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", t), t
    assert doc.findtext("cap:sent", namespaces=C) == "2026-12-01T16:30:05+08:00"
    # UTC is written -00:00 (CAP 1.2 §3.3.2), never Z.
    utc = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)
    assert cap_time(utc) == "2026-12-01T08:30:00-00:00"
    with pytest.raises(ValueError):
        cap_time(datetime(2026, 12, 1, 8, 30))


def test_escalation_is_an_update_with_references(schema):
    earlier = CapRef(SENDER, "dongcun-20261201-3", SENT)
    a = alert_input(5, identifier="dongcun-20261201-5", sent=SENT + timedelta(hours=2),
                    references=(earlier,))
    doc = validate(schema, cap_alert(a))
    assert doc.findtext("cap:msgType", namespaces=C) == "Update"
    assert doc.findtext("cap:references", namespaces=C) == (
        f"{SENDER},dongcun-20261201-3,2026-12-01T16:30:05+08:00")


def test_minimal_alert_without_optional_fields_validates(schema):
    a = alert_input(3, onset=None, web=None, geocode=None, contact=None)
    validate(schema, cap_alert(a))
    a = alert_input(3, contact="12345", headline="自定义标题", description="自定义描述")
    doc = validate(schema, cap_alert(a))
    assert doc.findtext("cap:info/cap:headline", namespaces=C) == "自定义标题"


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        cap_alert(alert_input(identifier="has space"))
    with pytest.raises(ValueError):
        cap_alert(alert_input(sender="a,b"))
    with pytest.raises(ValueError):
        cap_alert(alert_input(level=6))
    with pytest.raises(ValueError):
        cap_alert(alert_input(expires=SENT - timedelta(hours=1)))


def test_atom_feed_lists_the_last_30_days_with_links_to_messages():
    now = datetime(2026, 12, 20, 17, 0, tzinfo=TZ)
    base = "https://dongcun.example.org/public/cap"
    entries = [
        CapFeedEntry(f"{base}/{n}.xml", f"东村镇一氧化碳中毒气象预警{n}", now - timedelta(days=d),
                     summary="门窗留缝通风", page_url="https://dongcun.example.org/public")
        for n, d in [(1, 40), (2, 29), (3, 1), (4, 0)]
    ]
    data = cap_atom_feed(entries, f"{base}.atom", "东村镇一氧化碳中毒气象预警", now)
    feed = etree.fromstring(data)  # well-formed
    A = {"a": ATOM_NS}
    assert feed.tag == f"{{{ATOM_NS}}}feed"
    assert feed.findtext("a:id", namespaces=A) == f"{base}.atom"
    assert feed.findtext("a:updated", namespaces=A) == "2026-12-20T17:00:00+08:00"
    assert feed.find("a:author/a:name", namespaces=A) is not None
    got = feed.findall("a:entry", namespaces=A)
    hrefs = [e.find("a:link[@type='application/cap+xml']", namespaces=A) for e in got]
    assert [h.get("href") for h in hrefs] == [f"{base}/4.xml", f"{base}/3.xml", f"{base}/2.xml"]
    assert all(h.get("rel") == "alternate" for h in hrefs)
    for e in got:
        assert e.findtext("a:id", namespaces=A) and e.findtext("a:title", namespaces=A)
        assert "Z" not in e.findtext("a:updated", namespaces=A)
    # Our own feed read back: no inline alerts, so every entry is a link to fetch.
    readings = parse_cap(data)
    assert list(readings) == [] and readings.links == [h.get("href") for h in hrefs]


def test_reads_the_provincial_feed():
    readings = parse_cap((HERE / "sample-province.xml").read_bytes(), event_match="一氧化碳")
    assert len(readings) == 1 and readings.links == [] and readings.skipped == []
    r = readings[0]
    assert r.event == "一氧化碳中毒气象条件" and r.severity == "Severe" and r.level == 4
    assert r.identifier == "13000041600000_20261212160512"
    assert r.sender == "Hebei_Meteorological_Observatory" and r.sender_name == "河北省气象台"
    assert r.sent == datetime(2026, 12, 12, 16, 5, 12, tzinfo=TZ)
    assert r.onset == datetime(2026, 12, 12, 18, 0, tzinfo=TZ)
    assert r.expires == datetime(2026, 12, 13, 8, 0, tzinfo=TZ)
    assert r.effective.utcoffset() == timedelta(hours=8)
    assert r.area_desc == "涞源县、阜平县"
    assert r.headline.startswith("河北省气象台发布一氧化碳")
    assert r.instruction.startswith("1.使用煤炉取暖")
    assert r.url.endswith("13000041600000_20261212160512.xml")
    assert ("一氧化碳中毒气象条件等级", "4") in r.parameters
    # The gale update is ignored; asked for it, it is read, its Minor mapped by the level map.
    gale = parse_cap((HERE / "sample-province.xml").read_bytes(), "大风", {"Minor": 1})
    assert [(g.event, g.level, g.msg_type) for g in gale] == [("大风", 1, "Update")]


def test_round_trip_of_our_own_alert():
    earlier = CapRef(SENDER, "dongcun-20261201-3", SENT)
    a = alert_input(5, effective=SENT, references=(earlier,))
    [r] = parse_cap(cap_alert(a), event_match=EVENT)
    assert (r.identifier, r.sender, r.msg_type, r.level) == (a.identifier, SENDER, "Update", 5)
    assert r.references == (str(earlier),)
    assert r.sent == SENT.replace(microsecond=0) and r.expires == a.expires and r.onset == a.onset
    assert r.area_desc == "东村镇" and r.instruction == ADVICE
    assert r.geocodes == (("GB/T2260", "130630"),)
    assert r.web == a.web and r.language == "zh-CN"
    # Level 1 is Minor, read back as 2 by default; a level_map can say otherwise.
    assert parse_cap(cap_alert(alert_input(1)))[0].level == 2
    assert parse_cap(cap_alert(alert_input(1)), level_map={"Minor": 1})[0].level == 1


def test_test_messages_and_other_events_are_ignored():
    data = cap_alert(alert_input(4, status="Exercise"))
    assert list(parse_cap(data)) == []
    assert list(parse_cap(cap_alert(alert_input(4)), event_match="大风")) == []


def test_inline_escaped_alert_and_bad_entries_in_a_feed():
    alert = cap_alert(alert_input(3)).decode("utf-8").split("?>", 1)[1]
    escaped = alert.replace("&", "&amp;").replace("<", "&lt;")
    feed = f"""<feed xmlns="{ATOM_NS}"><id>x</id>
      <entry><id>1</id><content type="text">{escaped}</content></entry>
      <entry><id>2</id><content type="application/cap+xml"><alert xmlns="{CAP_NS}">
        <identifier>x</identifier><sender>y</sender><sent>2026-12-01T16:00:00</sent>
        <status>Actual</status><info><event>一氧化碳</event></info></alert></content></entry>
    </feed>""".encode()
    readings = parse_cap(feed)
    assert [r.level for r in readings] == [3]
    assert len(readings.skipped) == 1 and "offset" in readings.skipped[0]


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol3;</identifier></alert>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""


@pytest.mark.parametrize("data", [
    BILLION_LAUGHS,
    XXE,
    XXE.replace(b"file:///etc/passwd", b"http://127.0.0.1:9/x"),
    XXE.decode().replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
       .encode("utf-16"),
    b"<alert>unclosed",
    b"<html><body>not cap</body></html>",
    b"<feed/>" + b" " * 3_000_000,
])
def test_malicious_or_invalid_xml_is_refused(data):
    with pytest.raises(FeedError) as err:
        parse_cap(data)
    assert "passwd" not in str(err.value) and "root:" not in str(err.value)


def test_a_lone_unreadable_alert_fails():
    bad = cap_alert(alert_input(4)).replace(b"+08:00</sent>", b"</sent>")
    with pytest.raises(FeedError, match="offset"):
        parse_cap(bad)
