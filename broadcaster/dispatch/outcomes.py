"""What became of a send or a withdrawal, decided by the dispatcher and told to the ledger as an event.

The dispatcher owns the decisions (backoff, whether a retry still fits before the expiry or the
play time, what to log); the ledger's transition table owns what each event does to the row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from broadcaster.channels import SendResult
from broadcaster.net import backoff_seconds
from broadcaster.errors import PermanentError, TransientError
from broadcaster.ledger import DeliveryJob, Outcome
from broadcaster.logutil import mask_phone

log = logging.getLogger("broadcaster.dispatch")

RELEASE = object()  # the job was not attempted (shutting down): back to pending, the attempt uncounted
_CONFIRMED = {"played": "confirmed_played", "delivered": "confirmed_delivered"}


def who(job: DeliveryJob) -> str:
    """The recipient as logs may show it (phone numbers masked)."""
    return mask_phone(job.target) if job.channel == "sms" else job.target


def send_outcome(job: DeliveryJob, answer: Any, now: datetime, withdrawable: bool = False) -> Outcome:
    """A channel's answer to a send (a :class:`SendResult`, a channel error or :data:`RELEASE`) as
    an event; ``withdrawable``: the endpoint could still give a handed-over play back. The event
    names the job's claim, so that it changes nothing if that claim lapsed meanwhile (A15)."""
    if answer is RELEASE:
        return Outcome(job.id, "release", now, attempts=max(0, job.attempts - 1), claimed_at=job.claimed_at)
    if isinstance(answer, SendResult):
        if log.isEnabledFor(logging.DEBUG):
            log.debug("delivery %d %s %s: %s", job.id, job.channel, who(job), answer.state)
        return Outcome(job.id, _CONFIRMED.get(answer.state, "handed"), now, provider_id=answer.provider_id,
                       segments=answer.segments, withdrawable=withdrawable, claimed_at=job.claimed_at)
    if isinstance(answer, PermanentError):
        log.warning("delivery %d %s %s failed permanently: %s", job.id, job.channel, who(job), answer)
        return Outcome(job.id, "fail", now, error=str(answer), claimed_at=job.claimed_at)
    assert isinstance(answer, TransientError)
    delay = backoff_seconds(job.attempts, answer.retry_after)
    retry_at = now + timedelta(seconds=delay)
    if retry_at >= job.expires_at:
        log.warning("delivery %d %s %s expired after %d attempts: %s", job.id, job.channel, who(job),
                    job.attempts, answer)
        return Outcome(job.id, "expire", now, error=str(answer), claimed_at=job.claimed_at)
    log.info("delivery %d %s %s: %s; retry in %.1f s", job.id, job.channel, who(job), answer, delay)
    return Outcome(job.id, "retry", now, error=str(answer), due_at=retry_at, claimed_at=job.claimed_at)


def withdrawal_outcome(job: DeliveryJob, answer: Any, now: datetime) -> Outcome:
    """An endpoint's answer to a withdrawal (None: withdrawn) as an event of the withdrawal
    sub-states: retried with backoff while that is before the play time, else failed."""
    if answer is None:
        log.info("delivery %d: play on %s withdrawn", job.id, job.target)
        return Outcome(job.id, "withdrawn", now)
    if answer is RELEASE:
        return Outcome(job.id, "withdraw_retry", now)
    if isinstance(answer, TransientError):
        retry_at = now + timedelta(seconds=backoff_seconds(job.attempts, answer.retry_after))
        # A play must be withdrawn before its time; a display's warning (play_at is its ``until``)
        # while it is still on screen: both are ``play_at``.
        if retry_at < (job.play_at or now):
            log.info("delivery %d: withdrawing from %s: %s; retry in %.0f s", job.id, job.target, answer,
                     (retry_at - now).total_seconds())
            return Outcome(job.id, "withdraw_retry", now, due_at=retry_at)
    log.warning("delivery %d: could not withdraw the play from %s: %s", job.id, job.target, answer)
    return Outcome(job.id, "withdraw_failed", now, error=f"withdrawal failed: {answer}")
