"""Bulletin composition with pydub: decode, conform, level, assemble, master and export.

A bulletin is: pre-roll silence, the chime, a short gap, the message, then ``repeat - 1`` more
times (a longer gap, the message), and post-roll silence. It is mono at 22.05 kHz (espeak-ng's own
rate, plenty for speech on horn speakers), mastered to ``TARGET_LUFS`` integrated loudness with the
true peak at or below ``PEAK_CEILING_DBTP``, so that every bulletin, synthesised or recorded,
plays at the same level on an amplifier that was set up once.

ffmpeg comes from the imageio-ffmpeg wheel (no system package needed). That wheel has no ffprobe,
which pydub's generic ``from_file`` calls for anything but WAV, so :func:`decode` runs ffmpeg
itself and hands pydub raw PCM.
"""

from __future__ import annotations

import io
import os
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Sequence

import imageio_ffmpeg
import numpy as np

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is not on PATH; we hand it the bundled one below.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from pydub import AudioSegment

from broadcaster.audio.loudness import integrated_loudness, limit, true_peak_db

__all__ = [
    "SAMPLE_RATE", "TARGET_LUFS", "PEAK_CEILING_DBTP", "FORMATS", "decode", "load", "conform",
    "samples", "from_samples", "level", "join", "assemble", "master", "export", "ffmpeg",
]

SAMPLE_RATE = 22050
TARGET_LUFS = -16.0
# -1.5 rather than -1: MP3 encoding adds a few tenths of a dB of overshoot, and the decoded MP3 a
# village plays must still stay at or below -1 dBFS.
PEAK_CEILING_DBTP = -1.5
CHIME_LU = -3.0  # the chime sits a little under the speech: it is a cue, not the message

PRE_ROLL_MS = 300  # amplifiers and 4G speakers often swallow the first few hundred ms
CHIME_GAP_MS = 600
SENTENCE_PAUSE_MS = 350
REPEAT_GAP_MS = 1500
POST_ROLL_MS = 700
FADE_MS = 8  # against clicks where trimmed speech starts or stops mid-waveform

MP3_BITRATE = "64k"
FORMATS: dict[str, str] = {"mp3": "mp3", "wav": "wav", "g711": "wav"}  # fmt -> file extension

_ffmpeg_lock = threading.Lock()
_ffmpeg_path: str | None = None


def ffmpeg() -> str:
    """Path of the bundled ffmpeg; also points pydub at it (once, thread-safe)."""
    global _ffmpeg_path
    with _ffmpeg_lock:
        if _ffmpeg_path is None:
            _ffmpeg_path = imageio_ffmpeg.get_ffmpeg_exe()
            AudioSegment.converter = _ffmpeg_path
        return _ffmpeg_path


def _not_audio(detail: str) -> ValueError:
    return ValueError(f"无法识别的音频，请上传 MP3 或 WAV 录音 / not a readable audio file: {detail}")


def decode(data: bytes, *, max_seconds: float | None = None) -> AudioSegment:
    """Decode any audio ffmpeg understands (MP3, WAV, M4A, AMR, ...) to mono 16-bit 22.05 kHz.

    Raises ValueError with a Chinese and English message when the bytes are not audio.
    ``max_seconds`` bounds the work an oversized upload can cause.
    """
    if not data:
        raise _not_audio("empty")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:  # plain PCM WAV at our rate needs no subprocess
            seg = AudioSegment(data=data)
        except Exception:  # noqa: BLE001 - compressed or odd WAV: let ffmpeg try
            seg = None
        if seg is not None and seg.frame_rate == SAMPLE_RATE:
            seg = seg.set_channels(1).set_sample_width(2)
            return seg[: int(max_seconds * 1000)] if max_seconds is not None else seg
    return _ffmpeg_decode(data, max_seconds)


def _ffmpeg_decode(data: bytes, max_seconds: float | None) -> AudioSegment:
    # A real file, not a pipe: MP4/M4A keep their index at the end and need to seek.
    fd, src = tempfile.mkstemp(suffix=".audio")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", src, "-vn"]
        if max_seconds is not None:
            cmd += ["-t", f"{max_seconds:.3f}"]
        cmd += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-acodec", "pcm_s16le", "-f", "s16le", "-"]
        proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    finally:
        os.unlink(src)
    if proc.returncode != 0 or not proc.stdout:
        raise _not_audio(proc.stderr.decode("utf-8", "replace").strip()[-300:] or "no audio stream")
    return AudioSegment(data=proc.stdout, sample_width=2, frame_rate=SAMPLE_RATE, channels=1)


def load(path: os.PathLike[str] | str) -> AudioSegment:
    """Load an audio file (chime, clip, TTS output) as a conformed segment."""
    with open(path, "rb") as fh:
        return decode(fh.read())


def conform(seg: AudioSegment) -> AudioSegment:
    """Mono, 16-bit, ``SAMPLE_RATE``. Resampling goes through ffmpeg's resampler, because
    pydub's (audioop.ratecv) does not filter and would alias when downsampling."""
    seg = seg.set_channels(1).set_sample_width(2)
    if seg.frame_rate == SAMPLE_RATE:
        return seg
    buf = io.BytesIO()
    seg.export(buf, format="wav")
    return _ffmpeg_decode(buf.getvalue(), None)


