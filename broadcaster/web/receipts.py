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
from sqlalchemy import select, update
from starlette.concurrency import run_in_threadpool

from broadcaster.channels.sms import Receipt, ReceiptRequest
from broadcaster.errors import Forbidden
from broadcaster.ledger import ContactFlag, Delivery
from broadcaster.logutil import mask_phone

log = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # a receipt push is a few kB; a provider batches at most a thousand

# From which states a receipt may move a delivery to each target (forward only).
FROM = {"sent": {"pending", "sending"}, "delivered": {"pending", "sending", "sent"},
        "failed": {"pending", "sending", "sent"}}


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
    """Apply one receipt; returns the delivery's new state, if it moved."""
    now = svc.now()
    with svc.ledger.session() as s:
        q = select(Delivery).where(Delivery.channel == "sms", Delivery.provider_id == rc.provider_id)
        if rc.phone:
            q = q.where(Delivery.target == rc.phone)
        d = s.scalars(q).first()
        if d is None:
            log.info("receipt for unknown message %s (%s): ignored", rc.provider_id, rc.provider_status)
            moved = None
            phone = rc.phone or ""
        else:
            phone = d.target
            moved = None
            if d.state in FROM[rc.status]:
                values: dict[str, Any] = {"state": rc.status, "provider_status": rc.provider_status, "updated_at": now}
                if rc.status == "delivered":
                    values["delivered_at"] = rc.at or now
                if rc.status == "failed":
                    values["last_error"] = f"{rc.provider_status} {rc.code or ''}".strip()
                # Guarded on the state we read, so a concurrent receipt cannot be overwritten.
                n = s.execute(update(Delivery).where(Delivery.id == d.id, Delivery.state == d.state)
                              .values(**values)).rowcount
                moved = rc.status if n else None
            log.info("receipt %s for delivery %d to %s: %s%s", rc.provider_status, d.id, mask_phone(phone),
                     moved or f"stays {d.state}", f" (error {rc.code})" if rc.code else "")
        if rc.unreachable and phone:
            flag = s.get(ContactFlag, phone)
            if flag is None:
                s.add(ContactFlag(phone=phone, unreachable=True, reason=rc.unreachable, updated_at=now))
            else:
                flag.unreachable, flag.reason, flag.updated_at = True, rc.unreachable, now
            log.warning("contact %s marked unreachable: %s", mask_phone(phone), rc.unreachable)
    return moved
