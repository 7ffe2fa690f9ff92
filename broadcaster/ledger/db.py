"""The database under the ledger: engines (SQLite in WAL mode, or PostgreSQL) and sessions.

Writes on SQLite use ``BEGIN IMMEDIATE`` so that a writer takes the lock up front and waits
(busy timeout) instead of failing half-way with "database is locked"; readers never block.
The ledger's owners (deliveries, reads, people) are given a :class:`Database`, not the
:class:`~broadcaster.ledger.store.Ledger`, so the package has no import circle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker


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


def _engines(url: str) -> tuple[Engine, Engine]:
    """The write and read engines for ``url`` (one pooled engine on PostgreSQL)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    return engine, engine


class Database:
    """Engines and sessions of one ledger database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine, self.read_engine = _engines(url)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)

    def close(self) -> None:
        """Dispose of the engines' connections."""
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

    def ping(self) -> bool:
        """True when the database answers (``/healthz``)."""
        try:
            with self.read_engine.connect() as c:
                c.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - health check reports, never raises
            return False
