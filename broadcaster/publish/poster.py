"""The poster: one PNG per alert or broadcast, to forward to WeChat groups and show on screens.

1080×1350 portrait (4:5, what phones show full-width in a chat), in the level's colour, with the
level number large enough to read on a village LED screen. Pillow only; the font is the wheel's
Noto Sans SC (:mod:`broadcaster.fonts`), bold faked with a stroke.

The same :class:`PosterInput` always gives the same bytes (no timestamps in the PNG, Pillow's basic
layout engine rather than raqm, which may or may not be installed), so callers may cache posters
by :func:`poster_cache_key`.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import astuple, dataclass
from datetime import datetime
from functools import cache

from PIL import Image, ImageDraw, ImageFont

from broadcaster.publish import levels
from broadcaster.fonts import cjk_font_path

WIDTH, HEIGHT = 1080, 1350
# Bump when the layout changes so cached posters are redrawn.
POSTER_VERSION = 1

MARGIN = 40          # colour border around the white card
PAD = 44             # inside the card
CARD_TOP = 600         # below the level number and name
MANUAL_CARD_TOP = 380  # a manual broadcast has only a title above, and usually more text
CARD_BOTTOM = 1196
CARD_TEXT = "#212121"
CARD_MUTED = "#555555"
RULE = "#E0E0E0"
ADVICE_SIZES = range(52, 27, -2)   # largest first; below 28 px a phone preview is unreadable
LINE_SPACING = 1.45


@dataclass(frozen=True)
class PosterInput:
    """What a poster says. All text in Simplified Chinese; ``level`` is ``None`` for a manual
    broadcast, which is drawn in a neutral colour with ``title`` as its headline."""

    town: str
    level: int | None
    level_name: str = ""
    night: str = ""                  # e.g. "12月1日夜间"
    valid: str = ""                  # e.g. "12月1日20:00至12月2日08:00"
    advice: str = ""
    title: str = "一氧化碳中毒气象预警"  # "广播通知" for manual broadcasts
    issued_by: str = ""              # e.g. "东村镇文化站"
    issued_at: datetime | None = None
    hotline: str | None = None       # public hotline only (public.hotline), never a person's


def poster_cache_key(p: PosterInput) -> str:
    """A stable hash of the input and layout version: equal keys mean equal PNG bytes."""
    raw = repr((POSTER_VERSION, astuple(p)))
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


@cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(cjk_font_path()), size, layout_engine=ImageFont.Layout.BASIC)


def _stroke(size: int, bold: bool) -> int:
    return max(1, size // 36) if bold else 0


def _text(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill: str,
          *, bold: bool = False, anchor: str = "ls") -> None:
    sw = _stroke(size, bold)
    draw.text(xy, text, font=_font(size), fill=fill, anchor=anchor, stroke_width=sw,
              stroke_fill=fill)


def _width(text: str, size: int, bold: bool = False) -> float:
    return _font(size).getlength(text) + 2 * _stroke(size, bold)


def _fit_line(text: str, max_size: int, min_size: int, width: float,
              bold: bool = False) -> tuple[str, int]:
    """Largest size at which ``text`` fits ``width``; at ``min_size`` cut with an ellipsis."""
    for size in range(max_size, min_size - 1, -2):
        if _width(text, size, bold) <= width:
            return text, size
    while text and _width(text + "…", min_size, bold) > width:
        text = text[:-1]
    return text + "…", min_size


# Chinese line-breaking rules (禁则): these never start a line, those never end one.
_NO_START = set("，。、；：！？）》」』】〕〉…—～·%,.;:!?)]}’”")
_NO_END = set("（《「『【〔〈([{‘“")
# Latin words, numbers, times and phone numbers stay whole; every other character is a break point.
_TOKEN = re.compile(r"[A-Za-z0-9０-９.:：/%+\-－]+|\s+|.", re.S)
# "…；2.不要…" → numbered advice items start on their own line.
_ITEM = re.compile(r"(?<=[；;。！!])\s*(?=\d{1,2}[.、．](?!\d))")


def wrap(text: str, size: int, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels at ``size``.

    Breaks between Chinese characters, never inside a Latin word or number (unless it alone is
    wider than a line), and never puts closing punctuation at a line's start.
    """
    font = _font(size)
    lines: list[str] = []
    for para in _ITEM.sub("\n", text.strip()).splitlines():
        tokens: list[str] = []
        for tok in _TOKEN.findall(para.strip()):
            # A token wider than a whole line (a long URL) is split into characters after all.
            tokens.extend(list(tok) if font.getlength(tok) > width else [tok])
        line: list[str] = []
        for tok in tokens:
            if tok.isspace() and not line:
                continue
            if not line or font.getlength("".join(line) + tok.rstrip()) <= width:
                line.append(tok)
                continue
            carry: list[str] = []
            if tok[0] in _NO_START and len(line) > 1:
                carry.append(line.pop())
            while len(line) > 1 and line[-1] and line[-1][-1] in _NO_END:
                carry.insert(0, line.pop())
            lines.append("".join(line).rstrip())
            line = carry + ([] if tok.isspace() else [tok])
        if line:
            lines.append("".join(line).rstrip())
    return lines


