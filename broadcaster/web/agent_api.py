"""Agent endpoints (DESIGN A7, ``agent``) and the audio download route (A6).

* ``GET /api/agent/v1/commands?wait=30``: the calling agent's pending plays, long-polled.
  The first hand-over sets ``sent_at``; a play stays listed until reported or expired, so an
  agent that lost its cache gets it again (the agent de-duplicates by id).
* ``POST /api/agent/v1/commands/{id}/result``: ``played`` / ``failed`` / ``expired``.
* ``GET /api/v1/audio/{sha256}.{ext}``: an agent gets only its own speaker's audio; operators
  get any; 4G cloud speakers, which cannot send a bearer token, get a signed, expiring URL
  (``?exp=..&sig=..``, HMAC with a key kept in ``data_dir``).
* ``GET /api/v1/agents``: when each agent last called (kept in the ledger, to the minute).
"""

from __future__ import annotations

import hashlib
import logging
import re
import json
import threading
import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.web.auth import AGENT, Id, Principal, current_principal, require, require_agent
from broadcaster.web.longpoll import CommandWatch

log = logging.getLogger(__name__)

_NAME = re.compile(r"^([0-9a-f]{64})\.(mp3|wav)$")
_MEDIA = {"mp3": "audio/mpeg", "wav": "audio/wav"}
MAX_WAIT_S = 60
#: Long polls one agent token may hold open at once; more are answered at once, without waiting
#: (an agent needs one; a stolen token must not hold hundreds of connections).
MAX_POLLS_PER_AGENT = 2
SEEN_EVERY_S = 60.0
AGENT_POLLS = Counter("broadcaster_agent_polls", "Agent long polls answered, by whether the answer changed",
                      ["answer"])


