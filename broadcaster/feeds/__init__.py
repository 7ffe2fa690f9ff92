"""CO-index sources: plugins of the ``broadcaster.feeds`` entry-point group (DESIGN A9), keyed
by ``type``, and the poll over several sources. Each built-in type lives in its own module."""

from __future__ import annotations

from typing import Any

from broadcaster import plugins
from broadcaster.feeds.base import (
    Factor,
    PollResult,
    Reading,
    Source,
    SourceConfig,
    SourceContext,
    SourceOutcome,
)
from broadcaster.timeutil import Night

__all__ = [
    "Factor",
    "PollResult",
    "Reading",
    "Source",
    "SourceConfig",
    "SourceContext",
    "SourceOutcome",
    "build_sources",
    "poll_sources",
    "source_types",
]

def source_types() -> dict[str, type[Source]]:
    """All installed source classes by their ``type`` key (entry points, built-ins included)."""
    return plugins.available("feeds")


def build_sources(configs: list[SourceConfig], ctx: SourceContext) -> list[Source]:
    types = source_types()
    return [types[c.type](c, ctx) for c in configs]


def poll_sources(sources: list[Source], night: Night) -> PollResult:
    """Ask every source; tonight's reading is the highest valid level. Failures are recorded."""
    outcomes = [s.tonight(night) for s in sources]
    valid = [o.reading for o in outcomes if o.reading is not None]
    best = max(valid, key=lambda r: r.level) if valid else None
    return PollResult(night=night, reading=best, outcomes=outcomes)


def outcome_json(result: PollResult) -> list[dict[str, Any]]:
    return [o.to_json() for o in result.outcomes]
