"""Handing a text (and files) to the station's group chats: the weekly report and incidents (A14).

Group-chat robots (WeCom, DingTalk, Feishu: DESIGN A12) come with issue 14. Until then this is the
one place the report and the incident flows call, and it sends nothing: with no chat channel in
this release every call is a no-op that returns an empty list (and says so in the log once).

When chats exist, this is where each id becomes a ``chat`` delivery in the ledger (one per chat and
message, so the dispatcher retries and counts it like any other): WeCom gets the files themselves,
the others the text with the console link. The report's section "群消息" already counts ``chat``
deliveries, whatever creates them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)

_said = False


def to_chats(chat_ids: Sequence[str], text: str, files: Sequence[Path] = (),
             link: str | None = None) -> list[str]:
    """Hand ``text`` (and ``files``, or ``link`` where a chat takes no files) to the chats
    ``chat_ids``; returns the ids it was handed to. No chat channel exists yet: nothing is sent."""
    global _said
    if chat_ids and not _said:
        _said = True
        log.warning("group chats are not available in this release: nothing sent to %s", ", ".join(chat_ids))
    return []
