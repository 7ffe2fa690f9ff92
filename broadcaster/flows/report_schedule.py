"""The scheduled Friday report (DESIGN A14): made once a week at ``report.at`` and sent by e-mail
(``smtp``) and to the chats (``report.chats``, :mod:`broadcaster.flows.handoff`).

Once per week, whatever happens: the week is claimed in the ledger (``reports``) before anything is
made, and marked sent after; a restart, the start-up catch-up or a second node finds it and does
nothing. A failure gives the claim back (the scheduler retries a transient one). The report covers
the ISO week that holds ``report.at``, up to that moment: on a Friday at 15:00, the nights from
Monday to Thursday (the console makes the whole week's report at any time later). A week whose
``report.at`` passed while the service was down is made at the next start, in that same week.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.channels.email import send_mail
from broadcaster.config import Config
from broadcaster.flows.handoff import to_chats
from broadcaster.flows.report import make_report, summary
from broadcaster.report import Period, report_period

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)


@dataclass
class Sent:
    """What the scheduled report did: its files and who got it."""

    period: Period
    files: list[Path]
    emailed: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    chats: list[str] = field(default_factory=list)


def reports_dir(cfg: Config) -> Path:
    """Where the scheduled reports' files are kept (``{data_dir}/reports``)."""
    return cfg.data_dir / "reports"


def due_at(cfg: Config, day: date) -> datetime | None:
    """The moment ``report.at`` of the ISO week that holds ``day`` (None: no schedule)."""
    sched = cfg.settings.report
    if sched is None:
        return None
    year, week, _ = day.isocalendar()
    return datetime.combine(date.fromisocalendar(year, week, sched.at.weekday), sched.at.time, cfg.tz)


def due_period(cfg: Config, now: datetime) -> Period | None:
    """The week whose report is due at ``now``: this ISO week once its ``report.at`` has come."""
    local = now.astimezone(cfg.tz)
    at = due_at(cfg, local.date())
    if at is None or local < at:
        return None
    return report_period(None, None, None, local.date())


def link(cfg: Config) -> str:
    """The console page that lists every week's report."""
    return cfg.settings.http.public_url.rstrip("/") + "/reports"


def send_scheduled(svc: Service, why: str = "scheduled") -> Sent | None:
    """Make and send this week's report if it is due and not sent yet; None when there is nothing
    to do. Raises the mailer's TransientError/PermanentError when the mail could not go. ``why``
    (the job: ``at FRI 15:00``, ``catch-up``, ``retry``) is logged and audited."""
    cfg = svc.cfg
    sched = cfg.settings.report
    now = svc.now()
    period = due_period(cfg, now)
    if sched is None or period is None:
        return None
    reports = svc.ledger.reports
    if not reports.claim(period.file_stem, period.start, period.end, now):
        log.info("weekly report %s: already sent (or being made by another node)", period.file_stem)
        return None
    out = Sent(period, [])
    try:
        made = make_report(cfg, svc.ledger, period, now, reports_dir(cfg), sched.format)
        out.files = made.files
        body = f"{summary(made.report)}\n\n各周报告可在控制台下载 / every week's report: {link(cfg)}\n"
        if sched.email and cfg.settings.smtp is not None:
            subject = f"{cfg.settings.town}一氧化碳中毒预警周报 {period.label}"
            out.refused = send_mail(cfg.settings.smtp, sched.email, subject, body, out.files)
            out.emailed = [a for a in sched.email if a not in out.refused]
        out.chats = to_chats(svc, sched.chats, body, out.files, link(cfg), key=f"report:{period.file_stem}")
    except Exception as exc:
        reports.failed(period.file_stem, [f.name for f in out.files], str(exc))
        log.error("weekly report %s could not be sent: %s", period.file_stem, exc)
        raise
    problem = "; ".join(f"{a}: {why}" for a, why in out.refused.items()) or None
    reports.sent(period.file_stem, [f.name for f in out.files], svc.now(),
                 {"email": out.emailed, "refused": out.refused, "chats": out.chats}, error=problem)
    svc.ledger.audit(svc.now(), "scheduler", "report.send", "report", period.file_stem,
                     {"files": [f.name for f in out.files], "email": out.emailed, "refused": out.refused,
                      "chats": out.chats, "job": why})
    log.info("weekly report %s sent (%s): %s; e-mail to %d, chats %d", period.file_stem, why,
             ", ".join(f.name for f in out.files), len(out.emailed), len(out.chats))
    return out


@dataclass(frozen=True)
class Week:
    """A week the console offers a report for, and what the schedule did with it."""

    period: Period
    sent_at: datetime | None
    files: list[str]
    sent_to: dict[str, Any]
    error: str | None


def weeks(svc: Service) -> list[Week]:
    """Every ISO week with a reading, an alert or an incident, this week and every week the schedule
    made a report for, newest first."""
    cfg, now = svc.cfg, svc.now()
    tz = cfg.tz
    nights, incident_times = svc.ledger.report_reads.report_dates()
    days = nights | {t.astimezone(tz).date() for t in incident_times} | {now.astimezone(tz).date()}
    records = {rec.period: rec for rec in svc.ledger.report_reads.records()}
    periods = {p.file_stem: p for p in (report_period(None, None, None, d) for d in days)}
    for rec in records.values():  # the schedule makes ISO weeks only
        periods.setdefault(rec.period, report_period(None, None, None, rec.start))
    out = []
    for stem, p in sorted(periods.items(), key=lambda kv: kv[1].start, reverse=True):
        rec = records.get(stem)
        out.append(Week(p, rec.sent_at.astimezone(tz) if rec and rec.sent_at else None,
                        list(rec.files) if rec else [], dict(rec.sent_to or {}) if rec else {},
                        rec.error if rec else None))
    return out
