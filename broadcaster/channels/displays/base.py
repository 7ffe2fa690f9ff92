"""The display-screen interface (a plugin of the ``broadcaster.displays`` group, DESIGN A12).

A display shows one warning from ``from`` until ``until`` and can be told to take it down again
(an escalation supersedes it, a broadcast is cancelled): like a loudspeaker play, a display
delivery that was handed over is withdrawn through the dispatcher. A type only pushes and
withdraws; the dispatcher owns retries, expiry and the ledger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.plugins import PluginConfig


class DisplayConfig(PluginConfig):
    """Keys every display accepts; each type subclasses it with ``type: Literal[...]``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: str


@dataclass(frozen=True)
class DisplayJob:
    """One warning on one screen, shown from ``start`` until ``until`` (aware, the town's zone)."""

    delivery_id: int
    display_id: str
    village_id: str
    text: str
    level: int
    colour: str
    start: datetime
    until: datetime
    image_url: str | None


class DisplayChannel(ABC):
    """One screen. Subclasses set ``type`` and ``Config`` and implement send and withdraw."""

    type: ClassVar[str]
    Config: ClassVar[type[DisplayConfig]] = DisplayConfig
    withdrawable: ClassVar[bool] = True

    def __init__(self, config: DisplayConfig) -> None:
        self.config = config

    @property
    def id(self) -> str:
        return self.config.id

    @abstractmethod
    def send(self, job: DisplayJob) -> SendResult:
        """Put the warning on screen; raise TransientError or PermanentError."""

    @abstractmethod
    def withdraw(self, job: DisplayJob) -> None:
        """Take the warning down; raise TransientError or PermanentError when it cannot be told."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
