"""The weekly report (DESIGN A14): the ledger's read models made into a :class:`WeekReport`, and its files.

Every section is one read of :class:`broadcaster.ledger.report_reads.ReportReads`; here ids become
names (villages and groups from the directory, level names from the rules), times the town's wall
clock, and codes the report's codes. Used by ``broadcaster report``, the console's download and the
scheduled Friday report (:mod:`broadcaster.flows.report_schedule`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from broadcaster.config import Config
from broadcaster.errors import InputError
from broadcaster.flows.manual import computed_status
from broadcaster.ledger import Alert, Incident, IncidentCorrection, Ledger
from broadcaster.report import (
    BroadcastRow,
    ChannelRow,
    CheckinRow,
    EscalationRow,
    FeedFailureRow,
    IncidentRow,
    NightRow,
    Period,
    PlayVillageRow,
    SmsGroupRow,
    WeekReport,
    report_period,
)
from broadcaster.timeutil import Night

FORMATS = ("xlsx", "pdf")
NO_GROUP = "（未记录分组）"
_STEM = re.compile(r"^周报-(?:(\d{4}-W\d{2})|(\d{4}-\d{2}-\d{2})_(\d{4}-\d{2}-\d{2}))$")


# ------------------------------------------------------------------ the period


def period_from_options(week: str | None, start: str | None, end: str | None, today: date) -> Period:
    """The report's period from ``--week`` or ``--from``/``--to`` (neither: this ISO week).
    Invalid input raises :class:`InputError` naming the option."""
    if week is not None and (start is not None or end is not None):
        raise InputError("--week", "请只指定周（--week）或日期范围（--from/--to）之一 / give --week or --from/--to, not both")
    for name, value in (("--from", start), ("--to", end)):
        if value is not None:
            try:
                date.fromisoformat(value.strip())
            except ValueError:
                raise InputError(name, f"日期无效：{value!r}（应为 2026-11-23 这样的格式）/ "
                                       "not a date as YYYY-MM-DD") from None
    if (start is None) != (end is None):
        missing = "--to" if end is None else "--from"
        raise InputError(missing, "日期范围需要同时指定 --from 和 --to / give both --from and --to")
    try:
        return report_period(week, start, end, today)
    except ValueError as exc:
        raise InputError("--week" if week is not None else "--to", str(exc)) from None


def period_from_stem(stem: str, today: date) -> Period | None:
    """The period a file stem names (``周报-2026-W48``, ``周报-2026-11-23_2026-11-29``), or None."""
    m = _STEM.match(stem)
    if not m:
        return None
    try:
        return report_period(m.group(1), m.group(2), m.group(3), today)
    except ValueError:
        return None


def local_span(period: Period, cfg: Config) -> tuple[datetime, datetime]:
    """[start 00:00, end + 1 day 00:00) in the town's zone: the incidents that belong to the period."""
    return (datetime.combine(period.start, time(0), cfg.tz),
            datetime.combine(period.end + timedelta(days=1), time(0), cfg.tz))


# ------------------------------------------------------------------ the content


def build_report(cfg: Config, ledger: Ledger, period: Period, now: datetime) -> WeekReport:
    """Everything the report shows for ``period``, read from the ledger as it is at ``now``."""
    tz = cfg.tz
    reads = ledger.report_reads
    a, b = period.start, period.end
    r = WeekReport(town=cfg.settings.town, period_label=period.label, start=a, end=b,
                   generated_at=now.astimezone(tz))
    r.nights = _nights(cfg, reads.nights(a, b), period, now)
    r.sms_by_group = _sms(cfg, reads.sms(a, b))
    names = {v.id: v.name for v in cfg.directory.villages}
    order = {vid: i for i, vid in enumerate(names)}  # the directory's order, villages no longer in it last
    plays = sorted(reads.plays(a, b), key=lambda p: (order.get(p[0], len(order)), p[0]))
    r.plays_by_village = [PlayVillageRow(names.get(v, v or "（未知）"), *n) for v, *n in plays]
    r.broadcasts = [
        BroadcastRow(f.id, f.created_at.astimezone(tz), f.author or "", f.approver, f.text or "",
                     f.villages if f.villages == ["all"] else [names.get(v, v) for v in f.villages],
                     computed_status(Alert(status=f.status, at=f.at), {"all": f.states}, now))
        for f in reads.broadcasts(a, b)]
    for channel, target, sent, failed in reads.other_channels(a, b):
        row = ChannelRow(target if channel in ("chat", "display") else f"{channel}: {target}", sent, failed)
        (r.displays if channel == "display" else r.chats).append(row)
    by_village, by_cadre = reads.checkins(a, b)
    r.checkins_by_village = [CheckinRow(names.get(v, v), *n) for v, *n in by_village]
    r.checkins_by_cadre = [CheckinRow(*c) for c in by_cadre]
    r.feed_failures = _feed_failures(reads.feed_failures(a, b), cfg)
    r.escalations = [EscalationRow(e.created_at.astimezone(tz), e.kind, _notice(e.kind, e.sms, e.note))
                     for e in reads.system_alerts(a, b)]
    r.incidents = [incident_row(i, c, cfg) for i, c in reads.incidents(*local_span(period, cfg))]
    return r


