"""Factor scoring (pure): tables of nights, the cut-offs, and a property test of monotonicity."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broadcaster.feeds.base import Reading
from broadcaster.feeds.scoring import NightWeather, Thresholds, Weights, advice_text, score_night
from broadcaster.timeutil import Night

CALM = NightWeather(wind_ms=0.8, inversion_c=2.1, humidity_pct=88, fog_hours=4,
                    temp_change_c=1.0, pressure_change_hpa=-1.0, min_temp_c=-4.0)
WINDY = NightWeather(wind_ms=7.0, inversion_c=-3.0, humidity_pct=30, fog_hours=0,
                     temp_change_c=-8.0, pressure_change_hpa=5.0, min_temp_c=3.0)


@pytest.mark.parametrize(
    "night,level",
    [
        (CALM, 5),  # 2 + 2 + 1 + 1 + 1 + 0.5 = 7.5
        (WINDY, 1),
        (replace(WINDY, wind_ms=3.0, temp_change_c=2.0), 2),  # light wind 1 + small ΔT 1 = 2
        (replace(WINDY, wind_ms=3.0, temp_change_c=2.0, inversion_c=0.5, humidity_pct=70), 3),  # 4
        (replace(CALM, fog_hours=0, temp_change_c=5.0), 4),  # 2 + 2 + 1 + 0.5 = 5.5
        (replace(CALM, min_temp_c=-12, pressure_change_hpa=-11), 5),
    ],
)
def test_table(night: NightWeather, level: int) -> None:
    assert score_night(night).level == level


def test_thresholds_are_inclusive_where_the_sources_say_so() -> None:
    edge = NightWeather(wind_ms=3.3, inversion_c=0.0, humidity_pct=65, fog_hours=1,
                        temp_change_c=-3.0, pressure_change_hpa=-10.0, min_temp_c=0.0)
    pts = {f.name: f.points for f in score_night(edge).factors}
    # ≤2级 wind and |ΔT| within 3 °C include the edge; RH "> 65%", a fall "> 10 hPa" and an
    # inversion (aloft warmer than 2 m) do not.
    assert pts == {"wind": 1.0, "inversion": 0.0, "humidity": 0.0, "fog": 1.0,
                   "temp_change": 1.0, "pressure_change": 0.0, "cold": 0.5}


def test_inversion_gate_caps_nights_without_an_inversion() -> None:
    no_inv = replace(CALM, inversion_c=-0.5)
    assert score_night(no_inv).level == 4
    gated = Thresholds(max_level_without_inversion=2)
    assert score_night(no_inv, thresholds=gated).level == 2
    assert score_night(CALM, thresholds=gated).level == 5


def test_factor_summary_and_advice() -> None:
    score = score_night(CALM)
    night = Night(date(2025, 12, 20), ZoneInfo("Asia/Shanghai"))
    r = Reading(region="XX镇", valid_from=night.start, valid_to=night.end, level=score.level,
                issued_at=datetime(2025, 12, 20, 16, tzinfo=night.tz), source="t", factors=score.factors)
    assert r.factor_summary() == "风速 0.8 m/s, 逆温 +2.1 °C, 相对湿度 88%, 雾 4小时, 24小时变温 1 °C, 夜间最低气温 -4 °C"
    assert advice_text(score) == "今夜风小，近地面有逆温，湿度大，有雾，气温变化小，夜间气温低，不利于一氧化碳扩散"
    assert advice_text(score_night(WINDY)) == "今夜气象条件利于一氧化碳扩散"


# --- monotonicity -----------------------------------------------------------------------------

nights = st.builds(
    NightWeather,
    wind_ms=st.floats(0, 20),
    inversion_c=st.floats(-10, 10),
    humidity_pct=st.floats(0, 100),
    fog_hours=st.integers(0, 12),
    temp_change_c=st.floats(-15, 15),
    pressure_change_hpa=st.floats(-25, 25),
    min_temp_c=st.floats(-35, 15),
)
weights = st.builds(Weights, **{k: st.floats(0, 5) for k in Weights.model_fields})


@st.composite
def thresholds(draw: st.DrawFn) -> Thresholds:
    calm = draw(st.floats(0, 3))
    inv = draw(st.floats(-1, 1))
    cold = draw(st.floats(-5, 5))
    cuts = sorted(draw(st.lists(st.floats(0.5, 15), min_size=4, max_size=4, unique=True)))
    return Thresholds(
        calm_wind_ms=calm, light_wind_ms=calm + draw(st.floats(0, 3)),
        inversion_c=inv, strong_inversion_c=inv + draw(st.floats(0, 3)),
        humidity_pct=draw(st.floats(40, 95)), fog_hours=draw(st.integers(1, 6)),
        temp_change_c=draw(st.floats(0, 6)), pressure_fall_hpa=draw(st.floats(0, 15)),
        cold_night_c=cold, very_cold_night_c=cold - draw(st.floats(0, 10)),
        levels=tuple(cuts), max_level_without_inversion=draw(st.integers(1, 5)),
    )


# How to make each factor worse by an amount d >= 0 (or a fraction f in [0, 1] for ΔT, which is
# worse nearer 0 on either side).
WORSEN = {
    "wind_ms": lambda n, d, f: replace(n, wind_ms=max(0.0, n.wind_ms - d)),
    "inversion_c": lambda n, d, f: replace(n, inversion_c=n.inversion_c + d),
    "humidity_pct": lambda n, d, f: replace(n, humidity_pct=min(100.0, n.humidity_pct + d)),
    "fog_hours": lambda n, d, f: replace(n, fog_hours=min(12, n.fog_hours + int(d))),
    "temp_change_c": lambda n, d, f: replace(n, temp_change_c=n.temp_change_c * f),
    "pressure_change_hpa": lambda n, d, f: replace(n, pressure_change_hpa=n.pressure_change_hpa - d),
    "min_temp_c": lambda n, d, f: replace(n, min_temp_c=n.min_temp_c - d),
}


@settings(max_examples=400, deadline=None, database=None)
@given(
    night=nights,
    factor=st.sampled_from(sorted(WORSEN)),
    d=st.floats(0, 20),
    f=st.floats(0, 1),
    w=st.one_of(st.just(Weights()), weights),
    th=st.one_of(st.just(Thresholds()), thresholds()),
)
def test_worsening_one_factor_never_lowers_the_level(night, factor, d, f, w, th) -> None:
    worse = WORSEN[factor](night, d, f)
    before, after = score_night(night, w, th), score_night(worse, w, th)
    assert after.level >= before.level
    assert after.points >= before.points
    assert 1 <= before.level <= 5 and 1 <= after.level <= 5


# From the best value to the worst, in steps that cross every default threshold.
SWEEPS = {
    "wind_ms": [10 - 0.1 * i for i in range(101)],
    "inversion_c": [-5 + 0.1 * i for i in range(101)],
    "humidity_pct": [float(i) for i in range(101)],
    "fog_hours": list(range(13)),
    "temp_change_c": [10 - 0.1 * i for i in range(101)],
    "pressure_change_hpa": [15 - 0.25 * i for i in range(121)],
    "min_temp_c": [10 - 0.25 * i for i in range(121)],
}


@pytest.mark.parametrize("factor", sorted(SWEEPS))
@pytest.mark.parametrize("base", [CALM, WINDY, replace(WINDY, wind_ms=3.0, temp_change_c=2.0)])
def test_sweeping_one_factor_from_best_to_worst_is_non_decreasing(factor: str, base: NightWeather) -> None:
    levels = [score_night(replace(base, **{factor: v})).level for v in SWEEPS[factor]]
    assert levels == sorted(levels)


def test_a_temperature_fall_counts_like_a_rise() -> None:
    for v in SWEEPS["temp_change_c"]:
        up, down = score_night(replace(CALM, temp_change_c=v)), score_night(replace(CALM, temp_change_c=-v))
        assert (up.level, up.points) == (down.level, down.points)
