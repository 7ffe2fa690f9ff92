"""What the WeCom robot double keeps of ``upload_media`` (reference §1.2): the uploaded media, and
the multipart parsing of an upload as the vendor reads it (part ``media`` with a filename)."""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
from dataclasses import dataclass

__all__ = ["Media", "multipart_file"]


@dataclass(frozen=True)
class Media:
    """A file uploaded through ``upload_media``: usable for three days, by its robot only."""

    media_id: str
    robot: str
    type: str  # "file" or "voice"
    filename: str
    content_type: str
    data: bytes
    created_at: int  # the double's wall clock, seconds

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def multipart_file(content_type: str, body: bytes, field: str) -> tuple[bytes, str, str] | None:
    """The ``field`` part of a ``multipart/form-data`` body with its filename: (bytes, filename,
    content type), or None when the body is not multipart or has no such part with a filename.
    Clients send a UTF-8 filename raw (HTML5 style) or as RFC 2231 ``filename*``; both come back."""
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        return None
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") != field:
            continue
        name = part.get_filename()
        if not name:
            return None
        # Raw UTF-8 header bytes arrive as surrogate escapes: turn them back into characters.
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return part.get_payload(decode=True) or b"", name, part.get_content_type()
    return None
