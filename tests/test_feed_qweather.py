"""The ``qweather`` source against a loopback double of the QWeather alert API (and ``responses``)."""

from __future__ import annotations

import socket
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import responses
from pydantic import ValidationError

from broadcaster.feeds import SourceContext, source_types
from broadcaster.feeds.qweather import QWeatherConfig, QWeatherSource
from broadcaster.timeutil import FakeClock, Night
from tests.doubles.qweather import QWeatherDouble, make_alert

TZ = ZoneInfo("Asia/Shanghai")
NIGHT = Night(date(2025, 12, 20), TZ)
NOW = datetime(2025, 12, 20, 16, 30, tzinfo=TZ)
ISSUED = datetime(2025, 12, 20, 16, 0, tzinfo=TZ)
UNTIL = datetime(2025, 12, 21, 8, 0, tzinfo=TZ)


def ctx() -> SourceContext:
    return SourceContext(town="XX镇", tz=TZ, base_dir=Path("."), clock=FakeClock(NOW))


def source(api_host: str, key: str = "test-key", **extra: object) -> QWeatherSource:
    cfg = QWeatherConfig.model_validate(
        {"type": "qweather", "api_host": api_host, "key": key, "lat": 38.0412, "lon": 114.5149, **extra}
    )
    return QWeatherSource(cfg, ctx())


def co_alert(**kw: object) -> dict:
    kw.setdefault("issued", ISSUED)
    kw.setdefault("expires", UNTIL)
    return make_alert(**kw)  # type: ignore[arg-type]


@pytest.fixture
def qw():
    with QWeatherDouble(key="test-key") as double:
        yield double


def test_registered() -> None:
    assert source_types()["qweather"] is QWeatherSource


def test_co_warning_gives_a_reading_at_the_mapped_level(qw: QWeatherDouble) -> None:
    qw.alerts = [co_alert(color="yellow")]
    out = source(qw.url).tonight(NIGHT)
    assert out.error is None and out.reading is not None
    r = out.reading
    assert r.level == 4  # yellow -> 4 by default
    assert (r.valid_from, r.valid_to, r.issued_at) == (ISSUED, UNTIL, ISSUED)
    assert r.region == "XX镇" and r.source == "XX县气象台"
    assert r.advice and "一氧化碳" in r.advice
    req = qw.requests[-1]
    assert req.path == "/weatheralert/v1/current/38.04/114.51"  # two decimals
    assert req.headers["X-QW-Api-Key"] == "test-key"
    assert "gzip" in req.headers["Accept-Encoding"]
    assert req.query == {"localTime": ["true"], "lang": ["zh"]}


@pytest.mark.parametrize(
    "color,severity,expected",
    [("blue", "minor", 3), ("yellow", "moderate", 4), ("orange", "severe", 5), ("red", "extreme", 5),
     ("blue", "severe", 5),  # default level_by=max: the higher of the two
     (None, "moderate", 4), ("purple", None, 3), (None, "unknown", 3)],
)
def test_default_tables(qw: QWeatherDouble, color, severity, expected) -> None:
    qw.alerts = [co_alert(color=color, severity=severity)]
    assert source(qw.url).tonight(NIGHT).level == expected


def test_level_by_color_prefers_the_colour(qw: QWeatherDouble) -> None:
    qw.alerts = [co_alert(color="blue", severity="extreme")]
    assert source(qw.url, level_by="color").tonight(NIGHT).level == 3
    assert source(qw.url, level_by="severity").tonight(NIGHT).level == 5


def test_other_event_types_are_ignored(qw: QWeatherDouble) -> None:
    qw.alerts = [co_alert(code="1006", name="大风", color="red"), co_alert(code="1074", color="orange")]
    out = source(qw.url).tonight(NIGHT)
    assert (out.level, out.error, out.note) == (None, None, "无官方预警")
    qw.alerts.append(co_alert(color="blue"))
    assert source(qw.url).tonight(NIGHT).level == 3


def test_zero_result_is_no_warning(qw: QWeatherDouble) -> None:
    qw.alerts = []
    out = source(qw.url).tonight(NIGHT)
    assert out.reading is None and out.error is None and out.note == "无官方预警"
    assert out.to_json() == {"source": "qweather", "level": None, "note": "无官方预警"}
    qw.alerts, qw.zero_result = [co_alert()], True  # zeroResult wins over a stray list
    assert source(qw.url).tonight(NIGHT).note == "无官方预警"


def test_401_invalid_key(qw: QWeatherDouble) -> None:
    out = source(qw.url, key="wrong").tonight(NIGHT)
    assert out.error == "HTTP 401: invalid API key"
    assert out.reading is None


def test_malformed_body(qw: QWeatherDouble) -> None:
    qw.mode = "malformed"
    assert source(qw.url).tonight(NIGHT).error == "malformed JSON"


def test_timeout(qw: QWeatherDouble) -> None:
    qw.mode, qw.delay_s = "slow", 3.0
    assert source(qw.url, timeout_s=0.3).tonight(NIGHT).error == "timeout after 0.3 s"


