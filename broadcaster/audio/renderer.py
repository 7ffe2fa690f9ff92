"""The Renderer: text, clip or upload in, cached broadcast-ready bulletin out."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from pathlib import Path

from pydub import AudioSegment

from broadcaster.audio import compose
from broadcaster.audio import engines
from broadcaster.audio.cache import AudioCache, Bulletin, file_sha256, render_key
from broadcaster.errors import InputError, RenderError

__all__ = ["MAX_REPEAT", "MAX_TEXT_CHARS", "MAX_UPLOAD_DECODE_S", "Renderer"]

log = logging.getLogger(__name__)

MAX_REPEAT = 10
MAX_TEXT_CHARS = 2000  # several minutes of speech; more is a mistake, not a bulletin
# Uploads are decoded up to this long only, so a two-hour file cannot tie up a worker; callers
# reject anything whose Bulletin.duration_s is over their own limit (5 minutes).
MAX_UPLOAD_DECODE_S = 600.0


class Renderer:
    """Renders bulletins and keeps them in a content-addressed cache. Thread-safe.

    Example (paths as in the shipped configuration)::

        r = Renderer(Path("var/audio"), Path("audio/chime.wav"), Path("audio/clips"))
        b = r.render("各位村民请注意：今晚一氧化碳中毒气象条件4级。")  # b.path, b.sha256
    """

    def __init__(
        self,
        cache_dir: Path,
        chime: Path | None,
        clips_dir: Path | None = None,
        tts: str = "espeak",
        voice: str = "cmn",
        command: list[str] | None = None,
        repeat: int = 2,
        *,
        rate: int | None = None,
        engine: engines.Engine | None = None,
        fallback: engines.Engine | None = None,
    ) -> None:
        self.cache = AudioCache(Path(cache_dir))
        self.chime = Path(chime) if chime is not None else None
        if self.chime is not None and not self.chime.is_file():
            raise RenderError(f"找不到提示音文件 / chime file not found: {self.chime}")
        self.clips_dir = Path(clips_dir) if clips_dir is not None else None
        # A ready engine (the service builds it from the validated configuration), or one by name.
        self.engine = engine or engines.create_engine(tts, voice=voice, command=command, rate=rate)
        # Speaks the bulletin when ``engine`` fails or is too slow (``audio.fallback``, DESIGN A11).
        self.fallback = fallback if fallback is not None and fallback is not self.engine else None
        compose.ffmpeg()  # locate the bundled ffmpeg now: a broken install fails at start-up
        self.repeat = _check_repeat(repeat)
        self._chime_lock = threading.Lock()
        self._chime_audio: tuple[str, AudioSegment] | None = None

    # --- public API ----------------------------------------------------------------------

    def render(self, text: str | None = None, *, clip: str | None = None,
               repeat: int | None = None, fmt: str = "mp3") -> Bulletin:
        """Render ``text`` (spoken by the configured engine) or ``clip`` (a file under
        ``clips_dir``) into a bulletin, or return the cached one for the same input."""
        if (text is None) == (clip is None):
            raise InputError("text", "请提供文字或录音片段之一 / give exactly one of text or clip")
        repeat = self.repeat if repeat is None else _check_repeat(repeat)
        _check_fmt(fmt)
        if text is not None:
            text = text.strip()
            if not text:
                raise InputError("text", "广播文字不能为空 / bulletin text is empty")
            if len(text) > MAX_TEXT_CHARS:
                raise InputError("text", f"广播文字过长（最多 {MAX_TEXT_CHARS} 字）/ text is longer than "
                                 f"{MAX_TEXT_CHARS} characters")
            source = {"engine": self.engine.identity(), "text": text}
        else:
            clip_path = self._clip_path(clip or "")
            source = {"clip": file_sha256(clip_path)}
        key = render_key(**source, repeat=repeat, chime=self._chime_hash(), fmt=fmt)
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit
        with self.cache.lock_for(key):
            hit = self.cache.lookup(key)  # another thread may have rendered it meanwhile
            if hit is not None:
                return hit
            if text is None:
                return self._finish(key, compose.load(clip_path), repeat, fmt)
            try:
                return self._finish(key, engines.speak(self.engine, text), repeat, fmt, self.engine.identity())
            except RenderError as exc:
                if self.fallback is None:
                    raise
                log.warning("%s could not speak the bulletin (%s): %s speaks it instead", self.engine.type, exc,
                            self.fallback.type)
        # Cached under the fallback's own key: the cloud voice is tried again for the next render.
        assert self.fallback is not None and text is not None
        fb = self.fallback.identity()
        key = render_key(engine=fb, text=text, repeat=repeat, chime=self._chime_hash(), fmt=fmt)
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit
        with self.cache.lock_for(key):
            return self.cache.lookup(key) or self._finish(key, engines.speak(self.fallback, text), repeat, fmt, fb)

    def render_upload(self, data: bytes, *, fmt: str = "mp3", repeat: int = 1) -> Bulletin:
        """Turn an operator's uploaded recording (MP3, WAV, M4A...) into a bulletin: chime,
        the recording ``repeat`` times, same loudness as every other bulletin.

        Raises InputError (field ``audio``) when the bytes are not audio or are silent.
        Check ``duration_s`` of the result against your own length limit.
        """
        _check_fmt(fmt)
        repeat = _check_repeat(repeat)
        digest = hashlib.sha256(data).hexdigest()
        key = render_key(upload=digest, repeat=repeat, chime=self._chime_hash(), fmt=fmt)
        hit = self.cache.lookup(key)
        if hit is not None:
            return hit
        with self.cache.lock_for(key):
            hit = self.cache.lookup(key)
            if hit is not None:
                return hit
            message = compose.trim(compose.decode(data, max_seconds=MAX_UPLOAD_DECODE_S), -50.0)
            if len(message) < 100:
                raise InputError("audio", "录音中没有可播放的声音 / the recording contains no sound")
            return self._finish(key, message, repeat, fmt)

    def find(self, sha256: str, ext: str) -> Path | None:
        """An already rendered file ``{sha256}.{ext}``, for serving or downloading."""
        return self.cache.find(sha256, ext)

    # --- internals -----------------------------------------------------------------------

    def _finish(self, key: str, message: AudioSegment, repeat: int, fmt: str,
                engine: str | None = None) -> Bulletin:
        started = time.perf_counter()
        data, duration = compose.render(message, self._chime_segment(), repeat, fmt)
        bulletin = self.cache.store(key, data, fmt=fmt, ext=compose.FORMATS[fmt],
                                    duration_s=duration, engine=engine)
        log.info("rendered %s.%s (%s, %.1f s of audio, repeat %d) in %.2f s", bulletin.sha256,
                 bulletin.ext, fmt, duration, repeat, time.perf_counter() - started)
        return bulletin

    def _chime_hash(self) -> str | None:
        return file_sha256(self.chime) if self.chime is not None else None

    def _chime_segment(self) -> AudioSegment | None:
        if self.chime is None:
            return None
        digest = file_sha256(self.chime)
        with self._chime_lock:
            if self._chime_audio is None or self._chime_audio[0] != digest:
                self._chime_audio = (digest, compose.load(self.chime))
            return self._chime_audio[1]

    def _clip_path(self, clip: str) -> Path:
        if self.clips_dir is None:
            raise InputError("clip", "未配置录音片段目录 / no clips directory is configured")
        base = self.clips_dir.resolve()
        path = (base / clip).resolve()
        if not path.is_relative_to(base) or not path.is_file():
            raise InputError("clip", f"找不到录音片段 / clip not found in {self.clips_dir}: {clip!r}")
        return path


def _check_repeat(repeat: int) -> int:
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_REPEAT:
        raise InputError("repeat", f"重复次数必须在 1 到 {MAX_REPEAT} 之间 / repeat must be 1-{MAX_REPEAT}, "
                         f"got {repeat!r}")
    return repeat


def _check_fmt(fmt: str) -> None:
    compose._check_fmt(fmt)
