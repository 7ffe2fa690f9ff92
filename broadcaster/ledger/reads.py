"""The read models: every question the flows, the API, the console and the scheduler ask the ledger.

Each method is one read transaction and returns plain values, tuples or detached ORM rows (never a
session). Counting happens in the database (GROUP BY): a county-wide alert has 100,000 rows and
the console asks while it goes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_, select

from broadcaster.ledger.models import Alert, AuditEntry, ContactFlag, Delivery, EndpointContact, ReadingRow
from broadcaster.ledger.transitions import OPEN

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database

Counts = dict[str, dict[str, int]]  # {"sms": {state: n}, "speaker": {state: n}}


@dataclass(frozen=True)
class AlertSummary:
    """An alert with its delivery counts, and its plays' counts per village (``{village: {state: n}}``)."""

    alert: Alert
    deliveries: Counts
    plays: dict[str, dict[str, int]]
    play_at: dict[str, datetime] = field(default_factory=dict)  # each village's earliest play time


@dataclass(frozen=True)
class NightStatus:
    """What ``status`` shows of one night: its latest poll, its alerts, every delivery's state count,
    the night's plays ``(village_id, speaker, state, play_at, played_at, error)`` and recent problems
    ``(id, channel, target, state, error)``."""

    reading: ReadingRow | None
    alerts: list[Alert]
    by_state: dict[str, int]
    plays: list[tuple[Any, ...]]
    problems: list[tuple[Any, ...]]


@dataclass(frozen=True)
class EndpointActivity:
    """Per endpoint (speaker id): when an agent last called, the last play confirmed, the last
    hand-over, and the last failure's error since the given time."""

    agent_seen: dict[str, datetime]
    last_play: dict[str, datetime]
    last_sent: dict[str, datetime]
    last_failure: dict[str, str | None]


