"""The dispatcher: claims due deliveries from the ledger, hands them to channels, records results.

It owns what channels must not: rate limits, concurrency, retries with backoff, expiry and the
ledger. A delivery is marked ``sending`` (committed) before its channel is called and its result
is written right after, so a crash leaves at most the in-flight ones to reconcile on restart.
SMS, loudspeakers, group chats and display screens have separate worker pools, so a dead endpoint
never holds back SMS.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

from broadcaster.audio.links import AudioLinks
from broadcaster.channels import SendResult
from broadcaster.channels.chats import ChatChannel, ChatJob
from broadcaster.channels.displays import DisplayChannel, DisplayJob
from broadcaster.channels.sms import SmsJob, SmsProvider
from broadcaster.channels.speakers import PlayJob, SpeakerChannel
from broadcaster.dispatch.batches import SmsBatch, deliver_batch, group, under_cap
from broadcaster.dispatch.outcomes import RELEASE, send_outcome, withdrawal_outcome
from broadcaster.dispatch.pools import TokenBucket, WorkerPool
from broadcaster.dispatch.recovery import LeaseLapsed, Recovery, guarded, sms_job
from broadcaster.errors import ChannelError, PermanentError, TransientError
from broadcaster.ledger import DeliveryJob, Ledger, Outcome
from broadcaster.timeutil import Clock

log = logging.getLogger(__name__)

# After a claim came back short, the channel is not asked again for this long (unless woken):
# short enough that a retry or a play coming due waits unnoticeably, long enough that a channel
# with nothing due is not queried at every step of a large fan-out on the other one.
_DRY_S = 0.25
_GATHER_S = 0.01  # the loop's pause between steps while sends are in flight
# With nothing due the loop sleeps until the next due or expiry time, but looks at the ledger at
# least this often: work written by another process (the CLI, a second node) is not woken for.
IDLE_CHECK_S = 2.0


@dataclass(frozen=True)
class _Withdrawal:
    """A cancelled play to take back from the endpoint that holds it (DESIGN A7)."""

    job: DeliveryJob

    @property
    def channel(self) -> str:
        return self.job.channel  # a loudspeaker play or a display's warning


@dataclass(frozen=True)
class Endpoints:
    """What the dispatcher sends through, and how it finds the audio and names villages."""

    sms: SmsProvider
    speakers: dict[str, SpeakerChannel]
    audio_path: Callable[[str, str], Path | None]
    links: AudioLinks
    tz: tzinfo = timezone.utc  # plays are named and announced in local time
    chats: Mapping[str, ChatChannel] = field(default_factory=dict)
    displays: Mapping[str, DisplayChannel] = field(default_factory=dict)
    # The message of a chat or display delivery, made from its alert (level, colour, poster) by
    # the service: the ledger row holds only the text and the target.
    compose: Callable[[DeliveryJob], ChatJob | DisplayJob] | None = None

# Chats and screens are few: a handful of workers each is plenty (and robots are rate-limited).
_SMALL_POOL = 4


class Dispatcher:
    """Claims due deliveries, hands them to channel worker pools and records each outcome as an
    event of the ledger's transition table (see the module docstring)."""

    def __init__(
        self,
        ledger: Ledger,
        endpoints: Endpoints,
        clock: Clock | None = None,
        *,
        rate_per_s: float = 10,
        concurrency: int = 32,
        speaker_concurrency: int = 16,
        batch: int = 200,
        sms_cap: int | None = None,
    ) -> None:
        self.ledger = ledger
        self.ep = endpoints
        self.clock = clock or Clock()
        self.bucket = TokenBucket(rate_per_s)
        self.batch = batch
        self.sms_cap = sms_cap  # SMS per number per rolling 24 h (``sms.caps.per_number_per_day``)
        self._caps = {"sms": concurrency, "speaker": speaker_concurrency, "chat": _SMALL_POOL,
                      "display": _SMALL_POOL}
        self._pools = {ch: WorkerPool(cap, ch, self._work) for ch, cap in self._caps.items()}
        self._inflight = {ch: 0 for ch in self._caps}
        self._results: queue.SimpleQueue[tuple[DeliveryJob, Any]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_expiry_sweep = 0.0
        self._recorded: Counter[tuple[str, str]] = Counter()  # (channel, state) since the last summary
        self._next_summary = 0.0
        # channel -> (monotonic, clock) time until which a claim on it is not worth a query
        self._dry: dict[str, tuple[float, datetime]] = {}
        self._due_cache: tuple[int | None, datetime | None] = (None, None)  # (ledger version, next due)
        # Leases of this node's claims and settling of lapsed ones (A15): dispatch/recovery.py.
        self.recovery = Recovery(ledger, endpoints, self.clock, busy=lambda: any(self._inflight.values()))
        # Numbers per request of a provider that batches (Aliyun 1,000, Tencent 200): claims, the
        # rate and the pool then count requests, not messages.
        self._sms_batch = int(getattr(endpoints.sms, "max_batch", 1)) if hasattr(endpoints.sms, "send_batch") else 1

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self.reconcile()
            self._thread = threading.Thread(target=self._loop, name="dispatcher", daemon=True)
            self._thread.start()
            self.recovery.start()

    def wake(self) -> None:
        """New work may be due (an alert or broadcast was just created): look at once."""
        self._dry.clear()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Let in-flight sends finish (at most ``timeout`` s); unstarted ones go back to pending."""
        self._stop.set()
        self._wake.set()
        self.recovery.stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + timeout
        for pool in self._pools.values():
            pool.shutdown()  # queued jobs still come out, as RELEASE: back to pending
        while any(self._inflight.values()) and time.monotonic() < deadline:
            self._flush(block=0.05)
        self._flush()
        for ch in (*self.ep.speakers.values(), *self.ep.chats.values(), *self.ep.displays.values()):
            ch.close()
        self.ep.sms.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.step()
            except Exception:  # noqa: BLE001 - the loop must survive a ledger hiccup
                log.exception("dispatcher step failed; retrying in 1 s")
                worked = False
                self._stop.wait(1)
            if any(self._inflight.values()):
                # Let results gather for a moment: one ledger transaction for several of them
                # instead of one per finished send (they are still written within ~10 ms).
                self._stop.wait(_GATHER_S)
            if not worked:
                self._idle()

    def _idle(self) -> None:
        """Sleep until something may be due: new work (``wake``), a finished send, or the next
        due or expiry time in the ledger. An idle service asks the ledger one cheap question
        every ``IDLE_CHECK_S`` and writes nothing (DESIGN A8)."""
        while not self._stop.is_set():
            if any(self._inflight.values()):
                delay = 0.05
            else:
                nxt = self._next_due()
                delay = IDLE_CHECK_S if nxt is None else min(IDLE_CHECK_S, (nxt - self.clock.now()).total_seconds())
                if delay <= 0:
                    return
            woken = self._wake.wait(delay)
            self._wake.clear()
            if woken or any(self._inflight.values()):
                return

    def _next_due(self) -> datetime | None:
        """``deliveries.next_due()``, asked again only when the ledger changed since (on SQLite
        that look costs microseconds; a query every few seconds would cost an idle service more)."""
        version = self.ledger.version()
        if version is None or version != self._due_cache[0]:
            self._due_cache = (version, self.ledger.deliveries.next_due())
        return self._due_cache[1]

    # ----------------------------------------------------------------- work

    def step(self) -> bool:
        """Expire, claim what is due and can be started now, and record finished results."""
        self._flush()
        now = self.clock.now()
        if time.monotonic() >= self._next_expiry_sweep:
            n = self.ledger.deliveries.expire_due(now)
            if n:
                log.warning("expired %d deliveries that could not be made in time", n)
            self._next_expiry_sweep = time.monotonic() + 1.0
        claimed = 0
        for channel in self._channels():
            if self._stop.is_set():
                break
            per = self._sms_batch if channel == "sms" else 1
            cap, inflight = self._caps[channel] * per, self._inflight[channel]
            free = cap * 2 - inflight
            if channel == "sms":  # claim no more than the rate lets us send in ~2 s
                free = min(free, max(1, int(self.bucket.rate * 2)) * per)
            # Claim in batches: while more than half a pool's worth waits beyond the running
            # workers there is nothing to gain from a claim of a few rows, only a transaction.
            if free <= 0 or inflight > cap + cap // 2 or self._is_dry(channel, now):
                continue
            want = min(free, self.batch if per == 1 else max(self.batch, 5000))
            jobs = self.ledger.deliveries.claim(now, want, channel)
            if len(jobs) < want:
                # Nothing more is due on this channel: asking again at every step would scan
                # the other channel's pending rows each time (the claim index has no channel).
                self._dry[channel] = (time.monotonic() + _DRY_S, now + timedelta(seconds=_DRY_S))
            else:
                self._dry.pop(channel, None)
            self._inflight[channel] += len(jobs)
            claimed += len(jobs)
            if channel == "sms" and self.sms_cap is not None:
                jobs = self._under_cap(jobs, now)
            for item in (self._batches(jobs) if per > 1 else jobs):
                self._pools[channel].submit(item)  # type: ignore[arg-type]
        if not self._stop.is_set() and not self._is_dry("withdraw", now):
            jobs = self.ledger.deliveries.claim_withdrawals(now, self._caps["speaker"])
            if not jobs:
                self._dry["withdraw"] = (time.monotonic() + _DRY_S, now + timedelta(seconds=_DRY_S))
            for job in jobs:
                w = _Withdrawal(job)
                self._inflight[w.channel] += 1
                self._pools[w.channel].submit(w)  # type: ignore[arg-type]
                claimed += 1
        self._flush()
        return claimed > 0

    def _channels(self) -> tuple[str, ...]:
        """The channels worth a claim: chats and displays only when some are configured (a row
        whose chat was removed from the configuration expires)."""
        return ("sms", "speaker") + tuple(ch for ch, ep in (("chat", self.ep.chats), ("display", self.ep.displays))
                                          if ep)

    def _under_cap(self, jobs: list[DeliveryJob], now: datetime) -> list[DeliveryJob]:
        """The claimed SMS under the daily cap; the others are answered at once (``batches``)."""
        keep, capped = under_cap(self.ledger, jobs, now, self.sms_cap or 0)
        for item in capped:
            self._results.put(item)
        return keep

    def _batches(self, jobs: list[DeliveryJob]) -> list[SmsBatch]:
        return group(self.ep.sms, jobs, self._sms_batch)

    def _is_dry(self, channel: str, now: datetime) -> bool:
        """True while a recent claim found nothing more due on ``channel``: until ``wake``/``drain``,
        or until ``_DRY_S`` has passed on the monotonic clock or the dispatcher's (injected) one."""
        until = self._dry.get(channel)
        return until is not None and time.monotonic() < until[0] and now < until[1]

    def drain(self, alert_ids: Iterable[int], timeout: float = 300.0) -> bool:
        """Work until these alerts have nothing due now (final, or waiting for a retry or a time)."""
        ids = list(alert_ids)
        deadline = time.monotonic() + timeout
        self._dry.clear()  # the caller has usually just created these alerts' deliveries
        while time.monotonic() < deadline:
            self.step()
            if not any(self._inflight.values()) and self.ledger.deliveries.due_now(ids, self.clock.now()) == 0:
                return True
            self._wake.wait(0.02)
            self._wake.clear()
        return False

    def _work(self, job: DeliveryJob | _Withdrawal | SmsBatch) -> None:
        """One job on a worker thread: deliver (or withdraw) it and queue the outcome for the ledger."""
        if isinstance(job, SmsBatch):
            try:
                answers = self._deliver_batch(job.jobs)
            except Exception as exc:  # noqa: BLE001 - a provider bug must not lose deliveries
                log.exception("SMS batch from delivery %d: unexpected error", job.id)
                answers = [TransientError(f"internal error: {type(exc).__name__}")] * len(job.jobs)
            for j, answer in zip(job.jobs, answers, strict=True):
                self._results.put((j, answer))
            self._wake.set()
            return
        try:
            outcome = self._withdraw(job.job) if isinstance(job, _Withdrawal) else self._deliver(job)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not lose the delivery
            log.exception("delivery %d: unexpected error", job.id)
            outcome = TransientError(f"internal error: {type(exc).__name__}")
        self._results.put((job, outcome))
        self._wake.set()

    def _deliver(self, job: DeliveryJob) -> Any:
        if self._stop.is_set():
            return RELEASE
        try:
            if job.channel == "sms":
                if not self.bucket.acquire(self._stop) or not self.recovery.may_send(job):
                    return RELEASE
                with guarded(lambda: self.recovery.may_send(job)):
                    return self.ep.sms.send(sms_job(job))
            if not self.recovery.may_send(job):
                return RELEASE
            with guarded(lambda: self.recovery.may_send(job)):
                if job.channel in ("chat", "display"):
                    return self._post(job)
                return self._play(job)
        except ChannelError as exc:
            return exc
        except LeaseLapsed:  # frozen while preparing the send: nothing went out (recovery.py)
            return RELEASE

    def _deliver_batch(self, jobs: list[DeliveryJob]) -> list[Any]:
        return deliver_batch(self.ep.sms, jobs, self.bucket, self._stop, self.recovery)

    def _withdraw(self, job: DeliveryJob) -> Any:
        if self._stop.is_set():
            return RELEASE
        if job.channel == "display":
            try:
                self._endpoint(job).withdraw(self._composed(job))  # type: ignore[union-attr,arg-type]
            except ChannelError as exc:
                return exc
            return None
        channel = self.ep.speakers.get(job.target)
        if channel is None:
            return PermanentError(f"speaker {job.target!r} is no longer configured")
        try:
            channel.withdraw(self._play_job(job, need_audio=False))
        except ChannelError as exc:
            return exc
        return None

    def _endpoint(self, job: DeliveryJob) -> ChatChannel | DisplayChannel:
        found = (self.ep.chats if job.channel == "chat" else self.ep.displays).get(job.target)
        if found is None:
            raise PermanentError(f"{job.channel} {job.target!r} is no longer configured")
        return found

    def _composed(self, job: DeliveryJob) -> ChatJob | DisplayJob:
        if self.ep.compose is None:
            raise PermanentError(f"no {job.channel} messages in this deployment")
        return self.ep.compose(job)

    def _post(self, job: DeliveryJob) -> SendResult:
        """A chat message or a display's warning: the message is made from the alert now."""
        return self._endpoint(job).send(self._composed(job))  # type: ignore[arg-type]

    def _play(self, job: DeliveryJob) -> SendResult:
        channel = self.ep.speakers.get(job.target)
        if channel is None:
            raise PermanentError(f"speaker {job.target!r} is no longer configured")
        return channel.send(self._play_job(job))

    def _play_job(self, job: DeliveryJob, need_audio: bool = True) -> PlayJob:
        ext = job.audio_ext or "mp3"
        path = self.ep.audio_path(job.audio_sha256 or "", ext)
        if path is None:
            if need_audio:
                raise PermanentError(f"audio {job.audio_sha256}.{ext} is missing from the cache")
            path = Path(f"{job.audio_sha256}.{ext}")  # a withdrawal only needs the name
        return PlayJob(
            delivery_id=job.id,
            speaker_id=job.target,
            village_id=job.village_id or "",
            play_at=(job.play_at or self.clock.now()).astimezone(self.ep.tz),
            expires_at=job.expires_at.astimezone(self.ep.tz),
            repeat=job.repeat or 1,
            sha256=job.audio_sha256 or "",
            audio_path=path,
            audio_url=self.ep.links.url(job.audio_sha256 or "", ext),
        )

    def _flush(self, block: float = 0.0) -> None:
        outcomes: list[Outcome] = []
        done: Counter[tuple[str, str]] = Counter()  # (channel, state) of successful hand-overs
        items: list[tuple[Any, Any]] = []  # what was taken from the queue, to put back on failure
        try:
            item = self._results.get(timeout=block) if block else self._results.get_nowait()
            while True:
                items.append(item)
                job, outcome = item
                if isinstance(job, _Withdrawal):
                    outcomes.append(withdrawal_outcome(job.job, outcome, self.clock.now()))
                else:
                    outcomes.append(self._outcome(job, outcome))
                    if isinstance(outcome, SendResult):
                        done[job.channel, outcome.state] += 1
                self._inflight[job.channel] -= 1
                item = self._results.get_nowait()
        except queue.Empty:
            pass
        try:
            self.ledger.deliveries.finish(outcomes)
        except Exception:
            # Not recorded (the ledger failed, or chose this transaction as a deadlock's victim):
            # keep them for the next flush. Dropped, their deliveries would stay `sending` under a
            # lease this node goes on renewing, and nobody would ever settle them.
            for job, outcome in items:
                self._inflight[job.channel] += 1
                self._results.put((job, outcome))
            raise
        # A summary at most once a second, not a line per message: at 1,000 SMS/s a line each
        # costs more CPU than the ledger does. Each delivery is in the ledger, and at DEBUG here.
        self._recorded.update(done)
        if self._recorded and (time.monotonic() >= self._next_summary or not any(self._inflight.values())):
            log.info("handed over %s", ", ".join(f"{n} {ch} {st}" for (ch, st), n in sorted(self._recorded.items())))
            self._recorded.clear()
            self._next_summary = time.monotonic() + 1.0

    def _outcome(self, job: DeliveryJob, answer: Any) -> Outcome:
        """The channel's answer as an event of the ledger's transition table."""
        withdrawable = False
        if isinstance(answer, SendResult) and job.channel in ("speaker", "display"):
            channel = (self.ep.speakers if job.channel == "speaker" else self.ep.displays).get(job.target)
            withdrawable = channel is not None and channel.withdrawable
        return send_outcome(job, answer, self.clock.now(), withdrawable)

    # ------------------------------------------------------------ recovery

    def reconcile(self) -> int:
        """Settle deliveries a crash left ``sending`` (this node's previous run's, and any whose
        lease lapsed) before anything is re-sent: ``broadcaster.dispatch.recovery``."""
        return self.recovery.reconcile()
