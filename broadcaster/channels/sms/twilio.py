"""``twilio``: Programmable Messaging through the official SDK, and its delivery receipts.

The SDK is pointed at ``base_url`` (a Twilio-compatible API or a test double) with
``client.api.base_url`` and ``edge``/``region`` cleared, as DESIGN B2 says. Each worker thread
has its own client (and so its own pooled HTTP session). Errors are mapped here, once:
429, 5xx, timeouts and connection errors are transient; 21211, 21408, 21610, 21614 and any
other 4xx are permanent.

Receipts (``POST /api/v1/twilio/status``, sms-providers.md §1.5-1.6): the ``X-Twilio-Signature``
is checked against ``http.public_url`` (the URL Twilio called, not the one this process sees
behind a proxy); the codes that mean "this number will never work" mark it unreachable.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta
from typing import Any

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from pydantic import Field, model_validator
from twilio.request_validator import RequestValidator

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import Receipt, ReceiptAnswer, ReceiptRequest, SmsContext, SmsJob, SmsProvider
from broadcaster.errors import Forbidden, PermanentError, TransientError
from broadcaster.net import failure_reason, retry_after_seconds
from broadcaster.plugins import PluginConfig

# The SDK logs request parameters (numbers, bodies) at INFO: keep them out of our logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

# Twilio error codes we name, one table for sends and receipts: (meaning, unreachable?). An
# unreachable number is skipped by later alerts, with this reason, until corrected.
CODES: dict[int, tuple[str, bool]] = {
    21211: ("号码无效 / invalid number", False),
    21408: ("未开通该地区 / region not enabled", False),
    21610: ("已退订短信（STOP）/ unsubscribed (21610)", True),
    21614: ("不是手机号 / not a mobile number", False),
    30005: ("号码不存在或已停机 / unknown or inactive number (30005)", True),
    30006: ("固定电话或运营商不可达 / landline or unreachable carrier (30006)", True),
}
# Twilio message status -> the receipt's status.
STATUS = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
          "delivered": "delivered", "undelivered": "failed", "failed": "failed"}


class TwilioConfig(PluginConfig):
    """``sms.twilio``."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=1)
    api_key: str | None = None  # SK..., then auth_token is the key's secret
    from_: str | None = Field(default=None, alias="from")
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")
    base_url: str = Field(default="https://api.twilio.com", pattern=r"^https?://")
    status_callback: bool = False  # ask Twilio to push receipts to {http.public_url}/api/v1/twilio/status
    timeout_s: float = Field(default=10, gt=0, le=120)

    @model_validator(mode="after")
    def _sender(self) -> "TwilioConfig":
        if not self.from_ and not self.messaging_service_sid:
            raise ValueError("give `from` or `messaging_service_sid`")
        return self


class _RecordingHttpClient(TwilioHttpClient):
    """Keeps the last response so a 429's ``Retry-After`` header can be honoured."""

    def request(self, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        self.last = None
        resp = super().request(*args, **kwargs)
        self.last = resp
        return resp


def _settle_environment(session: requests.Session, base_url: str) -> None:
    """Read the proxy and CA-bundle environment once for ``base_url`` instead of per request.

    With ``trust_env`` requests scans the whole environment (proxies, no_proxy, CA bundle) on every
    request: about a tenth of the CPU of a send. Every request of this client goes to the same
    host, so the answer is the same each time; resolving it here keeps the behaviour (proxies,
    ``no_proxy``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) for the environment at start-up.
    Auth is always explicit, so ``.netrc``, the other thing ``trust_env`` reads, never applied.
    """
    proxies = requests.utils.get_environ_proxies(base_url)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.trust_env = False
    session.proxies.update(proxies)
    if bundle and session.verify is True:
        session.verify = bundle


class TwilioProvider(SmsProvider):
    type = "twilio"
    Config = TwilioConfig
    receipt_path = "/api/v1/twilio/status"

    def __init__(self, config: TwilioConfig, ctx: SmsContext) -> None:  # type: ignore[override]
        super().__init__(config, ctx)
        self.cfg = config
        self._local = threading.local()
        self.callback_url = ctx.public_url.rstrip("/") + self.receipt_path
        self._validator = RequestValidator(config.auth_token)

    def _client(self) -> Client:
        c = getattr(self._local, "client", None)
        if c is None:
            http = _RecordingHttpClient(timeout=self.cfg.timeout_s, pool_connections=True)
            _settle_environment(http.session, self.cfg.base_url)
            if self.cfg.api_key:
                c = Client(self.cfg.api_key, self.cfg.auth_token, account_sid=self.cfg.account_sid, http_client=http)
            else:
                c = Client(self.cfg.account_sid, self.cfg.auth_token, http_client=http)
            c.edge = None  # edge/region rewrite the host, which would bypass base_url
            c.region = None
            c.api.base_url = self.cfg.base_url.rstrip("/")
            self._local.client = c
        return c

    def send(self, job: SmsJob) -> SendResult:
        client = self._client()
        kwargs: dict[str, Any] = {"to": job.to, "body": job.body}
        if self.cfg.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.cfg.messaging_service_sid
        else:
            kwargs["from_"] = self.cfg.from_
        if self.cfg.status_callback:
            kwargs["status_callback"] = self.callback_url
        try:
            msg = client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise self._map(exc, client) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(failure_reason(exc, self.cfg.timeout_s)) from exc
        segments = int(msg.num_segments) if msg.num_segments not in (None, "", "0") else None
        return SendResult(state="sent", provider_id=msg.sid, segments=segments)

    def _map(self, exc: TwilioRestException, client: Client) -> Exception:
        status, code = exc.status, exc.code
        if status == 429 or code == 20429:
            last = getattr(client.http_client, "last", None)
            retry_after = retry_after_seconds(last.headers) if last is not None and last.headers else None
            return TransientError("rate limited (429)", code=code, retry_after=retry_after)
        if status >= 500:
            return TransientError(f"HTTP {status}", code=code)
        reason = CODES[code][0] if isinstance(code, int) and code in CODES else exc.msg
        return PermanentError(f"{code} {reason}", code=code)

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """Ask Twilio for messages to this number since the attempt began and adopt a match."""
        client = self._client()
        try:
            found = client.messages.list(to=job.to, date_sent_after=since - timedelta(days=1), limit=50)
        except TwilioRestException as exc:
            raise self._map(exc, client) from exc
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(failure_reason(exc, self.cfg.timeout_s)) from exc
        slack = since - timedelta(minutes=5)
        for m in found:
            created = m.date_created
            if m.body == job.body and (created is None or created >= slack):
                return m.sid
        return None

    def receipts(self, req: ReceiptRequest) -> ReceiptAnswer:
        """A StatusCallback (form-encoded), signed with the auth token over ``http.public_url``."""
        params = dict(req.form or {})
        signature = req.headers.get("x-twilio-signature", "")
        if not signature or not self._validator.validate(self.callback_url, params, signature):
            raise Forbidden("invalid X-Twilio-Signature")
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
        if status not in STATUS or not sid:
            return ReceiptAnswer([])  # a status we do not track (e.g. "read"): acknowledged, ignored
        code = _int(params.get("ErrorCode"))
        meaning, unreachable = CODES.get(code, ("", False)) if code is not None else ("", False)
        return ReceiptAnswer([Receipt(
            provider_id=sid, status=STATUS[status], provider_status=status,  # type: ignore[arg-type]
            phone=params.get("To") or None, code=str(code) if code is not None else None,
            unreachable=meaning if unreachable else None)])


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
