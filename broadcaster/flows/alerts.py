"""Turning a decision into an alert's deliveries: the rules' plans as the ledger's rows.

The rows themselves are built by :func:`broadcaster.ledger.sms_row` and :func:`~broadcaster.ledger.play_row`;
here are the timing of a night (when an alert's SMS and plays go stale) and the rendering of
each play's bulletin.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from broadcaster.channels.speakers import SpeakerChannel
from broadcaster.ledger import chat_row, display_row, play_row, sms_row
from broadcaster.rules import ChatPlan, DisplayPlan, PlayPlan, SmsPlan
from broadcaster.timeutil import Night


class _Bulletin(Protocol):
    sha256: str
    ext: str


class RenderFn(Protocol):
    """Renders a bulletin (text or clip, repeated, in a format) and returns its sha256 and ext."""

    def __call__(self, text: str | None, clip: str | None, repeat: int | None, fmt: str) -> _Bulletin: ...


@dataclass(frozen=True)
class Timing:
    """When an alert's deliveries are created and when they go stale."""

    now: datetime
    sms_expires_at: datetime
    play_expiry: timedelta
    night_end: datetime | None


def iter_sms_rows(plans: Iterable[SmsPlan], provider: str, t: Timing) -> Iterator[dict[str, Any]]:
    """Ledger rows for SMS plans, one at a time: a county-wide alert need not be held in memory."""
    for p in plans:
        yield sms_row(phone=p.phone, name=p.name, village_id=p.village_id, body=p.body, kind=provider,
                      due_at=t.now, expires_at=t.sms_expires_at, now=t.now, group=p.group,
                      template=p.template, values=p.values)


def sms_rows(plans: Iterable[SmsPlan], provider: str, t: Timing) -> list[dict[str, Any]]:
    """Ledger rows for SMS plans, as a list (see ``iter_sms_rows`` to stream them)."""
    return list(iter_sms_rows(plans, provider, t))


def chat_rows(plans: Iterable[ChatPlan], takes_images: Iterable[str], t: Timing) -> list[dict[str, Any]]:
    """One text row per chat, and a poster row for robots that take images (``takes_images``:
    their types); all stale at the night's end, like the SMS (DESIGN A12)."""
    images = set(takes_images)
    rows: list[dict[str, Any]] = []
    for p in plans:
        for part in ("text", "image") if p.chat_type in images else ("text",):
            rows.append(chat_row(chat_id=p.chat_id, kind=p.chat_type, part=part, body=p.text, due_at=t.now,
                                 expires_at=t.sms_expires_at, now=t.now))
    return rows


def display_rows(plans: Iterable[DisplayPlan], t: Timing) -> list[dict[str, Any]]:
    """One row per screen: shown from now until the plan's ``until``."""
    return [display_row(display_id=p.display_id, village_id=p.village_id, kind=p.display_type, text=p.text,
                        start=t.now, until=p.until, now=t.now) for p in plans if p.until > t.now]


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
        b = render(p.text, p.clip, p.repeat, channel.config.format or default_fmt)
        first_sha = first_sha or b.sha256
        expires = p.play_at + t.play_expiry
        if t.night_end is not None:
            expires = min(expires, max(t.night_end, p.play_at + timedelta(minutes=5)))
        rows.append(play_row(speaker_id=p.speaker_id, village_id=p.village_id, kind=channel.type,
                             mode=channel.mode, sha256=b.sha256, ext=b.ext, repeat=p.repeat or 1,
                             play_at=p.play_at, expires_at=expires, now=t.now))
    return rows, first_sha


def timing_for_night(now: datetime, night: Night, play_expiry_min: int) -> Timing:
    """SMS stale at the night's end; plays ``play_expiry_min`` after their time, at most at the end."""
    return Timing(now=now, sms_expires_at=night.end, play_expiry=timedelta(minutes=play_expiry_min), night_end=night.end)
