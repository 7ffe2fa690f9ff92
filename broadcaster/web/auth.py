"""Bearer-token authentication and roles (DESIGN A6).

API tokens are created with ``broadcaster token create`` and stored only as sha256 hashes.
Roles are ordered operator < approver < admin. Agent tokens belong to one loudspeaker
(from the directory, ``token``/``token_sha256``, or created with ``--role agent --speaker ID``)
and reach only that speaker's agent endpoints and audio.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Request
from fastapi.security import HTTPBearer

from broadcaster.auth.accounts import ROLES, at_least
from broadcaster.channels.speakers.agent import AgentConfig
from broadcaster.ledger import Ledger

log = logging.getLogger(__name__)

AGENT = "agent"

#: An id in a URL path: anything outside the ledger's 64-bit ids is a 422 naming the field, not a crash.
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # operator | approver | admin | agent
    speaker_id: str | None = None
    user: str | None = None  # the console user this token acts for

    @property
    def identity(self) -> str:
        """Who this is in the two-person rule: the console user behind the token (``user:NAME``,
        as in the console), or the token's own service identity (``token:NAME``)."""
        return f"user:{self.user}" if self.user else f"token:{self.name}"

    def at_least(self, role: str) -> bool:
        return at_least(self.role, role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_token(ledger: Ledger, name: str, role: str, now: datetime, speaker_id: str | None = None,
                 user: str | None = None, expires_at: datetime | None = None) -> str:
    """Store a new token's hash and return the token (shown once, never stored); ``user``: the
    console user it acts for; ``expires_at``: when it stops working (None: never)."""
    if role not in ROLES and role != AGENT:
        raise ValueError(f"unknown role {role!r}")
    token = new_token()
    ledger.people.add_token(name, role, speaker_id, hash_token(token), now, user, expires_at)
    return token


def resolve_token(svc, token: str) -> Principal | None:  # type: ignore[no-untyped-def]
    """The principal a bearer token stands for, or None."""
    if not token:
        return None
    digest = hash_token(token)
    row = svc.ledger.people.token(digest, svc.now())  # an expired token is refused like a revoked one
    if row is not None:
        return Principal(row.name, row.role, row.speaker_id, row.user)
    for sid, (_village, sc) in svc.cfg.speakers.items():
        if isinstance(sc, AgentConfig) and sc.digest and hmac.compare_digest(sc.digest, digest):
            return Principal(f"agent:{sid}", AGENT, sid)
    for sid, known in svc.builtin_agent_digests.items():
        if hmac.compare_digest(known, digest):
            return Principal(f"agent:{sid}", AGENT, sid)
    return None


def _bearer(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class AuthAudit:
    """Audits failed bearer-token authentication, at most one entry per client and minute (a flood
    must not fill the ledger)."""

    def __init__(self, svc: Any, every_s: float = 60.0) -> None:
        self.svc, self.every_s = svc, every_s
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def failed(self, request: Request, status: int) -> None:
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(client, (-1e9, 0))
            if now - last < self.every_s:
                self._last[client] = (last, suppressed + 1)
                return
            self._last[client] = (now, 0)
        # Never the token itself: only where it came from and what it tried.
        self.svc.ledger.audit(self.svc.now(), f"anonymous@{client}", "auth.failed", "http", None,
                              {"status": status, "method": request.method, "path": request.url.path,
                               "suppressed_before": suppressed})
        log.warning("HTTP %d for %s %s from %s", status, request.method, request.url.path, client)


#: Declares the bearer scheme in ``/openapi.json`` (and ``/docs``' Authorize button); the token
#: itself is read and checked below, so a missing one is our audited 401, not FastAPI's 403.
_SCHEME = HTTPBearer(auto_error=False, description="an API token from `broadcaster token create`")


def current_principal(request: Request, _declared: Any = Depends(_SCHEME)) -> Principal:
    """FastAPI dependency: 401 (audited) without a valid bearer token."""
    svc = request.app.state.svc
    # Bearer only: console sessions never reach the API, so it needs no CSRF defence.
    p = resolve_token(svc, _bearer(request))
    if p is None:
        request.app.state.auth_audit.failed(request, 401)
        raise HTTPException(401, "缺少或无效的访问令牌 / missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    return p


def require(role: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the caller must hold ``role`` or higher (agents never do)."""

    def dep(p: Principal = Depends(current_principal)) -> Principal:
        if not p.at_least(role):
            raise HTTPException(403, f"需要 {role} 及以上权限 / requires role {role} or higher")
        return p

    return dep


def require_agent(p: Principal = Depends(current_principal)) -> Principal:
    if p.role != AGENT or not p.speaker_id:
        raise HTTPException(403, "需要广播室代理的令牌 / agent token required")
    return p
