"""Checks and the Markdown report of a benchmark run (``bench/RESULTS.md``)."""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
from importlib import metadata
from typing import Any

from bench.common import ROOT


def verify(results: dict[str, Any]) -> list[str]:
    """Correctness of every run: the double got exactly one message per recipient, the ledger agrees."""
    problems = []
    for r in results["rows"]:
        name = f"{r['scenario']} {r['latency_ms']:g} ms"
        d = r.get("doubles")
        if r.get("skipped") or d is None:
            continue
        if d["internal_errors"]:
            problems.append(f"{name}: the doubles crashed {d['internal_errors']} times")
        if r["scenario"] in ("fanout", "fanout-sms", "memory"):
            n, m = r["n"], r["m"]
            if (d["twilio_messages"], d["twilio_distinct_to"], d["twilio_max_per_to"]) != (n, n, 1 if n else 0):
                problems.append(f"{name}: double has {d['twilio_messages']} messages to {d['twilio_distinct_to']} "
                                f"numbers (max {d['twilio_max_per_to']} each), expected {n} to {n}")
            if d["speaker_plays"] != m or d["speaker_duplicates"]:
                problems.append(f"{name}: receiver stored {d['speaker_plays']} plays "
                                f"({d['speaker_duplicates']} duplicates), expected {m}")
            want = {"sms": {"sent": n} if n else {}, "speaker": {"sent": m} if m else {}}
            if r["counts"] != want:
                problems.append(f"{name}: ledger says {r['counts']}, expected {want}")
        elif r.get("ok") != r.get("n") or d["twilio_messages"] != r.get("n"):
            problems.append(f"{name}: {r.get('ok')} of {r.get('n')} answered 201, double has {d['twilio_messages']}")
    return problems


def machine() -> dict[str, str]:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), platform.processor())
    with open("/proc/meminfo", encoding="utf-8") as fh:
        mem_kb = next(int(ln.split()[1]) for ln in fh if ln.startswith("MemTotal"))
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("twilio", "requests", "SQLAlchemy", "psycopg"))
    return {"cpus (nproc)": str(os.cpu_count()), "cpu": cpu, "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
            "python": platform.python_version(), "os": platform.platform(), "sqlite": sqlite3.sqlite_version,
            "libraries": versions}


def _row(rows: list[dict[str, Any]], scenario: str, latency: float, db: str | None = "sqlite") -> dict[str, Any] | None:
    for r in rows:
        same_db = db is None or r.get("db", "sqlite") == db
        if r["scenario"] == scenario and r["latency_ms"] == latency and same_db and not r.get("skipped"):
            return r
    return None


_TABLE_NOTE = (
    "All final = from the start of `create_alert` (rows streamed into the ledger) until the ledger shows every "
    "delivery final; SMS/s = N / (time until the last SMS is final). Client CPU = user + system seconds of the "
    "measured process over that interval; doubles CPU = the Twilio double's process + the receiver's. Every run is "
    "checked: the double created exactly one message per number, the receiver stored one play per speaker, and "
    "the ledger shows all of them `sent`.")


def _doubles_cpu(d: dict[str, Any]) -> str:
    """The doubles' CPU: Twilio + receiver when the receiver had work."""
    if d.get("speaker_requests"):
        return f"{d['twilio_cpu_s']:.2f} + {d['speaker_cpu_s']:.2f}"
    return _fmt(d.get("twilio_cpu_s", d.get("double_cpu_s")), 2)


