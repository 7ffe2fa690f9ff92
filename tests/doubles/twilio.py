"""Loopback double of Twilio Programmable Messaging (REST API 2010-04-01).

Speaks the wire format of shared/reference/sms-providers.md §1 closely enough for the real
``twilio`` SDK (9.x) pointed at it with ``client.api.base_url = double.url`` and
``client.edge = client.region = None``: create (201), list with ``To``/``DateSent>``/
``DateSent<`` filters and paging, fetch, legacy error JSON, HTTP Basic auth, and signed
status callbacks. Faults (latency, 429 + Retry-After, 500, resets, slow answers) come from a
``FaultPlan`` and, by default, hit only message creation.

Run standalone for benchmarks::

    python -m tests.doubles.twilio --port 8099 --latency-ms 50 [--p429 .3 --p500 .1]
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timezone
from email.utils import format_datetime
from typing import Any, Callable
from urllib.parse import urlencode

import requests
from twilio.request_validator import RequestValidator

from .faults import Fault, FaultPlan, retry_after_header
from .server import LoopbackDouble, Request, Response

API = "/2010-04-01"
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_ACCOUNT_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<sid>[^/]+)/Messages(?:/(?P<msg>[^/]+))?\.json$")
_INFO = "https://www.twilio.com/docs/errors/{}"

# Texts of the permanent errors a per-number ``errors`` entry produces (all HTTP 400).
ERROR_TEXTS: dict[int, str] = {
    21211: "The 'To' number {to} is not a valid phone number.",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
           "'To' number: {to}.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21608: "The number {to} is unverified. Trial accounts cannot send messages to unverified "
           "numbers.",
}

# GSM 03.38 basic set (1 septet) and extension set (ESC + char = 2 septets).
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = set("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """Segments Twilio bills for ``body``: GSM-7 160/153 septets, else UCS-2 70/67 units.

    Escape pairs and UTF-16 surrogate pairs are never split across segments.
    """
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in body):
        units = [2 if c in _GSM_EXT else 1 for c in body]
        single, multi = 160, 153
    else:
        units = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if sum(units) <= single:
        return 1
    segments, used = 1, 0
    for u in units:
        if used + u > multi:
            segments, used = segments + 1, 0
        used += u
    return segments


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """Twilio's legacy error body (what ``TwilioRestException`` is built from)."""
    payload = {"code": code, "message": message, "more_info": _INFO.format(code), "status": status}
    return Response.json(status, payload, headers)


def _date_ok(sent: datetime, op: str, value: str) -> bool:
    """One ``DateSent`` filter: ``>`` on/after, ``<`` on/before, ``=`` that UTC day.

    ``YYYY-MM-DD`` compares by UTC day; ``YYYY-MM-DDTHH:MM:SSZ`` (what the SDK sends for a
    datetime) by instant. Raises ValueError for anything else.
    """
    value = value.strip().lstrip("<>=")
    if len(value) == 10:
        a, b = sent.date(), date.fromisoformat(value)
    else:
        a, b = sent, datetime.fromisoformat(value.replace("Z", "+00:00"))
        b = b if b.tzinfo else b.replace(tzinfo=timezone.utc)
    if op == "=":
        return sent.date() == (b.date() if isinstance(b, datetime) else b)
    return a >= b if op == ">" else a <= b  # type: ignore[operator]


@dataclass
class TwilioRequest:
    """One request as the double saw and answered it.

    ``arrived``/``answered`` are ``time.monotonic()``; ``status`` is ``None`` when the socket
    was reset; ``sid`` is set whenever a message was created (even if the answer was lost).
    """

    arrived: float
    method: str
    path: str
    to: str | None
    body: str | None
    from_: str | None
    auth_user: str | None
    query: dict[str, list[str]]
    status: int | None = None
    fault: str | None = None
    error_code: int | None = None
    retry_after: float | None = None
    sid: str | None = None
    answered: float | None = None

    @property
    def is_create(self) -> bool:
        """True for ``POST .../Messages.json``."""
        return self.method == "POST" and self.path.endswith("/Messages.json")


