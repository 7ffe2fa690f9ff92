"""The ledger's schema revision: what it is, bringing it up to date, refusing an old one (A15).

The schema is versioned with Alembic; the migrations live in ``broadcaster/ledger/migrations/`` and
are configured here, in code, so no ``alembic.ini`` is needed at run time.

- :func:`head` is the revision this code needs, :func:`current` the one a database has.
- :func:`upgrade` (``broadcaster db upgrade``) brings any earlier ledger up to :func:`head` with its
  data, in one transaction, under a lock so that two nodes starting at once migrate only once.
- :func:`ensure_current` is for ``broadcaster run`` and friends: an empty database is created
  at head (a fresh ``make run`` needs no command), an older one is refused with
  :class:`SchemaOutOfDate` naming the command, a newer one with :class:`SchemaTooNew`.

Release 0.1.0 made its tables with ``create_all`` and has no ``alembic_version`` table; such a
ledger is recognised by its tables (:data:`UNVERSIONED`) and stamped before it is upgraded.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from broadcaster.errors import BroadcasterError

log = logging.getLogger(__name__)

UPGRADE_COMMAND = "broadcaster db upgrade"
VERSION_TABLE = "alembic_version"  # Alembic's default, so `alembic current` and DBAs recognise it

#: What :func:`current` answers for a ledger made before migrations existed (release 0.1.0).
UNVERSIONED = "0.1.0-unversioned"

#: The tables release 0.1.0 created; all of them present without a version table is such a ledger.
TABLES_0_1_0 = frozenset({
    "readings", "alerts", "deliveries", "audit", "api_tokens", "console_users", "console_sessions",
    "endpoint_contacts", "contact_flags",
})

#: PostgreSQL advisory lock held (transaction-scoped) while migrating: the ASCII of "bcst-mig" as a
#: positive bigint, so that it cannot collide with the scheduler's leader lock or another app's.
PG_LOCK_KEY = int.from_bytes(b"bcst-mig", "big")

#: While migrating SQLite, wait at least this long (ms) for another process's migration to finish.
SQLITE_BUSY_MS = 120_000


class SchemaError(BroadcasterError):
    """The ledger's schema is not one this code can run on as it is."""


