"""Who runs the scheduler's jobs (DESIGN A15): exactly one node at a time, the others stand by.

Every ``broadcaster run`` dispatches and serves the API, the console and the agents; only the
leader runs the scheduler's jobs (polls, the feed deadline, reports). Leadership is a PostgreSQL
session advisory lock on a dedicated connection (:class:`broadcaster.ledger.nodes.LeaderLock`):

- a standby tries to take it every :data:`RETRY_S`; the one that gets it starts the jobs and
  catches up what fell due (``Scheduler``);
- the leader asks the server every :data:`CHECK_S` whether its session still holds it; when the
  answer is no or does not come (the connection was cut, the server restarted, its session was
  ended after a freeze), it stops the jobs at once and becomes a candidate again;
- every job asks :meth:`Leadership.confirm` (a fresh round trip) right before it runs, and records
  its fire time once in the ledger (``Fires``): a frozen leader that resumes runs nothing twice,
  even before its own check has noticed that the lock is gone.

Takeover budget: a dead leader's session ends with its process (the lock is free at once); a hung
one's after ``idle_session_timeout`` (15 s); a vanished host's after the server's TCP keepalives
(~11 s). Add :data:`RETRY_S` for the standby: well within 30 s.

On SQLite there is one node by definition: it always leads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor

from broadcaster.ledger import Ledger
from broadcaster.ledger.nodes import LeaderLock

log = logging.getLogger(__name__)

RETRY_S = 2.0
CHECK_S = 2.0


class Leadership:
    """This node's role; ``on_elected``/``on_deposed`` are called (from its thread, or from a job's
    in :meth:`confirm`) whenever it changes."""

    def __init__(self, ledger: Ledger, *, lock: LeaderLock | None = None) -> None:
        self.node = ledger.node
        self.lock = lock if lock is not None or ledger.is_sqlite else LeaderLock(ledger.url, ledger.node)
        self._leader = False
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_elected: Callable[[], None] = lambda: None
        self._on_deposed: Callable[[], None] = lambda: None
        self._last_holder: str | None = ""

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def role(self) -> str:
        """``leader`` or ``standby`` (``/healthz``)."""
        return "leader" if self._leader else "standby"

    def start(self, on_elected: Callable[[], None], on_deposed: Callable[[], None]) -> None:
        self._on_elected, self._on_deposed = on_elected, on_deposed
        if self.lock is None:
            log.info("node %s: SQLite ledger, one node: it runs the schedule", self.node)
            self._elect()
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the jobs and give the lock up: a standby takes over within ``RETRY_S``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        with self._mutex:
            if self._leader:
                self._leader = False
                self._on_deposed()
        if self.lock is not None:
            self.lock.release()

    def confirm(self) -> bool:
        """True when this node still leads, asked of the database now (for a job about to run)."""
        if self.lock is None:
            return True
        with self._mutex:
            if not self._leader:
                return False
            if self.lock.held():
                return True
            self._depose("its lock session is gone")
            return False

    # -------------------------------------------------------------- thread

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._leader:
                if self._stop.wait(CHECK_S):
                    break
                with self._mutex:
                    if self._leader and not self.lock.held():  # type: ignore[union-attr]
                        self._depose("its lock session is gone")
                continue
            if self.lock.try_acquire():  # type: ignore[union-attr]
                with self._mutex:
                    if not self._stop.is_set():
                        self._elect()
                continue
            holder = self.lock.holder()  # type: ignore[union-attr]
            if holder != self._last_holder:
                self._last_holder = holder
                log.info("node %s stands by: %s runs the schedule", self.node, holder or "nobody yet")
            self._stop.wait(RETRY_S)

    def _elect(self) -> None:
        with self._mutex:
            self._leader = True
            self._last_holder = ""
            log.warning("node %s leads: it runs the schedule now", self.node)
            self._on_elected()

    def _depose(self, why: str) -> None:
        with self._mutex:
            if not self._leader:
                return
            self._leader = False
            log.warning("node %s steps down (%s): its scheduled jobs stop now", self.node, why)
            self._on_deposed()


class FencedExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, asking ``may_run(job_id, fire_time)`` in the job's thread before
    each run: runs it refused are dropped (missed ones are left to APScheduler to report)."""

    def __init__(self, may_run: Callable[[str, datetime], bool], max_workers: int = 10) -> None:
        super().__init__(max_workers)
        self._may_run = may_run

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        def callback(f: Any) -> None:  # as BasePoolExecutor's
            exc = f.exception()
            if exc:
                self._run_job_error(job.id, exc, getattr(exc, "__traceback__", None))
            else:
                self._run_job_success(job.id, f.result())

        f = self._pool.submit(self._fenced, job, job._jobstore_alias, run_times, self._logger.name)
        f.add_done_callback(callback)

    def _fenced(self, job: Any, alias: str, run_times: list[datetime], logger_name: str) -> Any:
        now = datetime.now(timezone.utc)
        grace = job.misfire_grace_time
        kept = [t for t in run_times
                if (grace is not None and now - t > timedelta(seconds=grace)) or self._may_run(job.id, t)]
        return run_job(job, alias, kept, logger_name)