class PlayResult(BaseModel):
    """What an agent reports for one command."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["played", "failed", "expired", "cancelled"]
    played_at: datetime | None = None
    error: str | None = Field(default=None, max_length=2000)


# ---------------------------------------------------------------------- queries


def _commands(svc: Any, speaker_id: str) -> list[dict[str, Any]]:
    """This speaker's plays not yet final nor expired, then ``{"id", "cancelled": true}`` for each
    play withdrawn from it that it has not acknowledged (DESIGN A7)."""
    now = svc.now()
    tz = svc.cfg.tz
    rows, withdrawn = svc.ledger.deliveries.agent_commands(speaker_id, now)
    texts = svc.ledger.reads.alert_texts({d.alert_id for d in rows})
    cmds: list[dict[str, Any]] = [
        {
            "id": d.id,
            "audio_url": svc.links.url(d.audio_sha256, d.audio_ext or "mp3"),
            "sha256": d.audio_sha256,
            "play_at": (d.play_at or now).astimezone(tz).isoformat(),
            "expires_at": d.expires_at.astimezone(tz).isoformat(),
            "repeat": d.repeat or 1,
            "text": texts.get(d.alert_id, ""),
        }
        for d in rows
    ]
    return cmds + [{"id": i, "cancelled": True} for i in withdrawn]


def etag_of(cmds: list[dict[str, Any]]) -> str:
    """A strong ETag of a commands answer: the agent sends it back to wait for a change."""
    raw = json.dumps(cmds, sort_keys=True, ensure_ascii=False).encode()
    return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


EMPTY_ETAG = etag_of([])


# ----------------------------------------------------------------------- router


def router(svc: Any, watch: CommandWatch) -> APIRouter:
    r = APIRouter()
    contacts = _Contacts(svc)
    polls: dict[str, int] = {}  # open long polls per speaker; only touched on the event loop

    @r.get("/api/agent/v1/commands", tags=["agent"])
    async def commands(request: Request, wait: float = Query(30, ge=0),
                       p: Principal = Depends(require_agent)) -> Response:
        """The caller's commands. With ``If-None-Match`` set to the ``ETag`` of the answer it has,
        the request is held until that answer changes, or ``wait`` seconds (DESIGN A8)."""
        sid = p.speaker_id or ""
        contacts.seen(sid, request)
        # Without If-None-Match the caller is taken to hold nothing: an empty answer waits, as
        # the first protocol had it; any command is answered at once.
        have = request.headers.get("if-none-match") or EMPTY_ETAG
        held = polls.get(sid, 0) >= MAX_POLLS_PER_AGENT  # this token holds enough open already
        deadline = time.monotonic() + (0 if held else min(wait, MAX_WAIT_S))
        polls[sid] = polls.get(sid, 0) + 1
        try:
            while True:
                version = watch.version(sid)
                cmds = await run_in_threadpool(_commands, svc, sid)
                etag = etag_of(cmds)
                left = deadline - time.monotonic()
                if etag != have or left <= 0 or svc.stopping.is_set() or watch.closed:
                    AGENT_POLLS.labels("changed" if etag != have else "unchanged").inc()
                    return JSONResponse(cmds, headers={"ETag": etag, "Cache-Control": "no-store"})
                await watch.wait(sid, version, left)
        finally:
            polls[sid] -= 1
            if not polls[sid]:
                del polls[sid]

    @r.post("/api/agent/v1/commands/{delivery_id}/result", tags=["agent"])
    def result(delivery_id: Id, body: PlayResult, request: Request,
               p: Principal = Depends(require_agent)) -> dict[str, Any]:
        contacts.seen(p.speaker_id or "", request)
        now = svc.now()
        played_at = body.played_at
        if played_at is not None and played_at.tzinfo is None:
            raise HTTPException(422, {"field": "played_at", "message": "需要时区 / needs a timezone offset"})
        state = svc.ledger.deliveries.report(delivery_id, p.speaker_id or "", body.status, now,
                                             played_at=played_at, error=body.error)
        if state is None:
            raise HTTPException(404, "no such command for this speaker")
        log.info("agent %s: delivery %d reported %s (now %s)", p.speaker_id, delivery_id, body.status, state)
        watch.poke()
        return {"id": delivery_id, "state": state}

    @r.get("/api/v1/audio/{name}", tags=["audio"])
    def audio(name: str, request: Request, exp: int | None = None, sig: str | None = None) -> FileResponse:
        m = _NAME.match(name)
        if not m:
            raise HTTPException(404, "no such audio")
        sha, ext = m.groups()
        if sig is not None and exp is not None:
            if not svc.links.verify(name, exp, sig, svc.now()):
                raise HTTPException(403, "bad or expired signature")
        else:
            p = current_principal(request)
            if p.role == AGENT:
                if not p.speaker_id or not svc.ledger.reads.owns_audio(p.speaker_id, sha, ext):
                    raise HTTPException(404, "no such audio")
            elif not p.at_least("operator"):
                raise HTTPException(403, "requires role operator or higher")
        path = svc.audio_file(sha, ext)
        if path is None:
            raise HTTPException(404, "no such audio")
        return FileResponse(path, media_type=_MEDIA[ext])

    @r.get("/api/v1/agents", tags=["agent"])
    def agents(_: Principal = Depends(require("operator"))) -> dict[str, Any]:
        contacts.flush()
        rows = svc.ledger.reads.endpoint_contacts()
        return {"agents": {r.speaker_id: {"at": r.last_seen.astimezone(svc.cfg.tz).isoformat(), "address": r.address}
                           for r in rows}}

    return r


class _Contacts:
    """When each agent last called, kept in the ledger (the console shows it after a restart).

    Noted in memory on every request and written for all agents in one transaction at most once
    a minute: 300 village PCs polling must not become a write per request."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self._pending: dict[str, dict[str, Any]] = {}
        self._written: dict[str, float] = {}  # speaker id -> monotonic time of its last write
        self._next_flush = 0.0
        self._lock = threading.Lock()

    def seen(self, speaker_id: str, request: Request) -> None:
        now_m = time.monotonic()
        row = {"last_seen": self.svc.now(), "address": request.client.host if request.client else None}
        with self._lock:
            self._pending[speaker_id] = row
            # A speaker never written (or not for a minute) is written now: the console shows a
            # new agent at once; the rest wait for the next batch.
            due = now_m - self._written.get(speaker_id, -1e9) >= SEEN_EVERY_S or now_m >= self._next_flush
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            rows, self._pending = self._pending, {}
            now_m = time.monotonic()
            self._next_flush = now_m + SEEN_EVERY_S
            for sid in rows:
                self._written[sid] = now_m
        if rows:
            self.svc.ledger.note_contacts(rows)