def _fit_block(text: str, width: float, height: float) -> tuple[list[str], int]:
    """Wrap at the largest advice size whose lines fit ``height``; else cut at the smallest."""
    for size in ADVICE_SIZES:
        lines = wrap(text, size, width)
        if len(lines) * size * LINE_SPACING <= height:
            return lines, size
    size = ADVICE_SIZES[-1]
    lines = wrap(text, size, width)
    keep = max(1, int(height // (size * LINE_SPACING)))
    if len(lines) > keep:
        last = lines[keep - 1]
        while last and _width(last + "…", size) > width:
            last = last[:-1]
        lines = lines[: keep - 1] + [last + "…"]
    return lines, size


def _issued_text(p: PosterInput) -> str:
    parts = [p.issued_by.strip()] if p.issued_by.strip() else []
    if p.issued_at is not None:
        t = p.issued_at
        parts.append(f"{t.year}年{t.month}月{t.day}日{t:%H:%M}发布")
    return "　".join(parts)


def _draw_banner(draw: ImageDraw.ImageDraw, p: PosterInput, fg: str) -> None:
    inner = WIDTH - 2 * MARGIN
    if p.level is None:
        # Manual broadcast: no number, the title is the headline.
        title, size = _fit_line(p.title, 150, 72, inner, bold=True)
        _text(draw, (WIDTH / 2, 250), title, size, fg, bold=True, anchor="ms")
        return
    title, size = _fit_line(p.title, 60, 36, inner, bold=True)
    _text(draw, (WIDTH / 2, 104), title, size, fg, bold=True, anchor="ms")
    # The level number is the one thing that must read from across a square: 340 px digits.
    num, unit, num_size, unit_size = str(p.level), "级", 340, 120
    total = _width(num, num_size, True) + 12 + _width(unit, unit_size, True)
    x = (WIDTH - total) / 2
    base = 418
    _text(draw, (x, base), num, num_size, fg, bold=True)
    _text(draw, (x + _width(num, num_size, True) + 12, base), unit, unit_size, fg, bold=True)
    name = p.level_name or levels.level_name(p.level)
    name, size = _fit_line(name, 104, 56, inner, bold=True)
    _text(draw, (WIDTH / 2, 548), name, size, fg, bold=True, anchor="ms")


def _draw_card(draw: ImageDraw.ImageDraw, p: PosterInput, top: int) -> None:
    draw.rounded_rectangle((MARGIN, top, WIDTH - MARGIN, CARD_BOTTOM), radius=28, fill="#FFFFFF")
    left = MARGIN + PAD
    inner = WIDTH - 2 * (MARGIN + PAD)
    y = top + 104
    town, size = _fit_line(p.town, 68, 34, inner, bold=True)
    _text(draw, (left, y), town, size, CARD_TEXT, bold=True)
    when = "　".join(s for s in (p.night.strip(), p.valid.strip()) if s)
    if when:
        y += 66
        when, size = _fit_line(when, 40, 26, inner)
        _text(draw, (left, y), when, size, CARD_MUTED)
    y += 34
    draw.line((left, y, WIDTH - MARGIN - PAD, y), fill=RULE, width=3)
    y += 22
    if p.advice.strip():
        lines, size = _fit_block(p.advice, inner, CARD_BOTTOM - PAD + 8 - y)
        step = size * LINE_SPACING
        for i, line in enumerate(lines):
            _text(draw, (left, y + size + i * step), line, size, CARD_TEXT)


def _draw_footer(draw: ImageDraw.ImageDraw, p: PosterInput, fg: str) -> None:
    inner = WIDTH - 2 * MARGIN
    rows = [r for r in (_issued_text(p), f"咨询电话：{p.hotline}" if p.hotline else "") if r]
    base = CARD_BOTTOM + (96 if len(rows) == 1 else 66)
    for row in rows:
        row, size = _fit_line(row, 36, 24, inner)
        _text(draw, (WIDTH / 2, base), row, size, fg, anchor="ms")
        base += 52


def render_poster(p: PosterInput) -> bytes:
    """Draw ``p`` and return PNG bytes (1080×1350, RGB, no metadata)."""
    bg, fg = levels.colour(p.level), levels.text_colour(p.level)
    img = Image.new("RGB", (WIDTH, HEIGHT), bg)
    draw = ImageDraw.Draw(img)
    _draw_banner(draw, p, fg)
    _draw_card(draw, p, MANUAL_CARD_TOP if p.level is None else CARD_TOP)
    _draw_footer(draw, p, fg)
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()
