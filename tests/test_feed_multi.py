"""Several sources at once (``poll_sources``): the highest valid level wins, every outcome is kept."""

from __future__ import annotations

import socket
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcaster.feeds import SourceContext, build_sources, outcome_json, poll_sources, source_types
from broadcaster.feeds.base import Source
from broadcaster.feeds.scoring import NightWeather, score_night
from broadcaster.timeutil import FakeClock, Night
from tests.doubles.open_meteo import OpenMeteoDouble, Scenario
from tests.doubles.qweather import QWeatherDouble, make_alert

TZ = ZoneInfo("Asia/Shanghai")
NIGHT = Night(date(2025, 12, 20), TZ)
NOW = datetime(2025, 12, 20, 16, 30, tzinfo=TZ)
CTX = SourceContext(town="XX镇", tz=TZ, base_dir=Path("."), clock=FakeClock(NOW))

# Nights that the default weights put at exactly level 3 and level 2 (checked below).
LEVEL_3 = Scenario(wind=2.5, inversion=0.8, rh=80, fog=False, dt24=1.0, dp24=0.0, t2m=3.0)
LEVEL_2 = Scenario(wind=2.5, inversion=-1.0, rh=50, fog=False, dt24=1.0, dp24=0.0, t2m=3.0)


def _dead_url() -> str:
    """A loopback URL nobody listens on: connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def sources(*configs: dict) -> list[Source]:
    types = source_types()
    return build_sources([types[c["type"]].Config.model_validate(c) for c in configs], CTX)


def qweather(url: str) -> dict:
    return {"type": "qweather", "name": "qweather", "api_host": url, "key": "test-key",
            "lat": 38.04, "lon": 114.51, "timeout_s": 2}


def open_meteo(url: str) -> dict:
    return {"type": "open-meteo", "name": "open-meteo", "base_url": url, "lat": 38.04, "lon": 114.51}


@pytest.fixture
def om():
    with OpenMeteoDouble(night=NIGHT.date) as double:
        yield double


@pytest.fixture
def qw():
    with QWeatherDouble(key="test-key") as double:
        yield double


@pytest.mark.parametrize("scenario,level", [(LEVEL_3, 3), (LEVEL_2, 2)])
def test_the_scenarios_score_as_named(scenario: Scenario, level: int) -> None:
    w = NightWeather(wind_ms=scenario.wind, inversion_c=scenario.inversion, humidity_pct=scenario.rh,
                     fog_hours=0, temp_change_c=scenario.dt24, pressure_change_hpa=scenario.dp24,
                     min_temp_c=scenario.t2m)
    assert score_night(w).level == level


def test_one_source_down_the_other_at_3(om: OpenMeteoDouble) -> None:
    om.scenario = LEVEL_3
    result = poll_sources(sources(qweather(_dead_url()), open_meteo(om.url)), NIGHT)
    assert result.level == 3 and result.ok
    assert result.reading is not None and result.reading.source.startswith("Open-Meteo")
    down, up = result.outcomes
    assert (down.source, down.level) == ("qweather", None)
    assert down.error == "connection failed: ConnectionError"
    assert (up.source, up.level, up.error) == ("open-meteo", 3, None)
    assert result.errors() == ["qweather: connection failed: ConnectionError"]
    js = outcome_json(result)
    assert js[0] == {"source": "qweather", "level": None, "error": "connection failed: ConnectionError"}
    assert js[1]["source"] == "open-meteo" and js[1]["level"] == 3 and js[1]["factors"]


def test_one_source_answers_500_the_other_at_3(om: OpenMeteoDouble, qw: QWeatherDouble) -> None:
    om.scenario, qw.mode = LEVEL_3, "500"
    result = poll_sources(sources(qweather(qw.url), open_meteo(om.url)), NIGHT)
    assert result.level == 3
    assert [o.error for o in result.outcomes] == ["HTTP 500", None]


def test_both_up_at_2_and_4_gives_4(om: OpenMeteoDouble, qw: QWeatherDouble) -> None:
    om.scenario = LEVEL_2
    qw.alerts = [make_alert(color="yellow", issued=NOW - timedelta(minutes=30))]
    result = poll_sources(sources(open_meteo(om.url), qweather(qw.url)), NIGHT)
    assert [o.level for o in result.outcomes] == [2, 4]
    assert result.level == 4 and result.reading is not None and result.reading.source == "XX县气象台"


def test_no_official_warning_and_open_meteo_at_2_gives_2(om: OpenMeteoDouble, qw: QWeatherDouble) -> None:
    om.scenario, qw.alerts = LEVEL_2, []
    result = poll_sources(sources(qweather(qw.url), open_meteo(om.url)), NIGHT)
    assert result.level == 2 and result.ok and result.errors() == []
    assert result.outcomes[0].note == "无官方预警" and result.outcomes[0].level is None
    assert outcome_json(result)[0] == {"source": "qweather", "level": None, "note": "无官方预警"}


def test_all_down_is_not_ok(qw: QWeatherDouble) -> None:
    qw.mode = "malformed"
    result = poll_sources(sources(qweather(qw.url), open_meteo(_dead_url())), NIGHT)
    assert result.level is None and not result.ok
    assert result.errors() == ["qweather: malformed JSON", "open-meteo: connection failed: ConnectionError"]


def test_level_map_applies_per_source(om: OpenMeteoDouble, qw: QWeatherDouble) -> None:
    # The bureau's colours are its own 4-level scale; open-meteo's level is already ours.
    om.scenario = LEVEL_3
    qw.alerts = [make_alert(color="blue", issued=NOW - timedelta(hours=1))]
    bureau = {**qweather(qw.url), "level_by": "color", "color_map": {"blue": 1, "yellow": 2, "orange": 3, "red": 4},
              "level_map": {1: 2, 2: 3, 3: 4, 4: 5}}
    result = poll_sources(sources(bureau, open_meteo(om.url)), NIGHT)
    assert [o.level for o in result.outcomes] == [2, 3] and result.level == 3
    qw.alerts = [make_alert(color="orange", issued=NOW - timedelta(hours=1))]
    result = poll_sources(sources(bureau, open_meteo(om.url)), NIGHT)
    assert [o.level for o in result.outcomes] == [4, 3] and result.level == 4
