"""The weekly report filled from the ledger (issue 16, DESIGN A14): workbook and PDF against the
ledger's rows, the period rules, and ``broadcaster report``.

The week is tests/support/report_week.py: made by the flows, its outcomes recorded through the
ledger's transition methods. The PDF checks use poppler-utils (tests/install-report-tools.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa

from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.flows.report import build_report, make_report, period_from_options
from broadcaster.ledger import Alert, Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import ROOT, edit_yaml, local, unavailable
from tests.support.report_week import (
    EXPECTED_PLAYS,
    EXPECTED_SMS,
    FRIDAY_1500,
    MONDAY,
    NIGHT_LEVELS,
    W48,
    build_week,
    use_file_feed,
)

POPPLER = ("pdftotext", "pdffonts", "pdftoppm")


def copy_config(tmp: Path) -> Path:
    """config/ and audio/ copied into ``tmp`` (folder loudspeakers only, like conftest's confdir)."""
    shutil.copytree(ROOT / "config", tmp / "config")
    shutil.copytree(ROOT / "audio", tmp / "audio")
    edit_yaml(tmp / "config" / "directory.yaml", lambda d: [
        v.update(speakers=[sc for sc in v["speakers"] if not sc.get("builtin")]) for v in d["villages"]])
    return tmp / "config"


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, dict[str, Any]]]:
    confdir = copy_config(tmp_path_factory.mktemp("week"))
    feed = use_file_feed(confdir)
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(local(2026, 11, 22, 12)))
    ids = build_week(svc, feed)
    svc.clock.set(FRIDAY_1500)  # type: ignore[attr-defined]
    yield svc, ids
    svc.close()


