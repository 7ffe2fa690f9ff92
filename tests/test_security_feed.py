"""Feed fetches have an overall deadline and a size cap (issue 18, item 6), for every HTTP source."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local

NOW = local(2026, 11, 28, 16, 30)


class Trickle:
    """A loopback HTTP server that answers 200 with a JSON body sent ``step`` bytes at a time,
    ``every_s`` apart (a feed gone slow), or all at once."""

    def __init__(self, size: int, step: int, every_s: float) -> None:
        self.size, self.step, self.every_s = size, step, every_s
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/co.json"

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.recv(65536)
                body = b"[" + b" " * (self.size - 2) + b"]"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
                try:
                    for i in range(0, len(body), self.step):
                        if self.stop.is_set():
                            break
                        conn.sendall(body[i:i + self.step])
                        time.sleep(self.every_s)
                except OSError:
                    pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def trickle_poll(confdir: Path) -> Iterator:  # type: ignore[type-arg]
    servers: list[Trickle] = []

    def poll(server: Trickle, **limits: object) -> tuple[str, float]:
        servers.append(server)
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            feed={"type": "http-json", "url": server.url, "timeout_s": 0.5, **limits}))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
        try:
            t0 = time.monotonic()
            report = svc.poll()
            return report.result.errors()[0], time.monotonic() - t0
        finally:
            svc.close()

    yield poll
    for s in servers:
        s.close()


def test_a_feed_sending_a_byte_at_a_time_is_given_up_at_the_deadline(trickle_poll) -> None:  # type: ignore[no-untyped-def]
    reason, took = trickle_poll(Trickle(size=10_000, step=1, every_s=0.1), deadline_s=1.5)
    assert "1.5 s" in reason and took < 4, (reason, took)


def test_a_feed_body_over_the_limit_is_refused(trickle_poll) -> None:  # type: ignore[no-untyped-def]
    reason, took = trickle_poll(Trickle(size=300_000, step=65536, every_s=0), max_bytes=100_000)
    assert "larger than 100000 bytes" in reason and took < 3, (reason, took)
