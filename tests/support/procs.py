"""Processes the tests start (``broadcaster run``, ``broadcaster agent``): none outlives its test.

Every process goes through :func:`spawn`; the suite's autouse fixture calls :func:`reap` after each
test, so a failing assertion half-way through a test never leaves a service running (and holding
its port, its SQLite file or a loopback double's attention) behind it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import requests

BIN = str(Path(sys.executable).with_name("broadcaster"))
T = TypeVar("T")

_live: list[subprocess.Popen[bytes]] = []


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], T], timeout: float, step: float = 0.1) -> T:
    """Poll ``pred`` until it returns something truthy or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def spawn(argv: Sequence[str], log: Path, env: dict[str, str] | None = None, **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log``; :func:`reap` ends it after the test."""
    out = log.open("ab")
    try:
        proc = subprocess.Popen(list(argv), env=env, stdout=out, stderr=subprocess.STDOUT, **kw)
    finally:
        out.close()  # the child has its own copy
    _live.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 15, sig: int = signal.SIGTERM) -> int:
    """Ask ``proc`` to stop (SIGTERM), kill it when it does not in ``timeout``; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in _live:
        _live.remove(proc)
    return int(proc.returncode)


def reap() -> list[str]:
    """End every process a test started and left running; the command lines of those it found."""
    left = []
    for proc in list(_live):
        if proc.poll() is None:
            left.append(" ".join(str(a) for a in proc.args[:3]))  # type: ignore[index]
        stop(proc, timeout=5)
    _live.clear()
    return left


def healthy(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, all its threads, from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
