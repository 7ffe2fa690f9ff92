"""The weekly report as an .xlsx workbook (xlsxwriter).

xlsxwriter rather than openpyxl because it stores a chart's values in the chart part
(``c:numCache``/``c:strCache``): phone previewers that never recalculate still draw the nightly
levels. Numbers are written as values, never formulas, for the same reason. The night's date is
written as text (``2026-11-23``) so that the chart's category cache holds readable labels
instead of date serial numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.workbook import Workbook
from xlsxwriter.worksheet import Worksheet

from broadcaster.report import labels as L
from broadcaster.report.model import WeekReport

TITLE = "一氧化碳（煤气）中毒预警周报"
HEADER_FILL = "#ECEFF1"
MAX_WIDTH = 60
LINE_PT = 14.0  # height of one line of 10 pt text


@dataclass(frozen=True)
class Col:
    """A table column: header, kind (text, int, wrap, time) and the widest it may get."""

    header: str
    kind: str = "text"
    max_width: int = 40


class _Formats:
    """The workbook's cell formats, created once (xlsxwriter keeps every format object)."""

    def __init__(self, wb: Workbook) -> None:
        base = {"font_name": "微软雅黑", "font_size": 10, "valign": "top"}
        self.wb = wb
        self.base = base
        self.title = wb.add_format({**base, "font_size": 16, "bold": True})
        self.label = wb.add_format({**base, "bold": True})
        self.header = wb.add_format({**base, "bold": True, "bg_color": HEADER_FILL, "border": 1,
                                     "text_wrap": True})
        self.kind: dict[str, Format] = {
            "text": wb.add_format({**base, "border": 1}),
            "int": wb.add_format({**base, "border": 1, "num_format": "0"}),
            "wrap": wb.add_format({**base, "border": 1, "text_wrap": True}),
            "time": wb.add_format({**base, "border": 1, "num_format": "yyyy-mm-dd hh:mm",
                                   "align": "left"}),
        }
        self.total = wb.add_format({**base, "border": 1, "bold": True, "bg_color": HEADER_FILL})
        self.none = wb.add_format({**base, "italic": True, "font_color": "#616161"})
        self.levels = {lv: self._level(L.level_colour(lv)) for lv in (*L.LEVEL_COLOURS, None)}

    def _level(self, fill: str) -> Format:
        return self.wb.add_format({**self.base, "border": 1, "bold": True, "align": "center",
                                   "bg_color": fill, "font_color": L.text_colour_on(fill)})


def _cell_width(value: Any) -> int:
    if isinstance(value, datetime):
        return len(L.fmt_time(value))
    text = "" if value is None else str(value)
    return max((L.display_width(line) for line in text.splitlines()), default=0)


def _write_table(ws: Worksheet, f: _Formats, top: int, cols: Sequence[Col],
                 rows: Sequence[Sequence[Any]], none_text: str,
                 style: Callable[[int, int, Any], Format | None] | None = None,
                 total: Sequence[Any] | None = None) -> int:
    """Header at row ``top``, then ``rows`` (or ``none_text``), then an optional total row.

    Column widths come from the content (CJK counts double). Rows with wrapped text get an
    explicit height: xlsxwriter cannot autofit, and LibreOffice and phone previewers keep the
    default height, hiding all but the first line. Returns the next free row.
    """
    widths = [L.display_width(c.header) for c in cols]
    for row in rows:
        for c, value in enumerate(row):
            widths[c] = max(widths[c], _cell_width(value))
    widths = [min(max(w, 6), col.max_width, MAX_WIDTH) + 2 for w, col in zip(widths, cols)]
    for c, width in enumerate(widths):
        ws.set_column(c, c, width)
    ws.write_row(top, 0, [c.header for c in cols], f.header)
    r = top + 1
    if not rows:
        ws.write(r, 0, none_text, f.none)
        r += 1
    wrapped = [c for c, col in enumerate(cols) if col.kind == "wrap"]
    for row in rows:
        for c, (col, value) in enumerate(zip(cols, row, strict=True)):
            fmt = (style(r, c, value) if style else None) or f.kind[col.kind]
            if value is None:
                ws.write_blank(r, c, None, fmt)
            elif isinstance(value, datetime):
                ws.write_datetime(r, c, value, fmt)
            else:
                ws.write(r, c, value, fmt)
        lines = max((_lines(row[c], widths[c] - 1) for c in wrapped), default=1)
        if lines > 1:
            ws.set_row(r, min(LINE_PT * lines + 3, 409))  # 409 pt: Excel's tallest row
        r += 1
    if total is not None:
        ws.write_row(r, 0, list(total), f.total)
        r += 1
    return r


