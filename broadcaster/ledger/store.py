"""The ledger: engine set-up (SQLite WAL or PostgreSQL), alerts, readings, audit; the source of truth.

Deliveries are owned by :class:`~broadcaster.ledger.deliveries.Deliveries` (``ledger.deliveries``),
read models live in :class:`~broadcaster.ledger.reads.Reads` (``ledger.reads``), tokens, users and
sessions in :class:`~broadcaster.ledger.people.People` (``ledger.people``). Nothing outside
``broadcaster.ledger`` runs SQL (an import-linter contract keeps sqlalchemy in here).

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several dispatchers can share one ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from broadcaster.ledger.checkins import Checkins
from broadcaster.ledger.deliveries import Deliveries
from broadcaster.ledger import schema
from broadcaster.ledger.db import Database, _engines
from broadcaster.ledger.leases import Leases
from broadcaster.ledger.models import Alert, AuditEntry, ContactFlag, Delivery, EndpointContact, ReadingRow
from broadcaster.ledger.nodes import Fires
from broadcaster.ledger.people import People
from broadcaster.ledger.reads import Reads
from broadcaster.ledger.report_reads import ReportReads
from broadcaster.ledger.reports import Reports

log = logging.getLogger(__name__)

# Rows per executemany when an alert's deliveries are inserted: large enough to amortise the
# round trip, small enough that a county-wide alert streams through in bounded memory.
INSERT_CHUNK = 2000


def _insert_rows(s: Session, alert_id: int, rows: Iterable[dict[str, Any]]) -> None:
    """Insert delivery rows in chunks of ``INSERT_CHUNK``: a generator of 100,000 recipients is
    never held in memory at once (still the caller's one transaction: all rows or none)."""
    chunk: list[dict[str, Any]] = []
    for d in rows:
        chunk.append({**d, "alert_id": alert_id})
        if len(chunk) >= INSERT_CHUNK:
            s.execute(insert(Delivery), chunk)
            chunk = []
    if chunk:
        s.execute(insert(Delivery), chunk)


def upgrade_schema(url: str) -> tuple[str | None, str]:
    """``broadcaster db upgrade``: bring the ledger at ``url`` to the current schema with its
    data; returns (from, to) revisions (from None: it was empty)."""
    write, read = _engines(url)
    try:
        return schema.upgrade(write)
    finally:
        write.dispose()
        if read is not write:
            read.dispose()


class Ledger(Database):
    """One deployment's ledger: its database, and the owners of what it holds."""

    def __init__(self, url: str, *, create_if_empty: bool = True) -> None:
        """Open the ledger at ``url``. An empty database is created at the current schema; an
        older one raises :class:`broadcaster.ledger.schema.SchemaOutOfDate` naming
        ``broadcaster db upgrade`` (the service never migrates data without an operator)."""
        super().__init__(url)
        schema.ensure_current(self.engine, create_if_empty=create_if_empty)
        self.deliveries = Deliveries(self)
        self.leases = Leases(self)
        self.fires = Fires(self)
        self.reads = Reads(self)
        self.people = People(self)
        self.report_reads = ReportReads(self)  # the weekly report's sections (A14)
        self.reports = Reports(self)  # scheduled reports' record, incidents
        self.checkins = Checkins(self)  # check-in codes and answers (A13)

    # ------------------------------------------------------------------ alerts

    def create_alert(self, alert: Alert, deliveries: Iterable[dict[str, Any]]) -> tuple[int, bool]:
        """Insert an alert with its deliveries (rows from ``sms_row``/``play_row``) in one transaction.

        Returns ``(alert_id, created)``; when an alert with the same ``dedupe_key`` exists,
        nothing is written and its id is returned with ``created=False``. ``deliveries`` is
        consumed in chunks (see ``_insert_rows``), so it may be a generator.
        """
        try:
            with self.session() as s:
                s.add(alert)
                s.flush()
                _insert_rows(s, alert.id, deliveries)
                return alert.id, True
        except IntegrityError:
            with self.reader() as s:
                existing = s.scalar(select(Alert.id).where(Alert.dedupe_key == alert.dedupe_key))
            if existing is None:
                raise
            return existing, False

    def add_deliveries(self, alert_id: int, rows: Iterable[dict[str, Any]]) -> int:
        """Add deliveries to an existing alert (a new endpoint catching up on tonight's plays);
        a row the alert already has (same channel, target and slot) is left alone. Returns how
        many were added."""
        added = 0
        with self.session() as s:
            for row in rows:
                exists = s.scalar(select(Delivery.id).where(
                    Delivery.alert_id == alert_id, Delivery.channel == row["channel"],
                    Delivery.target == row["target"], Delivery.slot == row["slot"]))
                if exists is None:
                    s.execute(insert(Delivery), [{**row, "alert_id": alert_id}])
                    added += 1
        return added

    def release_broadcast(self, alert_id: int, by: str, now: datetime, note: str | None,
                          deliveries: Iterable[dict[str, Any]]) -> bool:
        """Approve a manual broadcast that is pending approval and insert its deliveries, in one
        transaction. False (nothing written) when it was already released or cancelled: two
        approvers at once release it only once."""
        with self.session() as s:
            n = s.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "pending_approval").values(
                status="scheduled", approved_by=by, approved_at=now, note=note)).rowcount
            if n != 1:
                return False
            _insert_rows(s, alert_id, deliveries)
        return True

    def cancel_broadcast(self, alert_id: int, by: str, reason: str, now: datetime,
                         push_kinds: Iterable[str]) -> tuple[int, int] | None:
        """Cancel a manual broadcast and what it has not sent (``deliveries.cancel``) in one
        transaction that holds the alert row: an approval at the same moment either finished
        before (its deliveries are cancelled here) or finds the alert cancelled and releases
        nothing (:meth:`release_broadcast`). None when it was already cancelled."""
        with self.session() as s:
            q = select(Alert.status).where(Alert.id == alert_id)
            if not self.is_sqlite:  # SQLite's BEGIN IMMEDIATE already serialises writers
                q = q.with_for_update()
            status = s.scalar(q)
            if status is None or status == "cancelled":
                return None
            s.execute(update(Alert).where(Alert.id == alert_id).values(status="cancelled", cancelled_by=by))
            return self.deliveries.cancel_in(s, [alert_id], reason, now, push_kinds)

    def mark_superseded(self, alert_ids: Iterable[int], by: int) -> None:
        """Record that alert ``by`` replaces these (their deliveries: ``deliveries.cancel``)."""
        with self.session() as s:
            s.execute(update(Alert).where(Alert.id.in_(list(alert_ids))).values(superseded_by=by))

    # -------------------------------------------------------- readings, audit

    def add_reading(self, row: ReadingRow) -> None:
        """Record one poll's answer."""
        with self.session() as s:
            s.add(row)

    def note_contacts(self, rows: dict[str, dict[str, Any]]) -> None:
        """Upsert when each pulling endpoint last called (``{speaker_id: {last_seen, address}}``)."""
        with self.session() as s:
            known = set(s.scalars(select(EndpointContact.speaker_id)
                                  .where(EndpointContact.speaker_id.in_(list(rows)))))
            for sid, row in rows.items():
                if sid in known:
                    s.execute(update(EndpointContact).where(EndpointContact.speaker_id == sid).values(**row))
                else:
                    s.add(EndpointContact(speaker_id=sid, **row))

    def clear_flag(self, phone: str) -> str | None:
        """Remove the unreachable flag of ``phone``; the reason it had, or None if it had none."""
        with self.session() as s:
            flag = s.get(ContactFlag, phone)
            if flag is None:
                return None
            reason = flag.reason
            s.delete(flag)
            return reason

    def audit(self, at: datetime, actor: str, action: str, object_type: str | None = None,
              object_id: str | int | None = None, detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the audit log (append-only in the database itself)."""
        with self.session() as s:
            s.add(AuditEntry(at=at, actor=actor, action=action, object_type=object_type,
                             object_id=None if object_id is None else str(object_id), detail=detail))
