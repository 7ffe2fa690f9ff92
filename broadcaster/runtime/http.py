"""uvicorn's settings for the service, with bounds on slow and greedy clients.

uvicorn, left to its defaults, keeps a connection that sends half a request line open for as long
as the client likes (200 such connections stayed open 55 s in the security pass) and accepts any
number of connections. Here: at most ``LIMIT_CONCURRENCY`` connections and tasks at once (503
beyond), idle keep-alive connections close after ``KEEP_ALIVE_S``, and a connection whose request
head (line and headers) is not complete ``HEADER_TIMEOUT_S`` after its first byte is closed
(:class:`HeaderTimeoutH11`). Long polls are capped per agent token in broadcaster.web.agent_api.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
KEEP_ALIVE_S = 5
LIMIT_CONCURRENCY = 400  # agents' long polls (one per loudspeaker) plus staff and the API
MAX_HEAD_BYTES = 16 * 1024


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections that are slow to send their request head."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # part of a head (a first request, or the next on a kept-alive connection)
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._too_slow)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """The uvicorn configuration ``broadcaster run`` serves ``app`` with."""
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          timeout_graceful_shutdown=5, http=HeaderTimeoutH11, limit_concurrency=LIMIT_CONCURRENCY,
                          timeout_keep_alive=KEEP_ALIVE_S, h11_max_incomplete_event_size=MAX_HEAD_BYTES)