class SchemaOutOfDate(SchemaError):
    """The ledger is older than this code (or empty): ``broadcaster db upgrade`` updates it."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        self.command = UPGRADE_COMMAND
        if current is None:
            message = (f"账本数据库是空的（需要结构版本 {head}）：请运行 `{UPGRADE_COMMAND}` 建立。"
                       f" The ledger database is empty (schema head {head}):"
                       f" run `{UPGRADE_COMMAND}` to create it.")
        else:
            message = (f"账本数据库结构版本过旧（当前 {current}，本程序需要 {head}）："
                       f"请先备份数据库，再运行 `{UPGRADE_COMMAND}`。"
                       f" The ledger's schema is out of date (current {current}, head {head}):"
                       f" back up the database, then run `{UPGRADE_COMMAND}`.")
        super().__init__(message)


class SchemaTooNew(SchemaError):
    """A newer release migrated the ledger: upgrade the program, not the data."""

    def __init__(self, current: str, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"账本数据库结构版本 {current} 比本程序认识的最新版本 {head} 还新（由更新版本的 broadcaster"
            f" 升级过）：请升级本机的 broadcaster，不要降级数据库。"
            f" The ledger's schema revision {current} is newer than this broadcaster knows"
            f" (head {head}): a newer release migrated it; upgrade broadcaster on this machine.")


class SchemaUnrecognised(SchemaError):
    """The database holds some ledger tables but is neither versioned nor a whole 0.1.0 ledger."""

    def __init__(self, present: set[str], missing: set[str]) -> None:
        self.present = present
        self.missing = missing
        have, lack = ", ".join(sorted(present)), ", ".join(sorted(missing))
        super().__init__(
            f"数据库里有部分账本表（{have}），缺少 {lack}，也没有 {VERSION_TABLE} 表："
            f"不是 broadcaster 建的完整账本，不会自动改动它，请检查数据库地址。"
            f" The database holds some ledger tables ({have}) but lacks {lack} and has no"
            f" {VERSION_TABLE} table: not a whole broadcaster ledger, left untouched;"
            f" check the database URL.")


# ---------------------------------------------------------------------------------- configuration


def script_location() -> Path:
    """The Alembic script directory inside the installed package."""
    # A package installed from a wheel or in development mode is a plain directory on disk.
    return Path(str(files("broadcaster.ledger.migrations")))


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic ``Config`` for the ledger's migrations, built in code (no ``alembic.ini``).

    ``connection`` is handed to ``env.py`` in ``config.attributes["connection"]``; the caller owns
    its transaction. Developers can pass the result to ``alembic.command.revision``
    (docs/migrations.md).
    """
    cfg = Config()
    # ConfigParser interpolates "%": a path containing one must be escaped.
    cfg.set_main_option("script_location", str(script_location()).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The schema revision this code needs (the newest migration)."""
    head_rev = _scripts().get_current_head()  # raises if a merge left two heads: a developer error
    assert head_rev is not None, "no migrations found in broadcaster/ledger/migrations/versions"
    return head_rev


@functools.lru_cache(maxsize=1)
def revisions() -> tuple[str, ...]:
    """Every revision this code knows, oldest first."""
    return tuple(reversed([s.revision for s in _scripts().walk_revisions()]))


# ---------------------------------------------------------------------------------- detection


def _detect(conn: Connection) -> str | None:
    """The revision of the database behind ``conn``: None (no ledger), a revision or UNVERSIONED."""
    tables = set(sa.inspect(conn).get_table_names())
    if VERSION_TABLE in tables:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        heads = context.get_current_heads()
        if len(heads) > 1:
            raise SchemaError(f"the ledger's {VERSION_TABLE} names several revisions: {heads}")
        if heads:
            return heads[0]
        # An empty version table (everything downgraded): judge by the tables, as below.
    ledger = tables & TABLES_0_1_0
    if ledger == TABLES_0_1_0:
        return UNVERSIONED
    if ledger:
        raise SchemaUnrecognised(ledger, set(TABLES_0_1_0 - ledger))
    return None  # unrelated tables of someone else do not make a ledger


def _unversioned_revision(conn: Connection) -> str:
    """The revision an unversioned ledger already is, to stamp it with before upgrading."""
    # Development builds between 0.1.0 and the first migration made deliveries.withdrawal (and its
    # index) with create_all, so such a ledger is already 0002; a 0.1.0 ledger is 0001.
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    return "0002" if "withdrawal" in columns else "0001"


def current(engine: Engine) -> str | None:
    """The database's schema revision: None for an empty database, :data:`UNVERSIONED` for a
    ledger made by release 0.1.0 (its tables, no version table), else an Alembic revision id."""
    with engine.connect() as conn:
        return _detect(conn)


def _check_known(state: str | None) -> None:
    if state is not None and state != UNVERSIONED and state not in revisions():
        raise SchemaTooNew(state, head())


# ---------------------------------------------------------------------------------- locking


@contextmanager
def _migration_transaction(engine: Engine) -> Iterator[Connection]:
    """One connection, in one transaction, holding the migration lock; committed on success."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            with _sqlite_exclusive(conn):
                yield conn
            return
        with conn.begin():
            if conn.dialect.name == "postgresql":
                # Transaction-scoped: released by the commit or rollback, even if this process dies
                # (the server ends the transaction with the connection). A second node waits here,
                # then finds the schema at head and does nothing.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK_KEY})
            yield conn


@contextmanager
def _sqlite_exclusive(conn: Connection) -> Iterator[Connection]:
    """``BEGIN IMMEDIATE`` on ``conn``: the write lock up front, DDL and stamp in one transaction.

    SQLite's DDL is transactional, but pysqlite only begins transactions before DML by itself, so
    the driver is put in autocommit mode and the transaction is begun explicitly. Engines may begin
    their own on SQLAlchemy's ``begin`` event (the Ledger's do: IMMEDIATE to write, deferred to
    read); that one is rolled back, nothing having happened in it, and ours begun instead.
    """
    raw = conn.connection.dbapi_connection
    assert isinstance(raw, sqlite3.Connection)
    saved_isolation = raw.isolation_level
    # PRAGMAs on the raw connection: through SQLAlchemy they would autobegin a transaction, inside
    # which `foreign_keys` cannot change.
    saved_fk = raw.execute("PRAGMA foreign_keys").fetchone()[0]
    saved_busy = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.isolation_level = None
    # Off while migrating, as SQLite's own ALTER TABLE procedure asks: batch mode recreates a table
    # by copy, drop and rename, and dropping a referenced table with foreign keys on would fail.
    # The whole database is checked before the commit instead.
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute(f"PRAGMA busy_timeout={max(int(saved_busy), SQLITE_BUSY_MS)}")
    try:
        with conn.begin():
            if raw.in_transaction:
                conn.exec_driver_sql("ROLLBACK")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise SchemaError(f"migration left rows with broken foreign keys: {broken[:5]}")
    finally:
        try:
            raw.execute(f"PRAGMA foreign_keys={'ON' if saved_fk else 'OFF'}")
            raw.execute(f"PRAGMA busy_timeout={int(saved_busy)}")
            raw.isolation_level = saved_isolation
        except sqlite3.Error:
            conn.invalidate()  # never hand the pool a connection in an unknown state


# ---------------------------------------------------------------------------------- operations


def upgrade(engine: Engine, *, to: str = "head") -> tuple[str | None, str]:
    """Bring the ledger up to ``to`` (default: :func:`head`) with its data; returns (from, to).

    An unversioned 0.1.0 ledger is stamped as revision 0001 first. Everything (stamp and every
    migration) happens in one transaction on SQLite and PostgreSQL, so a failure leaves the ledger
    as it was; the migration lock makes a concurrent second call wait, then find nothing to do.
    """
    with _migration_transaction(engine) as conn:
        before = _detect(conn)
        _check_known(before)
        cfg = alembic_config(conn)
        if before == UNVERSIONED:
            stamp = _unversioned_revision(conn)
            log.info("ledger made before schema migrations: stamping it as revision %s", stamp)
            command.stamp(cfg, stamp)
        command.upgrade(cfg, to)
        after = _detect(conn)
    assert after is not None and after != UNVERSIONED
    if after != before:
        log.info("ledger schema upgraded from %s to %s", before or "empty", after)
    return before, after


def ensure_current(engine: Engine, *, create_if_empty: bool) -> None:
    """Make sure the ledger's schema is :func:`head` before the service uses it.

    An empty database is created at head when ``create_if_empty`` (two nodes doing this at once is
    safe: :func:`upgrade` serialises them). Anything older raises :class:`SchemaOutOfDate`, which
    names ``broadcaster db upgrade``; a revision this code does not know raises
    :class:`SchemaTooNew`.
    Never migrates existing data by itself: that waits for an operator who has made a backup.
    """
    state = current(engine)
    target = head()
    if state == target:
        return
    if state is None and create_if_empty:
        upgrade(engine)
        return
    _check_known(state)
    raise SchemaOutOfDate(state, target)
