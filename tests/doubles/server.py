"""Shared loopback HTTP/1.1 server for the test doubles.

Each double runs one asyncio server on ``127.0.0.1`` (port 0 = ephemeral) in a background
thread. Why not ``ThreadingHTTPServer``: measured on this 2-core VM at concurrency 64 with
50 ms latency, both reach the latency ceiling (~1,200 of 1,280 req/s) with a lean client,
but the threaded version cost ~450 µs of server CPU per Twilio create against ~250 µs here
(~110 µs of it framework), and the CPU it saves goes to the client under test, which shares
the same two cores. Latency and slow answers are loop timers, so they hold no threads, and
``stop()`` returns at once even with answers pending.

A double subclasses ``LoopbackDouble`` and implements ``handle(req) -> Response`` (sync, runs
on the event loop, must not block) plus a few hooks; the base applies the ``FaultPlan``
(latency, status faults, resets, slow answers) around it with loop timers, so every double
misbehaves the same way.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .faults import Fault, FaultPlan, retry_after_header

_MAX_HEAD = 64 * 1024  # a longer head is junk: drop the connection


@dataclass
class Request:
    """An HTTP request as a double sees it. ``arrived`` is the loop's ``time.monotonic()``."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes
    arrived: float
    client: tuple[str, int]

    @cached_property
    def path(self) -> str:
        """The path without the query string."""
        return urlsplit(self.target).path

    @cached_property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, every value a list (keys like ``DateSent>`` kept verbatim)."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    @cached_property
    def form(self) -> dict[str, list[str]]:
        """The body parsed as ``application/x-www-form-urlencoded``."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        return self.headers.get(name.lower(), default)


@dataclass
class Response:
    """An answer to send.

    ``reset=True`` closes the socket with a TCP RST instead; ``delay_s`` waits before sending.
    """

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False
    delay_s: float = 0

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON answer (UTF-8, non-ASCII kept as is)."""
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, body, headers)


