"""Several nodes on one PostgreSQL (DESIGN A15): one leader, failover, nothing lost or sent twice.

One run, real processes, the real PostgreSQL, the Twilio double at 20 ms, 2,000 recipients:

1. node A leads (its catch-up creates tonight's alert: 2,000 SMS), node B stands by; both send.
2. SIGKILL A mid-dispatch: B leads within 30 s. A node A2 joins (another port, another name), so
   A's claims are left to the survivors' lease sweep, not to A's own restart.
3. SIGSTOP B (now the leader) mid-dispatch: A2 leads within 30 s, once PostgreSQL has ended B's
   idle lock session; 16:30, a poll time, passes while B is frozen.
4. Once every SMS is out and B's claims have lapsed and been taken over, SIGCONT B: it must
   notice it lost the lock and step down, send nothing it had claimed, and not run the 16:30 poll
   again.
5. Cut A2's lock connection on the server: A2 steps down, one node leads again.

Then: every number got exactly one SMS (the double's own count, including creates whose answer a
frozen node never read), the ledger says sent for all 2,000, one automatic alert, one 16:30 poll.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import PG_URL, edit_yaml, pg_available, unavailable
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble
from tests.support import clock
from tests.support.procs import BIN, free_port, spawn, stop, wait_for
from tests.test_kill import SID, TOKEN, numbers, prepare

N = 2000
RATE = 60  # SMS/s per node: dispatch outlasts the kill, a slow restart and the freeze
TAKEOVER_S = 30


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh PostgreSQL database (the nodes share it), dropped afterwards."""
    reason = pg_available()
    if reason:
        unavailable(reason)
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


class Node:
    """One ``broadcaster run`` on its own port."""

    def __init__(self, name: str, confdir: Path, env: dict[str, str], tmp: Path) -> None:
        self.name, self.port = name, free_port()
        self.log = tmp / f"node-{name}.log"
        self.proc = spawn([BIN, "run", "-c", str(confdir / "broadcaster.yaml"), "--listen", f"127.0.0.1:{self.port}"],
                          self.log, env=env)

    def health(self) -> dict[str, Any] | None:
        try:
            r = requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1)
            return r.json() if r.status_code == 200 else None
        except requests.RequestException:
            return None

    def role(self) -> str | None:
        h = self.health()
        return h["role"] if h else None

    def wait_role(self, role: str, timeout: float) -> float:
        """Seconds until ``/healthz`` says ``role`` (fails after ``timeout``)."""
        t0 = time.monotonic()
        ok = wait_for(lambda: self.role() == role or self.proc.poll() is not None, timeout, 0.1)
        assert ok and self.proc.poll() is None and self.role() == role, (self.name, role, self.tail())
        return time.monotonic() - t0

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


def ledger(url: str, sql: str) -> list[Any]:
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with eng.connect() as c:
            return list(c.execute(sa.text(sql)).all())
    finally:
        eng.dispose()


def unlocked_in_flight(url: str) -> int:
    """Deliveries ``sending`` that no open transaction holds: what a survivor could take over."""
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with eng.begin() as c:
            return len(c.execute(sa.text(
                "SELECT id FROM deliveries WHERE state = 'sending' FOR UPDATE SKIP LOCKED")).all())
    finally:
        eng.dispose()


@pytest.mark.timeout(180)
def test_failover_of_two_nodes_sends_each_sms_once(confdir: Path, pg_db: str, tmp_path: Path) -> None:
    # The 16:30 poll falls due 50 s in: B is frozen from about 10 s to about 45 s (lease + sweep).
    start = clock.today_at(16, 29, 10)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TWILIO_AUTH_TOKEN": TOKEN, **clock.env_at(start)}
    env.pop("BROADCASTER_NODE", None)  # names from host and port, as a plain `broadcaster run` has
    fake = env[clock.FAKE_ENV]
    # The double dates its messages by the nodes' clock, so that Twilio's message list (which a
    # survivor asks about a dead node's sends) agrees with the ledger's claim times.
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=FaultPlan(latency_ms=20),
                      clock=lambda: clock.fake_now_from(fake).astimezone(timezone.utc)) as tw:
        prepare(confdir, tw.url, pg_db, N)
        edit_yaml(confdir / "broadcaster.yaml", lambda d: (
            d["sms"].update(rate_per_s=RATE, concurrency=16), d["schedule"].update(polls=["16:30"])))
        run = Failover(confdir, env, tmp_path, tw, pg_db, fake)
        try:
            run.steps(poll_at=start.replace(minute=30, second=0))
        finally:
            run.stop_all()  # before the database is dropped
        by_to, created = tw.accepted_by_to(), tw.messages_by_to()

    expected = {f"+86{n}" for n in numbers(N)}
    duplicates = {k: v for k, v in created.items() if v > 1}
    assert duplicates == {} and expected - set(created) == set(), (duplicates, len(expected - set(created)))
    assert by_to == created  # every create was answered: nothing was sent and then forgotten
    assert ledger(pg_db, "SELECT state, count(*) FROM deliveries WHERE channel = 'sms' GROUP BY 1") == [("sent", N)]
    assert ledger(pg_db, "SELECT count(*) FROM deliveries WHERE possible_duplicate")[0][0] == 0
    # One alert (no second one, no deadline SMS); one 16:30 poll, run by A2 alone.
    assert ledger(pg_db, "SELECT kind, level FROM alerts") == [("auto", 4)]
    assert ledger(pg_db, "SELECT kind FROM readings ORDER BY id") == [("catch-up",), ("scheduled",)]
    assert ledger(pg_db, "SELECT job_id, node FROM schedule_fires WHERE job_id = 'poll-1630'") == [
        ("poll-1630", run.name["a2"])]
    # B stepped down: by its own check of the lock, or by the fence of the 16:30 poll it found due.
    assert "steps down (its lock session is gone)" in run.nodes["b"].tail(100_000)
    print(f"takeover after SIGKILL {run.took['kill']:.1f} s, after SIGSTOP {run.took['stop']:.1f} s")


