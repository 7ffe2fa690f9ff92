"""Message texts: template rendering and SMS segment counting (pure functions)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

# GSM 03.38 basic set (1 septet each) and extension set (escape + char: 2 septets each).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets or UTF-16 code units
    count: int

    def __str__(self) -> str:
        return f"{self.count} 条 ({self.encoding}, {self.units})"


def sms_segments(text: str) -> Segments:
    """How many SMS parts ``text`` costs (GSM-7 160/153, UCS-2 70/67; astral chars count 2)."""
    if all(c in _GSM_BASIC or c in _GSM_EXT for c in text):
        units = sum(2 if c in _GSM_EXT else 1 for c in text)
        single, multi, enc = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)
        single, multi, enc = 70, 67, "UCS-2"
    if units == 0:
        return Segments(enc, 0, 0)
    count = 1 if units <= single else math.ceil(units / multi)
    return Segments(enc, units, count)


def local_label(dt: datetime) -> str:
    """``11月28日20时``: how Chinese forecasts name a moment."""
    return f"{dt.month}月{dt.day}日{dt.hour}时" + (f"{dt.minute}分" if dt.minute else "")


@dataclass(frozen=True)
class TemplateValues:
    town: str
    date: str
    level: int
    level_name: str
    advice: str
    valid_from: str
    valid_to: str

    def as_dict(self) -> dict[str, str]:
        return {
            "town": self.town,
            "date": self.date,
            "level": str(self.level),
            "level_name": self.level_name,
            "advice": self.advice,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
        }


def render(template: str, values: TemplateValues) -> str:
    """Fill a template; placeholders were checked against the allowed set when config loaded."""
    return template.format(**values.as_dict())


SAMPLE_VALUES = TemplateValues(
    town="XX镇",
    date="12月31日",
    level=5,
    level_name="极易发生",
    advice="夜间风小湿度大，易形成逆温",
    valid_from="12月31日20时",
    valid_to="1月1日8时",
)
