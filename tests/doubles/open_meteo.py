"""A loopback double of the Open-Meteo forecast API (``GET /v1/forecast``).

It answers with the documented shape (shared reference ``co-index.md`` §4): local-time hourly
values for ``past_days`` days before ``today`` and ``forecast_days`` days from it, only the
variables asked for, wind in km/h unless ``wind_speed_unit=ms``, and an error body
``{"error": true, "reason": ...}`` with HTTP 400 for an unknown variable or when told to.
The weather comes from a :class:`Scenario`: tonight's values, and a day earlier shifted by
``dt24`` / ``dp24``. Faults: ``mode = "malformed" | "slow" | "500"``, or a ``FaultPlan`` like
every double on the shared server base.

    with OpenMeteoDouble(night=date(2025, 12, 20), scenario=CALM_FOGGY) as om:
        ... OpenMeteoConfig(base_url=om.url, ...)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from .faults import FaultPlan
from .server import LoopbackDouble, Request, Response

_SIMPLE = {
    "temperature_2m": "°C",
    "relative_humidity_2m": "%",
    "wind_speed_10m": "m/s",
    "surface_pressure": "hPa",
    "cloud_cover": "%",
    "weather_code": "wmo code",
}
_LEVEL = re.compile(r"^temperature_(\d+)(m|hPa)$")


@dataclass(frozen=True)
class Scenario:
    """Tonight's weather (constant over 20:00-08:00) and how it differs from a day earlier."""

    wind: float = 1.0  # m/s
    rh: float = 85.0  # %
    fog: bool = False  # weather code 45 from 23:00 to 07:00
    inversion: float = 2.0  # °C, temperature aloft minus 2 m temperature
    t2m: float = -5.0  # °C
    dt24: float = 1.0  # tonight minus the same hours a day earlier, °C
    dp24: float = 0.0  # same for surface pressure, hPa
    pressure: float = 1022.0  # hPa
    cloud: float = 40.0  # %

    def at(self, t: datetime, night_start: datetime) -> dict[str, float]:
        """Every variable at local (naive) time ``t``."""
        k = (t - night_start) / timedelta(hours=1)
        if 0 <= k < 12:  # tonight
            fog = self.fog and k >= 3
            return self._values(self.t2m, self.pressure, self.wind, self.rh, self.inversion,
                                45 if fog else 3, 95.0 if fog else self.cloud)
        if -24 <= k < -12:  # the same hours a day earlier: an unremarkable night
            return self._values(self.t2m - self.dt24, self.pressure - self.dp24, 3.0, 60.0, -1.0, 2, 30.0)
        return self._values(self.t2m + 6, self.pressure, 3.0, 45.0, -3.0, 1, 20.0)  # daytime

    @staticmethod
    def _values(t2m: float, p: float, wind: float, rh: float, inv: float, code: int,
                cloud: float) -> dict[str, float]:
        return {"temperature_2m": t2m, "surface_pressure": p, "wind_speed_10m": wind,
                "relative_humidity_2m": rh, "weather_code": code, "cloud_cover": cloud,
                "_inversion": inv}


# Two ready-made nights: one that must score 4-5, one that must score 1-2.
CALM_FOGGY = Scenario(wind=0.8, rh=92, fog=True, inversion=2.5, t2m=-6, dt24=0.5, dp24=-2)
WINDY_DRY = Scenario(wind=6.5, rh=35, fog=False, inversion=-2.0, t2m=-2, dt24=-7.0, dp24=6)


def _aloft(name: str, v: dict[str, float]) -> float | None:
    m = _LEVEL.match(name)
    if not m:
        return None
    height, kind = int(m.group(1)), m.group(2)
    if kind == "m":
        return v["temperature_2m"] + v["_inversion"]
    above_ground_m = (v["surface_pressure"] - height) * 8.3  # ~8.3 m per hPa near the ground
    if above_ground_m <= 0:  # below ground: extrapolated warm, so using it would fake an inversion
        return v["temperature_2m"] + 5.0
    return v["temperature_2m"] + v["_inversion"] - 0.0065 * max(0.0, above_ground_m - 300)