class Failover:
    """The steps of the module docstring, with what they measured."""

    def __init__(self, confdir: Path, env: dict[str, str], tmp: Path, tw: TwilioDouble, db: str, fake: str) -> None:
        self.confdir, self.env, self.tmp, self.tw, self.db, self.fake = confdir, env, tmp, tw, db, fake
        self.nodes: dict[str, Node] = {}
        self.name: dict[str, str] = {}
        self.took: dict[str, float] = {}

    def start(self, key: str, role: str) -> Node:
        n = self.nodes[key] = Node(key, self.confdir, self.env, self.tmp)
        n.wait_role(role, 30)
        self.name[key] = f"{os.uname().nodename}:{n.port}"  # the default name: host and port
        assert n.health()["node"] == self.name[key]  # type: ignore[index]
        return n

    def sent(self) -> int:
        return len(self.tw.accepted())

    def steps(self, poll_at: Any) -> None:
        fake_now = lambda: clock.fake_now_from(self.fake)  # noqa: E731
        # 1. A leads and creates tonight's alert; B stands by and sends too.
        a = self.start("a", "leader")
        b = self.start("b", "standby")

        # 2. SIGKILL the leader mid-dispatch: B leads. A2 joins under another name.
        assert wait_for(lambda: self.sent() >= 400, 30, 0.01), a.tail()
        a.signal(signal.SIGKILL)
        a.proc.wait(10)
        at_kill = self.sent()
        assert at_kill < N - 500, "dispatch finished before the leader could be killed"
        self.took["kill"] = b.wait_role("leader", TAKEOVER_S)
        a2 = self.start("a2", "standby")

        # 3. SIGSTOP the new leader mid-dispatch: A2 leads once B's idle lock session is ended.
        assert self.sent() < N - 200, "dispatch finished before the leader could be frozen"
        frozen_at = fake_now()
        b.signal(signal.SIGSTOP)
        self.took["stop"] = a2.wait_role("leader", TAKEOVER_S)

        # Every number gets its SMS; A2 settles the dead node's claims and the frozen node's, all but
        # those a transaction of the frozen node still holds locked (it had recorded them as sent
        # but not committed yet: they wait for B to run again, or to die).
        assert wait_for(lambda: len(self.tw.accepted_by_to()) == N, 70, 0.5), a2.tail()
        assert wait_for(lambda: unlocked_in_flight(self.db) == 0, 40, 0.5), \
            ledger(self.db, "SELECT state, claimed_by, count(*) FROM deliveries GROUP BY 1, 2")
        assert wait_for(lambda: fake_now() >= poll_at + timedelta(seconds=2), 40, 0.2)
        assert frozen_at < poll_at, f"timing: B was frozen only at {frozen_at}, after the poll time"

        # 4. SIGCONT the old leader: it steps down, and neither sends nor polls again.
        b.signal(signal.SIGCONT)
        b.wait_role("standby", 10)
        all_sent = "SELECT count(*) FROM deliveries WHERE channel = 'sms' AND state = 'sent'"
        assert wait_for(lambda: ledger(self.db, all_sent)[0][0] == N, 20, 0.2), \
            ledger(self.db, "SELECT state, claimed_by, count(*) FROM deliveries GROUP BY 1, 2")
        time.sleep(3)  # room for a wrongly resumed schedule or a zombie send to show
        assert a2.role() == "leader" and b.proc.poll() is None

        # 5. Cut the leader's lock connection (a DBA, a proxy, a server restart): it steps down
        # and one of the two leads again; the 16:30 poll is still not run a second time.
        killed = ledger(self.db, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 f" WHERE application_name = 'broadcaster leader {self.name['a2']}'")
        assert killed == [(True,)]
        assert wait_for(lambda: "steps down" in a2.tail(100_000), 10, 0.2)
        assert wait_for(lambda: [a2.role(), b.role()].count("leader") == 1, TAKEOVER_S, 0.2)

    def stop_all(self) -> None:
        for n in self.nodes.values():
            if n.proc.poll() is None:
                n.signal(signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                assert stop(n.proc) == 0, n.tail()
