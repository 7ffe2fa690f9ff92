"""The poster (DESIGN A12): a PNG in the level's colour whose text is really drawn and fits."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image

from broadcaster.publish import levels
from broadcaster.fonts import cjk_font_path
from broadcaster.publish.poster import (
    CARD_BOTTOM,
    CARD_TOP,
    MARGIN,
    PAD,
    WIDTH,
    PosterInput,
    poster_cache_key,
    render_poster,
    wrap,
)

TZ = ZoneInfo("Asia/Shanghai")
ADVICE = (
    "1.使用煤炉取暖的家庭睡前检查烟道是否通畅，门窗留缝通风；2.不要在密闭室内使用炭火盆；"
    "3.独居老人家中请家属或包户干部电话提醒；4.出现头痛、头晕、恶心等症状时立即开窗并拨打120。"
)


def poster(level: int | None = 4, **kw) -> PosterInput:
    base = PosterInput(
        town="东村镇",
        level=level,
        level_name=levels.level_name(level) if level else "",
        night="12月1日夜间",
        valid="12月1日20:00至12月2日08:00",
        advice=ADVICE,
        issued_by="东村镇文化站",
        issued_at=datetime(2026, 12, 1, 16, 30, tzinfo=TZ),
    )
    return replace(base, **kw)


def image(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def count(img: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, int, int],
          tol: int = 40) -> int:
    """Pixels in ``box`` within ``tol`` (per channel) of ``colour``."""
    px = np.asarray(img.crop(box), dtype=np.int16)
    return int((np.abs(px - np.array(colour, dtype=np.int16)) <= tol).all(axis=2).sum())


def test_font_comes_from_the_wheel():
    path = cjk_font_path()
    assert path.name == "NotoSansSC-Regular.otf" and path.stat().st_size > 1_000_000


@pytest.mark.parametrize("level", [1, 2, 3, 4, 5])
def test_each_level_is_a_png_in_its_colour_with_text_drawn(level):
    img = image(render_poster(poster(level)))
    assert img.size[0] >= 720 and img.size == (1080, 1350)
    bg, fg = rgb(levels.colour(level)), rgb(levels.text_colour(level))
    assert img.getpixel((5, 5)) == bg
    # The banner is mostly the level's colour...
    banner = (0, 0, WIDTH, CARD_TOP)
    area = WIDTH * CARD_TOP
    assert count(img, banner, bg, tol=2) > 0.5 * area
    # ...and the level number, its name and the title are drawn on it in the contrast colour.
    number = (WIDTH // 2 - 250, 140, WIDTH // 2 + 250, 430)
    assert count(img, number, fg) > 20_000
    assert count(img, (0, 470, WIDTH, 580), fg) > 5_000
    # The card is white with dark text (town, advice).
    card_text = (MARGIN + PAD, CARD_TOP + 30, WIDTH - MARGIN - PAD, CARD_BOTTOM - 30)
    assert count(img, card_text, (0x21, 0x21, 0x21), tol=60) > 10_000


def test_text_regions_differ_from_an_empty_poster():
    full = image(render_poster(poster(5)))
    empty = image(render_poster(poster(5, advice="", town="", night="", valid="", issued_by="",
                                       issued_at=None)))
    advice_box = (MARGIN + PAD, CARD_TOP + 160, WIDTH - MARGIN - PAD, CARD_BOTTOM - PAD)
    dark = (0x21, 0x21, 0x21)
    assert count(empty, advice_box, dark, tol=60) == 0
    assert count(full, advice_box, dark, tol=60) > 8_000
    footer = (0, CARD_BOTTOM + 10, WIDTH, 1350)
    white = (255, 255, 255)
    assert count(empty, footer, white, tol=60) == 0
    assert count(full, footer, white, tol=60) > 1_000


def test_manual_broadcast_has_neutral_colour_and_title():
    p = poster(None, title="广播通知", advice="今晚19:00在村委会召开冬季防范煤气中毒专题会议。")
    img = image(render_poster(p))
    assert img.getpixel((5, 5)) == rgb(levels.MANUAL_COLOUR)
    assert count(img, (100, 100, WIDTH - 100, 300), (255, 255, 255), tol=60) > 20_000


def test_long_advice_wraps_inside_the_canvas():
    long = ADVICE * 5 + "详见https://example.org/a/very/long/path/that/cannot/fit/on/one/line/at/all"
    p = poster(5, advice=long, town="内蒙古自治区乌兰察布市察哈尔右翼后旗白音察干镇",
               hotline="0474-12345678")
    img = image(render_poster(p))
    # Nothing drawn in the white card's side padding: no line ran past its width.
    white = (255, 255, 255)
    for box in [(MARGIN + 4, CARD_TOP + 30, MARGIN + PAD - 6, CARD_BOTTOM - 30),
                (WIDTH - MARGIN - PAD + 6, CARD_TOP + 30, WIDTH - MARGIN - 4, CARD_BOTTOM - 30)]:
        w, h = box[2] - box[0], box[3] - box[1]
        assert count(img, box, white, tol=0) == w * h
    # Nor below the card's bottom padding.
    bottom = (MARGIN + 30, CARD_BOTTOM - 14, WIDTH - MARGIN - 30, CARD_BOTTOM - 2)
    assert count(img, bottom, white, tol=0) == (bottom[2] - bottom[0]) * (bottom[3] - bottom[1])


def test_wrap_keeps_lines_within_width_and_follows_line_break_rules():
    from broadcaster.publish.poster import _font

    width = 600
    lines = wrap(ADVICE + "请拨打0312-1234567咨询。", 40, width)
    assert all(_font(40).getlength(line) <= width for line in lines)
    assert "".join(lines) == (ADVICE + "请拨打0312-1234567咨询。")
    assert not any(line[0] in "，。、；：！？）" for line in lines)
    assert any("0312-1234567" in line for line in lines)  # a number is never split
    # Numbered items start their own line.
    assert [line[:2] for line in lines if re.match(r"\d\.\D", line)] == ["1.", "2.", "3.", "4."]


def test_same_input_same_bytes_and_cache_key():
    a, b = render_poster(poster(3)), render_poster(poster(3))
    assert a == b
    assert poster_cache_key(poster(3)) == poster_cache_key(poster(3))
    assert poster_cache_key(poster(3)) != poster_cache_key(poster(4))
    assert render_poster(poster(4)) != a
    assert b"tIME" not in a and b"tEXt" not in a and b"iTXt" not in a


def test_level_colours_have_readable_text():
    # WCAG AA for large text is 3:1; everything drawn on the colour is at least 24 px. White on
    # orange (3.1:1) is the familiar look of an orange warning; white on yellow (2:1) is unreadable.
    assert [levels.colour(n) for n in range(1, 6)] == [
        "#2E7D32", "#1565C0", "#F9A825", "#EF6C00", "#C62828"]
    for n in range(1, 6):
        assert levels.contrast_ratio(levels.text_colour(n), levels.colour(n)) >= 3.0, n
    assert levels.contrast_ratio(levels.MANUAL_TEXT, levels.MANUAL_COLOUR) >= 4.5
