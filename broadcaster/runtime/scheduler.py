"""APScheduler wiring only: poll times, the feed deadline, retries of failed polls, catch-up.

One scheduler per deployment, explicit time zone, ``coalesce=True``, a sized misfire grace
time, fixed job ids with ``replace_existing=True``. Durable state lives in the ledger, not in
pickled jobs: on start we look at the ledger and catch up what tonight is missing.

Several nodes (DESIGN A15): every node has the jobs, paused; only the leader's scheduler runs
(``broadcaster.runtime.leader``). On becoming leader it resumes: jobs that fell due meanwhile run
(within the misfire grace time) and the catch-up looks at the ledger. On stepping down it pauses
at once. Each run first confirms the leadership and records its fire time in the ledger, once:
a run another node already made is skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from broadcaster.errors import PermanentError, TransientError
from broadcaster.runtime.leader import FencedExecutor, Leadership
from broadcaster.runtime.service import Service
from broadcaster.channels.sms import SmsProvider
from broadcaster.flows import checkins
from broadcaster.flows.deadline import deadline_check
from broadcaster.flows.receipt_poll import POLL_MIN, poll_receipts
from broadcaster.flows.report_schedule import send_scheduled

log = logging.getLogger(__name__)

MISFIRE_GRACE_S = 30 * 60
REPORT_RETRY = timedelta(minutes=15)
FIRES_KEPT = timedelta(days=30)  # fire records older than this are pruned on each election
_FENCE_TRIES = 3


class Scheduler:
    def __init__(self, service: Service, leadership: Leadership | None = None) -> None:
        self.service = service
        cfg = service.cfg
        self.leadership = leadership or Leadership(service.ledger)
        self.sched = BackgroundScheduler(
            timezone=cfg.tz,
            executors={"default": FencedExecutor(self._may_run)},
            job_defaults={"coalesce": True, "misfire_grace_time": MISFIRE_GRACE_S, "max_instances": 1},
        )
        for t in cfg.settings.schedule.polls:
            self.sched.add_job(self.poll, CronTrigger(hour=t.hour, minute=t.minute, timezone=cfg.tz),
                               id=f"poll-{t:%H%M}", name=f"poll {t:%H:%M}", replace_existing=True)
        d = cfg.settings.schedule.deadline
        self.sched.add_job(self.deadline, CronTrigger(hour=d.hour, minute=d.minute, timezone=cfg.tz),
                           id="feed-deadline", name=f"feed deadline {d:%H:%M}", replace_existing=True)
        c = cfg.settings.checkins
        if c is not None:  # check-ins (A13): links at send_at, the open ones to the duty officer at confirm_by
            for job_id, fn, t in (("checkin-send", self.checkin_send, c.send_at),
                                  ("checkin-confirm", self.checkin_confirm, c.confirm_by)):
                self.sched.add_job(fn, CronTrigger(hour=t.hour, minute=t.minute, timezone=cfg.tz),
                                   id=job_id, name=f"{job_id} {t:%H:%M}", replace_existing=True)
        if type(service.sms).poll_receipts is not SmsProvider.poll_receipts:  # it has a query API
            self.sched.add_job(self.receipts, IntervalTrigger(minutes=POLL_MIN, timezone=cfg.tz),
                               id="sms-receipt-query", name="SMS receipt query", replace_existing=True)
        report = cfg.settings.report
        if report is not None:  # the Friday report (A14); start() also catches up a missed one
            w = report.at
            self.sched.add_job(self.weekly_report,
                               CronTrigger(day_of_week=w.weekday - 1, hour=w.time.hour, minute=w.time.minute,
                                           timezone=cfg.tz),
                               kwargs={"why": f"at {w}"}, id="weekly-report", name=f"weekly report {w}",
                               replace_existing=True)

    @property
    def node(self) -> str:
        return self.leadership.node

    @property
    def role(self) -> str:
        """``leader`` (this node runs the jobs) or ``standby``."""
        return self.leadership.role

    def start(self) -> None:
        """Start paused; the jobs run while this node leads (at once on SQLite)."""
        self.sched.start(paused=True)
        self.leadership.start(on_elected=self._elected, on_deposed=self._deposed)

    def shutdown(self) -> None:
        self.leadership.stop()  # pauses the jobs and frees the lock: a standby takes over now
        self.sched.shutdown(wait=False)

    def _elected(self) -> None:
        svc = self.service
        try:
            svc.ledger.fires.prune(svc.now() - FIRES_KEPT)
        except Exception:  # noqa: BLE001 - housekeeping only
            log.exception("could not prune old fire records")
        self.sched.resume()
        # Catch up in a job of its own so that start-up (and /healthz) is not held by the feed.
        self.sched.add_job(self.catch_up, DateTrigger(run_date=datetime.now(svc.cfg.tz)),
                           id="catch-up", name="catch up", replace_existing=True)
        if svc.cfg.settings.report is not None:  # a report.at missed while no node led, this week
            self.sched.add_job(self.weekly_report, DateTrigger(run_date=datetime.now(svc.cfg.tz)),
                               kwargs={"why": "catch-up"}, id="report-catch-up",
                               name="weekly report catch up", replace_existing=True)

    def _deposed(self) -> None:
        self.sched.pause()

    def _may_run(self, job_id: str, fire_at: datetime) -> bool:
        """The fence before every run: still the leader, and nobody ran this fire time yet."""
        for attempt in range(_FENCE_TRIES):
            try:
                if not self.leadership.confirm():
                    log.warning("%s (due %s) not run: this node no longer leads", job_id, fire_at.isoformat())
                    return False
                if self.service.ledger.fires.once(job_id, fire_at, self.node, self.service.now()):
                    return True
                log.info("%s (due %s) was already run by another node: skipped", job_id, fire_at.isoformat())
                return False
            except Exception:  # noqa: BLE001 - the ledger may be briefly unreachable
                log.exception("cannot record the run of %s (attempt %d of %d)", job_id, attempt + 1, _FENCE_TRIES)
                if attempt + 1 < _FENCE_TRIES:
                    self.service.stopping.wait(1.0)
        return False

    # ------------------------------------------------------------------ jobs

    def poll(self, kind: str = "scheduled") -> None:
        svc = self.service
        try:
            report = svc.poll(kind=kind)
        except Exception:  # noqa: BLE001 - a scheduled job must never kill the scheduler
            log.exception("poll failed unexpectedly")
            return
        if report.result.ok:
            self.checkin_send()  # a level that arrives after send_at still gets its check-ins
            return
        # No valid reading: try again until the deadline (the deadline job warns the duty group).
        now = svc.now()
        deadline = report.night.at(svc.cfg.settings.schedule.deadline)
        retry_at = now + timedelta(minutes=svc.cfg.settings.schedule.feed_retry_min)
        if report.in_season and retry_at < report.night.end:
            log.warning("feed failed; retrying at %s%s", retry_at.astimezone(svc.cfg.tz).strftime("%H:%M"),
                        " (after the deadline)" if retry_at > deadline else "")
            self.sched.add_job(self.poll, DateTrigger(run_date=retry_at), kwargs={"kind": "retry"},
                               id="poll-retry", name="poll retry", replace_existing=True)

    def receipts(self) -> None:
        try:
            poll_receipts(self.service)
        except Exception:  # noqa: BLE001 - a scheduled job must never kill the scheduler
            log.exception("SMS receipt query failed unexpectedly")

    def deadline(self) -> None:
        try:
            deadline_check(self.service)
        except Exception:  # noqa: BLE001
            log.exception("deadline check failed unexpectedly")

    def checkin_send(self) -> None:
        try:
            checkins.send_links(self.service)
        except Exception:  # noqa: BLE001 - a scheduled job must never kill the scheduler
            log.exception("sending check-in links failed")

    def checkin_confirm(self) -> None:
        try:
            self.service.reload_workbooks()
            checkins.escalate(self.service)
        except Exception:  # noqa: BLE001
            log.exception("the check-in escalation failed")

    def catch_up(self) -> None:
        """If the season is on and tonight's poll or alert is missing, poll now; then the
        check-in links and escalation missed while no node ran (each once, while the night lasts)."""
        try:
            self._catch_up_poll()
        finally:
            self.checkin_send()
            self.checkin_confirm()

    def _catch_up_poll(self) -> None:
        svc = self.service
        night = svc.tonight()
        if not svc.in_season(night):
            log.info("out of the heating season (%s): no automatic polls tonight", night.date)
            return
        polled, alerted = svc.ledger.reads.tonight_levels(night.date)
        if polled is not None and alerted is not None and alerted >= polled:
            log.info("tonight (%s) already polled at level %d and alerted; nothing to catch up", night.date, polled)
            return
        log.info("catching up: tonight's poll or alert is missing; polling now")
        self.poll(kind="catch-up")

    def weekly_report(self, why: str = "scheduled") -> None:
        """This week's report, once (:func:`broadcaster.flows.report_schedule.send_scheduled`); a
        mail server that is down or busy is tried again every ``REPORT_RETRY`` within the week."""
        svc = self.service
        tz = svc.cfg.tz
        try:
            send_scheduled(svc, why)
        except TransientError as exc:
            now = svc.now()
            retry_at = now + REPORT_RETRY
            if retry_at.astimezone(tz).isocalendar()[:2] == now.astimezone(tz).isocalendar()[:2]:
                log.warning("weekly report: %s; retrying at %s", exc,
                            retry_at.astimezone(tz).strftime("%a %H:%M"))
                self.sched.add_job(self.weekly_report, DateTrigger(run_date=retry_at),
                                   kwargs={"why": "retry"}, id="weekly-report-retry",
                                   name="weekly report retry", replace_existing=True)
        except PermanentError:
            pass  # logged and recorded by send_scheduled; a restart after fixing `smtp` tries again
        except Exception:  # noqa: BLE001 - a scheduled job must never kill the scheduler
            log.exception("weekly report failed")
