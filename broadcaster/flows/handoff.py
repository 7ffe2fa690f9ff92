"""Handing a text to the station's group chats: the weekly report and incidents (A14, A12).

Each call becomes a ``system`` alert with one ``chat`` delivery per chat (DESIGN A12), so the
dispatcher sends, retries and expires it like any other message and the console and the report's
section "群消息" count it. ``key`` names what is handed over (a report's period, an incident's
correction): the same key never creates a second alert, so a repeated call sends nothing twice.
Every robot gets the text with the console's link; a robot that takes files (WeCom's upload_media)
also gets each file as its own delivery (slot ``file:NAME``, the row's body the file's path), sent,
retried and counted like the text. The files stay in the console too, linked from the text.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.flows.alerts import Timing, chat_rows
from broadcaster.ledger import Alert, chat_row
from broadcaster.rules import ChatPlan
from broadcaster.timeutil import tonight

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

#: A hand-over not sent within a day is stale (the next report or correction follows).
VALID = timedelta(hours=24)
FILE_SLOT = "file:"
_SLOT_LEN = 40  # the ledger's slot column


def file_slot(name: str) -> str:
    """The delivery slot of file ``name``: ``file:周报-2026-W48.pdf`` (a digest when too long)."""
    slot = FILE_SLOT + name
    if len(slot) <= _SLOT_LEN:
        return slot
    ext = name.rsplit(".", 1)[-1][:8] if "." in name else ""
    return f"{FILE_SLOT}{hashlib.sha256(name.encode('utf-8')).hexdigest()[:16]}.{ext}"


def to_chats(svc: Service, chat_ids: Sequence[str], text: str, files: Sequence[Path] = (),
             link: str | None = None, *, key: str | None = None, author: str = "scheduler") -> list[str]:
    """Queue ``text`` (with ``link``, and the names of ``files``) for the chats ``chat_ids``;
    returns the ids it was queued for (unknown ids are logged and skipped)."""
    known = [c for c in dict.fromkeys(chat_ids) if c in svc.chats]
    unknown = [c for c in chat_ids if c not in svc.chats]
    if unknown:
        log.warning("chats not configured, nothing sent there: %s", ", ".join(unknown))
    if not known:
        return []
    body = text.rstrip()
    if files:
        body += "\n\n附件 / files: " + "、".join(f.name for f in files)
    if link:
        body += f"\n{link}"
    now = svc.now()
    town = svc.cfg.settings.town
    digest = hashlib.sha256(f"{key or body}|{','.join(known)}".encode("utf-8")).hexdigest()[:24]
    plans = [ChatPlan(cid, svc.chats[cid].type, "handoff", body) for cid in known]
    # Text only: the poster belongs to warnings, not to reports.
    rows = chat_rows(plans, (), Timing(now, now + VALID, VALID, None))
    for cid in known:
        if svc.chats[cid].takes_files:
            rows += [chat_row(chat_id=cid, kind=svc.chats[cid].type, part=file_slot(f.name), body=str(f.resolve()),
                              due_at=now, expires_at=now + VALID, now=now) for f in files]
    alert = Alert(kind="system", dedupe_key=f"chats:{digest}", region=town, night=tonight(now, svc.cfg.tz).date,
                  level=None, rules=["handoff"], status="dispatching", sms_text=body, created_at=now,
                  created_by=author)
    alert_id, created = svc.ledger.create_alert(alert, rows)
    if created:
        log.info("handed to %d chats (alert %d)", len(known), alert_id)
        svc.dispatcher.wake()
    return known
