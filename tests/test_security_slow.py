"""Slow and greedy clients (issue 18, item 11): long polls per agent token are capped, and the
server is configured to bound connections and idle keep-alives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.agent_api import MAX_POLLS_PER_AGENT
from broadcaster.web.app import create_app
from tests.conftest import local
from tests.test_agent_api import TOKEN_A, agent_directory, auth


@pytest.fixture
def svc(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    agent_directory(confdir, monkeypatch)
    s = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 28, 10, 0)))
    yield s
    s.close()


def test_one_agent_token_holds_at_most_two_long_polls(svc: Service) -> None:
    app = create_app(svc)

    async def run() -> list[float]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            async def poll(delay: float) -> float:
                await asyncio.sleep(delay)
                t0 = time.monotonic()
                r = await c.get("/api/agent/v1/commands?wait=1.5", headers=auth(TOKEN_A))
                assert r.status_code == 200 and r.json() == []
                return time.monotonic() - t0

            # Two held for their wait; the next three, while those are open, are answered at once.
            return await asyncio.gather(*(poll(0 if i < MAX_POLLS_PER_AGENT else 0.3) for i in range(5)))

    took = asyncio.run(run())
    assert all(t >= 1.4 for t in took[:MAX_POLLS_PER_AGENT]), took
    assert all(t < 0.5 for t in took[MAX_POLLS_PER_AGENT:]), took


@pytest.fixture
def served(svc: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The app under ``broadcaster run``'s own uvicorn settings, in a thread (head timeout 0.5 s)."""
    import socket
    import threading

    import uvicorn

    from broadcaster.runtime import http

    monkeypatch.setattr(http, "HEADER_TIMEOUT_S", 0.5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(http.server_config(create_app(svc), "127.0.0.1", port))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield port
    server.should_exit = True
    t.join(5)


def _closed_within(sock, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def test_a_client_slow_to_send_its_headers_is_cut_off(served: int) -> None:
    import socket

    slow = [socket.create_connection(("127.0.0.1", served)) for _ in range(20)]
    try:
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        t0 = time.monotonic()
        assert all(_closed_within(s, 3) for s in slow)
        assert time.monotonic() - t0 < 3
        # A whole request is still answered, and an idle kept-alive connection is kept a while.
        with httpx.Client(base_url=f"http://127.0.0.1:{served}") as c:
            assert c.get("/healthz").status_code == 200
            time.sleep(0.8)
            assert c.get("/healthz").status_code == 200
    finally:
        for s in slow:
            s.close()
