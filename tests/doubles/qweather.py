"""A loopback double of the QWeather weather-alert API (``/weatheralert/v1/current/{lat}/{lon}``).

It speaks the documented JSON (shared reference ``co-index.md`` §3.2), gzip-compressed like the
real service, checks the ``X-QW-Api-Key`` header (401 with a v2 error body otherwise) and the
two-decimal coordinates, and records every request. Faults: ``mode = "malformed" | "slow" | "500"``,
or a ``FaultPlan`` (latency, 429, resets...) like every double on the shared server base.

    with QWeatherDouble(key="k") as qw:
        qw.alerts = [make_alert(code="1068", color="yellow")]
        ... QWeatherConfig(api_host=qw.url, key="k", ...)
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from requests.structures import CaseInsensitiveDict

from .faults import FaultPlan
from .server import LoopbackDouble, Response
from .server import Request as HttpRequest

_PATH = re.compile(r"^/weatheralert/v1/current/(-?\d{1,2}(?:\.\d{1,2})?)/(-?\d{1,3}(?:\.\d{1,2})?)$")
_SEVERITY = {"blue": "minor", "yellow": "moderate", "orange": "severe", "red": "extreme"}
_CN = {"blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
_RGB = {"blue": (30, 50, 205), "yellow": (255, 200, 0), "orange": (255, 120, 0), "red": (220, 20, 20)}


def _t(when: datetime | None) -> str | None:
    # QWeather writes minutes without seconds: 2025-10-24T11:19+08:00
    return when.isoformat(timespec="minutes") if when else None


def make_alert(
    *,
    code: str = "1068",
    name: str = "一氧化碳中毒气象条件",
    color: str | None = "yellow",
    severity: str | None = "auto",
    issued: datetime,
    effective: datetime | None = None,
    onset: datetime | None = None,
    expires: datetime | None = None,
    alert_id: str | None = None,
    message_type: str = "alert",
    supersedes: list[str] | None = None,
    sender: str | None = "XX县气象台",
) -> dict[str, Any]:
    """One alert as the API documents it. ``severity="auto"`` follows the colour."""
    if severity == "auto":
        severity = _SEVERITY.get(color or "", "unknown")
    r, g, b = _RGB.get(color or "", (0, 0, 0))
    colour = {"code": color, "red": r, "green": g, "blue": b, "alpha": 1} if color else None
    mt: dict[str, Any] = {"code": message_type}
    if supersedes:
        mt["supersedes"] = supersedes
    return {
        "id": alert_id or f"{issued:%Y%m%d%H%M}{code}000001",
        "senderName": sender,
        "issuedTime": _t(issued),
        "messageType": mt,
        "eventType": {"name": name, "code": code},
        "urgency": None,
        "severity": severity,
        "certainty": None,
        "icon": code,
        "color": colour,
        "effectiveTime": _t(effective if effective is not None else issued),
        "onsetTime": _t(onset),
        "expiredTime": _t(expires if expires is not None else issued + timedelta(hours=24)),
        "headline": f"XX县气象台发布{name}{_CN.get(color or '', '')}预警",
        "description": "预计今天夜间到明天早晨，风小湿度大，易形成逆温，一氧化碳中毒气象条件等级较高。",
        "criteria": "",
    }


@dataclass
class Request:
    """One request the double received.

    ``headers`` looks names up case-insensitively (``headers["X-QW-Api-Key"]``), as they were
    sent; the shared server base stores them lower-cased.
    """

    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]


class QWeatherDouble(LoopbackDouble):
    """A QWeather alert endpoint on 127.0.0.1; use as a context manager.

    ``alerts``, ``zero_result``, ``mode`` and ``delay_s`` may be changed while it runs.
    """

    def __init__(
        self,
        key: str = "test-key",
        alerts: list[dict[str, Any]] | None = None,
        zero_result: bool | None = None,
        mode: str = "ok",
        delay_s: float = 2.0,
        *,
        faults: FaultPlan | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(faults, port=port)
        self.key = key
        self.alerts: list[dict[str, Any]] = list(alerts or [])
        self.zero_result = zero_result  # None: true exactly when ``alerts`` is empty
        self.mode = mode  # ok | malformed | slow | 500
        self.delay_s = delay_s  # how long "slow" stalls before answering
        self.requests: list[Request] = []

    def body(self) -> dict[str, Any]:
        """The JSON document a good answer carries, from ``alerts`` and ``zero_result``."""
        zero = (not self.alerts) if self.zero_result is None else self.zero_result
        doc: dict[str, Any] = {
            "metadata": {
                "tag": "0" * 64,
                "zeroResult": zero,
                "attributions": ["https://developer.qweather.com/attribution.html"],
            }
        }
        if not zero:
            doc["alerts"] = self.alerts
        return doc

    # -- hooks -----------------------------------------------------------------------
    def on_answer(self, req: HttpRequest, resp: Response | None, fault: str | None) -> None:
        # Recorded for every request, answered or not (a reset, a client that gave up).
        rec = Request(req.path, req.query, CaseInsensitiveDict(req.headers))
        with self._lock:
            self.requests.append(rec)

    def handle(self, req: HttpRequest) -> Response:
        if req.method != "GET":
            return _send(405, json.dumps({"error": "use GET"}).encode(), "application/json")
        if req.header("x-qw-api-key") != self.key:
            return _problem(401, "Unauthorized", "Invalid authentication credentials.")
        if not _PATH.match(req.path):
            return _problem(400, "Invalid Parameter", "latitude/longitude", ["location"])
        if self.mode == "500":
            return _send(500, b"internal error", "text/plain")
        if self.mode == "malformed":
            return _send(200, b'{"metadata": {"zeroResult": fal', "application/json")
        resp = _send(200, json.dumps(self.body(), ensure_ascii=False).encode(), "application/json")
        if self.mode == "slow":
            resp.delay_s = self.delay_s  # a loop timer: stop() abandons it at once
        return resp


def _problem(status: int, title: str, detail: str, params: list[str] | None = None) -> Response:
    """QWeather's v2 error body (``application/problem+json``)."""
    err: dict[str, Any] = {
        "status": status,
        "type": f"https://dev.qweather.com/docs/resource/error-code/#{title.lower()}",
        "title": title,
        "detail": detail,
    }
    if params:
        err["invalidParams"] = params
    return _send(status, json.dumps({"error": err}).encode(), "application/problem+json")


def _send(status: int, payload: bytes, ctype: str) -> Response:
    # The real API always answers gzip, whatever the client offered.
    headers = {"Content-Type": f"{ctype}; charset=utf-8", "Content-Encoding": "gzip"}
    return Response(status, gzip.compress(payload, mtime=0), headers)
