"""``sms.providers: [a, b]``: failover between SMS providers (DESIGN A10).

A message moves to the next provider only when the current one is known not to have it: its
error says so (``not_sent``: connection refused, a 5xx or account-wide answer, throttling), or
its query API says so after an unknown outcome (``unknown``: a timeout after the request was
written). A per-number answer (an invalid number, a frequency limit) is final and never moves.
When the query API cannot answer either, the message is counted as sent by the provider that
was asked, and never re-sent: no number receives the same alert from two providers.

Receipts of every member arrive at ``/api/v1/sms/{provider}/receipts/{token}`` and are read by
the member named in the path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import Receipt, ReceiptAnswer, ReceiptRequest, SmsContext, SmsJob, SmsProvider
from broadcaster.channels.sms.registered import BatchingProvider
from broadcaster.errors import ChannelError, Forbidden, TransientError
from broadcaster.logutil import mask_phone
from broadcaster.plugins import PluginConfig

log = logging.getLogger(__name__)


def not_sent(exc: ChannelError) -> bool:
    """The provider certainly does not have this message (safe to give it to another one)."""
    return bool(getattr(exc, "not_sent", False))


def unknown(exc: ChannelError) -> bool:
    """The request was written but its answer never came: the provider may have it."""
    return bool(getattr(exc, "unknown", False))


class FailoverProvider(BatchingProvider):
    """Members in failover order; each batch tries them in turn for the numbers still unsent."""

    type = "failover"
    receipt_path = "/api/v1/sms/{provider}/receipts/{token}"

    def __init__(self, members: Sequence[SmsProvider], ctx: SmsContext) -> None:
        super().__init__(PluginConfig(), ctx)
        self.members = list(members)
        self.template_only = any(m.template_only for m in self.members)  # type: ignore[misc]
        self.max_batch = min(int(getattr(m, "max_batch", 1)) for m in self.members)  # type: ignore[misc]

    def send_batch(self, jobs: Sequence[SmsJob]) -> list[SendResult | ChannelError]:
        results: dict[int, SendResult | ChannelError] = {}
        todo = list(jobs)
        started = datetime.now(timezone.utc)
        for i, member in enumerate(self.members):
            if not todo:
                break
            answers = _send(member, todo)
            last = i == len(self.members) - 1
            moving: list[SmsJob] = []
            for job, answer in zip(todo, answers, strict=True):
                if isinstance(answer, ChannelError) and unknown(answer):
                    answer = self._settle(member, job, started, answer)
                if isinstance(answer, ChannelError) and not_sent(answer) and not last:
                    log.warning("SMS to %s: %s does not have it (%s): trying %s", mask_phone(job.to),
                                member.type, answer, self.members[i + 1].type)
                    moving.append(job)
                else:
                    results[job.delivery_id] = answer
            todo = moving
        for job in todo:  # all members said "not sent": retry later, from the first one again
            results.setdefault(job.delivery_id, TransientError("no SMS provider could take it"))
        return [results[j.delivery_id] for j in jobs]

    @staticmethod
    def _settle(member: SmsProvider, job: SmsJob, since: datetime, answer: ChannelError) -> SendResult | ChannelError:
        """An unknown outcome: ask the member's query API; without an answer, count it as sent."""
        try:
            found = member.find_sent(job, since - timedelta(minutes=1))
        except (ChannelError, NotImplementedError) as exc:
            log.warning("SMS to %s: outcome at %s unknown (%s) and the query failed (%s): counted as sent",
                        mask_phone(job.to), member.type, answer, exc)
            return SendResult(state="sent", provider_id=None)
        if found:
            return SendResult(state="sent", provider_id=found)
        err = TransientError(f"{answer} (query: {member.type} does not have it)", code=answer.code)
        err.not_sent = True  # type: ignore[attr-defined]
        return err

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """After a crash: any member that has the message (the ledger does not say which one)."""
        for member in self.members:
            try:
                found = member.find_sent(job, since)
            except NotImplementedError:
                continue
            if found:
                return found
        return None

    def poll_receipts(self, waiting: list[tuple[str, str, datetime]]) -> list[Receipt]:
        """Every member is asked (the ledger does not say which one sent what)."""
        out: list[Receipt] = []
        for m in self.members:
            try:
                out.extend(m.poll_receipts(waiting))
            except NotImplementedError:
                continue
        return out

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        name = req.path_params.get("provider", "")
        member = next((m for m in self.members if m.type == name), None)
        if member is None:
            raise Forbidden(f"no SMS provider {name!r} configured")
        return member.receipts(req)

    def close(self) -> None:
        for m in self.members:
            m.close()


def _send(member: SmsProvider, jobs: list[SmsJob]) -> list[SendResult | ChannelError]:
    """Each job's answer from one member (batched where it can)."""
    if isinstance(member, BatchingProvider):
        return member.send_batch(jobs)
    out: list[SendResult | ChannelError] = []
    for job in jobs:
        try:
            out.append(member.send(job))
        except ChannelError as exc:
            out.append(exc)
    return out