def test_server_error_and_connection_refused(qw: QWeatherDouble) -> None:
    qw.mode = "500"
    assert source(qw.url).tonight(NIGHT).error == "HTTP 500"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert source(f"http://127.0.0.1:{port}").tonight(NIGHT).error == "connection failed: ConnectionError"


def test_level_map_maps_the_bureau_scale(qw: QWeatherDouble) -> None:
    # A bureau whose colours mean its own 4-level scale, mapped onto ours.
    qw.alerts = [co_alert(color="yellow")]
    src = source(
        qw.url,
        color_map={"blue": 1, "yellow": 2, "orange": 3, "red": 4},
        level_by="color",
        level_map={1: 2, 2: 3, 3: 4, 4: 5},
    )
    assert src.tonight(NIGHT).level == 3


def test_cancelled_and_superseded_alerts_are_dropped(qw: QWeatherDouble) -> None:
    old = co_alert(color="red", alert_id="old", issued=ISSUED - timedelta(hours=2))
    update = co_alert(color="blue", alert_id="new", message_type="update", supersedes=["old"])
    qw.alerts = [old, update]
    assert source(qw.url).tonight(NIGHT).level == 3  # the update replaced the red one
    cancel = co_alert(color="blue", alert_id="c", message_type="cancel", supersedes=["new"])
    qw.alerts = [update, cancel]
    assert source(qw.url).tonight(NIGHT).note == "无官方预警"


def test_window_edges(qw: QWeatherDouble) -> None:
    # Expired before tonight: not in force tonight.
    qw.alerts = [co_alert(issued=ISSUED - timedelta(hours=20), expires=ISSUED - timedelta(hours=2))]
    assert source(qw.url).tonight(NIGHT).note == "无官方预警"
    # Takes effect at 23:00 tonight: tonight's reading, widened back to 20:00.
    late = datetime(2025, 12, 20, 23, 0, tzinfo=TZ)
    qw.alerts = [co_alert(effective=late, onset=late, color="orange")]
    r = source(qw.url).tonight(NIGHT).reading
    assert r is not None and r.level == 5 and r.valid_from == NIGHT.start and r.valid_to == UNTIL


def test_no_expiry_uses_tonights_window() -> None:
    with responses.RequestsMock() as rs:
        alert = co_alert()
        alert["expiredTime"] = None
        alert["effectiveTime"] = None
        rs.get("https://h.example/weatheralert/v1/current/38.04/114.51",
               json={"metadata": {"zeroResult": False}, "alerts": [alert]})
        r = source("h.example").tonight(NIGHT).reading  # scheme-less host, as the console shows it
    assert r is not None and (r.valid_from, r.valid_to) == (NIGHT.start, NIGHT.end)


def test_stale_warning_is_rejected(qw: QWeatherDouble) -> None:
    issued = ISSUED - timedelta(days=3)
    qw.alerts = [co_alert(issued=issued, expires=UNTIL)]
    out = source(qw.url).tonight(NIGHT)
    assert out.error is not None and "stale" in out.error


def test_v2_error_bodies_and_schema_errors() -> None:
    url = "https://h.example/weatheralert/v1/current/38.04/114.51"
    with responses.RequestsMock() as rs:
        rs.get(url, status=403, json={"error": {"status": 403, "title": "No Credit", "detail": "余额不足"}})
        assert source("https://h.example").tonight(NIGHT).error == "HTTP 403: No Credit: 余额不足"
        rs.replace(responses.GET, url, status=429, json={"error": {"title": "Too Many Requests"}})
        assert source("https://h.example").tonight(NIGHT).error == "HTTP 429: too many requests (Too Many Requests)"
        bad = co_alert()
        bad["issuedTime"] = "yesterday"
        rs.replace(responses.GET, url, json={"metadata": {"zeroResult": False}, "alerts": [bad]})
        err = source("https://h.example").tonight(NIGHT).error
        assert err is not None and err.startswith("wrong schema: alerts[0].issuedTime")
        rs.replace(responses.GET, url, json=[1, 2])
        assert source("https://h.example").tonight(NIGHT).error == "malformed JSON: expected an object"


def test_config_validation() -> None:
    cfg = QWeatherConfig.model_validate(
        {"type": "qweather", "api_host": "abc.re.qweatherapi.com/", "key": "s3cret", "lat": 39.9, "lon": 116.4}
    )
    assert cfg.api_host == "https://abc.re.qweatherapi.com"
    assert "s3cret" not in repr(cfg)  # the key never reaches logs through the model
    assert cfg.color_map["yellow"] == 4 and cfg.severity_map["minor"] == 3
    with pytest.raises(ValidationError, match="levels must be 1..5"):
        QWeatherConfig.model_validate(
            {"type": "qweather", "api_host": "h", "key": "k", "lat": 1, "lon": 1, "color_map": {"red": 9}}
        )
    with pytest.raises(ValidationError):
        QWeatherConfig.model_validate({"type": "qweather", "api_host": "h", "key": "k", "lat": 91, "lon": 1})
    with pytest.raises(ValidationError):  # extra keys are config errors
        QWeatherConfig.model_validate(
            {"type": "qweather", "api_host": "h", "key": "k", "lat": 1, "lon": 1, "colour_map": {}}
        )
