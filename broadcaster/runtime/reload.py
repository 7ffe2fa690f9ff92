"""Taking a changed directory.yaml into a running service (``kill -HUP``; issue 19, item 4).

The new file is loaded and checked whole; with an error nothing changes (the running service
keeps the last good directory and logs the problems, Chinese first). Otherwise the villages,
endpoints and contacts are swapped in, each new endpoint gets its channel, and it catches up on
the plays still to come in its village (tonight's 19:30, handed over or not yet): a new
broadcast-room agent hears tonight's warning without waiting for tomorrow's poll. Settings other
than the directory (SMS provider, listen address, feeds) still need a restart.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.channels.speakers import SpeakerContext, speaker_types
from broadcaster.config import load_config
from broadcaster.errors import ConfigError, Problem
from broadcaster.ledger.rows import play_row

if TYPE_CHECKING:
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)


def reload_directory(svc: Service, actor: str = "SIGHUP") -> tuple[list[str], list[Problem]]:
    """Load directory.yaml again; returns the endpoints added and the problems (errors: nothing
    was taken)."""
    try:
        new = load_config(svc.cfg.path)
    except ConfigError as exc:
        log.error("directory not reloaded, still using the last good one: %s",
                  "; ".join(str(p) for p in exc.problems[:5]))
        return [], exc.problems
    cfg = svc.cfg
    added = [sid for sid in new.speakers if sid not in svc.speakers]
    ctx, types = SpeakerContext(base_dir=new.directory_dir), speaker_types()
    for sid in added:
        ch = types[new.speakers[sid][1].type](new.speakers[sid][1], ctx)
        if hasattr(ch, "bind"):
            ch.bind(confirm=svc.confirm_play, sign=svc.links.signed)
        svc.speakers[sid] = ch  # the dispatcher holds this same dict
    # Endpoints that left the directory keep their channel: plays already handed to them settle.
    cfg.directory, cfg.speakers, cfg.directory_dir, cfg.book = new.directory, new.speakers, new.directory_dir, new.book
    caught = catch_up(svc, added)
    svc.ledger.audit(svc.now(), actor, "directory.reload", "config", None,
                     {"villages": len(new.directory.villages), "speakers_added": added, "plays": caught})
    log.info("directory reloaded: %d villages, %d endpoints (%d new, %d plays caught up)",
             len(new.directory.villages), len(new.speakers), len(added), caught)
    return added, [p for p in new.warnings]


def catch_up(svc: Service, speaker_ids: list[str]) -> int:
    """Give new endpoints the plays still to come in their villages; returns how many."""
    if not speaker_ids:
        return 0
    now, cfg = svc.now(), svc.cfg
    by_village: dict[str, list[tuple[Any, ...]]] = {}
    for row in svc.ledger.reads.plays_to_come(now):
        by_village.setdefault(row[1], []).append(row)
    added = 0
    for sid in speaker_ids:
        village, sc = cfg.speakers[sid]
        ch = svc.speakers[sid]
        fmt = sc.format if getattr(sc, "format", None) else cfg.settings.audio.format
        per_alert: dict[int, list[dict[str, Any]]] = {}
        seen: set[tuple[int, Any]] = set()
        for alert_id, _vid, play_at, expires_at, sha, ext, repeat in by_village.get(village.id, []):
            if ext != fmt or (alert_id, play_at) in seen:
                continue  # the bulletin was made for another format; the next poll renders this one's
            seen.add((alert_id, play_at))
            per_alert.setdefault(alert_id, []).append(play_row(
                speaker_id=sid, village_id=village.id, kind=ch.type, mode=ch.mode, sha256=sha, ext=ext,
                repeat=repeat, play_at=play_at, expires_at=expires_at or play_at + timedelta(hours=1), now=now))
        for alert_id, rows in per_alert.items():
            added += svc.ledger.add_deliveries(alert_id, rows)
    if added:
        svc.dispatcher.wake()
    return added