def _loads(x: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.2f}" for v in x)


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "–"
    return f"{x:,.{nd}f}" if isinstance(x, float) else f"{x:,}" if isinstance(x, int) else str(x)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    out = [("| scenario | latency | SMS | speakers | ledger | all final (s) | SMS/s | client CPU (s) | "
            "CPU ms/SMS | doubles CPU (s) | peak RSS (MB) | ledger writes/s | runs (SMS/s) | load 1-min |"),
           "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    label = {"fanout": "**broadcaster** (twilio SDK + ledger + dispatcher)", "memory": "**broadcaster**, N=100k",
             "fanout-sms": "**broadcaster**, SMS only (M=0)",
             "pooled": "(a) pooled requests client, no ledger", "naive": "(b) naive SDK loop",
             "apprise": "(c) apprise Twilio (patched, see notes)"}
    for r in rows:
        if r.get("skipped"):
            out.append(f"| {label[r['scenario']]} | {r['latency_ms']:g} ms | – | – | – | – | – | – | – | – | – | – | "
                       f"skipped: {r['skipped']} | – |")
            continue
        n, d = r["n"], r.get("doubles", {})
        per = 1000 * r["cpu_s"] / n if n else None
        all_final = r.get("total_s")
        runs = ", ".join(f"{x:,.0f}" for x in r.get("all_runs", []))
        out.append(
            f"| {label[r['scenario']]} | {r['latency_ms']:g} ms | {n:,} | {r.get('m', 0):,} | {r.get('db', '–')} | "
            f"{_fmt(all_final, 2)} | {_fmt(r['sms_per_s'], 0)} | {_fmt(r['cpu_s'], 2)} | {_fmt(per, 2)} | "
            f"{_doubles_cpu(d)} | {_fmt(r['peak_rss_mb'], 0)} | {_fmt(r.get('ledger_writes_per_s'))} | "
            f"{runs or '–'} | {r['load'][0]:.2f} → {r['load'][1]:.2f} |")
    return out


def targets(res: dict[str, Any]) -> list[tuple[str, str, bool | None, str]]:
    """(target, measured, met?, margin) for each target of the issue."""
    rows = res["rows"]
    f50, a50, b50 = _row(rows, "fanout", 50), _row(rows, "pooled", 50, None), _row(rows, "naive", 50, None)
    if f50 and (f50["n"], f50["m"]) != (10_000, 300):
        f50 = None  # a --quick or custom-size run: not comparable with the targets
    mem, audio, st = _row(rows, "memory", 0), res.get("audio", {}).get("30s"), res.get("startup")
    out: list[tuple[str, str, bool | None, str]] = []

    def add(name: str, value: float | None, limit: float, unit: str, higher: bool, nd: int = 2) -> None:
        if value is None:
            out.append((name, "not run", None, ""))
            return
        met = value >= limit if higher else value <= limit
        margin = (value - limit) if higher else (limit - value)
        out.append((name, f"{value:,.{nd}f} {unit}", met,
                    f"{margin:+,.{nd}f} {unit} ({100 * margin / limit:+.0f}% of the target)"))

    add("50 ms, N=10,000, M=300: every delivery final in ≤ 15 s", f50 and f50["total_s"], 15, "s", False)
    add("≥ 800 SMS/s sustained (50 ms)", f50 and f50["sms_per_s"], 800, "SMS/s", True, 0)
    add("≥ 80% of baseline (a) at the same concurrency, ledger included",
        f50 and a50 and 100 * f50["sms_per_s"] / a50["sms_per_s"], 80, "%", True, 0)
    add("≥ 40× baseline (b)", f50 and b50 and f50["sms_per_s"] / b50["sms_per_s"], 40, "×", True, 1)
    add("peak RSS ≤ 250 MB at N=100,000", mem and mem["n"] >= 100_000 and mem["peak_rss_mb"] or None, 250, "MB",
        False, 0)
    add("audio cold ≤ 0.01 × real time (first render in a fresh process)", audio and audio["rtf_first"], 0.01, "",
        False, 4)
    add("audio cold ≤ 0.01 × real time (median, warm process)", audio and audio["rtf"], 0.01, "", False, 4)
    add("audio cached ≤ 20 ms", audio and audio["cached_ms"], 20, "ms", False)
    add("`broadcaster check` ≤ 1.5 s (median)", st and st["check_median_s"], 1.5, "s", False)
    add("`broadcaster run` → 200 from /healthz ≤ 5 s (median)", st and st["run_ready_median_s"], 5, "s", False)
    return out


