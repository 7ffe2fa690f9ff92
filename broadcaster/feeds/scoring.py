"""Turn one night's weather factors into a CO-poisoning level 1..5 (pure functions, no I/O).

The factors and their thresholds come from the studies summarised in the shared reference
``co-index.md`` §5 and §6: light or calm wind (付桂琴 2008, Shuozhou), a near-surface inversion
(DB13/T 1494-2012 §3, 付桂琴), relative humidity over 65% (Shuozhou), fog (付桂琴), a small 24-hour
temperature change (付桂琴, 段丽), a pressure fall of more than 10 hPa (Shuozhou) and a cold night
(Beijing 2009, Jinan). **The weights and the level cut-offs are ours and are NOT calibrated against
case data**; they are configuration so that a county can tune them.

Scoring is monotone by construction: each factor awards the largest weight among the tiers it
meets, every tier is a one-sided comparison ("wind at most x", "humidity above y"), weights are
non-negative and the level counts the cut-offs the total reaches. Making any single factor worse
can therefore only add met tiers, so it can never lower the level.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from broadcaster.feeds.base import Factor

class Weights(BaseModel):
    """Points each factor tier adds to the night's score (all >= 0)."""

    model_config = ConfigDict(extra="forbid")

    calm_wind: float = Field(default=2.0, ge=0)  # mean wind <= calm_wind_ms (静风/1级)
    light_wind: float = Field(default=1.0, ge=0)  # mean wind <= light_wind_ms (2级)
    inversion: float = Field(default=1.0, ge=0)  # aloft warmer than 2 m by more than inversion_c
    strong_inversion: float = Field(default=2.0, ge=0)  # ... by at least strong_inversion_c
    humidity: float = Field(default=1.0, ge=0)  # mean RH above humidity_pct
    fog: float = Field(default=1.0, ge=0)  # at least fog_hours hours of WMO code 45/48
    small_temp_change: float = Field(default=1.0, ge=0)  # |ΔT24| <= temp_change_c
    pressure_fall: float = Field(default=1.0, ge=0)  # 24 h fall of more than pressure_fall_hpa
    cold_night: float = Field(default=0.5, ge=0)  # night minimum <= cold_night_c
    very_cold_night: float = Field(default=1.0, ge=0)  # night minimum <= very_cold_night_c


class Thresholds(BaseModel):
    """Where each factor tier starts, and the score needed for levels 2, 3, 4 and 5."""

    model_config = ConfigDict(extra="forbid")

    calm_wind_ms: float = Field(default=1.5, ge=0)  # Beaufort 1 tops out at 1.5 m/s
    light_wind_ms: float = Field(default=3.3, ge=0)  # Beaufort 2 tops out at 3.3 m/s
    inversion_c: float = 0.0
    strong_inversion_c: float = 2.0
    humidity_pct: float = Field(default=65.0, ge=0, le=100)
    fog_hours: int = Field(default=1, ge=1)
    temp_change_c: float = Field(default=3.0, ge=0)
    pressure_fall_hpa: float = Field(default=10.0, ge=0)
    cold_night_c: float = 0.0
    very_cold_night_c: float = -10.0
    # Minimum score for levels 2, 3, 4, 5 (strictly increasing).
    levels: tuple[float, float, float, float] = (2.0, 4.0, 5.5, 7.0)
    # DB13/T 1494 grades only when an inversion is forecast; set 2 to cap nights without one.
    max_level_without_inversion: int = Field(default=5, ge=1, le=5)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.calm_wind_ms > self.light_wind_ms:
            raise ValueError("calm_wind_ms must not exceed light_wind_ms")
        if self.strong_inversion_c < self.inversion_c:
            raise ValueError("strong_inversion_c must not be below inversion_c")
        if self.very_cold_night_c > self.cold_night_c:
            raise ValueError("very_cold_night_c must not exceed cold_night_c")
        if any(b <= a for a, b in zip(self.levels, self.levels[1:])):
            raise ValueError("levels must be strictly increasing scores for levels 2, 3, 4, 5")
        return self