def _nights(cfg: Config, facts: Iterable[Any], period: Period, now: datetime) -> list[NightRow]:
    """Every night of the period that has begun (or has data), in order; one without a valid
    reading says so. A night's level is the highest valid level polled for it."""
    by_night = {f.night: f for f in facts}
    out = []
    day = period.start
    while day <= period.end:
        f = by_night.get(day)
        if f is not None or Night(day, cfg.tz).start <= now:
            level = f.level if f else None
            status = ""
            if f is not None and f.alert_id is not None:
                status = "superseded" if f.superseded_by else ("dispatching" if f.open else "done")
            out.append(NightRow(day, level, cfg.rules.levels.get(level, "") if level else "",
                                (f.source or "") if f else "", f.alert_id if f else None, status))
        day += timedelta(days=1)
    return out


def _sms(cfg: Config, counts: Iterable[Any]) -> list[SmsGroupRow]:
    """SMS by directory group, in the directory's order; rows sent before groups were recorded
    are counted under the first group their number has in the directory now."""
    first_group = {}
    for c in cfg.directory.contacts:
        first_group.setdefault(c.phone, c.groups[0])
    merged: dict[str, list[Any]] = {}
    for c in counts:
        group = c.group or first_group.get(c.phone or "", "")
        m = merged.setdefault(group, [0, 0, 0, {}])
        m[0] += c.sent
        m[1] += c.delivered
        m[2] += c.failed
        for why, n in c.reasons.items():
            m[3][why] = m[3].get(why, 0) + n
    order = {g: i for i, g in enumerate(cfg.directory.groups)}
    groups = sorted(merged, key=lambda g: (order.get(g, len(order)), g))
    return [SmsGroupRow(g or "—", cfg.directory.groups.get(g, NO_GROUP if not g else g), *merged[g][:3],
                        reasons=merged[g][3]) for g in groups]


def _feed_failures(rows: Iterable[tuple[datetime, list[Any], str]], cfg: Config) -> list[FeedFailureRow]:
    out = []
    for at, outcomes, error in rows:
        failed = [o for o in outcomes if isinstance(o, dict) and o.get("error")]
        for o in failed:
            out.append(FeedFailureRow(at.astimezone(cfg.tz), str(o.get("source", "")), str(o["error"])))
        if not failed:
            out.append(FeedFailureRow(at.astimezone(cfg.tz), "", error))
    return out


def _notice(kind: str, sms: int, note: str | None) -> str:
    """The detail of a notice of the service, such as the deadline's SMS to the duty group."""
    told = f"已短信通知值班人员 {sms} 人" if kind == "deadline" else f"短信 {sms} 条"
    return f"{told}；原因：{note}" if note else told


INCIDENT_FIELDS = {"village": "村", "occurred_at": "发生时间", "affected": "涉及人数", "deaths": "死亡人数",
                   "description": "经过", "measures": "处置措施"}


def _apply(values: dict[str, Any], c: IncidentCorrection) -> dict[str, Any]:
    return {**values, **{k: getattr(c, k) for k in INCIDENT_FIELDS if getattr(c, k) is not None}}


def incident_values(i: Incident, corrections: Iterable[IncidentCorrection]) -> dict[str, Any]:
    """The incident as it stands after its corrections, in order (the first record is unchanged)."""
    values = {k: getattr(i, k) for k in INCIDENT_FIELDS}
    for c in corrections:
        values = _apply(values, c)
    return values


