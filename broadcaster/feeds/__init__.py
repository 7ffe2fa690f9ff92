"""CO-index sources: a registry keyed by ``type`` and the poll over several sources.

Each source type lives in its own module and registers its class here (apprise-style).
"""

from __future__ import annotations

import importlib
from typing import Any

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

# Module name -> the module defines one Source subclass named in its ``SOURCE`` attribute.
_MODULES = ("demo", "file", "http_json", "qweather", "open_meteo")
_registry: dict[str, type[Source]] = {}


def source_types() -> dict[str, type[Source]]:
    """All source classes by their ``type`` key."""
    if not _registry:
        for mod_name in _MODULES:
            try:
                mod = importlib.import_module(f"broadcaster.feeds.{mod_name}")
            except ModuleNotFoundError as exc:  # a source not written yet
                if exc.name == f"broadcaster.feeds.{mod_name}":
                    continue
                raise
            cls: type[Source] = mod.SOURCE
            _registry[cls.type] = cls
    return _registry


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
