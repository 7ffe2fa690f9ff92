"""Deliveries a crash or a dead node left in flight (DESIGN A8, A15): leases, and settling them.

A claimed delivery is ``sending``, stamped with its node and a lease (``broadcaster.ledger.leases``).
The rules that make "nothing lost, nothing sent twice" hold across nodes:

- **Renew.** Every :data:`RENEW_S` while this node has sends in flight, it extends the lease of
  every claim it holds (one UPDATE). A node that dies or hangs stops renewing.
- **Never send on a lapsing lease.** A worker starts a send only while at least
  :data:`SEND_MARGIN_S` of its claim's lease remain (:meth:`Recovery.may_send`); otherwise the
  job goes back unsent. A node frozen for longer than that (SIGSTOP, a hung VM) therefore sends
  nothing it claimed before the freeze, once it runs again.
- **Settle what lapsed.** Every :data:`SWEEP_S` each node looks for claims whose lease has lapsed
  and takes them over (``FOR UPDATE SKIP LOCKED``: one node per row), then settles each as a crash
  is settled at start (:func:`settle`): the SMS provider is asked whether the message went out
  (Twilio's message list, the Chinese providers' query APIs), loudspeakers are sent again (with
  the delivery id as idempotency key where the endpoint takes one, else flagged a possible
  duplicate). The events go through the ledger's transition table (``reconcile_sent`` /
  ``reconcile_pending``); any late outcome of the lapsed claim is dropped by the ledger.
- **At start** a node settles at once what its own previous run left (same node name) and what
  has lapsed, before it sends anything.

A send that began before a freeze reaches the provider and is found there. The check is made
once more in the HTTP connection itself, right before the request's first byte is written
(:func:`guarded`, for every channel that speaks HTTP through urllib3: Twilio, the Chinese
providers' SDKs on requests, HTTP loudspeakers): a node frozen while a send was being prepared
writes nothing when it runs again. What remains is a freeze in the few microseconds between that
check and the system call; there the provider's own message list is the only witness, and it is
asked only once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import urllib3.connection
import urllib3.connectionpool

from broadcaster.channels.sms import SmsJob
from broadcaster.errors import ChannelError
from broadcaster.ledger import DeliveryJob, Ledger, Outcome
from broadcaster.timeutil import Clock

if TYPE_CHECKING:  # the dispatcher's package imports this module
    from broadcaster.dispatch import Endpoints

log = logging.getLogger("broadcaster.dispatch")

RENEW_S = 5.0
SWEEP_S = 5.0
#: A send is started only while this much of its claim's lease remains: longer than a send takes
#: (channel timeouts are 10 s by default), so a send never outlives the lease it began under.
SEND_MARGIN_S = 10.0
_BATCH = 200


class LeaseLapsed(Exception):
    """Raised in place of writing a request whose claim's lease may have lapsed (nothing was sent)."""


_permit = threading.local()


@contextmanager
def guarded(check: Callable[[], bool]) -> Iterator[None]:
    """While this block runs (on this thread), every HTTP request urllib3 is about to write asks
    ``check`` first, and raises :class:`LeaseLapsed` instead when it says no."""
    _install()
    _permit.check = check
    try:
        yield
    finally:
        _permit.check = None


class _GuardedSend:
    """The last look before a request leaves: after connecting, before the first byte."""

    def send(self, data: Any) -> None:
        check = getattr(_permit, "check", None)
        if check is not None:
            if self.sock is None:  # type: ignore[attr-defined]
                self.connect()  # type: ignore[attr-defined]  # a connect can take long: before the look
            if not check():  # also before the body: a request cut short is no request at all
                raise LeaseLapsed("the claim's lease may have lapsed: request not sent")
        super().send(data)  # type: ignore[misc]


class _GuardedHTTPConnection(_GuardedSend, urllib3.connection.HTTPConnection):
    pass


class _GuardedHTTPSConnection(_GuardedSend, urllib3.connection.HTTPSConnection):
    pass


def _install() -> None:
    """urllib3's pools make guarded connections (the same, unless a permit is set on the thread)."""
    pools = urllib3.connectionpool
    if pools.HTTPConnectionPool.ConnectionCls is urllib3.connection.HTTPConnection:
        pools.HTTPConnectionPool.ConnectionCls = _GuardedHTTPConnection
    if pools.HTTPSConnectionPool.ConnectionCls is urllib3.connection.HTTPSConnection:
        pools.HTTPSConnectionPool.ConnectionCls = _GuardedHTTPSConnection


def sms_job(job: DeliveryJob) -> SmsJob:
    """What an SMS provider is given for a claimed delivery: the text and, where the delivery was
    made from a rules template, its name and values (template-only providers send those)."""
    return SmsJob(job.id, job.alert_id, job.target, job.body or "", job.sms_template, job.values())


