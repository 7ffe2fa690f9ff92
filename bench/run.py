"""Run the benchmarks of issue 7 and print (or write) the results table.

    python bench/run.py                 # the issue's scenarios (what `make bench` runs), ~4 min
    python bench/run.py --quick         # small sizes, ~1 min: does everything still work?
    python bench/run.py --only fanout,baselines --latency-ms 50 --repeat 3 --write

Scenarios (``--only``): ``fanout`` (N SMS through the twilio provider + M http speakers, real
ledger and dispatcher), ``baselines`` (pooled requests client, naive SDK loop, apprise),
``memory`` (the fan-out at N=100,000 for peak RSS), ``audio``, ``startup``. Every measured
scenario is a process of its own; the doubles are another one (``bench/doubles.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, Doubles, run_scenario
from bench.report import render, verify

ALL = ("fanout", "baselines", "memory", "audio", "startup")


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _measured(doubles: Doubles, module: str, args: list[str], log: Path) -> dict[str, Any]:
    """One scenario run against freshly cleared doubles, with what they saw and the load."""
    doubles.clear()
    load0 = _load()
    result = run_scenario(module, args, log=log)
    result["doubles"] = doubles.stats()
    result["load"] = [load0, _load()]
    return result


def _median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run with the median ``key`` (a real run, not a mix of several)."""
    ordered = sorted(runs, key=lambda r: r[key])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["all_runs"] = [r[key] for r in runs]
    return chosen


