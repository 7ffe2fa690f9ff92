"""A real SMTP server on loopback (aiosmtpd) for the weekly report's e-mail (DESIGN A14).

Usage::

    with SmtpDouble(users={"station": "secret"}) as smtp:
        ...  # smtp: {host: 127.0.0.1, port: smtp.port, username: station, password: secret, starttls: false}
        assert smtp.messages[0]["Subject"] ...
        smtp.fail_next(1, 451)   # the next message is answered "451 try again later"

It speaks real SMTP (EHLO, AUTH LOGIN/PLAIN without TLS on loopback, MAIL, RCPT, DATA); what it
accepted is kept parsed (``messages``), with each envelope's recipients and the logins it saw.
"""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.procs import free_port

# aiosmtpd logs each session at INFO from its own thread, after pytest has closed the captured
# stream at the end of a test ("Logging error ... I/O operation on closed file"): only warnings.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class SmtpDouble:
    """Accepts mail for anyone, after an optional login; can refuse the next messages."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users or {}
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.logins: list[str] = []
        self.refused: list[int] = []
        self._fail: list[int] = []
        self._lock = threading.Lock()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port,
                                      authenticator=self._auth if self.users else None,
                                      auth_required=bool(self.users), auth_require_tls=False)

    def _auth(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword)
              and self.users.get(auth_data.login.decode()) == auth_data.password.decode())
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)

    def fail_next(self, n: int = 1, code: int = 451) -> None:
        """Answer the next ``n`` messages' DATA with ``code`` (4xx: try later; 5xx: refused)."""
        with self._lock:
            self._fail.extend([code] * n)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self._lock:
            code = self._fail.pop(0) if self._fail else None
            if code is not None:
                self.refused.append(code)
                return f"{code} {'4.3.0 try again later' if code < 500 else '5.7.1 refused'}"
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))  # type: ignore[arg-type]
            self.recipients.append(list(envelope.rcpt_tos))
        return "250 2.0.0 OK"

    def __enter__(self) -> SmtpDouble:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def attachments(msg: EmailMessage) -> dict[str, bytes]:
    """``{file name: bytes}`` of a message's attachments."""
    return {part.get_filename(): part.get_content() for part in msg.iter_attachments()}
