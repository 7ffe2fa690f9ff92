"""``broadcaster db upgrade`` (DESIGN A15): bring the ledger's schema up to date, with its data."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from broadcaster.cli.common import EXIT_OK, load


def cmd_db(args: argparse.Namespace) -> int:
    """Back up first (SQLite: copy the file; PostgreSQL: pg_dump): see docs/migrations.md."""
    from broadcaster.ledger import upgrade_schema

    cfg = load(args)
    before, after = upgrade_schema(cfg.database_url)
    if before == after:
        print(f"账本结构已是最新（{after}）/ the ledger's schema is up to date ({after})")
    else:
        print(f"账本结构已从 {before or '空'} 升级到 {after} / ledger schema upgraded from {before or 'empty'} to {after}")
    return EXIT_OK


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``broadcaster db upgrade``."""
    sp = add("db", cmd_db, "the ledger's schema: `db upgrade` brings it up to date (A15)")
    sp.add_argument("action", choices=["upgrade"], help="upgrade: apply the migrations this release has")
