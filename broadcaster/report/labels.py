"""What both renderers print the same way: Chinese labels for codes, level colours, formats.

Unknown codes are printed as they are rather than dropped, so a new status or failure reason
still shows up in the report before anyone adds its translation here.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime

# Colours of the five levels, shared by the workbook, the PDF table and the chart.
LEVEL_COLOURS: dict[int, str] = {1: "#2E7D32", 2: "#1565C0", 3: "#F9A825", 4: "#EF6C00", 5: "#C62828"}
NO_LEVEL_COLOUR = "#9E9E9E"
# Level names from config/rules.yaml; used for the legend when a level did not occur.
LEVEL_NAMES: dict[int, str] = {1: "利于扩散", 2: "较利于扩散", 3: "可能发生", 4: "容易发生", 5: "极易发生"}

ALERT_STATUS: dict[str, str] = {
    "pending_approval": "待审批",
    "scheduled": "已排期",
    "dispatching": "发送中",
    "done": "已完成",
    "cancelled": "已撤销",
    "superseded": "已被替代",
    "expired": "已过期",
    "failed": "失败",
}
SMS_REASONS: dict[str, str] = {
    "unreachable": "号码不可达",
    "cap": "超出发送上限",
    "rejected": "被运营商拒绝",
    "timeout": "超时",
    "expired": "过期未发出",
    "other": "其他",
}
ESCALATION_KINDS: dict[str, str] = {
    "deadline": "截止时未获预报，已通知值班",
    "feed": "数据源全部失败",
    "speaker_offline": "喇叭离线",
}
WEEKDAYS = "一二三四五六日"
EMPTY = "—"


def alert_status(code: str | None, alert_id: int | None = None) -> str:
    """Chinese status of an alert; a night without an alert says so."""
    if alert_id is None and not code:
        return "未发布预警"
    return ALERT_STATUS.get(code or "", code or EMPTY)


def reason(code: str) -> str:
    """Chinese name of an SMS failure reason code."""
    return SMS_REASONS.get(code, code)


def escalation_kind(code: str) -> str:
    """Chinese name of an escalation kind."""
    return ESCALATION_KINDS.get(code, code)


def level_text(level: int | None) -> str:
    """``4级`` or ``无数据``."""
    return f"{level}级" if level is not None else "无数据"


def level_colour(level: int | None) -> str:
    """Fill colour of a level (grey without one)."""
    return LEVEL_COLOURS.get(level, NO_LEVEL_COLOUR) if level is not None else NO_LEVEL_COLOUR


def text_colour_on(fill: str) -> str:
    """Black or white, whichever reads better on ``fill`` (the level-3 yellow needs black)."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#212121" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#FFFFFF"


def weekday(d: date) -> str:
    """``周一`` .. ``周日``."""
    return "周" + WEEKDAYS[d.weekday()]


def fmt_date(d: date) -> str:
    """``2026-11-23``."""
    return d.isoformat()


def fmt_time(t: datetime | None) -> str:
    """``2026-11-23 17:30`` in the datetime's own zone (the queries give the town's zone)."""
    return t.strftime("%Y-%m-%d %H:%M") if t is not None else EMPTY


def villages_text(villages: list[str]) -> str:
    """``东村、西村``; ``all`` means every village."""
    if not villages:
        return EMPTY
    return "全部村" if list(villages) == ["all"] else "、".join(villages)


def rate(part: int, whole: int) -> str:
    """``95.0%`` or ``—`` when there is nothing to divide."""
    return f"{100.0 * part / whole:.1f}%" if whole else EMPTY


def display_width(text: str) -> int:
    """Width in Latin character cells: CJK and full-width characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def cn_number(n: int) -> str:
    """Chinese numeral for section numbers 1..19 (一, 二, ... 十九)."""
    digits = "零一二三四五六七八九"
    if n < 10:
        return digits[n]
    return "十" + (digits[n - 10] if n > 10 else "")
