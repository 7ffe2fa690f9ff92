"""One sheet of a spreadsheet as rows of cells with their references, and the cell parsers the
workbook readers share (DESIGN A13).

``.xlsx``, ``.xls``, ``.xlsb`` and ``.ods`` are read with python-calamine, ``.csv`` with the
standard library. A cell is named as Excel names it (``重点户!F17``; a CSV has no sheet, so
just ``F17``) so that a station can find it in the file it typed. Messages are Chinese: the
people who read them fill the workbooks.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberType
from python_calamine import CalamineError, CalamineWorkbook

from broadcaster.errors import Problem

SPREADSHEET_SUFFIXES = frozenset({".xlsx", ".xlsm", ".xls", ".xlsb", ".ods"})
SUFFIXES = SPREADSHEET_SUFFIXES | {".csv"}

# Excel shows a long number it has no room for as 1.38E+10 and saves a CSV that way: the digits
# are gone, so say what happened rather than "invalid number".
_SCIENTIFIC = re.compile(r"^\d(\.\d+)?[eE]\+?\d+$")
_FULL_DATE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(\s+\d{1,2}:\d{2}(:\d{2})?)?$"
)
_MONTH_DAY = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*日?$")
# Names or numbers listed in one cell: 、 is what Chinese writers use; commas and semicolons
# (either width) and line breaks inside the cell (Alt+Enter) are common too.
_LIST_SEP = re.compile(r"[、,，;；\n]+")


def column_letter(index: int) -> str:
    """0 -> ``A``, 25 -> ``Z``, 26 -> ``AA`` (Excel's column names)."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


@dataclass(frozen=True)
class Sheet:
    """The cells of one sheet as read: ``rows[0]`` is row 1, ``rows[r][c]`` the cell at (r, c).

    ``name`` is None for a CSV file, which has no sheets.
    """

    file: str
    name: str | None
    rows: list[list[Any]]

    def cell(self, row: int, col: int) -> str:
        """Reference of a cell by 0-based indices: ``重点户!F17`` (``F17`` in a CSV)."""
        ref = f"{column_letter(col)}{row + 1}"
        return f"{self.name}!{ref}" if self.name else ref

    def row_ref(self, row: int) -> str:
        """Reference of a whole row, Excel's way: ``重点户!17:17``."""
        ref = f"{row + 1}:{row + 1}"
        return f"{self.name}!{ref}" if self.name else ref


def read_sheet(path: Path, sheet_name: str, file: str) -> tuple[Sheet | None, list[Problem]]:
    """Read the sheet called ``sheet_name`` (else the first sheet) of a workbook or CSV file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        message = f'不支持的文件类型 "{path.suffix}"（请用 .xlsx、.xls、.ods 或 .csv）'
        return None, [Problem(file, "", message)]
    try:
        if suffix == ".csv":
            return Sheet(file, None, _read_csv(path)), []
        with CalamineWorkbook.from_path(str(path)) as wb:
            names = wb.sheet_names
            if not names:
                return None, [Problem(file, "", "工作簿中没有工作表")]
            name = next((n for n in names if n.strip() == sheet_name), names[0])
            # skip_empty_area=False keeps row 1 and column A where they are, so the references
            # we print are the ones Excel shows even when column A is left empty.
            rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
            return Sheet(file, name, [list(r) for r in rows]), []
    except OSError as exc:
        return None, [Problem(file, "", f"无法读取文件：{exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [Problem(file, "", "无法识别文件编码（请另存为 UTF-8 或 GBK 编码的 CSV）")]
    except CalamineError as exc:
        return None, [Problem(file, "", f"无法读取工作簿（文件已损坏或不是 {suffix} 格式）：{exc}")]


def _read_csv(path: Path) -> list[list[Any]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # with or without the BOM Excel writes for "CSV UTF-8"
    except UnicodeDecodeError:
        # Excel and WPS in China save plain "CSV" in the ANSI code page, GBK; GB18030 is its
        # superset and decodes everything GBK does.
        text = data.decode("gb18030")
    first = text.split("\n", 1)[0]
    delimiter = max((",", "\t", ";"), key=first.count)
    return [list(r) for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)]


def text(value: Any) -> str:
    """A cell as the text the user sees: numbers typed as numbers become their digits.

    calamine gives ``13800138000.0`` (float) and openpyxl ``13800138000`` (int) for the same cell;
    both become ``"13800138000"``, never ``"1.38e10"``.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def is_blank(value: Any) -> bool:
    return text(value) == ""


def split_list(value: Any) -> list[str]:
    """The items of a cell that lists several names or numbers (``丁一、戊二``)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [text(value)]
    return [p.strip() for p in _LIST_SEP.split(text(value)) if p.strip()]


def mobile_e164(value: Any) -> str:
    """A mobile number (default region CN) in E.164, or ValueError with a Chinese message."""
    raw = text(value)
    if _SCIENTIFIC.match(raw):
        raise ValueError(
            f'号码被 Excel 显示成了科学计数法 "{raw}"，位数已丢失：请把该列设为文本后重新填写')
    digits = re.sub(r"\.0+$", "", raw)  # "13800138000.0" from a CSV written by another program
    try:
        number = phonenumbers.parse(digits, "CN")
    except phonenumbers.NumberParseException:
        raise ValueError(f'无效的手机号 "{raw}"') from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f'无效的手机号 "{raw}"')
    kind = phonenumbers.number_type(number)
    if kind not in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise ValueError(f'不是手机号 "{raw}"（短信只能发给手机）')
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_day(value: Any, season_start: date | None) -> date:
    """A date cell, or text ``YYYY-MM-DD`` (also ``/``, ``.``, ``年月日``) or ``M月D日``.

    ``M月D日`` takes the year that puts it in the season starting on ``season_start``
    (``3月1日`` in the 2026-10-15 season is 2027-03-01). Raises ValueError with a Chinese message.
    """
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raw = text(value)
    bad = ValueError(f'无效的日期 "{raw}"（请写成 2026-12-01 或 12月1日，或把单元格设为日期格式）')
    if m := _FULL_DATE.match(raw):
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    elif m := _MONTH_DAY.match(raw):
        if season_start is None:
            raise ValueError(f'日期 "{raw}" 没有年份（请写成 YYYY-MM-DD）')
        month, day = int(m.group(1)), int(m.group(2))
        before_start = (month, day) < (season_start.month, season_start.day)
        year = season_start.year + (1 if before_start else 0)
    else:
        raise bad
    try:
        return date(year, month, day)
    except ValueError:
        raise bad from None


def header_columns(
    sheet: Sheet, columns: tuple[str, ...]
) -> tuple[dict[str, int] | None, list[Problem]]:
    """Map each wanted column to its index from the header in row 1; a missing one is a problem.

    Header cells are compared without any whitespace, so a wrapped ``联系\\n电话`` still matches;
    other columns (``备注``) are allowed and ignored.
    """
    header = [re.sub(r"\s+", "", text(v)) for v in sheet.rows[0]] if sheet.rows else []
    found: dict[str, int] = {}
    problems: list[Problem] = []
    for i, name in enumerate(header):
        if name in columns:
            if name in found:
                problems.append(Problem(sheet.file, f"{sheet.cell(0, i)}: {name}",
                                        f"表头重复：{sheet.cell(0, found[name])} 已是此列"))
            else:
                found[name] = i
    shown = "、".join(h for h in header if h) or "（空）"
    where = f"{sheet.name}!1:1" if sheet.name else "1:1"
    for name in columns:
        if name not in found:
            message = (f"缺少此列（表头须在第 1 行，应有：{'、'.join(columns)}；"
                       f"现在第 1 行是：{shown}）")
            problems.append(Problem(sheet.file, f"{where}: {name}", message))
    return (None if problems else found), problems
