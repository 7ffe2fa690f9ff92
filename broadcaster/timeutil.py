"""Time: an injectable clock, nights (20:00 to 08:00 local) and local-time parsing.

Every datetime in broadcaster is timezone-aware. Code asks a :class:`Clock` for "now" so that
tests can move time instead of waiting for it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

NIGHT_START = time(20, 0)
NIGHT_END = time(8, 0)
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Clock:
    """The real clock. ``now()`` is aware (UTC)."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock(Clock):
    """A clock for tests: starts at ``start`` and moves only when told to."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


def parse_hhmm(value: str) -> time:
    """Parse ``"HH:MM"`` (24-hour) or raise ``ValueError`` with a readable message."""
    m = _HHMM.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise ValueError(f"{value!r} is not a time of day as HH:MM (00:00 to 23:59)")
    return time(int(m.group(1)), int(m.group(2)))


@dataclass(frozen=True)
class Night:
    """One night, named by the date on which it begins (20:00 local) and ends next day 08:00."""

    date: date
    tz: ZoneInfo

    @property
    def start(self) -> datetime:
        return datetime.combine(self.date, NIGHT_START, self.tz)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.date + timedelta(days=1), NIGHT_END, self.tz)

    def at(self, t: time) -> datetime:
        """The moment of local time ``t`` belonging to this night's evening or following morning.

        Times from 12:00 on belong to the evening of ``date``; earlier times to the next morning.
        """
        day = self.date if t >= time(12, 0) else self.date + timedelta(days=1)
        return datetime.combine(day, t, self.tz)

    def label(self) -> str:
        """Chinese label used in texts, e.g. ``11月28日``."""
        return f"{self.date.month}月{self.date.day}日"


def tonight(now: datetime, tz: ZoneInfo) -> Night:
    """The night under way at ``now`` or, in daytime, the next one to begin."""
    local = now.astimezone(tz)
    if local.time() < NIGHT_END:
        return Night(local.date() - timedelta(days=1), tz)
    return Night(local.date(), tz)


def in_season(day: date, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """True when ``day`` (month, day) lies in the season; seasons may wrap the new year."""
    md = (day.month, day.day)
    if start <= end:
        return start <= md <= end
    return md >= start or md <= end


def in_window(t: time, start: time, end: time) -> bool:
    """True when local time ``t`` lies in [start, end), a window that may wrap midnight."""
    if start <= end:
        return start <= t < end
    return t >= start or t < end
