"""The wiring: one :class:`Service` per deployment holds the configuration, the ledger, the
sources, the renderer, the channels and the dispatcher that the flows (``broadcaster.flows``)
work with. The scheduler, the CLI and the API start flows through it.

source -> reading -> rules -> alert -> deliveries -> channels -> ledger
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path

from broadcaster import plugins
from broadcaster.audio import Renderer
from broadcaster.audio.links import AudioLinks, url_key
from broadcaster.channels.sms import SmsContext, build_provider
from broadcaster.channels.speakers import SpeakerChannel, SpeakerContext, speaker_types
from broadcaster.config import Config
from broadcaster.dispatch import Dispatcher, Endpoints
from broadcaster.flows.limits import FLAG_DAYS, RenderGate
from broadcaster.flows import automatic
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
        #: Previews queue here (one render at a time, one per user): see broadcaster.flows.limits.
        self.renders = RenderGate()
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

    # ---------------------------------------------------------------- flows

    def poll(self, *, dry_run: bool = False, kind: str = "scheduled") -> PollReport:
        """One automatic poll (:func:`broadcaster.flows.automatic.poll`)."""
        return automatic.poll(self, dry_run=dry_run, kind=kind)

    def withdraw(self, alert_ids: list[int], reason: str) -> tuple[int, int]:
        """Cancel what these alerts have not sent and withdraw plays endpoints hold
        (``Deliveries.cancel``)."""
        push = {t for t, cls in speaker_types().items() if cls.withdrawable}
        result = self.ledger.deliveries.cancel(alert_ids, reason, self.now(), push)
        self.dispatcher.wake()
        return result

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