class OpenMeteoDouble(LoopbackDouble):
    """An Open-Meteo forecast endpoint on 127.0.0.1; use as a context manager.

    Every attribute (``scenario``, ``today``, ``drop``, ``nulls``, ``error_reason``, ``mode``,
    ``delay_s``) may be changed while it runs; ``requests`` holds each request's query.
    """

    def __init__(
        self,
        night: date,
        scenario: Scenario | None = None,
        today: date | None = None,
        drop: set[str] | None = None,
        nulls: set[str] | None = None,
        error_reason: str | None = None,
        mode: str = "ok",
        delay_s: float = 2.0,
        *,
        faults: FaultPlan | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(faults, port=port)
        self.night = night
        self.scenario = scenario or Scenario()
        self.today = today  # the "now" of the double; defaults to ``night``
        self.drop: set[str] = set(drop or ())  # variables left out of the answer
        self.nulls: set[str] = set(nulls or ())  # variables answered as all null
        self.error_reason = error_reason  # answer 400 {"error": true, "reason": ...}
        self.mode = mode  # ok | malformed | slow | 500
        self.delay_s = delay_s  # how long "slow" stalls before answering
        self.requests: list[dict[str, list[str]]] = []

    def with_scenario(self, **changes: Any) -> None:
        """Change some of tonight's weather, keeping the rest of the scenario."""
        self.scenario = replace(self.scenario, **changes)

    def answer(self, q: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for query ``q``."""
        if self.error_reason:
            return 400, {"error": True, "reason": self.error_reason}
        names = [n for n in q.get("hourly", [""])[0].split(",") if n]
        for n in names:
            if n not in _SIMPLE and not _LEVEL.match(n):
                return 400, {"error": True, "reason": "Cannot initialize WeatherVariable from invalid "
                             f"String value {n} for key hourly"}
        tz_name = q.get("timezone", ["GMT"])[0]
        ms = q.get("wind_speed_unit", ["kmh"])[0] == "ms"
        past, ahead = int(q.get("past_days", ["0"])[0]), int(q.get("forecast_days", ["7"])[0])
        today = self.today or self.night
        start = datetime.combine(today - timedelta(days=past), time(0))
        hours = [start + timedelta(hours=h) for h in range(24 * (past + ahead))]
        night_start = datetime.combine(self.night, time(20))
        rows = [self.scenario.at(t, night_start) for t in hours]
        hourly: dict[str, list] = {"time": [t.strftime("%Y-%m-%dT%H:%M") for t in hours]}
        units = {"time": "iso8601"}
        for n in names:
            if n in self.drop:
                continue
            if n in _SIMPLE:
                col = [r[n] for r in rows]
                if n == "wind_speed_10m" and not ms:
                    col = [round(v * 3.6, 1) for v in col]
            else:
                col = [_aloft(n, r) for r in rows]
            hourly[n] = [None] * len(col) if n in self.nulls else col
            units[n] = "km/h" if n == "wind_speed_10m" and not ms else _SIMPLE.get(n, "°C")
        offset = ZoneInfo(tz_name).utcoffset(night_start) if tz_name != "GMT" else timedelta(0)
        return 200, {
            "latitude": round(float(q.get("latitude", ["0"])[0]), 2),
            "longitude": round(float(q.get("longitude", ["0"])[0]), 2),
            "elevation": 81.0,
            "generationtime_ms": 0.5,
            "utc_offset_seconds": int(offset.total_seconds()) if offset else 0,
            "timezone": tz_name,
            "timezone_abbreviation": "GMT+8",
            "hourly_units": units,
            "hourly": hourly,
        }

    # -- hooks -----------------------------------------------------------------------
    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        # Recorded for every request, answered or not (a reset, a client that gave up).
        with self._lock:
            self.requests.append(req.query)

    def handle(self, req: Request) -> Response:
        if req.method != "GET":
            return _send(405, b'{"error":true,"reason":"Method Not Allowed"}')
        if req.path != "/v1/forecast":
            return _send(404, b'{"error":true,"reason":"Not Found"}')
        if self.mode == "500":
            return _send(500, b"<html>502 Bad Gateway</html>")
        if self.mode == "malformed":
            return _send(200, b'{"latitude": 38.0, "hourly": {"time": [')
        status, body = self.answer(req.query)
        resp = _send(status, json.dumps(body).encode())
        if self.mode == "slow":
            resp.delay_s = self.delay_s  # a loop timer: stop() abandons it at once
        return resp


def _send(status: int, payload: bytes) -> Response:
    # Open-Meteo labels every answer JSON, even its proxy's HTML error pages.
    return Response(status, payload, {"Content-Type": "application/json; charset=utf-8"})
