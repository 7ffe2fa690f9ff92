"""The households (重点户) and duty-roster (值班表) workbooks of DESIGN A13.

Each reader returns what it could read and *every* problem it found, as the same
:class:`~broadcaster.errors.Problem` the YAML loader makes, so ``check`` lists them together::

    households.xlsx: 重点户!F17: 联系电话: 无效的手机号 "1380013800"

A row with a problem is left out; the caller refuses the configuration while any error remains.
Empty rows are skipped. Columns other than the ones below are ignored (a station may add 备注).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from broadcaster.config.sheets import (
    Sheet,
    header_columns,
    is_blank,
    mobile_e164,
    parse_day,
    read_sheet,
    split_list,
    text,
)
from broadcaster.errors import Problem

HOUSEHOLDS_SHEET = "重点户"
DUTY_SHEET = "值班表"
HOUSEHOLD_COLUMNS = ("村", "户主", "地址", "类别", "联系人", "联系电话", "包户干部", "包户干部电话")
DUTY_COLUMNS = ("日期", "值班人员", "电话", "带班领导", "领导电话")


@dataclass(frozen=True)
class Household:
    """One vulnerable household and the cadre it is assigned to (分片包户)."""

    village_id: str
    head: str                  # 户主
    address: str               # 地址 ('' when not given)
    category: str              # 类别: 独居老人, 鳏寡孤独 … ('' when not given)
    contact_name: str | None   # 联系人; the head when only a number is given
    contact_phone: str | None  # 联系电话, E.164
    cadre_name: str            # 包户干部
    cadre_phone: str           # 包户干部电话, E.164
    row_ref: str               # 重点户!17:17

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes a household unique: 村, 户主 and 地址."""
        return (self.village_id, self.head, self.address)


@dataclass(frozen=True)
class DutyDay:
    """One row of the roster: the people on duty from 08:00 that day to 08:00 the next."""

    date: date
    people: list[tuple[str, str]]      # (name, E.164 phone), in the order written
    leader: tuple[str, str] | None     # 带班领导 (name, E.164 phone)
    row_ref: str                       # 值班表!5:5


class _Row:
    """Cells of one data row by column name, collecting the row's problems."""

    def __init__(
        self, sheet: Sheet, index: int, columns: dict[str, int], problems: list[Problem]
    ) -> None:
        self.sheet, self.index, self.columns = sheet, index, columns
        self._problems = problems
        self.ok = True
        cells = sheet.rows[index]
        self.values = {c: (cells[i] if i < len(cells) else "") for c, i in columns.items()}

    def blank(self) -> bool:
        return all(is_blank(v) for v in self.values.values())

    def ref(self, column: str) -> str:
        return self.sheet.cell(self.index, self.columns[column])

    def problem(self, column: str, message: str) -> None:
        self.ok = False
        self._problems.append(Problem(self.sheet.file, f"{self.ref(column)}: {column}", message))

    def text(self, column: str, required: bool = False) -> str:
        value = text(self.values[column])
        if required and not value:
            self.problem(column, "必填，不能为空")
        return value

    def phone(self, column: str) -> str | None:
        """The column's number in E.164; None when empty or invalid (a problem is recorded)."""
        value = self.values[column]
        if is_blank(value):
            return None
        try:
            return mobile_e164(value)
        except ValueError as exc:
            self.problem(column, str(exc))
            return None


def _open(
    path: Path, sheet_name: str, columns: tuple[str, ...], file: str | None
) -> tuple[Sheet | None, dict[str, int] | None, list[Problem]]:
    file = file or path.name
    sheet, problems = read_sheet(path, sheet_name, file)
    if sheet is None:
        return None, None, problems
    if not sheet.rows:
        message = f"工作表是空的：第 1 行应为表头 {'、'.join(columns)}"
        problems.append(Problem(file, sheet.name or "", message))
        return sheet, None, problems
    found, header_problems = header_columns(sheet, columns)
    return sheet, found, problems + header_problems


def village_lookup(villages: Mapping[str, str]) -> dict[str, str]:
    """村 as written -> village id, from ``{id: name}``: both the id and the name are accepted."""
    out = {name.strip(): vid for vid, name in villages.items()}
    out.update({vid: vid for vid in villages})  # an id wins over another village's same name
    return out


