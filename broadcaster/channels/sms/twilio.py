"""``twilio``: Programmable Messaging through the official SDK.

The SDK is pointed at ``base_url`` (a Twilio-compatible API or a test double) with
``client.api.base_url`` and ``edge``/``region`` cleared, as DESIGN B2 says. Each worker thread
has its own client (and so its own pooled HTTP session). Errors are mapped here, once:
429, 5xx, timeouts and connection errors are transient; 21211, 21408, 21610, 21614 and any
other 4xx are permanent.
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

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import SmsJob, SmsProvider
from broadcaster.config.models import TwilioConfig
from broadcaster.errors import PermanentError, TransientError
from broadcaster.channels.retry import retry_after_seconds

# The SDK logs request parameters (numbers, bodies) at INFO: keep them out of our logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

# Codes that mean "this number will never work"; the receipts path marks them unreachable.
PERMANENT_CODES = {21211: "invalid number", 21408: "region not enabled", 21610: "unsubscribed (STOP)",
                   21614: "not a mobile number"}


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

    def __init__(self, cfg: TwilioConfig) -> None:
        self.cfg = cfg
        self._local = threading.local()

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
        if job.status_callback:
            kwargs["status_callback"] = job.status_callback
        try:
            msg = client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise self._map(exc, client) from None
        except requests.Timeout:
            raise TransientError(f"timeout after {self.cfg.timeout_s:g} s") from None
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None
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
        reason = PERMANENT_CODES.get(code) if isinstance(code, int) else None
        return PermanentError(f"{code} {reason or exc.msg}", code=code)

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """Ask Twilio for messages to this number since the attempt began and adopt a match."""
        client = self._client()
        try:
            found = client.messages.list(to=job.to, date_sent_after=since - timedelta(days=1), limit=50)
        except TwilioRestException as exc:
            raise self._map(exc, client) from None
        except (requests.RequestException, TwilioException) as exc:
            raise TransientError(f"connection failed: {type(exc).__name__}") from None
        slack = since - timedelta(minutes=5)
        for m in found:
            created = m.date_created
            if m.body == job.body and (created is None or created >= slack):
                return m.sid
        return None
