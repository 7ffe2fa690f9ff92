"""The ledger on SQLite and (when reachable) the local PostgreSQL: one suite over both backends."""

from __future__ import annotations

from datetime import timedelta

from broadcaster.ledger import Alert, Delivery, Ledger, Outcome, sms_row
from tests.conftest import local

NOW = local(2026, 11, 28, 16, 30)


def _alert(key: str = "auto:XX镇:2026-11-28:4") -> Alert:
    return Alert(kind="auto", dedupe_key=key, region="XX镇", night=NOW.date(), level=4, rules=["warn"],
                 status="dispatching", created_at=NOW)


def _rows(n: int, due_offset_s: int = 0) -> list[dict]:
    return [sms_row(phone=f"+86138001380{i:02d}", name=None, village_id=None, body="hi", kind="outbox",
                    due_at=NOW + timedelta(seconds=due_offset_s), expires_at=NOW + timedelta(hours=12), now=NOW)
            for i in range(n)]


def test_alert_is_idempotent_per_key(ledger_url: str) -> None:
    lg = Ledger(ledger_url)
    a1, created1 = lg.create_alert(_alert(), _rows(3))
    a2, created2 = lg.create_alert(_alert(), _rows(3))
    assert created1 and not created2 and a1 == a2
    assert lg.reads.counts([a1])["sms"] == {"pending": 3}
    lg.close()


def test_claim_marks_sending_once_and_results_are_written(ledger_url: str) -> None:
    lg = Ledger(ledger_url)
    aid, _ = lg.create_alert(_alert(), _rows(5))
    first = lg.deliveries.claim(NOW, 3)
    second = lg.deliveries.claim(NOW, 10)
    assert len(first) == 3 and len(second) == 2
    assert not {j.id for j in first} & {j.id for j in second}
    assert all(j.attempts == 1 and j.expires_at.tzinfo is not None for j in first)
    assert lg.deliveries.claim(NOW, 10) == []
    assert len(lg.deliveries.in_flight()) == 5
    lg.deliveries.finish([Outcome(j.id, "handed", NOW, provider_id=f"SM{j.id}") for j in first]
                         + [Outcome(j.id, "fail", NOW, error="21211") for j in second])
    assert lg.reads.counts([aid])["sms"] == {"sent": 3, "failed": 2}
    lg.close()


def test_not_due_and_expiry(ledger_url: str) -> None:
    lg = Ledger(ledger_url)
    lg.create_alert(_alert(), _rows(2, due_offset_s=600))
    assert lg.deliveries.claim(NOW, 10) == []
    assert lg.deliveries.next_due() == NOW + timedelta(seconds=600)
    assert lg.deliveries.expire_due(NOW + timedelta(hours=13)) == 2
    with lg.reader() as s:
        rows = s.query(Delivery).all()
        assert {r.state for r in rows} == {"expired"} and all(r.last_error for r in rows)
    lg.close()


def test_audit_is_recorded(ledger_url: str) -> None:
    from broadcaster.ledger import AuditEntry

    lg = Ledger(ledger_url)
    lg.audit(NOW, "operator:王", "broadcast.create", "alert", 7, {"text": "测试", "audio_sha256": "ab" * 32})
    with lg.reader() as s:
        e = s.query(AuditEntry).one()
        assert (e.actor, e.action, e.object_id, e.detail["text"]) == ("operator:王", "broadcast.create", "7", "测试")
        assert e.at == NOW
    lg.close()


def test_audit_log_refuses_update_and_delete(ledger_url: str) -> None:
    import pytest
    from sqlalchemy import delete, update
    from sqlalchemy.exc import DBAPIError

    from broadcaster.ledger import AuditEntry

    lg = Ledger(ledger_url)
    lg.audit(NOW, "operator:王", "broadcast.create", "alert", 7, {"text": "原文"})
    for stmt in (update(AuditEntry).values(actor="someone else"), delete(AuditEntry)):
        with pytest.raises(DBAPIError, match="append-only"), lg.session() as s:
            s.execute(stmt)
    lg.audit(NOW, "approver:李", "broadcast.approve", "alert", 7)  # appending still works
    with lg.reader() as s:
        assert [(e.actor, e.action) for e in s.query(AuditEntry).order_by(AuditEntry.id)] == [
            ("operator:王", "broadcast.create"), ("approver:李", "broadcast.approve")]
    lg.close()


def test_no_sql_outside_the_ledger() -> None:
    """Only broadcaster/ledger opens sessions or connections (lint-imports keeps sqlalchemy there)."""
    import re
    from pathlib import Path

    import broadcaster

    root = Path(broadcaster.__file__).parent
    uses = re.compile(r"ledger\.(session|reader|engine|read_engine)\b")
    offenders = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
                 if p.relative_to(root).parts[0] != "ledger"
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if uses.search(line)]
    assert offenders == []