def correction_text(c: IncidentCorrection, before: dict[str, Any], cfg: Config) -> str:
    """``11-27 09:10 刘站长：涉及人数由 2 改为 3；说明：...``."""
    names = {v.id: v.name for v in cfg.directory.villages}

    def show(k: str, v: Any) -> str:
        if k == "occurred_at":
            return v.astimezone(cfg.tz).strftime("%Y-%m-%d %H:%M")
        return names.get(v, v) if k == "village" else str(v)

    changes = [f"{label}由 {show(k, before[k]) if before[k] is not None else '—'} 改为 {show(k, getattr(c, k))}"
               if k in ("village", "occurred_at", "affected", "deaths") else f"{label}改为：{getattr(c, k)}"
               for k, label in INCIDENT_FIELDS.items() if getattr(c, k) is not None]
    return (f"{c.created_at.astimezone(cfg.tz):%m-%d %H:%M} {c.created_by}：" + "；".join(changes)
            + (f"。说明：{c.note}" if c.note else ""))


def incident_row(i: Incident, corrections: list[IncidentCorrection], cfg: Config) -> IncidentRow:
    """The report's row: the incident as corrected, each correction said in words."""
    texts, values = [], {k: getattr(i, k) for k in INCIDENT_FIELDS}
    for c in corrections:
        texts.append(correction_text(c, values, cfg))
        values = _apply(values, c)
    names = {v.id: v.name for v in cfg.directory.villages}
    return IncidentRow(i.id, names.get(values["village"], values["village"]),
                       values["occurred_at"].astimezone(cfg.tz), values["affected"], values["deaths"],
                       values["description"], values["measures"], texts)


# ------------------------------------------------------------------ the files


@dataclass(frozen=True)
class Made:
    """A report and the files written for it."""

    report: WeekReport
    files: list[Path]


def formats(fmt: str) -> tuple[str, ...]:
    """``both`` -> ``("xlsx", "pdf")``."""
    return FORMATS if fmt == "both" else (fmt,)


def write_files(report: WeekReport, period: Period, out_dir: Path, fmt: str = "both") -> list[Path]:
    """``周报-2026-W48.xlsx`` and/or ``.pdf`` in ``out_dir`` (created); each written under a
    temporary name and renamed, so a reader never sees half a file."""
    from broadcaster.report.pdf import write_pdf
    from broadcaster.report.xlsx import write_xlsx

    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for ext in formats(fmt):
        final = out_dir / f"{period.file_stem}.{ext}"
        tmp = out_dir / f".{period.file_stem}.{ext}.part"
        (write_xlsx if ext == "xlsx" else write_pdf)(report, tmp)
        tmp.replace(final)
        files.append(final)
    return files


def make_report(cfg: Config, ledger: Ledger, period: Period, now: datetime, out_dir: Path,
                fmt: str = "both") -> Made:
    """Build the report of ``period`` and write its files into ``out_dir``."""
    report = build_report(cfg, ledger, period, now)
    return Made(report, write_files(report, period, out_dir, fmt))


def summary(r: WeekReport) -> str:
    """A few lines for a mail or a chat: the period's key figures."""
    sent, delivered, failed = r.sms_totals()
    played, p_failed, expired, withdrawn = r.play_totals()
    alerts = sum(1 for n in r.nights if n.alert_id is not None)
    levels = [n.level for n in r.nights if n.level is not None]
    return "\n".join([
        f"{r.town}一氧化碳（煤气）中毒预警周报：{r.period_label}",
        f"夜间 {len(r.nights)} 个，发布预警 {alerts} 个夜间，最高等级 {max(levels) if levels else '—'}。",
        f"短信发送 {sent} 条，送达 {delivered} 条，失败 {failed} 条。",
        f"喇叭播放 {played} 次，失败 {p_failed} 次，过期 {expired} 次，撤回 {withdrawn} 次。",
        f"人工广播 {len(r.broadcasts)} 条；数据源故障 {len(r.feed_failures)} 次；升级通知 {len(r.escalations)} 次。",
        f"事故 {len(r.incidents)} 起，涉及 {sum(i.affected for i in r.incidents)} 人，"
        f"死亡 {sum(i.deaths for i in r.incidents)} 人。",
    ])
