"""What every CO-index source shares: the reading, the source interface and the checks.

A source only fetches and parses; deciding which reading is tonight's, applying ``level_map``
and rejecting stale, out-of-range or foreign readings happens here, once, for every source.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from broadcaster.errors import FeedError
from broadcaster.plugins import PluginConfig
from broadcaster.timeutil import Clock, Night, in_season

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(hours=36)
LEVELS = range(1, 6)


@dataclass(frozen=True)
class Factor:
    """One weather factor behind a computed level: its value and what it added to the score."""

    name: str  # machine key, e.g. "wind"
    label: str  # Chinese label, e.g. "风速"
    value: float | None
    unit: str = ""
    points: float = 0.0

    def summary(self) -> str:
        if self.value is None:
            return self.label
        value = f"{self.value:+.1f}" if self.unit == "°C" and self.name == "inversion" else f"{self.value:g}"
        # "0.8 m/s", "+2.1 °C", but "88%" and "4小时" (SI style; no space in Chinese units)
        sep = " " if self.unit[:1].isascii() and self.unit[:1].isalpha() or self.unit.startswith("°") else ""
        return f"{self.label} {value}{sep}{self.unit}".strip()


@dataclass(frozen=True)
class Reading:
    """One forecast of the CO-poisoning level for a region and time window (DESIGN A5)."""

    region: str
    valid_from: datetime
    valid_to: datetime
    level: int
    issued_at: datetime
    source: str
    index: float | None = None
    advice: str | None = None
    factors: tuple[Factor, ...] = ()

    def covers(self, moment: datetime) -> bool:
        return self.valid_from <= moment < self.valid_to

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("valid_from", "valid_to", "issued_at"):
            d[k] = getattr(self, k).isoformat()
        d["factors"] = [asdict(f) for f in self.factors]
        return d

    def factor_summary(self) -> str:
        """``"风速 0.8 m/s, 逆温 +2.1°C"``: the factors that added to the level, largest first."""
        parts = sorted((f for f in self.factors if f.points > 0), key=lambda f: -f.points)
        return ", ".join(f.summary() for f in parts)


class HttpLimits(PluginConfig):
    """Bounds on one fetch over HTTP, for every HTTP source: ``timeout_s`` per connect and read,
    ``deadline_s`` for the whole answer, ``max_bytes`` for its (decoded) body."""

    deadline_s: float = Field(default=30, gt=0, le=600)
    max_bytes: int = Field(default=5_000_000, gt=0, le=200_000_000)


class SourceConfig(PluginConfig):
    """Keys every source accepts. Each source module subclasses it with ``type: Literal[...]``."""

    type: str
    name: str | None = None  # shown in provenance; defaults to the type
    region: str | None = None  # expected region; defaults to the town
    level_map: dict[int, int] | None = None  # the source's own scale -> ours (1..5)
    season: dict[str, str] | None = Field(default=None, description="{start: MM-DD, end: MM-DD}")

    @field_validator("season")
    @classmethod
    def _season(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if set(v) != {"start", "end"}:
            raise ValueError("give {start: MM-DD, end: MM-DD}")
        for k, d in v.items():
            try:
                datetime.strptime(f"2000-{d}", "%Y-%m-%d")
            except (TypeError, ValueError):
                raise ValueError(f"{k}: {d!r} is not a date as MM-DD") from None
        return v

    def in_season(self, night: Night) -> bool:
        if not self.season:
            return True
        s, e = self.season["start"], self.season["end"]
        return in_season(night.date, (int(s[:2]), int(s[3:])), (int(e[:2]), int(e[3:])))


@dataclass(frozen=True)
class SourceContext:
    """What a source may know about the deployment."""

    town: str
    tz: ZoneInfo
    base_dir: Path  # directory of the config file, for relative paths
    clock: Clock


@dataclass(frozen=True)
class SourceOutcome:
    """What one source answered for tonight: a reading, "no warning", or an error."""

    source: str
    reading: Reading | None = None
    error: str | None = None
    note: str | None = None  # e.g. "无官方预警" for a warning feed with nothing in force

    @property
    def level(self) -> int | None:
        return self.reading.level if self.reading else None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"source": self.source, "level": self.level}
        if self.error:
            d["error"] = self.error
        if self.note:
            d["note"] = self.note
        if self.reading and self.reading.factors:
            d["factors"] = [asdict(f) for f in self.reading.factors]
        return d


@dataclass
class PollResult:
    """Tonight's reading (the highest valid level over all sources) and every source's outcome."""

    night: Night
    reading: Reading | None
    outcomes: list[SourceOutcome] = field(default_factory=list)

    @property
    def level(self) -> int | None:
        return self.reading.level if self.reading else None

    @property
    def ok(self) -> bool:
        """True when at least one source answered (a reading or an explicit "no warning")."""
        return any(o.error is None for o in self.outcomes)

    def errors(self) -> list[str]:
        return [f"{o.source}: {o.error}" for o in self.outcomes if o.error]


class Source(ABC):
    """A CO-index source. Subclasses set ``type`` and ``Config`` and implement :meth:`fetch`."""

    type: ClassVar[str]
    Config: ClassVar[type[SourceConfig]] = SourceConfig
    # A warning feed with nothing in force answers "no warning", which is not an error.
    empty_means_no_warning: ClassVar[bool] = False

    def __init__(self, config: SourceConfig, ctx: SourceContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.config.name or self.type

    @property
    def region(self) -> str:
        return self.config.region or self.ctx.town

    @abstractmethod
    def fetch(self, night: Night) -> list[Reading]:
        """Fetch and parse the source's readings around ``night``; raise FeedError on failure."""

    def tonight(self, night: Night) -> SourceOutcome:
        """Fetch, map and check; return tonight's outcome. Never raises for feed problems."""
        if not self.config.in_season(night):
            return SourceOutcome(self.name, note="不在本数据源的季节内（out of this source's season）")
        try:
            readings = self.fetch(night)
        except FeedError as exc:
            log.warning("feed %s failed: %s", self.name, exc.reason)
            return SourceOutcome(self.name, error=exc.reason)
        if not readings:
            if self.empty_means_no_warning:
                return SourceOutcome(self.name, note="无官方预警")
            log.warning("feed %s: empty forecast list", self.name)
            return SourceOutcome(self.name, error="empty forecast list")
        try:
            return SourceOutcome(self.name, reading=select_tonight(self, readings, night))
        except FeedError as exc:
            log.warning("feed %s rejected: %s", self.name, exc.reason)
            return SourceOutcome(self.name, error=exc.reason)


