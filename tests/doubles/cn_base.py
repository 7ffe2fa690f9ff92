"""Common parts of the Chinese cloud doubles (Aliyun and Tencent SMS and TTS).

``ProviderDouble`` adds to ``LoopbackDouble`` what every provider double needs:

* a **down** switch: ``set_down("refused")`` closes the listening socket (clients get
  connection refused) and ``set_up()`` listens again on the same port; ``set_down("reset")``
  answers every request with a TCP RST; ``set_down(503)`` (any status) answers that status in
  the provider's own error shape, via ``fault_response``;
* a **slow** switch: ``slow_s`` delays every answer (use it beyond the client's timeout);
* a request log (``calls``) filled from the attributes a subclass sets on the request while
  serving it (``note(req, action=..., params=..., code=...)``);
* an injectable ``clock`` (aware ``datetime``) for the times the provider reports; signatures
  are always checked against the real time, because the real SDKs sign with it.

The FaultPlan of the base class still applies (latency, scripted statuses, resets, timeouts).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

from .faults import Fault, FaultPlan
from .server import LoopbackDouble, Request, Response

CN_TZ = ZoneInfo("Asia/Shanghai")


def cn_time(when: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in China time: how both providers write times in receipts."""
    return when.astimezone(CN_TZ).strftime("%Y-%m-%d %H:%M:%S")


def request_id(upper: bool = False) -> str:
    """A RequestId: Aliyun writes upper-case UUIDs, Tencent lower-case ones."""
    rid = str(uuid.uuid4())
    return rid.upper() if upper else rid


def post_json(url: str, payload: Any, timeout: float = 5) -> requests.Response:
    """POST ``payload`` as UTF-8 JSON (non-ASCII kept, as both providers push it)."""
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return requests.post(url, data=body, timeout=timeout,
                         headers={"Content-Type": "application/json; charset=utf-8"})


@dataclass
class CallRecord:
    """One request as a provider double saw and answered it.

    ``status`` is ``None`` when the socket was reset (or the client went away); ``code`` is
    the provider's answer code (``OK``, ``isv.*``, ``Ok``, ``AuthFailure.*``...) when known.
    """

    arrived: float
    action: str | None
    params: dict[str, Any]
    status: int | None = None
    code: str | None = None
    fault: str | None = None
    answered: float | None = None


@dataclass
class _Notes:
    action: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    code: str | None = None


class ProviderDouble(LoopbackDouble):
    """Base of the Chinese provider doubles: down/slow switches, call log, clock."""

    def __init__(
        self,
        faults: FaultPlan | None = None,
        *,
        clock: Callable[[], datetime] | None = None,
        port: int = 0,
    ) -> None:
        super().__init__(faults, port=port)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.down_mode: str | int | None = None
        self.slow_s: float = 0
        self._calls: list[CallRecord] = []

    # -- switches --------------------------------------------------------------------
    def set_down(self, mode: str | int = "refused") -> None:
        """Make the provider unreachable: ``"refused"``, ``"reset"`` or an HTTP status."""
        if mode == "refused":
            self._port = self.port  # so that set_up() listens on the same port again
            self.stop()
        elif mode != "reset" and not (isinstance(mode, int) and 400 <= mode <= 599):
            raise ValueError(f"unknown down mode {mode!r}")
        self.down_mode = mode

    def set_up(self) -> None:
        """Undo ``set_down``."""
        if self.down_mode == "refused":
            self.start()
        self.down_mode = None

    # -- records ---------------------------------------------------------------------
    @property
    def calls(self) -> list[CallRecord]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return sorted(self._calls, key=lambda c: c.arrived)

    def calls_of(self, action: str) -> list[CallRecord]:
        """The calls of one API action (``SendSms``, ``CreateToken``...)."""
        return [c for c in self.calls if c.action == action]

    @staticmethod
    def note(req: Request, **kw: Any) -> None:
        """Remember what serving ``req`` found out, for its ``CallRecord``."""
        notes = getattr(req, "cn_notes", None)
        if notes is None:
            notes = _Notes()
            req.cn_notes = notes  # type: ignore[attr-defined]
        for key, value in kw.items():
            setattr(notes, key, value)

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        notes = getattr(req, "cn_notes", None) or _Notes()
        rec = CallRecord(arrived=req.arrived, action=notes.action, params=notes.params,
                         code=notes.code, fault=fault, answered=time.monotonic(),
                         status=None if resp is None else resp.status)
        with self._lock:
            self._calls.append(rec)

    # -- serving ---------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if self.down_mode == "reset":
            return Response(reset=True)
        if isinstance(self.down_mode, int):
            resp = self.fault_response(Fault("status", self.down_mode))
        else:
            resp = self.serve(req)
        resp.delay_s += self.slow_s
        return resp

    def serve(self, req: Request) -> Response:
        """The provider's answer to ``req`` (the switches are applied around it)."""
        raise NotImplementedError
