"""50 concurrent API requests during a 5,000-recipient dispatch on SQLite (issue 5 acceptance).

A real ``broadcaster run`` sends 5,000 SMS through the loopback Twilio double (20 ms latency)
while 50 HTTP API requests hit it at once: manual broadcasts created, approved and cancelled,
and status, alert and broadcast reads. The dispatcher claims and finishes deliveries in
``BEGIN IMMEDIATE`` write transactions the whole time, so every API write competes with it for
the single SQLite writer lock. Nothing may fail with ``database is locked``, no write may be
lost, and the dispatch must still end with exactly one message per recipient.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
import yaml

from broadcaster.ledger import Ledger
from broadcaster.web.auth import create_token
from tests.conftest import edit_yaml
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble
from tests.test_kill import SID, TOKEN, numbers, prepare, sms_states, start, wait_ready

N = 5000
# Duty contacts get one SMS per approved manual broadcast; distinct from the cadres' 138... numbers.
DUTY = [f"139{i:08d}" for i in range(1, 3)]
PRECREATED = 14  # broadcasts made before the burst: 8 get approved and 6 cancelled in it
APPROVE, CANCEL, CREATE = 8, 6, 16
READS = 50 - APPROVE - CANCEL - CREATE  # 20
TEXT = "今晚值班请保持电话畅通。"


@dataclass
class Outcome:
    """One API request of the burst and its answer."""

    kind: str  # create | approve | cancel | read
    method: str
    path: str
    status: int
    body: Any
    subject: int | None = None  # the broadcast id it acted on, when there is one


def configure(confdir: Path, twilio_url: str, database: str) -> str:
    """The kill test's configuration with 5,000 cadres plus two duty contacts; returns the base URL.

    ``rate_per_s`` 400 keeps the 5,000-SMS dispatch at ~12 s: long enough for the burst to land
    in the middle of it, short enough for CI.
    """
    prepare(confdir, twilio_url, database, N)
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["sms"].update(rate_per_s=400, concurrency=16))
    edit_yaml(confdir / "directory.yaml", lambda d: d["contacts"].extend(
        {"name": f"值班{i}", "phone": p, "groups": ["duty"]} for i, p in enumerate(DUTY)))
    listen = yaml.safe_load((confdir / "broadcaster.yaml").read_text(encoding="utf-8"))["http"]["listen"]
    return f"http://{listen}"


def make_tokens(database: str) -> dict[str, str]:
    """Operator and approver tokens written straight into the (not yet served) ledger."""
    ledger = Ledger(database)
    try:
        now = datetime.now(timezone.utc)  # the service runs on the real clock
        return {name: create_token(ledger, name, role, now)
                for name, role in (("alice", "operator"), ("bob", "operator"), ("carol", "approver"))}
    finally:
        ledger.close()


def ledger_rows(database: str, sql: str, **params: Any) -> list[sa.Row[Any]]:
    eng = sa.create_engine(database)
    try:
        with eng.connect() as c:
            return list(c.execute(sa.text(sql), params))
    finally:
        eng.dispose()


@pytest.mark.timeout(120)
def test_50_concurrent_api_requests_during_a_5000_sms_dispatch(confdir: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "run.log"
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=FaultPlan(latency_ms=20)) as tw:
        base = configure(confdir, tw.url, database)
        tokens = make_tokens(database)
        proc = start(confdir, log)
        try:
            wait_ready(confdir, timeout=60)
            auth = {who: {"Authorization": f"Bearer {t}"} for who, t in tokens.items()}

            # Let the catch-up alert's dispatch get under way before anything else.
            deadline = time.monotonic() + 60
            while len(tw.accepted()) < 300 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(tw.accepted()) >= 300, log.read_text(encoding="utf-8")[-3000:]

            body = {"text": TEXT, "sms_groups": ["duty"]}
            pre: list[int] = []
            for _ in range(PRECREATED):
                r = requests.post(f"{base}/api/v1/broadcasts", json=body, headers=auth["alice"], timeout=60)
                assert r.status_code == 201, r.text
                pre.append(r.json()["id"])
            to_approve, to_cancel = pre[:APPROVE], pre[APPROVE:]

            plan: list[tuple[str, str, str, str, dict[str, Any] | None, int | None]] = []
            plan += [("create", "POST", "/api/v1/broadcasts", "bob", body, None)] * CREATE
            plan += [("approve", "POST", f"/api/v1/broadcasts/{b}/approve", "carol", None, b) for b in to_approve]
            plan += [("cancel", "POST", f"/api/v1/broadcasts/{b}/cancel", "bob", None, b) for b in to_cancel]
            reads = ["/api/v1/status", "/api/v1/alerts", *(f"/api/v1/broadcasts/{b}" for b in pre)]
            plan += [("read", "GET", reads[i % len(reads)], "alice", None, None) for i in range(READS)]
            assert len(plan) == 50

            gate = threading.Barrier(len(plan))

            def fire(item: tuple[str, str, str, str, dict[str, Any] | None, int | None]) -> Outcome:
                kind, method, path, who, payload, subject = item
                with requests.Session() as s:
                    gate.wait(30)  # all 50 leave together
                    r = s.request(method, base + path, json=payload, headers=auth[who], timeout=90)
                try:
                    answer: Any = r.json()
                except ValueError:
                    answer = r.text
                return Outcome(kind, method, path, r.status_code, answer, subject)

            sent_before = len(tw.accepted())
            t0 = time.monotonic()
            with ThreadPoolExecutor(len(plan)) as pool:
                outcomes = list(pool.map(fire, plan))
            burst_s = time.monotonic() - t0
            sent_after = len(tw.accepted())

            print(f"burst: {len(plan)} requests in {burst_s:.2f} s; Twilio creates {sent_before} -> {sent_after} of {N}")
            # The burst really overlapped the dispatch (messages went out before and after it).
            assert sent_before < N and sent_after < N, (sent_before, sent_after, burst_s)

            # Every answer is the expected one, none is a 5xx.
            bad = [o for o in outcomes if o.status >= 500]
            assert bad == [], bad
            by_kind: dict[str, list[Outcome]] = {}
            for o in outcomes:
                by_kind.setdefault(o.kind, []).append(o)
            for o in by_kind["create"]:
                assert o.status == 201 and o.body["status"] == "pending_approval", o
            for o in by_kind["approve"]:
                assert o.status == 200 and o.body["status"] in ("scheduled", "dispatching", "done"), o
            for o in by_kind["cancel"]:
                assert o.status == 200 and o.body == {"id": o.subject, "status": "cancelled", "cancelled": 0}, o
            for o in by_kind["read"]:
                assert o.status == 200, o
            created = [o.body["id"] for o in by_kind["create"]]
            assert len(set(created)) == CREATE

            # The dispatch completes: every cadre once, every duty contact once per approval.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if sms_states(database).get("sent", 0) == N + APPROVE * len(DUTY):
                    break
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
        run_log = log.read_text(encoding="utf-8")
        assert rc == 0, run_log[-3000:]
        by_to = tw.messages_by_to()

    # Exactly one message per recipient of the automatic alert, and nothing else went out.
    expected = Counter({f"+86{n}": 1 for n in numbers(N)})
    expected.update({f"+86{n}": APPROVE for n in DUTY})
    assert by_to == expected, (len(by_to), sum(by_to.values()))
    assert sms_states(database) == {"sent": N + APPROVE * len(DUTY)}
    assert "database is locked" not in run_log and "OperationalError" not in run_log, run_log[-3000:]

    # No lost write: every broadcast exists in the state its requests left it in, with its audit trail.
    manual = {r.id: r for r in ledger_rows(
        database, "SELECT id, status, created_by, approved_by, cancelled_by FROM alerts WHERE kind='manual'")}
    assert set(manual) == set(pre) | set(created)
    audit = Counter((r.object_id, r.action, r.actor) for r in ledger_rows(
        database, "SELECT object_id, action, actor FROM audit WHERE action LIKE 'broadcast.%'"))
    for b in pre:
        assert audit[(str(b), "broadcast.create", "alice")] == 1
    for b in created:
        assert manual[b].status == "pending_approval" and manual[b].created_by == "bob"
        assert audit[(str(b), "broadcast.create", "bob")] == 1
    for b in to_approve:
        assert (manual[b].status, manual[b].approved_by) == ("scheduled", "carol")
        assert audit[(str(b), "broadcast.approve", "carol")] == 1
    for b in to_cancel:
        assert (manual[b].status, manual[b].cancelled_by) == ("cancelled", "bob")
        assert audit[(str(b), "broadcast.cancel", "bob")] == 1
    assert sum(audit.values()) == PRECREATED + CREATE + APPROVE + CANCEL
    per_broadcast = Counter(r.alert_id for r in ledger_rows(
        database, "SELECT alert_id FROM deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE kind='manual')"))
    assert per_broadcast == Counter({b: len(DUTY) for b in to_approve})
