"""The service layer: the one place where flows start (scheduler, CLI and API all call it).

source -> reading -> rules -> alert -> deliveries -> channels -> ledger
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from broadcaster.flows.alerts import iter_sms_rows, play_rows, timing_for_night
from broadcaster.audio import Bulletin, Renderer
from broadcaster import plugins
from broadcaster.audio.links import AudioLinks, url_key
from broadcaster.channels.sms import SmsContext, build_provider
from broadcaster.channels.speakers import SpeakerChannel, SpeakerContext, speaker_types
from broadcaster.config import Config
from broadcaster.dispatch import Dispatcher, Endpoints
from broadcaster.feeds import PollResult, SourceContext, build_sources, poll_sources
from broadcaster.ledger import Alert, Ledger, ReadingRow
from broadcaster.rules import Decision, decide
from broadcaster.timeutil import Clock, Night, in_season, tonight

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


class Service:
    """Everything a running deployment needs, built from one validated configuration."""

    def __init__(self, cfg: Config, clock: Clock | None = None, ledger: Ledger | None = None) -> None:
        self.cfg = cfg
        self.clock = clock or Clock()
        self.ledger = ledger or Ledger(cfg.database_url)
        s = cfg.settings
        self.sources = build_sources(cfg.sources, SourceContext(s.town, cfg.tz, cfg.base_dir, self.clock))
        a = s.audio
        self.renderer = Renderer(
            cache_dir=cfg.data_dir / "audio",
            chime=cfg.resolve(a.chime) if a.chime else None,
            clips_dir=cfg.resolve(a.clips),
            repeat=a.repeat,
            engine=plugins.get("tts", cfg.tts.name)(cfg.tts.config),
        )
        self.links = AudioLinks(s.http.public_url, url_key(cfg.data_dir))
        ctx = SpeakerContext(base_dir=cfg.directory_dir)
        types = speaker_types()
        self.speakers: dict[str, SpeakerChannel] = {
            sid: types[sc.type](sc, ctx) for sid, (_v, sc) in cfg.speakers.items()
        }
        self._bind_speakers()
        # Set when the service begins to stop: long polls answer at once so that shutdown is quick.
        self.stopping = threading.Event()
        # speaker id -> token sha256 of agents run in-process (broadcaster.runtime.builtin_agents)
        self.builtin_agent_digests: dict[str, str] = {}
        self.sms = build_provider(cfg.sms.name, cfg.sms.config, SmsContext(
            public_url=s.http.public_url, base_dir=cfg.base_dir, tz=cfg.tz, templates=cfg.rules.templates))
        self.dispatcher = Dispatcher(
            self.ledger,
            Endpoints(
                sms=self.sms,
                speakers=self.speakers,
                audio_path=self.renderer.find,
                links=self.links,
                tz=cfg.tz,
            ),
            self.clock,
            rate_per_s=s.sms.rate_per_s,
            concurrency=s.sms.concurrency,
        )

    def _bind_speakers(self) -> None:
        """Give push endpoints that confirm later (mqtt) the ledger callback and URL signer."""
        for ch in self.speakers.values():
            if hasattr(ch, "bind"):
                ch.bind(confirm=self.confirm_play, sign=self.links.signed)

    def confirm_play(self, delivery_id: int, speaker_id: str, ok: bool, error: str | None = None) -> bool:
        """An endpoint confirmed (or refused) a play; False while the send itself is still being recorded."""
        state = self.ledger.deliveries.report(delivery_id, speaker_id, "played" if ok else "failed", self.now(),
                                              error=error)
        return state != "sending"

    def close(self) -> None:
        self.dispatcher.stop()
        self.ledger.close()

    # ----------------------------------------------------------------- time

    def now(self) -> datetime:
        return self.clock.now()

    def tonight(self) -> Night:
        return tonight(self.now(), self.cfg.tz)

    def in_season(self, night: Night) -> bool:
        start, end = self.cfg.settings.schedule.season.bounds()
        return in_season(night.date, start, end)

    # ----------------------------------------------------------------- poll

    def poll(self, *, dry_run: bool = False, kind: str = "scheduled") -> PollReport:
        """Fetch tonight's level, decide, and (unless ``dry_run``) create and queue the alert."""
        night = self.tonight()
        result = poll_sources(self.sources, night)
        report = PollReport(night=night, result=result, in_season=self.in_season(night))
        r = result.reading
        if r is not None:
            log.info("tonight %s: level %d from %s (%s)%s", night.date, r.level, r.source, self.cfg.settings.town,
                     f"; {r.factor_summary()}" if r.factors else "")
        else:
            log.warning("tonight %s: no valid reading (%s)", night.date, "; ".join(result.errors()) or "no warning in force")
        if not dry_run:
            self._record_reading(result, kind)
        if r is None:
            report.reason = "no valid reading" if not result.ok else "no warning in force"
            return report
        if not report.in_season:
            report.reason = "out of the heating season: no automatic alert"
            log.info(report.reason)
            return report
        decision = decide(self.cfg, r.level, night, self.now(), r, self.unreachable())
        report.decision, report.held = decision, decision.held
        report.sms, report.plays = len(decision.sms), len(decision.plays)
        if not decision.sends_anything:
            report.reason = f"level {r.level}: no rule sends anything"
            return report
        existing = [a for a in self.ledger.reads.alerts_for_night(night.date) if a.region == self.cfg.settings.town]
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
        report.alert_id, report.created = self._create_auto_alert(night, decision, r.level, existing)
        if not report.created:
            report.sms = report.plays = 0
            report.reason = "alert already exists"
        self.dispatcher.wake()
        return report

    def _render(self, text: str | None, clip: str | None, repeat: int | None, fmt: str) -> Bulletin:
        return self.renderer.render(text, clip=clip, repeat=repeat, fmt=fmt)

    def _create_auto_alert(self, night: Night, d: Decision, level: int, lower: list[Alert]) -> tuple[int, bool]:
        now = self.now()
        t = timing_for_night(now, night, self.cfg.settings.schedule.play_expiry_min)
        plays, sha = play_rows(d.plays, self.speakers, self.cfg.settings.audio.format, self._render, t)
        rows = itertools.chain(iter_sms_rows(d.sms, self.sms.type, t), plays)  # streamed into the ledger
        town = self.cfg.settings.town
        alert = Alert(
            kind="auto", dedupe_key=f"auto:{town}:{night.date.isoformat()}:{level}", region=town,
            night=night.date, level=level, rules=d.fired, status="dispatching",
            sms_text=d.sms[0].body if d.sms else None,
            speaker_text=next((p.text for p in d.plays if p.text), None),
            audio_sha256=sha, created_at=now, created_by="scheduler",
        )
        alert_id, created = self.ledger.create_alert(alert, rows)
        if created:
            log.info("alert %d created: %s night %s level %d (%s): %d SMS, %d plays", alert_id, town, night.date,
                     level, d.level_name, len(d.sms), len(d.plays))
            self.ledger.audit(now, "scheduler", "alert.create", "alert", alert_id,
                              {"level": level, "rules": d.fired, "sms": len(d.sms), "plays": len(d.plays),
                               "text": alert.speaker_text, "audio_sha256": sha})
            if lower:
                self._supersede([a.id for a in lower], alert_id, now)
        return alert_id, created

    def _supersede(self, alert_ids: list[int], by: int, now: datetime) -> None:
        """An escalation replaces lower alerts' plays and SMS that have not gone out yet, and
        withdraws their plays from endpoints that already hold them (DESIGN A7)."""
        self.ledger.mark_superseded(alert_ids, by)
        n, withdrawing = self.withdraw(alert_ids, f"superseded by alert {by}")
        if n:
            log.info("escalation: cancelled %d deliveries of lower alerts (%d plays to withdraw)", n, withdrawing)

    def withdraw(self, alert_ids: list[int], reason: str) -> tuple[int, int]:
        """Cancel what these alerts have not sent and withdraw plays endpoints hold
        (``Deliveries.cancel``)."""
        push = {t for t, cls in speaker_types().items() if cls.withdrawable}
        result = self.ledger.deliveries.cancel(alert_ids, reason, self.now(), push)
        self.dispatcher.wake()
        return result

    def _record_reading(self, result: PollResult, kind: str) -> None:
        r = result.reading
        self.ledger.add_reading(ReadingRow(
            night=result.night.date, fetched_at=self.now(), region=self.cfg.settings.town,
            level=r.level if r else None, source=r.source if r else None,
            valid_from=r.valid_from if r else None, valid_to=r.valid_to if r else None,
            issued_at=r.issued_at if r else None, advice=r.advice if r else None,
            reading=r.to_json() if r else None, outcomes=[o.to_json() for o in result.outcomes],
            error="; ".join(result.errors()) or None, kind=kind,
        ))

    def unreachable(self) -> dict[str, str]:
        """Numbers a provider reported unreachable (``{phone: reason}``): held, with the reason."""
        return self.ledger.reads.unreachable()

    def audio_file(self, sha256: str, ext: str) -> Path | None:
        return self.renderer.find(sha256, ext)
