"""The weekly report's read models (DESIGN A14): one query per section, counted in the database.

A whole season (180 nights, 100,000 deliveries, hundreds of broadcasts) must report in seconds, so
every section is one ``GROUP BY`` over the rows of the period, never a query per night, alert or
delivery. Deliveries belong to the period of their alert's night (``alerts.night``, indexed), the
night being named by its evening's date; incidents to the period of their local time.

Everything is returned as plain values (dataclasses, tuples, dicts); the flow
(:mod:`broadcaster.flows.report`) names villages and groups and builds the report's rows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select, union

from broadcaster.ledger.checkins import Checkins
from broadcaster.ledger.models import (
    Alert,
    ContactFlag,
    Delivery,
    Incident,
    IncidentCorrection,
    ReadingRow,
    ReportRecord,
)
from broadcaster.ledger.transitions import OPEN

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

# How a failed SMS's ``last_error`` tells why (lower-cased, SQL LIKE patterns). ``cap`` is our own
# per-number daily cap (DESIGN A10) and the providers' frequency limits; ``unreachable`` the
# answers that mean the number will never receive SMS (also any number flagged unreachable).
CAP_PATTERNS = ("cap%", "%per_number_per_day%", "%business_limit_control%", "%limitexceeded.phonenumber%",
                "%超出发送上限%", "%频率%")
UNREACHABLE_PATTERNS = ("%unreachable%", "%不可达%", "%unsubscribed%", "%退订%", "%停机%", "%(21610)%",
                        "%(30003)%", "%(30005)%", "%(30006)%")
FAILED = ("failed", "expired")


@dataclass(frozen=True)
class NightFacts:
    """A polled night or one with an automatic alert: its highest valid level (None: no valid
    reading) with that reading's source, and its highest automatic alert with how many of its
    deliveries are still open."""

    night: date
    level: int | None
    source: str | None
    alert_id: int | None = None
    alert_level: int | None = None
    alert_status: str | None = None
    superseded_by: int | None = None
    open: int = 0


@dataclass
class SmsCounts:
    """SMS of one group (``group`` None: sent before groups were recorded; then ``phone`` is the
    number, so the caller can find its group in the directory)."""

    group: str | None
    phone: str | None
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BroadcastFacts:
    """A manual broadcast and its deliveries' counts by state."""

    id: int
    created_at: datetime
    author: str | None
    approver: str | None
    text: str | None
    villages: list[str]
    status: str
    at: datetime | None
    states: dict[str, int]


@dataclass(frozen=True)
class SystemAlertFacts:
    """A notice of the service itself (the feed deadline's SMS to the duty group, ...)."""

    id: int
    created_at: datetime
    kind: str
    note: str | None
    sms: int


def _like_any(column: Any, patterns: tuple[str, ...]) -> Any:
    return or_(*(column.like(p) for p in patterns))


