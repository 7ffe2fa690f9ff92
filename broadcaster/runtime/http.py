"""uvicorn's settings for the service, with bounds on slow and greedy clients.

uvicorn, left to its defaults, keeps a connection that sends half a request line open for as long
as the client likes (200 such connections stayed open 55 s in the security pass), accepts any number
of connections, and with its C parser (httptools) buffers a request head of any size. Here: at most
``LIMIT_CONCURRENCY`` connections and tasks at once (503 beyond), idle keep-alive connections close
after ``KEEP_ALIVE_S``, a connection whose request head (line and headers) is not complete
``HEADER_TIMEOUT_S`` after it opened (or went idle after an answer) is closed, and a head over
``MAX_HEAD_BYTES`` is answered 431 and closed (:class:`BoundedHttpTools`). Long polls are capped
per agent token in broadcaster.web.agent_api.

httptools, not h11: uvicorn's pure-Python h11 parser costs 300 simultaneous check-in page opens
12-20% more server CPU (bench/RESULTS.md, "Check-in pages"). httptools is a declared dependency,
so no h11 fallback is kept.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
LIMIT_CONCURRENCY = 400  # agents' long polls (one per loudspeaker) plus staff and the API
MAX_HEAD_BYTES = 16 * 1024

_TOO_LARGE_BODY = "请求头过大 / request head too large\n".encode()
_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: " + str(len(_TOO_LARGE_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
              + _TOO_LARGE_BODY)


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop httptools from parsing the rest of the request."""


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections slow to send their request head and
    refusing heads over ``MAX_HEAD_BYTES``.

    "Waiting for a head" runs from the connection's start, or from the moment a kept-alive
    connection goes idle after a response, or from the first byte of a (pipelined) next request,
    until the parser has the whole head (``on_headers_complete``). A request being served (a long
    poll, an upload) is never cut by the head timer.
    """

    _head_timer: asyncio.TimerHandle | None = None
    _waiting_head = True
    _head_fed = 0  # bytes received while the head was still incomplete: httptools keeps them all
    _head_len = 0  # the parsed head's size so far (URL and headers), exact

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # httptools buffers an unfinished header (and the URL via on_url) without limit; a head
        # still unfinished after this much data is refused, as h11_max_incomplete_event_size did.
        # (A read that ends one request and begins a pipelined next one counts whole: browsers do
        # not pipeline, and the bound stays MAX_HEAD_BYTES plus one read.)
        if self._waiting_head and self.parser is not None and not self.transport.is_closing():
            self._head_fed += len(data)
            if self._head_fed > MAX_HEAD_BYTES:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._waiting_head = True
        self._head_len = 0
        self._arm()  # no-op when armed already (since the connection opened or went idle)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_len += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_len += len(name) + len(value) + 4  # ": " and CRLF

    def on_headers_complete(self) -> None:
        self._waiting_head = False
        self._head_fed = 0
        self._disarm()
        if self._head_len > MAX_HEAD_BYTES:  # a whole oversized head can arrive in one read
            self._refuse_head()
            raise _HeadTooLarge  # stops the parser: no task is started for this request
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # Idle now (not closing, nothing pipelined), unless the request's body is still to come
        # (answered before it was read, e.g. a 405 or 413): those bytes are no head.
        if self.timeout_keep_alive_task is not None and not self.cycle.more_body:
            if not self._waiting_head:  # else the next head has begun already and is being counted
                self._waiting_head = True
                self._head_fed = 0
            self._arm()

    def send_400_response(self, msg: str) -> None:
        if not self.transport.is_closing():  # not after a 431 (its exception lands here too)
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self._disarm()
        self.transport.write(_TOO_LARGE)
        self.transport.close()

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self._waiting_head and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration ``broadcaster run`` serves ``app`` with."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          timeout_graceful_shutdown=5, http=BoundedHttpTools, limit_concurrency=LIMIT_CONCURRENCY,
                          timeout_keep_alive=KEEP_ALIVE_S)
