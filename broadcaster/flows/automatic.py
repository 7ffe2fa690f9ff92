"""The automatic flow (DESIGN flow 1): poll tonight's CO level, decide, create the alert.

source -> reading -> rules -> alert -> deliveries. Idempotent per town, night and level: polling
again sends nothing new; a higher level later creates the escalation once and supersedes (and
withdraws) what the lower alert has not played.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from broadcaster.feeds import PollResult, poll_sources
from broadcaster.flows.alerts import RenderFn, chat_rows, display_rows, iter_sms_rows, play_rows, timing_for_night
from broadcaster.ledger import Alert, ReadingRow
from broadcaster.rules import Decision, decide
from broadcaster.timeutil import Night

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    """What one poll found and did (``--json`` of ``poll``)."""

    night: Night
    result: PollResult
    in_season: bool
    decision: Decision | None = None
    alert_id: int | None = None
    created: bool = False
    reason: str = ""
    sms: int = 0
    plays: int = 0
    held: list[str] = field(default_factory=list)

    @property
    def level(self) -> int | None:
        return self.result.level

    def to_json(self) -> dict[str, Any]:
        return {
            "night": self.night.date.isoformat(),
            "level": self.level,
            "reading": self.result.reading.to_json() if self.result.reading else None,
            "sources": [o.to_json() for o in self.result.outcomes],
            "in_season": self.in_season,
            "alert_id": self.alert_id,
            "created": self.created,
            "reason": self.reason,
            "sms": self.sms,
            "plays": self.plays,
            "held": self.held,
        }


def poll(svc: Service, *, dry_run: bool = False, kind: str = "scheduled") -> PollReport:
    """Fetch tonight's level, decide, and (unless ``dry_run``) create and queue the alert."""
    night = svc.tonight()
    result = poll_sources(svc.sources, night)
    report = PollReport(night=night, result=result, in_season=svc.in_season(night))
    r = result.reading
    if r is not None:
        log.info("tonight %s: level %d from %s (%s)%s", night.date, r.level, r.source, svc.cfg.settings.town,
                 f"; {r.factor_summary()}" if r.factors else "")
    else:
        log.warning("tonight %s: no valid reading (%s)", night.date, "; ".join(result.errors()) or "no warning in force")
    if not dry_run:
        _record_reading(svc, result, kind)
    if r is None:
        report.reason = "no valid reading" if not result.ok else "no warning in force"
        return report
    if not report.in_season:
        report.reason = "out of the heating season: no automatic alert"
        log.info(report.reason)
        return report
    decision = decide(svc.cfg, r.level, night, svc.now(), r, svc.unreachable())
    report.decision, report.held = decision, decision.held
    report.sms, report.plays = len(decision.sms), len(decision.plays)
    if not decision.sends_anything:
        report.reason = f"level {r.level}: no rule sends anything"
        return report
    existing = [a for a in svc.ledger.reads.alerts_for_night(night.date) if a.region == svc.cfg.settings.town]
    higher = [a for a in existing if (a.level or 0) >= r.level]
    if higher:
        report.alert_id = higher[-1].id
        report.reason = f"already alerted tonight at level {higher[-1].level}"
        report.sms = report.plays = 0
        log.info("%s: nothing new to send", report.reason)
        return report
    if dry_run:
        report.reason = "dry run: nothing sent"
        return report
    report.alert_id, report.created = _create_auto_alert(svc, night, decision, r.level, existing)
    if not report.created:
        report.sms = report.plays = 0
        report.reason = "alert already exists"
    svc.dispatcher.wake()
    return report


def _render_fn(svc: Service) -> RenderFn:
    """The service's renderer as the row builders call it."""
    return lambda text, clip, repeat, fmt: svc.renderer.render(text, clip=clip, repeat=repeat, fmt=fmt)


def _create_auto_alert(svc: Service, night: Night, d: Decision, level: int, lower: list[Alert]) -> tuple[int, bool]:
    now = svc.now()
    t = timing_for_night(now, night, svc.cfg.settings.schedule.play_expiry_min)
    plays, sha = play_rows(d.plays, svc.speakers, svc.cfg.settings.audio.format, _render_fn(svc), t)
    others = chat_rows(d.chats, svc.image_chat_types(), t) + display_rows(d.displays, t)
    rows = itertools.chain(iter_sms_rows(d.sms, svc.sms.type, t), plays, others)  # streamed into the ledger
    town = svc.cfg.settings.town
    alert = Alert(
        kind="auto", dedupe_key=f"auto:{town}:{night.date.isoformat()}:{level}", region=town,
        night=night.date, level=level, rules=d.fired, status="dispatching",
        sms_text=d.sms[0].body if d.sms else None,
        speaker_text=next((p.text for p in d.plays if p.text), None),
        audio_sha256=sha, created_at=now, created_by="scheduler",
    )
    alert_id, created = svc.ledger.create_alert(alert, rows)
    if created:
        log.info("alert %d created: %s night %s level %d (%s): %d SMS, %d plays, %d chats, %d displays", alert_id,
                 town, night.date, level, d.level_name, len(d.sms), len(d.plays), len(d.chats), len(d.displays))
        svc.ledger.audit(now, "scheduler", "alert.create", "alert", alert_id,
                          {"level": level, "rules": d.fired, "sms": len(d.sms), "plays": len(d.plays),
                           "chats": [c.chat_id for c in d.chats], "displays": [p.display_id for p in d.displays],
                           "text": alert.speaker_text, "audio_sha256": sha})
        if lower:
            _supersede(svc, [a.id for a in lower], alert_id)
    return alert_id, created


def _supersede(svc: Service, alert_ids: list[int], by: int) -> None:
    """An escalation replaces lower alerts' plays and SMS that have not gone out yet, and
    withdraws their plays from endpoints that already hold them (DESIGN A7)."""
    svc.ledger.mark_superseded(alert_ids, by)
    n, withdrawing = svc.withdraw(alert_ids, f"superseded by alert {by}")
    if n:
        log.info("escalation: cancelled %d deliveries of lower alerts (%d plays to withdraw)", n, withdrawing)


def _record_reading(svc: Service, result: PollResult, kind: str) -> None:
    r = result.reading
    svc.ledger.add_reading(ReadingRow(
        night=result.night.date, fetched_at=svc.now(), region=svc.cfg.settings.town,
        level=r.level if r else None, source=r.source if r else None,
        valid_from=r.valid_from if r else None, valid_to=r.valid_to if r else None,
        issued_at=r.issued_at if r else None, advice=r.advice if r else None,
        reading=r.to_json() if r else None, outcomes=[o.to_json() for o in result.outcomes],
        error="; ".join(result.errors()) or None, kind=kind,
    ))
