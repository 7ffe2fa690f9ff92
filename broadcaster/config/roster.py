"""Who is reached: people from YAML contacts and workbooks, and who is on duty (DESIGN A13).

Pure functions, no I/O. A duty day runs from 08:00 to 08:00 local time, so the person on duty
for a night is the one on the roster for the evening's date: at 07:59 on 2 December the
1 December row is still on duty.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import chinese_calendar

from broadcaster.config.workbooks import DutyDay, Household
from broadcaster.errors import Problem

DUTY_DAY_STARTS = time(8, 0)
VULNERABLE, HOUSEHOLD_CADRES, DUTY, LEADERS = "vulnerable", "household_cadres", "duty", "leaders"
# The groups of A13 exist whether or not directory.yaml declares them.
BUILTIN_GROUPS = {
    VULNERABLE: "重点关注户联系人",
    HOUSEHOLD_CADRES: "包户干部",
    DUTY: "值班人员",
    LEADERS: "带班领导",
}
_HOLIDAY_NAMES = {h.value: h.chinese for h in chinese_calendar.Holiday}


@dataclass
class Person:
    """Someone an SMS can reach: one per phone number, with every group they belong to."""

    name: str
    phone: str                      # E.164
    village_id: str | None = None
    groups: set[str] = field(default_factory=set)


class ContactLike(Protocol):
    """A YAML contact (``broadcaster.config.models.Contact``): phone already in E.164."""

    name: str
    phone: str
    village: str | None
    groups: list[str]


def merge_people(contacts: Iterable[ContactLike], households: Iterable[Household]) -> list[Person]:
    """YAML contacts plus the households' 联系人 (group ``vulnerable``) and 包户干部 (group
    ``household_cadres``); one person per number with the union of its groups.

    The first name and village seen for a number win, YAML before workbook, so a name typed
    differently in the workbook does not rename a known contact. Order: YAML, then sheet order.
    """
    people: dict[str, Person] = {}

    def add(name: str, phone: str, village_id: str | None, groups: Iterable[str]) -> None:
        person = people.setdefault(phone, Person(name, phone, village_id))
        if person.village_id is None:
            person.village_id = village_id
        person.groups.update(groups)

    for c in contacts:
        add(c.name, c.phone, c.village, c.groups)
    for h in households:
        if h.contact_name and h.contact_phone:
            add(h.contact_name, h.contact_phone, h.village_id, [VULNERABLE])
        add(h.cadre_name, h.cadre_phone, h.village_id, [HOUSEHOLD_CADRES])
    return list(people.values())


def in_group(people: Iterable[Person], group: str) -> list[Person]:
    """The people of one group, in order."""
    return [p for p in people if group in p.groups]


def duty_day_of(when: datetime, tz: ZoneInfo) -> date:
    """The duty day holding ``when`` (aware): 08:00 to 08:00 local, named by its first date."""
    if when.tzinfo is None:
        raise ValueError("duty_day_of needs an aware datetime")
    local = when.astimezone(tz)
    return local.date() - timedelta(days=1) if local.time() < DUTY_DAY_STARTS else local.date()


def on_duty(
    roster: Iterable[DutyDay],
    when: datetime,
    tz: ZoneInfo,
    fallback_contacts: Sequence[Person],
    with_leader: bool,
) -> list[Person]:
    """Who group ``duty`` means at ``when``: the roster's people for that duty day and, when
    ``with_leader`` (level 5, escalations), its 带班领导.

    ``fallback_contacts`` are the YAML people: on a day without a roster row those in group
    ``duty`` are on duty, and those in group ``leaders`` stand in for a missing 带班领导.
    A number listed twice (a leader also on duty) is one person with both groups.
    """
    day = duty_day_of(when, tz)
    row = next((d for d in roster if d.date == day), None)
    out: dict[str, Person] = {}

    def add(name: str, phone: str, village_id: str | None, group: str) -> None:
        out.setdefault(phone, Person(name, phone, village_id)).groups.add(group)

    if row is None:
        for p in in_group(fallback_contacts, DUTY):
            add(p.name, p.phone, p.village_id, DUTY)
    else:
        for name, phone in row.people:
            add(name, phone, None, DUTY)
    if with_leader:
        if row is not None and row.leader is not None:
            add(*row.leader, None, LEADERS)
        else:
            for p in in_group(fallback_contacts, LEADERS):
                add(p.name, p.phone, p.village_id, LEADERS)
    return list(out.values())


def season_bounds(today: date, start: tuple[int, int], end: tuple[int, int]) -> tuple[date, date]:
    """The heating season holding ``today``, else the next one: ``start``/``end`` are (month, day),
    as ``Season.bounds()`` gives them; a season may run over New Year (10-15 to 04-15)."""
    wraps = end < start
    for year in (today.year - 1, today.year, today.year + 1):
        first, last = _on(year, start), _on(year + wraps, end)
        if today <= last:
            return first, last
    raise AssertionError("unreachable: next year's season ends after today")


def _on(year: int, month_day: tuple[int, int]) -> date:
    # A season given as 02-29 falls on 02-28 in a common year.
    month, day = month_day
    return date(year, month, 28 if (month, day) == (2, 29) and not calendar.isleap(year) else day)


def _runs(days: Iterable[date]) -> list[list[date]]:
    out: list[list[date]] = []
    for d in sorted(days):
        if out and d - out[-1][-1] == timedelta(days=1):
            out[-1].append(d)
        else:
            out.append([d])
    return out


def _span(days: list[date]) -> str:
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()} 至 {days[-1].isoformat()}（{len(days)} 天）"


def season_gaps(
    roster: Iterable[DutyDay],
    season_start: date,
    season_end: date,
    tz: ZoneInfo,
    today: date | datetime,
    *,
    file: str = "duty.xlsx",
    sheet: str = "值班表",
) -> list[Problem]:
    """Warnings (``warning=True``) about the roster from ``today`` to the season's end.

    - the days without a row, consecutive days as one range, all in one warning;
    - per public holiday (and make-up workday, 调休上班), its days without a 带班领导, from
      chinese-calendar; a year it has no data for yet is said once, not guessed.
    ``today`` may be an aware datetime (its duty day counts) or a date.
    """
    first = duty_day_of(today, tz) if isinstance(today, datetime) else today
    first = max(first, season_start)
    if first > season_end:
        return []
    by_day = {d.date: d for d in roster}
    days = [first + timedelta(days=i) for i in range((season_end - first).days + 1)]
    out: list[Problem] = []
    missing = [d for d in days if d not in by_day]
    if missing:
        ranges = "、".join(_span(r) for r in _runs(missing))
        message = (f"采暖季内 {len(missing)} 天没有值班安排，"
                   f"这些天改由 duty 组的联系人值班：{ranges}")
        out.append(Problem(file, f"{sheet}: 日期", message, warning=True))
    unknown_years: set[int] = set()
    no_leader: dict[str, list[date]] = {}
    for d in days:
        try:
            is_holiday, name = chinese_calendar.get_holiday_detail(d)
        except NotImplementedError:
            unknown_years.add(d.year)
            continue
        row = by_day.get(d)
        if name is None or (row is not None and row.leader is not None):
            continue
        what = _HOLIDAY_NAMES.get(name, name) + ("假期" if is_holiday else "调休上班日")
        no_leader.setdefault(what, []).append(d)
    for what, missed in no_leader.items():
        ranges = "、".join(_span(r) for r in _runs(missed))
        out.append(Problem(file, f"{sheet}: 带班领导", f"{what}没有带班领导：{ranges}",
                           warning=True))
    for year in sorted(unknown_years):
        message = (f"chinese-calendar {chinese_calendar.__version__} 还没有 {year} 年的节假日安排，"
                   f"无法检查 {year} 年节假日的带班领导（请升级 chinese-calendar）")
        out.append(Problem(file, f"{sheet}: 日期", message, warning=True))
    return out
