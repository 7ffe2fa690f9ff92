"""What a delivery is made of, as plain values: new rows, a claimed job, an outcome, a receipt.

Pure (no database): flows build rows here, the dispatcher reports outcomes with these types, and
:mod:`broadcaster.ledger.deliveries` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any


# ------------------------------------------------------------------ new rows


def _new(now: datetime) -> dict[str, Any]:
    return {"state": "pending", "attempts": 0, "possible_duplicate": False, "updated_at": now}


def sms_row(*, phone: str, name: str | None, village_id: str | None, body: str | None, kind: str,
            due_at: datetime, expires_at: datetime, now: datetime, group: str | None = None,
            template: str | None = None, values: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A new SMS delivery (for :meth:`Ledger.create_alert`): one message to one E.164 number from
    provider ``kind``, sent from ``due_at``, never after ``expires_at``; ``group`` is the directory
    group it is sent for (the weekly report counts by it); ``template`` and ``values`` name the
    rules template ``body`` was rendered from, for template-only providers (DESIGN A10)."""
    return {"channel": "sms", "kind": kind, "target": phone, "slot": "", "contact_name": name,
            "village_id": village_id, "body": body, "due_at": due_at, "expires_at": expires_at,
            "sms_group": group, "sms_template": template,
            "sms_values": json.dumps(dict(values), ensure_ascii=False, sort_keys=True) if values else None,
            **_new(now)}


def play_row(*, speaker_id: str, village_id: str, kind: str, mode: str, sha256: str, ext: str, repeat: int,
             play_at: datetime, expires_at: datetime, now: datetime) -> dict[str, Any]:
    """A new loudspeaker play on endpoint ``speaker_id`` of type ``kind``. ``mode`` is the
    endpoint's: ``schedule`` endpoints get it at once (``due_at`` now) and play it at ``play_at``,
    ``play_at`` endpoints get it at ``play_at``, ``pull`` endpoints (agents) fetch it (no due time)."""
    due = {"schedule": now, "play_at": play_at, "pull": None}[mode]
    return {"channel": "speaker", "kind": kind, "target": speaker_id, "slot": play_at.isoformat(),
            "village_id": village_id, "audio_sha256": sha256, "audio_ext": ext, "repeat": repeat,
            "play_at": play_at, "due_at": due, "expires_at": expires_at, **_new(now)}


def chat_row(*, chat_id: str, kind: str, part: str, body: str, due_at: datetime, expires_at: datetime,
             now: datetime) -> dict[str, Any]:
    """A new group-chat message (DESIGN A12) to chat ``chat_id`` of robot type ``kind``: ``part`` is
    ``text`` or ``image`` (WeCom's poster), each its own delivery so each is retried on its own."""
    return {"channel": "chat", "kind": kind, "target": chat_id, "slot": part, "body": body,
            "due_at": due_at, "expires_at": expires_at, **_new(now)}


def display_row(*, display_id: str, village_id: str, kind: str, text: str, start: datetime, until: datetime,
                now: datetime) -> dict[str, Any]:
    """A warning on display ``display_id`` from ``start`` until ``until``. ``play_at`` holds
    ``until``: like a play not yet played, a warning still on screen can be withdrawn."""
    return {"channel": "display", "kind": kind, "target": display_id, "slot": start.isoformat(),
            "village_id": village_id, "body": text, "play_at": until, "due_at": start,
            "expires_at": until, **_new(now)}


# ------------------------------------------------------------- jobs and events


@dataclass(frozen=True)
class DeliveryJob:
    """A claimed delivery, detached from the session, safe to hand to a worker thread."""

    id: int
    alert_id: int
    channel: str
    kind: str
    target: str
    village_id: str | None
    contact_name: str | None
    body: str | None
    audio_sha256: str | None
    audio_ext: str | None
    repeat: int | None
    play_at: datetime | None
    expires_at: datetime
    attempts: int
    claimed_at: datetime | None
    # "text"/"image" for a chat message, the start (ISO) of a display's warning, a play's time
    slot: str = ""
    sms_template: str | None = None
    sms_values: str | None = None  # JSON object, as sms_row wrote it

    def values(self) -> dict[str, str]:
        """The template values of an SMS (empty for free text)."""
        return json.loads(self.sms_values) if self.sms_values else {}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed delivery (or of its withdrawal), as the dispatcher saw it.

    ``event`` is one of :data:`~broadcaster.ledger.transitions.DISPATCH_EVENTS` or, for a withdrawal,
    ``withdrawn``/``withdraw_retry``/``withdraw_failed``; the other fields are the facts to record
    with it (``None``: leave the column as it is). ``withdrawable`` says a handed-over play can
    still be taken back by its endpoint, which matters when a cancel came while it was in flight.
    ``claimed_at`` names the claim it answers (see the field's comment).
    """

    id: int
    event: str
    at: datetime
    provider_id: str | None = None
    segments: int | None = None
    error: str | None = None
    due_at: datetime | None = None
    attempts: int | None = None
    possible_duplicate: bool = False
    withdrawable: bool = False
    # The claim this outcome answers (the job's ``claimed_at``): with it, an outcome that arrives
    # after the claim's lease lapsed and another node settled (or re-claimed) the row changes nothing.
    claimed_at: datetime | None = None


_HANDED = frozenset({"handed", "confirmed_played", "confirmed_delivered", "reconcile_sent"})


def changes(o: Outcome, state: str) -> dict[str, Any]:
    """The columns an outcome writes on a row that moves to ``state``."""
    v: dict[str, Any] = {"state": state, "updated_at": o.at}
    if o.event in _HANDED:
        v.update(sent_at=o.at, provider_id=o.provider_id, last_error=None)
        if o.event != "reconcile_sent":
            v["segments"] = o.segments
        if state == "played":
            v["played_at"] = o.at
        elif state == "delivered":
            v["delivered_at"] = o.at
    elif o.error is not None:
        v["last_error"] = o.error
    if o.due_at is not None:
        v["due_at"] = o.due_at
    if o.attempts is not None:
        v["attempts"] = o.attempts
    if o.possible_duplicate:
        v["possible_duplicate"] = True
    return v


@dataclass(frozen=True)
class Receipt:
    """What a provider's receipt did: the delivery it matched (None: no such provider id), its
    number, and its state afterwards (``moved``: the receipt changed it)."""

    delivery_id: int | None
    target: str
    state: str | None
    moved: bool
