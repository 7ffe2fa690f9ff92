"""``open-meteo``: a computed CO-poisoning level from the Open-Meteo hourly forecast.

``GET {base_url}/v1/forecast`` (shared reference ``co-index.md`` §4) for the town's point, with
local-time hours (``timezone``), wind in m/s and two past days so that tonight's hours can be
compared with the same hours a day earlier. The hours of tonight (20:00 to 08:00 local) are
reduced to the factors of :mod:`broadcaster.feeds.scoring`, which gives the level. No API key
is needed.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any, Literal

import requests
from pydantic import Field, field_validator

from broadcaster.errors import FeedError
from broadcaster.net import BoundExceeded, bounded_get, failure_reason
from broadcaster.feeds.base import HttpLimits, Reading, Source, SourceConfig
from broadcaster.feeds.scoring import NightWeather, Thresholds, Weights, advice_text, score_night
from broadcaster.timeutil import Night

log = logging.getLogger(__name__)

REQUIRED = (
    "temperature_2m",
    "relative_humidity_2m",
    "wind_speed_10m",
    "surface_pressure",
    "weather_code",
)
OPTIONAL = ("cloud_cover",)  # shown with the factors, not scored
DEFAULT_ALOFT = (
    "temperature_80m",
    "temperature_1000hPa",
    "temperature_975hPa",
    "temperature_950hPa",
    "temperature_925hPa",
)
FOG_CODES = {45, 48}  # WMO: fog, depositing rime fog
_ALOFT = re.compile(r"^temperature_(\d+)(m|hPa)$")
_DAY = timedelta(hours=24)


class OpenMeteoConfig(SourceConfig, HttpLimits):
    """``feed: {type: open-meteo, base_url, lat, lon, weights: {...}, thresholds: {...}}``."""

    type: Literal["open-meteo"]
    base_url: str = Field(default="https://api.open-meteo.com", pattern=r"^https?://")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timeout_s: float = Field(default=10, gt=0, le=120)
    models: str | None = None  # e.g. cma_grapes_global; None is Open-Meteo's best_match
    # Temperatures aloft for the inversion test: height levels always count; of the pressure
    # levels only the lowest one above the ground (level < surface pressure) counts.
    aloft: list[str] = Field(default_factory=lambda: list(DEFAULT_ALOFT), min_length=1)
    weights: Weights = Field(default_factory=Weights)
    thresholds: Thresholds = Field(default_factory=Thresholds)

    @field_validator("base_url")
    @classmethod
    def _strip(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("aloft")
    @classmethod
    def _aloft_names(cls, v: list[str]) -> list[str]:
        bad = [n for n in v if not _ALOFT.match(n)]
        if bad:
            raise ValueError(f"not a temperature level like temperature_80m or _925hPa: {bad}")
        return v


class OpenMeteoSource(Source):
    """Tonight's level computed from the hourly forecast, with the factors behind it."""

    type = "open-meteo"
    Config = OpenMeteoConfig

    def fetch(self, night: Night) -> list[Reading]:
        cfg: OpenMeteoConfig = self.config  # type: ignore[assignment]
        doc = self._get(cfg)
        weather = night_weather(doc, night, cfg.aloft, self.name)
        score = score_night(weather, cfg.weights, cfg.thresholds)
        log.info("feed %s: night %s scored %.1f -> level %d",
                 self.name, night.date, score.points, score.level)
        return [
            Reading(
                region=self.region,
                valid_from=night.start,
                valid_to=night.end,
                level=score.level,
                issued_at=self.ctx.clock.now(),
                source="Open-Meteo 数值预报（本地计算）",
                index=score.points,
                advice=advice_text(score),
                factors=score.factors,
            )
        ]

    def _get(self, cfg: OpenMeteoConfig) -> dict[str, Any]:
        params: dict[str, Any] = {
            "latitude": f"{cfg.lat:.4f}",
            "longitude": f"{cfg.lon:.4f}",
            "hourly": ",".join([*REQUIRED, *OPTIONAL, *cfg.aloft]),
            "wind_speed_unit": "ms",
            "timezone": self.ctx.tz.key,
            # Two past days cover "24 h before tonight" even when polled after midnight.
            "past_days": 2,
            "forecast_days": 2,
        }
        if cfg.models:
            params["models"] = cfg.models
        try:
            resp = bounded_get(f"{cfg.base_url}/v1/forecast", params=params, timeout_s=cfg.timeout_s,
                               deadline_s=cfg.deadline_s, max_bytes=cfg.max_bytes)
        except BoundExceeded as exc:
            raise FeedError(self.name, str(exc)) from exc
        except requests.RequestException as exc:
            raise FeedError(self.name, failure_reason(exc, cfg.timeout_s)) from exc
        try:
            doc = resp.json()
        except ValueError:
            doc = None
        # Open-Meteo answers errors as HTTP 400 {"error": true, "reason": "..."}.
        if isinstance(doc, dict) and doc.get("error"):
            reason = doc.get("reason") or "no reason given"
            raise FeedError(self.name, f"Open-Meteo error: {reason}")
        if resp.status_code != 200:
            raise FeedError(self.name, f"HTTP {resp.status_code}")
        if not isinstance(doc, dict):
            raise FeedError(self.name, "malformed JSON")
        return doc


