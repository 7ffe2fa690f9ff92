"""Schema migrations (DESIGN A15) on SQLite and (when reachable) PostgreSQL.

A ledger "made by 0.1.0" is made here exactly as that release made it: ``create_all`` from its
models, frozen in ``tests/data/ledger_0_1_0_models.py`` (``git show
8041292:broadcaster/ledger/models.py``, byte for byte; never edit it), then filled through its own
ORM classes.

``test_migrated_schema_matches_models`` is the guard that a change to
``broadcaster/ledger/models.py`` comes with a migration: it fails, printing the ``op.*`` calls that
are missing, until one is written.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from pprint import pformat
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata, produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from broadcaster.ledger import models
from broadcaster.ledger import schema
from tests.conftest import PG_URL, local

FROZEN_0_1_0 = Path(__file__).parent / "data" / "ledger_0_1_0_models.py"
NIGHT = date(2026, 11, 28)
T0 = local(2026, 11, 28, 16, 30)


# ------------------------------------------------------------------------------------------ helpers


@functools.cache
def release_0_1_0() -> ModuleType:
    """The frozen models of release 0.1.0, as a module of their own (own ``Base`` and metadata)."""
    spec = importlib.util.spec_from_file_location("ledger_0_1_0_models", FROZEN_0_1_0)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # SQLAlchemy resolves the string annotations (Mapped[...]) through sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url)


def ledger_style_sqlite_engine(url: str) -> Engine:
    """Like the Ledger's write engine: driver autocommit, WAL, FKs on, BEGIN IMMEDIATE on begin."""
    eng = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @sa.event.listens_for(eng, "connect")
    def _connect(dbapi_conn: Any, _rec: Any) -> None:
        dbapi_conn.isolation_level = None
        for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=60000"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @sa.event.listens_for(eng, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return eng


@pytest.fixture
def engine(ledger_url: str) -> Iterator[Engine]:
    eng = make_engine(ledger_url)
    yield eng
    eng.dispose()


