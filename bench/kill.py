"""The kill test at bench size (issue 5): ``python bench/kill.py [--n 2000] [--kills 5]``.

The same scenario as ``tests/test_kill.py``, whose helpers it runs: SMS to every one of ``--n``
recipients through the loopback Twilio double (20 ms latency); ``broadcaster run`` is killed with
SIGKILL at ``--kills`` random moments during dispatch and restarted each time. At the end the
double must have created exactly one message per recipient (0 duplicates, 0 missing) and the
ledger must agree (every SMS ``sent``). Prints one table row per backend; exits 1 on any
duplicate, missing message or ledger disagreement, 2 when a run itself failed (no PostgreSQL,
the service did not start or stop cleanly).

    .venv/bin/python bench/kill.py --backend both --n 2000 --kills 5 --seed 20261128
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/kill.py` puts bench/ first, not the project root
    sys.path.insert(0, str(ROOT))

from tests.conftest import PG_URL, pg_available  # noqa: E402
from tests.test_kill import kill_and_restart, numbers  # noqa: E402


@dataclass
class Row:
    """One backend's outcome, as printed."""

    backend: str
    n: int
    kills: int
    sent: int  # creates the double answered 201
    duplicates: int  # messages beyond the first per recipient (created, answered or not)
    missing: int  # recipients with no message
    ledger_sent: int
    wall_s: float
    error: str | None = None  # why the run itself failed (then the counts mean nothing)
    ledger_states: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return (self.error is None and self.duplicates == 0 and self.missing == 0
                and self.sent == self.n and self.ledger_states == {"sent": self.n})


@contextmanager
def database(backend: str, tmp: Path) -> Iterator[str]:
    """A fresh, empty ledger: a SQLite file in ``tmp`` or a new database on the local PostgreSQL
    (dropped afterwards), like the ``ledger_url`` test fixture."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'ledger.db'}"
        return
    reason = pg_available()
    if reason:
        raise RuntimeError(reason)
    import sqlalchemy as sa

    name = f"bench_kill_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield f"{PG_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def run_backend(backend: str, n: int, kills: int, seed: int, keep: bool) -> Row:
    """The scenario on one backend, in a private copy of config/ and audio/."""
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-kill-{backend}-"))
    shutil.copytree(ROOT / "config", tmp / "config")
    shutil.copytree(ROOT / "audio", tmp / "audio")
    log = tmp / "run.log"
    t0 = time.monotonic()
    try:
        with database(backend, tmp) as url:
            # Sending alone takes n / rate_per_s (100/s) seconds; leave room for restarts on top.
            run = kill_and_restart(tmp / "config", url, log, n, kills, random.Random(seed), settle_s=60 + n / 20)
    except Exception as exc:  # noqa: BLE001 - reported as this backend's row, the other one still runs
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:] if log.exists() else ""
        print(f"{backend}: {type(exc).__name__}: {exc}\n{tail}", file=sys.stderr)
        return Row(backend, n, 0, 0, 0, n, 0, time.monotonic() - t0, f"{type(exc).__name__}: {exc}")
    wall = time.monotonic() - t0
    expected = {f"+86{p}" for p in numbers(n)}
    duplicates = sum(c - 1 for c in run.created.values() if c > 1)
    missing = len(expected - set(run.created))
    row = Row(backend, n, run.kills, sum(run.by_to.values()), duplicates, missing, run.states.get("sent", 0), wall,
              ledger_states=run.states)
    if keep or not row.ok:
        print(f"{backend}: files kept in {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return row


def table(rows: list[Row]) -> str:
    """A small fixed-width result table."""
    head = ("backend", "N", "kills", "sent", "duplicates", "missing", "ledger sent", "wall time")
    body = [(r.backend, str(r.n), str(r.kills), str(r.sent), str(r.duplicates), str(r.missing),
             str(r.ledger_sent), f"{r.wall_s:.1f} s") for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(line, widths)))
             for line in (head, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="SIGKILL `broadcaster run` during an SMS dispatch, restart it, "
                                            "and check every recipient got exactly one message.")
    p.add_argument("--n", type=int, default=2000, help="recipients (default 2000)")
    p.add_argument("--kills", type=int, default=5, help="SIGKILLs during dispatch (default 5)")
    p.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    p.add_argument("--seed", type=int, default=20261128, help="seed of the kill moments")
    p.add_argument("--keep", action="store_true", help="keep the config, ledger and log directory")
    a = p.parse_args(argv)
    backends = ["sqlite", "postgresql"] if a.backend == "both" else [a.backend]
    rows = [run_backend(b, a.n, a.kills, a.seed, a.keep) for b in backends]
    print(table(rows))
    for r in rows:
        if r.error:
            print(f"{r.backend}: run failed: {r.error}")
        elif r.ledger_states != {"sent": r.n}:
            print(f"{r.backend}: ledger disagrees: {r.ledger_states}")
        if r.error is None and r.kills < a.kills:
            print(f"{r.backend}: dispatch finished after {r.kills} of {a.kills} kills")
    if any(r.error for r in rows):
        return 2
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
