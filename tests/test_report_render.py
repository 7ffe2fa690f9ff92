"""The weekly report's renderers (issue 16, DESIGN A14): workbook and PDF from a WeekReport.

The PDF checks use poppler-utils (pdftotext, pdffonts, pdftoppm); tests/install-report-tools.sh
installs them. Without them those tests skip and say so (and fail in CI, where .ci/run sets
BROADCASTER_REQUIRE_SERVICES).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import time
import zipfile
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from broadcaster.report import labels as L
from broadcaster.report.model import (
    BroadcastRow,
    ChannelRow,
    CheckinRow,
    EscalationRow,
    FeedFailureRow,
    IncidentRow,
    NightRow,
    PlayVillageRow,
    SmsGroupRow,
    WeekReport,
    report_period,
)
from broadcaster.report.pdf import write_pdf
from broadcaster.report.xlsx import write_xlsx
from tests.conftest import unavailable

TZ = ZoneInfo("Asia/Shanghai")
TOWN = "石门镇"
MONDAY = date(2026, 11, 23)
LEVELS = [3, 4, 5, 4, 2, None, 1]
POPPLER = ("pdftotext", "pdffonts", "pdftoppm")


def at(d: date, h: int, m: int = 0) -> datetime:
    return datetime(d.year, d.month, d.day, h, m, tzinfo=TZ)


def sample_report() -> WeekReport:
    """One week in 2026-W48: seven nights (one without a reading), three groups, three villages,
    two broadcasts, chats, check-ins, a feed failure, a deadline escalation, an incident with a
    correction."""
    period = report_period("2026-W48", None, None, MONDAY)
    nights = []
    for i, lv in enumerate(LEVELS):
        alert = 100 + i if lv is not None and lv >= 3 else None
        nights.append(NightRow(MONDAY + timedelta(days=i), lv, L.LEVEL_NAMES.get(lv, "") if lv else "",
                               "XX县气象台" if lv else "", alert, "done" if alert else ""))
    return WeekReport(
        town=TOWN, period_label=period.label, start=period.start, end=period.end,
        generated_at=at(date(2026, 11, 27), 15, 0), nights=nights,
        sms_by_group=[
            SmsGroupRow("cadres", "村干部", 128, 121, 7, {"unreachable": 5, "cap": 2}),
            SmsGroupRow("vulnerable", "重点关注户联系人", 342, 330, 12, {"unreachable": 9, "cap": 3}),
            SmsGroupRow("duty", "值班人员", 6, 6, 0, {}),
        ],
        plays_by_village=[PlayVillageRow("东村", 16, 1, 0, 1), PlayVillageRow("西村", 15, 2, 1, 0),
                          PlayVillageRow("南村", 17, 0, 0, 0)],
        broadcasts=[
            BroadcastRow(501, at(date(2026, 11, 25), 9, 12), "刘站长", "陈镇长",
                         "今晚有寒潮，各户请检查烟囱和风斗，睡前熄灭炉火，不要封火压煤。",
                         ["东村", "西村"], "done"),
            BroadcastRow(502, at(date(2026, 11, 28), 16, 40), "刘站长", None,
                         "周日上午九点在村委会免费发放一氧化碳报警器，请每户派一人领取。" * 3,
                         ["all"], "pending_approval"),
        ],
        chats=[ChannelRow("石门镇防煤气工作群", 9, 1)],
        displays=[ChannelRow("东村村委会显示屏", 7, 0)],
        checkins_by_village=[CheckinRow("东村", 42, 40, 2), CheckinRow("西村", 37, 31, 6)],
        checkins_by_cadre=[CheckinRow("张三", 20, 19, 1), CheckinRow("李四", 37, 31, 6)],
        feed_failures=[FeedFailureRow(at(date(2026, 11, 28), 16, 30), "qweather",
                                      "HTTPSConnectionPool(host='devapi.qweather.com', port=443): "
                                      "Max retries exceeded with url: /v7/indices/1d?type=10")],
        escalations=[EscalationRow(at(date(2026, 11, 28), 17, 30), "deadline",
                                   "17:30 前未收到有效预报，已短信通知值班人员 孙八")],
        incidents=[IncidentRow(7, "西村", at(date(2026, 11, 26), 6, 40), 3, 0,
                               "西村王某家三人晨起头晕恶心，疑似煤炉封火导致一氧化碳中毒，已送镇卫生院。",
                               "开窗通风，熄灭炉火，村干部入户检查同组 12 户烟道。",
                               ["涉及人数更正为 3 人（原报 2 人），均已出院。"])],
    )


def need_poppler() -> None:
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:  # CI (BROADCASTER_REQUIRE_SERVICES) fails instead of skipping
        unavailable(f"poppler-utils missing ({', '.join(missing)}): run tests/install-report-tools.sh")


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("report")
    r = sample_report()
    return write_xlsx(r, out / "周报-2026-W48.xlsx"), write_pdf(r, out / "周报-2026-W48.pdf")


def table(ws) -> list[list]:  # type: ignore[no-untyped-def]
    """The rows below a sheet's title and header, as values."""
    return [list(row) for row in ws.iter_rows(min_row=3, values_only=True)]