@contextmanager
def scratch_engine(ledger_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second empty database of the same dialect, to build a reference schema in."""
    if ledger_url.startswith("sqlite"):
        eng = make_engine(f"sqlite:///{tmp_path / f'scratch-{uuid.uuid4().hex[:6]}.db'}")
        yield eng
        eng.dispose()
        return
    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    eng = make_engine(f"{PG_URL.rsplit('/', 1)[0]}/{name}")
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def make_0_1_0_ledger(engine: Engine) -> None:
    """A ledger exactly as release 0.1.0 made it, filled with a night's worth of realistic rows:
    two polls, tonight's auto alert with SMS and plays in every state, an approved manual
    broadcast, audit entries, tokens, console users and a session, an agent's contact, a flag."""
    old = release_0_1_0()
    old.Base.metadata.create_all(engine)
    h = timedelta(hours=1)
    advice = "夜间风小湿度大，易形成逆温"
    reading = {"region": "XX镇", "level": 4, "source": "XX县气象台", "advice": advice,
               "valid_from": "2026-11-28T20:00:00+08:00", "valid_to": "2026-11-29T08:00:00+08:00"}
    at_1730, at_1930 = local(2026, 11, 28, 17, 30), local(2026, 11, 28, 19, 30)
    ends = local(2026, 11, 29, 8)
    with Session(engine) as s, s.begin():
        r_fail = old.ReadingRow(night=NIGHT, fetched_at=T0 - 2 * h, region="XX镇", level=None,
                                outcomes=[{"source": "XX县气象台", "error": "HTTP 503"}],
                                error="no valid reading", kind="catch-up")
        r_ok = old.ReadingRow(night=NIGHT, fetched_at=T0, region="XX镇", level=4, source="XX县气象台",
                              valid_from=local(2026, 11, 28, 20), valid_to=ends, issued_at=T0 - h,
                              advice=advice, reading=reading,
                              outcomes=[{"source": "XX县气象台", "level": 4},
                                        {"source": "open-meteo", "level": 3,
                                         "factors": {"wind_ms": 1.2, "rh": 91}}])
        s.add_all([r_fail, r_ok])
        s.flush()
        auto = old.Alert(
            kind="auto", dedupe_key=f"auto:XX镇:{NIGHT.isoformat()}:4", region="XX镇", night=NIGHT,
            level=4, reading_id=r_ok.id, rules=["warn"], status="dispatching",
            sms_text="【XX镇文化站】11月28日夜间一氧化碳中毒气象条件4级（容易发生），请开窗通风。",
            speaker_text="各位村民请注意：今天夜间到明天早晨，一氧化碳中毒气象条件4级。",
            audio_sha256="a" * 64, repeat=2, villages=["dongcun", "xicun"], sms_groups=["cadres"],
            created_at=T0)
        manual = old.Alert(
            kind="manual", dedupe_key=f"manual:{uuid.uuid4().hex}", region="XX镇", night=None,
            level=None, rules=[], status="approved", sms_text="今晚停电检修，注意炉火安全。",
            speaker_text="今晚停电检修，注意炉火安全。", audio_sha256="b" * 64, repeat=1,
            villages=["dongcun"], sms_groups=["duty"], at=T0 + 3 * h, created_at=T0 + h,
            created_by="王五", approved_by="赵六", approved_at=T0 + 2 * h, note="乡政府通知")
        s.add_all([auto, manual])
        s.flush()

        def sms(alert: Any, target: str, state: str, **kw: Any) -> Any:
            return old.Delivery(alert_id=alert.id, channel="sms", kind=kw.pop("kind", "twilio"),
                                target=target, slot="", body=alert.sms_text, state=state,
                                expires_at=ends, updated_at=T0 + h,
                                possible_duplicate=kw.pop("possible_duplicate", False), **kw)

        def play(alert: Any, target: str, kind: str, slot: str, state: str, **kw: Any) -> Any:
            return old.Delivery(alert_id=alert.id, channel="speaker", kind=kind, target=target,
                                slot=slot, village_id=target.split("-")[0], state=state,
                                audio_sha256=alert.audio_sha256, audio_ext="mp3",
                                repeat=alert.repeat, expires_at=ends, updated_at=T0 + h,
                                possible_duplicate=False, **kw)

        s.add_all([
            sms(auto, "+8613800138000", "delivered", contact_name="张三", village_id="dongcun",
                attempts=1, due_at=T0, sent_at=T0, delivered_at=T0 + timedelta(seconds=9),
                provider_id="SM0001", provider_status="delivered", segments=2),
            sms(auto, "+8613800138001", "failed", contact_name="李四", village_id="xicun", attempts=3,
                due_at=T0, provider_status="undelivered", last_error="21610 unsubscribed"),
            sms(auto, "+8613800138002", "sending", attempts=1, due_at=T0, claimed_at=T0,
                possible_duplicate=True),
            play(auto, "dongcun-room", "agent", "17:30", "played", attempts=1, play_at=at_1730,
                 played_at=at_1730),  # agents pull: never due
            play(auto, "dongcun-ip", "http", "19:30", "pending", attempts=0, play_at=at_1930,
                 due_at=T0),
            play(auto, "xicun-4g", "mqtt", "17:30", "expired", attempts=2, play_at=at_1730,
                 due_at=at_1730, last_error="no reply"),
            play(manual, "dongcun-dir", "folder", "19:30", "cancelled", attempts=0,
                 play_at=T0 + 3 * h, due_at=T0 + 3 * h, last_error="cancelled by 王五"),
            sms(manual, "+8613900139000", "sent", kind="outbox", attempts=1, due_at=T0 + 2 * h,
                sent_at=T0 + 2 * h),
        ])
        s.add_all([
            old.AuditEntry(at=T0 + h, actor="王五", action="broadcast.create", object_type="alert",
                           object_id=str(manual.id),
                           detail={"text": manual.sms_text, "audio_sha256": "b" * 64}),
            old.AuditEntry(at=T0 + 2 * h, actor="赵六", action="broadcast.approve",
                           object_type="alert", object_id=str(manual.id), detail=None),
            old.AuditEntry(at=T0 + 2 * h, actor="anonymous", action="auth.failed",
                           detail={"ip": "10.0.0.7"}),
            old.ApiToken(name="ops", role="operator", token_sha256="c" * 64,
                         created_at=T0 - 24 * h),
            old.ApiToken(name="dongcun-room", role="agent", speaker_id="dongcun-room",
                         token_sha256="d" * 64, created_at=T0 - 24 * h, revoked_at=T0),
            old.ConsoleUser(name="admin", role="admin", password_hash="scrypt$16384$8$1$salt$hash",
                            created_at=T0 - 48 * h),
            old.ConsoleUser(name="王五", role="operator", password_hash="scrypt$x",
                            created_at=T0 - 48 * h, disabled_at=T0),
            old.ConsoleSession(token_sha256="e" * 64, user="admin", role="admin", csrf="f" * 64,
                               created_at=T0, last_seen=T0 + h, expires_at=T0 + 12 * h),
            old.EndpointContact(speaker_id="dongcun-room", last_seen=T0 + h, address="10.1.2.9"),
            old.ContactFlag(phone="+8613800138001", unreachable=True, reason="21610 unsubscribed",
                            updated_at=T0 + h),
        ])


def dump_rows(engine: Engine, metadata: sa.MetaData) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of ``metadata``, read through its types (aware datetimes, JSON)."""
    out = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(sa.select(table).order_by(*table.primary_key.columns)).mappings()
            out[table.name] = [dict(r) for r in rows]
    return out


def snapshot(engine: Engine, *, ordered: bool = False) -> dict[str, Any]:
    """The schema as the database reports it: columns, keys, indexes, uniques, triggers, functions.

    Column order is compared only when ``ordered``: a column added by a migration lands at the end
    of its table, where ``create_all`` would have put it where the model declares it.
    """
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        for t in sorted(insp.get_table_names()):
            if t == schema.VERSION_TABLE:
                continue
            cols = [(c["name"], str(c["type"].compile(dialect=conn.dialect)), c["nullable"],
                     c.get("default")) for c in insp.get_columns(t)]
            out[t] = {
                "columns": cols if ordered else sorted(cols),
                "pk": insp.get_pk_constraint(t),
                "fks": sorted((f["name"] or "", tuple(f["constrained_columns"]),
                               f["referred_table"], tuple(f["referred_columns"]))
                              for f in insp.get_foreign_keys(t)),
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in insp.get_indexes(t)),
                "uniques": sorted((u["name"] or "", tuple(u["column_names"]))
                                  for u in insp.get_unique_constraints(t)),
            }
        if conn.dialect.name == "sqlite":
            out["<triggers>"] = conn.exec_driver_sql(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger' "
                "ORDER BY name").all()
        else:
            out["<triggers>"] = conn.exec_driver_sql(
                "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal ORDER BY 1").all()
            out["<functions>"] = conn.exec_driver_sql(
                "SELECT p.proname, pg_get_functiondef(p.oid) FROM pg_proc p JOIN pg_namespace n "
                "ON n.oid = p.pronamespace WHERE n.nspname = 'public' ORDER BY 1").all()
            out["<sequences>"] = conn.exec_driver_sql(
                "SELECT sequence_name, data_type FROM information_schema.sequences "
                "ORDER BY 1").all()
    return out


def sqlite_ddl(engine: Engine) -> list[tuple[str, str, str | None]]:
    """SQLite keeps each object's CREATE statement as written: the strictest comparison there is."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name != ? ORDER BY type, name",
            (schema.VERSION_TABLE,)).all()


