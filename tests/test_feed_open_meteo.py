"""The ``open-meteo`` source against a loopback double of the Open-Meteo forecast API."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import responses
from pydantic import ValidationError

from broadcaster.feeds import SourceContext, source_types
from broadcaster.feeds.open_meteo import OpenMeteoConfig, OpenMeteoSource
from broadcaster.timeutil import FakeClock, Night
from tests.doubles.open_meteo import CALM_FOGGY, WINDY_DRY, OpenMeteoDouble, Scenario

TZ = ZoneInfo("Asia/Shanghai")
NIGHT = Night(date(2025, 12, 20), TZ)
NOW = datetime(2025, 12, 20, 16, 30, tzinfo=TZ)


def source(base_url: str, now: datetime = NOW, **extra: object) -> OpenMeteoSource:
    cfg = OpenMeteoConfig.model_validate(
        {"type": "open-meteo", "base_url": base_url, "lat": 38.04, "lon": 114.51, **extra}
    )
    return OpenMeteoSource(cfg, SourceContext(town="XX镇", tz=TZ, base_dir=Path("."), clock=FakeClock(now)))


@pytest.fixture
def om():
    with OpenMeteoDouble(night=NIGHT.date) as double:
        yield double


def test_registered() -> None:
    assert source_types()["open-meteo"] is OpenMeteoSource


def test_calm_humid_foggy_night_with_inversion_scores_4_or_5(om: OpenMeteoDouble) -> None:
    om.scenario = CALM_FOGGY
    out = source(om.url).tonight(NIGHT)
    assert out.error is None and out.reading is not None
    r = out.reading
    assert r.level in (4, 5)
    assert (r.valid_from, r.valid_to, r.issued_at, r.region) == (NIGHT.start, NIGHT.end, NOW, "XX镇")
    factors = {f.name: f for f in r.factors}
    assert factors["wind"].value == 0.8 and factors["wind"].points > 0
    assert factors["inversion"].value == 2.5 and factors["inversion"].points > 0
    assert factors["humidity"].value == 92 and factors["fog"].value == 9
    assert factors["temp_change"].value == 0.5 and factors["pressure_change"].value == -2.0
    assert factors["cold"].value == -6.0 and factors["cloud"].points == 0
    summary = r.factor_summary()
    assert summary.startswith("风速 0.8 m/s, 逆温 +2.5 °C")
    assert "相对湿度 92%" in summary and "雾 9小时" in summary
    assert r.index is not None and r.index >= 5.5
    assert r.advice and r.advice.startswith("今夜风小") and "不利于一氧化碳扩散" in r.advice
    assert out.to_json()["factors"][0] == {
        "name": "wind", "label": "风速", "value": 0.8, "unit": "m/s", "points": 2.0,
    }
    q = om.requests[-1]
    hourly = q["hourly"][0].split(",")
    for var in ("temperature_2m", "relative_humidity_2m", "wind_speed_10m", "surface_pressure",
                "cloud_cover", "weather_code", "temperature_80m", "temperature_925hPa"):
        assert var in hourly
    assert q["wind_speed_unit"] == ["ms"] and q["timezone"] == ["Asia/Shanghai"]
    assert q["past_days"] == ["2"] and q["latitude"] == ["38.0400"]


def test_windy_dry_well_mixed_night_scores_1_or_2(om: OpenMeteoDouble) -> None:
    om.scenario = WINDY_DRY
    r = source(om.url).tonight(NIGHT).reading
    assert r is not None and r.level in (1, 2)
    assert {f.name for f in r.factors if f.points > 0} <= {"cold"}
    assert r.advice in ("今夜气象条件利于一氧化碳扩散", "今夜气象条件较利于一氧化碳扩散")


@pytest.mark.parametrize("var", ["relative_humidity_2m", "wind_speed_10m", "temperature_2m",
                                 "surface_pressure", "weather_code"])
def test_missing_variable_is_named(om: OpenMeteoDouble, var: str) -> None:
    om.drop = {var}
    assert source(om.url).tonight(NIGHT).error == f"missing variable {var} in the response"


def test_all_null_variable_is_named(om: OpenMeteoDouble) -> None:
    om.nulls = {"wind_speed_10m"}
    assert source(om.url).tonight(NIGHT).error == "variable wind_speed_10m has no values for the night 2025-12-20"


def test_no_temperature_aloft(om: OpenMeteoDouble) -> None:
    om.drop = {"temperature_80m", "temperature_1000hPa", "temperature_975hPa",
               "temperature_950hPa", "temperature_925hPa"}
    err = source(om.url).tonight(NIGHT).error
    assert err is not None and err.startswith("missing variable temperature_80m / temperature_1000hPa")


def test_below_ground_pressure_levels_are_not_an_inversion(om: OpenMeteoDouble) -> None:
    # A high-plain town (surface ~920 hPa): 1000 and 925 hPa lie underground and the double
    # answers them warm. They must not count; with only them there is no usable level.
    om.scenario = Scenario(pressure=920.0, inversion=-1.0)
    pressure_only = ["temperature_1000hPa", "temperature_925hPa"]
    err = source(om.url, aloft=pressure_only).tonight(NIGHT).error
    assert err is not None and err.startswith("no temperature aloft above ground")
    r = source(om.url, aloft=["temperature_80m", *pressure_only]).tonight(NIGHT).reading
    assert r is not None and next(f for f in r.factors if f.name == "inversion").value == -1.0


def test_open_meteo_error_body(om: OpenMeteoDouble) -> None:
    om.error_reason = "Latitude must be in range of -90 to 90°. Given: 138.0."
    err = source(om.url).tonight(NIGHT).error
    assert err == "Open-Meteo error: Latitude must be in range of -90 to 90°. Given: 138.0."


def test_unknown_variable_is_reported_by_the_api() -> None:
    with responses.RequestsMock() as rs:
        rs.get("http://om.example/v1/forecast", status=400, json={
            "error": True,
            "reason": "Cannot initialize WeatherVariable from invalid String value tempeture_2m for key hourly",
        })
        err = source("http://om.example").tonight(NIGHT).error
    assert err is not None and "tempeture_2m" in err and err.startswith("Open-Meteo error: ")


@pytest.mark.parametrize("mode,reason", [("malformed", "malformed JSON"), ("500", "HTTP 500")])
def test_bad_answers(om: OpenMeteoDouble, mode: str, reason: str) -> None:
    om.mode = mode
    assert source(om.url).tonight(NIGHT).error == reason


def test_timeout(om: OpenMeteoDouble) -> None:
    om.mode, om.delay_s = "slow", 3.0
    assert source(om.url, timeout_s=0.3).tonight(NIGHT).error == "timeout after 0.3 s"


def test_wind_in_kmh_is_refused() -> None:
    with responses.RequestsMock() as rs:
        rs.get("http://om.example/v1/forecast", json={
            "hourly_units": {"wind_speed_10m": "km/h"},
            "hourly": {"time": [], "temperature_2m": [], "relative_humidity_2m": [],
                       "wind_speed_10m": [], "surface_pressure": [], "weather_code": [],
                       "temperature_80m": []},
        })
        assert source("http://om.example").tonight(NIGHT).error == "wind_speed_10m is in km/h, expected m/s"


def test_polled_after_midnight_still_finds_the_day_before(om: OpenMeteoDouble) -> None:
    om.scenario, om.today = CALM_FOGGY, date(2025, 12, 21)
    r = source(om.url, now=datetime(2025, 12, 21, 2, 0, tzinfo=TZ)).tonight(NIGHT).reading
    assert r is not None and r.level in (4, 5)


def test_night_not_in_the_answer(om: OpenMeteoDouble) -> None:
    om.today = date(2025, 12, 25)
    err = source(om.url).tonight(NIGHT).error
    assert err == "the response has no hours of the night 2025-12-20"


def test_weights_and_thresholds_from_config(om: OpenMeteoDouble) -> None:
    om.scenario = CALM_FOGGY
    # Doubling every cut-off makes the same night score lower.
    low = source(om.url, thresholds={"levels": [4, 8, 11, 14]}).tonight(NIGHT).reading
    assert low is not None and low.level == 2
    # Zero weights everywhere: level 1, whatever the weather.
    zero = {k: 0 for k in ("calm_wind", "light_wind", "inversion", "strong_inversion", "humidity", "fog",
                           "small_temp_change", "pressure_fall", "cold_night", "very_cold_night")}
    flat = source(om.url, weights=zero).tonight(NIGHT).reading
    assert flat is not None and flat.level == 1 and flat.factor_summary() == ""


def test_config_validation() -> None:
    base = {"type": "open-meteo", "lat": 38.0, "lon": 114.5}
    cfg = OpenMeteoConfig.model_validate(base)
    assert cfg.base_url == "https://api.open-meteo.com" and cfg.thresholds.humidity_pct == 65
    with pytest.raises(ValidationError, match="calm_wind_ms must not exceed light_wind_ms"):
        OpenMeteoConfig.model_validate({**base, "thresholds": {"calm_wind_ms": 4}})
    with pytest.raises(ValidationError, match="strictly increasing"):
        OpenMeteoConfig.model_validate({**base, "thresholds": {"levels": [2, 2, 3, 4]}})
    with pytest.raises(ValidationError):
        OpenMeteoConfig.model_validate({**base, "weights": {"fog": -1}})
    with pytest.raises(ValidationError):
        OpenMeteoConfig.model_validate({**base, "weights": {"haze": 1}})
    with pytest.raises(ValidationError, match="not a temperature level"):
        OpenMeteoConfig.model_validate({**base, "aloft": ["boundary_layer_height"]})
