"""Web-console accounts and sessions.

Staff sign in with a name and password (created by a county admin with ``broadcaster user add``);
passwords are kept as scrypt hashes (stdlib ``hashlib.scrypt``). A session is a random cookie
token whose sha256 is stored with its role and CSRF token; it ends after ``idle`` (``http.session_minutes``, default 30) without use or
``ABSOLUTE`` after sign-in, whichever comes first, and on sign-out. There is no lockout: failed
sign-ins are throttled per client address and per name (:mod:`broadcaster.auth.throttle`, applied
by the console) so that nobody can keep a user out by typing their name.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from broadcaster.errors import Conflict, Forbidden, InputError
from broadcaster.ledger import Ledger

# Roles in rank order (DESIGN A6): operator < approver < admin. Agents are not people and rank nowhere.
ROLES = {"operator": 1, "approver": 2, "admin": 3}
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
MAX_NAME = 100
_TOUCH_EVERY = timedelta(seconds=60)  # last_seen is written at most this often
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD = 8


def at_least(role: str, minimum: str) -> bool:
    """True when ``role`` ranks at or above ``minimum`` (unknown roles, e.g. agent, never do)."""
    return ROLES.get(role, 0) >= ROLES[minimum]


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` (hex)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


@dataclass(frozen=True)
class SessionInfo:
    """A live console session: who, which role, and the CSRF token its forms must carry."""

    user: str
    role: str
    csrf: str


class Accounts:
    """Console users and sessions in the ledger."""

    def __init__(self, ledger: Ledger, idle: timedelta = IDLE) -> None:
        self.ledger = ledger
        self.idle = idle  # ``http.session_minutes``
        # Spent on unknown names too, so timing does not tell which names exist.
        self._dummy = hash_password(secrets.token_hex(8))

    def add_user(self, name: str, role: str, password: str, now: datetime, *, reset: bool = False) -> None:
        """Create a user; with ``reset``, also reset an existing one's role and password (which
        ends the user's sessions). Without it, an existing name is a Conflict: nothing changes."""
        name = name.strip()
        if not name or len(name) > MAX_NAME:
            raise InputError("name", "用户名不能为空，最多 100 字 / name must be 1-100 characters")
        if role not in ROLES:
            raise InputError("role", f"角色应为 {' | '.join(ROLES)} / role must be one of {', '.join(ROLES)}")
        if len(password) > 1024:
            raise InputError("password", "密码最多 1024 位 / password must be at most 1024 characters")
        if len(password) < MIN_PASSWORD:
            raise InputError("password", f"密码至少 {MIN_PASSWORD} 位 / password needs {MIN_PASSWORD}+ characters")
        if not self.ledger.people.save_user(name, role, hash_password(password), now, reset=reset):
            raise Conflict(f"用户 {name} 已存在；要改密码或角色请用 user reset / user {name} exists; use `user reset`")

    def has_users(self) -> bool:
        """True once any console account exists."""
        return self.ledger.people.has_users()

    def sign_in(self, name: str, password: str, now: datetime) -> tuple[str, SessionInfo]:
        """Check the password and open a session; returns the cookie token (never stored)."""
        name = name.strip()
        if len(name) > MAX_NAME or len(password) > 1024:  # no such user; no scrypt of a megabyte either
            raise Forbidden("用户名或密码错误 / wrong name or password")
        user = self.ledger.people.user(name)
        ok = check_password(password, user.password_hash if user else self._dummy)
        if user is None or not ok:
            raise Forbidden("用户名或密码错误 / wrong name or password")
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        self.ledger.people.open_session(_sha(token), user.name, user.role, csrf, now, now + ABSOLUTE)
        return token, SessionInfo(user.name, user.role, csrf)

    def session(self, token: str, now: datetime) -> SessionInfo | None:
        """The live session for a cookie token, or None (unknown, idle too long, or expired)."""
        if not token:
            return None
        row = self.ledger.people.session(_sha(token))
        if row is None or now >= row.expires_at or now - row.last_seen >= self.idle:
            return None
        if now - row.last_seen >= _TOUCH_EVERY:
            self.ledger.people.touch_session(row.id, now)
        return SessionInfo(row.user, row.role, row.csrf)

    def sign_out(self, token: str) -> None:
        """End the session of this cookie token."""
        self.ledger.people.end_session(_sha(token))


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
