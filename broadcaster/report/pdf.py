"""The weekly report as an A4 portrait PDF in Chinese (fpdf2, chart by matplotlib).

Why fpdf2 and not matplotlib's PdfPages: the only CJK font we ship is Noto Sans SC from the
``pylopdf-fonts-zh-cn`` wheel, an OpenType font with CFF outlines. Checked with poppler 22:

- matplotlib, ``pdf.fonttype: 3`` (default): glyphs embedded as Type 3 procedures. Copying text
  out of such PDFs lost digits in the team's earlier tries (a one-line sample read back correctly
  here), and Type 3 glyphs render poorly in some viewers.
- matplotlib, ``pdf.fonttype: 42``: embedded and pdftotext is complete, but matplotlib labels the
  CFF font program as TrueType (``CID Type 0C (OT)`` in pdffonts) and every poppler tool warns
  "Mismatch between font type and embedded font file".
- fpdf2 ``add_font(otf)``: subset embedded as ``CID Type 0C`` with a ToUnicode map (pdffonts:
  emb yes, sub yes, uni yes), pdftotext returns the Chinese text and every digit, no warnings.
  fpdf2 also breaks CJK text into lines, measures it, and has footers for page numbers, which
  PdfPages would need us to write by hand. (Its ``table()`` lays every cell out twice, so the
  section tables are drawn row by row in :meth:`_ReportPDF.grid`, with the header repeated on
  every page.)

So the text and tables are fpdf2's; the nightly chart is drawn by matplotlib to SVG with text
as paths (``svg.fonttype: path``, no second font in the PDF) and placed by fpdf2 as vectors.
The font has only a regular weight: emphasis comes from size and colour, never bold.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import MethodReturnValue, WrapMode
from fpdf.fonts import FontFace

from broadcaster.report import labels as L
from broadcaster.fonts import cjk_font_path
from broadcaster.report.model import IncidentRow, WeekReport

FONT = "NotoSansSC"
TITLE = "一氧化碳（煤气）中毒预警周报"
WIDTH = 180.0  # A4 210 mm minus 15 mm margins
HEAD_FILL = (236, 239, 241)
TOTAL_FILL = (245, 245, 245)
GREY = (97, 97, 97)
TABLE_PT = 9.0
CELL_PAD = 1.4  # mm left and right of a table cell's text
CELL_PAD_V = 0.9  # mm above and below it
MAX_CELL_LINES = 40  # a page holds about 55 table lines

_MPL_LOCK = threading.Lock()
# fpdf2's font subsetting logs every glyph list at INFO: a page of noise per report.
logging.getLogger("fontTools").setLevel(logging.WARNING)

# A column: header, width in mm, alignment (L, R or C).
Column = tuple[str, float, str]


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return (int(hex_colour[1:3], 16), int(hex_colour[3:5], 16), int(hex_colour[5:7], 16))


class _ReportPDF(FPDF):
    """A4 portrait with the CJK font registered and a footer with page numbers."""

    def __init__(self, r: WeekReport) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.report = r
        self.add_font(FONT, fname=str(cjk_font_path()))
        self.set_margins(15, 15, 15)
        self.set_auto_page_break(True, margin=18)
        self.set_lang("zh-CN")
        self.set_title(f"{r.town}{TITLE} {r.period_label}")
        self.set_author(r.town)
        self.set_creator("broadcaster")
        self.set_creation_date(r.generated_at)

    def footer(self) -> None:
        self.set_y(-13)
        self.set_font(FONT, size=8)
        self.set_text_color(*GREY)
        self.cell(0, 5, f"{self.report.town}{TITLE}  {self.report.period_label}"
                        f"    第 {self.page_no()} 页 / 共 {{nb}} 页", align="C")
        self.set_text_color(0)

    def heading(self, text: str) -> None:
        """A section heading, moved to the next page when too little room is left for a table."""
        if self.get_y() > self.h - self.b_margin - 30:
            self.add_page()
        self.ln(3)
        self.set_font(FONT, size=13)
        self.set_text_color(21, 101, 192)
        self.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
        self.set_text_color(0)
        self.set_font(FONT, size=TABLE_PT)

    def paragraph(self, text: str, size: float = 10, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
        self.set_font(FONT, size=size)
        self.set_text_color(*colour)
        self.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT",
                        wrapmode=WrapMode.CHAR)
        self.set_text_color(0)

    def grid(self, cols: Sequence[Column], rows: Sequence[Sequence[str]],
             fills: Sequence[dict[int, str]] | None = None, total: Sequence[str] | None = None) -> None:
        """A table with a repeated header; ``fills`` colours single cells (hex) per row.

        Drawn row by row here rather than with fpdf2's ``table()``, which lays every cell out
        twice with a full line-breaking pass: a season's report (180 nights, 500 broadcasts) took
        three times as long. A cell that fits its width is measured by its width alone.
        """
        if not rows:
            self.paragraph(self.report.none_text, TABLE_PT + 1, GREY)
            return
        self.set_font(FONT, size=TABLE_PT)
        header = self._lines(cols, [c[0] for c in cols])
        head_fill = {j: HEAD_FILL for j in range(len(cols))}
        self._draw(cols, header, head_fill, header)
        for i, values in enumerate(rows):
            cell_fills = {j: _rgb(f) for j, f in (fills[i] if fills else {}).items()}
            for part in self._fit(self._lines(cols, values)):
                self._draw(cols, part, cell_fills, header)
        if total is not None:
            self._draw(cols, self._lines(cols, total), {j: TOTAL_FILL for j in range(len(cols))}, header)
        self.set_text_color(0)
        self.ln(1)

    def _lines(self, cols: Sequence[Column], values: Sequence[str]) -> list[list[str]]:
        """Each cell's text as the lines it takes in its column (wrapped at any character)."""
        out = []
        for (_, width, _), text in zip(cols, values, strict=True):
            inner = width - 2 * CELL_PAD
            if "\n" not in text and self.get_string_width(text) <= inner:
                out.append([text])
                continue
            lines: list[str] = self.multi_cell(  # type: ignore[assignment]
                inner, 1, text, dry_run=True, output=MethodReturnValue.LINES,
                wrapmode=WrapMode.CHAR, padding=0)
            out.append(lines or [""])
        return out

    @staticmethod
    def _fit(cells: list[list[str]]) -> list[list[list[str]]]:
        """One row, or several when a cell has more lines than a page holds (an incident's
        account has no length limit): such a cell continues in the following rows."""
        height = max(len(c) for c in cells)
        if height <= MAX_CELL_LINES:
            return [cells]
        return [[c[k:k + MAX_CELL_LINES] or [""] for c in cells] for k in range(0, height, MAX_CELL_LINES)]

    def _draw(self, cols: Sequence[Column], cells: list[list[str]], fills: dict[int, tuple[int, int, int]],
              header: list[list[str]]) -> None:
        """One row at the current position (on a new page, under the header again, when it does
        not fit): bordered cells, text centred vertically, aligned per column."""
        line = TABLE_PT * 0.5
        height = max(len(c) for c in cells) * line + 2 * CELL_PAD_V
        if self.get_y() + height > self.page_break_trigger and cells is not header:
            self.add_page()
            self.set_font(FONT, size=TABLE_PT)
            self._draw(cols, header, {j: HEAD_FILL for j in range(len(cols))}, header)
        x, y = self.l_margin, self.get_y()
        for j, ((_, width, align), lines) in enumerate(zip(cols, cells, strict=True)):
            fill = fills.get(j)
            if fill:
                self.set_fill_color(*fill)
            self.rect(x, y, width, height, style="DF" if fill else "D")
            self.set_text_color(*(_rgb(L.text_colour_on(_hex(fill))) if fill else (0, 0, 0)))
            top = y + (height - len(lines) * line) / 2
            for k, text in enumerate(lines):
                self.set_xy(x + CELL_PAD, top + k * line)
                self.cell(width - 2 * CELL_PAD, line, text, align=align)
            x += width
        self.set_xy(self.l_margin, y + height)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


