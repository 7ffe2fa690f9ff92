"""Leases of claimed deliveries (DESIGN A15): several nodes dispatch from one ledger.

A claim (``Deliveries.claim``) makes a row ``sending``, stamps it with the claiming node
(``claimed_by``) and a lease (``lease_until``, ``Database.lease_s`` ahead, :data:`LEASE_S` unless
set otherwise). While the node works on it,
it renews the lease (:meth:`Leases.renew`); a node that dies or hangs stops renewing, and once the
lease has lapsed any other node takes the row over (:meth:`Leases.take_over`) and settles it as a
crash is settled at start: asked of the provider, sent again or flagged a possible duplicate.
These methods move no ``state``: the settling goes through the transition table
(``Deliveries.finish`` with ``reconcile_*`` events), which drops any late outcome of the lapsed
claim. Times are the nodes' clocks (like every time in the ledger): keep them in sync (NTP), well
within the lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update

from broadcaster.ledger.db import LEASE_S
from broadcaster.ledger.models import Delivery
from broadcaster.ledger.rows import DeliveryJob

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

__all__ = ["LEASE_S", "Leases", "lapsed"]

_TABLE = Delivery.__table__
_JOB_COLUMNS = [getattr(Delivery, f) for f in DeliveryJob.__dataclass_fields__]


def lapsed(column: Any, now: datetime, own: str | None = None) -> Any:
    """SQL: ``column`` (``state`` or ``withdrawal``) is ``sending`` under a lease that lapsed, or
    under none (left by a release before leases); with ``own``, also under that node's name."""
    cond = [Delivery.lease_until.is_(None), Delivery.lease_until <= now]
    if own:
        cond.append(Delivery.claimed_by == own)
    return (column == "sending") & or_(*cond)


class Leases:
    """The lease methods of one node (its name is the ledger's ``node``)."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    def take_over(self, now: datetime, limit: int = 200, *, own: bool = False) -> list[DeliveryJob]:
        """Claims whose lease lapsed (their node died or hung) become this node's, with a fresh
        lease, to be settled as a crash is. ``claimed_at`` is kept: it is when the attempt began,
        which the provider is asked about. ``own``: also claims made under this node's name by a
        previous run of it (``broadcaster run`` at start: that run is over)."""
        sub = (select(Delivery.id).where(lapsed(Delivery.state, now, self._ledger.node if own else None))
               .order_by(Delivery.id).limit(limit))
        if not self._ledger.is_sqlite:
            sub = sub.with_for_update(skip_locked=True)  # two survivors never settle one row twice
        stmt = (update(_TABLE).where(Delivery.id.in_(sub), Delivery.state == "sending")
                .values(claimed_by=self._ledger.node, lease_until=now + timedelta(seconds=self._ledger.lease_s),
                        updated_at=now)
                .returning(*_JOB_COLUMNS))
        with self._ledger.engine.begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((DeliveryJob(*r) for r in rows), key=lambda j: j.id)

    def renew(self, now: datetime) -> set[int]:
        """Extend the lease of every claim this node holds (sends and withdrawals) to
        ``now + LEASE_S``; returns their ids. A row another node took over is not among them, nor
        one whose outcome is being written at this moment."""
        mine = (select(Delivery.id)
                .where(or_(Delivery.state == "sending", Delivery.withdrawal == "sending"),
                       Delivery.claimed_by == self._ledger.node))
        if not self._ledger.is_sqlite:
            # Rows being finished right now are locked by that transaction, and leave `sending`
            # with it: skipped, not waited for (waiting, the two updates could deadlock).
            mine = mine.with_for_update(skip_locked=True)
        stmt = (update(_TABLE).where(Delivery.id.in_(mine))
                .values(lease_until=now + timedelta(seconds=self._ledger.lease_s))
                .returning(Delivery.id))
        with self._ledger.engine.begin() as conn:
            return set(conn.execute(stmt).scalars())

    def lapsed_count(self, now: datetime) -> int:
        """Sends and withdrawals whose lease has lapsed: a cheap look before :meth:`take_over`."""
        with self._ledger.reader() as s:
            return s.scalar(select(func.count()).where(
                or_(lapsed(Delivery.state, now), lapsed(Delivery.withdrawal, now)))) or 0

    def holders(self) -> dict[str, int]:
        """``{node: sends and withdrawals it holds now}`` (``status``, tests)."""
        with self._ledger.reader() as s:
            rows = s.execute(select(Delivery.claimed_by, func.count())
                             .where(or_(Delivery.state == "sending", Delivery.withdrawal == "sending"))
                             .group_by(Delivery.claimed_by)).all()
        return {str(node): n for node, n in rows}