def assert_audit_append_only(engine: Engine) -> None:
    audit = models.AuditEntry.__table__
    with engine.begin() as conn:  # the triggers are per row: give them one
        conn.execute(sa.insert(audit).values(at=T0, actor="admin", action="test.append"))
    for stmt in (sa.update(audit).values(actor="someone else"), sa.delete(audit)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            with engine.begin() as conn:
                conn.execute(stmt)


# ------------------------------------------------------------------------------------------ (a)


def test_0_1_0_ledger_upgrades_with_its_data(engine: Engine, ledger_url: str) -> None:
    make_0_1_0_ledger(engine)
    before_rows = dump_rows(engine, release_0_1_0().Base.metadata)
    assert schema.current(engine) == schema.UNVERSIONED

    assert schema.upgrade(engine) == (schema.UNVERSIONED, schema.head())

    assert schema.current(engine) == schema.head()
    after_rows = dump_rows(engine, models.Base.metadata)  # read with today's models
    for table, rows in after_rows.items():
        if table not in before_rows:  # a table added since 0.1.0 starts empty
            assert rows == [], table
            continue
        if table == "deliveries":
            assert {r.pop("withdrawal") for r in rows} == {None}
            assert {r.pop("sms_group") for r in rows} == {None}
            # No claim of 0.1.0 had a lease (nodes_1): settled at the first start, as 0.1.0 did.
            assert {(r.pop("claimed_by"), r.pop("lease_until")) for r in rows} == {(None, None)}
            # Old SMS were free text (cnsms_1): no registered template, no values.
            assert {(r.pop("sms_template"), r.pop("sms_values")) for r in rows} == {(None, None)}
        if table == "api_tokens":  # 0.1.0's tokens act for no console user (security_1), never expire (security_2)
            assert {r.pop("user") for r in rows} == {None}
            assert {r.pop("expires_at") for r in rows} == {None}
        assert rows == before_rows[table], table
    assert sum(len(r) for r in after_rows.values()) == 22
    cols = {c["name"]: c for c in sa.inspect(engine).get_columns("deliveries")}
    assert cols["withdrawal"]["nullable"] and "VARCHAR(10)" in str(cols["withdrawal"]["type"])
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("deliveries")}
    assert "ix_deliveries_withdrawal" in indexes
    assert_audit_append_only(engine)

    with Session(engine) as s, s.begin():
        # History reads back through today's ORM, aware and in UTC.
        auto = s.scalars(sa.select(models.Alert).where(models.Alert.kind == "auto")).one()
        assert auto.created_at == T0 and auto.villages == ["dongcun", "xicun"]
        auto_id = auto.id
        states = {d.target: d.state for d in s.scalars(sa.select(models.Delivery))}
        assert states["+8613800138000"] == "delivered" and states["dongcun-room"] == "played"
        # New rows use the new column, and PostgreSQL's id sequences carry on after the old rows.
        last_id = s.scalar(sa.select(sa.func.max(models.AuditEntry.id)))
        entry = models.AuditEntry(at=T0 + timedelta(hours=5), actor="admin", action="db.upgrade")
        s.add(entry)
        s.flush()
        assert entry.id == last_id + 1
        d = s.scalars(sa.select(models.Delivery).where(models.Delivery.state == "pending")).one()
        d.withdrawal = "pending"

    # The same night is not alerted again: the dedupe key and the per-delivery uniqueness survived.
    from broadcaster.ledger import Ledger

    lg = Ledger(ledger_url)
    try:
        alert_id, created = lg.create_alert(models.Alert(
            kind="auto", dedupe_key=f"auto:XX镇:{NIGHT.isoformat()}:4", region="XX镇", night=NIGHT,
            level=4, rules=["warn"], status="dispatching", created_at=T0 + timedelta(hours=6)), [])
        assert (alert_id, created) == (auto_id, False)
    finally:
        lg.close()
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            row = dict(after_rows["deliveries"][0])
            del row["id"]
            conn.execute(sa.insert(models.Delivery.__table__).values(**row))