class TwilioDouble(LoopbackDouble):
    """Twilio Messaging on 127.0.0.1. See the module doc; use as a context manager.

    ``errors`` maps an E.164 ``To`` to a permanent Twilio error code (HTTP 400).
    ``api_keys`` maps ``SK...`` key SIDs to secrets accepted as Basic auth users.
    ``clock`` returns the aware "now" used for ``date_created`` (default: real UTC time).
    ``fault_methods`` selects the methods the fault plan hits (default: only POST = create).
    """

    def __init__(
        self,
        account_sid: str = "AC" + "0" * 32,
        auth_token: str = "test_auth_token",
        faults: FaultPlan | None = None,
        errors: dict[str, int] | None = None,
        *,
        api_keys: dict[str, str] | None = None,
        clock: Callable[[], datetime] | None = None,
        fault_methods: tuple[str, ...] = ("POST",),
        port: int = 0,
    ) -> None:
        super().__init__(faults, port=port)
        self.account_sid, self.auth_token = account_sid, auth_token
        self.errors: dict[str, int] = dict(errors or {})
        self.api_keys: dict[str, str] = dict(api_keys or {})
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.fault_methods = fault_methods
        self._requests: list[TwilioRequest] = []
        # sid -> (JSON resource, UTC creation time, StatusCallback URL), oldest first
        self._messages: dict[str, tuple[dict[str, Any], datetime, str | None]] = {}

    # -- records ---------------------------------------------------------------------
    @property
    def requests(self) -> list[TwilioRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return sorted(self._requests, key=lambda r: r.arrived)

    def accepted(self) -> list[TwilioRequest]:
        """Create requests answered 201."""
        return [r for r in self.requests if r.is_create and r.status == 201]

    def accepted_by_to(self) -> Counter[str]:
        """Number of 201-answered creates per ``To``."""
        return Counter(r.to for r in self.accepted() if r.to)

    def messages(self) -> list[dict[str, Any]]:
        """All created messages (JSON resources), oldest first, including those whose answer
        was lost to a ``reset_after``/``timeout`` fault: what Twilio would actually send."""
        with self._lock:
            return [dict(m) for m, _, _ in self._messages.values()]

    def messages_by_to(self) -> Counter[str]:
        """Number of created messages per ``To`` (the strict "sent twice?" check)."""
        return Counter(m["to"] for m in self.messages())

    def retry_after_violations(self) -> list[tuple[TwilioRequest, TwilioRequest]]:
        """Pairs (429 answer, next create for the same ``To``) that came before Retry-After
        elapsed, measured from when the 429 was answered."""
        bad, last_429 = [], {}
        for r in self.requests:
            if not r.is_create or r.to is None:
                continue
            prev = last_429.pop(r.to, None)
            if prev is not None and r.arrived < (prev.answered or 0) + (prev.retry_after or 0):
                bad.append((prev, r))
            if r.status == 429:
                last_429[r.to] = r
        return bad

    def clear(self) -> None:
        """Forget requests and messages (faults and errors stay)."""
        with self._lock:
            self._requests.clear()
            self._messages.clear()

    # -- fault hooks -----------------------------------------------------------------
    def fault_applies(self, req: Request) -> bool:
        return req.method in self.fault_methods

    def fault_key(self, req: Request) -> str | None:
        return _first(req.form, "To") if req.method == "POST" else None

    def fault_response(self, fault: Fault) -> Response:
        if fault.status == 429:
            headers = {"Retry-After": retry_after_header(fault.retry_after_s or 1)}
            return _error(429, 20429, "Too Many Requests", headers)
        return _error(fault.status or 500, 20500, "Internal Server Error")

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        form = req.form if req.method == "POST" else {}
        rec = TwilioRequest(
            arrived=req.arrived, method=req.method, path=req.path,
            to=_first(form, "To"), body=_first(form, "Body"), from_=_first(form, "From"),
            auth_user=_basic(req)[0] or None, query=req.query, fault=fault,
            answered=time.monotonic(), sid=getattr(req, "created_sid", None),
        )
        if resp is not None:
            rec.status = resp.status
            ra = resp.headers.get("Retry-After")
            rec.retry_after = float(ra) if ra else None
            if resp.status >= 400 and resp.body.startswith(b"{"):
                rec.error_code = json.loads(resp.body).get("code")
        with self._lock:
            self._requests.append(rec)

    # -- the API ---------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        m = _ACCOUNT_PATH.match(req.path)
        if not self._authorized(req):
            return _error(401, 20003, "Authenticate")
        if m is None or m.group("sid") != self.account_sid:
            return _error(404, 20404, f"The requested resource {req.path} was not found")
        msg_sid = m.group("msg")
        if req.method == "POST" and msg_sid is None:
            return self._create(req)
        if req.method == "GET" and msg_sid is None:
            return self._list(req)
        if req.method == "GET":
            with self._lock:
                found = self._messages.get(msg_sid)
            if found is None:
                return _error(404, 20404, f"The requested resource {req.path} was not found")
            return Response.json(200, found[0])
        return _error(405, 20004, "Method not allowed")

    def _authorized(self, req: Request) -> bool:
        # An API key (SK...) authenticates for the account whose SID is in the path.
        expected = {self.account_sid: self.auth_token, **self.api_keys}
        user, password = _basic(req)
        return user in expected and secrets.compare_digest(password, expected[user])

    def _create(self, req: Request) -> Response:
        form = req.form
        to, from_, body = _first(form, "To"), _first(form, "From"), _first(form, "Body")
        mg = _first(form, "MessagingServiceSid")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            return _error(400, 21211, ERROR_TEXTS[21211].format(to=to))
        if not from_ and not mg:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body and not form.get("MediaUrl") and not _first(form, "ContentSid"):
            return _error(400, 21602, "Message body is required.")
        if body and len(body) > 1600:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 character "
                                      "limit.")
        code = self.errors.get(to)
        if code is not None:
            text = ERROR_TEXTS.get(code, "Error {code} for {to}")
            return _error(400, code, text.format(to=to, code=code))
        sid = "SM" + secrets.token_hex(16)
        now = self.clock().astimezone(timezone.utc)
        stamp = format_datetime(now)
        uri = f"{API}/Accounts/{self.account_sid}/Messages/{sid}.json"
        resource = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": body or "",
            "date_created": stamp, "date_sent": stamp, "date_updated": stamp,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": from_ or None, "messaging_service_sid": mg or None,
            "num_media": str(len(form.get("MediaUrl", []))),
            # With a Messaging Service no sender is chosen yet, so Twilio reports "0".
            "num_segments": "0" if mg else str(num_segments(body or "")),
            "price": None, "price_unit": "USD", "sid": sid,
            "status": "accepted" if mg else "queued",
            "subresource_uris": {"media": uri.replace(".json", "/Media.json")},
            "to": to, "uri": uri,
        }
        with self._lock:
            self._messages[sid] = (resource, now, _first(form, "StatusCallback"))
        req.created_sid = sid  # type: ignore[attr-defined]  # read by on_answer
        return Response.json(201, resource)

    def _list(self, req: Request) -> Response:
        q = req.query
        filters = [(k, _first(q, k)) for k in ("To", "From", "DateSent>", "DateSent<", "DateSent")]
        filters = [(k, v) for k, v in filters if v]
        page = int(_first(q, "Page") or 0)
        size = max(1, min(1000, int(_first(q, "PageSize") or 50)))
        with self._lock:
            rows = [(sent, dict(m)) for m, sent, _ in self._messages.values()]
        picked = []
        try:
            for sent, msg in reversed(rows):  # Twilio lists newest first
                if all(msg[k.lower()] == v if k in ("To", "From")
                       else _date_ok(sent, k[8:] or "=", v) for k, v in filters):
                    picked.append(msg)
        except ValueError:
            return _error(400, 20001, f"Invalid DateSent filter in {req.target}")
        chunk = picked[page * size:(page + 1) * size]
        base = f"{API}/Accounts/{self.account_sid}/Messages.json?"

        def page_uri(n: int) -> str:
            return base + urlencode([*filters, ("PageSize", size), ("Page", n)])

        more = (page + 1) * size < len(picked)
        return Response.json(200, {
            "messages": chunk, "start": page * size, "end": page * size + max(len(chunk) - 1, 0),
            "page": page, "page_size": size, "uri": page_uri(page), "first_page_uri": page_uri(0),
            "next_page_uri": (page_uri(page + 1) + f"&PageToken=PA{page + 1}") if more else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        })

    # -- status callbacks (Twilio -> the service) ------------------------------------
    def status_callback(
        self,
        message_sid: str,
        status: str,
        url: str | None = None,
        error_code: int | None = None,
        *,
        raw_dlr_done_date: str | None = None,
        extra: dict[str, str] | None = None,
        bad_signature: bool = False,
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        """Build a signed StatusCallback as ``(url, form params, headers)`` and update the
        stored message's status; use it to post through e.g. FastAPI's TestClient.

        ``url`` defaults to the message's ``StatusCallback``. ``RawDlrDoneDate`` is added for
        ``delivered``/``undelivered`` (YYMMDDhhmm, UTC) unless given. ``bad_signature=True``
        signs with a wrong token, for 403 tests.
        """
        with self._lock:
            msg, _, callback = self._messages[message_sid]
            url = url or callback
            msg.update(status=status, error_code=error_code,
                       date_updated=format_datetime(self.clock().astimezone(timezone.utc)))
        if not url:
            raise ValueError(f"no StatusCallback URL for {message_sid}")
        optional = {"From": msg["from"], "MessagingServiceSid": msg["messaging_service_sid"],
                    "ErrorCode": None if error_code is None else str(error_code)}
        if raw_dlr_done_date or status in ("delivered", "undelivered"):
            done = self.clock().astimezone(timezone.utc).strftime("%y%m%d%H%M")
            optional["RawDlrDoneDate"] = raw_dlr_done_date or done
        params = {"AccountSid": self.account_sid, "ApiVersion": "2010-04-01",
                  "MessageSid": message_sid, "SmsSid": message_sid, "MessageStatus": status,
                  "SmsStatus": status, "To": msg["to"],
                  **{k: v for k, v in optional.items() if v}, **(extra or {})}
        token = self.auth_token + ("x" if bad_signature else "")
        signature = RequestValidator(token).compute_signature(url, params)
        return url, params, {"X-Twilio-Signature": signature}

    def send_status_callback(
        self, message_sid: str, status: str, url: str | None = None, error_code: int | None = None,
        *, timeout: float = 5, **kwargs: Any,
    ) -> requests.Response:
        """``status_callback(...)`` POSTed form-encoded with ``requests``; returns the response."""
        url, params, headers = self.status_callback(message_sid, status, url, error_code, **kwargs)
        return requests.post(url, data=params, headers=headers, timeout=timeout)


def _first(d: dict[str, list[str]], key: str) -> str | None:
    values = d.get(key)
    return values[0] if values else None


def _basic(req: Request) -> tuple[str, str]:
    """(user, password) from HTTP Basic auth, empty strings when absent or malformed."""
    header = req.header("authorization") or ""
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    return (user, password) if header[:6].lower() == "basic " else ("", "")


def main(argv: list[str] | None = None) -> None:
    """Run the double in the foreground until SIGINT/SIGTERM (for benchmarks)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8099)
    p.add_argument("--account-sid", default="AC" + "0" * 32)
    p.add_argument("--auth-token", default="test_auth_token")
    for flag in ("--latency-ms", "--p429", "--p500", "--p-reset", "--p-timeout"):
        p.add_argument(flag, type=float, default=0)
    p.add_argument("--retry-after-s", type=float, default=1)
    p.add_argument("--seed", type=int, default=None)
    a = p.parse_args(argv)
    plan = FaultPlan(latency_ms=a.latency_ms, p429=a.p429, retry_after_s=a.retry_after_s,
                     p500=a.p500, p_reset=a.p_reset, p_timeout=a.p_timeout, seed=a.seed)
    # Block before the server thread starts so only sigwait sees them (a background job
    # has SIGINT ignored, hence SIGTERM too).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    double = TwilioDouble(a.account_sid, a.auth_token, plan, port=a.port).start()
    print(f"twilio double on {double.url} account {a.account_sid} token {a.auth_token}", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    double.stop()
    print(f"served {len(double.requests)} requests, accepted {len(double.accepted())}", flush=True)


if __name__ == "__main__":
    main()
