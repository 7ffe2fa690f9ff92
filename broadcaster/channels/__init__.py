"""Delivery channels: SMS providers and loudspeaker endpoints, each behind one small interface."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SendResult:
    """What a channel reports after a successful hand-over.

    ``state`` is the delivery's new state: ``sent`` (handed over), ``played`` (the endpoint
    confirmed playback) or ``delivered``. ``provider_id`` is the provider's own id, if any.
    """

    state: str = "sent"
    provider_id: str | None = None
    segments: int | None = None