def test_upgrade_from_a_ledger_style_sqlite_engine(tmp_path: Path) -> None:
    """The Ledger's engines begin their own transactions (BEGIN IMMEDIATE) and turn foreign keys on:
    upgrade takes over the transaction and hands the connection back as it found it."""
    eng = ledger_style_sqlite_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    make_0_1_0_ledger(eng)
    assert schema.upgrade(eng) == (schema.UNVERSIONED, schema.head())
    with eng.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw.isolation_level is None
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    assert schema.current(eng) == schema.head()
    eng.dispose()


def test_failed_upgrade_leaves_the_ledger_as_it_was(engine: Engine) -> None:
    """Stamp and migrations are one transaction: a failure half-way (here 0002's index, whose name
    is taken) leaves an unversioned 0.1.0 ledger without the new column."""
    make_0_1_0_ledger(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE INDEX ix_deliveries_withdrawal ON readings (night)"))
    rows = dump_rows(engine, release_0_1_0().Base.metadata)
    with pytest.raises(sa.exc.DBAPIError):
        schema.upgrade(engine)
    assert schema.current(engine) == schema.UNVERSIONED
    assert schema.VERSION_TABLE not in sa.inspect(engine).get_table_names()
    assert "withdrawal" not in {c["name"] for c in sa.inspect(engine).get_columns("deliveries")}
    assert dump_rows(engine, release_0_1_0().Base.metadata) == rows


def test_unversioned_development_ledger_is_stamped_at_0002(engine: Engine) -> None:
    """Builds between 0.1.0 and migrations made deliveries.withdrawal with create_all."""
    release_0_1_0().Base.metadata.create_all(engine)
    with engine.begin() as conn:  # what those builds' create_all added to the 0.1.0 schema
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN withdrawal VARCHAR(10)"))
        conn.execute(sa.text("CREATE INDEX ix_deliveries_withdrawal ON deliveries (withdrawal, due_at)"))
    assert schema.current(engine) == schema.UNVERSIONED
    assert schema.upgrade(engine) == (schema.UNVERSIONED, schema.head())
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == schema.head()


# ------------------------------------------------------------------------------------------ (b)


def test_revision_0001_is_exactly_release_0_1_0(engine: Engine, ledger_url: str,
                                                tmp_path: Path) -> None:
    """0001 makes what ``create_all`` of 0.1.0 made: same tables, column order, names, triggers."""
    assert schema.upgrade(engine, to="0001") == (None, "0001")
    with scratch_engine(ledger_url, tmp_path) as reference:
        release_0_1_0().Base.metadata.create_all(reference)
        assert snapshot(engine, ordered=True) == snapshot(reference, ordered=True)
        if engine.dialect.name == "sqlite":
            assert sqlite_ddl(engine) == sqlite_ddl(reference)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), release_0_1_0().Base.metadata)
    assert diff == []


