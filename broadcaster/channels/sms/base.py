"""The SMS provider interface (a plugin of the ``broadcaster.sms`` group, DESIGN A9).

A provider hands one message over (:meth:`SmsProvider.send`) or raises Transient/PermanentError;
the dispatcher owns rate limits, retries, expiry and the ledger. A provider that pushes delivery
receipts names the path it listens on (``receipt_path``) and turns one pushed request into
:class:`Receipt` objects (:meth:`SmsProvider.receipts`); the web layer mounts the route, applies
the receipts to the ledger and audits refused requests, so a provider never touches either.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, ClassVar, Literal

from broadcaster.channels import SendResult
from broadcaster.errors import Forbidden
from broadcaster.plugins import PluginConfig


@dataclass(frozen=True)
class SmsJob:
    """One message to one number.

    ``body`` is the text as the recipient reads it (what free-text providers send and the
    console shows). ``template`` names the rules template it was made from and ``values`` its
    placeholders' values, for providers that send only registered templates (DESIGN A10).
    """

    delivery_id: int
    alert_id: int
    to: str  # E.164
    body: str
    template: str | None = None
    values: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmsContext:
    """What a provider may know of the deployment."""

    public_url: str  # where receipts reach us (``http.public_url``)
    base_dir: Path  # directory of broadcaster.yaml, for relative paths
    tz: tzinfo
    templates: Mapping[str, Any] = field(default_factory=dict)  # rules templates, by name


@dataclass(frozen=True)
class ReceiptRequest:
    """A receipt push as it arrived; ``url`` is the public URL it was sent to (for signatures)."""

    url: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    form: Mapping[str, str] | None  # the body parsed, when it is form-encoded
    path_params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """What the provider reports of one message.

    ``unreachable`` is set (a reason shown to staff) when the number will never receive SMS
    (unsubscribed, unknown, a landline): the next alerts skip it until it is corrected.
    """

    provider_id: str
    status: Literal["sent", "delivered", "failed"]
    provider_status: str
    phone: str | None = None  # E.164, when the push names it (needed where one id covers a batch)
    code: str | None = None
    unreachable: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class ReceiptAnswer:
    """The receipts found in one push, and the answer the provider expects back."""

    receipts: list[Receipt]
    status_code: int = 200
    body: bytes = b""
    media_type: str = "text/plain"


class SmsProvider(ABC):
    """One SMS provider. Subclasses set ``type`` and ``Config`` and implement :meth:`send`."""

    type: ClassVar[str]
    Config: ClassVar[type[PluginConfig]] = PluginConfig
    #: The path its receipt pushes arrive at (``{token}`` and the like are path parameters).
    receipt_path: ClassVar[str | None] = None
    #: Sends only templates registered with the provider (DESIGN A10), never free text.
    template_only: ClassVar[bool] = False

    def __init__(self, config: PluginConfig, ctx: SmsContext) -> None:
        self.config = config
        self.ctx = ctx

    @abstractmethod
    def send(self, job: SmsJob) -> SendResult:
        """Hand one message to the provider."""

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """After a crash: the provider id of this message if the provider already has it.

        Return None when the provider has no record; raise NotImplementedError when the
        provider cannot be asked (then the delivery is re-sent and flagged a possible duplicate).
        """
        raise NotImplementedError

    def poll_receipts(self, waiting: list[tuple[str, str, datetime]]) -> list[Receipt]:
        """Where no receipt was pushed: ask the provider's query API about these messages
        ((provider id, E.164 number, sent at) each). Raise NotImplementedError when it has none."""
        raise NotImplementedError

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        """Authenticate one receipt push and read it; raise Forbidden when it is not genuine."""
        raise Forbidden(f"{self.type} does not take receipts")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
