"""Twilio delivery receipts: ``POST /api/v1/twilio/status`` (sms-providers.md §1.5-1.6).

The ``X-Twilio-Signature`` is checked against ``http.public_url`` (the URL Twilio called, not the
one this process sees behind a proxy); a bad one gets 403 and changes nothing. Receipts move a
delivery only forward (callbacks arrive out of order): a late ``sent`` never overwrites
``delivered``. Error codes that mean "this number will never work" flag the contact unreachable,
so the next alert skips it with a reason.
"""

from __future__ import annotations

import logging
import threading
import time

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator

from broadcaster.logutil import mask_phone
from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

PATH = "/api/v1/twilio/status"

# Twilio status -> our delivery state.
STATE = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
         "delivered": "delivered", "undelivered": "failed", "failed": "failed"}
UNREACHABLE = {21610: "已退订短信（STOP）/ unsubscribed (21610)",
               30005: "号码不存在或已停机 / unknown or inactive number (30005)",
               30006: "固定电话或运营商不可达 / landline or unreachable carrier (30006)"}


def router(svc: Service) -> APIRouter:
    """The receipt endpoint bound to ``svc``."""
    r = APIRouter(tags=["receipts"])
    tw = svc.cfg.settings.sms.twilio
    validator = RequestValidator(tw.auth_token) if tw else None
    url = svc.cfg.settings.http.public_url.rstrip("/") + PATH
    last_bad = [0.0]
    lock = threading.Lock()

    @r.post(PATH, response_class=Response, responses={403: {"description": "bad X-Twilio-Signature"}})
    async def twilio_status(request: Request) -> Response:
        """A Twilio StatusCallback (form-encoded); answers 200 once recorded."""
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if validator is None or not signature or not validator.validate(url, params, signature):
            with lock:  # audit bad signatures at most once a minute
                audit = time.monotonic() - last_bad[0] > 60
                if audit:
                    last_bad[0] = time.monotonic()
            if audit:
                svc.ledger.audit(svc.now(), "twilio?", "receipt.bad_signature", "http", None,
                                 {"client": request.client.host if request.client else None})
            log.warning("Twilio status callback with a bad signature rejected")
            raise HTTPException(403, "invalid X-Twilio-Signature")
        await run_in_threadpool(record, svc, params)  # ledger writes block; keep the event loop free
        return Response(status_code=200)

    return r


def record(svc: Service, params: dict[str, str]) -> str | None:
    """Apply one (already authenticated) receipt; returns the delivery's new state, if it moved."""
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    status = (params.get("MessageStatus") or params.get("SmsStatus") or "").lower()
    code = _int(params.get("ErrorCode"))
    target = STATE.get(status)
    r = svc.ledger.deliveries.receipt(
        "sms", sid, f"receipt_{target}" if target else None, svc.now(), provider_status=status,
        error=f"{status} {code or ''}".strip(), unreachable=UNREACHABLE.get(code or 0), phone=params.get("To", ""))
    if r.delivery_id is None:
        log.info("receipt for unknown message %s (%s): ignored", sid, status)
    else:
        log.info("receipt %s for delivery %d to %s: %s%s", status, r.delivery_id, mask_phone(r.target),
                 r.state if r.moved else f"stays {r.state}", f" (error {code})" if code else "")
    if code in UNREACHABLE and r.target:
        log.warning("contact %s marked unreachable: %s", mask_phone(r.target), UNREACHABLE[code])
    return r.state if r.moved else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