@pytest.mark.parametrize("start", ["empty", "0.1.0"])
def test_migrated_schema_matches_models(engine: Engine, ledger_url: str, tmp_path: Path,
                                        start: str) -> None:
    """The guard: migrations at head make the schema that today's models declare.

    Fails when ``broadcaster/ledger/models.py`` changed without a migration, printing the ``op.*``
    calls to put into a new ``versions/000N_name.py`` (docs/migrations.md).
    """
    if start == "0.1.0":
        make_0_1_0_ledger(engine)
    schema.upgrade(engine)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, models.Base.metadata)
        missing = render_python_code(produce_migrations(ctx, models.Base.metadata).upgrade_ops,
                                     render_as_batch=conn.dialect.name == "sqlite") if diff else ""
    assert diff == [], (f"the models differ from the migrated schema: write a migration "
                        f"(docs/migrations.md).\n{pformat(diff)}\nSuggested upgrade():\n{missing}")
    # What compare_metadata does not look at: constraint names, triggers, functions, sequences.
    with scratch_engine(ledger_url, tmp_path) as reference:
        models.Base.metadata.create_all(reference)
        assert snapshot(engine) == snapshot(reference)


def test_downgrade_to_0001_gives_release_0_1_0_back(engine: Engine) -> None:
    """Downgrades are for developers (operators restore a backup), but they must be right too."""
    schema.upgrade(engine)
    with engine.begin() as conn:
        command.downgrade(schema.alembic_config(conn), "0001")
    assert schema.current(engine) == "0001"
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn)
        assert compare_metadata(ctx, release_0_1_0().Base.metadata) == []
    assert_audit_append_only(engine)


# ------------------------------------------------------------------------------------------ (c)


def test_ensure_current_creates_an_empty_database_at_head(engine: Engine) -> None:
    assert schema.current(engine) is None
    schema.ensure_current(engine, create_if_empty=True)
    assert schema.current(engine) == schema.head()
    assert set(sa.inspect(engine).get_table_names()) >= schema.TABLES_0_1_0
    assert_audit_append_only(engine)
    schema.ensure_current(engine, create_if_empty=False)  # at head: nothing to say


def test_ensure_current_without_create_refuses_an_empty_database(engine: Engine) -> None:
    with pytest.raises(schema.SchemaOutOfDate, match="broadcaster db upgrade") as info:
        schema.ensure_current(engine, create_if_empty=False)
    assert info.value.current is None and sa.inspect(engine).get_table_names() == []


