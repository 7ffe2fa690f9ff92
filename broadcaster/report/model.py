"""The Friday report's content (DESIGN A14) as plain data, and the period it covers.

Nothing here knows the ledger: the queries that fill a :class:`WeekReport` live elsewhere, the
renderers (:mod:`broadcaster.report.xlsx`, :mod:`broadcaster.report.pdf`) only read it. Codes
(alert status, SMS failure reasons, escalation kinds) stay codes here; the renderers translate
them (:mod:`broadcaster.report.labels`).

Datetimes are shown as the wall-clock time of their own zone, so the queries should hand them
over in the town's zone. A night is named by the date of its evening (20:00 local) and belongs to
the ISO week of that date (:func:`week_of_night`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

# The longest range a report may cover: a whole season is about 180 nights.
MAX_RANGE_DAYS = 366
_WEEK = re.compile(r"^\s*(\d{4})-?[Ww](\d{1,2})\s*$")


@dataclass(frozen=True)
class NightRow:
    """One night: its level (None when no valid reading arrived), source and automatic alert."""

    night: date
    level: int | None
    level_name: str
    source: str
    alert_id: int | None
    alert_status: str


@dataclass(frozen=True)
class SmsGroupRow:
    """SMS of the period for one directory group; ``reasons`` counts failures by code
    (``unreachable``, ``cap``, ...)."""

    group: str
    group_name: str
    sent: int
    delivered: int
    failed: int
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PlayVillageRow:
    """Loudspeaker plays of the period in one village, by outcome."""

    village: str
    played: int
    failed: int
    expired: int
    withdrawn: int


@dataclass(frozen=True)
class BroadcastRow:
    """One manual broadcast with who wrote and who approved it."""

    id: int
    created_at: datetime
    author: str
    approver: str | None
    text: str
    villages: list[str]
    status: str


@dataclass(frozen=True)
class ChannelRow:
    """Messages to one group chat or display screen."""

    target: str
    sent: int
    failed: int


@dataclass(frozen=True)
class CheckinRow:
    """Household check-ins (包户核实) of one village or one cadre."""

    name: str
    households: int
    answered: int
    missing: int


@dataclass(frozen=True)
class FeedFailureRow:
    """A CO-index source that failed at a poll."""

    at: datetime
    source: str
    error: str


@dataclass(frozen=True)
class EscalationRow:
    """An escalation such as the deadline SMS to the duty group (kind ``deadline``)."""

    at: datetime
    kind: str
    detail: str


@dataclass(frozen=True)
class IncidentRow:
    """A reported poisoning incident; ``corrections`` are appended later, the first record stays."""

    id: int
    village: str
    occurred_at: datetime
    affected: int
    deaths: int
    description: str
    measures: str | None
    corrections: list[str] = field(default_factory=list)


@dataclass
class WeekReport:
    """Everything the weekly report shows, in display order within each list."""

    town: str
    period_label: str
    start: date
    end: date
    generated_at: datetime
    nights: list[NightRow] = field(default_factory=list)
    sms_by_group: list[SmsGroupRow] = field(default_factory=list)
    plays_by_village: list[PlayVillageRow] = field(default_factory=list)
    broadcasts: list[BroadcastRow] = field(default_factory=list)
    chats: list[ChannelRow] = field(default_factory=list)
    displays: list[ChannelRow] = field(default_factory=list)
    checkins_by_village: list[CheckinRow] = field(default_factory=list)
    checkins_by_cadre: list[CheckinRow] = field(default_factory=list)
    feed_failures: list[FeedFailureRow] = field(default_factory=list)
    escalations: list[EscalationRow] = field(default_factory=list)
    incidents: list[IncidentRow] = field(default_factory=list)

    @property
    def is_iso_week(self) -> bool:
        """True when the period is exactly one Monday-to-Sunday week."""
        return self.start.weekday() == 0 and (self.end - self.start).days == 6

    @property
    def none_text(self) -> str:
        """What an empty section says."""
        return "本周无" if self.is_iso_week else "本期无"

    def sms_totals(self) -> tuple[int, int, int]:
        """(sent, delivered, failed) over all groups."""
        rows = self.sms_by_group
        return (sum(r.sent for r in rows), sum(r.delivered for r in rows), sum(r.failed for r in rows))

    def play_totals(self) -> tuple[int, int, int, int]:
        """(played, failed, expired, withdrawn) over all villages."""
        rows = self.plays_by_village
        return (sum(r.played for r in rows), sum(r.failed for r in rows),
                sum(r.expired for r in rows), sum(r.withdrawn for r in rows))

    def reason_codes(self) -> list[str]:
        """Failure reason codes that occur, the well-known ones first (stable column order)."""
        seen = {code for r in self.sms_by_group for code, n in r.reasons.items() if n}
        known = [c for c in ("unreachable", "cap") if c in seen]
        return known + sorted(seen - set(known))


class Period(NamedTuple):
    """The dates a report covers (both inclusive), its label and its file name without suffix."""

    start: date
    end: date
    label: str
    file_stem: str


def week_label(d: date) -> str:
    """``2026-W48``: the ISO week that contains ``d``."""
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def week_of_night(evening: date) -> str:
    """The ISO week a night belongs to: that of its evening's date in the town's zone (A14)."""
    return week_label(evening)


def _as_date(value: date | str, what: str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ValueError(f"{what}日期无效：{value!r}（应为 2026-11-23 这样的格式）") from None


def _week_period(year: int, week: int) -> Period:
    try:
        start = date.fromisocalendar(year, week, 1)
    except ValueError:
        raise ValueError(f"{year} 年没有第 {week} 周") from None
    end = start + timedelta(days=6)
    label = (f"{year}年第{week}周（{start.year}年{start.month}月{start.day}日至"
             f"{end.year}年{end.month}月{end.day}日）")
    return Period(start, end, label, f"周报-{year}-W{week:02d}")


def report_period(week: str | None, start: date | str | None, end: date | str | None,
                  today: date) -> Period:
    """The period of a report: an ISO week (``2026-W48``, Monday to Sunday), a date range, or,
    with neither, the ISO week that contains ``today``.

    Raises ``ValueError`` with a Chinese message on invalid input (the CLI exits 2 with it).
    """
    if week is not None and (start is not None or end is not None):
        raise ValueError("请只指定周（--week）或日期范围（--from/--to）之一")
    if week is not None:
        m = _WEEK.match(week)
        if not m:
            raise ValueError(f"周的格式无效：{week!r}（应为 2026-W48 这样的 ISO 周）")
        return _week_period(int(m.group(1)), int(m.group(2)))
    if start is None and end is None:
        year, num, _ = today.isocalendar()
        return _week_period(year, num)
    if start is None or end is None:
        raise ValueError("日期范围需要同时指定开始（--from）和结束（--to）日期")
    first, last = _as_date(start, "开始"), _as_date(end, "结束")
    if last < first:
        raise ValueError(f"结束日期 {last} 早于开始日期 {first}")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise ValueError(f"日期范围过长：最多 {MAX_RANGE_DAYS} 天")
    label = (f"{first.year}年{first.month}月{first.day}日至{last.year}年{last.month}月{last.day}日"
             f"（共{(last - first).days + 1}天）")
    return Period(first, last, label, f"周报-{first.isoformat()}_{last.isoformat()}")
