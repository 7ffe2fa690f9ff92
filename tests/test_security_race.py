"""Approve and cancel of one broadcast at once (issue 18, item 1): they are exclusive on the
alert row, so a cancelled broadcast never keeps deliveries that will still go out."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from broadcaster.config import load_config
from broadcaster.errors import Conflict
from broadcaster.flows.manual import BroadcastRequest, Broadcasts
from broadcaster.ledger import Alert
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local

NOW = local(2026, 11, 28, 10, 0)
PAIRS = 40


@pytest.fixture
def bc(confdir: Path, ledger_url: str) -> Iterator[Broadcasts]:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: (d.update(database=ledger_url),
                                                        d["http"].update(broadcasts_per_hour=1000)))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    yield Broadcasts(svc)
    svc.close()


@pytest.mark.timeout(60)
def test_approve_and_cancel_at_once_never_leave_a_cancelled_broadcast_with_open_deliveries(
        bc: Broadcasts) -> None:
    at = (NOW + timedelta(hours=2)).isoformat()
    ids = [bc.create(BroadcastRequest(f"测试 {i}", [], ["duty", "cadres"], at), "alice")["id"] for i in range(PAIRS)]
    errors: list[BaseException] = []

    def run(fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
        except Conflict:
            pass  # approve after the cancel: refused, as it should be
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    for bid in ids:
        gate = threading.Barrier(2)
        ts = [threading.Thread(target=lambda f=f: (gate.wait(), run(f)))
              for f in (lambda: bc.approve(bid, "carol"), lambda: bc.cancel(bid, "dave"))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    assert not errors, errors
    bad = []
    for bid in ids:
        got = bc.get(bid)
        still = sum(n for s, n in got["deliveries"]["sms"].items() if s in ("pending", "sending"))
        if got["status"] != "cancelled" or still:
            bad.append((bid, got["status"], got["deliveries"]["sms"]))
    assert not bad, f"{len(bad)} of {PAIRS} broadcasts: {bad[:5]}"


def test_a_claim_skips_deliveries_of_a_cancelled_broadcast(bc: Broadcasts) -> None:
    bid = bc.create(BroadcastRequest("测试", [], ["duty"]), "alice")["id"]
    bc.approve(bid, "carol")
    with bc.svc.ledger.session() as s:  # what a cancel racing with the approval once left behind
        s.execute(update(Alert).where(Alert.id == bid).values(status="cancelled"))
    assert bc.svc.ledger.deliveries.claim(NOW + timedelta(minutes=1), 10) == []
