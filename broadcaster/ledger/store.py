"""The ledger: engine set-up (SQLite WAL or PostgreSQL), alerts, readings, audit; the source of truth.

Deliveries are owned by :class:`~broadcaster.ledger.deliveries.Deliveries` (``ledger.deliveries``),
read models live in :class:`~broadcaster.ledger.reads.Reads` (``ledger.reads``), tokens, users and
sessions in :class:`~broadcaster.ledger.people.People` (``ledger.people``). Nothing outside
``broadcaster.ledger`` runs SQL (an import-linter contract keeps sqlalchemy in here).

Writes on SQLite use ``BEGIN IMMEDIATE`` so that a writer takes the lock up front and waits
(busy timeout) instead of failing half-way with "database is locked"; readers never block.
Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several dispatchers can share one ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.ledger.deliveries import Deliveries
from broadcaster.ledger.models import Alert, AuditEntry, Base, Delivery, EndpointContact, ReadingRow
from broadcaster.ledger.people import People
from broadcaster.ledger.reads import Reads

log = logging.getLogger(__name__)

# Rows per executemany when an alert's deliveries are inserted: large enough to amortise the
# round trip, small enough that a county-wide alert streams through in bounded memory.
INSERT_CHUNK = 2000


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url[len("sqlite:///") :]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


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


class Ledger:
    """One deployment's ledger: its engines, and the owners of what it holds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url[len("postgresql://") :]
            self.engine = self.read_engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        Base.metadata.create_all(self.engine)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self.deliveries = Deliveries(self)
        self.reads = Reads(self)
        self.people = People(self)

    def close(self) -> None:
        """Dispose of the engines' connections."""
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction, committed on success. For the ledger's own modules (and tests)."""
        with self._write.begin() as s:
            yield s

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session. For the ledger's own modules (and tests)."""
        with self._read() as s:
            yield s

    def ping(self) -> bool:
        """True when the database answers (``/healthz``)."""
        try:
            with self.read_engine.connect() as c:
                c.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

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

    def mark_cancelled(self, alert_id: int, by: str) -> None:
        """Record that a broadcast was cancelled (its deliveries: ``deliveries.cancel``)."""
        with self.session() as s:
            s.execute(update(Alert).where(Alert.id == alert_id).values(status="cancelled", cancelled_by=by))

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

    def audit(self, at: datetime, actor: str, action: str, object_type: str | None = None,
              object_id: str | int | None = None, detail: dict[str, Any] | None = None) -> None:
        """Append one entry to the audit log (append-only in the database itself)."""
        with self.session() as s:
            s.add(AuditEntry(at=at, actor=actor, action=action, object_type=object_type,
                             object_id=None if object_id is None else str(object_id), detail=detail))