def night_weather(doc: dict[str, Any], night: Night, aloft: list[str], name: str) -> NightWeather:
    """Tonight's factor values from an Open-Meteo answer, or FeedError naming what is missing."""
    hourly = doc.get("hourly")
    if not isinstance(hourly, dict) or not isinstance(hourly.get("time"), list):
        raise FeedError(name, "wrong schema: no hourly.time in the response")
    for var in REQUIRED:
        if var not in hourly:
            raise FeedError(name, f"missing variable {var} in the response")
    units = doc.get("hourly_units") or {}
    wind_unit = units.get("wind_speed_10m") if isinstance(units, dict) else None
    if wind_unit and wind_unit not in ("m/s", "ms"):
        raise FeedError(name, f"wind_speed_10m is in {wind_unit}, expected m/s")
    present_aloft = [v for v in aloft if v in hourly]
    if not present_aloft:
        raise FeedError(name, f"missing variable {' / '.join(aloft)} in the response")

    series = _Series(hourly, night, name)
    tonight = series.night_hours()
    t2m = series.values("temperature_2m", tonight)
    wind = series.values("wind_speed_10m", tonight)
    rh = series.values("relative_humidity_2m", tonight)
    codes = series.values("weather_code", tonight)
    series.values("surface_pressure", tonight)  # raises when it is all null tonight

    inversions = []
    for t in tonight:
        base = series.at("temperature_2m", t)
        above = _aloft_above_ground(series, present_aloft, t)
        if base is not None and above:
            inversions.append(max(above) - base)
    if not inversions:
        names = ", ".join(present_aloft)
        raise FeedError(name, f"no temperature aloft above ground for the night ({names})")

    cloud = series.values("cloud_cover", tonight, required=False) if "cloud_cover" in hourly else []
    return NightWeather(
        wind_ms=fmean(wind),
        inversion_c=max(inversions),
        humidity_pct=fmean(rh),
        fog_hours=sum(1 for c in codes if int(c) in FOG_CODES),
        temp_change_c=series.day_change("temperature_2m", tonight),
        pressure_change_hpa=series.day_change("surface_pressure", tonight),
        min_temp_c=min(t2m),
        cloud_pct=fmean(cloud) if cloud else None,
    )


def _aloft_above_ground(series: _Series, names: list[str], t: datetime) -> list[float]:
    """Temperatures aloft at ``t``: every height level, the lowest above-ground pressure level."""
    temps: list[float] = []
    surface = series.at("surface_pressure", t)
    best_level: tuple[int, float] | None = None
    for n in names:
        value = series.at(n, t)
        if value is None:
            continue
        m = _ALOFT.match(n)
        assert m is not None  # names were validated in the config
        level, kind = int(m.group(1)), m.group(2)
        if kind == "m":
            temps.append(value)
        elif surface is not None and level < surface:
            if best_level is None or level > best_level[0]:
                best_level = (level, value)
    if best_level is not None:
        temps.append(best_level[1])
    return temps


class _Series:
    """Hourly values looked up by local time."""

    def __init__(self, hourly: dict[str, Any], night: Night, name: str) -> None:
        self.hourly = hourly
        self.night = night
        self.name = name
        self.index: dict[datetime, int] = {}
        for i, s in enumerate(hourly["time"]):
            try:
                # Local wall-clock times, because we asked for the town's timezone.
                when = datetime.fromisoformat(str(s)).replace(tzinfo=night.tz)
            except ValueError:
                raise FeedError(name, f"wrong schema: hourly.time[{i}] = {s!r}") from None
            self.index[when] = i

    def night_hours(self) -> list[datetime]:
        hours = sorted(t for t in self.index if self.night.start <= t < self.night.end)
        if not hours:
            raise FeedError(self.name, f"the response has no hours of the night {self.night.date}")
        return hours

    def at(self, var: str, t: datetime) -> float | None:
        column = self.hourly.get(var)
        i = self.index.get(t)
        if not isinstance(column, list) or i is None or i >= len(column):
            return None
        v = column[i]
        if v is None:
            return None
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise FeedError(self.name, f"wrong schema: {var} has a non-number value {v!r}")
        return float(v)

    def values(self, var: str, hours: list[datetime], required: bool = True) -> list[float]:
        vals = [v for t in hours if (v := self.at(var, t)) is not None]
        if required and not vals:
            reason = f"variable {var} has no values for the night {self.night.date}"
            raise FeedError(self.name, reason)
        return vals

    def day_change(self, var: str, hours: list[datetime]) -> float:
        """Mean of ``var`` tonight minus its mean over the same hours 24 h earlier."""
        pairs = [
            (now, then)
            for t in hours
            if (now := self.at(var, t)) is not None and (then := self.at(var, t - _DAY)) is not None
        ]
        if not pairs:
            reason = f"variable {var} has no values 24 h before the night {self.night.date}"
            raise FeedError(self.name, reason)
        return fmean(p[0] for p in pairs) - fmean(p[1] for p in pairs)
