"""A ledger made by release 0.1.0, as an operator meets it after installing this release:
``run`` refuses it and names ``broadcaster db upgrade``; after the upgrade the same night is not
alerted again and its history is intact. On SQLite and PostgreSQL. The commands run with their
wall clock at 2026-11-28 18:00 Asia/Shanghai, the evening of the ledger's night."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import sqlalchemy as sa

from tests.conftest import edit_yaml, local
from tests.support.clock import env_at
from tests.support.procs import BIN
from tests.test_migrations import NIGHT, make_0_1_0_ledger, make_engine

AT = local(2026, 11, 28, 18, 0)


def cli(confdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run([BIN, *args, "-c", str(confdir / "broadcaster.yaml")], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env_at(AT)})


def test_run_refuses_a_0_1_0_ledger_until_db_upgrade(confdir: Path, ledger_url: str) -> None:
    engine = make_engine(ledger_url)
    make_0_1_0_ledger(engine)
    with engine.connect() as c:
        alerts_before = c.execute(sa.text("SELECT id, kind, level, dedupe_key FROM alerts ORDER BY id")).all()
        deliveries_before = c.execute(sa.text("SELECT count(*) FROM deliveries")).scalar()
    engine.dispose()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(database=ledger_url))

    refused = cli(confdir, "run")
    assert refused.returncode == 1 and "broadcaster db upgrade" in refused.stderr, refused.stderr
    assert cli(confdir, "poll").returncode == 1  # every command refuses, not only run

    up = cli(confdir, "db", "upgrade")
    assert up.returncode == 0 and "升级" in up.stdout, up.stdout + up.stderr
    again = cli(confdir, "db", "upgrade")
    assert again.returncode == 0 and "最新" in again.stdout

    poll = cli(confdir, "poll", "--json")
    assert poll.returncode == 0, poll.stderr
    report = json.loads(poll.stdout)
    assert report["night"] == NIGHT.isoformat() and report["level"] == 4
    assert report["created"] is False and "already alerted" in report["reason"]
    engine = make_engine(ledger_url)
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT id, kind, level, dedupe_key FROM alerts ORDER BY id")).all() == alerts_before
        assert c.execute(sa.text("SELECT count(*) FROM deliveries")).scalar() == deliveries_before
    engine.dispose()
    status = json.loads(cli(confdir, "status", "--json").stdout)
    assert [a["level"] for a in status["alerts"] if a["kind"] == "auto"] == [4]
