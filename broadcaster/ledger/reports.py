"""The owner of the weekly reports' record and of incident reports (DESIGN A14).

- A scheduled report is one row of ``reports`` per period: :meth:`Reports.claim` takes it (a lease,
  so that two nodes, or a restart half-way, never send one week twice), :meth:`Reports.sent` marks it
  sent, :meth:`Reports.failed` gives the claim back for a retry.
- An incident is written once and never updated; a correction is a row of its own. The SMS to
  group ``leaders`` is an alert (kind ``system``) written in the same transaction as the incident
  or correction, so an incident is never recorded without its SMS, nor the SMS queued twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from broadcaster.ledger.models import Alert, Delivery, Incident, IncidentCorrection, ReportRecord

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

#: A claim older than this is taken to be dead (its node stopped half-way) and may be taken over.
CLAIM_LEASE = timedelta(minutes=15)


class Reports:
    """Writes and reads of ``reports``, ``incidents`` and ``incident_corrections``."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    # -------------------------------------------------------------- reports

    def claim(self, period: str, start: date, end: date, now: datetime) -> bool:
        """Take the job of making and sending ``period``'s report. False when it was sent already or
        another node holds a live claim; True (and the claim is ours) otherwise."""
        try:
            with self._ledger.session() as s:
                s.add(ReportRecord(period=period, start=start, end=end, files=[], created_at=now,
                                   claimed_at=now))
            return True
        except IntegrityError:
            pass
        with self._ledger.session() as s:
            row = s.scalars(select(ReportRecord).where(ReportRecord.period == period)).one()
            if row.sent_at is not None or (row.claimed_at is not None and now - row.claimed_at < CLAIM_LEASE):
                return False
            # Compare and set on the claim we saw: of two nodes taking over, one wins.
            stale = ReportRecord.claimed_at.is_(None) if row.claimed_at is None else \
                ReportRecord.claimed_at == row.claimed_at
            n = s.execute(update(ReportRecord).where(
                ReportRecord.id == row.id, ReportRecord.sent_at.is_(None), stale).values(claimed_at=now)).rowcount
        return n == 1

    def sent(self, period: str, files: list[str], now: datetime, sent_to: dict[str, Any],
             error: str | None = None) -> None:
        """Record that ``period``'s report went out (``error``: what partly failed)."""
        with self._ledger.session() as s:
            s.execute(update(ReportRecord).where(ReportRecord.period == period).values(
                files=files, sent_at=now, sent_to=sent_to, error=error, claimed_at=None))

    def failed(self, period: str, files: list[str], error: str) -> None:
        """Give the claim back after a failure (made files kept), so that a retry may send it."""
        with self._ledger.session() as s:
            s.execute(update(ReportRecord).where(ReportRecord.period == period).values(
                files=files, error=error, claimed_at=None))

    def record(self, period: str) -> ReportRecord | None:
        """The scheduled report of ``period``, if any."""
        with self._ledger.reader() as s:
            return s.scalars(select(ReportRecord).where(ReportRecord.period == period)).first()

    # ------------------------------------------------------------ incidents

    def _with_sms(self, s: Any, alert: Alert | None, rows: Iterable[dict[str, Any]]) -> int | None:
        if alert is None:
            return None
        alert.dedupe_key = alert.dedupe_key or f"incident:{uuid.uuid4().hex}"
        s.add(alert)
        s.flush()
        batch = [{**r, "alert_id": alert.id} for r in rows]
        if batch:
            s.execute(insert(Delivery), batch)
        return alert.id

    def create_incident(self, incident: Incident, alert: Alert | None,
                        rows: Iterable[dict[str, Any]]) -> tuple[int, int | None]:
        """Record an incident and, in the same transaction, the alert and SMS rows announcing it.
        Returns ``(incident_id, alert_id)``."""
        with self._ledger.session() as s:
            incident.alert_id = self._with_sms(s, alert, rows)
            s.add(incident)
            s.flush()
            return incident.id, incident.alert_id

    def add_correction(self, correction: IncidentCorrection, alert: Alert | None,
                       rows: Iterable[dict[str, Any]]) -> tuple[int, int | None] | None:
        """Append a correction (and its SMS, if any) to an incident; None when there is no such
        incident. The incident itself is never changed."""
        with self._ledger.session() as s:
            if s.get(Incident, correction.incident_id) is None:
                return None
            correction.alert_id = self._with_sms(s, alert, rows)
            s.add(correction)
            s.flush()
            return correction.id, correction.alert_id

    def incident(self, incident_id: int) -> tuple[Incident, list[IncidentCorrection]] | None:
        """One incident with its corrections in order, or None."""
        with self._ledger.reader() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return None
            corr = list(s.scalars(select(IncidentCorrection)
                                  .where(IncidentCorrection.incident_id == incident_id)
                                  .order_by(IncidentCorrection.id)))
        return inc, corr

    def recent_incidents(self, limit: int = 100) -> list[tuple[Incident, list[IncidentCorrection]]]:
        """The latest incidents (by time of occurrence, newest first) with their corrections: two
        queries, whatever the number."""
        with self._ledger.reader() as s:
            incs = list(s.scalars(select(Incident).order_by(Incident.occurred_at.desc(), Incident.id.desc())
                                  .limit(limit)))
            corr: dict[int, list[IncidentCorrection]] = {i.id: [] for i in incs}
            for c in s.scalars(select(IncidentCorrection)
                               .where(IncidentCorrection.incident_id.in_(list(corr)))
                               .order_by(IncidentCorrection.id)):
                corr[c.incident_id].append(c)
        return [(i, corr[i.id]) for i in incs]
