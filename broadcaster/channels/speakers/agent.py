"""``agent``: a village broadcast-room PC running ``broadcaster agent`` pulls its plays.

Nothing is pushed: the HTTP API (``/api/agent/v1/...``) serves pending plays to the agent that
holds this speaker's token and records the result it reports. The token is kept only as a hash.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import Field, model_validator

from broadcaster.channels.speakers.base import SpeakerChannel, SpeakerConfig


class AgentConfig(SpeakerConfig):
    type: Literal["agent"]
    token: str | None = Field(default=None, min_length=16)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # Built-in: ``broadcaster run`` runs this speaker's agent itself, in-process, with a token
    # made up at start-up (no secret in YAML). For a demo, or a broadcast room on the same PC.
    builtin: bool = False
    # Built-in only: player command with {file}; default: copy the bulletin into ``played_dir``.
    player: str | None = None
    played_dir: str | None = None

    @model_validator(mode="after")
    def _one_secret(self) -> "AgentConfig":
        if self.builtin:
            if self.token or self.token_sha256:
                raise ValueError("a built-in agent takes no `token` or `token_sha256`: run makes its own")
            return self
        if self.player or self.played_dir:
            raise ValueError("`player` and `played_dir` are for built-in agents only (builtin: true)")
        if bool(self.token) == bool(self.token_sha256):
            raise ValueError("give exactly one of `token` (from ${VAR}) or `token_sha256`")
        return self

    @property
    def digest(self) -> str:
        """sha256 hex of the agent's token: what the API compares against ("" for built-in ones)."""
        if self.token_sha256:
            return self.token_sha256
        if self.token is None:
            return ""
        return hashlib.sha256(self.token.encode()).hexdigest()

    def accepts(self, token: str) -> bool:
        presented = hashlib.sha256(token.encode()).hexdigest()
        return bool(self.digest) and hmac.compare_digest(presented, self.digest)


class AgentChannel(SpeakerChannel):
    type = "agent"
    Config = AgentConfig
    mode = "pull"
    idempotent = True