def _lines(value: Any, width: int) -> int:
    """How many lines ``value`` takes in a wrapped cell ``width`` characters wide."""
    text = "" if value is None else str(value)
    return sum(max(1, math.ceil(L.display_width(line) / max(width, 1)))
               for line in text.splitlines() or [""])


def _section(wb: Workbook, f: _Formats, r: WeekReport, name: str, heading: str, cols: Sequence[Col],
             rows: Sequence[Sequence[Any]], total: Sequence[Any] | None = None) -> Worksheet:
    """One sheet: a title line, a frozen header row and the table."""
    ws = wb.add_worksheet(name)
    ws.write(0, 0, f"{heading}（{r.town}，{r.period_label}）", f.label)
    _write_table(ws, f, 1, cols, rows, r.none_text, total=total)
    ws.freeze_panes(2, 0)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    ws.repeat_rows(1)
    return ws


def _overview(wb: Workbook, f: _Formats, r: WeekReport) -> None:
    ws = wb.add_worksheet("概览")
    ws.write(0, 0, f"{r.town}{TITLE}", f.title)
    ws.set_row(0, 26)
    for i, (k, v) in enumerate((("时段", r.period_label), ("乡镇", r.town),
                                ("生成时间", L.fmt_time(r.generated_at))), start=1):
        ws.write(i, 0, k, f.label)
        ws.write(i, 1, v)
    top = 5
    cols = [Col("日期"), Col("星期"), Col("等级", "int"), Col("等级名称"), Col("数据源", max_width=30),
            Col("预警编号", "int"), Col("预警状态")]
    rows = [[L.fmt_date(n.night), L.weekday(n.night), n.level, n.level_name or L.level_text(n.level),
             n.source or L.EMPTY, n.alert_id, L.alert_status(n.alert_status, n.alert_id)]
            for n in r.nights]
    level_col = 2

    def style(_row: int, col: int, value: Any) -> Format | None:
        return f.levels.get(value) if col == level_col else None

    end = _write_table(ws, f, top, cols, rows, r.none_text, style)
    ws.set_column(0, 0, 12)
    ws.freeze_panes(top + 1, 0)
    ws.set_landscape()
    ws.set_paper(9)  # A4
    ws.fit_to_pages(1, 0)
    _summary(ws, f, r, top)
    if r.nights:
        _chart(wb, ws, r, top, end - 1, level_col)


def _summary(ws: Worksheet, f: _Formats, r: WeekReport, top: int) -> None:
    """Key figures to the right of the nightly table, above the chart."""
    sent, delivered, failed = r.sms_totals()
    played, p_failed, expired, withdrawn = r.play_totals()
    levels = [n.level for n in r.nights if n.level is not None]
    items: list[tuple[str, Any]] = [
        ("夜间数", len(r.nights)),
        ("发布预警的夜间", sum(1 for n in r.nights if n.alert_id is not None)),
        ("最高等级", max(levels) if levels else L.EMPTY),
        ("短信发送", sent), ("短信送达", delivered), ("短信失败", failed),
        ("喇叭播放", played), ("喇叭失败", p_failed), ("喇叭过期", expired), ("喇叭撤回", withdrawn),
        ("人工广播", len(r.broadcasts)),
        ("数据源故障", len(r.feed_failures)), ("升级通知", len(r.escalations)),
        ("事故", len(r.incidents)),
        ("事故涉及人数", sum(i.affected for i in r.incidents)),
        ("事故死亡人数", sum(i.deaths for i in r.incidents)),
    ]
    ws.write_row(top, 8, ["汇总", "数量"], f.header)
    for i, (k, v) in enumerate(items, start=top + 1):
        ws.write(i, 8, k, f.kind["text"])
        ws.write(i, 9, v, f.kind["int"])
    ws.set_column(8, 8, 16)
    ws.set_column(9, 9, 8)


def _chart(wb: Workbook, ws: Worksheet, r: WeekReport, first_header: int, last: int,
           level_col: int) -> None:
    """A native column chart of the nightly levels, each column in its level's colour."""
    first = first_header + 1
    chart = wb.add_chart({"type": "column"})
    points = [{"fill": {"color": L.level_colour(n.level)}, "border": {"none": True}}
              for n in r.nights]
    chart.add_series({
        "name": "等级",
        "categories": ["概览", first, 0, last, 0],
        "values": ["概览", first, level_col, last, level_col],
        "points": points,
        "gap": 40,
        "data_labels": {"value": len(r.nights) <= 31},
    })
    chart.set_title({"name": "每晚一氧化碳中毒气象条件等级", "name_font": {"size": 12}})
    chart.set_y_axis({"min": 0, "max": 5, "major_unit": 1, "name": "等级",
                      "major_gridlines": {"visible": True, "line": {"color": "#E0E0E0"}}})
    chart.set_x_axis({"num_font": {"rotation": -45 if len(r.nights) > 10 else 0}})
    chart.set_legend({"none": True})
    width = max(640, min(12 * len(r.nights), 1800))
    chart.set_size({"width": width, "height": 320})
    ws.insert_chart(first_header + 18, 8, chart)