def samples(seg: AudioSegment) -> np.ndarray:
    """Mono 16-bit segment → float64 samples in [-1, 1]."""
    return np.frombuffer(seg.raw_data, dtype="<i2").astype(np.float64) / 32768.0


def from_samples(x: np.ndarray, rate: int = SAMPLE_RATE) -> AudioSegment:
    """float samples → mono 16-bit segment (clipped, rounded)."""
    pcm = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")
    return AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=rate, channels=1)


def trim(seg: AudioSegment, threshold_db: float = -45.0, keep_ms: int = 40) -> AudioSegment:
    """Cut leading and trailing silence (relative to the segment's peak), keeping a little air."""
    x = samples(seg)
    if not x.size:
        return seg
    loud = np.flatnonzero(np.abs(x) > np.abs(x).max() * 10 ** (threshold_db / 20))
    if not loud.size:
        return seg[:0]
    keep = int(seg.frame_rate * keep_ms / 1000)
    start, end = max(0, loud[0] - keep), min(len(x), loud[-1] + keep + 1)
    return from_samples(x[start:end], seg.frame_rate).fade_in(FADE_MS).fade_out(FADE_MS)


def level(seg: AudioSegment, target_lufs: float = TARGET_LUFS) -> AudioSegment:
    """Apply the gain that brings the segment to ``target_lufs`` (no limiting; see master)."""
    loudness = integrated_loudness(samples(seg), seg.frame_rate)
    if loudness <= -100.0:  # silence: nothing to measure, nothing to gain
        return seg
    return seg.apply_gain(target_lufs - loudness)


def join(parts: Sequence[AudioSegment], pause_ms: int = SENTENCE_PAUSE_MS) -> AudioSegment:
    """Concatenate sentence audio with a short pause between sentences."""
    pause = AudioSegment.silent(pause_ms, frame_rate=SAMPLE_RATE)
    out = AudioSegment.silent(0, frame_rate=SAMPLE_RATE)
    for i, part in enumerate(parts):
        out = out + (pause if i else AudioSegment.empty()) + part
    return out


def assemble(message: AudioSegment, chime: AudioSegment | None, repeat: int) -> AudioSegment:
    """Lay out pre-roll, chime, ``repeat`` copies of the message and post-roll.

    The message is levelled before it is repeated and the chime a few LU under it, so that the
    balance between the two does not depend on how loud the TTS or the recording came out.
    """
    if repeat < 1:
        raise ValueError(f"repeat 必须至少为 1 / repeat must be at least 1, got {repeat}")
    silent = lambda ms: AudioSegment.silent(ms, frame_rate=SAMPLE_RATE)  # noqa: E731
    message = level(message)
    out = silent(PRE_ROLL_MS)
    if chime is not None and len(chime):
        out += level(chime, TARGET_LUFS + CHIME_LU) + silent(CHIME_GAP_MS)
    for i in range(repeat):
        out += (silent(REPEAT_GAP_MS) if i else AudioSegment.empty()) + message
    return out + silent(POST_ROLL_MS)


def master(seg: AudioSegment, target_lufs: float = TARGET_LUFS,
           ceiling_dbtp: float = PEAK_CEILING_DBTP) -> AudioSegment:
    """Normalise the whole bulletin to ``target_lufs`` and limit its true peak.

    Limiting takes a little loudness away, so measure and correct once more; two rounds land
    within about 0.1 LU of the target for speech.
    """
    x = samples(seg).copy()
    rate = seg.frame_rate
    for _ in range(3):
        loudness = integrated_loudness(x, rate)
        if loudness <= -100.0:
            break
        gain_db = target_lufs - loudness
        if abs(gain_db) < 0.1 and true_peak_db(x) <= ceiling_dbtp:
            break
        x = limit(x * 10 ** (gain_db / 20), rate, ceiling_dbtp)
    return from_samples(x, rate)


def export(seg: AudioSegment, fmt: str) -> bytes:
    """Encode to ``mp3`` (64 kbps CBR, 22.05 kHz mono), ``wav`` (16-bit PCM) or ``g711``
    (8 kHz mono µ-law WAV, what SIP/RTP paging and Axis speakers take)."""
    if fmt not in FORMATS:
        raise ValueError(f"不支持的音频格式 / unsupported audio format {fmt!r}; use mp3, wav or g711")
    buf = io.BytesIO()
    # bitexact: no encoder version string, so identical input gives identical bytes (and sha256)
    # on every machine with the same ffmpeg.
    exact = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    if fmt == "wav":
        seg.export(buf, format="wav")
    elif fmt == "mp3":
        ffmpeg()
        seg.export(buf, format="mp3", bitrate=MP3_BITRATE,
                   parameters=["-ac", "1", "-ar", str(SAMPLE_RATE), *exact])
    else:
        ffmpeg()
        seg.export(buf, format="wav", codec="pcm_mulaw",
                   parameters=["-ac", "1", "-ar", "8000", *exact])
    return buf.getvalue()
