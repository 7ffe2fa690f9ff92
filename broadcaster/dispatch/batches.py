"""SMS in batches and under the daily cap (DESIGN A10), for the dispatcher.

- :func:`under_cap`: of the claimed SMS, those whose number has had fewer than the cap accepted in
  the last 24 h (one ledger query per claim); the others are answered ``cap`` without a send.
- :func:`group`: claimed SMS that read the same text (the provider's ``batch_key``), in requests of
  at most the provider's ``max_batch`` numbers.
- :func:`deliver_batch`: one request of a batching provider on a worker thread: one rate token,
  each number's own answer, guarded against a lapsing lease like a single send.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broadcaster.channels.sms import SmsProvider
from broadcaster.dispatch.outcomes import RELEASE
from broadcaster.dispatch.pools import TokenBucket
from broadcaster.dispatch.recovery import LeaseLapsed, Recovery, guarded, sms_job
from broadcaster.errors import PermanentError
from broadcaster.ledger import DeliveryJob, Ledger


@dataclass(frozen=True)
class SmsBatch:
    """Claimed SMS that read the same text, for one request of a batching provider."""

    jobs: list[DeliveryJob]

    @property
    def channel(self) -> str:
        return "sms"

    @property
    def id(self) -> int:
        return self.jobs[0].id


def under_cap(ledger: Ledger, jobs: list[DeliveryJob], now: datetime,
              cap: int) -> tuple[list[DeliveryJob], list[tuple[DeliveryJob, PermanentError]]]:
    """(jobs to send, (job, ``cap`` error) for the others); older deliveries count first."""
    used = ledger.reads.sms_accepted_since((j.target for j in jobs), now - timedelta(hours=24))
    keep: list[DeliveryJob] = []
    capped: list[tuple[DeliveryJob, PermanentError]] = []
    for job in sorted(jobs, key=lambda j: j.id):
        if used.get(job.target, 0) >= cap:
            capped.append((job, PermanentError(
                f"cap: 该号码 24 小时内已收到 {cap} 条短信，本条不再发送 / over the cap of "
                f"{cap} SMS per number per 24 h", code="cap")))
            continue
        used[job.target] = used.get(job.target, 0) + 1
        keep.append(job)
    return keep, capped


def group(provider: SmsProvider, jobs: list[DeliveryJob], per: int) -> list[SmsBatch]:
    """Jobs grouped by the provider's ``batch_key``, in requests of at most ``per`` numbers."""
    groups: dict[Any, list[DeliveryJob]] = {}
    key = provider.batch_key  # type: ignore[attr-defined]
    for job in jobs:
        groups.setdefault(key(sms_job(job)), []).append(job)
    return [SmsBatch(g[i:i + per]) for g in groups.values() for i in range(0, len(g), per)]


def deliver_batch(provider: SmsProvider, jobs: list[DeliveryJob], bucket: TokenBucket,
                  stop: threading.Event, recovery: Recovery) -> list[Any]:
    """Each job's answer (a SendResult, a ChannelError or RELEASE). A job whose lease is lapsing
    goes back unsent; a request stopped before its first byte sends nothing, so all go back."""
    if stop.is_set() or not bucket.acquire(stop):
        return [RELEASE] * len(jobs)
    ok = [j for j in jobs if recovery.may_send(j)]
    answers: dict[int, Any] = {j.id: RELEASE for j in jobs}
    if ok:
        try:
            with guarded(lambda: all(recovery.may_send(j) for j in ok)):
                sent = provider.send_batch([sms_job(j) for j in ok])  # type: ignore[attr-defined]
            answers.update({j.id: a for j, a in zip(ok, sent, strict=True)})
        except LeaseLapsed:
            pass
    return [answers[j.id] for j in jobs]
