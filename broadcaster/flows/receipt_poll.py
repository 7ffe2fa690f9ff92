"""Receipts nobody pushed: ask the SMS provider's query API (DESIGN A10).

A push can be lost (a URL not configured in the console, a proxy down, Aliyun's three re-pushes
all failed). Every ``POLL_MIN`` minutes the leader asks the provider about SMS it accepted at
least ``AFTER_MIN`` minutes ago (a push normally comes within seconds) and at most ``WITHIN_H``
hours ago that have no receipt yet, and applies the answers like pushed receipts: once, forward
only. An idle service asks nothing (one indexed read finds nothing waiting).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from broadcaster.errors import ChannelError

if TYPE_CHECKING:
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

POLL_MIN = 10
AFTER_MIN = 10
WITHIN_H = 48


def poll_receipts(svc: "Service") -> int:
    """Apply what the provider's query API says of SMS still waiting for a receipt; returns
    how many deliveries moved."""
    now = svc.now()
    waiting = svc.ledger.reads.sms_awaiting_receipt(now - timedelta(minutes=AFTER_MIN), now - timedelta(hours=WITHIN_H))
    if not waiting:
        return 0
    try:
        receipts = svc.sms.poll_receipts(waiting)
    except NotImplementedError:
        return 0
    except ChannelError as exc:
        log.warning("receipt query at %s failed: %s (asked again in %d min)", svc.sms.type, exc, POLL_MIN)
        return 0
    moved = 0
    for rc in receipts:
        r = svc.ledger.deliveries.receipt(
            "sms", rc.provider_id, f"receipt_{rc.status}", now, provider_status=rc.provider_status,
            error=f"{rc.provider_status} {rc.code or ''}".strip(), unreachable=rc.unreachable,
            phone=rc.phone or "", at=rc.at)
        moved += r.moved
    log.info("receipt query at %s: %d waiting, %d answers, %d deliveries moved", svc.sms.type, len(waiting),
             len(receipts), moved)
    return moved
