"""Turning a decision into an alert and its deliveries (rows for the ledger)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from broadcaster.channels.speakers import SpeakerChannel
from broadcaster.rules import PlayPlan, SmsPlan
from broadcaster.timeutil import Night


class _Bulletin(Protocol):
    sha256: str
    ext: str


class RenderFn(Protocol):
    def __call__(self, text: str | None, clip: str | None, repeat: int | None, fmt: str) -> _Bulletin: ...


@dataclass(frozen=True)
class Timing:
    now: datetime
    sms_expires_at: datetime
    play_expiry: timedelta
    night_end: datetime | None


def iter_sms_rows(plans: Iterable[SmsPlan], provider: str, t: Timing) -> Iterator[dict[str, Any]]:
    """Ledger rows for SMS plans, one at a time: a county-wide alert need not be held in memory."""
    for p in plans:
        yield {
            "channel": "sms",
            "kind": provider,
            "target": p.phone,
            "slot": "",
            "contact_name": p.name,
            "village_id": p.village_id,
            "body": p.body,
            "due_at": t.now,
            "expires_at": t.sms_expires_at,
            "state": "pending",
            "attempts": 0,
            "possible_duplicate": False,
            "updated_at": t.now,
        }


def sms_rows(plans: Iterable[SmsPlan], provider: str, t: Timing) -> list[dict[str, Any]]:
    """Ledger rows for SMS plans, as a list (see ``iter_sms_rows`` to stream them)."""
    return list(iter_sms_rows(plans, provider, t))


def play_rows(
    plans: list[PlayPlan],
    speakers: dict[str, SpeakerChannel],
    default_fmt: str,
    render: RenderFn,
    t: Timing,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows for each play; renders each distinct bulletin once. Returns rows and the first sha256."""
    rows: list[dict[str, Any]] = []
    first_sha: str | None = None
    for p in plans:
        channel = speakers[p.speaker_id]
        fmt = channel.config.format or default_fmt
        b = render(p.text, p.clip, p.repeat, fmt)
        first_sha = first_sha or b.sha256
        expires = p.play_at + t.play_expiry
        if t.night_end is not None:
            expires = min(expires, max(t.night_end, p.play_at + timedelta(minutes=5)))
        due = {"schedule": t.now, "play_at": p.play_at, "pull": None}[channel.mode]
        rows.append(
            {
                "channel": "speaker",
                "kind": channel.type,
                "target": p.speaker_id,
                "slot": p.play_at.isoformat(),
                "village_id": p.village_id,
                "audio_sha256": b.sha256,
                "audio_ext": b.ext,
                "repeat": p.repeat or 1,
                "play_at": p.play_at,
                "due_at": due,
                "expires_at": expires,
                "state": "pending",
                "attempts": 0,
                "possible_duplicate": False,
                "updated_at": t.now,
            }
        )
    return rows, first_sha


def timing_for_night(now: datetime, night: Night, play_expiry_min: int) -> Timing:
    return Timing(now=now, sms_expires_at=night.end, play_expiry=timedelta(minutes=play_expiry_min), night_end=night.end)
