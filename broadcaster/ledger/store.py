"""The ledger: engine set-up (SQLite WAL or PostgreSQL) and the operations the flows need.

Writes on SQLite use ``BEGIN IMMEDIATE`` so that a writer takes the lock up front and waits
(busy timeout) instead of failing half-way with "database is locked"; readers never block.
Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so several dispatchers can share one ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    Integer,
    String,
    Update,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from broadcaster.ledger.models import Alert, AuditEntry, Base, Delivery, EndpointContact, UTCDateTime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery, detached from the session, safe to hand to a worker thread."""

    id: int
    alert_id: int
    channel: str
    kind: str
    target: str
    village_id: str | None
    contact_name: str | None
    body: str | None
    audio_sha256: str | None
    audio_ext: str | None
    repeat: int | None
    play_at: datetime | None
    expires_at: datetime
    attempts: int
    claimed_at: datetime | None


_JOB_COLUMNS = [getattr(Delivery, f) for f in DeliveryJob.__dataclass_fields__]

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


class Ledger:
    """All reads and writes of the ledger go through here."""

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
        self._claim_stmts: dict[str | None, Update] = {}
        self._finish_stmts: dict[frozenset[str], Update] = {}

    def close(self) -> None:
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction, committed on success."""
        with self._write.begin() as s:
            yield s

    @contextmanager
    def reader(self) -> Iterator[Session]:
        with self._read() as s:
            yield s

    def ping(self) -> bool:
        try:
            with self.read_engine.connect() as c:
                c.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False

    # ------------------------------------------------------------------ alerts

    def create_alert(self, alert: Alert, deliveries: Iterable[dict[str, Any]]) -> tuple[int, bool]:
        """Insert an alert with its deliveries in one transaction.

        Returns ``(alert_id, created)``; when an alert with the same ``dedupe_key`` exists,
        nothing is written and its id is returned with ``created=False``. ``deliveries`` is
        consumed in chunks of ``INSERT_CHUNK`` rows, so a generator of 100,000 recipients is
        never held in memory at once (still one transaction: all rows or none).
        """
        try:
            with self.session() as s:
                s.add(alert)
                s.flush()
                chunk: list[dict[str, Any]] = []
                for d in deliveries:
                    chunk.append({**d, "alert_id": alert.id})
                    if len(chunk) >= INSERT_CHUNK:
                        s.execute(insert(Delivery), chunk)
                        chunk = []
                if chunk:
                    s.execute(insert(Delivery), chunk)
                return alert.id, True
        except IntegrityError:
            with self.reader() as s:
                existing = s.scalar(select(Alert.id).where(Alert.dedupe_key == alert.dedupe_key))
            if existing is None:
                raise
            return existing, False

    def alerts_for_night(self, night: date, kind: str = "auto") -> list[Alert]:
        with self.reader() as s:
            return list(s.scalars(select(Alert).where(Alert.night == night, Alert.kind == kind).order_by(Alert.level)))

    # ---------------------------------------------------------------- dispatch

    def _claim_stmt(self, channel: str | None) -> Update:
        """The claim statement for ``channel``, built once: the dispatcher runs it many times a
        second, and a reused statement skips SQLAlchemy's per-call construction and cache key."""
        stmt = self._claim_stmts.get(channel)
        if stmt is None:
            now = bindparam("b_now", type_=UTCDateTime())
            sub = (
                select(Delivery.id)
                .where(
                    Delivery.state == "pending",
                    Delivery.due_at.is_not(None),
                    Delivery.due_at <= now,
                    Delivery.expires_at > now,
                )
                .order_by(Delivery.due_at, Delivery.id)
                .limit(bindparam("b_limit", type_=Integer()))
            )
            if channel:
                sub = sub.where(Delivery.channel == bindparam("b_channel", type_=String()))
            if not self.is_sqlite:
                sub = sub.with_for_update(skip_locked=True)
            stmt = self._claim_stmts[channel] = (
                update(Delivery.__table__)
                .where(Delivery.id.in_(sub))
                .values(state="sending", attempts=Delivery.attempts + 1, claimed_at=now, updated_at=now)
                .returning(*_JOB_COLUMNS)
            )
        return stmt

    def claim_due(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryJob]:
        """Mark up to ``limit`` due deliveries ``sending`` (attempts + 1) and return them."""
        params: dict[str, Any] = {"b_now": now, "b_limit": limit}
        if channel:
            params["b_channel"] = channel
        # A Core connection, not an ORM session: same transaction (BEGIN IMMEDIATE on SQLite),
        # a fraction of the CPU per call.
        with self.engine.begin() as conn:
            rows = conn.execute(self._claim_stmt(channel), params).all()
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    def finish(self, updates: list[dict[str, Any]]) -> None:
        """Write many delivery results at once (each dict has ``id`` and the new column values)."""
        if not updates:
            return
        by_keys: dict[frozenset[str], list[dict[str, Any]]] = {}
        for u in updates:
            by_keys.setdefault(frozenset(u), []).append(u)
        with self.engine.begin() as conn:
            for keys, group in by_keys.items():
                # One executemany per shape of update, by primary key (bind names get a prefix:
                # SQLAlchemy reserves column names for its own SET parameters).
                conn.execute(self._finish_stmt(keys), [{f"b_{k}": v for k, v in u.items()} for u in group])

    def _finish_stmt(self, keys: frozenset[str]) -> Update:
        stmt = self._finish_stmts.get(keys)
        if stmt is None:
            table = Delivery.__table__
            values = {k: bindparam(f"b_{k}", type_=table.c[k].type) for k in sorted(keys) if k != "id"}
            stmt = self._finish_stmts[keys] = (
                update(table).where(table.c.id == bindparam("b_id", type_=table.c.id.type)).values(values)
            )
        return stmt

    def expire_due(self, now: datetime) -> int:
        """Pending deliveries past their expiry become ``expired``; a stale warning is never sent."""
        with self.session() as s:
            res = s.execute(
                update(Delivery)
                .where(Delivery.state == "pending", Delivery.expires_at <= now)
                .values(
                    state="expired",
                    updated_at=now,
                    last_error=func.coalesce(Delivery.last_error, "expired before it could be delivered"),
                )
            )
            return res.rowcount or 0

    def in_flight(self) -> list[DeliveryJob]:
        """Deliveries left ``sending`` (by a crash): to be reconciled before anything is re-sent."""
        with self.reader() as s:
            rows = s.execute(select(*_JOB_COLUMNS).where(Delivery.state == "sending")).all()
        return [DeliveryJob(*r) for r in rows]

    def next_due(self) -> datetime | None:
        """The earliest moment the dispatcher has something to do: a pending delivery (or a
        withdrawal) coming due, or a pending delivery coming to its expiry."""
        with self.reader() as s:
            due, expiry = s.execute(
                select(func.min(Delivery.due_at), func.min(Delivery.expires_at)).where(Delivery.state == "pending")
            ).one()
            withdraw = s.scalar(select(func.min(Delivery.due_at)).where(Delivery.withdrawal == "pending"))
        return min((t for t in (due, expiry, withdraw) if t is not None), default=None)

    # ------------------------------------------------------------- withdrawal (DESIGN A7)

    def withdraw(self, alert_ids: Iterable[int], reason: str, now: datetime,
                 push_kinds: Iterable[str]) -> tuple[int, int]:
        """Cancel what these alerts have not sent, and withdraw every play an endpoint holds
        but has not played: an agent that fetched it (told on its next long poll) and a
        ``push_kinds`` endpoint it was handed to (the dispatcher tells it at once).

        Returns ``(cancelled, withdrawing)``: all deliveries cancelled, and how many of them
        must still be withdrawn from their endpoint.
        """
        ids = list(alert_ids)
        mine = (Delivery.alert_id.in_(ids), Delivery.channel == "speaker")
        cancelled = {"state": "cancelled", "last_error": reason, "updated_at": now}
        with self.session() as s:
            pulled = s.execute(update(Delivery).where(
                *mine, Delivery.state == "pending", Delivery.due_at.is_(None), Delivery.sent_at.is_not(None),
            ).values(**cancelled, withdrawal="pending")).rowcount or 0
            pushed = s.execute(update(Delivery).where(
                *mine, Delivery.state == "sent", Delivery.kind.in_(list(push_kinds)), Delivery.played_at.is_(None),
                Delivery.play_at > now,
            ).values(**cancelled, withdrawal="pending", due_at=now)).rowcount or 0
            rest = s.execute(update(Delivery).where(
                Delivery.alert_id.in_(ids), Delivery.state == "pending",
            ).values(**cancelled)).rowcount or 0
        return pulled + pushed + rest, pulled + pushed

    def claim_withdrawals(self, now: datetime, limit: int) -> list[DeliveryJob]:
        """Mark up to ``limit`` due withdrawals of pushed plays ``sending`` and return them."""
        with self.session() as s:
            ids = list(s.scalars(select(Delivery.id).where(
                Delivery.withdrawal == "pending", Delivery.due_at.is_not(None), Delivery.due_at <= now,
            ).order_by(Delivery.due_at, Delivery.id).limit(limit)))
            if not ids:
                return []
            rows = s.execute(update(Delivery.__table__).where(
                Delivery.id.in_(ids), Delivery.withdrawal == "pending",
            ).values(withdrawal="sending", updated_at=now).returning(*_JOB_COLUMNS)).all()
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    def requeue_withdrawals(self, now: datetime) -> int:
        """Withdrawals a crash left ``sending`` are tried again (a DELETE or unlink is idempotent)."""
        with self.session() as s:
            return s.execute(update(Delivery).where(Delivery.withdrawal == "sending")
                             .values(withdrawal="pending", due_at=now, updated_at=now)).rowcount or 0

    def agent_commands(self, speaker_id: str, now: datetime) -> tuple[list[Delivery], list[int]]:
        """A pulling endpoint's view: its open plays (not expired) and the ids of plays withdrawn
        from it that it has not acknowledged. The first hand-over of a play is noted in
        ``sent_at`` (the row stays pending, so the expiry sweep still ends an unreported play)."""
        mine = (Delivery.channel == "speaker", Delivery.target == speaker_id, Delivery.expires_at > now)
        with self.reader() as s:
            rows = list(s.scalars(select(Delivery).where(
                *mine, Delivery.state.in_(("pending", "sending", "sent")),
            ).order_by(Delivery.play_at, Delivery.id)))
            withdrawn = list(s.scalars(select(Delivery.id).where(
                *mine, Delivery.state == "cancelled", Delivery.withdrawal == "pending",
            ).order_by(Delivery.id)))
        fresh = [d.id for d in rows if d.sent_at is None]
        if fresh:
            with self.engine.begin() as conn:
                # Only plays still pending: one cancelled since the read above is not handed over
                # (it was cancelled before the agent had it, so nothing would withdraw it later).
                marked = set(conn.execute(
                    update(Delivery.__table__)
                    .where(Delivery.id.in_(fresh), Delivery.sent_at.is_(None), Delivery.state == "pending")
                    .values(sent_at=now, attempts=Delivery.attempts + 1, updated_at=now)
                    .returning(Delivery.id)).scalars())
            rows = [d for d in rows if d.sent_at is not None or d.id in marked]
        return rows, withdrawn

    def agent_fingerprints(self, now: datetime) -> dict[str, tuple[Any, ...]]:
        """Per pulling endpoint, a value that changes whenever its long-poll answer may change
        (a play added, handed over, reported, cancelled or expired): one query for all agents."""
        q = (
            select(Delivery.target, func.count(), func.max(Delivery.id), func.max(Delivery.updated_at),
                   func.min(Delivery.expires_at))
            .where(Delivery.channel == "speaker", Delivery.due_at.is_(None), Delivery.expires_at > now,
                   (Delivery.state.in_(("pending", "sending", "sent")))
                   | ((Delivery.state == "cancelled") & (Delivery.withdrawal == "pending")))
            .group_by(Delivery.target)
        )
        with self.reader() as s:
            return {t: tuple(rest) for t, *rest in s.execute(q)}

    def counts(self, alert_ids: Iterable[int] | None = None) -> dict[str, dict[str, int]]:
        """``{"sms": {state: n}, "speaker": {state: n}}`` over the given alerts (or all)."""
        q = select(Delivery.channel, Delivery.state, func.count()).group_by(Delivery.channel, Delivery.state)
        if alert_ids is not None:
            q = q.where(Delivery.alert_id.in_(list(alert_ids)))
        out: dict[str, dict[str, int]] = {"sms": {}, "speaker": {}}
        with self.reader() as s:
            for channel, state, n in s.execute(q):
                out.setdefault(channel, {})[state] = n
        return out

    def open_count(self, alert_ids: Iterable[int], channel: str | None = None) -> int:
        """Deliveries of these alerts that are still pending or sending."""
        q = select(func.count()).where(Delivery.alert_id.in_(list(alert_ids)), Delivery.state.in_(("pending", "sending")))
        if channel:
            q = q.where(Delivery.channel == channel)
        with self.reader() as s:
            return s.scalar(q) or 0

    def due_now(self, alert_ids: Iterable[int], now: datetime) -> int:
        """Deliveries of these alerts that could be attempted at ``now`` (open, due, unexpired)."""
        q = select(func.count()).where(
            Delivery.alert_id.in_(list(alert_ids)),
            Delivery.state.in_(("pending", "sending")),
            Delivery.due_at.is_not(None),
            Delivery.due_at <= now,
            Delivery.expires_at > now,
        )
        with self.reader() as s:
            return s.scalar(q) or 0

    def report_play(self, delivery_id: int, speaker_id: str, status: str, now: datetime,
                    played_at: datetime | None = None, error: str | None = None,
                    from_states: tuple[str, ...] = ("pending", "sending", "sent")) -> str | None:
        """Record what an endpoint reports for one play (``played``, ``failed``, ``expired``, or
        ``cancelled`` to acknowledge a withdrawal).

        Only moves forward from ``from_states``; a repeated report changes nothing (idempotent).
        A server-side expiry of a pulled play is corrected by an on-time ``played`` report,
        because the agent may only have been unable to reach us; so is a withdrawal that
        reached the endpoint after it had played (the ledger says what the village heard).
        Returns the delivery's state afterwards, or None when ``speaker_id`` has no such delivery.
        """
        with self.session() as s:
            q = select(Delivery).where(Delivery.id == delivery_id, Delivery.channel == "speaker",
                                       Delivery.target == speaker_id)
            if not self.is_sqlite:
                q = q.with_for_update()
            d = s.scalars(q).first()
            if d is None:
                return None
            if status == "cancelled":
                if d.state == "cancelled" and d.withdrawal in ("pending", "sending"):
                    d.withdrawal, d.updated_at = "done", now
                return d.state
            late_fix = (status == "played" and d.state == "expired" and d.due_at is None
                        and played_at is not None and played_at <= d.expires_at)
            if status == "played" and d.state == "cancelled" and d.withdrawal in ("pending", "sending"):
                # Played before the withdrawal reached the endpoint: it was heard, so say so.
                d.withdrawal = "failed"
                d.state, d.updated_at, d.played_at = "played", now, played_at or now
                d.last_error = f"played before the withdrawal reached it ({d.last_error})"
                return d.state
            if d.state in from_states or late_fix:
                d.state = status
                d.updated_at = now
                if status == "played":
                    d.played_at = played_at or now
                    d.last_error = None
                else:
                    d.last_error = error or d.last_error
            return d.state

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

    # ------------------------------------------------------------------- audit

    def audit(self, at: datetime, actor: str, action: str, object_type: str | None = None,
              object_id: str | int | None = None, detail: dict[str, Any] | None = None) -> None:
        with self.session() as s:
            s.add(AuditEntry(at=at, actor=actor, action=action, object_type=object_type,
                             object_id=None if object_id is None else str(object_id), detail=detail))
