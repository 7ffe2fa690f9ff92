"""The loudspeaker endpoint interface (DESIGN A7).

An endpoint type is a module with a ``Config`` model and a :class:`SpeakerChannel` subclass.
The dispatcher owns retries, expiry and the ledger; a channel only hands one play over.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.errors import PermanentError
from broadcaster.plugins import PluginConfig

# When the dispatcher hands a play to its endpoint:
#   "schedule": as soon as the play is scheduled (the endpoint plays at play_at itself)
#   "play_at":  at play_at (the endpoint plays on receipt)
#   "pull":     never; the endpoint's agent pulls its commands
Mode = Literal["schedule", "play_at", "pull"]


class SpeakerConfig(PluginConfig):
    """Keys every endpoint accepts; each type subclasses it with ``type: Literal[...]``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: str
    format: Literal["mp3", "wav", "g711"] | None = None  # default: audio.format


@dataclass(frozen=True)
class PlayJob:
    """One play of one bulletin on one endpoint."""

    delivery_id: int
    speaker_id: str
    village_id: str
    play_at: datetime
    expires_at: datetime
    repeat: int
    sha256: str
    audio_path: Path
    audio_url: str


@dataclass(frozen=True)
class SpeakerContext:
    """What endpoints may know about the deployment."""

    base_dir: Path  # directory of directory.yaml, for relative paths


class SpeakerChannel(ABC):
    type: ClassVar[str]
    Config: ClassVar[type[SpeakerConfig]] = SpeakerConfig
    mode: ClassVar[Mode] = "schedule"
    # True when re-sending the same delivery cannot play it twice (crash recovery re-sends).
    idempotent: ClassVar[bool] = False
    # True when a play already handed over can be taken back before its time (``withdraw``).
    withdrawable: ClassVar[bool] = False

    def __init__(self, config: SpeakerConfig, ctx: SpeakerContext) -> None:
        self.config = config
        self.ctx = ctx

    @property
    def id(self) -> str:
        return self.config.id

    def send(self, job: PlayJob) -> SendResult:
        """Hand the play over; raise TransientError or PermanentError on failure. Every type
        that is pushed to implements it; a ``pull`` type's plays are fetched, never sent."""
        raise PermanentError(f"{self.type} endpoints fetch their plays; nothing is pushed to them")

    def withdraw(self, job: PlayJob) -> None:
        """Take back a play handed over earlier (a cancelled broadcast, a superseded alert);
        raise TransientError or PermanentError when the endpoint cannot be told."""
        raise PermanentError(f"{self.type} endpoints cannot withdraw a play")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (MQTT sessions, HTTP pools)."""