def fanout_and_baselines(a: argparse.Namespace, only: set[str], log: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    common = ["--concurrency", str(a.concurrency)]
    for latency in a.latency_ms:
        with Doubles(latency) as d:
            urls = ["--twilio-url", d.twilio_url]
            for _ in range(a.repeat):  # interleaved, so that load drift hits both alike
                if "fanout" in only:
                    for db in (["sqlite", "postgresql"] if a.pg else ["sqlite"]):
                        extra = ["--pg"] if db == "postgresql" else []
                        r = _measured(d, "fanout", [*urls, "--speaker-url", d.speaker_url, "--n", str(a.n),
                                                    "--m", str(a.m), "--rate", str(a.rate), *common, *extra], log)
                        rows.append({"scenario": "fanout", "latency_ms": latency, **r})
                    if a.m and latency == a.latency_ms[-1]:
                        # Without the speakers: the receiver double's parsing of M uploads
                        # (~14 ms CPU each) no longer competes with the client for the 2 cores.
                        r = _measured(d, "fanout", [*urls, "--speaker-url", d.speaker_url, "--n", str(a.n),
                                                    "--m", "0", "--rate", str(a.rate), *common], log)
                        rows.append({"scenario": "fanout-sms", "latency_ms": latency, **r})
                if "baselines" in only:
                    r = _measured(d, "baselines", ["pooled", *urls, "--n", str(a.n), *common], log)
                    rows.append({"scenario": "pooled", "latency_ms": latency, **r})
            if "baselines" in only:
                r = _measured(d, "baselines", ["naive", *urls, "--n", str(a.naive_n)], log)
                rows.append({"scenario": "naive", "latency_ms": latency, **r})
                if latency == a.latency_ms[-1]:  # slow by design (5 messages/s): once is enough
                    rows.append(_apprise(d, urls, a, log, latency))
    # One row per (scenario, latency, db): the median run by throughput.
    grouped: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        grouped.setdefault((r["scenario"], r["latency_ms"], r.get("db")), []).append(r)
    return [_median_run(g, "sms_per_s") if "sms_per_s" in g[0] else g[0] for g in grouped.values()]


def _apprise(d: Doubles, urls: list[str], a: argparse.Namespace, log: Path, latency: float) -> dict[str, Any]:
    from bench.baselines import apprise_verdict

    row: dict[str, Any] = {"scenario": "apprise", "latency_ms": latency, "verdict": apprise_verdict()}
    if importlib.util.find_spec("apprise") is None:
        row["skipped"] = "apprise is not installed (pip install apprise, or pip install -e '.[bench]')"
        return row
    row.update(_measured(d, "baselines", ["apprise", *urls, "--n", str(a.apprise_n)], log))
    return row


def memory(a: argparse.Namespace, log: Path) -> dict[str, Any]:
    with Doubles(0) as d:
        r = _measured(d, "fanout", ["--twilio-url", d.twilio_url, "--speaker-url", d.speaker_url,
                                    "--n", str(a.memory_n), "--m", str(a.m), "--rate", str(a.rate),
                                    "--concurrency", str(a.concurrency)], log)
    return {"scenario": "memory", "latency_ms": 0, **r}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every scenario")
    p.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {','.join(ALL)}")
    p.add_argument("--n", type=int, help="SMS recipients in the fan-out (default 10000; quick 2000)")
    p.add_argument("--m", type=int, help="http speakers in the fan-out (default 300; quick 50)")
    p.add_argument("--latency-ms", help="comma-separated double latencies (default 0,50)")
    p.add_argument("--concurrency", type=int, default=64, help="sms.concurrency, and the baselines' pool")
    p.add_argument("--rate", type=float, default=5000, help="sms.rate_per_s (high: the limit is not measured)")
    p.add_argument("--memory-n", type=int, help="recipients of the peak-RSS run (default 100000; quick 20000)")
    p.add_argument("--naive-n", type=int, help="messages timed for the naive SDK loop (default 200)")
    p.add_argument("--apprise-n", type=int, default=20, help="messages sent through apprise (patched)")
    p.add_argument("--repeat", type=int, default=1, help="fan-out/pooled runs per latency (median reported)")
    p.add_argument("--pg", action="store_true", help="also run the fan-out on PostgreSQL (127.0.0.1:5432/test)")
    p.add_argument("--write", action="store_true", help="write bench/RESULTS.md")
    a = p.parse_args(argv)
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    if only - set(ALL):
        p.error(f"unknown scenario(s): {sorted(only - set(ALL))}")
    a.n = a.n or (2000 if a.quick else 10_000)
    a.m = a.m if a.m is not None else (50 if a.quick else 300)
    a.memory_n = a.memory_n or (20_000 if a.quick else 100_000)
    a.naive_n = a.naive_n or (50 if a.quick else 200)
    a.latency_ms = [float(x) for x in (a.latency_ms or "0,50").split(",")]
    log = Path(tempfile.gettempdir()) / "broadcaster-bench.log"  # the scenarios' stderr (service logs)
    log.write_bytes(b"")
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S %Z"), time.perf_counter()
    results: dict[str, Any] = {"rows": [], "load_start": os.getloadavg()}
    steps = [("fanout/baselines", lambda: results["rows"].extend(fanout_and_baselines(a, only, log)))
             if only & {"fanout", "baselines"} else None,
             ("memory", lambda: results["rows"].append(memory(a, log))) if "memory" in only else None,
             ("audio", lambda: results.__setitem__("audio", run_scenario(
                 "audio", ["--runs", "2" if a.quick else "5"], log=log))) if "audio" in only else None,
             ("startup", lambda: results.__setitem__("startup", run_scenario(
                 "startup", ["--check-runs", "3" if a.quick else "7", "--run-runs", "1" if a.quick else "3"],
                 log=log))) if "startup" in only else None]
    for step in filter(None, steps):
        print(f"[{time.perf_counter() - t0:6.1f} s] {step[0]} ...", file=sys.stderr, flush=True)
        step[1]()
    results["load_end"] = os.getloadavg()
    results["runtime_s"] = round(time.perf_counter() - t0, 1)
    problems = verify(results)
    command = "python bench/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(results, a, command.strip(), started, problems)
    print(text)
    if a.write:
        path = ROOT / "bench" / "RESULTS.md"
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if "<!-- idle:start -->" in old:  # bench/idle.py's section is measured on its own: keep it
            text = text.rstrip("\n") + "\n\n" + old[old.index("<!-- idle:start -->"):]
        path.write_text(text, encoding="utf-8")
        print(f"wrote {ROOT / 'bench' / 'RESULTS.md'}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
