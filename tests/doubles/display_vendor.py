"""Loopback double of a documented vendor LED protocol: Xixun/Sysolution (熙讯) RealtimeServer.

Source: the vendor SDK in Sysolution-ledok/Sysolution-xixun-test (shared/reference/
group-chats-and-displays.md §5.1), files ``xixun-SDK/2.Realtime Solution/Realtime Communication
Data Protocols/{Protocols Introduction and Communication Types Explanation,XixunPlayer
Solution}.md`` and the server itself, ``xixun-SDK/RealtimeServer/{routes/index.js,
webViewServer.js,config.js}``. The controller keeps a WebSocket open *to* the RealtimeServer
(it dials out, so NAT'd 4G screens work); an application drives it with plain HTTP:

``POST /command/{cardId}``, ``Content-Type: application/json; charset=UTF-8``, body one JSON
command, e.g. ``{"type":"commandXixunPlayer","_id":"..","command":{"_type":"PlayXixunTask",
..,"task":{..}}}``, ``{"type":"clearPlayerTask"}``, ``{"type":"getPlayingProgram"}``.

What the server answers (from its source): 200 with the card's JSON reply
(``{"_type":"success","_id":..,"timestamp":..}``); 500 with the plain text
``"{cardId} does not exist!"`` when the card is not connected, the card's error ``message`` when
it answers ``_type: error``, or ``"timeout"`` when it does not answer. A reply of another
``_type`` (e.g. the player's ``{"_type":"Error","errorMessage":..}``) comes back as **200**, so
a client must read ``_type``. ``config.js`` defines an ``authorization`` header secret; the
answer to a wrong one is not in the published source, so the double's 401 is an assumption.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .faults import FaultPlan
from .server import LoopbackDouble, Request, Response

_PATH = re.compile(r"^/command/(?P<card>[^/]+)$")
_TAG = re.compile(r"<[^>]+>")


@dataclass
class XixunProgram:
    """What a card plays after a ``PlayXixunTask``."""

    task_name: str
    texts: list[str]  # SingleLineText / MultiLineText html, tags stripped
    images: list[str]  # Image/Video source url (or preDownloadURL + id)
    web_urls: list[str]  # WebURL sources
    schedules: list[dict[str, Any]]
    command: dict[str, Any]
    received: float = field(default_factory=time.monotonic)


@dataclass
class XixunRequest:
    """One request to the RealtimeServer double (``status`` None = socket reset)."""

    arrived: float
    card: str | None
    body: Any
    status: int | None = None
    reply: Any = None
    fault: str | None = None


class XixunRealtimeDouble(LoopbackDouble):
    """A RealtimeServer with ``cards`` connected. ``auth`` (config.js ``auth``) is required
    in the ``authorization`` header when set."""

    def __init__(self, cards: tuple[str, ...] = ("y10-c14-00140",), auth: str | None = None,
                 faults: FaultPlan | None = None, *, port: int = 0) -> None:
        super().__init__(faults, port=port)
        self.online: set[str] = set(cards)
        self.auth = auth
        self.screens: dict[str, XixunProgram | None] = {c: None for c in cards}
        self._scripted: dict[str, deque[tuple[str, str]]] = {}
        self._requests: list[XixunRequest] = []

    def command_url(self, card: str) -> str:
        """``http://127.0.0.1:PORT/command/{card}``."""
        return f"{self.url}/command/{card}"

    def fail_next(self, card: str, kind: str = "error", message: str = "no space left") -> None:
        """Script the card's next answer: ``"error"`` (card says ``_type: error`` -> HTTP 500
        with the message), ``"player_error"`` (``{"_type":"Error"}`` -> HTTP 200), or
        ``"timeout"`` (no answer -> HTTP 500 ``timeout``)."""
        self._scripted.setdefault(card, deque()).append((kind, message))

    @property
    def requests(self) -> list[XixunRequest]:
        """Every request so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        m = _PATH.match(req.path)
        reply: Any = None
        if resp is not None and resp.body:
            try:
                reply = json.loads(resp.body)
            except ValueError:
                reply = resp.body.decode("utf-8", "replace")
        rec = XixunRequest(req.arrived, m.group("card") if m else None,
                           getattr(req, "xixun_body", None),
                           resp.status if resp is not None else None, reply, fault)
        with self._lock:
            self._requests.append(rec)

    def handle(self, req: Request) -> Response:
        m = _PATH.match(req.path)
        if m is None or req.method != "POST":
            return _text(404, f"Cannot {req.method} {req.path}")  # express's default 404 text
        if self.auth is not None and req.header("authorization") != self.auth:
            return _text(401, "Unauthorized")  # assumption, see the module doc
        card = m.group("card")
        try:
            data = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return _text(400, "Bad Request")  # express.json() rejects malformed bodies
        req.xixun_body = data  # type: ignore[attr-defined]
        if card not in self.online:
            return _text(500, f"{card} does not exist!")
        cmd_id = data.get("_id") or str(uuid.uuid4())  # the server fills a missing _id
        script = self._scripted.get(card)
        if script:
            kind, message = script.popleft()
            if kind == "player_error":
                reply = {"_type": "Error", "errorMessage": message, "_id": cmd_id}
                return Response.json(200, reply)
            return _text(500, "timeout" if kind == "timeout" else message)
        return Response.json(200, self._execute(card, cmd_id, data))

    def _execute(self, card: str, cmd_id: str, data: dict[str, Any]) -> dict[str, Any]:
        ok = {"_type": "success", "_id": cmd_id, "timestamp": int(time.time() * 1000)}
        kind = data.get("type")
        with self._lock:
            if kind == "commandXixunPlayer":
                command = data.get("command") or {}
                task = command.get("task")
                if command.get("_type") != "PlayXixunTask" or not isinstance(task, dict):
                    return {"_type": "error", "message": "unknown command", "_id": cmd_id}
                self.screens[card] = _program(command)
            elif kind == "clearPlayerTask":
                self.screens[card] = None
            elif kind == "getPlayingProgram":
                prog = self.screens.get(card)
                return {**ok, "name": prog.task_name if prog else ""}
            elif kind == "getProgramTask":
                prog = self.screens.get(card)
                task = {"task": prog.command["task"]} if prog else {}
                return {**ok, "data": json.dumps(task, ensure_ascii=False)}
        return ok


def _program(command: dict[str, Any]) -> XixunProgram:
    """Flatten a PlayXixunTask into what a passer-by would see."""
    task = command["task"]
    texts, images, web_urls, schedules = [], [], [], []
    for item in task.get("items") or []:
        schedules += item.get("schedules") or []
        for layer in (item.get("_program") or {}).get("layers") or []:
            for src in layer.get("sources") or []:
                kind = src.get("_type")
                if kind in ("SingleLineText", "MultiLineText"):
                    texts.append(_TAG.sub("", str(src.get("html", ""))).strip())
                elif kind in ("Image", "Video"):
                    base = command.get("preDownloadURL") or ""
                    images.append(src.get("url") or f"{base}{src.get('id', '')}")
                elif kind == "WebURL":
                    web_urls.append(str(src.get("url")))
    return XixunProgram(str(task.get("name", "")), texts, images, web_urls, schedules, command)


def _text(status: int, text: str) -> Response:
    return Response(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})
