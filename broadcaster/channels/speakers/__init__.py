"""Loudspeaker endpoint types, by ``type`` (registry filled from the modules listed here)."""

from __future__ import annotations

import importlib

from broadcaster.channels.speakers.base import (
    PlayJob,
    SpeakerChannel,
    SpeakerConfig,
    SpeakerContext,
)

__all__ = ["PlayJob", "SpeakerChannel", "SpeakerConfig", "SpeakerContext", "speaker_types"]

_MODULES = ("folder", "agent", "http", "mqtt")
_registry: dict[str, type[SpeakerChannel]] = {}


def speaker_types() -> dict[str, type[SpeakerChannel]]:
    if not _registry:
        for name in _MODULES:
            try:
                mod = importlib.import_module(f"broadcaster.channels.speakers.{name}")
            except ModuleNotFoundError as exc:  # an endpoint type not written yet
                if exc.name == f"broadcaster.channels.speakers.{name}":
                    continue
                raise
            _registry[mod.CHANNEL.type] = mod.CHANNEL
    return _registry
