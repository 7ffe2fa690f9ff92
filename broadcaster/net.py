"""HTTP helpers shared by feeds and channels: one mapping of ``requests`` failures to a readable
reason, ``Retry-After``, and backoff with jitter. Each caller wraps the reason in its own error
(FeedError, TransientError), chained to the original so the cause stays in the log."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import requests

from broadcaster.errors import PermanentError, TransientError

BASE_S = 2.0
CAP_S = 300.0


def failure_reason(exc: BaseException, timeout_s: float | None = None) -> str:
    """``timeout after 10 s`` / ``connection failed: ConnectionError``: what an operator reads."""
    if isinstance(exc, requests.Timeout):
        return f"timeout after {timeout_s:g} s" if timeout_s else "timeout"
    return f"connection failed: {type(exc).__name__}"


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


class BoundExceeded(Exception):
    """A response took longer than its overall deadline or was larger than its byte limit."""


def bounded_get(url: str, *, timeout_s: float, deadline_s: float, max_bytes: int, **kwargs: object) -> requests.Response:
    """``requests.get`` with an overall deadline and a byte limit on the (decoded) body.

    ``timeout_s`` bounds each connect and each read, not the whole: a server sending a byte a
    second never trips it. Here the body is read as it arrives, whatever is there at each read,
    and the fetch is abandoned (BoundExceeded) once ``deadline_s`` has passed since the start or
    the body has grown past ``max_bytes``; it overshoots the deadline by at most one read timeout.
    """
    start = time.monotonic()
    resp = requests.get(url, timeout=timeout_s, stream=True, **kwargs)  # type: ignore[arg-type]
    try:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise BoundExceeded(f"response larger than {max_bytes} bytes")
        body = bytearray()
        while True:
            if time.monotonic() - start > deadline_s:
                raise BoundExceeded(f"no complete answer within {deadline_s:g} s")
            chunk = resp.raw.read1(65536, decode_content=True)
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise BoundExceeded(f"response larger than {max_bytes} bytes")
    except BoundExceeded:
        resp.close()
        raise
    resp._content = bytes(body)  # what .content, .text and .json() read
    return resp


def check_push_answer(resp: requests.Response, *, body_chars: int = 0) -> None:
    """The answer of an endpoint we push to (an http speaker, an http display): any 2xx accepts;
    408, 429 and 5xx are worth retrying (after ``Retry-After`` when given); any other 4xx is
    permanent, with the first ``body_chars`` of the answer's text in the reason."""
    status = resp.status_code
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise TransientError(f"HTTP {status}", code=status, retry_after=retry_after_seconds(resp.headers))
    reason = f"HTTP {status}: {resp.text[:body_chars]}" if body_chars else f"HTTP {status}"
    raise PermanentError(reason, code=status)

