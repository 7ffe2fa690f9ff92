"""Delivery receipts pushed by SMS providers (DESIGN A6, A10).

The configured provider names the path its pushes arrive at (``receipt_path``, e.g. Twilio's
``/api/v1/twilio/status`` or ``/api/v1/sms/aliyun/receipts/{token}``) and reads each push into
receipts itself (:meth:`SmsProvider.receipts`: signature or token checked there). This module
mounts that route, refuses what the provider refuses (403, audited at most once a minute, so a
flood cannot fill the audit log) and applies the receipts: a delivery moves only forward
(callbacks arrive out of order: a late ``sent`` never overwrites ``delivered``), and numbers the
provider says will never work are flagged, so the next alert skips them with a reason.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from broadcaster.channels.sms import Receipt, ReceiptRequest
from broadcaster.errors import Forbidden
from broadcaster.logutil import mask_phone

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a receipt push is a few kB; a provider batches at most a thousand

def router(svc: Any) -> APIRouter:
    """The configured provider's receipt route (none when it takes no receipts)."""
    r = APIRouter(tags=["receipts"])
    provider = svc.sms
    path = provider.receipt_path
    if not path:
        return r
    public = svc.cfg.settings.http.public_url.rstrip("/")
    last_bad = [0.0]
    lock = threading.Lock()

    async def receive(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            raise HTTPException(413, "receipt too large")
        headers = {k.lower(): v for k, v in request.headers.items()}
        form = (dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded") else None)
        params = dict(request.path_params)
        url = public + path.format(**params) if params else public + path
        try:
            answer = provider.receipts(ReceiptRequest(url, headers, body, form, params))
        except Forbidden as exc:
            with lock:
                audit = time.monotonic() - last_bad[0] > 60
                if audit:
                    last_bad[0] = time.monotonic()
            if audit:
                svc.ledger.audit(svc.now(), f"{provider.type}?", "receipt.bad_signature", "http", None,
                                 {"client": request.client.host if request.client else None, "reason": str(exc)})
            log.warning("%s receipt refused: %s", provider.type, exc)
            raise HTTPException(403, str(exc)) from exc
        if answer.receipts:
            await run_in_threadpool(apply, svc, answer.receipts)  # ledger writes block; keep the loop free
        return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)

    r.add_api_route(path, receive, methods=["POST"], response_class=Response,
                    responses={403: {"description": "not signed by the provider, or a wrong token"}},
                    summary=f"{provider.type} delivery receipts")
    return r


def apply(svc: Any, receipts: list[Receipt]) -> list[str | None]:
    """Apply authenticated receipts; for each, the delivery's new state if it moved."""
    return [record(svc, rc) for rc in receipts]


def record(svc: Any, rc: Receipt) -> str | None:
    """Apply one receipt through the ledger's transition table (forward only, once); returns the
    delivery's new state, if it moved. A receipt for an unknown message is logged and ignored."""
    r = svc.ledger.deliveries.receipt(
        "sms", rc.provider_id, f"receipt_{rc.status}", svc.now(), provider_status=rc.provider_status,
        error=f"{rc.provider_status} {rc.code or ''}".strip(), unreachable=rc.unreachable, phone=rc.phone or "",
        at=rc.at)
    if r.delivery_id is None:
        log.info("receipt for unknown message %s (%s): ignored", rc.provider_id, rc.provider_status)
    else:
        log.info("receipt %s for delivery %d to %s: %s%s", rc.provider_status, r.delivery_id, mask_phone(r.target),
                 r.state if r.moved else f"stays {r.state}", f" (error {rc.code})" if rc.code else "")
    if rc.unreachable and r.target:
        log.warning("contact %s marked unreachable: %s", mask_phone(r.target), rc.unreachable)
    return r.state if r.moved else None
