"""E-mail through the station's SMTP server (``smtp`` in broadcaster.yaml), for the weekly report.

Standard library only (``smtplib``, ``email``): one message to all recipients, files attached with
their Chinese names encoded per RFC 2231 so that mail clients show ``周报-2026-W48.pdf``. Errors are
mapped once, here, into the package's two kinds: a server that is down, busy or answers 4xx is
:class:`TransientError` (try again later); a refused login, a 5xx answer or every recipient
refused is :class:`PermanentError` (fix the configuration). The password is never logged.
"""

from __future__ import annotations

import logging
import mimetypes
import smtplib
import socket
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from broadcaster.config.models import SmtpConfig
from broadcaster.errors import PermanentError, TransientError

log = logging.getLogger(__name__)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def build_message(sender: str, to: Sequence[str], subject: str, body: str,
                  attachments: Sequence[Path] = ()) -> EmailMessage:
    """A UTF-8 message with ``attachments`` (their file names kept)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg.set_content(body)
    for path in attachments:
        guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        kind = XLSX if path.suffix == ".xlsx" else guessed
        maintype, subtype = kind.split("/", 1)
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name)
    return msg


def _connect(cfg: SmtpConfig) -> smtplib.SMTP:
    if cfg.ssl:
        return smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s,
                                context=ssl.create_default_context())
    smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
    if cfg.starttls:
        smtp.starttls(context=ssl.create_default_context())
    return smtp


def send_mail(cfg: SmtpConfig, to: Sequence[str], subject: str, body: str,
              attachments: Sequence[Path] = ()) -> dict[str, str]:
    """Send one message to every address in ``to``; returns the refused ones with the server's
    answer (the others got it). Raises TransientError or PermanentError when nobody got it."""
    msg = build_message(cfg.from_, to, subject, body, attachments)
    where = f"SMTP {cfg.host}:{cfg.port}"
    try:
        with _connect(cfg) as smtp:
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            refused = smtp.send_message(msg, from_addr=cfg.from_, to_addrs=list(to))
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(f"{where}: 登录被拒绝 / login refused ({exc.smtp_code})", code=exc.smtp_code) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentError(f"{where}: 所有收件人被拒绝 / every recipient refused: "
                             + "; ".join(f"{a}: {c}" for a, (c, _m) in exc.recipients.items())) from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"{where}: 服务器证书无效 / the server's certificate failed: "
                             f"{exc.verify_message}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"{where}: {exc} (starttls or login not offered by the server)") from exc
    except smtplib.SMTPResponseException as exc:
        raw = exc.smtp_error
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        cls = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
        raise cls(f"{where}: {exc.smtp_code} {text}", code=exc.smtp_code) from exc
    except (smtplib.SMTPException, OSError, socket.timeout, ssl.SSLError) as exc:
        raise TransientError(f"{where}: {type(exc).__name__}: {exc}") from exc
    out = {addr: f"{code} {m.decode(errors='replace') if isinstance(m, bytes) else m}"
           for addr, (code, m) in refused.items()}
    log.info("mail %r sent through %s to %d recipient(s)%s", subject, where, len(to) - len(out),
             f"; refused: {', '.join(out)}" if out else "")
    return out
