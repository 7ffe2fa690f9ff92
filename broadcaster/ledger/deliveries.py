"""The owner of deliveries: every change of their state, through one transition table.

Flows build rows with :func:`sms_row` and :func:`play_row` (:mod:`broadcaster.ledger.rows`); the
dispatcher, people, providers and endpoints change them only through :class:`Deliveries`, whose
methods look every move up in :data:`TRANSITIONS` (:mod:`broadcaster.ledger.transitions`, whose
docstring has the rules). Nothing else writes ``state`` or ``withdrawal``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, String, Update, bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from broadcaster.ledger.models import Alert, ContactFlag, Delivery, UTCDateTime
from broadcaster.ledger.leases import lapsed
from broadcaster.ledger.rows import DeliveryJob, Outcome, Receipt, changes, play_row, sms_row
from broadcaster.ledger.transitions import (
    FINAL,
    GUARDED,
    MOVES,
    OPEN,
    STATES,
    TRANSITIONS,
    WITHDRAWAL,
    WITHDRAWAL_EVENTS,
    next_withdrawal,
    sources,
)

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

__all__ = ["FINAL", "OPEN", "STATES", "TRANSITIONS", "WITHDRAWAL", "Deliveries", "DeliveryJob",
           "Outcome", "Receipt", "play_row", "sms_row"]

log = logging.getLogger(__name__)

_TABLE = Delivery.__table__
_JOB_COLUMNS = [getattr(Delivery, f) for f in DeliveryJob.__dataclass_fields__]
# One state each: a plain ``=`` keeps the prebuilt statements free of per-call IN expansion.
(_CLAIMABLE,) = sources("claim")
(_WITHDRAWABLE,) = sources("withdraw")


# ------------------------------------------------------------------- owner


class Deliveries:
    """The transition methods: every write of a delivery's ``state`` and ``withdrawal``."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger
        self._claim_stmts: dict[str | None, Update] = {}
        self._finish_stmts: dict[tuple[frozenset[str], bool], Update] = {}

    @property
    def node(self) -> str:
        """The name this process's claims are stamped with (``Database.node``)."""
        return self._ledger.node

    # ------------------------------------------------------------ dispatch

    def _claim_stmt(self, channel: str | None) -> Update:
        """The claim statement for ``channel``, built once: the dispatcher runs it many times a
        second, and a reused statement skips SQLAlchemy's per-call construction and cache key."""
        stmt = self._claim_stmts.get(channel)
        if stmt is None:
            now = bindparam("b_now", type_=UTCDateTime())
            sub = (
                select(Delivery.id)
                .where(Delivery.state == _CLAIMABLE, Delivery.due_at.is_not(None), Delivery.due_at <= now,
                       Delivery.expires_at > now,
                       # Never a delivery of a cancelled broadcast, whatever raced with its cancel.
                       ~exists().where(Alert.id == Delivery.alert_id, Alert.status == "cancelled"))
                .order_by(Delivery.due_at, Delivery.id)
                .limit(bindparam("b_limit", type_=Integer()))
            )
            if channel:
                sub = sub.where(Delivery.channel == bindparam("b_channel", type_=String()))
            if not self._ledger.is_sqlite:
                sub = sub.with_for_update(skip_locked=True)  # several dispatchers share one ledger
            stmt = self._claim_stmts[channel] = (
                update(_TABLE)
                .where(Delivery.id.in_(sub))
                .values(state=MOVES["pending", "claim"], attempts=Delivery.attempts + 1, claimed_at=now,
                        updated_at=now, claimed_by=bindparam("b_node", type_=String()),
                        lease_until=bindparam("b_lease", type_=UTCDateTime()))
                .returning(*_JOB_COLUMNS)
            )
        return stmt

    def claim(self, now: datetime, limit: int, channel: str | None = None) -> list[DeliveryJob]:
        """``claim``: up to ``limit`` due, unexpired pending deliveries become ``sending``
        (attempts + 1, committed before any channel is called), this node's for a lease of
        ``Database.lease_s``; returns them by id."""
        params: dict[str, Any] = {"b_now": now, "b_limit": limit, "b_node": self.node,
                                  "b_lease": now + timedelta(seconds=self._ledger.lease_s)}
        if channel:
            params["b_channel"] = channel
        # A Core connection, not an ORM session: same transaction (BEGIN IMMEDIATE on SQLite),
        # a fraction of the CPU per call.
        with self._ledger.engine.begin() as conn:
            rows = conn.execute(self._claim_stmt(channel), params).all()
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    def finish(self, outcomes: Iterable[Outcome]) -> None:
        """Record the outcomes of claimed deliveries and withdrawals in one transaction.

        The fast path is one executemany per shape of update, guarded by ``state = 'sending' AND
        withdrawal IS NULL`` (the table's source of every dispatcher event) and by the claim: this
        node's, and the one the outcome answers (``Outcome.claimed_at``). When the row counts
        show that some row did not match (a cancel came while it was in flight, something else
        settled it, or the claim lapsed and another node took the row over), the batch is rolled
        back and done row by row through the table; the outcome of a lapsed claim is dropped.
        """
        sends: list[Outcome] = []
        withdrawals: list[Outcome] = []
        for o in outcomes:
            (withdrawals if o.event in WITHDRAWAL_EVENTS else sends).append(o)
        if not sends and not withdrawals:
            return
        with self._ledger.engine.connect() as conn:
            with conn.begin() as tx:
                fast = not sends or self._finish_fast(conn, sends)
                if fast:
                    self._finish_withdrawals(conn, withdrawals)
                else:
                    tx.rollback()
            if not fast:
                with conn.begin():
                    self._finish_slow(conn, sends)
                    self._finish_withdrawals(conn, withdrawals)

    def _finish_fast(self, conn: Connection, outcomes: list[Outcome]) -> bool:
        """The batched update; False when some row was not ``sending`` without a cancel request."""
        by_keys: dict[tuple[frozenset[str], bool], list[dict[str, Any]]] = {}
        for o in outcomes:
            v = changes(o, TRANSITIONS["sending", o.event])
            v["id"] = o.id
            params = {f"b_{k}": x for k, x in v.items()}
            params["g_node"] = self.node
            if o.claimed_at is not None:
                params["g_claimed_at"] = o.claimed_at
            by_keys.setdefault((frozenset(v), o.claimed_at is not None), []).append(params)
        sane = conn.dialect.supports_sane_multi_rowcount
        if not sane:  # a driver that cannot count an executemany: ask first (one more query)
            ready = dict(conn.execute(select(Delivery.id, Delivery.claimed_at).where(
                Delivery.id.in_([o.id for o in outcomes]), Delivery.state == "sending",
                Delivery.withdrawal.is_(None), Delivery.claimed_by == self.node)).tuples())
            if not all(o.id in ready and o.claimed_at in (None, ready[o.id]) for o in outcomes):
                return False
        matched = 0
        for (keys, claim), group in by_keys.items():
            # Bind names get a prefix: SQLAlchemy reserves column names for its own SET parameters.
            matched += conn.execute(self._finish_stmt(keys, claim), group).rowcount
        return matched == len(outcomes) or not sane

    def _finish_stmt(self, keys: frozenset[str], claim: bool) -> Update:
        stmt = self._finish_stmts.get((keys, claim))
        if stmt is None:
            values = {k: bindparam(f"b_{k}", type_=_TABLE.c[k].type) for k in sorted(keys) if k != "id"}
            where = [_TABLE.c.id == bindparam("b_id", type_=_TABLE.c.id.type), _TABLE.c.state == "sending",
                     _TABLE.c.withdrawal.is_(None), _TABLE.c.claimed_by == bindparam("g_node", type_=String())]
            if claim:
                where.append(_TABLE.c.claimed_at == bindparam("g_claimed_at", type_=UTCDateTime()))
            stmt = self._finish_stmts[keys, claim] = update(_TABLE).where(*where).values(values)
        return stmt

    def _finish_slow(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """Each outcome through the table, on the row as it is now (locked)."""
        q = select(Delivery.id, Delivery.state, Delivery.withdrawal, Delivery.channel, Delivery.play_at,
                   Delivery.last_error, Delivery.claimed_by, Delivery.claimed_at).where(
                       Delivery.id.in_([o.id for o in outcomes]))
        if not self._ledger.is_sqlite:
            q = q.with_for_update()
        rows = {r.id: r for r in conn.execute(q)}
        for o in outcomes:
            r = rows.get(o.id)
            if r is not None and (r.claimed_by != self.node or o.claimed_at not in (None, r.claimed_at)):
                # The claim lapsed and another node settled the row (or it was claimed again since):
                # this late outcome must not touch what is now someone else's claim.
                log.warning("delivery %d: %s from a claim that lapsed; the row is %s's now (%s): ignored",
                            o.id, o.event, r.claimed_by, r.state)
                continue
            values = _settle(r, o) if r is not None else None
            if values:
                conn.execute(update(_TABLE).where(_TABLE.c.id == o.id, _TABLE.c.state == r.state).values(values))

    def _finish_withdrawals(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """The withdrawals' outcomes (rare: one statement each)."""
        for o in outcomes:
            v: dict[str, Any] = {"withdrawal": WITHDRAWAL["sending", o.event], "updated_at": o.at}
            if o.due_at is not None:
                v["due_at"] = o.due_at
            if o.error is not None:
                v["last_error"] = o.error
            # Guarded: an agent's acknowledgement may have settled it meanwhile.
            conn.execute(update(_TABLE).where(_TABLE.c.id == o.id, _TABLE.c.withdrawal == "sending").values(v))

    def expire_due(self, now: datetime) -> int:
        """``expire`` every pending delivery past its expiry: a stale warning is never sent.
        (In-flight ones are the dispatcher's: it expires them with their outcome.)"""
        with self._ledger.session() as s:
            res = s.execute(update(Delivery).where(Delivery.state == "pending", Delivery.expires_at <= now).values(
                state=MOVES["pending", "expire"], updated_at=now,
                last_error=func.coalesce(Delivery.last_error, "expired before it could be delivered")))
            return res.rowcount or 0

    def in_flight(self) -> list[DeliveryJob]:
        """Every delivery ``sending`` now, on any node."""
        with self._ledger.reader() as s:
            rows = s.execute(select(*_JOB_COLUMNS).where(Delivery.state == "sending")).all()
        return [DeliveryJob(*r) for r in rows]

    def next_due(self) -> datetime | None:
        """The earliest moment the dispatcher has something to do: a pending delivery (or a
        withdrawal) coming due, or a pending delivery coming to its expiry."""
        with self._ledger.reader() as s:
            due, expiry = s.execute(
                select(func.min(Delivery.due_at), func.min(Delivery.expires_at)).where(Delivery.state == "pending")
            ).one()
            withdraw = s.scalar(select(func.min(Delivery.due_at)).where(Delivery.withdrawal == "pending"))
        return min((t for t in (due, expiry, withdraw) if t is not None), default=None)

    def due_now(self, alert_ids: Iterable[int], now: datetime) -> int:
        """Deliveries of these alerts that could be attempted at ``now`` (open, due, unexpired)."""
        q = select(func.count()).where(Delivery.alert_id.in_(list(alert_ids)), Delivery.state.in_(OPEN),
                                       Delivery.due_at.is_not(None), Delivery.due_at <= now,
                                       Delivery.expires_at > now)
        with self._ledger.reader() as s:
            return s.scalar(q) or 0

    # ---------------------------------------------------- cancel and withdraw

    def cancel(self, alert_ids: Iterable[int], reason: str, now: datetime,
               push_kinds: Iterable[str]) -> tuple[int, int]:
        """``cancel`` what these alerts have not sent, and ``withdraw`` every play an endpoint
        holds but has not played: an agent that fetched it (told on its next long poll) and a
        ``push_kinds`` endpoint it was handed to (the dispatcher tells it at once). Deliveries in
        flight get a cancel request, settled with their outcome (see the table's rule 4).

        Returns ``(cancelled, withdrawing)``: deliveries cancelled now, and how many of them must
        still be withdrawn from their endpoint.
        """
        with self._ledger.session() as s:
            return self.cancel_in(s, alert_ids, reason, now, push_kinds)

    def cancel_in(self, s: Session, alert_ids: Iterable[int], reason: str, now: datetime,
                  push_kinds: Iterable[str]) -> tuple[int, int]:
        """:meth:`cancel` inside the caller's transaction ``s`` (a broadcast's cancel locks its
        alert row first, see ``Ledger.cancel_broadcast``)."""
        ids = list(alert_ids)
        # A display's warning is withdrawn like a play: its ``play_at`` is the moment it leaves
        # the screen (``until``), so "not played yet" reads "still on screen" for it.
        mine = (Delivery.alert_id.in_(ids), Delivery.channel.in_(("speaker", "display")))
        cancelled = {"state": MOVES["pending", "cancel"], "last_error": reason, "updated_at": now}
        withdraw = next_withdrawal(None, "withdraw")
        pulled = s.execute(update(Delivery).where(
            *mine, Delivery.state == "pending", Delivery.due_at.is_(None), Delivery.sent_at.is_not(None),
        ).values(**cancelled, withdrawal=withdraw)).rowcount or 0
        pushed = s.execute(update(Delivery).where(
            *mine, Delivery.state == _WITHDRAWABLE, Delivery.kind.in_(list(push_kinds)),
            Delivery.played_at.is_(None), Delivery.play_at > now,
        ).values(state=MOVES["sent", "withdraw"], last_error=reason, updated_at=now, withdrawal=withdraw,
                 due_at=now)).rowcount or 0
        rest = s.execute(update(Delivery).where(
            Delivery.alert_id.in_(ids), Delivery.state == "pending",
        ).values(**cancelled)).rowcount or 0
        # The reason waits in last_error for the outcome, which settles the request.
        s.execute(update(Delivery).where(
            Delivery.alert_id.in_(ids), Delivery.state == "sending", Delivery.withdrawal.is_(None),
        ).values(withdrawal=WITHDRAWAL[None, "cancel"], last_error=reason, updated_at=now))
        return pulled + pushed + rest, pulled + pushed

    def claim_withdrawals(self, now: datetime, limit: int) -> list[DeliveryJob]:
        """Up to ``limit`` due withdrawals of pushed plays become ``sending``; returns them."""
        with self._ledger.session() as s:
            ids = list(s.scalars(select(Delivery.id).where(
                Delivery.withdrawal == "pending", Delivery.due_at.is_not(None), Delivery.due_at <= now,
            ).order_by(Delivery.due_at, Delivery.id).limit(limit)))
            if not ids:
                return []
            rows = s.execute(update(_TABLE).where(Delivery.id.in_(ids), Delivery.withdrawal == "pending").values(
                withdrawal=WITHDRAWAL["pending", "claim"], updated_at=now, claimed_by=self.node,
                lease_until=now + timedelta(seconds=self._ledger.lease_s)).returning(*_JOB_COLUMNS)).all()
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    def requeue_withdrawals(self, now: datetime, *, own: bool = True) -> int:
        """Withdrawals a crash left ``sending`` (their lease lapsed; with ``own``, also this node's
        name's, from its previous run) are tried again: a DELETE or unlink is idempotent."""
        with self._ledger.session() as s:
            return s.execute(update(Delivery).where(lapsed(Delivery.withdrawal, now, self.node if own else None)).values(
                withdrawal=WITHDRAWAL["sending", "requeue"], due_at=now, updated_at=now)).rowcount or 0

    # ------------------------------------------------- receipts and reports

    def receipt(self, channel: str, provider_id: str, event: str | None, now: datetime, *,
                provider_status: str, error: str | None = None, unreachable: str | None = None,
                phone: str = "", at: datetime | None = None) -> Receipt:
        """Apply a provider's receipt (``receipt_sent``/``_delivered``/``_failed``; None for a
        status that means nothing to the ledger) to the delivery with ``provider_id`` (and
        ``phone``, when given: one provider id may cover a batch of numbers).

        Applied once and only forward; a late or repeated receipt changes nothing. ``unreachable``
        (a reason) flags the delivery's number, so the next alert skips it (flags expire, see
        ``Reads.unreachable``); a receipt for no known delivery flags nothing.
        ``at`` is when the provider says it was delivered (default: now).
        """
        with self._ledger.session() as s:
            q = select(Delivery).where(Delivery.channel == channel, Delivery.provider_id == provider_id)
            if phone:
                q = q.where(Delivery.target == phone)
            d = s.scalars(q).first()
            result = Receipt(None, phone, None, False)
            if d is not None:
                new = TRANSITIONS[d.state, event] if event else d.state
                moved = False
                if new != d.state:
                    values: dict[str, Any] = {"state": new, "provider_status": provider_status, "updated_at": now}
                    if new == "delivered":
                        values["delivered_at"] = at or now
                    elif new == "failed":
                        values["last_error"] = error
                    # Guarded on the state read, so a concurrent receipt is never overwritten.
                    moved = bool(s.execute(update(Delivery).where(Delivery.id == d.id, Delivery.state == d.state)
                                           .values(**values)).rowcount)
                result = Receipt(d.id, d.target, new if moved else d.state, moved)
            # Only a number we sent to: a signed receipt for a message we do not know (a replay, or
            # another system's traffic on the account) must not silence a number for good.
            if unreachable and d is not None and result.target:
                flag = s.get(ContactFlag, result.target)
                if flag is None:
                    s.add(ContactFlag(phone=result.target, unreachable=True, reason=unreachable, updated_at=now))
                else:
                    flag.unreachable, flag.reason, flag.updated_at = True, unreachable, now
        return result

    def report(self, delivery_id: int, speaker_id: str, status: str, now: datetime,
               played_at: datetime | None = None, error: str | None = None) -> str | None:
        """Record what an endpoint reports for one play (``played``, ``failed``, ``expired``, or
        ``cancelled`` to acknowledge a withdrawal) as the table's ``report_*`` event.

        Idempotent: a repeated report changes nothing. Returns the delivery's state afterwards,
        or None when ``speaker_id`` has no such delivery.
        """
        event = f"report_{status}"
        with self._ledger.session() as s:
            q = select(Delivery).where(Delivery.id == delivery_id, Delivery.channel == "speaker",
                                       Delivery.target == speaker_id)
            if not self._ledger.is_sqlite:
                q = q.with_for_update()
            d = s.scalars(q).first()
            if d is None:
                return None
            if event == "report_cancelled":
                if d.state == "cancelled" and (d.withdrawal, event) in WITHDRAWAL:
                    d.withdrawal, d.updated_at = WITHDRAWAL[d.withdrawal, event], now
                return d.state
            new = TRANSITIONS[d.state, event]
            if (d.state, event) in GUARDED and not _guard(d, event, played_at):
                new = d.state
            if new == d.state:
                return d.state
            if d.state == "cancelled":  # played before the withdrawal reached it: it was heard, so say so
                d.withdrawal = WITHDRAWAL[d.withdrawal, event]
                d.last_error = f"played before the withdrawal reached it ({d.last_error})"
            elif new == "played":
                d.last_error = None
            else:
                d.last_error = error or d.last_error
            if new == "played":
                d.played_at = played_at or now
            d.state, d.updated_at = new, now
            return d.state

    def agent_commands(self, speaker_id: str, now: datetime) -> tuple[list[Delivery], list[int]]:
        """A pulling endpoint's view: its open plays (not expired) and the ids of plays withdrawn
        from it that it has not acknowledged. The first hand-over of a play is noted in
        ``sent_at`` (the row stays pending, so the expiry sweep still ends an unreported play)."""
        mine = (Delivery.channel == "speaker", Delivery.target == speaker_id, Delivery.expires_at > now)
        with self._ledger.reader() as s:
            rows = list(s.scalars(select(Delivery).where(*mine, Delivery.state.in_(("pending", "sending", "sent")))
                                  .order_by(Delivery.play_at, Delivery.id)))
            withdrawn = list(s.scalars(select(Delivery.id).where(
                *mine, Delivery.state == "cancelled", Delivery.withdrawal == "pending").order_by(Delivery.id)))
        fresh = [d.id for d in rows if d.sent_at is None]
        if fresh:
            with self._ledger.engine.begin() as conn:
                # Only plays still pending: one cancelled since the read above is not handed over
                # (it was cancelled before the agent had it, so nothing would withdraw it later).
                marked = set(conn.execute(
                    update(_TABLE)
                    .where(Delivery.id.in_(fresh), Delivery.sent_at.is_(None), Delivery.state == "pending")
                    .values(sent_at=now, attempts=Delivery.attempts + 1, updated_at=now)
                    .returning(Delivery.id)).scalars())
            rows = [d for d in rows if d.sent_at is not None or d.id in marked]
        return rows, withdrawn


def _guard(d: Delivery, event: str, played_at: datetime | None) -> bool:
    """The conditions of the table's guarded moves (both are ``report_played``)."""
    if d.state == "cancelled":  # only while the endpoint held the play and had not let it go
        return (d.withdrawal, event) in WITHDRAWAL
    # An expired pulled play reported as played before its expiry: the agent was only offline.
    return d.due_at is None and played_at is not None and played_at <= d.expires_at


def _settle(row: Any, o: Outcome) -> dict[str, Any] | None:
    """The columns an outcome writes on ``row`` through the table (None: no change). A cancel
    requested while the send was in flight is settled here (the table's rule 4)."""
    new = TRANSITIONS[row.state, o.event]
    if new == row.state:  # a late outcome moves nothing (a pending request is let go)
        return {"withdrawal": None, "updated_at": o.at} if row.withdrawal == "requested" else None
    v = changes(o, new)
    if row.withdrawal != "requested":
        return v
    if new in OPEN:  # sent back to pending: cancelled instead, as the cancel asked
        v.update(state=TRANSITIONS[new, "cancel"], last_error=row.last_error,
                 withdrawal=next_withdrawal("requested", "settle"))
    elif (new == "sent" and row.channel in ("speaker", "display") and o.withdrawable and row.play_at is not None
          and row.play_at > o.at):
        v.update(state=TRANSITIONS[new, "withdraw"], last_error=row.last_error, due_at=o.at,
                 withdrawal=next_withdrawal("requested", "withdraw"))
    else:  # gone out (an SMS, a play that cannot be taken back) or final: it stays as it is
        v["withdrawal"] = next_withdrawal("requested", "settle")
    return v
