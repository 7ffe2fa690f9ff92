"""Common machinery of the group-chat robot doubles (WeCom, DingTalk, Feishu).

The three robots share one behaviour that matters to an adapter: they answer **HTTP 200 with
an error code in the JSON body** for nearly every rejection (bad key, bad signature, keyword
missing, rate limit, bad payload). ``ChatRobotDouble`` implements that pipeline once:

route -> method -> robot lookup -> scripted answer -> body size -> JSON -> security (signature,
keywords, IP list) -> message shape -> rate limit -> accept and record.

Vendors subclass it and fill in the hooks (see ``chats.py``). Time is injectable: ``advance(s)``
moves both the wall clock used for signature timestamps and the monotonic clock of the rate
windows, so a test can cross a 10-minute DingTalk block without sleeping.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, ClassVar, Iterable

from .faults import Fault, FaultPlan
from .server import LoopbackDouble, Request, Response

Error = tuple[int, str]  # (vendor code, vendor message)


@dataclass(frozen=True)
class Robot:
    """One robot (one group) as the vendor knows it.

    ``token`` is the WeCom ``key`` / DingTalk ``access_token`` / Feishu hook token.
    ``secret`` turns on signing (DingTalk 加签, Feishu 签名校验); ``keywords`` turns on the
    custom-keyword check (the text must contain at least one); ``allowed_ips`` an IP list.
    """

    token: str
    secret: str | None = None
    keywords: tuple[str, ...] = ()
    allowed_ips: tuple[str, ...] = ()


@dataclass
class ChatMessage:
    """An accepted message, as the group would display it."""

    vendor: str
    robot: str
    msgtype: str
    body: dict[str, Any]
    arrived: float  # the double's monotonic clock (includes ``advance``)
    received_at: datetime  # the double's wall clock, UTC

    @property
    def text(self) -> str:
        """All human-visible strings of the message joined by newlines (for assertions)."""
        return "\n".join(_strings(self.body.get(self.msgtype) or self.body.get("content")
                                  or self.body.get("card") or {}))


@dataclass
class ChatRequest:
    """One request as the double saw and answered it (``status`` None = socket reset)."""

    arrived: float
    method: str
    path: str
    query: dict[str, list[str]]
    robot: str | None
    body: Any  # parsed JSON, or None when it did not parse
    raw: bytes
    status: int | None = None
    code: int | None = None  # vendor code in the answer body (0 = accepted)
    msg: str | None = None
    fault: str | None = None
    answered: float | None = None


class ChatRobotDouble(LoopbackDouble):
    """Base of the robot doubles. Subclasses set the class constants and the hooks."""

    vendor: ClassVar[str] = ""
    code_field: ClassVar[str] = "errcode"
    msg_field: ClassVar[str] = "errmsg"
    rate_error: ClassVar[Error] = (0, "")

    def __init__(
        self,
        robots: Iterable[str | Robot] = ("test-token",),
        *,
        per_minute: int = 20,
        per_second: int | None = None,
        block_s: float = 0.0,
        body_limit: int = 20_000,
        faults: FaultPlan | None = None,
        clock: Callable[[], float] = time.time,
        port: int = 0,
    ) -> None:
        super().__init__(faults, port=port)
        self.robots: dict[str, Robot] = {}
        for r in robots:
            self.add_robot(r)
        self.per_minute, self.per_second, self.block_s = per_minute, per_second, block_s
        self.body_limit = body_limit
        self._clock = clock
        self._skew = 0.0
        self._sent: dict[str, deque[float]] = {}  # robot -> accepted times (monotonic)
        self._blocked_until: dict[str, float] = {}
        self._scripted: deque[tuple[str | None, Error]] = deque()
        self._requests: list[ChatRequest] = []
        self._messages: list[ChatMessage] = []
        self._guard = threading.Lock()  # rate state and scripts; records use self._lock

    # -- set-up ----------------------------------------------------------------------
    def add_robot(self, robot: str | Robot) -> Robot:
        """Register a robot (a bare string is a token without security settings)."""
        r = robot if isinstance(robot, Robot) else Robot(robot)
        self.robots[r.token] = r
        return r

    def webhook_url(self, token: str | None = None) -> str:
        """The webhook URL as the vendor shows it to the group owner."""
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Move the double's wall and monotonic clocks forward (rate windows, blocks,
        signature timestamps) without sleeping."""
        with self._guard:
            self._skew += seconds

    def now(self) -> float:
        """The double's wall clock in seconds (what it checks timestamps against)."""
        return self._clock() + self._skew

    def _mono(self) -> float:
        return time.monotonic() + self._skew

    def fail_next(self, code: int, msg: str | None = None, n: int = 1,
                  robot: str | None = None) -> None:
        """Answer the next ``n`` requests (of ``robot``, or any) with this vendor code."""
        with self._guard:
            text = msg if msg is not None else f"injected {code}"
            self._scripted.extend([(robot, (code, text))] * n)

    def rate_limit_next(self, n: int = 1, robot: str | None = None) -> None:
        """Answer the next ``n`` requests with the vendor's rate-limit code."""
        self.fail_next(*self.rate_error, n=n, robot=robot)

    # -- records ---------------------------------------------------------------------
    @property
    def requests(self) -> list[ChatRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def messages(self) -> list[ChatMessage]:
        """Accepted messages in arrival order (a copy)."""
        with self._lock:
            return list(self._messages)

    def messages_for(self, token: str) -> list[ChatMessage]:
        """Accepted messages of one robot."""
        return [m for m in self.messages if m.robot == token]

    def rejected(self, code: int | None = None) -> list[ChatRequest]:
        """Requests answered with a non-zero vendor code (optionally only ``code``)."""
        return [r for r in self.requests if r.code not in (None, 0)
                and (code is None or r.code == code)]

    def max_per_window(self, token: str | None = None, window_s: float = 60.0) -> int:
        """Largest number of accepted messages inside any ``window_s`` (client pacing check)."""
        times = [m.arrived for m in self.messages if token is None or m.robot == token]
        best, start = 0, 0
        for end, t in enumerate(times):
            while t - times[start] >= window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def clear(self) -> None:
        """Forget records, rate windows, blocks and scripted answers."""
        with self._lock, self._guard:
            self._requests.clear()
            self._messages.clear()
            self._sent.clear()
            self._blocked_until.clear()
            self._scripted.clear()

    # -- vendor hooks ----------------------------------------------------------------
    def route(self, req: Request) -> str | None:
        """The robot token addressed by ``req``, or None when the path is not a webhook."""
        raise NotImplementedError

    def bad_method(self, req: Request) -> Response:
        """The vendor's answer to a non-POST on a webhook URL."""
        return Response(405, b"", {"Allow": "POST"})

    def unknown_robot(self, req: Request) -> Error:
        raise NotImplementedError

    def check_body(self, req: Request) -> Error | None:
        """Size and Content-Type checks on the raw request."""
        return None

    def bad_json(self) -> Error:
        raise NotImplementedError

    def check_security(self, req: Request, robot: Robot, body: dict[str, Any]) -> Error | None:
        raise NotImplementedError

    def validate(self, body: dict[str, Any]) -> Error | None:
        """Message shape and size; None when the vendor would accept it."""
        raise NotImplementedError

    def msgtype(self, body: dict[str, Any]) -> str:
        return str(body.get("msgtype"))

    def answer(self, code: int, msg: str, req: Request) -> dict[str, Any]:
        """The JSON body for a vendor code (0 = success)."""
        return {self.code_field: code, self.msg_field: msg}

    def ok_message(self) -> str:
        return "ok"

    # -- the pipeline ----------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        token = self.route(req)
        if token is None:
            return Response(404, b"Not Found", {"Content-Type": "text/plain"})
        if req.method != "POST":
            return self.bad_method(req)
        robot = self.robots.get(token)
        if robot is None:
            return self._reply(req, *self.unknown_robot(req))
        scripted = self._scripted_for(token)
        if scripted:
            return self._reply(req, *scripted)
        err = self.check_body(req)
        if err:
            return self._reply(req, *err)
        try:
            body = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            return self._reply(req, *self.bad_json())
        req.chat_body = body  # type: ignore[attr-defined]  # read by on_answer
        err = self.check_security(req, robot, body) or self.validate(body) or self._rate(token)
        if err:
            return self._reply(req, *err)
        msg = ChatMessage(self.vendor, token, self.msgtype(body), body, self._mono(),
                          datetime.fromtimestamp(self.now(), timezone.utc))
        with self._lock:
            self._messages.append(msg)
        return self._reply(req, 0, self.ok_message())

    def _scripted_for(self, token: str) -> Error | None:
        """The next scripted answer meant for ``token`` (or any robot), taken off the script."""
        with self._guard:
            for i, (who, err) in enumerate(self._scripted):
                if who is None or who == token:
                    del self._scripted[i]
                    return err
        return None

    def _rate(self, token: str) -> Error | None:
        """Sliding-window limits per robot; DingTalk-style ``block_s`` after a breach."""
        now = self._mono()
        with self._guard:
            if self._blocked_until.get(token, 0) > now:
                return self.rate_error
            sent = self._sent.setdefault(token, deque())
            while sent and now - sent[0] >= 60:
                sent.popleft()
            recent = sum(1 for t in sent if now - t < 1)
            if len(sent) >= self.per_minute or (self.per_second and recent >= self.per_second):
                if self.block_s:
                    self._blocked_until[token] = now + self.block_s
                return self.rate_error
            sent.append(now)
        return None

    def _reply(self, req: Request, code: int, msg: str) -> Response:
        req.chat_result = (code, msg)  # type: ignore[attr-defined]
        return Response.json(200, self.answer(code, msg, req))

    def fault_response(self, fault: Fault) -> Response:
        resp = super().fault_response(fault)
        code = -1 if self.code_field == "errcode" else 9499
        resp.body = json.dumps({self.code_field: code, self.msg_field: "system busy"}).encode()
        return resp

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        code, msg = getattr(req, "chat_result", (None, None))
        rec = ChatRequest(
            arrived=req.arrived, method=req.method, path=req.path, query=req.query,
            robot=self.route(req), body=getattr(req, "chat_body", None), raw=req.body,
            status=resp.status if resp is not None else None, code=code, msg=msg,
            fault=fault, answered=time.monotonic(),
        )
        with self._lock:
            self._requests.append(rec)


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value, depth first (keys excluded)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def visible_text(payload: Any) -> str:
    """The strings a keyword check looks at, joined (for the DingTalk/Feishu keyword rule)."""
    return "\n".join(_strings(payload))


def first(query: dict[str, list[str]], key: str) -> str | None:
    """First value of a query parameter."""
    values = query.get(key)
    return values[0] if values else None


__all__ = ["ChatMessage", "ChatRequest", "ChatRobotDouble", "Error", "Robot", "first",
           "visible_text"]
