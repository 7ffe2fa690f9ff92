"""Logging set-up and masking: no token, secret or full phone number ever reaches a log line."""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime, tzinfo

_PHONE = re.compile(r"(\+?86)?(1[3-9]\d)(\d{4})(\d{4})")
# ``key=`` and ``/hook/``: WeCom and Feishu robot webhooks carry their only credential in the URL
# (urllib3 logs URLs at DEBUG).
_BEARER = re.compile(r"(?i)(bearer\s+|token[=:\s]+|(?<![a-z])key=|/hook/)([A-Za-z0-9._~+/=-]{6,})")
# A check-in link's code (A13) is the key to a cadre's page: keep 4 characters to tell them apart.
_CHECKIN = re.compile(r"(/c/)([A-Za-z0-9_-]{4})[A-Za-z0-9_-]{8,}")


def mask_phone(number: str) -> str:
    """``+8613800138000`` -> ``138****8000``; other numbers keep only the last 4 digits."""
    m = _PHONE.search(number)
    if m:
        return f"{m.group(2)}****{m.group(4)}"
    digits = re.sub(r"\D", "", number)
    return "****" + digits[-4:] if len(digits) >= 4 else "****"


def mask_text(text: str) -> str:
    text = _PHONE.sub(lambda m: f"{m.group(2)}****{m.group(4)}", text)
    text = _CHECKIN.sub(lambda m: m.group(1) + m.group(2) + "****", text)
    return _BEARER.sub(lambda m: m.group(1) + "****", text)


class MaskingFilter(logging.Filter):
    """Masks phone numbers and bearer tokens in every record, whatever library logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        masked = mask_text(msg)
        if masked != msg:
            record.msg, record.args = masked, None
        return True


_town_tz: tzinfo | None = None


def set_timezone(tz: tzinfo | None) -> None:
    """Log times in the town's zone from now on (a default Docker container's zone is UTC)."""
    global _town_tz
    _town_tz = tz


class TownTimeFormatter(logging.Formatter):
    """``asctime`` in the configured town's zone, with its offset, whatever the host's zone."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        when = datetime.fromtimestamp(record.created, _town_tz) if _town_tz else \
            datetime.fromtimestamp(record.created).astimezone()
        return when.strftime(datefmt or "%Y-%m-%d %H:%M:%S") + f",{int(record.msecs):03d}{when:%z}"


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TownTimeFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("apscheduler", "urllib3", "twilio.http_client", "uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
