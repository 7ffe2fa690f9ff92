"""The console's sign-in guard: throttles, a bound on names, and a summarised audit of failures.

Failed sign-ins cost a scrypt each and used to be audited one by one and counted towards a
15-minute lockout of the name. Now (issue 18): an address that keeps failing is refused with 429
and a growing ``Retry-After`` (:class:`~broadcaster.auth.throttle.Throttle`); a name that keeps
failing only makes its next attempts wait a few seconds (asynchronously: no thread is held), so
the real user still gets in; the audit gets at most one entry per address and minute, with how
many failures it stands for and the names only as a masked prefix.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from broadcaster.auth.throttle import Throttle, masked, name_key

#: Failures an address may make before it must wait (1 s, 2 s, 4 s ... up to 15 minutes).
ADDRESS_FREE, ADDRESS_CAP_S = 10, 900.0
#: Failures a name may take before its sign-ins are slowed (1 s, 2 s, 4 s, at most 8 s).
NAME_FREE, NAME_CAP_S = 10, 8.0
AUDIT_EVERY_S = 60.0


class SignInGuard:
    """Per-address refusal, per-name delay and the failure audit of one console."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.addresses = Throttle(ADDRESS_FREE, ADDRESS_CAP_S)
        self.names = Throttle(NAME_FREE, NAME_CAP_S)
        self._audited: dict[str, tuple[float, int, list[str]]] = {}
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self.svc.now().timestamp()

    def refuse_for(self, client: str) -> float:
        """Seconds this address must still wait before it may try again (0: it may, and the
        attempt is counted as a failure until :meth:`succeeded` says otherwise)."""
        return self.addresses.take(client, self._now())

    def slow_for(self, name: str) -> float:
        """Seconds to hold this name's attempt before checking it (never a refusal)."""
        return min(self.names.wait(name_key(name), self._now()), NAME_CAP_S)

    def succeeded(self, client: str, name: str) -> None:
        self.addresses.forgive(client)
        self.names.succeeded(name_key(name))

    def failed(self, client: str, name: str) -> None:
        """Count the failure, and audit it unless this address was audited within the minute
        (then it is counted into the next entry). Runs in a worker thread (it may write)."""
        now = self._now()
        self.names.failed(name_key(name), now)  # the address's failure was counted by refuse_for
        mono = time.monotonic()
        with self._lock:
            last, suppressed, names = self._audited.get(client, (-1e9, 0, []))
            if mono - last < AUDIT_EVERY_S:
                if len(names) < 5 and masked(name) not in names:
                    names.append(masked(name))
                self._audited[client] = (last, suppressed + 1, names)
                return
            if len(self._audited) > 10_000:  # a flood from many addresses: forget the oldest
                self._audited.pop(next(iter(self._audited)))
            self._audited[client] = (mono, 0, [])
        self.svc.ledger.audit(self.svc.now(), f"anonymous@{client}", "console.signin_failed", "console_user", None,
                              {"name": masked(name), "suppressed_before": suppressed, "names_before": names})