def render(res: dict[str, Any], a: argparse.Namespace, command: str, started: str, problems: list[str]) -> str:
    rows = res["rows"]
    tg = targets(res)
    met = [t for t in tg if t[2] is True]
    missed = [t for t in tg if t[2] is False]
    f50, a50 = _row(rows, "fanout", 50), _row(rows, "pooled", 50, None)
    lines = ["# Benchmark results", "", "## Summary", ""]
    if f50 and a50:
        lines.append(f"- Fan-out, 50 ms Twilio double, {f50['n']:,} SMS + {f50['m']} http speakers, SQLite ledger: "
                     f"all final in **{f50['total_s']:.1f} s**, **{f50['sms_per_s']:,.0f} SMS/s** = "
                     f"{100 * f50['sms_per_s'] / a50['sms_per_s']:.0f}% of a bare pooled `requests` client "
                     f"({a50['sms_per_s']:,.0f}/s, no ledger) at the same concurrency ({a.concurrency}).")
    for r in rows:
        if r["scenario"] == "naive" and r["latency_ms"] == 50 and f50:
            lines.append(f"- {f50['sms_per_s'] / r['sms_per_s']:.0f}× a naive one-after-another twilio SDK loop "
                         f"({r['sms_per_s']:.1f}/s).")
        if r["scenario"] == "memory":
            lines.append(f"- Peak RSS {r['peak_rss_mb']:.0f} MB for {r['n']:,} recipients (streamed into the ledger).")
    if res.get("audio"):
        au = res["audio"]["30s"]
        lines.append(f"- Audio: {au['audio_s']:.0f} s Mandarin bulletin rendered in {au['cold_s']:.2f} s cold "
                     f"({au['rtf']:.4f} × real time), {au['cached_ms']:.2f} ms from the cache.")
    if res.get("startup"):
        st = res["startup"]
        lines.append(f"- `broadcaster check` {st['check_median_s']:.2f} s; `broadcaster run` ready in "
                     f"{st['run_ready_median_s']:.2f} s.")
    missed_names = f"; missed: {', '.join(t[0] for t in missed)}." if missed else "."
    lines.append(f"- Targets met: {len(met)} of {len(tg)}{missed_names}")
    if problems:
        lines += ["", "**Correctness problems in this run:**", ""] + [f"- {p}" for p in problems]
    settings = (f"`sms.concurrency` {a.concurrency}, `sms.rate_per_s` {a.rate:g} (high on purpose: the token "
                "bucket is not what is measured), speaker concurrency 16 (the dispatcher's default)")
    lines += ["", "## Run", "",
              f"- command: `{command}` (from the project root; `make bench` runs `.venv/bin/python bench/run.py`)",
              f"- started: {started}; runtime {res['runtime_s']:.0f} s",
              f"- load average (1, 5, 15 min) at start {_loads(res['load_start'])}, at end {_loads(res['load_end'])}",
              f"- settings: {settings}", "", "## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines += ["", "## Fan-out and baselines", "", *_table(rows), "", _TABLE_NOTE]
    if res.get("audio"):
        lines += ["", "## Audio", "",
                  ("| bulletin | chars | audio (s) | first cold render (s) | cold median (s) | real-time factor | "
                   "cached (ms) | cached after restart (ms) | MP3 bytes |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, au in res["audio"].items():
            if isinstance(au, dict):
                lines.append(f"| {name} | {au['chars']} | {au['audio_s']:.1f} | {au['first_cold_s']:.3f} | "
                             f"{au['cold_s']:.3f} | {au['rtf']:.4f} | {au['cached_ms']:.2f} | "
                             f"{au['cached_restart_ms']:.2f} | {au['bytes']:,} |")
    if res.get("startup"):
        st = res["startup"]
        check = f"{st['check_median_s']:.3f} | {st['check_max_s']:.3f} | {st['check_runs']}"
        run = f"{st['run_ready_median_s']:.3f} | {st['run_ready_max_s']:.3f} | {st['run_runs']}"
        lines += ["", "## Start-up", "", "| what | median (s) | max (s) | runs |", "|---|---:|---:|---:|",
                  f"| `broadcaster check -c config/broadcaster.yaml` | {check} |",
                  f"| `broadcaster run` (fresh data dir) → 200 from `/healthz` | {run} |"]
    lines += ["", "## Targets", "", "| target | measured | met | margin |", "|---|---:|---|---|"]
    lines += [f"| {n} | {v} | {'yes' if m else 'no' if m is False else '–'} | {mg} |" for n, v, m, mg in tg]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text(encoding="utf-8").strip()]
    return "\n".join(lines) + "\n"
