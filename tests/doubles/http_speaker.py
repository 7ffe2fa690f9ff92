"""Loopback double of an IP loudspeaker using the ``http`` push protocol (DESIGN.md A7).

``POST /play`` (path configurable), multipart with part ``audio`` (the file) and part
``meta`` (JSON ``{"delivery_id","village","play_at","expires_at","repeat","sha256"}``);
headers ``Authorization: Bearer {token}`` and ``Idempotency-Key: {delivery_id}``.

``DELETE /play`` with the same bearer token and ``Idempotency-Key: {delivery_id}`` withdraws a play
not yet played (A7, Withdrawal): 204 when it was held and is now dropped, 404 when unknown (or
already withdrawn); either means "withdrawn" to the sender.

Answers: 401 bad token; 400 malformed request (not multipart, missing part, bad meta JSON,
missing or mismatching Idempotency-Key, sha256 mismatch); 200 accepted. A repeated
Idempotency-Key is answered 200 again and recorded as a duplicate, not stored twice.
Scripted statuses and the ``FaultPlan`` apply before any of that (a scripted 500 is answered
without looking at the request).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from .faults import Fault, FaultPlan, ScriptItem
from .server import LoopbackDouble, Request, Response

META_KEYS = ("delivery_id", "village", "play_at", "expires_at", "repeat", "sha256")


@dataclass
class Play:
    """A stored (first-time) play command."""

    delivery_id: str
    village: str | None
    play_at: str | None
    expires_at: str | None
    repeat: Any
    sha256: str
    audio: bytes
    filename: str | None
    content_type: str
    meta: dict[str, Any]
    received: float  # time.monotonic()


@dataclass
class SpeakerRequest:
    """One request as the receiver saw and answered it (``status`` None = reset)."""

    arrived: float
    method: str
    path: str
    headers: dict[str, str]
    idempotency_key: str | None
    status: int | None = None
    fault: str | None = None
    error: str | None = None
    duplicate: bool = False
    answered: float | None = None


class SpeakerReceiver(LoopbackDouble):
    """An ``http`` loudspeaker endpoint on 127.0.0.1.

    ``script`` is a shortcut for ``FaultPlan(script=...)`` (e.g. ``[500, 200]``: first answer
    500, then normal handling); pass ``faults`` for a full plan (not both). The push URL is
    ``receiver.play_url``.
    """

    def __init__(
        self,
        token: str = "speaker-token",
        script: list[ScriptItem] | None = None,
        faults: FaultPlan | None = None,
        *,
        path: str = "/play",
        port: int = 0,
    ) -> None:
        if script is not None and faults is not None:
            raise ValueError("give script or faults, not both")
        super().__init__(faults or FaultPlan(script=list(script or [])), port=port)
        self.token = token
        self.path = path
        self._requests: list[SpeakerRequest] = []
        self._plays: dict[str, Play] = {}
        self._withdrawn: dict[str, Play] = {}

    @property
    def play_url(self) -> str:
        """The full push URL, e.g. ``http://127.0.0.1:40123/play``."""
        return self.url + self.path

    # -- records ---------------------------------------------------------------------
    @property
    def requests(self) -> list[SpeakerRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return sorted(self._requests, key=lambda r: r.arrived)

    @property
    def plays(self) -> list[Play]:
        """Stored plays in the order they were first received (one per delivery_id)."""
        with self._lock:
            return list(self._plays.values())

    @property
    def withdrawn(self) -> list[Play]:
        """Plays taken back with ``DELETE`` before they played."""
        with self._lock:
            return list(self._withdrawn.values())

    def plays_by_village(self) -> Counter[str]:
        """Stored plays per village."""
        return Counter(p.village or "" for p in self.plays)

    def duplicates(self) -> list[SpeakerRequest]:
        """Requests answered 200 for an Idempotency-Key that was already stored."""
        return [r for r in self.requests if r.duplicate]

    def clear(self) -> None:
        """Forget requests and plays."""
        with self._lock:
            self._requests.clear()
            self._plays.clear()
            self._withdrawn.clear()

    # -- hooks -----------------------------------------------------------------------
    def fault_key(self, req: Request) -> str | None:
        return req.header("idempotency-key")

    def fault_response(self, fault: Fault) -> Response:
        resp = super().fault_response(fault)
        resp.body = json.dumps({"error": f"injected {fault.status}"}).encode()
        return resp

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        info = getattr(req, "speaker_info", {})
        rec = SpeakerRequest(
            arrived=req.arrived, method=req.method, path=req.path, headers=dict(req.headers),
            idempotency_key=req.header("idempotency-key"), fault=fault, answered=time.monotonic(),
            status=resp.status if resp is not None else None,
            error=info.get("error"), duplicate=info.get("duplicate", False),
        )
        with self._lock:
            self._requests.append(rec)

    # -- the protocol ----------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        info: dict[str, Any] = {}
        req.speaker_info = info  # type: ignore[attr-defined]  # read by on_answer

        def reject(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
            info["error"] = error
            return Response.json(status, {"error": error}, headers)

        if req.path != self.path:
            return reject(404, f"no such path {req.path}")
        if req.method not in ("POST", "DELETE"):
            return reject(405, "use POST or DELETE", {"Allow": "POST, DELETE"})
        auth = req.header("authorization") or ""
        given = auth[7:].encode() if auth.startswith("Bearer ") else b""
        if not secrets.compare_digest(given, self.token.encode()):
            return reject(401, "bad or missing bearer token", {"WWW-Authenticate": "Bearer"})
        if req.method == "DELETE":
            key = req.header("idempotency-key")
            if not key:
                return reject(400, "missing Idempotency-Key")
            with self._lock:
                play = self._plays.pop(key, None)
                if play is not None:
                    self._withdrawn[key] = play
            return Response(204) if play is not None else reject(404, f"no play {key} held")
        ctype = req.header("content-type") or ""
        if not ctype.lower().startswith("multipart/form-data"):
            return reject(400, "expected multipart/form-data")
        parts = _parse_multipart(ctype, req.body)
        if "audio" not in parts or "meta" not in parts:
            return reject(400, f"missing part(s): {sorted({'audio', 'meta'} - parts.keys())}")
        try:
            meta = json.loads(parts["meta"][0])
        except ValueError:
            return reject(400, "meta is not JSON")
        if not isinstance(meta, dict) or any(k not in meta for k in ("delivery_id", "sha256")):
            return reject(400, "meta needs delivery_id and sha256")
        key = req.header("idempotency-key")
        if not key:
            return reject(400, "missing Idempotency-Key")
        if key != str(meta["delivery_id"]):
            return reject(400, "Idempotency-Key differs from meta.delivery_id")
        audio, filename, audio_type = parts["audio"]
        digest = hashlib.sha256(audio).hexdigest()
        if digest != str(meta["sha256"]).lower():
            return reject(400, f"sha256 mismatch: audio is {digest}")
        with self._lock:
            info["duplicate"] = key in self._plays
            if not info["duplicate"]:
                self._plays[key] = Play(
                    delivery_id=key, village=meta.get("village"), play_at=meta.get("play_at"),
                    expires_at=meta.get("expires_at"), repeat=meta.get("repeat"),
                    sha256=digest, audio=audio, filename=filename, content_type=audio_type,
                    meta=meta, received=req.arrived,
                )
        answer = {"status": "accepted", "delivery_id": key, "duplicate": info["duplicate"]}
        return Response.json(200, answer)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None, str]]:
    """Parse ``multipart/form-data`` with the stdlib MIME parser.

    Returns ``{name: (payload bytes, filename, content type)}``; binary payloads round-trip
    byte for byte because the parser works on bytes with surrogateescape.
    """
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts: dict[str, tuple[bytes, str | None, str]] = {}
    if not msg.is_multipart():
        return parts
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True) or b""
            parts[str(name)] = (payload, part.get_filename(), part.get_content_type())
    return parts