def test_workbook_numbers(files: tuple[Path, Path]) -> None:
    wb = openpyxl.load_workbook(files[0])
    assert wb.sheetnames == ["概览", "短信", "喇叭", "广播", "群消息", "显示屏", "包户核实",
                             "数据源与升级", "事故"]
    ov = wb["概览"]
    assert TOWN in ov["A1"].value and "2026年第48周" in ov["B2"].value
    assert ov.freeze_panes == "A7"
    nights = [row[:7] for row in ov.iter_rows(min_row=7, max_row=13, values_only=True)]
    assert [n[0] for n in nights] == [(MONDAY + timedelta(days=i)).isoformat() for i in range(7)]
    assert [n[2] for n in nights] == LEVELS
    assert nights[0][1] == "周一" and nights[1][3] == "容易发生" and nights[0][5] == 100
    assert nights[5][3] == "无数据" and nights[6][6] == "未发布预警"
    assert ov["C9"].fill.fgColor.rgb.endswith("C62828")  # level 5 in red
    summary = {row[0]: row[1] for row in ov.iter_rows(min_row=7, max_row=22, min_col=9, max_col=10,
                                                      values_only=True)}
    assert summary["短信发送"] == 476 and summary["喇叭播放"] == 48 and summary["事故死亡人数"] == 0

    sms = wb["短信"]
    assert [c.value for c in sms[2]] == ["分组", "分组名称", "已发送", "已送达", "失败", "送达率",
                                         "失败：号码不可达", "失败：超出发送上限"]
    assert table(sms) == [["cadres", "村干部", 128, 121, 7, "94.5%", 5, 2],
                          ["vulnerable", "重点关注户联系人", 342, 330, 12, "96.5%", 9, 3],
                          ["duty", "值班人员", 6, 6, 0, "100.0%", 0, 0],
                          ["合计", None, 476, 457, 19, "96.0%", 14, 5]]
    assert sms.freeze_panes == "A3"
    assert table(wb["喇叭"])[-1] == ["合计", 48, 3, 1, 1]
    casts = table(wb["广播"])
    assert [(b[0], b[2], b[3], b[4], b[6]) for b in casts] == [
        (501, "刘站长", "陈镇长", "东村、西村", "已完成"), (502, "刘站长", "—", "全部村", "待审批")]
    assert casts[0][1] == datetime(2026, 11, 25, 9, 12)
    assert table(wb["群消息"]) == [["石门镇防煤气工作群", 9, 1], ["合计", 9, 1]]
    assert table(wb["包户核实"])[1] == ["村", "西村", 37, 31, 6, "83.8%"]
    events = table(wb["数据源与升级"])
    assert [e[1] for e in events] == ["数据源故障", "升级通知"] and "孙八" in events[1][3]
    incident = table(wb["事故"])[0]
    assert incident[:5] == [7, "西村", datetime(2026, 11, 26, 6, 40), 3, 0]
    assert incident[7] == "更正1：涉及人数更正为 3 人（原报 2 人），均已出院。"


