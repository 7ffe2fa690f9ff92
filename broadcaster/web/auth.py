"""Bearer-token authentication and roles (DESIGN A6).

API tokens are created with ``broadcaster token create`` and stored only as sha256 hashes.
Roles are ordered operator < approver < admin. Agent tokens belong to one loudspeaker
(from the directory, ``token``/``token_sha256``, or created with ``--role agent --speaker ID``)
and reach only that speaker's agent endpoints and audio.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select

from broadcaster.accounts import ROLES, at_least
from broadcaster.channels.speakers.agent import AgentConfig
from broadcaster.ledger import ApiToken, Ledger

AGENT = "agent"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # operator | approver | admin | agent
    speaker_id: str | None = None

    def at_least(self, role: str) -> bool:
        return at_least(self.role, role)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_token(ledger: Ledger, name: str, role: str, now: datetime, speaker_id: str | None = None) -> str:
    """Store a new token's hash and return the token (shown once, never stored)."""
    if role not in ROLES and role != AGENT:
        raise ValueError(f"unknown role {role!r}")
    token = new_token()
    with ledger.session() as s:
        s.add(ApiToken(name=name, role=role, speaker_id=speaker_id, token_sha256=hash_token(token), created_at=now))
    return token


def resolve_token(svc, token: str) -> Principal | None:  # type: ignore[no-untyped-def]
    """The principal a bearer token stands for, or None."""
    if not token:
        return None
    digest = hash_token(token)
    with svc.ledger.reader() as s:
        row = s.scalars(select(ApiToken).where(ApiToken.token_sha256 == digest, ApiToken.revoked_at.is_(None))).first()
    if row is not None:
        return Principal(row.name, row.role, row.speaker_id)
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


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: 401 without a valid bearer token."""
    svc = request.app.state.svc
    # Bearer only: console sessions never reach the API, so it needs no CSRF defence.
    p = resolve_token(svc, _bearer(request))
    if p is None:
        raise HTTPException(401, "missing or invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    return p


def require(role: str):  # type: ignore[no-untyped-def]
    """Dependency factory: the caller must hold ``role`` or higher (agents never do)."""

    def dep(p: Principal = Depends(current_principal)) -> Principal:
        if not p.at_least(role):
            raise HTTPException(403, f"requires role {role} or higher")
        return p

    return dep


def require_agent(p: Principal = Depends(current_principal)) -> Principal:
    if p.role != AGENT or not p.speaker_id:
        raise HTTPException(403, "agent token required")
    return p
