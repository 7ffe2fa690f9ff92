"""Sign-in throttling: growing delays per client address and per name, instead of a lockout.

A hard lock after N failures is a weapon: anyone who knows the admin's name can keep them out.
Here each key (a client address, or a hash of the name typed) may fail ``free`` times; every
failure after that doubles the wait before that key's next attempt, up to ``cap_s``. The web layer
refuses an address that must wait (429 with ``Retry-After``: the attacker's own address) and only
*delays* a name that must wait (capped, a few seconds), so the real user still gets in from
their own desk. Failures are forgotten ``forget_s`` after the last one; at most ``keep`` keys are
held (the oldest go first), so a flood of made-up names cannot grow memory. Names are kept only
as a short hash, never as typed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Entry:
    failures: int
    last: float


class Throttle:
    """Failures per key, and how long a key must wait before its next attempt."""

    def __init__(self, free: int, cap_s: float, forget_s: float = 3600.0, keep: int = 10_000) -> None:
        self.free, self.cap_s, self.forget_s, self.keep = free, cap_s, forget_s, keep
        self._keys: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, key: str, now: float) -> float:
        """Seconds ``key`` must still wait before its next attempt (0: go ahead)."""
        with self._lock:
            e = self._keys.get(key)
            if e is None:
                return 0.0
            if now - e.last >= self.forget_s:
                del self._keys[key]
                return 0.0
            return max(0.0, e.last + self.delay(e.failures) - now)

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures: none for the first ``free``, then 1, 2, 4 ... s."""
        over = failures - self.free
        return 0.0 if over < 0 else min(self.cap_s, 2.0 ** over)

    def failed(self, key: str, now: float) -> None:
        with self._lock:
            e = self._keys.pop(key, None)
            if e is None or now - e.last >= self.forget_s:
                e = _Entry(0, now)
            e.failures, e.last = e.failures + 1, now
            self._keys[key] = e  # most recent last
            while len(self._keys) > self.keep:
                self._keys.popitem(last=False)

    def take(self, key: str, now: float) -> float:
        """Check and count in one step: the seconds ``key`` must still wait (nothing counted),
        or 0 after counting this attempt as a failure in advance, so that many attempts at once
        cannot all pass the check before the first has failed. :meth:`forgive` takes it back."""
        with self._lock:
            e = self._keys.get(key)
            if e is not None and now - e.last < self.forget_s:
                wait = e.last + self.delay(e.failures) - now
                if wait > 0:
                    return wait
        self.failed(key, now)
        return 0.0

    def forgive(self, key: str) -> None:
        """Take back one failure counted in advance by :meth:`take` (the attempt succeeded)."""
        with self._lock:
            e = self._keys.get(key)
            if e is not None:
                e.failures = max(0, e.failures - 1)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


def name_key(name: str) -> str:
    """A name as a throttle key: a short hash, never the text typed."""
    return "n:" + hashlib.sha256(name.strip().encode("utf-8", "replace")).hexdigest()[:16]


def masked(name: str) -> str:
    """What the audit may keep of a name typed at sign-in: its first character and its length."""
    name = name.strip()
    return f"{name[:1]}…({len(name)})" if name else ""
