"""Where a rendered bulletin is fetched from (DESIGN A6): the one URL format.

``{public_url}/api/v1/audio/{sha256}.{ext}`` with a bearer token (agents, operators), or the
same URL signed and expiring (``?exp=..&sig=..``, an HMAC with a key kept in ``data_dir``) for
4G cloud speakers and displays, which cannot send a token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from datetime import datetime
from pathlib import Path

AUDIO_PATH = "/api/v1/audio"


def url_key(data_dir: Path) -> bytes:
    """The deployment's secret for signed audio URLs, created on first use (mode 0600)."""
    path = data_dir / "audio-url.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # first writer wins when two processes start together
        except FileExistsError:
            pass
        tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()


class AudioLinks:
    """Builds and checks the URLs of one deployment's bulletins."""

    def __init__(self, public_url: str, key: bytes) -> None:
        self.base = public_url.rstrip("/") + AUDIO_PATH
        self._key = key

    def url(self, sha256: str, ext: str) -> str:
        """The plain URL (needs a bearer token)."""
        return f"{self.base}/{sha256}.{ext}"

    def signed(self, name: str, expires_at: datetime) -> str:
        """``url?exp=..&sig=..`` for ``name`` (``{sha256}.{ext}``), valid until ``expires_at``."""
        exp = int(expires_at.timestamp())
        return f"{self.base}/{name}?exp={exp}&sig={self._sig(name, exp)}"

    def verify(self, name: str, exp: int, sig: str, now: datetime) -> bool:
        """True for a genuine signature of ``name`` that has not expired at ``now``."""
        return hmac.compare_digest(sig, self._sig(name, exp)) and now.timestamp() <= exp

    def _sig(self, name: str, exp: int) -> str:
        return hmac.new(self._key, f"{name}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]
