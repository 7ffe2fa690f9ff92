"""Slow and greedy clients (issue 18, item 11): long polls per agent token are capped, and the
server (uvicorn's httptools protocol, bounded) cuts slow request heads, refuses oversized ones and
bounds connections and idle keep-alives."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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
def serve(svc: Service, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., int]]:
    """Starts the app under ``broadcaster run``'s own uvicorn settings in a thread (head timeout
    0.5 s, other bounds patchable by name), returning its port; every server is stopped after."""
    import socket
    import threading

    import uvicorn

    from broadcaster.runtime import http

    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(**bounds: Any) -> int:
        monkeypatch.setattr(http, "HEADER_TIMEOUT_S", 0.5)
        for name, value in bounds.items():
            monkeypatch.setattr(http, name, value)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = http.server_config(create_app(svc), "127.0.0.1", port)
        assert issubclass(config.http, HttpToolsProtocol)  # type: ignore[arg-type]  # the C parser
        server = uvicorn.Server(config)
        t = threading.Thread(target=server.run, daemon=True)
        t.start()
        servers.append((server, t))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return port

    yield start
    for server, t in servers:
        server.should_exit = True
        t.join(5)


@pytest.fixture
def served(serve: Callable[..., int]) -> int:
    return serve()


def _closed_within(sock, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False


def _answer(sock: socket.socket, seconds: float = 3) -> bytes:
    """All the server sends until it closes the connection (or ``seconds`` pass)."""
    sock.settimeout(seconds)
    got = b""
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return got


def test_a_client_slow_to_send_its_headers_is_cut_off(served: int) -> None:
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


def test_a_kept_alive_connection_slow_with_its_next_head_is_cut_off(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(3)
        got = b""
        while not got.endswith(b"}"):  # the whole answer (head and JSON body may come apart)
            got += s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200")
        # Each byte would restart uvicorn's keep-alive timer (5 s); the head timer runs on.
        t0 = time.monotonic()
        for part in (b"GET /heal", b"thz HTTP/1.1\r\n", b"Host: x\r\n"):
            s.sendall(part)
            time.sleep(0.2)
        assert _closed_within(s, 3)
        assert time.monotonic() - t0 < 2


def test_a_long_poll_outlasting_the_head_timeout_is_answered(served: int) -> None:
    t0 = time.monotonic()
    r = httpx.get(f"http://127.0.0.1:{served}/api/agent/v1/commands?wait=1.5", headers=auth(TOKEN_A), timeout=5)
    assert (r.status_code, r.json()) == (200, [])
    assert time.monotonic() - t0 >= 1.4  # held three head timeouts, and not cut


def test_a_request_head_over_the_limit_is_refused(served: int) -> None:
    from broadcaster.runtime.http import MAX_HEAD_BYTES

    cookie = b"Cookie: " + b"a" * (MAX_HEAD_BYTES + 100) + b"\r\n"
    # A whole oversized head in one write: 431, connection closed, the app never sees it.
    with socket.create_connection(("127.0.0.1", served)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + cookie + b"\r\n")
        got = _answer(s)
        assert got.startswith(b"HTTP/1.1 431 ") and "请求头过大".encode() in got
    # An endless header sent a little at a time (httptools would buffer it all): refused before
    # its end (the head timer would close it without a word).
    with socket.create_connection(("127.0.0.1", served)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: ")
        sent = 0
        try:
            while sent <= 4 * MAX_HEAD_BYTES:
                s.sendall(b"a" * 1024)
                sent += 1024
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _answer(s).startswith(b"HTTP/1.1 431 ")
    # A large head under the limit is served.
    big = b"Cookie: " + b"a" * (MAX_HEAD_BYTES - 1024) + b"\r\n"
    with socket.create_connection(("127.0.0.1", served)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + big + b"\r\n")
        assert _answer(s).startswith(b"HTTP/1.1 200")


def test_connections_beyond_the_limit_get_503(serve: Callable[..., int]) -> None:
    port = serve(LIMIT_CONCURRENCY=3, HEADER_TIMEOUT_S=5.0)  # the held connections stay meanwhile
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert _answer(s).startswith(b"HTTP/1.1 503")
        for h in held:
            h.close()
        time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            assert c.get("/healthz").status_code == 200
    finally:
        for h in held:
            h.close()


def test_a_large_body_is_not_taken_for_a_head(served: int) -> None:
    # Answered (405) before its body is sent: the 60 KB that come after the answer are still this
    # request's body (read and dropped), not an oversized next head.
    body = b"x" * 60_000  # under the app's 64 KB cap (413), far over MAX_HEAD_BYTES
    with socket.create_connection(("127.0.0.1", served)) as s:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        s.settimeout(3)
        got = b""
        while not got.endswith(b'Method Not Allowed"}'):  # the whole answer (Chinese first), before the body
            got += s.recv(65536)
        assert got.startswith(b"HTTP/1.1 405 ")
        time.sleep(0.2)  # the server marks the answer done just after its last byte (nothing to wait on)
        for i in range(0, len(body), 4096):
            s.sendall(body[i:i + 4096])
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):  # the body is read in silence: no 431, no close
            s.recv(1024)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got += _answer(s)
    assert b"}HTTP/1.1 200 OK\r\n" in got and b" 431 " not in got, got
