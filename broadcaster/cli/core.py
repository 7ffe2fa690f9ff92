"""The service's own commands: ``check``, ``run``, ``poll``, ``simulate`` and ``status`` (DESIGN A3)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Any

from broadcaster.cli.common import EXIT_FAIL, EXIT_OK, load, service
from broadcaster.errors import InputError
from broadcaster.wording import KIND_ZH, STATE_ZH, STATUS_ZH
from broadcaster.logutil import mask_phone


def cmd_check(args: argparse.Namespace) -> int:
    cfg = load(args)
    print(f"{cfg.path.name}: OK（配置有效）: {len(cfg.directory.villages)} 个村, {len(cfg.speakers)} 个喇叭终端, "
          f"{len(cfg.directory.contacts)} 个联系人, {len(cfg.rules.rules)} 条规则, {len(cfg.sources)} 个数据源"
          + (f", {len(cfg.book.households)} 户重点户（{len(cfg.book.by_cadre())} 名包户干部）" if cfg.book.files.get("households") else "")
          + (f", 值班表 {len(cfg.book.roster)} 天" if cfg.book.files.get("duty") else ""))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from broadcaster.runtime.server import serve

    cfg = load(args)
    listen = args.listen or os.environ.get("BROADCASTER_LISTEN")
    if listen:
        host, sep, port = listen.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError("--listen", f"应为 HOST:PORT，例如 127.0.0.1:8081 / expected HOST:PORT, got {listen!r}")
        cfg.settings.http.listen = f"{host}:{port}"
    return serve(cfg)


def cmd_poll(args: argparse.Namespace) -> int:
    svc = service(args)
    try:
        if not args.dry_run:
            svc.dispatcher.reconcile()
        report = svc.poll(dry_run=args.dry_run, kind="manual")
        if report.created and report.alert_id is not None:
            svc.dispatcher.drain([report.alert_id])
        if args.json:
            print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        else:
            _print_poll(report, svc, args.dry_run)
    finally:
        svc.close()
    return EXIT_OK if report.result.ok else EXIT_FAIL


def _print_poll(report: Any, svc: Any, dry_run: bool) -> None:
    tz = svc.cfg.tz
    print(f"今晚（{report.night.date}）一氧化碳中毒气象条件 / tonight's CO level:")
    for o in report.result.outcomes:
        if o.error:
            print(f"  数据源 {o.source}: 失败 / failed: {o.error}")
        elif o.reading is None:
            print(f"  数据源 {o.source}: {o.note or '无数据'}")
        else:
            r = o.reading
            extra = f"；因素: {r.factor_summary()}" if r.factors else ""
            print(f"  数据源 {o.source}: {r.level} 级（{r.source}，发布于 {r.issued_at.astimezone(tz):%m-%d %H:%M}）{extra}")
    level = report.level
    if level is not None:
        name = svc.cfg.rules.levels.get(level, "")
        print(f"等级 / level: {level} 级（{name}）")
        if report.result.reading and report.result.reading.factors:
            print(f"依据 / factors: level {level}: {report.result.reading.factor_summary()}")
    else:
        print("等级 / level: 无（no valid reading）")
    d = report.decision
    if d is not None and (dry_run or report.created):
        verb = "将发送 / would send" if dry_run else "已发送 / sent"
        print(f"{verb}: {len(d.sms)} 条短信, {len(d.plays)} 次喇叭播放（规则: {', '.join(d.fired) or '无'}）")
        for p in d.sms:
            print(f"  短信 → {p.name} {mask_phone(p.phone)}: {p.body}")
        for p in d.plays:
            print(f"  喇叭 → {p.village_name} {p.speaker_id} @ {p.play_at.astimezone(tz):%m-%d %H:%M}")
    for h in report.held:
        print(f"  未发送 / held: {h}")
    if report.reason:
        print(f"说明 / note: {report.reason}")


def cmd_simulate(args: argparse.Namespace) -> int:
    from broadcaster.rules import decide
    from broadcaster.timeutil import Night, in_season

    cfg = load(args)
    if not 1 <= args.level <= 5:
        raise InputError("--level", "应为 1 到 5 / must be 1 to 5")
    day = date.fromisoformat(args.date) if args.date else datetime.now(cfg.tz).date()
    night = Night(day, cfg.tz)
    now = datetime.combine(day, time(12, 0), cfg.tz)
    d = decide(cfg, args.level, night, now)
    print(f"{night.date} 夜间 {args.level} 级（{d.level_name}）: 规则 {', '.join(d.fired) or '无'}")
    season = cfg.settings.schedule.season
    if not in_season(night.date, *season.bounds()):
        # Say so: outside the season the running service does not poll or alert automatically.
        print(f"注意：{night.date} 不在采暖季（{season.start} 至 {season.end}），运行中的服务不会自动取数和预警；"
              "以下只是按规则推演 / outside the heating season: no automatic alerts on this date")
    print(f"短信 {len(d.sms)} 条:")
    for p in d.sms:
        print(f"  {p.name} {mask_phone(p.phone)}（{p.rule}）: {p.body}")
    print(f"喇叭播放 {len(d.plays)} 次:")
    for p in d.plays:
        what = p.text if p.text else f"[录音 {p.clip}]"
        print(f"  {p.village_name}/{p.speaker_id} @ {p.play_at.astimezone(cfg.tz):%m-%d %H:%M}: {what}")
    for h in d.held:
        print(f"  未发送 / held: {h}")
    return EXIT_OK


def _minute(iso: str) -> str:
    """``2026-11-28 19:30`` from an ISO time (no seconds, no microseconds, no offset)."""
    return iso[:16].replace("T", " ")


def _job(name: str) -> str:
    return name.replace("feed deadline", "取数截止").replace("poll", "取数")


def cmd_status(args: argparse.Namespace) -> int:
    from broadcaster.flows.status import status

    svc = service(args)
    try:
        st = status(svc)
    finally:
        svc.close()
    if args.json:
        print(json.dumps(st, ensure_ascii=False, indent=2, default=str))
        return EXIT_OK
    lvl = st["level"]
    print(f"今晚 / tonight: {st['night']}  {'采暖季内' if st['in_season'] else '非采暖季'}")
    shown = f"{lvl} 级（{st['level_name']}）" if lvl else "暂无 / none yet"
    print(f"等级 / level: {shown}" + (f"  （{_minute(st['polled_at'])} 获取）" if st["polled_at"] else ""))
    for o in st["sources"]:
        line = f"  {o['source']}: " + (f"失败 {o['error']}" if o.get("error") else f"{o.get('level')} 级")
        if o.get("factors"):
            line += "；" + ", ".join(f"{f['label']} {f['value']}{f['unit']}" for f in o["factors"] if f["points"] > 0)
        print(line)
    for a in st["alerts"]:
        what = f"{a['level']} 级预警" if a["level"] else ("人工广播" if a["kind"] == "manual" else "预警")
        print(f"{KIND_ZH.get(a['kind'], a['kind'])}{what} #{a['id']}: {STATUS_ZH.get(a['status'], a['status'])}"
              + (f"（已被 #{a['superseded_by']} 取代）" if a["superseded_by"] else ""))
    print("各村播放 / plays:")
    for p in st["plays"]:
        if p["played_at"]:
            when = f"{_minute(p['played_at'])} 播放"
        else:
            when = f"定于 {_minute(p['play_at'])}" if p["play_at"] else ""
        print(f"  {p['village_name']} {p['speaker']}: {STATE_ZH.get(p['state'], p['state'])} {when} {p['error'] or ''}".rstrip())
    print("下一任务 / next jobs: " + ", ".join(f"{_job(j['job'])} {j['at'][5:16].replace('T', ' ')}" for j in st["next_jobs"]))
    print("投递 / deliveries: " + (", ".join(f"{STATE_ZH.get(k, k)} {v}" for k, v in sorted(st["deliveries"].items())) or "无"))
    for p in st["problems"]:
        print(f"  ! {'短信' if p['channel'] == 'sms' else p['target']} #{p['id']} {STATE_ZH.get(p['state'], p['state'])}: "
              f"{p['error']}")
    return EXIT_OK




def register(sub: Any, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Add the service's commands to the CLI."""
    sp = add("run", cmd_run, "the service: scheduler, dispatcher, HTTP API and console")
    sp.add_argument("--listen", metavar="HOST:PORT",
                    help="listen here instead of http.listen (also $BROADCASTER_LISTEN)")
    add("check", cmd_check, "validate all configuration")
    sp = add("poll", cmd_poll, "one poll now: fetch, decide, dispatch")
    sp.add_argument("--dry-run", action="store_true", help="only print what would be sent")
    sp.add_argument("--json", action="store_true")
    sp = add("simulate", cmd_simulate, "print what the rules would send for a level")
    sp.add_argument("--level", type=int, required=True)
    sp.add_argument("--date", help="YYYY-MM-DD (default today)")
    sp = add("status", cmd_status, "tonight's reading, next jobs, deliveries")
    sp.add_argument("--json", action="store_true")
