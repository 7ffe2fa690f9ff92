"""Bounds on CPU-heavy work that people can ask for: previews render speech and run ffmpeg.

A preview of the longest text with ten repeats takes seconds of a core; twenty at once would
starve the dispatcher and the web server. :class:`RenderGate` lets ``workers`` renders run at a
time, keeps at most ``queue`` more waiting, and lets each user have at most ``per_user`` in
flight; anything beyond is refused at once (:class:`~broadcaster.errors.TooBusy`, HTTP 429)
rather than queued without end. :meth:`RenderGate.admit` also caps how many previews each user
may ask for in any hour (``http.previews_per_hour``): each one is a file of several MB and seconds
of a core, and a script with a stolen session must not run them without end.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from broadcaster.errors import TooBusy

#: Days an unreachable flag from a provider's receipt holds a number back (then it is tried again).
FLAG_DAYS = 30

BUSY = "试听请求过多，请稍后再试 / too many previews at once; try again shortly"


class RenderGate:
    """A bounded queue of renders with a per-user limit."""

    def __init__(self, workers: int = 1, queue: int = 4, per_user: int = 1, wait_s: float = 60.0) -> None:
        self.workers, self.queue, self.per_user, self.wait_s = workers, queue, per_user, wait_s
        self._run = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._mine: dict[str, int] = {}
        self._total = 0
        self._hour: dict[str, deque[datetime]] = {}  # each user's admitted previews in the last hour

    def admit(self, who: str, now: datetime, per_hour: int) -> None:
        """Count one preview for ``who`` at ``now``; TooBusy (with the seconds until one of the
        hour's previews ages out) when ``per_hour`` were already admitted in the last hour."""
        since = now - timedelta(hours=1)
        with self._lock:
            for user in [u for u, q in self._hour.items() if q and q[-1] <= since]:
                del self._hour[user]  # nobody's history outlives its hour
            mine = self._hour.setdefault(who, deque())
            while mine and mine[0] <= since:
                mine.popleft()
            if len(mine) >= per_hour:
                wait = max(1, math.ceil((mine[0] - since).total_seconds()))
                raise TooBusy(f"一小时内最多试听 {per_hour} 次，请 {math.ceil(wait / 60)} 分钟后再试"
                              f" / at most {per_hour} previews an hour per user", retry_after_s=wait)
            mine.append(now)

    @contextmanager
    def slot(self, who: str) -> Iterator[None]:
        """Run the body as one of the ``workers`` renders; TooBusy when the user already has
        ``per_user`` in flight or the queue is full."""
        with self._lock:
            if self._mine.get(who, 0) >= self.per_user or self._total >= self.workers + self.queue:
                raise TooBusy(BUSY)
            self._mine[who] = self._mine.get(who, 0) + 1
            self._total += 1
        try:
            if not self._run.acquire(timeout=self.wait_s):
                raise TooBusy(BUSY)
            try:
                yield
            finally:
                self._run.release()
        finally:
            with self._lock:
                self._total -= 1
                self._mine[who] -= 1
                if not self._mine[who]:
                    del self._mine[who]
