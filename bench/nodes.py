"""SMS/s with one and with two ``broadcaster run`` nodes on one PostgreSQL ledger (issue 17).

    .venv/bin/python bench/nodes.py [--n 10000] [--latency-ms 50] [--write]

Each configuration gets a fresh PostgreSQL database and real ``broadcaster run`` processes (the
same code as production: SKIP LOCKED claims, leases, the leader lock), pointed at the Twilio
double in a process of its own (``bench.doubles``). When every node answers ``/healthz``, one
alert with ``--n`` SMS is written to the ledger; the nodes' dispatchers find it on their next
look (at most 2 s) and share it. Measured from the ledger: SMS/s over the dispatch window (first
claim to last ``sent``), each node's share, the nodes' CPU; the double checks that every number
got exactly one message. ``--write`` puts the table into bench/RESULTS.md (between its markers).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python bench/nodes.py` puts bench/ first, not the project root
    sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
import sqlalchemy as sa  # noqa: E402
import yaml  # noqa: E402

from bench.common import FROM, PG_URL, SID, SMS_BODY, TOKEN, _DoubleProcess, free_port, phone, wait_until  # noqa: E402
from broadcaster.ledger import Alert, Ledger, sms_row  # noqa: E402
from tests.support.procs import cpu_seconds  # noqa: E402

BIN = str(Path(sys.executable).with_name("broadcaster"))
START, END = "<!-- nodes:start -->", "<!-- nodes:end -->"


def _database() -> tuple[str, Any]:
    name = f"bench_nodes_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return f"{PG_URL.rsplit('/', 1)[0]}/{name}", drop


def _config(tmp: Path, db: str, twilio_url: str, concurrency: int) -> Path:
    shutil.copytree(ROOT / "config", tmp / "config")
    shutil.copytree(ROOT / "audio", tmp / "audio")
    path = tmp / "config" / "broadcaster.yaml"
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    off = date.today() + timedelta(days=2)  # a season that is not today: no poll alerts during the run
    d.update(database=db,
             schedule={**d["schedule"], "season": {"start": f"{off:%m-%d}", "end": f"{off + timedelta(days=1):%m-%d}"}},
             sms={"provider": "twilio", "rate_per_s": 5000, "concurrency": concurrency,
                  "twilio": {"account_sid": SID, "auth_token": "${TWILIO_AUTH_TOKEN}", "from": FROM,
                             "base_url": twilio_url, "timeout_s": 10}})
    path.write_text(yaml.safe_dump(d, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def one(nodes: int, concurrency: int, n: int, twilio: _DoubleProcess, tmp: Path) -> dict[str, Any]:
    """One configuration: ``nodes`` processes of ``concurrency`` SMS workers each, ``n`` SMS."""
    db, drop = _database()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        conf = _config(tmp, db, twilio.url, concurrency)
        env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        env.pop("BROADCASTER_NODE", None)
        Ledger(db).close()  # create the schema once, before the nodes race for it
        ports = [free_port() for _ in range(nodes)]
        for i, port in enumerate(ports):
            log = (tmp / f"node-{i}.log").open("ab")
            procs.append(subprocess.Popen([BIN, "run", "-c", str(conf), "--listen", f"127.0.0.1:{port}"],
                                          env=env, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        if not wait_until(lambda: all(_healthy(p) for p in ports), 60, 0.2):
            raise RuntimeError("the nodes did not start: " + (tmp / "node-0.log").read_text()[-2000:])
        twilio.command("clear")
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        load0 = os.getloadavg()[0]
        now = datetime.now(timezone.utc)
        lg = Ledger(db)
        rows = (sms_row(phone=phone(i), name=None, village_id=None, body=SMS_BODY, kind="twilio",
                        due_at=now, expires_at=now + timedelta(hours=2), now=now) for i in range(n))
        t0 = time.monotonic()
        lg.create_alert(Alert(kind="manual", dedupe_key=f"bench:{uuid.uuid4().hex}", region="XX镇", rules=[],
                              status="scheduled", created_at=now, created_by="bench"), rows)
        sent = "SELECT count(*) FROM deliveries WHERE state = 'sent'"
        with lg.engine.connect() as c:
            done = wait_until(lambda: c.execute(sa.text(sent)).scalar_one() >= n, 120, 0.25)
            wall = time.monotonic() - t0
            first, last = c.execute(sa.text("SELECT min(claimed_at), max(sent_at) FROM deliveries")).one()
            share = dict(c.execute(sa.text("SELECT claimed_by, count(*) FROM deliveries GROUP BY 1")).all())  # type: ignore[arg-type]
            states = [tuple(r) for r in c.execute(sa.text(
                "SELECT state, claimed_by, count(*) FROM deliveries GROUP BY 1, 2 ORDER BY 1, 2")).all()]
        cpu = [round(cpu_seconds(p.pid) - c0, 1) for p, c0 in zip(procs, cpu0)]
        if not done:  # keep the nodes' logs for a look
            kept = Path(tempfile.mkdtemp(prefix="bench-nodes-failed-"))
            for f in tmp.glob("node-*.log"):
                shutil.copy(f, kept / f.name)
            print(f"not all sent: {states}; logs in {kept}", file=sys.stderr, flush=True)
        lg.close()
        stats = twilio.command("stats")
        window = (last - first).total_seconds()
        return {"nodes": nodes, "concurrency": concurrency, "n": n, "done": done, "wall_s": round(wall, 2),
                "window_s": round(window, 2), "sms_per_s": round(n / window) if window else 0,
                "share": sorted(share.values(), reverse=True), "node_cpu_s": cpu,
                "double_cpu_s": stats["double_cpu_s"], "messages": stats["twilio_messages"],
                "distinct": stats["twilio_distinct_to"], "max_per_to": stats["twilio_max_per_to"],
                "load": (round(load0, 2), round(os.getloadavg()[0], 2))}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        drop()


def table(results: list[dict[str, Any]], latency: float) -> str:
    head = ("| nodes | SMS workers per node | SMS | SMS/s | dispatch window (s) | insert → all sent (s) "
            "| share per node | nodes' CPU (s) | double CPU (s) | exactly once | load 1-min |\n"
            "|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|\n")
    lines = [f"| {r['nodes']} | {r['concurrency']} | {r['n']:,} | **{r['sms_per_s']:,}** | {r['window_s']} "
             f"| {r['wall_s']} | {' / '.join(f'{s:,}' for s in r['share'])} | {' + '.join(map(str, r['node_cpu_s']))} "
             f"| {r['double_cpu_s']} | {'yes' if r['max_per_to'] == 1 and r['distinct'] == r['n'] else 'NO'} "
             f"| {r['load'][0]} → {r['load'][1]} |" for r in results]
    return head + "\n".join(lines) + f"\n\nTwilio double at {latency:g} ms, PostgreSQL ledger, `sms.rate_per_s` 5000.\n"


NOTES = """\
What the table says, and what limits it on this machine:

