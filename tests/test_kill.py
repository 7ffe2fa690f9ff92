"""Crash safety: `broadcaster run` is SIGKILLed during dispatch and restarted; every recipient
gets exactly one SMS (the Twilio double counts what it accepted) and the ledger agrees."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT, edit_yaml
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble

SID = "AC" + "2" * 32
TOKEN = "kill-test-token"
N = int(os.environ.get("KILL_TEST_RECIPIENTS", "300"))
KILLS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def numbers(n: int) -> list[str]:
    # 138 0000 0000 + i: valid China Mobile numbers, all distinct.
    return [f"138{i:08d}" for i in range(1, n + 1)]


def prepare(confdir: Path, url: str, database: str, n: int = N) -> None:
    """Point the copied config at the Twilio double ``url`` and ``database``; ``n`` cadres."""
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        database=database,
        schedule={**d["schedule"], "season": {"start": "01-01", "end": "12-31"}},
        sms={"provider": "twilio", "rate_per_s": 100, "concurrency": 16,
             "twilio": {"account_sid": SID, "auth_token": "${TWILIO_AUTH_TOKEN}", "from": "+15005550006",
                        "base_url": url, "timeout_s": 5}},
        http={"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"}))
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(
        contacts=[{"name": f"干部{i}", "phone": p, "groups": ["cadres"]} for i, p in enumerate(numbers(n))]))


def start(confdir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "broadcaster", "run", "-c", str(confdir / "broadcaster.yaml")],
                            cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def wait_ready(confdir: Path, timeout: float = 30) -> None:
    import requests
    import yaml

    listen = yaml.safe_load((confdir / "broadcaster.yaml").read_text(encoding="utf-8"))["http"]["listen"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://{listen}/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("service did not become ready")


def sms_states(database: str) -> dict[str, int]:
    url = database.replace("postgresql://", "postgresql+psycopg://")
    eng = sa.create_engine(url)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT state, count(*) FROM deliveries WHERE channel='sms' GROUP BY state")).all()
    eng.dispose()
    return {s: n for s, n in rows}


@dataclass
class KillRun:
    """What one kill-and-restart run saw: kills done, creates the double answered 201 per ``To``,
    messages it created per ``To`` (counting any whose answer was lost), the ledger's SMS states
    at the end, and the service log."""

    kills: int
    by_to: Counter[str]
    created: Counter[str]
    states: dict[str, int]
    log: Path


def kill_and_restart(confdir: Path, database: str, log: Path, n: int = N, kills: int = KILLS,
                     rng: random.Random | None = None, settle_s: float = 90) -> KillRun:
    """SMS ``n`` cadres through the Twilio double (20 ms latency), SIGKILL ``broadcaster run``
    at ``kills`` random moments during dispatch, restart it each time, then let the last start
    finish. Shared by the CI test and ``bench/kill.py``."""
    rng = rng or random.Random(20261128)
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=FaultPlan(latency_ms=20)) as tw:
        prepare(confdir, tw.url, database, n)
        done = 0
        while done < kills:
            proc = start(confdir, log)
            # Kill at a random moment once dispatch is under way (some accepted, not all).
            deadline = time.monotonic() + 60
            target = len(tw.accepted()) + rng.randint(5, max(6, n // (kills + 2)))
            while len(tw.accepted()) < min(target, n - 1) and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            done += 1
            if len(tw.accepted()) >= n - 1:
                break
        proc = start(confdir, log)
        wait_ready(confdir)
        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            if sms_states(database).get("sent", 0) == n:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]
        return KillRun(done, tw.accepted_by_to(), tw.messages_by_to(), sms_states(database), log)


@pytest.mark.timeout(240)
def test_kill_and_restart_sends_each_sms_exactly_once(confdir: Path, ledger_url: str, tmp_path: Path) -> None:
    run = kill_and_restart(confdir, ledger_url, tmp_path / "run.log")
    assert run.kills >= 3, "dispatch finished before the process could be killed often enough"
    expected = {f"+86{n}" for n in numbers(N)}
    duplicates = {k: v for k, v in run.by_to.items() if v > 1}
    missing = expected - set(run.by_to)
    assert duplicates == {} and missing == set(), (duplicates, len(missing), run.log.read_text()[-3000:])
    assert run.created == run.by_to  # also counting messages created whose answer never arrived
    assert run.states == {"sent": N}
