"""``broadcaster report`` (DESIGN A3, A14): the weekly report as .xlsx and/or A4 .pdf.

    broadcaster report [--week 2026-W48 | --from D --to D] [--format xlsx|pdf|both] [--out DIR]

Without ``--week`` or ``--from/--to`` it is this ISO week so far. Invalid input exits 2 naming the
option. Reads the ledger only; sends nothing (the schedule sends: ``report.at``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from broadcaster.cli.common import EXIT_OK, load
from broadcaster.errors import InputError


def cmd_report(args: argparse.Namespace) -> int:
    from broadcaster.flows.report import make_report, period_from_options
    from broadcaster.ledger import Ledger
    from broadcaster.timeutil import Clock

    cfg = load(args)
    now = Clock().now()
    period = period_from_options(args.week, args.start, args.end, now.astimezone(cfg.tz).date())
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError("--out", f"不是目录：{out} / not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError("--out", f"无法创建目录 {out}：{exc.strerror} / cannot create it") from None
    ledger = Ledger(cfg.database_url)
    try:
        made = make_report(cfg, ledger, period, now, out, args.format)
    finally:
        ledger.close()
    r = made.report
    sent, delivered, failed = r.sms_totals()
    print(f"{cfg.settings.town} {r.period_label}：夜间 {len(r.nights)} 个，短信 {sent}/{delivered}/{failed}"
          f"（发送/送达/失败），喇叭播放 {r.play_totals()[0]} 次，事故 {len(r.incidents)} 起")
    for f in made.files:
        print(f)
    return EXIT_OK


def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add ``broadcaster report``."""
    sp = add("report", cmd_report, "the weekly report (周报) as .xlsx and .pdf (A14)")
    sp.add_argument("--week", help="ISO week, e.g. 2026-W48 (default: this week so far)")
    sp.add_argument("--from", dest="start", metavar="D", help="first day, YYYY-MM-DD (with --to)")
    sp.add_argument("--to", dest="end", metavar="D", help="last day, YYYY-MM-DD (with --from)")
    sp.add_argument("--format", choices=["xlsx", "pdf", "both"], default="both", help="default both")
    sp.add_argument("--out", default=".", metavar="DIR", help="directory for the files (default: here)")
