"""The one table of level facts: colour, default name, CAP severity, urgency and certainty.

Console, poster, displays, chats and CAP all read the level's facts from here (DESIGN A12), so a
colour or a severity is never written twice. Level names are configuration (``rules.levels``);
the names here are only the defaults used when a caller has none.

Level ↔ CAP (stated in the README):

=====  ============  =======  ========  ========  =========  ==========================
level  default name  colour   severity  urgency   certainty  severity read back (CAP in)
=====  ============  =======  ========  ========  =========  ==========================
1      利于扩散      #2E7D32  Minor     Expected  Likely
2      较利于扩散    #1565C0  Minor     Expected  Likely     Minor → 2
3      可能发生      #F9A825  Moderate  Expected  Likely     Moderate → 3
4      容易发生      #EF6C00  Severe    Expected  Likely     Severe → 4
5      极易发生      #C62828  Extreme   Expected  Likely     Extreme → 5
=====  ============  =======  ========  ========  =========  ==========================

Reading CAP, Minor maps to 2 rather than 1: a provincial office that bothers to publish a Minor
CO message means "some risk", and level 2 is the highest level that still sends nothing by default,
so the choice never raises an alarm on its own. ``Unknown`` severity gives no level. A feed's
``level_map`` overrides any of these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

URGENCY = "Expected"
CERTAINTY = "Likely"
SEVERITIES = ("Minor", "Moderate", "Severe", "Extreme")


@dataclass(frozen=True)
class LevelFacts:
    """Facts of one level. ``text`` is the colour of text drawn on ``colour``."""

    level: int
    default_name: str
    colour: str
    text: str
    severity: str
    urgency: str = URGENCY
    certainty: str = CERTAINTY


# White on the level colour, as on official warning signals, except yellow level 3, where white
# has a contrast of only 2:1; near-black there gives 8:1. Every pair reaches at least WCAG's 3:1 for
# large text (orange: 3.1:1), and the poster draws nothing on the colour smaller than 24 px.
_DARK = "#212121"
_WHITE = "#FFFFFF"
LEVELS: dict[int, LevelFacts] = {
    1: LevelFacts(1, "利于扩散", "#2E7D32", _WHITE, "Minor"),
    2: LevelFacts(2, "较利于扩散", "#1565C0", _WHITE, "Minor"),
    3: LevelFacts(3, "可能发生", "#F9A825", _DARK, "Moderate"),
    4: LevelFacts(4, "容易发生", "#EF6C00", _WHITE, "Severe"),
    5: LevelFacts(5, "极易发生", "#C62828", _WHITE, "Extreme"),
}

# A manual broadcast has no level: a neutral blue-grey that no level uses.
MANUAL_COLOUR = "#37474F"
MANUAL_TEXT = _WHITE

DEFAULT_SEVERITY_TO_LEVEL: dict[str, int] = {"Minor": 2, "Moderate": 3, "Severe": 4, "Extreme": 5}


def facts(level: int) -> LevelFacts:
    """Facts of ``level`` (1..5); ``ValueError`` otherwise."""
    try:
        return LEVELS[level]
    except KeyError:
        raise ValueError(f"level must be 1..5, got {level!r}") from None


def colour(level: int | None) -> str:
    """``#RRGGBB`` of the level, or the manual-broadcast colour for ``None``."""
    return MANUAL_COLOUR if level is None else facts(level).colour


def text_colour(level: int | None) -> str:
    """``#RRGGBB`` for text drawn on :func:`colour` of the same level."""
    return MANUAL_TEXT if level is None else facts(level).text


def level_name(level: int, names: Mapping[int, str] | None = None) -> str:
    """The configured name of ``level`` (``rules.levels``), else the default name."""
    if names and names.get(level):
        return names[level]
    return facts(level).default_name


def severity(level: int) -> str:
    """CAP severity of ``level``: 1–2 Minor, 3 Moderate, 4 Severe, 5 Extreme."""
    return facts(level).severity


def level_for_severity(value: str, level_map: Mapping[str, int] | None = None) -> int | None:
    """Level for a CAP severity read from a feed, ``None`` for Unknown or anything unmapped.

    ``level_map`` entries override the defaults one by one, so a feed can say ``{Minor: 1}`` and
    keep the rest.
    """
    table = {**DEFAULT_SEVERITY_TO_LEVEL, **(level_map or {})}
    level = table.get(value.strip())
    if level is None:
        return None
    if level not in LEVELS:
        raise ValueError(f"level_map: {value} maps to {level}, not a level 1..5")
    return level


def contrast_ratio(fg: str, bg: str) -> float:
    """WCAG 2 contrast ratio of two ``#RRGGBB`` colours (1.0 to 21.0)."""

    def luminance(hex_colour: str) -> float:
        rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
