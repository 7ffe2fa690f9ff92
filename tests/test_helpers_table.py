"""Table tests for the pure helpers: SMS segments, Retry-After and backoff, phone masking, nights
and windows, and each SMS provider's error mapping. Times are stated in each row."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timezone

import pytest

from broadcaster.logutil import mask_phone, mask_text
from broadcaster.messages import sms_segments
from broadcaster.net import backoff_seconds, retry_after_seconds
from broadcaster.timeutil import in_season, in_window, tonight
from tests.conftest import TZ, local


@pytest.mark.parametrize(("text", "encoding", "units", "count"), [
    ("", "GSM-7", 0, 0),
    ("a" * 160, "GSM-7", 160, 1),
    ("a" * 161, "GSM-7", 161, 2),
    ("{}" * 80, "GSM-7", 320, 3),  # braces take two GSM-7 units each
    ("煤" * 70, "UCS-2", 70, 1),
    ("煤" * 71, "UCS-2", 71, 2),
    ("煤" * 134, "UCS-2", 134, 2),
    ("煤" * 135, "UCS-2", 135, 3),
    ("🔥", "UCS-2", 2, 1),  # outside the BMP: a surrogate pair
])
def test_sms_segments(text: str, encoding: str, units: int, count: int) -> None:
    seg = sms_segments(text)
    assert (seg.encoding, seg.units, seg.count) == (encoding, units, count)


NOW = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None),
    ({"Retry-After": "7"}, 7.0),
    ({"retry-after": "0.25"}, 0.25),
    ({"Retry-After": "-3"}, 0.0),
    ({"Retry-After": "Tue, 01 Dec 2026 08:00:30 GMT"}, 30.0),
    ({"Retry-After": "Tue, 01 Dec 2026 07:59:00 GMT"}, 0.0),  # a date in the past: now
    ({"Retry-After": "soon"}, None),
])
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == expected


@pytest.mark.parametrize(("attempt", "retry_after", "low", "high"), [
    (1, None, 1.0, 2.0), (2, None, 2.0, 4.0), (5, None, 16.0, 32.0),
    (20, None, 150.0, 300.0),  # capped
    (1, 60.0, 60.0, 60.0),  # never before the provider's Retry-After
    (3, 1.0, 4.0, 8.0),
])
def test_backoff(attempt: int, retry_after: float | None, low: float, high: float) -> None:
    rng = random.Random(attempt)
    for _ in range(50):
        assert low <= backoff_seconds(attempt, retry_after, rng) <= high


@pytest.mark.parametrize(("raw", "masked"), [
    ("+8613800138000", "138****8000"),  # DESIGN A8: the national number, masked
    ("13800138000", "138****8000"),
    ("+15005550006", "150****0006"),
    ("12345", "****2345"),  # too short to show a prefix
])
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


def test_mask_text_hides_every_number_in_a_line() -> None:
    out = mask_text("to +8613800138000 and 13900139001 failed")
    assert "13800138000" not in out and "13900139001" not in out and "failed" in out


@pytest.mark.parametrize(("now", "night"), [
    (local(2026, 12, 1, 7, 59), date(2026, 11, 30)),  # still last night
    (local(2026, 12, 1, 8, 0), date(2026, 12, 1)),  # daytime: tonight is the next to begin
    (local(2026, 12, 1, 19, 30), date(2026, 12, 1)),
    (local(2026, 12, 1, 23, 59), date(2026, 12, 1)),
    (local(2027, 1, 1, 0, 30), date(2026, 12, 31)),  # across the year
])
def test_tonight(now: datetime, night: date) -> None:
    n = tonight(now, TZ)
    assert n.date == night and n.start.hour == 20 and n.end.hour == 8 and n.end > now


@pytest.mark.parametrize(("t", "start", "end", "inside"), [
    (time(21, 30), time(21, 30), time(6, 30), True),
    (time(6, 29), time(21, 30), time(6, 30), True),
    (time(6, 30), time(21, 30), time(6, 30), False),
    (time(12, 0), time(21, 30), time(6, 30), False),
    (time(9, 0), time(8, 0), time(17, 0), True),
    (time(17, 0), time(8, 0), time(17, 0), False),
])
def test_windows_that_wrap_midnight(t: time, start: time, end: time, inside: bool) -> None:
    assert in_window(t, start, end) is inside


@pytest.mark.parametrize(("day", "inside"), [
    (date(2026, 10, 14), False), (date(2026, 10, 15), True), (date(2026, 12, 31), True),
    (date(2027, 1, 1), True), (date(2027, 4, 15), True), (date(2027, 4, 16), False),
])
def test_season_across_the_new_year(day: date, inside: bool) -> None:
    assert in_season(day, (10, 15), (4, 15)) is inside


# Each SMS provider maps its vendor's answers once, at its boundary (DESIGN B1).
TWILIO = [
    (429, 20429, "TransientError"), (500, 20500, "TransientError"), (503, None, "TransientError"),
    (400, 21211, "PermanentError"), (400, 21610, "PermanentError"), (401, 20003, "PermanentError"),
]


@pytest.mark.parametrize(("status", "code", "kind"), TWILIO)
def test_twilio_error_mapping(status: int, code: int | None, kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from twilio.base.exceptions import TwilioRestException

    from broadcaster import plugins
    from broadcaster.channels.sms import SmsContext

    cls = plugins.get("sms", "twilio")
    p = cls(cls.Config(account_sid="AC" + "0" * 32, auth_token="t", **{"from": "+15005550006"}),
            SmsContext("http://x", tmp_path, TZ))
    # The URI is only the text an exception carries: no request is made (tests talk to 127.0.0.1 doubles).
    err = p._map(TwilioRestException(status, "https://api.twilio.com/x", "boom", code), p._client())
    assert type(err).__name__ == kind