def settle(ep: "Endpoints", job: DeliveryJob, now: datetime) -> Outcome:
    """What became of a send that a crash (or a dead node) interrupted, as a ``reconcile_*`` event."""
    if job.channel == "sms":
        since = job.claimed_at or now
        try:
            sid = ep.sms.find_sent(sms_job(job), since)
        except NotImplementedError:
            return Outcome(job.id, "reconcile_pending", now, due_at=now, possible_duplicate=True,
                           error="re-sent after a crash; the provider cannot be asked whether it arrived",
                           claimed_at=job.claimed_at)
        except ChannelError as exc:
            # Cannot ask now: send it again, flagged, rather than risk that nobody is warned.
            return Outcome(job.id, "reconcile_pending", now, due_at=now, possible_duplicate=True,
                           error=f"reconcile failed: {exc}", claimed_at=job.claimed_at)
        if sid:
            return Outcome(job.id, "reconcile_sent", now, provider_id=sid, claimed_at=job.claimed_at)
        return Outcome(job.id, "reconcile_pending", now, due_at=now, attempts=max(0, job.attempts - 1),
                       claimed_at=job.claimed_at)
    if job.channel == "chat":  # a robot has no idempotency key: it may be in the group already
        dup = True
    elif job.channel == "display":  # Idempotency-Key: a screen shows a re-send once
        dup = False
    else:
        channel = ep.speakers.get(job.target)
        dup = not (channel is not None and channel.idempotent)
    return Outcome(job.id, "reconcile_pending", now, due_at=now, possible_duplicate=dup, claimed_at=job.claimed_at)


class Recovery:
    """One node's leases and its share of settling other nodes' lapsed claims (see the module
    docstring). ``busy`` tells whether the dispatcher has sends in flight (no write when idle)."""

    def __init__(self, ledger: Ledger, endpoints: "Endpoints", clock: Clock, busy: Callable[[], bool]) -> None:
        self.ledger = ledger
        self.ep = endpoints
        self.clock = clock
        self._busy = busy
        # (when, ids): the last renewal and the claims it covered; read by worker threads.
        self._renewed: tuple[datetime | None, frozenset[int]] = (None, frozenset())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Renew this node's leases and settle others' lapsed claims in the background. Two
        threads: a sweep that waits for a slow provider must never hold up a renewal."""
        if not self._threads:
            self._stop.clear()
            self._threads = [threading.Thread(target=self._every, args=(RENEW_S, self._renew_if_busy),
                                              name="lease-renewal", daemon=True),
                             threading.Thread(target=self._every, args=(SWEEP_S, self.sweep),
                                              name="recovery", daemon=True)]
            for t in self._threads:
                t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _every(self, period: float, fn: Callable[[], object]) -> None:
        while not self._stop.wait(period):
            try:
                fn()
            except Exception:  # noqa: BLE001 - recovery must survive a ledger hiccup
                log.exception("%s failed; trying again in %.0f s", threading.current_thread().name, period)

    def _renew_if_busy(self) -> None:
        # Idle (nothing in flight, nothing held at the last renewal): no write at all (DESIGN A8).
        if self._busy() or self._renewed[1]:
            self.renew()

    # ---------------------------------------------------------------- leases

    def renew(self) -> int:
        """Extend the lease of every claim this node holds; how many it holds."""
        now = self.clock.now()
        ids = self.ledger.leases.renew(now)
        self._renewed = (now, frozenset(ids))
        return len(ids)

    def may_send(self, job: DeliveryJob) -> bool:
        """True while ``job``'s claim has at least :data:`SEND_MARGIN_S` of lease left (its own
        claim time, or the last renewal that covered it). Called by workers just before sending."""
        now = self.clock.now()
        start = job.claimed_at or now
        renewed_at, held = self._renewed
        if renewed_at is not None and renewed_at > start and job.id in held:
            start = renewed_at
        if now < start + timedelta(seconds=self.ledger.lease_s - SEND_MARGIN_S):
            return True
        log.warning("delivery %d: the lease of its claim (%s) may have lapsed: not sending it; "
                    "whoever holds it now settles it", job.id, start.isoformat(timespec="seconds"))
        return False

    # ------------------------------------------------------------ settling

    def reconcile(self, *, own: bool = True) -> int:
        """Settle claims that lapsed (and, with ``own``, this node's name's from a previous run)
        before anything is re-sent; withdrawals left in flight are tried again. How many."""
        settled: Counter[str] = Counter()
        while True:
            now = self.clock.now()
            jobs = self.ledger.leases.take_over(now, _BATCH, own=own)
            outcomes = [settle(self.ep, j, now) for j in jobs]
            self.ledger.deliveries.finish(outcomes)
            settled.update(("found at the provider" if o.event == "reconcile_sent" else "to send again")
                           for o in outcomes)
            if len(jobs) < _BATCH:
                break
        requeued = self.ledger.deliveries.requeue_withdrawals(self.clock.now(), own=own)
        if settled:
            log.warning("settled %d deliveries a crashed or stopped node left in flight: %s", sum(settled.values()),
                        ", ".join(f"{n} {what}" for what, n in sorted(settled.items())))
        if requeued:
            log.warning("%d withdrawals left in flight are tried again", requeued)
        return sum(settled.values())

    def sweep(self) -> int:
        """Settle other nodes' lapsed claims, if there are any (one cheap query when none)."""
        if self.ledger.leases.lapsed_count(self.clock.now()) == 0:
            return 0
        return self.reconcile(own=False)
