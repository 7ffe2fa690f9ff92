"""Loopback double of the generic ``http`` display screen of DESIGN.md A12.

Show: ``POST {url}`` JSON ``{"delivery_id","text","level","color","from","until","image_url"}``
with ``Authorization: Bearer TOKEN`` and ``Idempotency-Key: {delivery_id}``; 2xx = shown.
Withdraw: ``DELETE {url}`` with the same ``Idempotency-Key``; 200 when it was on screen, 404
when it was not (both mean "not on screen now" to the adapter).

Answers: 401 bad token; 400 malformed (not JSON, missing or mistyped field, colour not
``#RRGGBB``, ``from``/``until`` not ISO 8601 with an offset, key differs from delivery_id);
200 shown. A repeated key is answered 200 again and counted as a duplicate, never shown twice.
Scripted statuses come from a ``FaultPlan`` keyed by the Idempotency-Key (e.g. ``{"d1": [429,
503]}``), applied before any of that; 408/429/5xx are what A12 says the adapter retries.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .faults import Fault, FaultPlan, ScriptItem
from .server import LoopbackDouble, Request, Response

FIELDS = ("delivery_id", "text", "level", "color", "from", "until", "image_url")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
# A12: ISO 8601 with the town's offset; seconds optional, no "Z" (it says "the town's offset").
_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?[+-]\d\d:\d\d$")


@dataclass
class Shown:
    """What a screen shows for one delivery."""

    delivery_id: str
    text: str
    level: int
    color: str
    from_: datetime
    until: datetime
    image_url: str | None
    payload: dict[str, Any]
    shown_at: float  # time.monotonic()


@dataclass
class DisplayRequest:
    """One request as the screen saw and answered it (``status`` None = socket reset)."""

    arrived: float
    method: str
    path: str
    idempotency_key: str | None
    body: bytes
    status: int | None = None
    fault: str | None = None
    error: str | None = None
    duplicate: bool = False
    answered: float | None = None


class HttpDisplayDouble(LoopbackDouble):
    """An ``http`` display endpoint on 127.0.0.1 (``display.show_url`` is its URL)."""

    def __init__(self, token: str = "led-token", script: list[ScriptItem] | None = None,
                 faults: FaultPlan | None = None, *, path: str = "/show", port: int = 0) -> None:
        if script is not None and faults is not None:
            raise ValueError("give script or faults, not both")
        super().__init__(faults or FaultPlan(script=list(script or [])), port=port)
        self.token, self.path = token, path
        self._requests: list[DisplayRequest] = []
        self._screen: dict[str, Shown] = {}  # on screen now, by delivery id
        self._history: list[tuple[str, str]] = []  # ("show"|"withdraw", delivery id)
        self._withdrawn: set[str] = set()

    @property
    def show_url(self) -> str:
        """The push URL, e.g. ``http://127.0.0.1:40123/show``."""
        return self.url + self.path

    # -- records ---------------------------------------------------------------------
    @property
    def requests(self) -> list[DisplayRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def on_screen(self, at: datetime | None = None) -> dict[str, Shown]:
        """Deliveries on screen now (shown, not withdrawn); with ``at``, only those whose
        ``from <= at < until`` (a screen stops showing at ``until`` on its own)."""
        with self._lock:
            items = dict(self._screen)
        if at is None:
            return items
        return {k: s for k, s in items.items() if s.from_ <= at < s.until}

    def current(self) -> Shown | None:
        """The most recently shown delivery still on screen (what a one-area screen shows)."""
        items = self.on_screen()
        return max(items.values(), key=lambda s: s.shown_at) if items else None

    @property
    def history(self) -> list[tuple[str, str]]:
        """("show" | "withdraw", delivery id) in the order they took effect."""
        with self._lock:
            return list(self._history)

    def duplicates(self) -> list[DisplayRequest]:
        """POSTs answered 200 for a key already shown (not shown again)."""
        return [r for r in self.requests if r.duplicate]

    def clear(self) -> None:
        """Forget requests, history and the screen."""
        with self._lock:
            self._requests.clear()
            self._screen.clear()
            self._history.clear()
            self._withdrawn.clear()

    # -- hooks -----------------------------------------------------------------------
    def fault_key(self, req: Request) -> str | None:
        return req.header("idempotency-key")

    def fault_response(self, fault: Fault) -> Response:
        resp = super().fault_response(fault)
        resp.body = json.dumps({"error": f"injected {fault.status}"}).encode()
        return resp

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        info = getattr(req, "display_info", {})
        rec = DisplayRequest(
            arrived=req.arrived, method=req.method, path=req.path,
            idempotency_key=req.header("idempotency-key"), body=req.body, fault=fault,
            status=resp.status if resp is not None else None, error=info.get("error"),
            duplicate=info.get("duplicate", False), answered=time.monotonic(),
        )
        with self._lock:
            self._requests.append(rec)

    # -- the protocol ----------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        info: dict[str, Any] = {}
        req.display_info = info  # type: ignore[attr-defined]  # read by on_answer

        def reject(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
            info["error"] = error
            return Response.json(status, {"error": error}, headers)

        if req.path != self.path:
            return reject(404, f"no such path {req.path}")
        if req.method not in ("POST", "DELETE"):
            return reject(405, "use POST or DELETE", {"Allow": "POST, DELETE"})
        auth = req.header("authorization") or ""
        given = auth[7:].encode() if auth.startswith("Bearer ") else b""
        if not secrets.compare_digest(given, self.token.encode()):
            return reject(401, "bad or missing bearer token", {"WWW-Authenticate": "Bearer"})
        key = req.header("idempotency-key")
        if not key:
            return reject(400, "missing Idempotency-Key")
        if req.method == "DELETE":
            with self._lock:
                gone = self._screen.pop(key, None)
                if gone is not None:
                    self._history.append(("withdraw", key))
                    self._withdrawn.add(key)
            if gone is None:
                return reject(404, f"{key} is not on screen")
            return Response.json(200, {"status": "withdrawn", "delivery_id": key})
        return self._show(req, key, reject)

    def _show(self, req: Request, key: str, reject: Any) -> Response:
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return reject(400, "body is not JSON")
        if not isinstance(body, dict):
            return reject(400, "body is not a JSON object")
        missing = [f for f in FIELDS if f not in body]
        if missing:
            return reject(400, f"missing field(s): {missing}")
        if str(body["delivery_id"]) != key:
            return reject(400, "Idempotency-Key differs from delivery_id")
        level = body["level"]
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 5:
            return reject(400, "level must be an integer 1-5")
        if not isinstance(body["text"], str) or not body["text"].strip():
            return reject(400, "text must be a non-empty string")
        if not isinstance(body["color"], str) or not _COLOR.match(body["color"]):
            return reject(400, "color must be #RRGGBB")
        times = {}
        for name in ("from", "until"):
            value = body[name]
            if not isinstance(value, str) or not _ISO.match(value):
                return reject(400, f"{name} must be ISO 8601 with a ±hh:mm offset")
            times[name] = datetime.fromisoformat(value)
        if times["until"] <= times["from"]:
            return reject(400, "until must be after from")
        image = body["image_url"]
        if image is not None and not (isinstance(image, str) and image.startswith("http")):
            return reject(400, "image_url must be an http(s) URL or null")
        with self._lock:
            info = req.display_info  # type: ignore[attr-defined]
            # Idempotent on the key: a retry after a lost answer, or after a withdraw, must
            # not bring the text back.
            info["duplicate"] = key in self._screen or key in self._withdrawn
            if not info["duplicate"]:
                self._screen[key] = Shown(key, body["text"], level, body["color"].upper(),
                                          times["from"], times["until"], image, body,
                                          time.monotonic())
                self._history.append(("show", key))
        return Response.json(200, {"status": "shown", "delivery_id": key,
                                   "duplicate": info["duplicate"]})