@dataclass(frozen=True)
class NightWeather:
    """One night's factor values (local 20:00 to 08:00), as computed from the hourly forecast."""

    wind_ms: float  # mean 10 m wind speed; lower is worse
    inversion_c: float  # strongest (temperature aloft - temperature at 2 m); higher is worse
    humidity_pct: float  # mean 2 m relative humidity; higher is worse
    fog_hours: int  # hours with WMO weather code 45 or 48; more is worse
    # Mean night 2 m temperature minus the same hours a day earlier; nearer 0 is worse.
    temp_change_c: float
    pressure_change_hpa: float  # same for surface pressure; more negative (a fall) is worse
    min_temp_c: float  # lowest 2 m temperature of the night; lower is worse
    cloud_pct: float | None = None  # mean cloud cover; shown, not scored


@dataclass(frozen=True)
class Score:
    """The result: level 1..5, the total points and each factor with its points."""

    level: int
    points: float
    factors: tuple[Factor, ...]


def _tiers(*met_weights: tuple[bool, float]) -> float:
    """The largest weight among the tiers that are met (0 when none is)."""
    return max((w for met, w in met_weights if met), default=0.0)


def score_night(
    w: NightWeather, weights: Weights | None = None, thresholds: Thresholds | None = None
) -> Score:
    """Score one night. Pure: the same inputs always give the same level."""
    wt = weights or Weights()
    th = thresholds or Thresholds()
    points = {
        "wind": _tiers(
            (w.wind_ms <= th.calm_wind_ms, wt.calm_wind),
            (w.wind_ms <= th.light_wind_ms, wt.light_wind),
        ),
        "inversion": _tiers(
            (w.inversion_c > th.inversion_c, wt.inversion),
            (w.inversion_c >= th.strong_inversion_c, wt.strong_inversion),
        ),
        "humidity": _tiers((w.humidity_pct > th.humidity_pct, wt.humidity)),
        "fog": _tiers((w.fog_hours >= th.fog_hours, wt.fog)),
        "temp_change": _tiers((abs(w.temp_change_c) <= th.temp_change_c, wt.small_temp_change)),
        "pressure_change": _tiers(
            (-w.pressure_change_hpa > th.pressure_fall_hpa, wt.pressure_fall),
        ),
        "cold": _tiers(
            (w.min_temp_c <= th.cold_night_c, wt.cold_night),
            (w.min_temp_c <= th.very_cold_night_c, wt.very_cold_night),
        ),
    }
    total = round(sum(points.values()), 6)  # rounding keeps 5.5 from becoming 5.4999999
    level = 1 + sum(total >= cut for cut in th.levels)
    # "An inversion was forecast" means the inversion tier was met, whatever its weight.
    if w.inversion_c <= th.inversion_c:
        level = min(level, th.max_level_without_inversion)
    factors = [
        Factor("wind", "风速", round(w.wind_ms, 1), "m/s", points["wind"]),
        Factor("inversion", "逆温", round(w.inversion_c, 1), "°C", points["inversion"]),
        Factor("humidity", "相对湿度", round(w.humidity_pct), "%", points["humidity"]),
        Factor("fog", "雾", w.fog_hours, "小时", points["fog"]),
        Factor("temp_change", "24小时变温", round(w.temp_change_c, 1), "°C", points["temp_change"]),
        Factor(
            "pressure_change", "24小时变压", round(w.pressure_change_hpa, 1), "hPa",
            points["pressure_change"],
        ),
        Factor("cold", "夜间最低气温", round(w.min_temp_c, 1), "°C", points["cold"]),
    ]
    if w.cloud_pct is not None:
        factors.append(Factor("cloud", "云量", round(w.cloud_pct), "%", 0.0))
    return Score(level=level, points=total, factors=tuple(factors))


# Short Chinese phrases for the advice text, one per scored factor.
_PHRASES = {
    "wind": "风小",
    "inversion": "近地面有逆温",
    "humidity": "湿度大",
    "fog": "有雾",
    "temp_change": "气温变化小",
    "pressure_change": "气压明显下降",
    "cold": "夜间气温低",
}


def advice_text(score: Score) -> str:
    """A one-line Chinese reason for the level, e.g. ``今夜风小，近地面有逆温，不利于一氧化碳扩散``."""
    if score.level == 1:
        return "今夜气象条件利于一氧化碳扩散"
    if score.level == 2:
        return "今夜气象条件较利于一氧化碳扩散"
    ranked = sorted((f for f in score.factors if f.points > 0), key=lambda f: -f.points)
    phrases = [_PHRASES[f.name] for f in ranked if f.name in _PHRASES]
    return "今夜" + "，".join(phrases + ["不利于一氧化碳扩散"])
