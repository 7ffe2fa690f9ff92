"""Shared fixtures: a private copy of the shipped configuration, clocks, ledgers."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from tests.support import clock, procs
from tests.support.service import MakeService, ServiceFactory

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
PG_URL = os.environ.get("BROADCASTER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pytest_configure(config: pytest.Config) -> None:
    """``BROADCASTER_TEST_AT=HH:MM`` runs the session (and every process it starts) at that hour
    of the town's day, on today's date; ``.ci/run`` runs the clock-sensitive tests at four hours."""
    config.addinivalue_line("markers", "clock: depends on the hour of the town's day; .ci/run runs "
                            "these at 03:00, 10:00, 19:29 and 23:00 Asia/Shanghai")
    config.addinivalue_line("markers", "serial: measures time or CPU of a running service; `make test` "
                            "runs these alone, after the rest has run on every core (pytest-xdist)")
    spec = os.environ.get(clock.HOUR_ENV)
    if spec and not os.environ.get(clock.FAKE_ENV):
        when = clock.town_time(spec)
        os.environ.update(clock.env_at(when))
        clock.travel(when)


#: Tests whose assertion is a measurement of time or CPU, or that need a send to be still running
#: when they act (two nodes failing over): another test on the other core would make
#: them fail without a fault of theirs, so `make test` runs them alone (marker ``serial``).
SERIAL = {"test_idle.py", "test_nodes.py", "test_security_flood.py", "test_security_slow.py"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SERIAL or item.get_closest_marker("serial"):
            item.add_marker(pytest.mark.serial)


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Whatever happens in a test (a failed assertion half-way), the processes it started end with it."""
    yield
    procs.reap()


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


@pytest.fixture
def confdir(tmp_path: Path) -> Path:
    """A copy of config/ and audio/ in tmp_path; edit the YAML there freely."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    shutil.copytree(ROOT / "audio", tmp_path / "audio")
    # The demo's built-in agent plays only inside `broadcaster run`; in-process tests would see its
    # plays stay pending, so tests start from the three folder endpoints and add agents themselves.
    edit_yaml(tmp_path / "config" / "directory.yaml", lambda d: [
        v.update(speakers=[sc for sc in v["speakers"] if not sc.get("builtin")]) for v in d["villages"]])
    return tmp_path / "config"


@pytest.fixture
def make_service(confdir: Path) -> Iterator[MakeService]:
    """Build services on this test's copy of the configuration (``make_service(at=local(...))``);
    every one is closed when the test ends."""
    factory = ServiceFactory(confdir)
    yield factory
    factory.close()


def edit_yaml(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    fn(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> None:
    """Skip for a missing local service, or fail where CI must run everything
    (``BROADCASTER_REQUIRE_SERVICES=1``, set by ``.ci/run``)."""
    if os.environ.get("BROADCASTER_REQUIRE_SERVICES"):
        pytest.fail(f"{reason} (BROADCASTER_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


def pg_available() -> str | None:
    """The reason PostgreSQL tests are skipped, or None when a server answers."""
    if not port_open("127.0.0.1", 5432):
        return "no PostgreSQL server on 127.0.0.1:5432"
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"))
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
    except Exception as exc:  # noqa: BLE001
        return f"PostgreSQL at {PG_URL} not usable: {exc.__class__.__name__}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty ledger on SQLite and (when reachable) on the local PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    reason = pg_available()
    if reason:
        unavailable(reason)
    import uuid

    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {schema}"))
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{schema}"
    with admin.connect() as c:
        c.execute(sa.text(f"DROP DATABASE IF EXISTS {schema} WITH (FORCE)"))
    admin.dispose()
