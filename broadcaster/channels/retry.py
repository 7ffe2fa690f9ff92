"""Retry timing shared by every channel: backoff with jitter that honours ``Retry-After``."""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone

BASE_S = 2.0
CAP_S = 300.0


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), if present."""
    value = headers.get("Retry-After") or headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_seconds(attempt: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
    """Delay before attempt ``attempt + 1``: full-jitter exponential, never before ``retry_after``."""
    rng = rng or random
    ceiling = min(CAP_S, BASE_S * 2 ** max(0, attempt - 1))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
