"""The workbooks as configuration (issue 15, DESIGN A13), with the rest of the configuration:
``check`` naming file, sheet, cell and column; the season's days without a roster row; the groups
``vulnerable``, ``household_cadres`` and ``duty`` in alerts, the feed deadline and manual broadcasts.
(The readers themselves: tests/test_workbooks.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.errors import ConfigError
from broadcaster.flows.deadline import deadline_check
from broadcaster.ledger import Delivery
from broadcaster.rules import decide
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock, Night
from tests.conftest import edit_yaml, local
from tests.support.procs import BIN
from tests.test_api import make_api

SUNBA = "+8618800188005"  # 孙八, the YAML duty contact
ROSTER_1128 = {"+8618600186101", "+8618600186102"}  # 刘文华, 陈立新 on duty 2026-11-28
LEADER_1128 = "+8613700137102"  # 何永红, 带班领导 that week


@pytest.fixture
def books(confdir: Path) -> Path:
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(households_file="households.xlsx",
                                                             duty_file="duty.xlsx"))
    return confdir


def test_check_names_file_sheet_cell_and_column_and_exits_2(books: Path) -> None:
    wb = load_workbook(books / "households.xlsx")
    ws = wb["重点户"]
    ws["F3"] = 1380013800  # a digit short, typed as a number
    ws["A4"] = "北村"
    ws.append(list(ws[2][i].value for i in range(8)))  # row 12 repeats row 2: a duplicate household
    wb.save(books / "households.xlsx")
    proc = subprocess.run([BIN, "check", "-c", str(books / "broadcaster.yaml")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert 'households.xlsx: 重点户!F3: 联系电话: 无效的手机号 "1380013800"' in err
    assert 'households.xlsx: 重点户!A4: 村: 未知的村 "北村"（已知的村：东村（dongcun）、西村（xicun）、南村（nancun））' in err
    assert "households.xlsx: 重点户!B12: 户主: 重复的重点户：与 重点户!B2 的村、户主、地址都相同" in err


def test_check_of_the_samples_counts_them(books: Path) -> None:
    proc = subprocess.run([BIN, "check", "-c", str(books / "broadcaster.yaml")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "10 户重点户（4 名包户干部）, 值班表 121 天" in proc.stdout


def test_missing_column_and_missing_file_are_config_errors(books: Path) -> None:
    wb = load_workbook(books / "duty.xlsx")
    wb["值班表"]["D1"] = "领导"
    wb.save(books / "duty.xlsx")
    edit_yaml(books / "directory.yaml", lambda d: d.update(households_file="没有这个文件.xlsx"))
    with pytest.raises(ConfigError) as e:
        load_config(books / "broadcaster.yaml", now=local(2026, 11, 20, 9))
    text = str(e.value)
    assert "duty.xlsx: 值班表!1:1: 带班领导: 缺少此列" in text and "现在第 1 行是：日期、值班人员、电话、领导、领导电话" in text
    assert "没有这个文件.xlsx: 无法读取文件" in text


def test_check_warns_about_season_days_without_a_row(books: Path) -> None:
    # The demo season runs 10-15 to 04-15; the sample roster covers 2026-11-15 to 2027-03-15.
    cfg = load_config(books / "broadcaster.yaml", now=local(2026, 10, 20, 7, 0))  # duty day 10-19
    gaps = [str(w) for w in cfg.warnings if "没有值班安排" in w.message]
    assert len(gaps) == 1 and gaps[0].endswith(
        "值班表: 日期: 采暖季内 58 天没有值班安排，这些天改由 duty 组的联系人值班："
        "2026-10-19 至 2026-11-14（27 天）、2027-03-16 至 2027-04-15（31 天）")
    assert "duty.xlsx" in gaps[0]


def test_duty_in_alerts_is_the_roster_day_with_its_leader_at_level_5(books: Path) -> None:
    cfg = load_config(books / "broadcaster.yaml", now=local(2026, 11, 28, 16))
    night = Night(local(2026, 11, 28).date(), cfg.tz)
    d5 = decide(cfg, 5, night, local(2026, 11, 28, 16, 30))
    by_group: dict[str, set[str]] = {}
    for p in d5.sms:
        by_group.setdefault(p.group or "", set()).add(p.phone)
    assert by_group["duty"] == ROSTER_1128 | {LEADER_1128} and SUNBA not in by_group["duty"]
    # Households' 联系人 join `vulnerable` (YAML 赵六, 钱七 + 8 from the workbook); 张三 is one person.
    assert len(by_group["vulnerable"]) == 10
    assert len([p for p in d5.sms if p.phone == "+8613800138000"]) == 1
    # A night without a roster row (2027-04-01, still in season): the YAML duty contact, and the
    # YAML `leaders` (周九) stand in for the 带班领导 at level 5.
    late = decide(cfg, 5, Night(local(2027, 4, 1).date(), cfg.tz), local(2027, 4, 1, 16, 30))
    assert {p.phone for p in late.sms if p.group == "duty"} == {SUNBA, "+8613600136006"}
    assert {p.phone for p in decide(cfg, 4, night, local(2026, 11, 28, 16, 30)).sms} == {
        "+8613800138000", "+8613900139001", "+8615000150002"}  # level 4: cadres only, as before


def test_feed_deadline_goes_to_the_roster_and_its_leader(books: Path) -> None:
    svc = Service(load_config(books / "broadcaster.yaml", now=local(2026, 11, 28, 17)),
                  clock=FakeClock(local(2026, 11, 28, 17, 30)))
    try:
        alert_id = deadline_check(svc)  # no poll ran tonight
        assert alert_id is not None
        with svc.ledger.reader() as s:
            to = set(s.scalars(select(Delivery.target).where(Delivery.alert_id == alert_id)))
        assert to == ROSTER_1128 | {LEADER_1128}
    finally:
        svc.close()


def test_manual_broadcast_to_household_cadres_undeclared_group(books: Path) -> None:
    assert "household_cadres" not in (books / "directory.yaml").read_text(encoding="utf-8").split("groups:")[1][:200]
    api = make_api(books)
    try:
        bid = api.post("/api/v1/broadcasts", json={"text": "今晚请逐户核实取暖情况。",
                                                   "sms_groups": ["household_cadres"]}).json()["id"]
        assert api.post(f"/api/v1/broadcasts/{bid}/approve", "carol").status_code == 200
        with api.svc.ledger.reader() as s:
            rows = list(s.execute(select(Delivery.target, Delivery.sms_group).where(Delivery.alert_id == bid)))
        assert sorted(rows) == sorted([("+8613800138000", "household_cadres"), ("+8613800138101", "household_cadres"),
                                       ("+8613900139102", "household_cadres"), ("+8615000150103", "household_cadres")])
    finally:
        api.svc.close()


def test_checkins_config_is_checked(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(checkins={"send_at": "21:00", "confirm_by": "18:30"}))
    with pytest.raises(ConfigError) as e:
        load_config(confdir / "broadcaster.yaml")
    assert "broadcaster.yaml: checkins.confirm_by: 须晚于 send_at（21:00；值班日从 08:00 到次日 08:00）" in str(e.value)
    # 02:00 is the next morning's, after 21:00; no households_file is only a warning.
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(checkins={"send_at": "21:00", "confirm_by": "02:00"}))
    cfg = load_config(confdir / "broadcaster.yaml")
    assert any(w.path == "checkins" and "没有 households_file" in w.message for w in cfg.warnings)
