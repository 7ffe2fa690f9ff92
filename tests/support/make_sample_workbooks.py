"""Write the demo's sample workbooks and the header-only templates (DESIGN A13).

    python tests/support/make_sample_workbooks.py [CONFIG_DIR]

writes ``households.xlsx`` and ``duty.xlsx`` into CONFIG_DIR (default: the repository's
``config/``) and ``templates/households-template.xlsx`` / ``templates/duty-template.xlsx``
beside them. People are fictitious; the numbers are valid in format, in the style of the demo's
contacts, and only 张三 (13800138000, a cadre in directory.yaml) is reused, to show that one
number in YAML and in a workbook is one person. Some numbers are typed as numbers, as a station
would, and some as text.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

from broadcaster.config.workbooks import (
    DUTY_COLUMNS,
    DUTY_SHEET,
    HOUSEHOLD_COLUMNS,
    HOUSEHOLDS_SHEET,
)

ROOT = Path(__file__).resolve().parents[2]
SEASON = (date(2026, 11, 15), date(2027, 3, 15))
FIXED = datetime(2026, 11, 1, 8, 0)  # document properties, so regenerating changes no metadata

# 村, 户主, 地址, 类别, 联系人, 联系电话, 包户干部, 包户干部电话 (an int is a number cell)
HOUSEHOLDS: list[tuple[object, ...]] = [
    ("东村", "张德顺", "东村一组12号", "独居老人", "张小明", 13800138111, "张三", 13800138000),
    ("东村", "李桂兰", "东村二组3号", "鳏寡孤独", "", "", "周建军", "13800138101"),
    ("东村", "王秀英", "东村三组7号", "留守老人", "王秀英", "138 0013 8112", "周建军", "13800138101"),
    ("东村", "刘长贵", "东村一组25号", "独居老人", "刘芳", 13800138113, "张三", 13800138000),
    ("西村", "赵德明", "西村后街5号", "独居老人", "赵丽", "13900139121", "吴国强", 13900139102),
    ("西村", "孙玉珍", "西村前街18号", "残疾人", "孙建华", 13900139122, "吴国强", 13900139102),
    ("西村", "钱福来", "西村后街30号", "低保户", "钱福来", "139-0013-9123", "吴国强", "13900139102"),
    ("南村", "郑秀兰", "南村东头9号", "独居老人", "郑海", 15000150131, "冯志红", 15000150103),
    ("南村", "陈老栓", "南村西头2号", "鳏寡孤独", "", "", "冯志红", "15000150103"),
    ("南村", "何桂芝", "南村中街14号", "留守老人", "何军", "15000150132", "冯志红", 15000150103),
]

DUTY_PEOPLE = [
    ("刘文华", 18600186101), ("陈立新", 18600186102), ("杨晓东", 18800188103), ("黄志刚", 18800188104),
]
LEADERS = [("马建平", 13700137101), ("何永红", 13700137102), ("许德胜", 13700137103)]
# Two on duty at weekends and over 元旦 and 春节 (除夕 2027-02-05 to 初七 02-12).
BUSY = {date(2027, 1, 1)} | {date(2027, 2, 5) + timedelta(days=i) for i in range(8)}


def _header(
    ws: Worksheet, columns: tuple[str, ...], widths: list[int], text_cols: str, date_cols: str
) -> None:
    ws.append(list(columns))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "A2"
    for col, width in zip("ABCDEFGH", widths, strict=False):
        ws.column_dimensions[col].width = width
    # Whole columns formatted as text keep what is typed later as the digits, never 1.38E+10.
    for col in text_cols:
        ws.column_dimensions[col].number_format = "@"
    for col in date_cols:
        ws.column_dimensions[col].number_format = "yyyy-mm-dd"


def _book(sheet: str) -> tuple[Workbook, Worksheet]:
    wb = Workbook()
    wb.properties.creator = "broadcaster"
    wb.properties.created = wb.properties.modified = FIXED
    ws = wb.active
    ws.title = sheet
    return wb, ws


def households(path: Path, rows: list[tuple[object, ...]]) -> None:
    """A 重点户 sheet with ``rows`` (empty for the template)."""
    wb, ws = _book(HOUSEHOLDS_SHEET)
    _header(ws, HOUSEHOLD_COLUMNS, [8, 10, 18, 10, 10, 16, 10, 16],
            text_cols="" if rows else "FH", date_cols="")
    for row in rows:
        ws.append(list(row))
    wb.save(path)


def duty_rows() -> list[tuple[object, ...]]:
    """One row per day of the season, a 带班领导 on every day."""
    rows: list[tuple[object, ...]] = []
    day, i = SEASON[0], 0
    while day <= SEASON[1]:
        leader = LEADERS[(day - SEASON[0]).days // 7 % len(LEADERS)]  # leaders take a week each
        if day in BUSY or day.weekday() >= 5:
            pair = [DUTY_PEOPLE[i % 4], DUTY_PEOPLE[(i + 1) % 4]]
            names, phones = "、".join(p[0] for p in pair), "、".join(str(p[1]) for p in pair)
            rows.append((day, names, phones, leader[0], leader[1]))
            i += 2
        else:
            name, phone = DUTY_PEOPLE[i % 4]
            rows.append((day, name, phone, leader[0], str(leader[1])))
            i += 1
        day += timedelta(days=1)
    return rows


def duty(path: Path, rows: list[tuple[object, ...]]) -> None:
    """A 值班表 sheet with ``rows`` (empty for the template); 日期 as date cells."""
    wb, ws = _book(DUTY_SHEET)
    _header(ws, DUTY_COLUMNS, [12, 16, 26, 10, 16],
            text_cols="" if rows else "CE", date_cols="" if rows else "A")
    for row in rows:
        ws.append(list(row))
        ws.cell(ws.max_row, 1).number_format = "yyyy-mm-dd"
    wb.save(path)


def main(config_dir: Path = ROOT / "config") -> None:
    (config_dir / "templates").mkdir(parents=True, exist_ok=True)
    households(config_dir / "households.xlsx", HOUSEHOLDS)
    duty(config_dir / "duty.xlsx", duty_rows())
    households(config_dir / "templates" / "households-template.xlsx", [])
    duty(config_dir / "templates" / "duty-template.xlsx", [])


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "config")
