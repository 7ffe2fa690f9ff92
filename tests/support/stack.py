"""``broadcaster run`` and ``broadcaster agent`` as real processes on loopback, for end-to-end tests."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path

from tests.support import clock
from tests.support.procs import BIN, healthy, spawn, stop, wait_for

FAKE_PLAYER = '''import hashlib, json, sys, time
log, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
with open(log, "a") as fh:
    fh.write(json.dumps({"t": time.time(), "sha256": hashlib.sha256(data).hexdigest()}) + "\\n")
'''


class Stack:
    """The service and agents as subprocesses; ``close`` (and the suite's reaper) ends them all.

    ``at`` starts their shared wall clock at that moment (tests/support/clock.py); the fake
    player runs under the same clock, so the times it records compare with the ledger's.
    """

    def __init__(self, tmp: Path, confdir: Path, port: int, at: datetime | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.tmp, self.confdir, self.port = tmp, confdir, port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if at is not None:
            self.env.update(clock.env_at(at))
        self.server = None
        self.agents: list = []
        self.player = tmp / "fake_player.py"
        self.player.write_text(FAKE_PLAYER)

    @property
    def log(self) -> Path:
        return self.tmp / "server.log"

    def start_server(self, timeout: float = 30) -> None:
        self.server = spawn([BIN, "run", "-c", str(self.confdir / "broadcaster.yaml")], self.log, env=self.env)
        ok = wait_for(lambda: healthy(self.url) or self.server.poll() is not None, timeout, 0.2)
        assert ok and self.server.poll() is None, self.log.read_text()[-3000:]

    def stop_server(self) -> int | None:
        if self.server is None:
            return None
        code = stop(self.server)
        self.server = None
        return code

    def start_agent(self, name: str, token: str, wait: float = 3) -> Path:
        log = self.tmp / f"played-{name}.jsonl"
        self.agents.append(spawn(
            [BIN, "agent", "--server", self.url, "--token", token, "--cache", str(self.tmp / f"cache-{name}"),
             "--wait", str(wait), "--player", f"{sys.executable} {self.player} {log} {{file}}"],
            self.tmp / f"agent-{name}.log", env=self.env))
        return log

    def close(self) -> None:
        for p in self.agents:
            stop(p, timeout=5)
        self.agents = []
        self.stop_server()