class LoopbackDouble:
    """Base of the doubles: lifecycle, URL, HTTP/1.1 keep-alive, and the fault plan.

    Subclasses implement ``handle`` and may override ``fault_key``, ``fault_applies``,
    ``fault_response`` and ``on_answer`` (called with the final answer, or ``None`` for a
    reset, and the fault label, for recording). Records are guarded by ``self._lock``
    because tests read them from other threads.
    """

    def __init__(
        self, faults: FaultPlan | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.faults = faults or FaultPlan()
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[_HttpProtocol] = set()
        # Tracebacks of exceptions raised by ``handle`` (answered 500); tests may assert [].
        self.internal_errors: list[str] = []

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> Any:
        """Bind and serve in a background thread; returns self. Bind errors raise here."""
        if self._server is not None:
            return self
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(loop.create_server(
                lambda: _HttpProtocol(self), self._host, self._port,
                backlog=1024, reuse_address=True))  # backlog: bursts of connects are not refused
        except OSError:
            loop.close()
            raise
        self._loop = loop
        name = f"{type(self).__name__}-loop"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        """Stop serving and drop every open connection (pending answers are abandoned)."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            return

        def shutdown() -> None:
            server.close()
            for conn in list(self._conns):
                conn.abort()
            loop.call_soon(loop.stop)  # after the aborts' connection_lost callbacks close sockets

        loop.call_soon_threadsafe(shutdown)
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._loop = self._server = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._server is None:
            return self._port
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://{self._host}:{self.port}"

    # -- hooks -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """The normal answer to ``req``. Runs on the event loop: must not block."""
        raise NotImplementedError

    def fault_key(self, req: Request) -> str | None:
        """Key for ``FaultPlan.scripts`` (per-subject scripts)."""
        return None

    def fault_applies(self, req: Request) -> bool:
        """Whether the fault plan is consulted for this request."""
        return True

    def fault_response(self, fault: Fault) -> Response:
        """The answer for a status fault; subclasses give it their error body shape."""
        headers = {}
        if fault.status == 429 and fault.retry_after_s is not None:
            headers["Retry-After"] = retry_after_header(fault.retry_after_s)
        return Response.json(fault.status or 500, {"error": f"injected {fault.status}"}, headers)

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        """Record what was answered (``resp is None`` for a reset)."""

    def _safe_handle(self, req: Request) -> Response:
        try:
            return self.handle(req)
        except Exception:  # a bug in a double: answer 500, keep the traceback for the test
            self.internal_errors.append(traceback.format_exc())
            trace = self.internal_errors[-1]
            return Response.json(500, {"error": "double crashed", "trace": trace})


class _HttpProtocol(asyncio.Protocol):
    """One keep-alive connection: parse a request, run the fault pipeline with loop timers
    (no task per request: this is the hot path of the throughput target), answer, repeat."""

    def __init__(self, double: LoopbackDouble) -> None:
        self.double = double
        self.loop = asyncio.get_event_loop()
        self.buf = bytearray()
        self.busy = False  # one request at a time; pipelined ones wait in buf
        self.timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport | None = None
        self.pending: tuple[Request, str | None] | None = None  # request in flight, fault label
        self.continued = False  # "100 Continue" already sent for the request in buf
        self.close_after = False

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = transport.get_extra_info("peername") or ("", 0)
        self.double._conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.double._conns.discard(self)
        if self.timer is not None:
            self.timer.cancel()  # the client gave up (e.g. its timeout): drop the answer
        if self.pending is not None:
            req, label = self.pending
            self.pending = None
            self.double.on_answer(req, None, label or "client_gone")
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def abort(self, rst: bool = False) -> None:
        """Close now; with ``rst`` the kernel answers with a TCP RST (SO_LINGER 0)."""
        if self.timer is not None:
            self.timer.cancel()
        self.pending = None  # callers have recorded it already (or it is stop())
        if self.transport is None:
            return
        if rst:
            self.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    # parsing
    def _next(self) -> None:
        """Parse one complete request from ``buf`` (if there is one) and serve it."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self.abort()
            return
        try:
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name, value = name.strip().lower(), value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            body, used = _body(self.buf, end + 4, headers)
        except ValueError:
            self.abort()  # junk: a real server would answer 400; nobody here sends junk
            return
        if body is None:
            if headers.get("expect", "").lower() == "100-continue" and not self.continued:
                self.continued = True
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
            return  # wait for the rest of the body
        self.continued = False
        del self.buf[:used]
        self.busy = True
        self.close_after = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
        self._start(Request(method, target, headers, body, self.loop.time(), self.peer))

    # the fault pipeline: decide -> [latency] -> handle -> [delay/timeout] -> answer
    def _start(self, req: Request) -> None:
        d = self.double
        fault = d.faults.decide(d.fault_key(req)) if d.fault_applies(req) else None
        self.pending = (req, fault.label if fault else None)
        self._after(d.faults.latency_s, self._handle, req, fault)

    def _handle(self, req: Request, fault: Fault | None) -> None:
        d = self.double
        label = fault.label if fault else None
        if fault is not None and fault.kind == "reset":
            d.on_answer(req, None, label)
            return self.abort(rst=True)
        if fault is not None and fault.kind == "status":
            resp = d.fault_response(fault)
        else:
            resp = d._safe_handle(req)
        if resp.reset or (fault is not None and fault.kind == "reset_after"):
            d.on_answer(req, None, label)  # the work was done; only the answer is lost
            return self.abort(rst=True)
        slow = fault is not None and fault.kind == "timeout"
        wait = resp.delay_s + (d.faults.timeout_s if slow else 0)
        self._after(wait, self._answer, req, resp, label)

    def _answer(self, req: Request, resp: Response, label: str | None) -> None:
        self.timer = self.pending = None
        if self.transport is None:
            return
        self.double.on_answer(req, resp, label)
        self.transport.write(_encode(resp, req.method, self.close_after))
        self.busy = False
        if self.close_after:
            self.transport.close()
        elif self.buf:
            self._next()

    def _after(self, delay: float, fn: Any, *args: Any) -> None:
        if delay > 0:
            self.timer = self.loop.call_later(delay, fn, *args)
        else:
            fn(*args)


def _body(buf: bytearray, start: int, headers: dict[str, str]) -> tuple[bytes | None, int]:
    """The body after the head (``None`` while incomplete) and the bytes used in total."""
    if "chunked" not in headers.get("transfer-encoding", "").lower():
        end = start + int(headers.get("content-length") or 0)
        return (bytes(buf[start:end]), end) if len(buf) >= end else (None, 0)
    chunks, pos = [], start
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None, 0
        size = int(bytes(buf[pos:eol]).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # skips trailers, usually none
            return (b"".join(chunks), end + 4) if end >= 0 else (None, 0)
        if len(buf) < eol + 2 + size + 2:
            return None, 0
        chunks.append(bytes(buf[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2


def _encode(resp: Response, method: str, close: bool) -> bytes:
    """Status line, headers and body in one buffer: one write, no Nagle stall."""
    try:
        reason = HTTPStatus(resp.status).phrase
    except ValueError:
        reason = "Status"
    out = [f"HTTP/1.1 {resp.status} {reason}"]
    out += [f"{k}: {v}" for k, v in resp.headers.items()]
    out.append(f"Content-Length: {len(resp.body)}")
    if close:
        out.append("Connection: close")
    head = ("\r\n".join(out) + "\r\n\r\n").encode("utf-8")
    return head if method == "HEAD" else head + resp.body