@functools.cache
def _chart_font() -> str:
    from matplotlib import font_manager

    path = str(cjk_font_path())
    font_manager.fontManager.addfont(path)
    return font_manager.FontProperties(fname=path).get_name()


def _chart_svg(r: WeekReport) -> bytes:
    """The nightly levels as a column chart in the levels' colours, as SVG with text as paths."""
    with _MPL_LOCK:  # rc_context changes matplotlib's global settings while it lasts
        return _draw_chart(r)


def _draw_chart(r: WeekReport) -> bytes:
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(r.nights)
    with matplotlib.rc_context({"font.family": _chart_font(), "svg.fonttype": "path",
                                "svg.hashsalt": "report", "font.size": 8,
                                "axes.unicode_minus": False}):
        fig = Figure(figsize=(7.1, 2.7))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        heights = [nt.level or 0 for nt in r.nights]
        ax.bar(range(n), heights, width=0.7 if n <= 31 else 0.9,
               color=[L.level_colour(nt.level) for nt in r.nights])
        if n <= 31:
            for x, nt in enumerate(r.nights):
                ax.text(x, (nt.level or 0) + 0.08, str(nt.level) if nt.level else "无数据",
                        ha="center", va="bottom", fontsize=8,
                        color="black" if nt.level else L.NO_LEVEL_COLOUR)
        step = 1 if n <= 14 else math.ceil(n / 15)
        ticks = list(range(0, n, step))
        fmt = (lambda d: f"{d:%m-%d}\n{L.weekday(d)}") if n <= 14 else (lambda d: f"{d:%m-%d}")
        ax.set_xticks(ticks, [fmt(r.nights[i].night) for i in ticks])
        ax.set_xlim(-0.6, n - 0.4)
        ax.set_ylim(0, 5.6)
        ax.set_yticks(range(1, 6))
        ax.set_ylabel("等级")
        ax.grid(axis="y", color="#E0E0E0", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
        names = dict(L.LEVEL_NAMES)
        names.update({nt.level: nt.level_name for nt in r.nights if nt.level and nt.level_name})
        ax.legend(handles=[Patch(color=L.LEVEL_COLOURS[lv], label=f"{lv}级 {names[lv]}")
                           for lv in sorted(L.LEVEL_COLOURS)],
                  loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=5, frameon=False, fontsize=8)
        fig.tight_layout(pad=0.3)
        buf = io.BytesIO()
        # No metadata: fpdf2 does not know the <metadata> element and would log about it.
        fig.savefig(buf, format="svg", metadata={"Creator": None, "Date": None, "Format": None,
                                                 "Type": None})
    return buf.getvalue()


def _key_figures(pdf: _ReportPDF, r: WeekReport) -> None:
    """The period at a glance: four label/value pairs per row (a grid, not a sentence, so that
    no line can start with a closing bracket, which CHAR wrapping does not prevent)."""
    sent, delivered, failed = r.sms_totals()
    played, p_failed, expired, withdrawn = r.play_totals()
    levels = [n.level for n in r.nights if n.level is not None]
    figures = [
        ("夜间", f"{len(r.nights)} 个"),
        ("发布预警", f"{sum(1 for n in r.nights if n.alert_id is not None)} 个夜间"),
        ("最高等级", L.level_text(max(levels)) if levels else "无数据"),
        ("人工广播", f"{len(r.broadcasts)} 条"),
        ("短信发送", f"{sent} 条"), ("短信送达", f"{delivered} 条"),
        ("短信失败", f"{failed} 条"), ("送达率", L.rate(delivered, sent)),
        ("喇叭播放", f"{played} 次"), ("喇叭失败", f"{p_failed} 次"),
        ("喇叭过期", f"{expired} 次"), ("喇叭撤回", f"{withdrawn} 次"),
        ("数据源故障", f"{len(r.feed_failures)} 次"), ("升级通知", f"{len(r.escalations)} 次"),
        ("事故", f"{len(r.incidents)} 起"),
        ("涉及/死亡", (f"{sum(i.affected for i in r.incidents)} 人 / "
                      f"{sum(i.deaths for i in r.incidents)} 人")),
    ]
    label = FontFace(color=GREY, fill_color=TOTAL_FILL)
    pdf.set_font(FONT, size=TABLE_PT + 0.5)
    with pdf.table(col_widths=(20, 25) * 4, width=WIDTH, align="LEFT", first_row_as_headings=False,
                   line_height=TABLE_PT * 0.55, padding=(1.2, 1.4), wrapmode=WrapMode.CHAR,
                   text_align="LEFT") as table:
        for k in range(0, len(figures), 4):
            row = table.row()
            for name, value in figures[k:k + 4]:
                row.cell(name, style=label)
                row.cell(value)


def _incident(pdf: _ReportPDF, i: IncidentRow) -> None:
    rows = [["村", i.village], ["发生时间", L.fmt_time(i.occurred_at)],
            ["涉及人数", str(i.affected)], ["死亡人数", str(i.deaths)],
            ["经过", i.description], ["处置措施", i.measures or L.EMPTY]]
    rows += [[f"更正 {k}", c] for k, c in enumerate(i.corrections, 1)]
    pdf.grid([(f"事故 #{i.id}", 28, "L"), ("内容", WIDTH - 28, "L")], rows)


def write_pdf(r: WeekReport, path: str | Path) -> Path:
    """Write the report as an A4 PDF: title, summary, nightly chart, then one table per section.

    Sections for chats, displays and check-ins are left out when empty; the others say 本周无
    (本期无 for a date range). Returns the path.
    """
    pdf = _ReportPDF(r)
    pdf.add_page()
    pdf.set_font(FONT, size=18)
    pdf.cell(0, 10, f"{r.town}{TITLE}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=11)
    pdf.cell(0, 7, r.period_label, align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=8.5)
    pdf.set_text_color(*GREY)
    pdf.cell(0, 5, f"生成时间：{L.fmt_time(r.generated_at)}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(189, 189, 189)
    pdf.line(15, pdf.get_y() + 1.5, 15 + WIDTH, pdf.get_y() + 1.5)
    pdf.ln(4)
    _key_figures(pdf, r)
    if r.nights:
        pdf.ln(2)
        pdf.image(io.BytesIO(_chart_svg(r)), x=15, w=WIDTH)
    sections = _sections(pdf, r)
    for number, (title, render) in enumerate(sections, start=1):
        pdf.heading(f"{L.cn_number(number)}、{title}")
        render()
    pdf.output(str(path))
    return Path(path)


def _sections(pdf: _ReportPDF, r: WeekReport) -> list[tuple[str, Callable[[], None]]]:
    """The sections in order as (heading, render callable); optional ones only when non-empty."""
    codes = r.reason_codes()

    def reasons(d: dict[str, int]) -> str:
        return "；".join(f"{L.reason(c)} {d[c]}" for c in codes if d.get(c)) or L.EMPTY

    sent, delivered, failed = r.sms_totals()
    all_reasons = {c: sum(g.reasons.get(c, 0) for g in r.sms_by_group) for c in codes}
    out: list[tuple[str, Callable[[], None]]] = [
        ("每晚等级与预警", lambda: pdf.grid(
            [("日期", 24, "L"), ("星期", 13, "C"), ("等级", 14, "C"), ("等级名称", 24, "L"),
             ("数据源", 55, "L"), ("预警编号", 20, "R"), ("预警状态", 30, "L")],
            [[L.fmt_date(n.night), L.weekday(n.night), L.level_text(n.level),
              n.level_name or L.EMPTY, n.source or L.EMPTY,
              str(n.alert_id) if n.alert_id is not None else L.EMPTY,
              L.alert_status(n.alert_status, n.alert_id)] for n in r.nights],
            fills=[{2: L.level_colour(n.level)} for n in r.nights])),
        ("短信（按分组）", lambda: pdf.grid(
            [("分组", 24, "L"), ("分组名称", 36, "L"), ("已发送", 17, "R"), ("已送达", 17, "R"),
             ("失败", 15, "R"), ("送达率", 17, "R"), ("失败原因", 54, "L")],
            [[g.group, g.group_name, str(g.sent), str(g.delivered), str(g.failed),
              L.rate(g.delivered, g.sent), reasons(g.reasons)] for g in r.sms_by_group],
            total=["合计", "", str(sent), str(delivered), str(failed), L.rate(delivered, sent),
                   reasons(all_reasons)])),
        ("喇叭播放（按村）", lambda: pdf.grid(
            [("村", 60, "L"), ("已播放", 30, "R"), ("失败", 30, "R"), ("过期", 30, "R"),
             ("已撤回", 30, "R")],
            [[p.village, str(p.played), str(p.failed), str(p.expired), str(p.withdrawn)]
             for p in r.plays_by_village],
            total=["合计", *map(str, r.play_totals())])),
        ("人工广播", lambda: pdf.grid(
            [("编号", 12, "R"), ("创建时间", 31, "L"), ("发起人", 17, "L"), ("审批人", 17, "L"),
             ("村", 24, "L"), ("内容", 63, "L"), ("状态", 16, "L")],
            [[str(b.id), L.fmt_time(b.created_at), b.author, b.approver or L.EMPTY,
              L.villages_text(b.villages), b.text, L.alert_status(b.status, b.id)]
             for b in r.broadcasts])),
    ]
    channels = [("群", c) for c in r.chats] + [("显示屏", c) for c in r.displays]
    if channels:
        out.append(("群消息与显示屏", lambda: pdf.grid(
            [("类别", 25, "L"), ("名称", 95, "L"), ("已发送", 30, "R"), ("失败", 30, "R")],
            [[k, c.target, str(c.sent), str(c.failed)] for k, c in channels])))
    checkins = [("村", c) for c in r.checkins_by_village] + [("包户干部", c) for c in r.checkins_by_cadre]
    if checkins:
        out.append(("包户核实", lambda: pdf.grid(
            [("类别", 25, "L"), ("名称", 63, "L"), ("户数", 23, "R"), ("已答复", 23, "R"),
             ("未答复", 23, "R"), ("答复率", 23, "R")],
            [[k, c.name, str(c.households), str(c.answered), str(c.missing),
              L.rate(c.answered, c.households)] for k, c in checkins])))
    events = sorted([(e.at, "数据源故障", e.source, e.error) for e in r.feed_failures]
                    + [(e.at, "升级通知", L.escalation_kind(e.kind), e.detail) for e in r.escalations],
                    key=lambda e: e[0])
    out.append(("数据源故障与升级通知", lambda: pdf.grid(
        [("时间", 28, "L"), ("类别", 22, "L"), ("来源/类型", 40, "L"), ("详情", 90, "L")],
        [[L.fmt_time(at), k, s, d] for at, k, s, d in events])))

    def incidents() -> None:
        if not r.incidents:
            pdf.paragraph(r.none_text, TABLE_PT + 1, GREY)
        for i in r.incidents:
            _incident(pdf, i)
            pdf.ln(2)

    out.append(("事故上报", incidents))
    return out
