"""The households and duty-roster workbooks, the merge with YAML contacts, who is on duty (A13).

Times are aware and in Asia/Shanghai unless a test says otherwise; each test names the moments it
assumes. chinese-calendar 1.11 knows public holidays up to 2026 only, so the holiday cases use
2026's National Day (国庆, 10-01..10-07, make-up workdays 09-20 and 10-10) and Spring Festival
(春节, 02-15..02-23, make-up workdays 02-14 and 02-28); for 2027 the check says it cannot tell.
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import chinese_calendar
import openpyxl
import pytest
import yaml

from broadcaster.config.models import DirectoryFile
from broadcaster.config.roster import (
    DUTY,
    HOUSEHOLD_CADRES,
    LEADERS,
    VULNERABLE,
    Person,
    duty_day_of,
    merge_people,
    on_duty,
    season_bounds,
    season_gaps,
)
from broadcaster.config.sheets import mobile_e164, read_sheet, text
from broadcaster.config.workbooks import (
    DUTY_COLUMNS,
    HOUSEHOLD_COLUMNS,
    DutyDay,
    read_duty,
    read_households,
)
from tests.support import make_sample_workbooks

ROOT = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Shanghai")
VILLAGES = {"dongcun": "东村", "xicun": "西村", "nancun": "南村"}
SEASON_START = date(2026, 10, 15)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


def household(head: str = "张德顺", village: Any = "东村", address: str = "东村一组12号",
              phone: Any = 13800138111, cadre_phone: Any = "13800138101") -> list[Any]:
    return [village, head, address, "独居老人", "张小明", phone, "周建军", cadre_phone]


def xlsx(path: Path, sheet: str, rows: list[list[Any]]) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def messages(problems: list[Any]) -> list[str]:
    return [str(p) for p in problems]


def names(people: list[Person]) -> list[str]:
    return [p.name for p in people]


# ------------------------------------------------------------------ reading households


def test_numbers_typed_as_numbers_and_as_text(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "households.xlsx", "重点户", [
        list(HOUSEHOLD_COLUMNS),
        household("甲", phone=13800138111, cadre_phone=13800138101),       # number cells
        household("乙", phone="13800138111", cadre_phone="138 0013 8101"),  # text, spaces
        household("丙", phone="138-0013-8111", cadre_phone="+86 138 0013 8101"),
    ])
    # calamine reads a number cell as a float; the reader must still see the digits.
    sheet, _ = read_sheet(path, "重点户", "households.xlsx")
    assert sheet is not None
    assert sheet.rows[1][5] == 13800138111.0 and isinstance(sheet.rows[1][5], float)
    homes, problems = read_households(path, VILLAGES)
    assert problems == []
    assert [(h.head, h.contact_phone, h.cadre_phone) for h in homes] == [
        (n, "+8613800138111", "+8613800138101") for n in "甲乙丙"]
    assert homes[0].row_ref == "重点户!2:2"


def test_calamine_float_and_openpyxl_int_give_the_digits() -> None:
    assert text(13800138000.0) == text(13800138000) == "13800138000"
    assert mobile_e164(13800138000.0) == mobile_e164(13800138000) == "+8613800138000"
    with pytest.raises(ValueError, match='科学计数法 "1.38E\\+10"'):
        mobile_e164("1.38E+10")  # what Excel saves in a CSV when the column was too narrow


def test_bad_number_names_file_sheet_cell_and_column(tmp_path: Path) -> None:
    rows = [list(HOUSEHOLD_COLUMNS)] + [household(f"户主{i}") for i in range(2, 17)]
    rows.append(household("张德顺", phone=1380013800))  # row 17, ten digits typed as a number
    path = xlsx(tmp_path / "households.xlsx", "重点户", rows)
    homes, problems = read_households(path, VILLAGES)
    assert messages(problems) == ['households.xlsx: 重点户!F17: 联系电话: 无效的手机号 "1380013800"']
    assert (problems[0].file, problems[0].path) == ("households.xlsx", "重点户!F17: 联系电话")
    assert len(homes) == 15  # the bad row is left out, the others are read


def test_landline_and_missing_cadre_phone(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "h.xlsx", "重点户", [
        list(HOUSEHOLD_COLUMNS), household(phone="010-62345678", cadre_phone=None)])
    _, problems = read_households(path, VILLAGES, file="config/h.xlsx")
    assert messages(problems) == [
        'config/h.xlsx: 重点户!F2: 联系电话: 不是手机号 "010-62345678"（短信只能发给手机）',
        "config/h.xlsx: 重点户!H2: 包户干部电话: 必填，不能为空",
    ]


def test_empty_rows_are_skipped(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "households.xlsx", "重点户", [
        list(HOUSEHOLD_COLUMNS), household("甲"), [], [None, "  ", None], household("乙"), [], []])
    homes, problems = read_households(path, VILLAGES)
    assert problems == []
    assert [(h.head, h.row_ref) for h in homes] == [("甲", "重点户!2:2"), ("乙", "重点户!5:5")]


def test_missing_column_is_named_with_the_header_found(tmp_path: Path) -> None:
    header = [c for c in HOUSEHOLD_COLUMNS if c != "联系电话"]
    path = xlsx(tmp_path / "households.xlsx", "重点户", [header, ["东村", "张德顺"]])
    homes, problems = read_households(path, VILLAGES)
    assert homes == []
    assert messages(problems) == [
        "households.xlsx: 重点户!1:1: 联系电话: 缺少此列（表头须在第 1 行，应有：村、户主、地址、类别、联系人、"
        "联系电话、包户干部、包户干部电话；现在第 1 行是：村、户主、地址、类别、联系人、包户干部、包户干部电话）"
    ]


def test_unknown_village_and_village_by_id(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "households.xlsx", "重点户", [
        list(HOUSEHOLD_COLUMNS), household("甲", village="北村"), household("乙", village="xicun")])
    homes, problems = read_households(path, VILLAGES)
    assert messages(problems) == [
        'households.xlsx: 重点户!A2: 村: 未知的村 "北村"（已知的村：东村（dongcun）、西村（xicun）、南村（nancun））']
    assert [(h.head, h.village_id) for h in homes] == [("乙", "xicun")]


def test_duplicate_household_names_both_rows(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "households.xlsx", "重点户", [
        list(HOUSEHOLD_COLUMNS), household("张德顺"), household("李桂兰"),
        household("张德顺", address="东村二组1号"),          # same head, other address: fine
        household("张德顺", village="dongcun")])             # 东村 by its id: the same household
    homes, problems = read_households(path, VILLAGES)
    assert messages(problems) == [
        "households.xlsx: 重点户!B5: 户主: 重复的重点户：与 重点户!B2 的村、户主、地址都相同"]
    assert len(homes) == 3


def test_first_sheet_when_not_named(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "h.xlsx", "Sheet1", [list(HOUSEHOLD_COLUMNS), household(phone=123)])
    _, problems = read_households(path, VILLAGES)
    assert messages(problems) == ['h.xlsx: Sheet1!F2: 联系电话: 无效的手机号 "123"']


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gbk"])
def test_csv_utf8_with_and_without_bom_and_gbk(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "households.csv"
    with path.open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f)
        w.writerow(HOUSEHOLD_COLUMNS)
        w.writerow(household("张德顺", phone="13800138111"))
        w.writerow([])
        w.writerow(household("李桂兰", village="西村", phone="1380013800"))
    homes, problems = read_households(path, VILLAGES)
    assert [(h.head, h.village_id, h.contact_phone) for h in homes] == [
        ("张德顺", "dongcun", "+8613800138111")]
    assert messages(problems) == ['households.csv: F4: 联系电话: 无效的手机号 "1380013800"']


def test_ods_written_with_odfpy(tmp_path: Path) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="值班表")
    rows = [list(DUTY_COLUMNS), [date(2026, 12, 1), "刘文华", 18600186101.0, "马建平", "13700137101"]]
    for row in rows:
        tr = TableRow()
        for v in row:
            if isinstance(v, date):
                cell = TableCell(valuetype="date", datevalue=v.isoformat())
            elif isinstance(v, float):
                cell = TableCell(valuetype="float", value=v)
            else:
                cell = TableCell(valuetype="string")
                cell.addElement(P(text=v))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(str(tmp_path / "duty.ods"))
    days, problems = read_duty(tmp_path / "duty.ods")
    assert problems == []
    assert days == [DutyDay(date(2026, 12, 1), [("刘文华", "+8618600186101")],
                            ("马建平", "+8613700137101"), "值班表!2:2")]


def test_xls_written_with_xlwt(tmp_path: Path) -> None:
    import xlwt

    wb = xlwt.Workbook()
    ws = wb.add_sheet("重点户")
    for r, row in enumerate([list(HOUSEHOLD_COLUMNS), household("张德顺", phone=13800138111),
                             household("李桂兰", village="南山村")]):
        for c, v in enumerate(row):
            ws.write(r, c, v)
    wb.save(str(tmp_path / "households.xls"))
    homes, problems = read_households(tmp_path / "households.xls", VILLAGES)
    assert [h.contact_phone for h in homes] == ["+8613800138111"]
    assert messages(problems)[0].startswith('households.xls: 重点户!A3: 村: 未知的村 "南山村"')


def test_unreadable_and_unsupported_files(tmp_path: Path) -> None:
    (tmp_path / "h.xlsx").write_text("村,户主\n", encoding="utf-8")  # a CSV renamed to .xlsx
    _, problems = read_households(tmp_path / "h.xlsx", VILLAGES)
    assert messages(problems)[0].startswith("h.xlsx: 无法读取工作簿（文件已损坏或不是 .xlsx 格式）")
    _, problems = read_households(tmp_path / "h.numbers", VILLAGES)
    assert messages(problems) == ['h.numbers: 不支持的文件类型 ".numbers"（请用 .xlsx、.xls、.ods 或 .csv）']


# ------------------------------------------------------------------ reading the duty roster


def test_duty_roster_cells(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "duty.xlsx", "值班表", [
        list(DUTY_COLUMNS),
        [date(2026, 12, 1), "刘文华、陈立新", "18600186101、18600186102", "马建平", 13700137101],
        ["2026-12-02", "杨晓东", 18800188103, None, None],
        ["1月2日", "黄志刚", "18800188104", "何永红", "13700137102"],   # year from the season
        ["2026-12-01", "杨晓东", 18800188103, None, None],             # duplicate date
        ["2026-13-01", "杨晓东", 18800188103, None, None],
        ["2026-12-05", "刘文华，陈立新", "18600186101", None, None],
        ["2026-12-06", "刘文华", "18600186101", "马建平", None],
    ])
    days, problems = read_duty(path, season_start=SEASON_START)
    assert [(d.date, d.people, d.leader) for d in days] == [
        (date(2026, 12, 1), [("刘文华", "+8618600186101"), ("陈立新", "+8618600186102")],
         ("马建平", "+8613700137101")),
        (date(2026, 12, 2), [("杨晓东", "+8618800188103")], None),
        (date(2027, 1, 2), [("黄志刚", "+8618800188104")], ("何永红", "+8613700137102")),
    ]
    assert messages(problems) == [
        "duty.xlsx: 值班表!A5: 日期: 重复的值班日期 2026-12-01（与 值班表!A2 相同）",
        'duty.xlsx: 值班表!A6: 日期: 无效的日期 "2026-13-01"（请写成 2026-12-01 或 12月1日，或把单元格设为日期格式）',
        "duty.xlsx: 值班表!C7: 电话: 值班人员有 2 人（刘文华、陈立新），电话有 1 个：请按同样的顺序填写，用“、”分隔",
        "duty.xlsx: 值班表!E8: 领导电话: 带班领导 马建平 没有填电话",
    ]


def test_month_day_needs_a_season(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "duty.xlsx", "值班表",
                [list(DUTY_COLUMNS), ["12月1日", "刘文华", 18600186101]])
    _, problems = read_duty(path)
    assert messages(problems) == ['duty.xlsx: 值班表!A2: 日期: 日期 "12月1日" 没有年份（请写成 YYYY-MM-DD）']


# ------------------------------------------------------------------ the shipped samples, the merge


def demo_contacts() -> DirectoryFile:
    data = yaml.safe_load((ROOT / "config" / "directory.yaml").read_text(encoding="utf-8"))
    return DirectoryFile.model_validate(data)


def test_samples_and_templates_read_clean_and_are_up_to_date(tmp_path: Path) -> None:
    make_sample_workbooks.main(tmp_path)
    for config in (ROOT / "config", tmp_path):
        homes, problems = read_households(config / "households.xlsx", VILLAGES)
        assert problems == [] and len(homes) == 10
        days, problems = read_duty(config / "duty.xlsx", season_start=SEASON_START)
        assert problems == [] and (days[0].date, days[-1].date, len(days)) == (
            date(2026, 11, 15), date(2027, 3, 15), 121)
        assert all(d.leader for d in days)
    templates = ROOT / "config" / "templates"
    assert read_households(templates / "households-template.xlsx", VILLAGES) == ([], [])
    assert read_duty(templates / "duty-template.xlsx") == ([], [])


def test_merge_with_yaml_contacts_one_person_per_number() -> None:
    homes, _ = read_households(ROOT / "config" / "households.xlsx", VILLAGES)
    people = merge_people(demo_contacts().contacts, homes)
    by_phone = {p.phone: p for p in people}
    assert len(by_phone) == len(people)
    # 张三 is a cadre in directory.yaml and 包户干部 in the workbook: one person, both groups.
    assert by_phone["+8613800138000"] == Person(
        "张三", "+8613800138000", "dongcun", {"cadres", HOUSEHOLD_CADRES})
    # 王秀英 is her own contact; 周建军 looks after two households and is listed once.
    assert by_phone["+8613800138112"] == Person("王秀英", "+8613800138112", "dongcun", {VULNERABLE})
    cadres = [p.name for p in people if HOUSEHOLD_CADRES in p.groups]
    assert cadres == ["张三", "周建军", "吴国强", "冯志红"]
    assert len([p for p in people if VULNERABLE in p.groups]) == 2 + 8  # YAML 赵六, 钱七 + workbook


# ------------------------------------------------------------------ who is on duty


def yaml_people() -> list[Person]:
    # The demo's own `leaders` (周九, for incident SMS) left out: here 镇长 is the YAML leader.
    fallback = [Person(c.name, c.phone, c.village, set(c.groups)) for c in demo_contacts().contacts
                if LEADERS not in c.groups]
    return fallback + [Person("镇长", "+8613700137999", None, {LEADERS})]


def test_duty_day_turns_at_eight() -> None:
    assert duty_day_of(at(2026, 12, 2, 7, 59), TZ) == date(2026, 12, 1)
    assert duty_day_of(at(2026, 12, 2, 8, 0), TZ) == date(2026, 12, 2)
    # 2026-12-01 23:59 UTC is 07:59 on 12-02 in Shanghai.
    assert duty_day_of(datetime(2026, 12, 1, 23, 59, tzinfo=UTC), TZ) == date(2026, 12, 1)
    with pytest.raises(ValueError):
        duty_day_of(datetime(2026, 12, 2, 8, 0), TZ)


def test_on_duty_across_eight_with_and_without_leader() -> None:
    roster, _ = read_duty(ROOT / "config" / "duty.xlsx")
    dec1 = [(p.name, p.groups) for p in on_duty(roster, at(2026, 12, 2, 7, 59), TZ, [], False)]
    dec2 = [(p.name, p.groups) for p in on_duty(roster, at(2026, 12, 2, 8, 0), TZ, [], True)]
    assert dec1 == [("陈立新", {DUTY})]                        # Tuesday 12-01, leader not asked for
    assert dec2 == [("杨晓东", {DUTY}), ("许德胜", {LEADERS})]  # Wednesday 12-02 with its 带班领导
    # 2027-01-01 (元旦) 20:00: two on duty and the leader of that week.
    newyear = on_duty(roster, at(2027, 1, 1, 20, 0), TZ, yaml_people(), True)
    assert names(newyear) == ["刘文华", "陈立新", "马建平"]


def holiday_roster() -> list[DutyDay]:
    """2026-09-15..10-15 with a leader every day but 10-03, 10-04 (国庆) and 10-10 (make-up)."""
    days = []
    for i in range(31):
        d = date(2026, 9, 15) + timedelta(days=i)
        leaderless = d in (date(2026, 10, 3), date(2026, 10, 4), date(2026, 10, 10))
        leader = None if leaderless else ("马建平", "+8613700137101")
        days.append(DutyDay(d, [("刘文华", "+8618600186101")], leader, f"值班表!{i + 2}:{i + 2}"))
    return [d for d in days if d.date != date(2026, 10, 6)]  # and no row at all on 10-06


def test_on_duty_across_a_holiday_and_fallback_to_yaml() -> None:
    roster = holiday_roster()
    # 2026-10-01 07:59 is still the duty day of 09-30; at 08:00 the 国庆 row with its leader.
    assert names(on_duty(roster, at(2026, 10, 1, 7, 59), TZ, [], True)) == ["刘文华", "马建平"]
    # 10-03 has a row without a leader: the YAML `leaders` stand in for escalations.
    assert names(on_duty(roster, at(2026, 10, 3, 21, 0), TZ, yaml_people(), True)) == ["刘文华", "镇长"]
    # 10-06 has no row: the YAML duty contacts (孙八), and the YAML leaders at level 5.
    assert on_duty(roster, at(2026, 10, 7, 7, 59), TZ, yaml_people(), False) == [
        Person("孙八", "+8618800188005", None, {DUTY})]
    assert names(on_duty(roster, at(2026, 10, 6, 8, 0), TZ, yaml_people(), True)) == ["孙八", "镇长"]
    assert on_duty(roster, at(2026, 10, 7, 8, 0), TZ, yaml_people(), False)[0].name == "刘文华"


def test_season_gaps_ranges_and_holidays_without_leader() -> None:
    roster = holiday_roster()
    gaps = season_gaps(roster, date(2026, 9, 10), date(2026, 10, 20), TZ, at(2026, 9, 12, 7, 0))
    assert all(p.warning for p in gaps)
    assert messages(gaps) == [
        "duty.xlsx: 值班表: 日期: 采暖季内 10 天没有值班安排，这些天改由 duty 组的联系人值班："
        "2026-09-11 至 2026-09-14（4 天）、2026-10-06、2026-10-16 至 2026-10-20（5 天）",
        "duty.xlsx: 值班表: 带班领导: 国庆节假期没有带班领导：2026-10-03 至 2026-10-04（2 天）、2026-10-06",
        "duty.xlsx: 值班表: 带班领导: 国庆节调休上班日没有带班领导：2026-10-10",
    ]
    # From 10-05 on, the past is not reported (10-05 07:00 belongs to the duty day of 10-04).
    later = messages(season_gaps(roster, date(2026, 9, 10), date(2026, 10, 20), TZ,
                                 at(2026, 10, 5, 7, 0)))
    assert later[1] == "duty.xlsx: 值班表: 带班领导: 国庆节假期没有带班领导：2026-10-04、2026-10-06"


def test_season_gaps_spring_festival_2026_and_unknown_2027() -> None:
    start, end = season_bounds(date(2026, 2, 1), (10, 15), (4, 15))
    assert (start, end) == (date(2025, 10, 15), date(2026, 4, 15))
    roster = [DutyDay(start + timedelta(days=i), [("刘文华", "+8618600186101")],
                      None if date(2026, 2, 14) <= start + timedelta(days=i) <= date(2026, 2, 28)
                      else ("马建平", "+8613700137101"), "") for i in range((end - start).days + 1)]
    assert messages(season_gaps(roster, start, end, TZ, date(2026, 2, 1))) == [
        "duty.xlsx: 值班表: 带班领导: 春节调休上班日没有带班领导：2026-02-14、2026-02-28",
        "duty.xlsx: 值班表: 带班领导: 春节假期没有带班领导：2026-02-15 至 2026-02-23（9 天）",
    ]
    # The shipped roster (2026-11-15..2027-03-15) in the demo's season 10-15..04-15, seen on 11-01.
    sample, _ = read_duty(ROOT / "config" / "duty.xlsx")
    start, end = season_bounds(date(2026, 11, 1), (10, 15), (4, 15))
    gaps = messages(season_gaps(sample, start, end, TZ, date(2026, 11, 1), file="config/duty.xlsx"))
    assert gaps[0] == (
        "config/duty.xlsx: 值班表: 日期: 采暖季内 45 天没有值班安排，这些天改由 duty 组的联系人值班："
        "2026-11-01 至 2026-11-14（14 天）、2027-03-16 至 2027-04-15（31 天）")
    try:
        chinese_calendar.get_holiday_detail(date(2027, 1, 1))
    except NotImplementedError:  # chinese-calendar 1.11: data up to 2026
        assert gaps[1:] == [
            f"config/duty.xlsx: 值班表: 日期: chinese-calendar {chinese_calendar.__version__} 还没有 2027 年的"
            "节假日安排，无法检查 2027 年节假日的带班领导（请升级 chinese-calendar）"]
    else:  # a later release that knows 2027: the sample has a leader every day
        assert gaps[1:] == []
