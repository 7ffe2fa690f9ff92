"""The SMS provider interface. The dispatcher owns rate limits, retries and the ledger."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from broadcaster.channels import SendResult


@dataclass(frozen=True)
class SmsJob:
    delivery_id: int
    alert_id: int
    to: str  # E.164
    body: str
    status_callback: str | None = None


class SmsProvider(ABC):
    """One SMS provider. ``send`` hands one message over or raises Transient/PermanentError."""

    type: ClassVar[str]

    @abstractmethod
    def send(self, job: SmsJob) -> SendResult:
        """Hand one message to the provider."""

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """After a crash: the provider id of this message if the provider already has it.

        Return None when the provider has no record; raise NotImplementedError when the
        provider cannot be asked (then the delivery is re-sent and flagged a possible duplicate).
        """
        raise NotImplementedError

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
