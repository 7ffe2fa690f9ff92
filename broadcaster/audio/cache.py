"""Content-addressed audio cache.

Two names for every bulletin:

- the **render key**: sha256 over everything that determines the audio (engine, voice, text or
  clip hash, repeat, chime hash, format, :data:`RENDER_VERSION`). Asking twice for the same
  bulletin is then a lookup of ``{root}/keys/{render_key}``, a few hundred bytes of JSON.
- the **file sha256**: the sha256 of the encoded bytes. The file is stored as
  ``{root}/{sha256}.{ext}``; village agents verify downloads against it and
  ``GET /api/v1/audio/{sha256}.{ext}`` serves it.

Every file is written to a temporary name in the same directory and renamed into place, so a
reader (or a crash) never sees half a file, and two processes rendering the same bulletin at once
simply both rename identical bytes onto the same name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RENDER_VERSION", "AudioCache", "Bulletin", "file_sha256", "render_key"]

#: Bump whenever a change (normalisation rules, timings, loudness target, encoder settings)
#: should make old renders stale; it is part of every render key.
RENDER_VERSION = "1"

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SERVED_EXTS = frozenset({"mp3", "wav"})


@dataclass(frozen=True)
class Bulletin:
    """A rendered, cached audio file ready to serve or push."""

    sha256: str  #: hex sha256 of the file bytes
    path: Path  #: ``{cache_dir}/{sha256}.{ext}``
    fmt: str  #: "mp3" | "wav" | "g711"
    ext: str  #: "mp3" | "wav" (g711 is a µ-law WAV)
    duration_s: float  #: length of the audio in seconds
    cached: bool  #: True when it came from the cache without rendering
    engine: str | None = None  #: the TTS engine that spoke it (its identity), None for clips/uploads


def render_key(**parts: object) -> str:
    """sha256 over the given parts (JSON, sorted keys) plus :data:`RENDER_VERSION`."""
    payload = json.dumps({**parts, "render_version": RENDER_VERSION}, sort_keys=True,
                         ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


_hash_lock = threading.Lock()
_hash_memo: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, mtime, size): the chime is hashed for every render
    key and should not be re-read each time; an edited file gets a new mtime and a new hash."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _hash_lock:
        cached = _hash_memo.get(memo_key)
    if cached is not None:
        return cached
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with _hash_lock:
        _hash_memo[memo_key] = digest
    return digest


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # the ledger will point at this file; it must survive a crash
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a separate static file server may serve it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class AudioCache:
    """The on-disk store under ``root`` (e.g. ``var/audio``)."""

    _STRIPES = 64

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.keys_dir = self.root / "keys"
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        # Striped locks: two threads rendering the same key wait for one another instead of
        # doing the work twice, without keeping one lock per key forever.
        self._locks = [threading.Lock() for _ in range(self._STRIPES)]

    def lock_for(self, key: str) -> threading.Lock:
        """The lock that serialises renders of ``key`` within this process."""
        return self._locks[int(key[:8], 16) % self._STRIPES]

    def lookup(self, key: str) -> Bulletin | None:
        """The bulletin rendered earlier for ``key``, if its file is still there."""
        try:
            entry = json.loads((self.keys_dir / key).read_text("utf-8"))
            path = self.root / f"{entry['sha256']}.{entry['ext']}"
            if not path.is_file():  # file pruned by hand: render again
                return None
            return Bulletin(sha256=entry["sha256"], path=path, fmt=entry["fmt"],
                            ext=entry["ext"], duration_s=float(entry["duration_s"]), cached=True,
                            engine=entry.get("engine"))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged index entry: render again and overwrite it

    def store(self, key: str, data: bytes, *, fmt: str, ext: str, duration_s: float,
              engine: str | None = None) -> Bulletin:
        """Write ``data`` under its own sha256 and index it under ``key``; ``engine`` (the TTS
        engine that spoke it) is kept beside the file, for the console (DESIGN A11)."""
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / f"{digest}.{ext}"
        if not path.is_file():
            _atomic_write(path, data)
        entry = {"sha256": digest, "fmt": fmt, "ext": ext, "duration_s": round(duration_s, 3), "engine": engine}
        _atomic_write(self.keys_dir / key, json.dumps(entry).encode("utf-8"))
        if engine:
            _atomic_write(self.root / f"{digest}.engine", engine.encode("utf-8"))
        return Bulletin(sha256=digest, path=path, fmt=fmt, ext=ext,
                        duration_s=round(duration_s, 3), cached=False, engine=engine)

    def engine_of(self, sha256: str) -> str | None:
        """The TTS engine that spoke the bulletin ``sha256`` (None: a clip, an upload, unknown)."""
        if not _SHA256.match(sha256.lower()):
            return None
        try:
            return (self.root / f"{sha256.lower()}.engine").read_text("utf-8") or None
        except OSError:
            return None

    def evict(self, keep: int) -> int:
        """Delete all but the ``keep`` newest audio files (and index entries); how many files went.
        For a cache of throw-away renders (previews), not for bulletins deliveries point at."""
        gone = 0
        for pattern, folder in (("*.*", self.root), ("*", self.keys_dir)):
            entries = []
            for f in folder.glob(pattern):
                with contextlib.suppress(OSError):
                    # An audio file's ``.engine`` note (which voice spoke it) goes with the audio.
                    if f.is_file() and not f.name.startswith(".") and f.suffix != ".engine":
                        entries.append((f.stat().st_mtime_ns, f))
            entries.sort(reverse=True)
            for _, f in entries[keep:]:
                with contextlib.suppress(OSError):
                    f.unlink()
                    gone += folder is self.root
                if folder is self.root:
                    f.with_suffix(".engine").unlink(missing_ok=True)
        return gone

    def find(self, sha256: str, ext: str) -> Path | None:
        """Path of ``{sha256}.{ext}`` if it exists; anything not shaped like a sha256 and a served
        extension is refused, so the name can come straight from a URL."""
        sha256 = sha256.lower()
        if not _SHA256.match(sha256) or ext not in _SERVED_EXTS:
            return None
        path = self.root / f"{sha256}.{ext}"
        return path if path.is_file() else None
