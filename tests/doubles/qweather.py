"""A loopback double of the QWeather weather-alert API (``/weatheralert/v1/current/{lat}/{lon}``).

It speaks the documented JSON (shared reference ``co-index.md`` §3.2), gzip-compressed like the
real service, checks the ``X-QW-Api-Key`` header (401 with a v2 error body otherwise) and the
two-decimal coordinates, and records every request. Faults: ``mode = "malformed" | "slow" | "500"``.

    with QWeatherDouble(key="k") as qw:
        qw.alerts = [make_alert(code="1068", color="yellow")]
        ... QWeatherConfig(api_host=qw.url, key="k", ...)
"""

from __future__ import annotations

import gzip
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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
    """One request the double received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class QWeatherDouble:
    """A QWeather alert endpoint on 127.0.0.1; use as a context manager."""

    key: str = "test-key"
    alerts: list[dict[str, Any]] = field(default_factory=list)
    zero_result: bool | None = None  # None: true exactly when ``alerts`` is empty
    mode: str = "ok"  # ok | malformed | slow | 500
    delay_s: float = 2.0  # how long "slow" stalls before answering
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def body(self) -> dict[str, Any]:
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

    def __enter__(self) -> QWeatherDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                split = urlsplit(self.path)
                double.requests.append(
                    Request(split.path, parse_qs(split.query), {k: v for k, v in self.headers.items()})
                )
                if self.headers.get("X-QW-Api-Key") != double.key:
                    return self._problem(401, "Unauthorized", "Invalid authentication credentials.")
                if not _PATH.match(split.path):
                    return self._problem(400, "Invalid Parameter", "latitude/longitude", ["location"])
                if double.mode == "500":
                    return self._send(500, b"internal error", "text/plain")
                if double.mode == "slow" and double._stop.wait(double.delay_s):
                    return
                if double.mode == "malformed":
                    return self._send(200, b'{"metadata": {"zeroResult": fal', "application/json")
                self._send(200, json.dumps(double.body(), ensure_ascii=False).encode(), "application/json")

            def _problem(self, status: int, title: str, detail: str, params: list | None = None) -> None:
                err: dict[str, Any] = {
                    "status": status,
                    "type": f"https://dev.qweather.com/docs/resource/error-code/#{title.lower()}",
                    "title": title,
                    "detail": detail,
                }
                if params:
                    err["invalidParams"] = params
                self._send(status, json.dumps({"error": err}).encode(), "application/problem+json")

            def _send(self, status: int, payload: bytes, ctype: str) -> None:
                data = gzip.compress(payload)  # the real API always answers gzip
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                    self.send_header("Content-Encoding", "gzip")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout test)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