def write_xlsx(r: WeekReport, path: str | Path) -> Path:
    """Write the report as a workbook: 概览 with the nightly chart, then one sheet per section.

    Sheets for chats, displays and check-ins are left out when those are empty; the others are
    always there and say 本周无 (本期无 for a date range) when empty. Returns the path.
    """
    path = Path(path)
    # Times are the town's wall clock already; Excel has no time zones.
    wb = xlsxwriter.Workbook(str(path), {"remove_timezone": True})
    wb.set_properties({"title": f"{r.town}{TITLE} {r.period_label}", "author": r.town,
                       "company": r.town, "comments": "由 broadcaster 生成",
                       "created": r.generated_at.replace(tzinfo=None)})
    f = _Formats(wb)
    _overview(wb, f, r)
    _sms(wb, f, r)
    _section(wb, f, r, "喇叭", "喇叭播放（按村）",
             [Col("村"), Col("已播放", "int"), Col("失败", "int"), Col("过期", "int"),
              Col("已撤回", "int")],
             [[p.village, p.played, p.failed, p.expired, p.withdrawn] for p in r.plays_by_village],
             ["合计", *r.play_totals()] if r.plays_by_village else None)
    _section(wb, f, r, "广播", "人工广播",
             [Col("编号", "int"), Col("创建时间", "time"), Col("发起人"), Col("审批人"),
              Col("村", "wrap", 24), Col("内容", "wrap", 50), Col("状态")],
             [[b.id, b.created_at, b.author, b.approver or L.EMPTY, L.villages_text(b.villages),
               b.text, L.alert_status(b.status, b.id)] for b in r.broadcasts])
    for rows, name, what in ((r.chats, "群消息", "群"), (r.displays, "显示屏", "显示屏")):
        if rows:
            _section(wb, f, r, name, f"{name}（按{what}）",
                     [Col(what), Col("已发送", "int"), Col("失败", "int")],
                     [[c.target, c.sent, c.failed] for c in rows],
                     ["合计", sum(c.sent for c in rows), sum(c.failed for c in rows)])
    checkins = [("村", c) for c in r.checkins_by_village] + [("包户干部", c) for c in r.checkins_by_cadre]
    if checkins:
        _section(wb, f, r, "包户核实", "包户核实（按村、按包户干部）",
                 [Col("类别"), Col("名称"), Col("户数", "int"), Col("已答复", "int"),
                  Col("未答复", "int"), Col("答复率")],
                 [[k, c.name, c.households, c.answered, c.missing, L.rate(c.answered, c.households)]
                  for k, c in checkins])
    events = sorted([(e.at, "数据源故障", e.source, e.error) for e in r.feed_failures]
                    + [(e.at, "升级通知", L.escalation_kind(e.kind), e.detail) for e in r.escalations],
                    key=lambda e: e[0])
    _section(wb, f, r, "数据源与升级", "数据源故障与升级通知",
             [Col("时间", "time"), Col("类别"), Col("来源/类型", "wrap", 30), Col("详情", "wrap", 60)],
             [list(e) for e in events])
    _section(wb, f, r, "事故", "事故上报",
             [Col("编号", "int"), Col("村"), Col("发生时间", "time"), Col("涉及人数", "int"),
              Col("死亡人数", "int"), Col("经过", "wrap", 40), Col("处置措施", "wrap", 30),
              Col("更正", "wrap", 30)],
             [[i.id, i.village, i.occurred_at, i.affected, i.deaths, i.description,
               i.measures or L.EMPTY, "\n".join(f"更正{k}：{c}" for k, c in
                                                enumerate(i.corrections, 1)) or L.EMPTY]
              for i in r.incidents])
    wb.close()
    return path


def _sms(wb: Workbook, f: _Formats, r: WeekReport) -> None:
    codes = r.reason_codes()
    cols = [Col("分组"), Col("分组名称"), Col("已发送", "int"), Col("已送达", "int"),
            Col("失败", "int"), Col("送达率")] + [Col(f"失败：{L.reason(c)}", "int") for c in codes]
    rows = [[g.group, g.group_name, g.sent, g.delivered, g.failed, L.rate(g.delivered, g.sent),
             *(g.reasons.get(c, 0) for c in codes)] for g in r.sms_by_group]
    sent, delivered, failed = r.sms_totals()
    total = ["合计", "", sent, delivered, failed, L.rate(delivered, sent),
             *(sum(g.reasons.get(c, 0) for g in r.sms_by_group) for c in codes)]
    _section(wb, f, r, "短信", "短信（按分组）", cols, rows, total if rows else None)