class Reads:
    """The ledger's read models (see the module docstring)."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    # ---------------------------------------------------------------- counts

    def sms_accepted_since(self, targets: Iterable[str], since: datetime) -> dict[str, int]:
        """SMS a provider accepted for each of these numbers since ``since`` (the per-number
        daily cap, DESIGN A10): one query per claimed batch, through ``ix_deliveries_target``."""
        wanted = sorted(set(targets))
        if not wanted:
            return {}
        q = (select(Delivery.target, func.count()).where(Delivery.channel == "sms", Delivery.target.in_(wanted),
                                                         Delivery.sent_at.is_not(None), Delivery.sent_at >= since)
             .group_by(Delivery.target))
        with self._ledger.reader() as s:
            return {t: n for t, n in s.execute(q).all()}

    def bulletins(self, alert_id: int) -> list[str]:
        """The distinct audio files (sha256) of an alert's loudspeaker plays."""
        q = (select(Delivery.audio_sha256).where(Delivery.alert_id == alert_id, Delivery.channel == "speaker",
                                                 Delivery.audio_sha256.is_not(None)).distinct())
        with self._ledger.reader() as s:
            return sorted(s.scalars(q).all())

    def sms_awaiting_receipt(self, sent_before: datetime, sent_after: datetime,
                             limit: int = 200) -> list[tuple[str, str, datetime]]:
        """(provider id, number, sent at) of SMS still ``sent`` (no receipt) that a provider
        accepted between ``sent_after`` and ``sent_before``, oldest first: what the query APIs
        are asked about when no push came (DESIGN A10)."""
        q = (select(Delivery.provider_id, Delivery.target, Delivery.sent_at)
             .where(Delivery.channel == "sms", Delivery.state == "sent", Delivery.provider_id.is_not(None),
                    Delivery.sent_at >= sent_after, Delivery.sent_at < sent_before)
             .order_by(Delivery.sent_at).limit(limit))
        with self._ledger.reader() as s:
            return [(p, t, at) for p, t, at in s.execute(q).all()]

    def counts(self, alert_ids: Iterable[int] | None = None) -> Counts:
        """``{"sms": {state: n}, "speaker": {state: n}}`` over the given alerts (or all)."""
        q = select(Delivery.channel, Delivery.state, func.count()).group_by(Delivery.channel, Delivery.state)
        if alert_ids is not None:
            q = q.where(Delivery.alert_id.in_(list(alert_ids)))
        out: Counts = {"sms": {}, "speaker": {}}
        with self._ledger.reader() as s:
            for channel, state, n in s.execute(q):
                out.setdefault(channel, {})[state] = n
        return out

    def open_count(self, alert_ids: Iterable[int], channel: str | None = None) -> int:
        """Deliveries of these alerts that are still pending or sending."""
        q = select(func.count()).where(Delivery.alert_id.in_(list(alert_ids)), Delivery.state.in_(OPEN))
        if channel:
            q = q.where(Delivery.channel == channel)
        with self._ledger.reader() as s:
            return s.scalar(q) or 0

    # ---------------------------------------------------------------- alerts

    def broadcasts_by(self, author: str, since: datetime) -> int:
        """How many manual broadcasts ``author`` created since ``since`` (the per-user quota)."""
        q = select(func.count()).where(Alert.kind == "manual", Alert.created_by == author, Alert.created_at >= since)
        with self._ledger.reader() as s:
            return s.scalar(q) or 0

    def alert(self, alert_id: int) -> Alert | None:
        """One alert or broadcast, or None."""
        with self._ledger.reader() as s:
            return s.get(Alert, alert_id)

    def alerts_for_night(self, night: date, kind: str = "auto") -> list[Alert]:
        """The night's alerts of ``kind``, lowest level first."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(Alert).where(Alert.night == night, Alert.kind == kind).order_by(Alert.level)))

    def history(self, *, since: datetime | None = None, ids: list[int] | None = None) -> list[AlertSummary]:
        """Alerts in ``ids``, else those created since ``since`` (else all), with their counts,
        oldest first."""
        q = select(Alert).order_by(Alert.id)
        if ids is not None:
            q = q.where(Alert.id.in_(ids))
        elif since is not None:
            q = q.where(Alert.created_at >= since)
        with self._ledger.reader() as s:
            alerts = list(s.scalars(q))
            village = case((Delivery.channel == "speaker", Delivery.village_id), else_=None)
            rows = s.execute(select(Delivery.alert_id, Delivery.channel, Delivery.state, village, func.count(),
                                    func.min(Delivery.play_at))
                             .where(Delivery.alert_id.in_([a.id for a in alerts] or [-1]))
                             .group_by(Delivery.alert_id, Delivery.channel, Delivery.state, village)).all()
        counts: dict[int, Counts] = {}
        plays: dict[int, dict[str, dict[str, int]]] = {}
        play_at: dict[int, dict[str, datetime]] = {}
        for aid, channel, state, vid, n, first in rows:
            c = counts.setdefault(aid, {"sms": {}, "speaker": {}}).setdefault(channel, {})
            c[state] = c.get(state, 0) + n
            if channel == "speaker":
                p = plays.setdefault(aid, {}).setdefault(vid or "", {})
                p[state] = p.get(state, 0) + n
                if first is not None:
                    t = play_at.setdefault(aid, {})
                    t[vid or ""] = min(t.get(vid or "", first), first)
        return [AlertSummary(a, counts.get(a.id, {"sms": {}, "speaker": {}}), plays.get(a.id, {}),
                             play_at.get(a.id, {})) for a in alerts]

    def pending_broadcasts(self) -> list[Alert]:
        """Manual broadcasts waiting for an approver, oldest first."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(Alert).where(Alert.kind == "manual", Alert.status == "pending_approval")
                                  .order_by(Alert.id)))

    # ------------------------------------------------------- night and feed

    def night_status(self, night: date, since: datetime) -> NightStatus:
        """The night's latest poll, alerts and plays; state counts; problems updated since ``since``."""
        with self._ledger.reader() as s:
            row = s.scalars(select(ReadingRow).where(ReadingRow.night == night)
                            .order_by(ReadingRow.id.desc()).limit(1)).first()
            alerts = list(s.scalars(select(Alert).where(Alert.night == night).order_by(Alert.id)))
            by_state = dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
            plays = s.execute(
                select(Delivery.village_id, Delivery.target, Delivery.state, Delivery.play_at, Delivery.played_at,
                       Delivery.last_error)
                .where(Delivery.channel == "speaker", Delivery.alert_id.in_([a.id for a in alerts] or [-1]))
                .order_by(Delivery.village_id, Delivery.play_at)).all()
            problems = s.execute(
                select(Delivery.id, Delivery.channel, Delivery.target, Delivery.state, Delivery.last_error)
                .where(Delivery.state.in_(("failed", "expired")), Delivery.updated_at >= since)
                .order_by(Delivery.id.desc()).limit(20)).all()
        return NightStatus(row, alerts, by_state, [tuple(p) for p in plays], [tuple(p) for p in problems])

    def auto_alerts_since(self, since: datetime) -> list[Alert]:
        """Automatic alerts created since ``since``, oldest first (the public CAP feed)."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(Alert).where(Alert.kind == "auto", Alert.created_at >= since)
                                  .order_by(Alert.id)))

    def latest_reading(self, night: date) -> ReadingRow | None:
        """The night's latest poll with a valid reading (its level, advice and valid times)."""
        with self._ledger.reader() as s:
            return s.scalars(select(ReadingRow).where(ReadingRow.night == night, ReadingRow.level.is_not(None))
                             .order_by(ReadingRow.id.desc()).limit(1)).first()

    def tonight_levels(self, night: date) -> tuple[int | None, int | None]:
        """For catching up: the level of the night's latest poll (None: no poll, or no valid
        reading) and the highest level it has an automatic alert for (None: none)."""
        with self._ledger.reader() as s:
            polled = s.scalars(select(ReadingRow.level).where(ReadingRow.night == night)
                               .order_by(ReadingRow.id.desc()).limit(1)).first()
            alerted = s.scalars(select(Alert.level).where(Alert.night == night, Alert.kind == "auto")
                                .order_by(Alert.level.desc()).limit(1)).first()
        return polled, alerted

    def feed_errors(self, night: date) -> tuple[bool, list[str]]:
        """For the deadline: whether any poll found a valid reading for the night, and every
        failed poll's error in order."""
        with self._ledger.reader() as s:
            ok = s.scalar(select(ReadingRow.id).where(ReadingRow.night == night, ReadingRow.error.is_(None)).limit(1))
            errors = [e for e in s.scalars(select(ReadingRow.error).where(ReadingRow.night == night)
                                           .order_by(ReadingRow.id)) if e]
        return ok is not None, errors

    def night_levels(self, first: date) -> list[tuple[date, int | None]]:
        """``(night, level)`` of every poll since ``first``, in poll order."""
        with self._ledger.reader() as s:
            return [tuple(r) for r in s.execute(select(ReadingRow.night, ReadingRow.level)  # type: ignore[misc]
                                                .where(ReadingRow.night >= first).order_by(ReadingRow.id))]

    # ------------------------------------------------------------- console

    def next_plays(self, now: datetime, since: datetime, limit: int) -> list[tuple[Any, ...]]:
        """Loudspeaker plays still to come, and those due since ``since`` whatever their state (a
        play handed to a folder endpoint is ``sent`` long before it plays), soonest first:
        ``(village_id, speaker, play_at, alert_id, alert kind, state, played_at, last_error)``."""
        with self._ledger.reader() as s:
            rows = s.execute(select(Delivery.village_id, Delivery.target, Delivery.play_at, Delivery.alert_id,
                                    Alert.kind, Delivery.state, Delivery.played_at, Delivery.last_error)
                             .join(Alert, Alert.id == Delivery.alert_id)
                             .where(Delivery.channel == "speaker",
                                    or_(and_(Delivery.state.in_(OPEN), Delivery.expires_at > now),
                                        Delivery.play_at >= since))
                             .order_by(Delivery.play_at, Delivery.id).limit(limit)).all()
        return [tuple(r) for r in rows]

    def plays_to_come(self, now: datetime) -> list[tuple[Any, ...]]:
        """The distinct plays still to come of alerts that stand (not cancelled or superseded):
        ``(alert_id, village_id, play_at, expires_at, audio_sha256, audio_ext, repeat)``. A new
        endpoint in a village gets the same plays (``Service.reload_directory``)."""
        with self._ledger.reader() as s:
            rows = s.execute(select(Delivery.alert_id, Delivery.village_id, Delivery.play_at, Delivery.expires_at,
                                    Delivery.audio_sha256, Delivery.audio_ext, Delivery.repeat)
                             .join(Alert, Alert.id == Delivery.alert_id)
                             .where(Delivery.channel == "speaker", Delivery.play_at > now,
                                    Delivery.state != "cancelled", Alert.status.not_in(("cancelled", "superseded")),
                                    Alert.superseded_by.is_(None))
                             .distinct().order_by(Delivery.alert_id, Delivery.play_at)).all()
        return [tuple(r) for r in rows]

    def deliveries_page(self, alert_id: int, page: int, size: int) -> tuple[list[Delivery], int]:
        """One page of an alert's deliveries (plays first, by village), and how many it has."""
        with self._ledger.reader() as s:
            total = s.scalar(select(func.count()).select_from(Delivery).where(Delivery.alert_id == alert_id)) or 0
            rows = list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)
                                  .order_by(Delivery.channel.desc(), Delivery.village_id, Delivery.id)
                                  .offset(page * size).limit(size)))
        return rows, total

    def endpoint_activity(self, failures_since: datetime) -> EndpointActivity:
        """Every endpoint's last contact, play, hand-over and (since ``failures_since``) failure."""
        speaker = Delivery.channel == "speaker"
        with self._ledger.reader() as s:
            seen = dict(s.execute(select(EndpointContact.speaker_id, EndpointContact.last_seen)).all())
            played = dict(s.execute(select(Delivery.target, func.max(Delivery.played_at))
                                    .where(speaker, Delivery.state == "played").group_by(Delivery.target)).all())
            sent = dict(s.execute(select(Delivery.target, func.max(Delivery.sent_at))
                                  .where(speaker, Delivery.sent_at.is_not(None)).group_by(Delivery.target)).all())
            # The latest failure wins: rows in id order overwrite earlier ones.
            failed = {t: e for t, e in s.execute(
                select(Delivery.target, Delivery.last_error).where(
                    speaker, Delivery.state.in_(("failed", "expired")), Delivery.updated_at >= failures_since)
                .order_by(Delivery.id))}
        return EndpointActivity(seen, played, sent, failed)

    def unreachable(self, since: datetime | None = None) -> dict[str, str]:
        """Numbers a provider reported unreachable (since ``since``, when given: older flags have
        expired): ``{phone: reason}``."""
        q = select(ContactFlag).where(ContactFlag.unreachable)
        if since is not None:
            q = q.where(ContactFlag.updated_at >= since)
        with self._ledger.reader() as s:
            return {f.phone: f.reason for f in s.scalars(q)}

    def unreachable_flags(self, since: datetime | None = None) -> list[ContactFlag]:
        """The unreachable flags themselves (those since ``since``), oldest first (the console's list)."""
        q = select(ContactFlag).where(ContactFlag.unreachable)
        if since is not None:
            q = q.where(ContactFlag.updated_at >= since)
        with self._ledger.reader() as s:
            return list(s.scalars(q.order_by(ContactFlag.updated_at)))

    def audit_page(self, page: int, size: int) -> tuple[list[AuditEntry], int]:
        """One page of the audit log, newest first, and how many entries it has."""
        with self._ledger.reader() as s:
            total = s.scalar(select(func.count()).select_from(AuditEntry)) or 0
            rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).offset(page * size).limit(size)))
        return rows, total

    # ---------------------------------------------------------------- agents

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
        with self._ledger.reader() as s:
            return {t: tuple(rest) for t, *rest in s.execute(q)}

    def alert_texts(self, alert_ids: set[int]) -> dict[int, str]:
        """The spoken text of each alert (an agent shows it beside the command)."""
        if not alert_ids:
            return {}
        with self._ledger.reader() as s:
            return {i: t or "" for i, t in s.execute(select(Alert.id, Alert.speaker_text)
                                                     .where(Alert.id.in_(alert_ids)))}

    def owns_audio(self, speaker_id: str, sha256: str, ext: str) -> bool:
        """True when some play of ``speaker_id`` uses this audio (an agent may fetch only its own)."""
        with self._ledger.reader() as s:
            return s.scalar(select(Delivery.id).where(
                Delivery.channel == "speaker", Delivery.target == speaker_id,
                Delivery.audio_sha256 == sha256, Delivery.audio_ext == ext).limit(1)) is not None

    def endpoint_contacts(self) -> list[EndpointContact]:
        """When each pulling endpoint last called, and from where."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(EndpointContact)))
