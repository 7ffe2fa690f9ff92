"""Several nodes on one ledger (DESIGN A15): node names, the scheduler's leader lock, fire records.

- :func:`node_name` is what a process stamps its claims with and ``/healthz`` shows.
- :class:`LeaderLock` is a PostgreSQL *session* advisory lock held on a dedicated connection: the
  node whose session holds it runs the scheduler's jobs. PostgreSQL frees it when the session ends,
  so a node that dies (SIGKILL, power) loses it at once, and one that hangs (SIGSTOP, a frozen VM)
  loses it after ``idle_session_timeout``; server-side TCP keepalives end the session of a host
  that vanished. No consensus of our own: the database's lock table is the only arbiter.
- :class:`Fires` records each run of a scheduled job at its fire time, once (a unique key): the
  fence for the moments two nodes both believe they lead (a frozen leader resuming before it has
  noticed that its session is gone).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime

from sqlalchemy import Connection, create_engine, delete, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import NullPool

from broadcaster.ledger.db import NODE_ENV, PG_SERVER_OPTIONS, Database, node_name, pg_connect_args, sa_url
from broadcaster.ledger.models import ScheduleFire

__all__ = ["LEADER_KEY", "NODE_ENV", "Fires", "LeaderLock", "node_name"]

log = logging.getLogger(__name__)

#: The leader lock's key: the ASCII of "bcst-led" as a positive bigint (the migration lock is
#: "bcst-mig"), unlikely to meet another application's advisory locks in the same database.
LEADER_KEY = int.from_bytes(b"bcst-led", "big")
#: A hung leader's idle lock session is ended after this long (PostgreSQL >= 14). The leader
#: queries it every couple of seconds, so only a frozen process lets it run out.
IDLE_SESSION_TIMEOUT_S = 15
#: No query on the lock connection may hang longer than this (a half-open connection).
STATEMENT_TIMEOUT_S = 5


class LeaderLock:
    """The scheduler's leader lock on a dedicated PostgreSQL connection (thread-safe).

    Every method answers instead of raising: a database error means "not (or no longer) held",
    and the connection is dropped so that the next :meth:`try_acquire` starts a fresh session.
    """

    def __init__(self, url: str, node: str, *, idle_session_timeout_s: float = IDLE_SESSION_TIMEOUT_S) -> None:
        self.node = node
        self.idle_session_timeout_s = idle_session_timeout_s
        options = f"{PG_SERVER_OPTIONS} -c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
        # application_name names the holder in pg_stat_activity (see holder()) and for DBAs.
        args = {**pg_connect_args(url, options), "application_name": f"broadcaster leader {node}"[:63]}
        self._engine = create_engine(sa_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT",
                                     connect_args=args)
        self._conn: Connection | None = None
        self._mutex = threading.Lock()
        self._warned_old_server = False

    def _connect(self) -> Connection:
        conn = self._engine.connect()
        version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
        if version >= 140000:
            conn.execute(text(f"SET idle_session_timeout = {int(self.idle_session_timeout_s * 1000)}"))
        elif not self._warned_old_server:
            self._warned_old_server = True
            log.warning("PostgreSQL %s has no idle_session_timeout (14+): a hung leader keeps the "
                        "scheduler's lock until its process ends", version)
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()  # never reuse a connection in an unknown state
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is being thrown away
                pass
            self._conn = None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this session holds it now."""
        with self._mutex:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                               {"k": LEADER_KEY}).scalar_one())
            except Exception as exc:  # noqa: BLE001 - any failure: not the leader, try again later
                log.warning("leader lock: cannot ask PostgreSQL (%s)", _brief(exc))
                self._drop()
                return False

    def held(self) -> bool:
        """Ask the server whether this session still holds the lock (one round trip). False when
        the session is gone (terminated, timed out, server restarted): the lock is lost."""
        with self._mutex:
            if self._conn is None:
                return False
            try:
                return bool(self._conn.execute(text(
                    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND granted AND classid = CAST(:hi AS oid)"
                    " AND objid = CAST(:lo AS oid) AND objsubid = 1)"),
                    {"hi": LEADER_KEY >> 32, "lo": LEADER_KEY & 0xFFFFFFFF}).scalar_one())
            except Exception as exc:  # noqa: BLE001
                log.warning("leader lock: lost the lock connection (%s)", _brief(exc))
                self._drop()
                return False

    def holder(self) -> str | None:
        """The node that holds the lock now, as its session names it (None: nobody, or unknown)."""
        with self._mutex:
            if self._conn is None:
                return None
            try:
                name = self._conn.execute(text(
                    "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:hi AS oid)"
                    " AND l.objid = CAST(:lo AS oid) AND l.objsubid = 1"
                    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
                    {"hi": LEADER_KEY >> 32, "lo": LEADER_KEY & 0xFFFFFFFF}).scalar()
            except Exception:  # noqa: BLE001 - only for a log line
                return None
        return name.removeprefix("broadcaster leader ") if name else None

    def release(self) -> None:
        """Give the lock up (closing the session frees it at once: a standby takes over)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001
                    pass
                self._conn = None
        self._engine.dispose()


class Fires:
    """The scheduler's fire records (table ``schedule_fires``)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def once(self, job_id: str, fire_at: datetime, node: str, now: datetime) -> bool:
        """Record that ``node`` runs ``job_id`` for ``fire_at``; False when that run was recorded
        already (by this or another node): then it must not run again."""
        try:
            with self._db.session() as s:
                s.add(ScheduleFire(job_id=job_id, fire_at=fire_at, node=node, started_at=now))
            return True
        except IntegrityError:
            return False

    def prune(self, before: datetime) -> int:
        """Forget fire records older than ``before`` (the fence only needs the last few hours)."""
        with self._db.session() as s:
            return s.execute(delete(ScheduleFire).where(ScheduleFire.fire_at < before)).rowcount or 0


def _brief(exc: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's background link."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
