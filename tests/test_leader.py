"""The scheduler's leader (DESIGN A15): the PostgreSQL lock, the role, the fence before each job.

In process and fast; the same with real processes, SIGKILL and SIGSTOP: tests/test_nodes.py.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from broadcaster.ledger import Ledger
from broadcaster.ledger.nodes import LeaderLock
from broadcaster.runtime.leader import Leadership
from broadcaster.runtime.scheduler import Scheduler
from broadcaster.web.app import create_app
from tests.conftest import PG_URL, edit_yaml, local, pg_available, unavailable
from tests.support.procs import wait_for


@pytest.fixture
def pg_url() -> Iterator[str]:
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


def _backend_pid(url: str, node: str) -> int:
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.connect() as c:
        pid = c.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :n"),
                        {"n": f"broadcaster leader {node}"}).scalar_one()
    eng.dispose()
    return int(pid)


def _terminate(url: str, pid: int) -> None:
    eng = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    eng.dispose()


def test_one_lock_holder_and_a_cut_connection_loses_it(pg_url: str) -> None:
    a, b = LeaderLock(pg_url, "node-a"), LeaderLock(pg_url, "node-b")
    try:
        assert a.try_acquire() and not b.try_acquire()
        assert a.held() and not b.held() and b.holder() == "node-a"
        _terminate(pg_url, _backend_pid(pg_url, "node-a"))  # a DBA, a proxy or a server restart
        assert not a.held()  # the leader learns it at its next check
        assert b.try_acquire() and b.holder() == "node-b"
        assert not a.try_acquire()  # a fresh session, but the lock is taken
    finally:
        a.release()
        b.release()


def test_a_hung_leaders_idle_session_is_ended_and_the_lock_freed(pg_url: str) -> None:
    a = LeaderLock(pg_url, "node-a", idle_session_timeout_s=1)  # 15 s in production
    b = LeaderLock(pg_url, "node-b")
    try:
        assert a.try_acquire()
        time.sleep(1.6)  # a frozen process asks nothing: PostgreSQL ends its session
        assert wait_for(b.try_acquire, 5, 0.2)
        assert not a.held()  # resumed: its session is gone, it must step down
    finally:
        a.release()
        b.release()


def test_exactly_one_leadership_leads_and_a_standby_takes_over(pg_url: str) -> None:
    ledgers = [Ledger(pg_url), Ledger(pg_url)]
    ledgers[0].node, ledgers[1].node = "node-a", "node-b"
    events: list[str] = []
    ships = [Leadership(lg) for lg in ledgers]
    try:
        for ship in ships:
            ship.start(on_elected=lambda n=ship.node: events.append(f"{n} elected"),
                       on_deposed=lambda n=ship.node: events.append(f"{n} deposed"))
        assert wait_for(lambda: sum(s.is_leader for s in ships) == 1, 10)
        time.sleep(0.5)
        assert sorted(s.role for s in ships) == ["leader", "standby"]
        leader = next(s for s in ships if s.is_leader)
        other = next(s for s in ships if not s.is_leader)
        assert leader.confirm() and not other.confirm()
        leader.stop()  # frees the lock: the standby leads within its retry interval
        t0 = time.monotonic()
        assert wait_for(lambda: other.is_leader, 10, 0.05)
        assert time.monotonic() - t0 < 4
        # The election callback runs just after the flag flips (in the standby's thread).
        wait_for(lambda: len(events) == 3, 5, 0.05)
        assert events == [f"{leader.node} elected", f"{leader.node} deposed", f"{other.node} elected"]
    finally:
        for s in ships:
            s.stop()
        for lg in ledgers:
            lg.close()


def test_on_sqlite_the_one_node_leads(make_service) -> None:  # type: ignore[no-untyped-def]
    svc = make_service(at=local(2026, 11, 28, 10, 0))
    ship = Leadership(svc.ledger)
    elected: list[bool] = []
    ship.start(on_elected=lambda: elected.append(True), on_deposed=lambda: None)
    assert elected == [True] and ship.role == "leader" and ship.confirm()
    ship.stop()


def test_each_fire_time_runs_once_and_only_on_the_leader(ledger_url: str) -> None:
    lg = Ledger(ledger_url)
    at = local(2026, 11, 28, 16, 30)
    try:
        assert lg.fires.once("poll-1630", at, "node-a", at)
        assert not lg.fires.once("poll-1630", at, "node-b", at + timedelta(seconds=20))
        assert lg.fires.once("poll-1630", at + timedelta(days=1), "node-b", at + timedelta(days=1))
        assert lg.fires.prune(at + timedelta(hours=1)) == 1
    finally:
        lg.close()


class _Deposed:
    """A leadership that was lost (a frozen leader that has just resumed)."""

    node, role, is_leader = "node-z", "standby", False

    def confirm(self) -> bool:
        return False


def test_the_fence_refuses_a_run_that_is_not_the_leaders_or_already_made(make_service, confdir) -> None:  # type: ignore[no-untyped-def]
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(polls=["16:30"]))
    svc = make_service(at=local(2026, 11, 28, 16, 30))
    at = local(2026, 11, 28, 16, 30)
    sched = Scheduler(svc)
    sched.leadership.start(on_elected=lambda: None, on_deposed=lambda: None)  # SQLite: leads
    assert sched._may_run("poll-1630", at)
    assert not sched._may_run("poll-1630", at)  # another node (or this one) ran it
    zombie = Scheduler(svc, leadership=_Deposed())  # type: ignore[arg-type]
    assert not zombie._may_run("feed-deadline", local(2026, 11, 28, 17, 30))


def test_healthz_says_role_and_node(make_service) -> None:  # type: ignore[no-untyped-def]
    svc = make_service(at=local(2026, 11, 28, 10, 0))
    svc.ledger.node = "county-1"
    sched = Scheduler(svc)
    with TestClient(create_app(svc, sched)) as client:
        assert client.get("/healthz").json() == {"status": "ok", "role": "standby", "node": "county-1"}
        sched.start()
        try:
            assert client.get("/healthz").json() == {"status": "ok", "role": "leader", "node": "county-1"}
        finally:
            sched.shutdown()
        assert client.get("/healthz").json()["role"] == "standby"
