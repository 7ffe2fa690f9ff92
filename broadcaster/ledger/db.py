"""The database under the ledger: engines (SQLite in WAL mode, or PostgreSQL) and sessions.

Writes on SQLite use ``BEGIN IMMEDIATE`` so that a writer takes the lock up front and waits
(busy timeout) instead of failing half-way with "database is locked"; readers never block.
The ledger's owners (deliveries, reads, people) are given a :class:`Database`, not the
:class:`~broadcaster.ledger.store.Ledger`, so the package has no import circle.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


NODE_ENV = "BROADCASTER_NODE"
#: How long a claim stays its node's without a renewal (see broadcaster.ledger.leases).
LEASE_S = 30.0


def node_name(port: int | None = None) -> str:
    """This process's node name (DESIGN A15): ``$BROADCASTER_NODE``, else ``<hostname>:<port>`` for
    a service listening on ``port`` (stable across its restarts, and unique on the host because two
    services cannot listen on one port), else ``<hostname>-<pid>`` (a CLI command)."""
    configured = os.environ.get(NODE_ENV, "").strip()
    if configured:
        return configured[:100]
    host = socket.gethostname() or "localhost"
    return f"{host}:{port}" if port else f"{host}-{os.getpid()}"


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url[len("sqlite:///") :]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


#: libpq settings of every PostgreSQL connection (A15). Keepalives and ``tcp_user_timeout`` let a
#: node notice within seconds that the server is gone (instead of Linux's two hours); the server-side
#: keepalives end the session of a node whose host died (its locks and claims are freed); and a
#: transaction left idle by a frozen node (SIGSTOP) is ended after 30 s instead of holding row locks
#: that every other node's claims would skip. (PostgreSQL does not time out a session frozen in the
#: middle of a pipelined batch, as psycopg's executemany sends it: that transaction ends when its
#: process runs again or dies; its rows are outcomes of sends that went out, settled then.)
PG_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
    "tcp_user_timeout": 10_000,  # ms: unacknowledged data for this long ends the connection
}
PG_SERVER_OPTIONS = ("-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3"
                     " -c idle_in_transaction_session_timeout=30000")


def sa_url(url: str) -> str:
    """``postgresql://`` as SQLAlchemy's psycopg 3 dialect; anything else unchanged."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def pg_connect_args(url: str, options: str = PG_SERVER_OPTIONS) -> dict[str, Any]:
    """The ``connect_args`` for a PostgreSQL engine on ``url``: :data:`PG_CONNECT_ARGS` and the
    server options, unless the URL sets ``options`` itself (the operator's word wins)."""
    args = dict(PG_CONNECT_ARGS)
    if "options=" not in url:
        args["options"] = options
    return args


def _engines(url: str) -> tuple[Engine, Engine]:
    """The write and read engines for ``url`` (one pooled engine on PostgreSQL)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    engine = create_engine(sa_url(url), pool_size=10, max_overflow=20, pool_pre_ping=True,
                           connect_args=pg_connect_args(url) if url.startswith("postgresql") else {})
    return engine, engine


class Database:
    """Engines and sessions of one ledger database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        #: The name this process's claims are stamped with (``deliveries.claimed_by``): set it
        #: before the first claim (``broadcaster run`` names itself after its host and port).
        self.node = node_name()
        self.lease_s = LEASE_S
        self.engine, self.read_engine = _engines(url)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        self._version_conn: sqlite3.Connection | None = None
        self._version_lock = threading.Lock()

    def close(self) -> None:
        """Dispose of the engines' connections."""
        with self._version_lock:
            if self._version_conn is not None:
                self._version_conn.close()
                self._version_conn = None
        self.engine.dispose()
        if self.read_engine is not self.engine:
            self.read_engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction, committed on success. For the ledger's own modules (and tests)."""
        with self._write.begin() as s:
            yield s

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only session. For the ledger's own modules (and tests)."""
        with self._read() as s:
            yield s

    def version(self) -> int | None:
        """A number that changes whenever anyone (this process or another) commits to the ledger,
        or ``None`` when there is no cheap way to tell (PostgreSQL, in-memory SQLite).

        On SQLite it is ``PRAGMA data_version`` on a connection of its own that never writes: a
        few microseconds, no query plan, no transaction. Idle loops (the dispatcher's next-due
        look, the agents' long-poll watch) ask it first and query only when it moved (DESIGN A8).
        Read it *before* the query it guards: a commit in between shows as a change next time.
        """
        path = self.url[len("sqlite:///"):] if self.is_sqlite else ""
        if not path or path == ":memory:":
            return None
        with self._version_lock:
            try:
                if self._version_conn is None:
                    self._version_conn = sqlite3.connect(path, timeout=5, check_same_thread=False,
                                                         isolation_level=None)
                return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:
                self._version_conn = None
                return None

    def ping(self) -> bool:
        """True when the database answers (``/healthz``)."""
        try:
            with self.read_engine.connect() as c:
                c.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False