def read_households(
    path: Path, villages: Mapping[str, str], *, file: str | None = None
) -> tuple[list[Household], list[Problem]]:
    """Read the 重点户 sheet (else the first) of ``path``.

    ``villages`` maps each known village id to its name; 村 may hold either. ``file`` is how the
    file is named in problems (default: its name). Returns the valid households, in sheet order,
    and every problem found.
    """
    sheet, columns, problems = _open(path, HOUSEHOLDS_SHEET, HOUSEHOLD_COLUMNS, file)
    if sheet is None or columns is None:
        return [], problems
    lookup = village_lookup(villages)
    known = "、".join(f"{name}（{vid}）" for vid, name in villages.items()) or "（无）"
    households: list[Household] = []
    first_seen: dict[tuple[str, str, str], str] = {}
    for index in range(1, len(sheet.rows)):
        row = _Row(sheet, index, columns, problems)
        if row.blank():
            continue
        village = row.text("村", required=True)
        village_id = lookup.get(village)
        if village and village_id is None:
            row.problem("村", f'未知的村 "{village}"（已知的村：{known}）')
        head = row.text("户主", required=True)
        address, category = row.text("地址"), row.text("类别")
        contact_name = row.text("联系人") or None
        contact_phone = row.phone("联系电话")
        if contact_name and is_blank(row.values["联系电话"]):
            row.problem("联系电话", f"联系人 {contact_name} 没有填电话")
        if contact_phone and not contact_name:
            contact_name = head  # only a number: the head's own phone (an old man living alone)
        cadre_name = row.text("包户干部", required=True)
        cadre_phone = row.phone("包户干部电话")
        if is_blank(row.values["包户干部电话"]):
            row.problem("包户干部电话", "必填，不能为空")
        if village_id and head:
            key = (village_id, head, address)
            if key in first_seen:
                row.problem("户主", f"重复的重点户：与 {first_seen[key]} 的村、户主、地址都相同")
            else:
                first_seen[key] = row.ref("户主")
        if row.ok and village_id and cadre_phone:
            households.append(Household(
                village_id, head, address, category, contact_name, contact_phone,
                cadre_name, cadre_phone, sheet.row_ref(index),
            ))
    return households, problems


def read_duty(
    path: Path, *, season_start: date | None = None, file: str | None = None
) -> tuple[list[DutyDay], list[Problem]]:
    """Read the 值班表 sheet (else the first) of ``path``.

    ``season_start`` is the first day of the heating season the roster is for: a date written
    ``M月D日`` takes the year that puts it in that season. Several people in one 值班人员 cell are
    separated by 、 , or ; with their numbers in 电话 in the same order. Returns the days sorted by
    date and every problem found.
    """
    sheet, columns, problems = _open(path, DUTY_SHEET, DUTY_COLUMNS, file)
    if sheet is None or columns is None:
        return [], problems
    days: list[DutyDay] = []
    first_seen: dict[date, str] = {}
    for index in range(1, len(sheet.rows)):
        row = _Row(sheet, index, columns, problems)
        if row.blank():
            continue
        day: date | None = None
        if is_blank(row.values["日期"]):
            row.problem("日期", "必填，不能为空")
        else:
            try:
                day = parse_day(row.values["日期"], season_start)
            except ValueError as exc:
                row.problem("日期", str(exc))
        if day is not None:
            if day in first_seen:
                row.problem("日期",
                            f"重复的值班日期 {day.isoformat()}（与 {first_seen[day]} 相同）")
            else:
                first_seen[day] = row.ref("日期")
        people = _people(row)
        leader = _leader(row)
        if row.ok and day is not None:
            days.append(DutyDay(day, people, leader, sheet.row_ref(index)))
    days.sort(key=lambda d: d.date)
    return days, problems


def _people(row: _Row) -> list[tuple[str, str]]:
    names = split_list(row.values["值班人员"])
    phones = split_list(row.values["电话"])
    if not names:
        row.problem("值班人员", "必填，不能为空")
        return []
    if len(names) != len(phones):
        row.problem("电话", f"值班人员有 {len(names)} 人（{'、'.join(names)}），"
                            f"电话有 {len(phones)} 个：请按同样的顺序填写，用“、”分隔")
        return []
    people = []
    for name, raw in zip(names, phones, strict=True):
        try:
            people.append((name, mobile_e164(raw)))
        except ValueError as exc:
            row.problem("电话", f"{name}：{exc}" if len(names) > 1 else str(exc))
    return people


def _leader(row: _Row) -> tuple[str, str] | None:
    names = split_list(row.values["带班领导"])
    if len(names) > 1:
        row.problem("带班领导", f"每天只填一位带班领导（现在是：{'、'.join(names)}）")
        return None
    phone = row.phone("领导电话")
    if names and is_blank(row.values["领导电话"]):
        row.problem("领导电话", f"带班领导 {names[0]} 没有填电话")
    if not names and not is_blank(row.values["领导电话"]):
        row.problem("带班领导", "填了领导电话，但没有填带班领导的姓名")
    return (names[0], phone) if names and phone else None
