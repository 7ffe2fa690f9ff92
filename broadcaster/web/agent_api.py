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

import asyncio
import hashlib
import hmac
import logging
import os
import re
import secrets
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from broadcaster.ledger import Delivery, EndpointContact
from broadcaster.web.auth import AGENT, Principal, current_principal, require, require_agent

log = logging.getLogger(__name__)

_NAME = re.compile(r"^([0-9a-f]{64})\.(mp3|wav)$")
_MEDIA = {"mp3": "audio/mpeg", "wav": "audio/wav"}
MAX_WAIT_S = 60
POLL_EVERY_S = 0.5
SEEN_EVERY_S = 60.0


class PlayResult(BaseModel):
    """What an agent reports for one command."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["played", "failed", "expired"]
    played_at: datetime | None = None
    error: str | None = Field(default=None, max_length=2000)


# ------------------------------------------------------------------ signed URLs


def url_key(data_dir: Path) -> bytes:
    """The deployment's secret for signed audio URLs, created on first use (mode 0600)."""
    path = data_dir / "audio-url.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # first writer wins when two processes start together
        except FileExistsError:
            pass
        tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()


def _sig(key: bytes, name: str, exp: int) -> str:
    return hmac.new(key, f"{name}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]


def signed_audio_url(public_url: str, key: bytes, name: str, expires_at: datetime) -> str:
    """``{public_url}/api/v1/audio/{name}?exp=..&sig=..``, valid until ``expires_at``."""
    exp = int(expires_at.timestamp())
    return f"{public_url.rstrip('/')}/api/v1/audio/{name}?exp={exp}&sig={_sig(key, name, exp)}"


# ---------------------------------------------------------------------- queries


def _commands(svc: Any, speaker_id: str) -> list[dict[str, Any]]:
    """This speaker's plays not yet final nor expired; notes the first hand-over in ``sent_at``."""
    now = svc.now()
    base = svc.cfg.settings.http.public_url.rstrip("/")
    tz = svc.cfg.tz
    open_ = (
        Delivery.channel == "speaker", Delivery.target == speaker_id,
        Delivery.state.in_(("pending", "sending", "sent")), Delivery.expires_at > now,
    )
    with svc.ledger.reader() as s:
        rows = list(s.scalars(select(Delivery).where(*open_).order_by(Delivery.play_at, Delivery.id)))
        texts = _alert_texts(s, {d.alert_id for d in rows})
    if not rows:
        return []
    # First hand-over: note it in sent_at, but keep the row pending so that the dispatcher's
    # expiry sweep still ends it "expired" when the agent never reports.
    fresh = [d.id for d in rows if d.sent_at is None]
    if fresh:
        with svc.ledger.session() as s:
            s.execute(update(Delivery).where(Delivery.id.in_(fresh), Delivery.sent_at.is_(None))
                      .values(sent_at=now, attempts=Delivery.attempts + 1, updated_at=now))
        log.info("agent %s: handed over %d play(s)", speaker_id, len(fresh))
    return [
        {
            "id": d.id,
            "audio_url": f"{base}/api/v1/audio/{d.audio_sha256}.{d.audio_ext or 'mp3'}",
            "sha256": d.audio_sha256,
            "play_at": (d.play_at or now).astimezone(tz).isoformat(),
            "expires_at": d.expires_at.astimezone(tz).isoformat(),
            "repeat": d.repeat or 1,
            "text": texts.get(d.alert_id, ""),
        }
        for d in rows
    ]


def _alert_texts(s: Any, alert_ids: set[int]) -> dict[int, str]:
    from broadcaster.ledger import Alert

    if not alert_ids:
        return {}
    return {i: t or "" for i, t in s.execute(select(Alert.id, Alert.speaker_text).where(Alert.id.in_(alert_ids)))}


def _owns_audio(svc: Any, speaker_id: str, sha: str, ext: str) -> bool:
    with svc.ledger.reader() as s:
        return s.scalar(select(Delivery.id).where(
            Delivery.channel == "speaker", Delivery.target == speaker_id,
            Delivery.audio_sha256 == sha, Delivery.audio_ext == ext).limit(1)) is not None


# ----------------------------------------------------------------------- router


def router(svc: Any) -> APIRouter:
    r = APIRouter()
    written: dict[str, float] = {}  # speaker id -> monotonic time of the last write
    key = url_key(svc.cfg.data_dir)

    def seen(p: Principal, request: Request) -> None:
        # Kept in the ledger (the console shows it after a restart too), written at most once a
        # minute per agent: a long-polling agent calls every few seconds.
        sid = p.speaker_id or ""
        if time.monotonic() - written.get(sid, -1e9) < SEEN_EVERY_S:
            return
        written[sid] = time.monotonic()
        row = {"last_seen": svc.now(), "address": request.client.host if request.client else None}
        with svc.ledger.session() as s:
            if s.get(EndpointContact, sid) is None:
                s.add(EndpointContact(speaker_id=sid, **row))
            else:
                s.execute(update(EndpointContact).where(EndpointContact.speaker_id == sid).values(**row))

    @r.get("/api/agent/v1/commands", tags=["agent"])
    async def commands(request: Request, wait: float = Query(30, ge=0),
                       p: Principal = Depends(require_agent)) -> list[dict[str, Any]]:
        sid = p.speaker_id or ""
        seen(p, request)
        deadline = time.monotonic() + min(wait, MAX_WAIT_S)
        while True:
            cmds = await run_in_threadpool(_commands, svc, sid)
            if (cmds or time.monotonic() >= deadline or svc.stopping.is_set()
                    or await request.is_disconnected()):
                return cmds
            await asyncio.sleep(min(POLL_EVERY_S, max(0.0, deadline - time.monotonic())))

    @r.post("/api/agent/v1/commands/{delivery_id}/result", tags=["agent"])
    def result(delivery_id: int, body: PlayResult, request: Request,
               p: Principal = Depends(require_agent)) -> dict[str, Any]:
        seen(p, request)
        now = svc.now()
        played_at = body.played_at
        if played_at is not None and played_at.tzinfo is None:
            raise HTTPException(422, "played_at: needs a timezone offset")
        state = svc.ledger.report_play(delivery_id, p.speaker_id or "", body.status, now,
                                       played_at=played_at, error=body.error)
        if state is None:
            raise HTTPException(404, "no such command for this speaker")
        log.info("agent %s: delivery %d reported %s (now %s)", p.speaker_id, delivery_id, body.status, state)
        return {"id": delivery_id, "state": state}

    @r.get("/api/v1/audio/{name}", tags=["audio"])
    def audio(name: str, request: Request, exp: int | None = None, sig: str | None = None) -> FileResponse:
        m = _NAME.match(name)
        if not m:
            raise HTTPException(404, "no such audio")
        sha, ext = m.groups()
        if sig is not None and exp is not None:
            ok = hmac.compare_digest(sig, _sig(key, name, exp)) and svc.now().timestamp() <= exp
            if not ok:
                raise HTTPException(403, "bad or expired signature")
        else:
            p = current_principal(request)
            if p.role == AGENT:
                if not p.speaker_id or not _owns_audio(svc, p.speaker_id, sha, ext):
                    raise HTTPException(404, "no such audio")
            elif not p.at_least("operator"):
                raise HTTPException(403, "requires role operator or higher")
        path = svc.audio_file(sha, ext)
        if path is None:
            raise HTTPException(404, "no such audio")
        return FileResponse(path, media_type=_MEDIA[ext])

    @r.get("/api/v1/agents", tags=["agent"])
    def agents(_: Principal = Depends(require("operator"))) -> dict[str, Any]:
        with svc.ledger.reader() as s:
            rows = list(s.scalars(select(EndpointContact)))
        return {"agents": {r.speaker_id: {"at": r.last_seen.astimezone(svc.cfg.tz).isoformat(), "address": r.address}
                           for r in rows}}

    return r
