"""Who may use the service, as the ledger keeps it: API tokens, console users and their sessions.

Only hashes are stored (a token's sha256, a password's scrypt hash); the policy (roles, password
rules, idle and absolute session lifetimes) is :mod:`broadcaster.auth`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select, update

from broadcaster.ledger.models import ApiToken, ConsoleSession, ConsoleUser

if TYPE_CHECKING:
    from broadcaster.ledger.db import Database


class People:
    """Tokens, users and sessions in the ledger."""

    def __init__(self, ledger: Database) -> None:
        self._ledger = ledger

    # ---------------------------------------------------------------- tokens

    def add_token(self, name: str, role: str, speaker_id: str | None, token_sha256: str, now: datetime,
                  user: str | None = None, expires_at: datetime | None = None) -> None:
        """Store an API token (by its hash), acting for console user ``user`` when given, refused
        from ``expires_at`` on when given."""
        with self._ledger.session() as s:
            s.add(ApiToken(name=name, role=role, speaker_id=speaker_id, token_sha256=token_sha256, created_at=now,
                           user=user, expires_at=expires_at))

    def token(self, token_sha256: str, now: datetime | None = None) -> ApiToken | None:
        """The unrevoked API token with this hash (and, given ``now``, not expired by then), or None."""
        q = select(ApiToken).where(ApiToken.token_sha256 == token_sha256, ApiToken.revoked_at.is_(None))
        if now is not None:
            q = q.where(or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
        with self._ledger.reader() as s:
            return s.scalars(q).first()

    def tokens(self) -> list[ApiToken]:
        """Every API token ever created (hashes only), oldest first, revoked ones included."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(ApiToken).order_by(ApiToken.id)))

    def revoke_tokens(self, name: str, now: datetime, token_id: int | None = None) -> int:
        """Revoke the live tokens named ``name`` (or only the one with ``token_id``); how many.
        A revoked token is refused from its next request on: every request looks it up."""
        with self._ledger.session() as s:
            q = update(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            if token_id is not None:
                q = q.where(ApiToken.id == token_id)
            return s.execute(q.values(revoked_at=now)).rowcount or 0

    # ----------------------------------------------------------------- users

    def save_user(self, name: str, role: str, password_hash: str, now: datetime, *, reset: bool = True) -> bool:
        """Create a console user, or (with ``reset``) reset an existing one's role and password
        (and enable it); a reset ends the user's sessions. False when the user exists and
        ``reset`` is off (nothing changed)."""
        with self._ledger.session() as s:
            row = s.scalars(select(ConsoleUser).where(ConsoleUser.name == name)).first()
            if row is None:
                s.add(ConsoleUser(name=name, role=role, password_hash=password_hash, created_at=now))
            elif not reset:
                return False
            else:
                row.role, row.password_hash, row.disabled_at = role, password_hash, None
                s.execute(delete(ConsoleSession).where(ConsoleSession.user == name))
        return True

    def users(self) -> list[ConsoleUser]:
        """Every console user, disabled ones included, by name."""
        with self._ledger.reader() as s:
            return list(s.scalars(select(ConsoleUser).order_by(ConsoleUser.name)))

    def disable_user(self, name: str, now: datetime) -> bool:
        """Disable a user and end all their sessions at once; False when there is no such user."""
        with self._ledger.session() as s:
            n = s.execute(update(ConsoleUser).where(ConsoleUser.name == name).values(disabled_at=now)).rowcount
            s.execute(delete(ConsoleSession).where(ConsoleSession.user == name))
            return bool(n)

    def has_users(self) -> bool:
        """True once any console user exists."""
        with self._ledger.reader() as s:
            return s.scalar(select(ConsoleUser.id).limit(1)) is not None

    def user(self, name: str) -> ConsoleUser | None:
        """The enabled console user with this name, or None."""
        with self._ledger.reader() as s:
            return s.scalars(select(ConsoleUser).where(ConsoleUser.name == name,
                                                       ConsoleUser.disabled_at.is_(None))).first()

    # -------------------------------------------------------------- sessions

    def open_session(self, token_sha256: str, user: str, role: str, csrf: str, now: datetime,
                     expires_at: datetime) -> None:
        """Store a new session (and drop the expired ones while at it)."""
        with self._ledger.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
            s.add(ConsoleSession(token_sha256=token_sha256, user=user, role=role, csrf=csrf, created_at=now,
                                 last_seen=now, expires_at=expires_at))

    def session(self, token_sha256: str) -> ConsoleSession | None:
        """The session with this token hash, of a user who is still enabled, or None (whether it
        is still live is the caller's call). Its role is the user's current one."""
        with self._ledger.reader() as s:
            row = s.execute(select(ConsoleSession, ConsoleUser.role).join(
                ConsoleUser, ConsoleUser.name == ConsoleSession.user).where(
                ConsoleSession.token_sha256 == token_sha256, ConsoleUser.disabled_at.is_(None))).first()
        if row is None:
            return None
        session, role = row
        session.role = role
        return session

    def touch_session(self, session_id: int, now: datetime) -> None:
        """Note that a session was used at ``now``."""
        with self._ledger.session() as s:
            s.execute(update(ConsoleSession).where(ConsoleSession.id == session_id).values(last_seen=now))

    def end_session(self, token_sha256: str) -> None:
        """Sign a session out."""
        with self._ledger.session() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.token_sha256 == token_sha256))