class ReportReads:
    """The report's sections as reads of the ledger (see the module docstring)."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    @staticmethod
    def _of_period(start: date, end: date) -> Any:
        """The deliveries whose alert's night lies in [start, end] (join ``Alert`` first)."""
        return Alert.night.between(start, end)

    # ---------------------------------------------------------------- nights

    def nights(self, start: date, end: date) -> list[NightFacts]:
        """Nights of the period that were polled or have an automatic alert, in date order."""
        r, a = ReadingRow, Alert
        # The highest valid level of the night (the latest such poll on a tie) and its source; a
        # night whose every poll failed has a row too, with no level.
        rank = func.row_number().over(partition_by=r.night, order_by=(r.level.desc().nulls_last(), r.id.desc()))
        best = select(r.night, r.level, r.source, rank.label("rank")).where(r.night.between(start, end)).subquery()
        open_n = (select(func.count()).select_from(Delivery)
                  .where(Delivery.alert_id == a.id, Delivery.state.in_(OPEN)).scalar_subquery())
        top = (select(a.night, a.id, a.level, a.status, a.superseded_by, open_n.label("open"),
                      func.row_number().over(partition_by=a.night, order_by=a.level.desc()).label("rank"))
               .where(a.kind == "auto", a.night.between(start, end)).subquery())
        with self._ledger.reader() as s:
            readings = {n: (lv, src) for n, lv, src, _ in s.execute(select(best).where(best.c.rank == 1))}
            alerts = {row[0]: row[1:6] for row in s.execute(select(top).where(top.c.rank == 1))}
        out = []
        for night in sorted(set(readings) | set(alerts)):
            lv, src = readings.get(night, (None, None))
            aid, alv, status, sup, n_open = alerts.get(night, (None, None, None, None, 0))
            out.append(NightFacts(night, lv, src, aid, alv, status, sup, n_open or 0))
        return out

    # ------------------------------------------------------------------- SMS

    def sms(self, start: date, end: date) -> list[SmsCounts]:
        """SMS of the period by group: sent (the provider accepted it), delivered, failed (failed or
        expired) and the failures' reasons (``unreachable``, ``cap``, ``expired``, ``other``)."""
        d = Delivery
        err = func.lower(func.coalesce(d.last_error, ""))
        reason = case(
            (d.state.not_in(FAILED), None),
            (_like_any(err, CAP_PATTERNS), "cap"),
            (or_(ContactFlag.phone.is_not(None), _like_any(err, UNREACHABLE_PATTERNS)), "unreachable"),
            (d.state == "expired", "expired"),
            else_="other",
        ).label("reason")
        phone = case((d.sms_group.is_(None), d.target), else_=None).label("phone")
        q = (select(d.sms_group, phone, reason,
                    func.count(d.sent_at), func.sum(case((d.state == "delivered", 1), else_=0)),
                    func.sum(case((d.state.in_(FAILED), 1), else_=0)))
             .select_from(d).join(Alert, Alert.id == d.alert_id)
             .outerjoin(ContactFlag, and_(ContactFlag.phone == d.target, ContactFlag.unreachable.is_(True)))
             .where(d.channel == "sms", self._of_period(start, end))
             .group_by(d.sms_group, phone, reason))
        counts: dict[tuple[str | None, str | None], SmsCounts] = {}
        with self._ledger.reader() as s:
            for group, ph, why, sent, delivered, failed in s.execute(q):
                c = counts.setdefault((group, ph), SmsCounts(group, ph))
                c.sent += sent or 0
                c.delivered += delivered or 0
                c.failed += failed or 0
                if why is not None and failed:
                    c.reasons[why] = c.reasons.get(why, 0) + failed
        return list(counts.values())

    # ----------------------------------------------------------------- plays

    def plays(self, start: date, end: date) -> list[tuple[str, int, int, int, int]]:
        """``(village_id, played, failed, expired, withdrawn)`` per village, by village id.
        Withdrawn: cancelled after the endpoint held it, and the endpoint gave it back."""
        d = Delivery

        def n(cond: Any) -> Any:
            return func.sum(case((cond, 1), else_=0))

        q = (select(d.village_id, n(d.state == "played"), n(d.state == "failed"),
                    n(d.state == "expired"), n(and_(d.state == "cancelled", d.withdrawal == "done")))
             .select_from(d).join(Alert, Alert.id == d.alert_id)
             .where(d.channel == "speaker", self._of_period(start, end))
             .group_by(d.village_id))
        with self._ledger.reader() as s:
            return sorted((v or "", int(a or 0), int(b or 0), int(c or 0), int(w or 0))
                          for v, a, b, c, w in s.execute(q))

    # ------------------------------------------------------------ broadcasts

    def broadcasts(self, start: date, end: date) -> list[BroadcastFacts]:
        """Manual broadcasts of the period (by night) with their deliveries' states, oldest first."""
        a, d = Alert, Delivery
        period = and_(a.kind == "manual", a.night.between(start, end))
        # Counted first, then joined: JSON columns (villages) cannot be grouped on PostgreSQL.
        counts = (select(d.alert_id, d.state, func.count().label("n")).join(a, a.id == d.alert_id)
                  .where(period).group_by(d.alert_id, d.state).subquery())
        q = (select(a.id, a.created_at, a.created_by, a.approved_by, a.speaker_text, a.sms_text, a.villages,
                    a.status, a.at, counts.c.state, counts.c.n)
             .outerjoin(counts, counts.c.alert_id == a.id).where(period).order_by(a.id))
        rows: dict[int, list[Any]] = {}
        states: dict[int, dict[str, int]] = defaultdict(dict)
        with self._ledger.reader() as s:
            for aid, created, by, appr, spoken, sms, villages, status, at, state, n in s.execute(q):
                rows.setdefault(aid, [aid, created, by, appr, spoken or sms, villages or [], status, at])
                if state is not None:
                    states[aid][state] = n
        return [BroadcastFacts(*r, states=states[r[0]]) for r in rows.values()]

    # ------------------------------------------------------- chats, displays

    def other_channels(self, start: date, end: date) -> list[tuple[str, str, int, int]]:
        """``(channel, target, sent, failed)`` for every channel other than SMS and loudspeakers
        (``chat``, ``display`` and what plugins add), so they show as soon as they exist."""
        d = Delivery
        failed = func.sum(case((d.state.in_(FAILED), 1), else_=0))
        q = (select(d.channel, d.target, func.count(d.sent_at), failed)
             .select_from(d).join(Alert, Alert.id == d.alert_id)
             .where(d.channel.not_in(("sms", "speaker")), self._of_period(start, end))
             .group_by(d.channel, d.target).order_by(d.channel, d.target))
        with self._ledger.reader() as s:
            return [(ch, t, int(sent or 0), int(failed or 0)) for ch, t, sent, failed in s.execute(q)]

    def checkins(self, start: date, end: date) -> tuple[list[tuple[str, int, int, int]],
                                                          list[tuple[str, int, int, int]]]:
        """Check-ins (包户核实, A13) answered and missing, ``(name, households, answered, missing)``
        by village id and by cadre, for the nights ``start``..``end`` (empty when none were sent)."""
        return Checkins(self._ledger).summary(start, end)

    # --------------------------------------------------------- feed, notices

    def feed_failures(self, start: date, end: date) -> list[tuple[datetime, list[Any], str]]:
        """Polls of the period with a failed source: ``(fetched_at, outcomes, error)`` in time order."""
        r = ReadingRow
        q = (select(r.fetched_at, r.outcomes, r.error)
             .where(r.night.between(start, end), r.error.is_not(None)).order_by(r.fetched_at, r.id))
        with self._ledger.reader() as s:
            return [(at, outcomes or [], error) for at, outcomes, error in s.execute(q)]

    def system_alerts(self, start: date, end: date,
                      exclude_prefix: str = "incident:") -> list[SystemAlertFacts]:
        """The service's own notices of the period (deadline escalations, ...) with their SMS counts;
        incidents' SMS (dedupe key ``incident:...``) are shown with the incidents instead."""
        a, d = Alert, Delivery
        period = and_(a.kind == "system", a.night.between(start, end),
                      ~a.dedupe_key.startswith(exclude_prefix))
        sms = (select(d.alert_id, func.count().label("n")).join(a, a.id == d.alert_id)
               .where(period, d.channel == "sms").group_by(d.alert_id).subquery())
        q = (select(a.id, a.created_at, a.rules, a.note, a.dedupe_key, func.coalesce(sms.c.n, 0))
             .outerjoin(sms, sms.c.alert_id == a.id).where(period).order_by(a.created_at, a.id))
        with self._ledger.reader() as s:
            return [SystemAlertFacts(aid, created, (rules or [key.split(":", 1)[0]])[0], note, n)
                    for aid, created, rules, note, key, n in s.execute(q)]

    # ------------------------------------------------------------- incidents

    def incidents(self, since: datetime, until: datetime) -> list[tuple[Incident, list[IncidentCorrection]]]:
        """Incidents that occurred in [since, until), each with its corrections in order."""
        q = (select(Incident, IncidentCorrection)
             .outerjoin(IncidentCorrection, IncidentCorrection.incident_id == Incident.id)
             .where(Incident.occurred_at >= since, Incident.occurred_at < until)
             .order_by(Incident.occurred_at, Incident.id, IncidentCorrection.id))
        out: dict[int, tuple[Incident, list[IncidentCorrection]]] = {}
        with self._ledger.reader() as s:
            for inc, corr in s.execute(q):
                entry = out.setdefault(inc.id, (inc, []))
                if corr is not None:
                    entry[1].append(corr)
        return list(out.values())

    # ------------------------------------------------------------ the console

    def report_dates(self) -> tuple[set[date], list[datetime]]:
        """Every night with a reading or an alert, and every incident's time: the weeks the
        console offers a report for."""
        nights = union(select(ReadingRow.night), select(Alert.night).where(Alert.night.is_not(None)))
        with self._ledger.reader() as s:
            found = {n for (n,) in s.execute(nights) if n is not None}
            times = list(s.scalars(select(Incident.occurred_at)))
        return found, times

    def records(self) -> list[ReportRecord]:
        """The reports the schedule made, newest period first."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(ReportRecord).order_by(ReportRecord.start.desc())))


__all__ = ["BroadcastFacts", "NightFacts", "ReportReads", "SmsCounts", "SystemAlertFacts"]