def select_tonight(source: Source, readings: list[Reading], night: Night) -> Reading:
    """Tonight's reading among ``readings``, after ``level_map`` and the A5 checks.

    Each rejected reading is logged with its reason; if none is left, FeedError says why.
    """
    reasons: list[str] = []
    for r in readings:
        if not r.covers(night.start):
            continue
        reason = _rejection(source, r, night)
        if reason:
            log.warning("feed %s: reading rejected: %s", source.name, reason)
            reasons.append(reason)
            continue
        level = source.config.level_map[r.level] if source.config.level_map else r.level
        return Reading(**{**r.__dict__, "level": level})
    if reasons:
        raise FeedError(source.name, "; ".join(reasons))
    raise FeedError(source.name, f"no reading covers tonight ({night.start:%Y-%m-%d %H:%M})")


def _rejection(source: Source, r: Reading, night: Night) -> str | None:
    if r.region != source.region:
        return f"reading is for region {r.region!r}, not {source.region!r}"
    level_map = source.config.level_map
    if level_map is not None and r.level not in level_map:
        return f"level {r.level} is not in level_map {sorted(level_map)}"
    if level_map is None and r.level not in LEVELS:
        return f"level {r.level} is out of range 1..5"
    if r.issued_at < night.start - STALE_AFTER:
        return f"reading issued {r.issued_at.isoformat()} is stale (over 36 h before tonight 20:00)"
    return None
