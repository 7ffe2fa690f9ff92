"""Claim leases and their recovery (DESIGN A15), in process, on SQLite and PostgreSQL.

Two ``Ledger`` objects on one database with different node names stand for two nodes; a
``FakeClock`` moves time past a lease. End to end with real processes: tests/test_nodes.py.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from broadcaster.channels import SendResult
from broadcaster.dispatch import Dispatcher, Endpoints
from broadcaster.dispatch.outcomes import RELEASE, send_outcome
from broadcaster.dispatch.recovery import SEND_MARGIN_S, LeaseLapsed, Recovery, guarded
from broadcaster.ledger import Alert, Delivery, Ledger, Outcome, sms_row
from broadcaster.timeutil import FakeClock
from tests.conftest import local

NOW = local(2026, 11, 28, 16, 30)
LEASE = timedelta(seconds=30)


def _alert() -> Alert:
    return Alert(kind="auto", dedupe_key="auto:XX镇:2026-11-28:4", region="XX镇", night=NOW.date(), level=4,
                 rules=["warn"], status="dispatching", created_at=NOW)


def _rows(n: int) -> list[dict]:
    return [sms_row(phone=f"+86138001380{i:02d}", name=None, village_id=None, body="hi", kind="outbox",
                    due_at=NOW, expires_at=NOW + timedelta(hours=12), now=NOW) for i in range(n)]


@pytest.fixture
def nodes(ledger_url: str) -> Iterator[tuple[Ledger, Ledger]]:
    """Nodes A and B on one ledger."""
    a, b = Ledger(ledger_url), Ledger(ledger_url)
    a.node, b.node = "node-a", "node-b"
    a.create_alert(_alert(), _rows(4))
    yield a, b
    a.close()
    b.close()


def _rows_by_id(lg: Ledger) -> dict[int, Delivery]:
    with lg.reader() as s:
        return {d.id: d for d in s.query(Delivery).all()}


def test_a_claim_is_stamped_with_its_node_and_lease(nodes: tuple[Ledger, Ledger]) -> None:
    a, _ = nodes
    jobs = a.deliveries.claim(NOW, 2)
    rows = _rows_by_id(a)
    assert [(rows[j.id].claimed_by, rows[j.id].lease_until) for j in jobs] == [("node-a", NOW + LEASE)] * 2
    assert a.leases.holders() == {"node-a": 2}
    assert a.leases.renew(NOW + timedelta(seconds=10)) == {j.id for j in jobs}
    assert {_rows_by_id(a)[j.id].lease_until for j in jobs} == {NOW + timedelta(seconds=40)}


def test_only_lapsed_claims_are_taken_over_and_claimed_at_is_kept(nodes: tuple[Ledger, Ledger]) -> None:
    a, b = nodes
    jobs = a.deliveries.claim(NOW, 3)
    assert b.leases.take_over(NOW + LEASE - timedelta(seconds=1)) == []  # A's lease still runs
    assert b.leases.lapsed_count(NOW + LEASE) == 3
    a.leases.renew(NOW + timedelta(seconds=20))  # A is alive: it renewed just in time for one more lease
    assert b.leases.take_over(NOW + LEASE + timedelta(seconds=1)) == []
    taken = b.leases.take_over(NOW + timedelta(seconds=51))
    assert [j.id for j in taken] == [j.id for j in jobs]
    assert [j.claimed_at for j in taken] == [NOW] * 3  # when the attempt began: what the provider is asked
    assert b.leases.holders() == {"node-b": 3}
    assert a.leases.renew(NOW + timedelta(seconds=52)) == set()  # A's renewal no longer covers them


def test_a_late_outcome_of_a_lapsed_claim_changes_nothing(nodes: tuple[Ledger, Ledger]) -> None:
    a, b = nodes
    (job,) = a.deliveries.claim(NOW, 1)
    later = NOW + timedelta(minutes=2)
    (taken,) = b.leases.take_over(later)
    b.deliveries.finish([Outcome(taken.id, "reconcile_pending", later, due_at=later, claimed_at=taken.claimed_at)])
    # A (frozen meanwhile) claims the row again, then its first claim's worker reports: released.
    (again,) = [j for j in a.deliveries.claim(later, 10) if j.id == job.id]
    assert again.claimed_at == later
    a.deliveries.finish([send_outcome(job, RELEASE, later)])
    assert _rows_by_id(a)[job.id].state == "sending"  # the old claim's release did not free the new one
    a.deliveries.finish([send_outcome(again, SendResult(state="sent", provider_id="SM1"), later)])
    row = _rows_by_id(a)[job.id]
    assert (row.state, row.provider_id) == ("sent", "SM1")
    # B, had it been the one that sent, could not settle A's row either.
    b.deliveries.finish([Outcome(job.id, "fail", later, error="x", claimed_at=taken.claimed_at)])
    assert _rows_by_id(a)[job.id].state == "sent"


def test_a_restarted_node_settles_its_own_claims_at_once(nodes: tuple[Ledger, Ledger]) -> None:
    a, b = nodes
    a.deliveries.claim(NOW, 2)
    b.deliveries.claim(NOW, 1)
    again = Ledger(a.url)  # the same node name after a restart (host and port)
    again.node = "node-a"
    try:
        assert len(again.leases.take_over(NOW + timedelta(seconds=1), own=True)) == 2
        assert again.leases.holders() == {"node-a": 2, "node-b": 1}
    finally:
        again.close()


class _Sms:
    """An SMS provider that can say whether a message went out, and counts sends."""

    type = "fake"

    def __init__(self, sent: set[int]) -> None:
        self.sent = sent
        self.sends: list[int] = []

    def send(self, job) -> SendResult:  # type: ignore[no-untyped-def]
        self.sends.append(job.delivery_id)
        return SendResult(state="sent", provider_id=f"SM{job.delivery_id}")

    def find_sent(self, job, since):  # type: ignore[no-untyped-def]
        return f"SM{job.delivery_id}" if job.delivery_id in self.sent else None

    def close(self) -> None:
        pass


def _endpoints(sms: _Sms, tmp_path: Path) -> Endpoints:
    from broadcaster.audio.links import AudioLinks

    return Endpoints(sms=sms, speakers={}, audio_path=lambda sha, ext: None,  # type: ignore[arg-type]
                     links=AudioLinks("http://127.0.0.1:8080", b"k"))


def test_survivors_settle_a_dead_nodes_claims_by_asking_the_provider(nodes: tuple[Ledger, Ledger],
                                                                     tmp_path: Path) -> None:
    a, b = nodes
    jobs = a.deliveries.claim(NOW, 4)  # then A dies: 2 of them had reached the provider
    sms = _Sms({jobs[0].id, jobs[1].id})
    clock = FakeClock(NOW + timedelta(seconds=20))
    rec = Recovery(b, _endpoints(sms, tmp_path), clock, busy=lambda: False)
    assert rec.sweep() == 0  # not lapsed yet
    clock.set(NOW + timedelta(seconds=31))
    assert rec.sweep() == 4
    rows = _rows_by_id(b)
    assert [rows[j.id].state for j in jobs] == ["sent", "sent", "pending", "pending"]
    assert not any(r.possible_duplicate for r in rows.values())
    # B sends the two that never went out, once.
    d = Dispatcher(b, _endpoints(sms, tmp_path), clock, rate_per_s=1000)
    try:
        assert d.drain([jobs[0].alert_id], timeout=10)
    finally:
        d.stop()
    assert sorted(sms.sends) == [jobs[2].id, jobs[3].id]
    assert {r.state for r in _rows_by_id(b).values()} == {"sent"}


def test_a_worker_does_not_send_on_a_lease_about_to_lapse(nodes: tuple[Ledger, Ledger], tmp_path: Path) -> None:
    a, _ = nodes
    (job,) = a.deliveries.claim(NOW, 1)
    clock = FakeClock(NOW)
    rec = Recovery(a, _endpoints(_Sms(set()), tmp_path), clock, busy=lambda: True)
    clock.set(NOW + LEASE - timedelta(seconds=SEND_MARGIN_S + 1))
    assert rec.may_send(job)
    clock.set(NOW + LEASE - timedelta(seconds=SEND_MARGIN_S))
    assert not rec.may_send(job)  # frozen (or cut off) too long: another node may settle it soon
    assert rec.renew() == 1  # a renewal that covered the claim gives it a new lease
    assert rec.may_send(job)


class _Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        _Recorder.hits.append(self.path)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_last_look_happens_in_the_http_connection() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    _Recorder.hits.clear()
    try:
        with requests.Session() as s:
            with guarded(lambda: True):
                assert s.post(f"{url}/ok", data="x", timeout=5).status_code == 201
            looks: list[int] = []
            with pytest.raises(LeaseLapsed), guarded(lambda: bool(looks.append(1))):
                s.post(f"{url}/frozen", data="x", timeout=5)  # e.g. frozen after the dispatcher's check
            assert looks == [1]
            assert s.post(f"{url}/unguarded", data="x", timeout=5).status_code == 201
    finally:
        server.shutdown()
        server.server_close()
    assert _Recorder.hits == ["/ok", "/unguarded"]


def test_outcomes_the_ledger_could_not_record_are_kept_for_the_next_flush(nodes: tuple[Ledger, Ledger],
                                                                          tmp_path: Path) -> None:
    a, _ = nodes
    sms = _Sms(set())
    d = Dispatcher(a, _endpoints(sms, tmp_path), FakeClock(NOW), rate_per_s=1000)
    real, failed = a.deliveries.finish, []

    def finish_failing_once(outcomes):  # type: ignore[no-untyped-def]
        outcomes = list(outcomes)
        if outcomes and not failed:
            failed.append(len(outcomes))
            raise RuntimeError("deadlock detected")  # PostgreSQL picked this transaction as the victim
        real(outcomes)

    a.deliveries.finish = finish_failing_once  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            for _ in range(500):
                d.step()
                d._wake.wait(0.01)
        assert d.drain([1], timeout=10)
    finally:
        d.stop()
    assert failed and sorted(sms.sends) == [1, 2, 3, 4]  # each sent once
    assert {r.state for r in _rows_by_id(a).values()} == {"sent"}  # and every outcome recorded


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)  # SQLite's writers take turns
def test_a_renewal_skips_rows_being_finished_instead_of_waiting(nodes: tuple[Ledger, Ledger]) -> None:
    a, _ = nodes
    jobs = a.deliveries.claim(NOW, 3)
    with a.engine.connect() as other, other.begin():  # a finish in progress holds the first row
        other.execute(sa.select(Delivery.id).where(Delivery.id == jobs[0].id).with_for_update())
        t0 = time.monotonic()
        assert a.leases.renew(NOW + timedelta(seconds=5)) == {jobs[1].id, jobs[2].id}
        assert time.monotonic() - t0 < 2  # not blocked (blocked, it could deadlock with the finish)