def test_ensure_current_refuses_a_0_1_0_ledger_and_names_the_command(engine: Engine) -> None:
    make_0_1_0_ledger(engine)
    with pytest.raises(schema.SchemaOutOfDate) as info:
        schema.ensure_current(engine, create_if_empty=True)  # never migrates data by itself
    message = str(info.value)
    assert message.startswith("账本数据库结构版本过旧")
    assert "`broadcaster db upgrade`" in message
    assert schema.UNVERSIONED in message and schema.head() in message
    assert (info.value.current, info.value.head) == (schema.UNVERSIONED, schema.head())
    assert isinstance(info.value, schema.BroadcasterError)
    assert schema.current(engine) == schema.UNVERSIONED  # untouched


def test_ensure_current_refuses_an_older_revision(engine: Engine) -> None:
    schema.upgrade(engine, to="0001")
    with pytest.raises(schema.SchemaOutOfDate, match="当前 0001"):
        schema.ensure_current(engine, create_if_empty=True)


def test_a_newer_schema_is_refused_by_run_and_by_upgrade(engine: Engine) -> None:
    schema.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = '0099'"))
    for call in (lambda: schema.ensure_current(engine, create_if_empty=True),
                 lambda: schema.upgrade(engine)):
        with pytest.raises(schema.SchemaTooNew, match="升级本机的 broadcaster") as info:
            call()
        assert info.value.current == "0099"


def test_a_partial_ledger_is_not_touched(engine: Engine) -> None:
    release_0_1_0().ReadingRow.__table__.create(engine)
    with pytest.raises(schema.SchemaUnrecognised, match="deliveries"):
        schema.upgrade(engine)
    assert sa.inspect(engine).get_table_names() == ["readings"]


def test_unrelated_tables_do_not_make_a_ledger(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)"))
    assert schema.current(engine) is None
    assert schema.upgrade(engine) == (None, schema.head())


# ------------------------------------------------------------------------------------------ (d)


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    make_0_1_0_ledger(engine)
    schema.upgrade(engine)
    schema_before = snapshot(engine, ordered=True)
    rows_before = dump_rows(engine, models.Base.metadata)
    assert schema.upgrade(engine) == (schema.head(), schema.head())
    assert snapshot(engine, ordered=True) == schema_before
    assert dump_rows(engine, models.Base.metadata) == rows_before


# ------------------------------------------------------------------------------------------ (e)


@pytest.mark.parametrize("call", ["upgrade", "ensure_current"])
def test_concurrent_upgrades_migrate_once(ledger_url: str, call: str) -> None:
    """Several nodes starting at once on one database: all succeed, exactly one migrates."""
    n = 4
    engines = [make_engine(ledger_url) for _ in range(n)]
    if call == "upgrade":
        make_0_1_0_ledger(engines[0])
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def node(i: int) -> None:
        barrier.wait()
        try:
            if call == "upgrade":
                results[i] = schema.upgrade(engines[i])
            else:
                schema.ensure_current(engines[i], create_if_empty=True)
                results[i] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=node, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        if call == "upgrade":
            head = schema.head()
            assert sorted(results, key=str) == sorted(
                [(schema.UNVERSIONED, head)] + [(head, head)] * (n - 1), key=str), results
        else:
            assert results == ["ok"] * n, results
        assert schema.current(engines[0]) == schema.head()
        with engines[0].connect() as conn:
            count = sa.text(f"SELECT count(*) FROM {schema.VERSION_TABLE}")
            assert conn.execute(count).scalar() == 1
    finally:
        for e in engines:
            e.dispose()


def test_upgrade_waits_for_the_migration_lock(engine: Engine) -> None:
    """Deterministic counterpart of the race above: while another holds the lock, upgrade waits."""
    holder = engine.connect()
    if engine.dialect.name == "sqlite":
        holder.connection.dbapi_connection.isolation_level = None
        holder.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        holder.begin()
        holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": schema.PG_LOCK_KEY})
    outcome: list[Any] = []
    worker = threading.Thread(target=lambda: outcome.append(schema.upgrade(engine)))
    worker.start()
    time.sleep(1.0)
    assert worker.is_alive() and outcome == []
    onlooker = make_engine(engine.url.render_as_string(hide_password=False))
    assert sa.inspect(onlooker).get_table_names() == []  # nothing half-made meanwhile
    onlooker.dispose()
    if engine.dialect.name == "sqlite":
        holder.exec_driver_sql("COMMIT")
    else:
        holder.commit()
    holder.close()
    worker.join(30)
    assert outcome == [(None, schema.head())]
