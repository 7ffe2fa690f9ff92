"""The wiring: one :class:`Service` per deployment holds the configuration, the ledger, the
sources, the renderer, the channels and the dispatcher that the flows (``broadcaster.flows``)
work with. The scheduler, the CLI and the API start flows through it.

source -> reading -> rules -> alert -> deliveries -> channels -> ledger
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from pathlib import Path

from broadcaster import plugins
from broadcaster.audio import Renderer
from broadcaster.audio.links import AudioLinks, url_key
from broadcaster.channels.chats import ChatChannel, ChatContext, build_chats, chat_types
from broadcaster.channels.displays import DisplayChannel, display_types
from broadcaster.channels.sms import SmsContext, build_provider
from broadcaster.channels.sms.failover import FailoverProvider
from broadcaster.channels.speakers import SpeakerChannel, SpeakerContext, speaker_types
from broadcaster.config import Config, books
from broadcaster.errors import Problem
from broadcaster.dispatch import Dispatcher, Endpoints
from broadcaster.flows import automatic, publishing
from broadcaster.flows.limits import FLAG_DAYS, RenderGate
from broadcaster.flows.automatic import PollReport
from broadcaster.feeds import SourceContext, build_sources
from broadcaster.ledger import Ledger
from broadcaster.timeutil import Clock, Night, in_season, tonight

log = logging.getLogger(__name__)


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
            fallback=_fallback_engine(a.fallback, cfg.tts.name),
        )
        # Previews render into a cache of their own that keeps only the newest few (RenderGate bounds
        # how many run); a bulletin that is then broadcast is rendered into the real cache.
        self.preview_renderer = Renderer(
            cache_dir=cfg.data_dir / "previews", chime=self.renderer.chime, clips_dir=self.renderer.clips_dir,
            repeat=a.repeat, engine=self.renderer.engine)
        self.links = AudioLinks(s.http.public_url, url_key(cfg.data_dir))
        ctx = SpeakerContext(base_dir=cfg.directory_dir)
        types = speaker_types()
        self.speakers: dict[str, SpeakerChannel] = {
            sid: types[sc.type](sc, ctx) for sid, (_v, sc) in cfg.speakers.items()
        }
        self._bind_speakers()
        # Set when the service begins to stop: long polls answer at once so that shutdown is quick.
        self.stopping = threading.Event()
        self._books_lock = threading.Lock()
        self._books_checked = time.monotonic()
        self.workbook_problems: list[Problem] = []  # errors of a changed workbook not taken
        #: Previews queue here (one render at a time, one per user): see broadcaster.flows.limits.
        self.renders = RenderGate()
        # speaker id -> token sha256 of agents run in-process (broadcaster.runtime.builtin_agents)
        self.builtin_agent_digests: dict[str, str] = {}
        sms_ctx = SmsContext(public_url=s.http.public_url, base_dir=cfg.base_dir, tz=cfg.tz,
                             templates=cfg.rules.templates)
        self.sms = build_provider(cfg.sms.name, cfg.sms.config, sms_ctx)
        if cfg.sms.fallbacks:  # sms.providers: failover in that order (DESIGN A10)
            self.sms = FailoverProvider([self.sms, *(build_provider(c.name, c.config, sms_ctx)
                                                     for c in cfg.sms.fallbacks)], sms_ctx)
        self.chats: dict[str, ChatChannel] = build_chats(cfg.chats, ChatContext(s.http.public_url, s.town))
        dtypes = display_types() if cfg.displays else {}
        self.displays: dict[str, DisplayChannel] = {
            did: dtypes[dc.type](dc) for did, (_v, dc) in cfg.displays.items()
        }
        self.dispatcher = Dispatcher(
            self.ledger,
            Endpoints(
                sms=self.sms,
                speakers=self.speakers,
                audio_path=self.renderer.find,
                links=self.links,
                tz=cfg.tz,
                chats=self.chats,
                displays=self.displays,
                compose=lambda job: publishing.compose(self, job),
            ),
            self.clock,
            rate_per_s=s.sms.rate_per_s,
            concurrency=s.sms.concurrency,
            sms_cap=s.sms.caps.per_number_per_day,
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

    # ---------------------------------------------------------------- flows

    def poll(self, *, dry_run: bool = False, kind: str = "scheduled") -> PollReport:
        """One automatic poll (:func:`broadcaster.flows.automatic.poll`)."""
        self.reload_workbooks()
        return automatic.poll(self, dry_run=dry_run, kind=kind)

    def withdraw(self, alert_ids: list[int], reason: str) -> tuple[int, int]:
        """Cancel what these alerts have not sent and withdraw plays endpoints hold
        (``Deliveries.cancel``)."""
        push = {t for t, cls in speaker_types().items() if cls.withdrawable}
        if self.displays:
            push |= {t for t, cls in display_types().items() if cls.withdrawable}
        result = self.ledger.deliveries.cancel(alert_ids, reason, self.now(), push)
        self.dispatcher.wake()
        return result

    def image_chat_types(self) -> set[str]:
        """The robot types that take the poster as an image (WeCom)."""
        return {t for t, cls in chat_types().items() if cls.takes_images} if self.chats else set()
    # ------------------------------------------------------------ workbooks

    WORKBOOK_CHECK_S = 30.0

    def reload_workbooks(self, force: bool = False, actor: str = "service") -> tuple[bool, list[Problem]]:
        """Take the households and duty workbooks again if they changed on disk (A13).

        Looks at the files at most every ``WORKBOOK_CHECK_S`` seconds unless ``force``. A changed
        workbook with errors is not taken: the last good one stays and the errors are kept in
        ``workbook_problems`` for the console and logged.
        """
        d = self.cfg.directory
        if d.households_file is None and d.duty_file is None:
            return False, []
        with self._books_lock:
            mono = time.monotonic()
            if not force and mono - self._books_checked < self.WORKBOOK_CHECK_S:
                return False, []
            self._books_checked = mono
            taken, problems = books.reload(self.cfg, self.now())
        errors = [p for p in problems if not p.warning]
        if errors:
            self.workbook_problems = errors
            log.error("a changed workbook has %d errors; still using the last good one: %s", len(errors),
                      "; ".join(str(p) for p in errors[:5]))
        elif taken:
            self.workbook_problems = []
            b = self.cfg.book
            log.info("workbooks read again: %d households, %d roster days", len(b.households), len(b.roster))
            self.ledger.audit(self.now(), actor, "workbooks.reload", "config", None,
                              {"households": len(b.households), "roster_days": len(b.roster)})
        return taken, problems

    def reload_directory(self, actor: str = "SIGHUP") -> tuple[list[str], list[Problem]]:
        """Take a changed directory.yaml (``kill -HUP``): :func:`broadcaster.runtime.reload.reload_directory`."""
        from broadcaster.runtime.reload import reload_directory

        return reload_directory(self, actor)

    def cancel_broadcast(self, alert_id: int, by: str, reason: str) -> tuple[int, int] | None:
        """Cancel a manual broadcast and its deliveries at once (``Ledger.cancel_broadcast``);
        None when it was already cancelled."""
        push = {t for t, cls in speaker_types().items() if cls.withdrawable}
        result = self.ledger.cancel_broadcast(alert_id, by, reason, self.now(), push)
        self.dispatcher.wake()
        return result

    def unreachable(self) -> dict[str, str]:
        """Numbers a provider reported unreachable in the last ``FLAG_DAYS`` days (``{phone:
        reason}``): held, with the reason. An older flag has expired: the number is tried again
        (an unreachable phone may be switched on again, a carrier error may be temporary)."""
        return self.ledger.reads.unreachable(since=self.now() - timedelta(days=FLAG_DAYS))

    def audio_file(self, sha256: str, ext: str) -> Path | None:
        return self.renderer.find(sha256, ext)


def _fallback_engine(name: str | None, chosen: str) -> Any:
    """``audio.fallback`` (A11) with its defaults, unless it is the chosen engine itself."""
    if not name or name == chosen:
        return None
    cls = plugins.get("tts", name)
    return cls(cls.Config())