def test_workbook_chart_has_cached_values(files: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(files[0]) as z:
        chart = z.read("xl/charts/chart1.xml").decode()
    assert "<c:barChart>" in chart and "<c:numCache>" in chart and "<c:strCache>" in chart
    assert "<c:v>5</c:v>" in chart and "<c:v>2026-11-23</c:v>" in chart
    assert chart.count("<c:dPt>") == 7  # one colour per night


def test_empty_sections_say_so(tmp_path: Path) -> None:
    r = sample_report()
    r.sms_by_group, r.broadcasts, r.incidents, r.chats, r.displays = [], [], [], [], []
    r.checkins_by_village, r.checkins_by_cadre = [], []
    wb = openpyxl.load_workbook(write_xlsx(r, tmp_path / "r.xlsx"))
    assert wb.sheetnames == ["概览", "短信", "喇叭", "广播", "数据源与升级", "事故"]
    for name in ("短信", "广播", "事故"):
        assert [row[0] for row in table(wb[name])] == ["本周无"], name


def test_pdf_text_and_fonts(files: tuple[Path, Path]) -> None:
    need_poppler()
    text = run("pdftotext", "-layout", str(files[1]), "-").stdout
    assert f"{TOWN}一氧化碳（煤气）中毒预警周报" in text
    for i in range(7):
        assert (MONDAY + timedelta(days=i)).isoformat() in text
    for number in ("476", "457", "19", "128", "121", "342", "330", "48", "94.5%", "501", "502"):
        assert number in text, number
    flat = re.sub(r"\s+", "", text)  # pdftotext keeps some spaces and a table wraps lines
    assert "短信发送476条" in flat and "送达率96.0%" in flat and "涉及/死亡3人/0人" in flat
    assert "涉及人数更正为3人" in flat and "陈镇长" in text and "第 1 页 / 共" in text
    fonts = run("pdffonts", str(files[1]))
    assert "Mismatch" not in fonts.stderr and "Syntax" not in fonts.stderr
    rows = fonts.stdout.splitlines()[2:]
    assert rows and all(line.split()[-5] == "yes" for line in rows), fonts.stdout  # emb column


def test_pdf_page_renders(files: tuple[Path, Path], tmp_path: Path) -> None:
    need_poppler()
    out = run("pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(files[1]),
              str(tmp_path / "page"))
    assert not out.stderr
    png = next(tmp_path.glob("page*.png"))
    assert png.stat().st_size > 10_000


def test_pdf_text_longer_than_a_page_continues(tmp_path: Path) -> None:
    """fpdf2 refuses a table row taller than a page; an incident's account has no length limit."""
    r = sample_report()
    r.incidents = [dataclasses.replace(r.incidents[0], description="煤炉封火，门窗紧闭。" * 700)]
    path = write_pdf(r, tmp_path / "long.pdf")
    if shutil.which("pdftotext"):
        text = re.sub(r"\s+", "", run("pdftotext", str(path), "-").stdout)
        assert text.count("门窗紧闭") == 700


def test_season_renders_fast(tmp_path: Path) -> None:
    r = sample_report()
    first = date(2026, 10, 15)
    r.nights = [NightRow(first + timedelta(days=i), 1 + i % 5, "", "XX县气象台", 1000 + i, "done")
                for i in range(180)]
    base = r.broadcasts[0]
    r.broadcasts = [BroadcastRow(1000 + i, base.created_at, base.author, base.approver,
                                 base.text, base.villages, "done") for i in range(500)]
    t0 = time.perf_counter()
    write_xlsx(r, tmp_path / "s.xlsx")
    write_pdf(r, tmp_path / "s.pdf")
    # The bound for a whole season (bench/report_season.py measures it with the ledger): a
    # layout that went quadratic would blow it; a busy shared machine alone should not.
    assert time.perf_counter() - t0 < 10.0


def test_report_period() -> None:
    p = report_period("2026-W48", None, None, MONDAY)
    assert (p.start, p.end, p.file_stem) == (date(2026, 11, 23), date(2026, 11, 29), "周报-2026-W48")
    assert p.start.weekday() == 0 and p.end.weekday() == 6
    assert report_period("2026-w1", None, None, MONDAY).start == date(2025, 12, 29)
    assert report_period("2026-W53", None, None, MONDAY).end == date(2027, 1, 3)  # 2026 has 53
    assert report_period(None, None, None, date(2026, 11, 29)).file_stem == "周报-2026-W48"
    assert report_period(None, None, None, date(2026, 11, 30)).file_stem == "周报-2026-W49"
    rng = report_period(None, "2026-11-23", date(2026, 11, 29), MONDAY)
    assert (rng.start, rng.end, rng.file_stem) == (MONDAY, date(2026, 11, 29),
                                                   "周报-2026-11-23_2026-11-29")
    assert "共7天" in rng.label
    for bad in [("2026-48", None, None), ("2026-W54", None, None), ("2025-W53", None, None),
                ("2026-W48", MONDAY, MONDAY), (None, MONDAY, None),
                (None, "2026-11-30", "2026-11-23"), (None, "2026-13-01", "2026-12-01"),
                (None, date(2025, 1, 1), date(2026, 6, 1))]:
        with pytest.raises(ValueError) as e:
            report_period(*bad, MONDAY)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in str(e.value)), bad
