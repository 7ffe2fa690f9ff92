"""Loudspeaker endpoint types: plugins of the ``broadcaster.speakers`` entry-point group (A9)."""

from __future__ import annotations

from broadcaster import plugins
from broadcaster.channels.speakers.base import (
    PlayJob,
    SpeakerChannel,
    SpeakerConfig,
    SpeakerContext,
)

__all__ = ["PlayJob", "SpeakerChannel", "SpeakerConfig", "SpeakerContext", "speaker_types"]


def speaker_types() -> dict[str, type[SpeakerChannel]]:
    """All installed endpoint classes by their ``type`` key (entry points, built-ins included)."""
    return plugins.available("speakers")