- **At equal total workers two nodes are not faster than one** (2 × 32 against 1 × 64): 592 and
  561 SMS/s in the run above, 581 and 591 in an earlier one (2026-12-01, load 5-7). Where two
  nodes of 32 beat one of 32, it is mostly the doubled concurrency against a 50 ms provider.
  2 × 64 gave 832 above but 615 in the earlier run: on this shared VM (other sessions' test suites
  kept the load at 5-9 on 2 cores) a second process sometimes gets CPU time that one does not.
  Reproducible gains need cores of their own.
- **CPU is the limit.** Every SMS costs the sending node 1.0-1.5 ms of CPU (the twilio SDK and
  requests building and parsing the HTTP exchange, the ledger's claim and result writes) and the
  double about 0.3 ms; PostgreSQL takes its share of the same two cores, and other sessions' test
  suites ran meanwhile (the load column: 5 to 9 on 2 cores). Two processes can use both cores
  where one Python process is held to about one by its GIL, but the cores are already busy.
- **The database is not the limit.** Claims use `FOR UPDATE SKIP LOCKED`, so the nodes never wait
  for each other's rows (the shares are even); a lease renewal is one UPDATE per node every 5 s.
- **What would scale it:** nodes on separate machines (each brings its own cores: one node
  reached 710 SMS/s on PostgreSQL in the fan-out table above, on a quieter machine); more
  workers per node while the provider's latency, not the CPU, is what waits; fewer, larger
  requests (a provider's batch API: one request for many numbers); and the provider's own rate
  limit, which in production (Twilio: per sender, or a Messaging Service) is reached long before
  any of these.
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--latency-ms", type=float, default=50)
    p.add_argument("--runs", default="1x32,2x32,1x64", help="NODESxWORKERS, comma-separated")
    p.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    a = p.parse_args(argv)
    results = []
    twilio = _DoubleProcess("twilio", a.latency_ms)
    try:
        for spec in a.runs.split(","):
            nodes, workers = (int(x) for x in spec.split("x"))
            with tempfile.TemporaryDirectory(prefix="bench-nodes-") as tmp:
                r = one(nodes, workers, a.n, twilio, Path(tmp))
            print(r, file=sys.stderr, flush=True)
            results.append(r)
    finally:
        twilio.close()
    text = table(results, a.latency_ms)
    print(text)
    if a.write:
        path = ROOT / "bench" / "RESULTS.md"
        old = path.read_text(encoding="utf-8")
        section = (f"{START}\n## Several nodes (issue 17)\n\n`python bench/nodes.py --write` "
                   f"(measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPUs):\n\n"
                   f"{text}\n{NOTES}{END}")
        if START in old:
            old = old[:old.index(START)] + section + old[old.index(END) + len(END):]
        else:
            old = old.rstrip("\n") + "\n\n" + section + "\n"
        path.write_text(old, encoding="utf-8")
    return 0 if all(r["done"] and r["max_per_to"] == 1 and r["distinct"] == r["n"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