@pytest.fixture(scope="module")
def files(week: tuple[Service, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    svc, _ = week
    period = period_from_options(W48, None, None, FRIDAY_1500.date())
    made = make_report(svc.cfg, svc.ledger, period, FRIDAY_1500, tmp_path_factory.mktemp("out"))
    xlsx, pdf = made.files
    assert (xlsx.name, pdf.name) == ("周报-2026-W48.xlsx", "周报-2026-W48.pdf")
    return xlsx, pdf


def table(ws: Any) -> list[list[Any]]:
    return [list(row) for row in ws.iter_rows(min_row=3, values_only=True)]


def ledger_sms(svc: Service, first: date, last: date) -> dict[str, tuple[int, int, int]]:
    """Straight from the rows, independently of the report's queries: (sent, delivered, failed)
    per SMS group for the alerts whose night lies in [first, last]."""
    with svc.ledger.reader() as s:
        rows = s.execute(sa.select(Delivery.sms_group, Delivery.state, Delivery.sent_at)
                         .join(Alert, Alert.id == Delivery.alert_id)
                         .where(Delivery.channel == "sms", Alert.night.between(first, last))).all()
    out: dict[str, list[int]] = {}
    for group, state, sent_at in rows:
        c = out.setdefault(group, [0, 0, 0])
        c[0] += sent_at is not None
        c[1] += state == "delivered"
        c[2] += state in ("failed", "expired")
    return {g: tuple(c) for g, c in out.items()}  # type: ignore[misc]


def test_workbook_numbers_match_the_ledger(week: tuple[Service, dict[str, Any]], files: tuple[Path, Path]) -> None:
    svc, ids = week
    wb = openpyxl.load_workbook(files[0])
    assert wb.sheetnames == ["概览", "短信", "喇叭", "广播", "数据源与升级", "事故"]

    ov = wb["概览"]
    assert "XX镇" in ov["A1"].value and "2026年第48周" in ov["B2"].value
    nights = [r[:7] for r in ov.iter_rows(min_row=7, max_row=12, values_only=True) if r[0]]
    # Friday 15:00: the nights from Monday to Thursday; Friday's has not begun.
    assert {n[0]: n[2] for n in nights} == NIGHT_LEVELS
    assert [n[5] for n in nights] == [ids["mon_alert"], None, ids["wed_alert"], None]
    assert [n[6] for n in nights] == ["已完成", "未发布预警", "已完成", "未发布预警"]
    assert nights[0][4] == "XX县气象台" and nights[1][3] == "无数据"

    sms = {row[0]: row for row in table(wb["短信"])}
    head = [c.value for c in wb["短信"][2]]
    assert head[:6] == ["分组", "分组名称", "已发送", "已送达", "失败", "送达率"]
    reasons = {h.removeprefix("失败："): i for i, h in enumerate(head) if h.startswith("失败：")}
    straight = ledger_sms(svc, MONDAY, MONDAY + timedelta(days=6))
    for group, (sent, delivered, failed, why) in EXPECTED_SMS.items():
        assert tuple(sms[group][2:5]) == (sent, delivered, failed) == straight[group], group
        shown = {name: sms[group][i] for name, i in reasons.items() if sms[group][i]}
        assert shown == {{"unreachable": "号码不可达", "cap": "超出发送上限", "expired": "过期未发出"}[k]: n
                         for k, n in why.items()}, group
    assert sms["cadres"][1] == "村干部" and sms["leaders"][1] == "镇领导"
    assert sms["合计"][2:5] == [12, 3, 3]  # week 47's Sunday alert is not counted

    plays = {row[0]: row[1:] for row in table(wb["喇叭"])}
    assert {v: tuple(plays[v]) for v in EXPECTED_PLAYS} == EXPECTED_PLAYS
    assert plays["合计"] == [3, 1, 1, 1]

    casts = table(wb["广播"])
    assert [(b[0], b[2], b[3], b[4], b[6]) for b in casts] == [
        (ids["broadcast"], "刘站长", "陈镇长", "东村、西村", "已撤销"),
        (ids["broadcast2"], "王干事", "陈镇长", "—", "已完成")]

    events = table(wb["数据源与升级"])
    assert [e[1] for e in events] == ["数据源故障", "升级通知"]
    assert events[0][0].strftime("%m-%d %H:%M") == "11-24 16:30" and "malformed JSON" in events[0][3]
    assert events[1][2] == "截止时未获预报，已通知值班" and "已短信通知值班人员 1 人" in events[1][3]

    (incident,) = table(wb["事故"])
    assert incident[:5] == [ids["incident"], "西村", local(2026, 11, 26, 6, 40).replace(tzinfo=None), 3, 0]
    assert incident[7] == "更正1：11-26 11:00 刘站长：涉及人数由 2 改为 3。说明：又有一人入院"

    with zipfile.ZipFile(files[0]) as z:
        chart = z.read("xl/charts/chart1.xml").decode()
    assert "<c:numCache>" in chart and "<c:v>5</c:v>" in chart and "<c:v>2026-11-25</c:v>" in chart


def need_poppler() -> None:
    missing = [t for t in POPPLER if shutil.which(t) is None]
    if missing:  # CI (BROADCASTER_REQUIRE_SERVICES) fails instead of skipping
        unavailable(f"poppler-utils missing ({', '.join(missing)}): run tests/install-report-tools.sh")


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)


def test_pdf_has_the_town_nights_and_counts_with_fonts_embedded(files: tuple[Path, Path],
                                                                 week: tuple[Service, dict[str, Any]]) -> None:
    need_poppler()
    _, ids = week
    text = run("pdftotext", "-layout", str(files[1]), "-").stdout
    assert "XX镇一氧化碳（煤气）中毒预警周报" in text
    for night in NIGHT_LEVELS:
        assert night in text, night
    flat = re.sub(r"\s+", "", text)
    assert "短信发送12条" in flat and "短信送达3条" in flat and "短信失败3条" in flat and "送达率25.0%" in flat
    assert "喇叭播放3次" in flat and "喇叭撤回1次" in flat and "事故1起" in flat and "涉及/死亡3人/0人" in flat
    assert "号码不可达1" in flat and "超出发送上限1" in flat and "陈镇长" in text
    assert f"事故#{ids['incident']}" in flat and "涉及人数由2改为3" in flat
    fonts = run("pdffonts", str(files[1]))
    rows = fonts.stdout.splitlines()[2:]
    assert rows and all(line.split()[-5] == "yes" for line in rows), fonts.stdout  # emb column


def test_pdf_first_page_renders(files: tuple[Path, Path], tmp_path: Path) -> None:
    """``BROADCASTER_SCREENSHOTS=docs`` copies the page to docs/report-page1.png (the README's)."""
    need_poppler()
    out = run("pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", str(files[1]), str(tmp_path / "page"))
    assert not out.stderr
    png = next(tmp_path.glob("page*.png"))
    assert png.stat().st_size > 30_000  # a page with its tables and chart, not a blank one
    if os.environ.get("BROADCASTER_SCREENSHOTS"):
        shutil.copy(png, Path(os.environ["BROADCASTER_SCREENSHOTS"]) / "report-page1.png")


def test_periods_follow_nights_and_incident_times(week: tuple[Service, dict[str, Any]]) -> None:
    svc, ids = week
    w47 = build_report(svc.cfg, svc.ledger, period_from_options("2026-W47", None, None, MONDAY), FRIDAY_1500)
    # A Sunday night belongs to its week; nights without a poll are listed, without a level.
    assert {n.night.isoformat(): n.level for n in w47.nights if n.level} == {"2026-11-22": 4}
    assert len(w47.nights) == 7 and w47.nights[0].level_name == ""
    assert sum(g.sent for g in w47.sms_by_group) == 3 and not w47.incidents and not w47.broadcasts
    span = build_report(svc.cfg, svc.ledger, period_from_options(None, "2026-11-22", "2026-11-23", MONDAY),
                        FRIDAY_1500)
    assert [n.level for n in span.nights] == [4, 3] and sum(g.sent for g in span.sms_by_group) == 6
    assert span.none_text == "本期无"
    # An SMS written before groups were recorded counts under its number's group in the directory.
    with svc.ledger.session() as s:
        s.execute(sa.update(Delivery).where(Delivery.alert_id == ids["sun_alert"]).values(sms_group=None))
    again = build_report(svc.cfg, svc.ledger, period_from_options("2026-W47", None, None, MONDAY), FRIDAY_1500)
    assert [(g.group, g.sent) for g in again.sms_by_group] == [("cadres", 3)]


def test_cli_writes_the_files_and_names_bad_options(week: tuple[Service, dict[str, Any]], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    svc, _ = week
    cfg = str(svc.cfg.path)
    assert main(["report", "-c", cfg, "--week", W48, "--format", "xlsx", "--out", str(tmp_path / "o")]) == 0
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["周报-2026-W48.xlsx"]
    assert main(["report", "-c", cfg, "--from", "2026-11-23", "--to", "2026-11-25", "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.glob("周报-2026-11-23_2026-11-25.*")} == {
        "周报-2026-11-23_2026-11-25.xlsx", "周报-2026-11-23_2026-11-25.pdf"}
    capsys.readouterr()
    for argv, option in ((["--week", "2026-48"], "--week"), (["--week", "2026-W54"], "--week"),
                         (["--from", "2026-11-23"], "--to"), (["--from", "11/23", "--to", "2026-11-29"], "--from"),
                         (["--from", "2026-11-29", "--to", "2026-11-23"], "--to"),
                         (["--week", W48, "--from", "2026-11-23", "--to", "2026-11-29"], "--week"),
                         (["--out", cfg], "--out")):
        assert main(["report", "-c", cfg, *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"参数错误：{option}：") and re.search(r"[\u4e00-\u9fff]", err), (argv, err)
    with pytest.raises(SystemExit) as e:
        main(["report", "-c", cfg, "--format", "doc"])
    assert e.value.code == 2 and "--format" in capsys.readouterr().err


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_the_same_week_on_postgresql(ledger_url: str, confdir: Path, make_service: Any) -> None:
    """Every section's query on PostgreSQL (the module's week is on SQLite): same numbers."""
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(database=ledger_url))
    feed = use_file_feed(confdir)
    svc = make_service(at=local(2026, 11, 22, 12))
    ids = build_week(svc, feed)
    r = build_report(svc.cfg, svc.ledger, period_from_options(W48, None, None, MONDAY), FRIDAY_1500)
    assert {g.group: (g.sent, g.delivered, g.failed, g.reasons) for g in r.sms_by_group} == EXPECTED_SMS
    assert {p.village: (p.played, p.failed, p.expired, p.withdrawn) for p in r.plays_by_village} == EXPECTED_PLAYS
    assert {n.night.isoformat(): n.level for n in r.nights} == NIGHT_LEVELS
    assert [(b.id, b.status) for b in r.broadcasts] == [(ids["broadcast"], "cancelled"), (ids["broadcast2"], "done")]
    assert [e.kind for e in r.escalations] == ["deadline"] and len(r.feed_failures) == 1
    assert [(i.id, i.affected, len(i.corrections)) for i in r.incidents] == [(ids["incident"], 3, 1)]
