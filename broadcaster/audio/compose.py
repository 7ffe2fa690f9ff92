"""Bulletin composition with pydub: decode, conform, level, assemble, master and export.

A bulletin is: pre-roll silence, the chime, a short gap, the message, then ``repeat - 1`` more
times (a longer gap, the message), and post-roll silence. It is mono at 22.05 kHz (espeak-ng's own
rate, plenty for speech on horn speakers), mastered to ``TARGET_LUFS`` integrated loudness with the
true peak at or below ``PEAK_CEILING_DBTP``, so that every bulletin, synthesised or recorded,
plays at the same level on an amplifier that was set up once.

MP3 is encoded by LAME in-process (lameenc) and checked by decoding it in-process (miniaudio).
ffmpeg, from the imageio-ffmpeg wheel (no system package needed), decodes uploaded recordings and
encodes G.711. That wheel has no ffprobe, which pydub's generic ``from_file`` calls for anything
but WAV, so :func:`decode` runs ffmpeg itself and hands pydub raw PCM.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import imageio_ffmpeg
import lameenc
import miniaudio
import numpy as np

with warnings.catch_warnings():
    # pydub warns at import when ffmpeg is not on PATH; we hand it the bundled one below.
    warnings.filterwarnings("ignore", message="Couldn't find ffmpeg", category=RuntimeWarning)
    from pydub import AudioSegment

from broadcaster.errors import InputError
from broadcaster.audio.loudness import (
    gated_loudness,
    integrated_loudness,
    k_weight,
    limit,
    true_peak_db,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "PEAK_CEILING_DBTP",
    "SAMPLE_RATE",
    "TARGET_LUFS",
    "assemble",
    "conform",
    "decode",
    "export",
    "ffmpeg",
    "from_samples",
    "join",
    "level",
    "load",
    "master",
    "render",
    "samples",
]

SAMPLE_RATE = 22050
TARGET_LUFS = -16.0
# -1.5 rather than -1 leaves room for the resampling every player does; lossy formats get a
# lower ceiling still (see _FORMAT_TRIM), as EBU R128 advises for coded audio.
PEAK_CEILING_DBTP = -1.5
MAX_PEAK_DBFS = -1.0  # the promise: no decoded bulletin peaks above this
LOUDNESS_TOLERANCE_LU = 0.4
# fmt -> (loudness pre-compensation dB, true-peak ceiling before encoding dBTP), measured with the
# bundled ffmpeg/LAME on speech; see render().
_FORMAT_TRIM: dict[str, tuple[float, float]] = {
    "wav": (0.0, PEAK_CEILING_DBTP),
    "mp3": (0.45, -2.0),
    "g711": (0.15, -2.0),
}
_ATTEMPTS = 3  # encode-and-check rounds for lossy formats (the first nearly always passes)
CHIME_LU = -1.0  # the chime sits just under the speech: a cue, not the message

PRE_ROLL_MS = 300  # amplifiers and 4G speakers often swallow the first few hundred ms
CHIME_GAP_MS = 600
SENTENCE_PAUSE_MS = 350
REPEAT_GAP_MS = 1500
POST_ROLL_MS = 700
FADE_MS = 8  # against clicks where trimmed speech starts or stops mid-waveform

MP3_KBPS = 64
MP3_QUALITY = 5  # LAME -q 5: its speed/quality middle; transparent enough for speech at 64 kbps
_MP3_DELAY_SAMPLES = 576 + 529  # LAME's encoder delay plus the decoder's (mpg123, dr_mp3, ffmpeg)
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


def _not_audio(detail: str) -> InputError:
    return InputError("audio", 
        f"无法识别的音频，请上传 MP3 或 WAV 录音 / not a readable audio file: {detail}"
    )


def decode(data: bytes, *, max_seconds: float | None = None) -> AudioSegment:
    """Decode any audio ffmpeg understands (MP3, WAV, M4A, AMR, ...) to mono 16-bit 22.05 kHz.

    Raises InputError (field ``audio``, Chinese then English) when the bytes are not audio.
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


def sniff(data: bytes) -> str | None:
    """The ffmpeg demuxer for these bytes, told by their magic bytes, or None (not an audio
    container we take). ffmpeg's own probing is not trusted with uploads: it reads playlists
    and concat scripts (``ffconcat``) that name other files, even files on the server."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:
        return "aac"  # ADTS
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[4:8] == b"ftyp":
        return "mov"  # M4A/MP4/3GP: ffmpeg's mov demuxer
    if data[:6] == b"#!AMR\n":
        return "amr"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"fLaC":
        return "flac"
    return None


def _ffmpeg_decode(data: bytes, max_seconds: float | None) -> AudioSegment:
    fmt = sniff(data)
    if fmt is None:
        raise _not_audio("unknown format")
    # A real file, not a pipe: MP4/M4A keep their index at the end and need to seek. It sits
    # alone in a private, otherwise empty directory that ffmpeg runs in; with an explicit input
    # format and only the file protocol, nothing else can be opened through it.
    with tempfile.TemporaryDirectory(prefix="decode-") as tmp:
        src = os.path.join(tmp, "in")
        with open(src, "wb") as fh:
            fh.write(data)
        cmd = [ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", "-protocol_whitelist", "file",
               "-f", fmt, "-i", "file:in", "-vn"]
        if max_seconds is not None:
            cmd += ["-t", f"{max_seconds:.3f}"]
        cmd += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-acodec", "pcm_s16le", "-f", "s16le", "pipe:1"]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise _not_audio("decoding took too long") from None
    if proc.returncode != 0 or not proc.stdout:
        # ffmpeg's words (with paths in them) go to the log, never to the user.
        log.info("ffmpeg could not decode a %s upload: %s", fmt, proc.stderr.decode("utf-8", "replace")[-300:])
        raise _not_audio(f"{fmt} without a readable audio stream")
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


def _layout(message: T, bell: T | None, repeat: int, silence: Callable[[int], T]) -> list[T]:
    """The parts of a bulletin in order; one layout for the audio and for its loudness proxy."""
    if repeat < 1:
        raise InputError("repeat", f"repeat 必须至少为 1 / repeat must be at least 1, got {repeat}")
    parts = [silence(PRE_ROLL_MS)]
    if bell is not None:
        parts += [bell, silence(CHIME_GAP_MS)]
    for i in range(repeat):
        parts += [silence(REPEAT_GAP_MS), message] if i else [message]
    parts.append(silence(POST_ROLL_MS))
    return parts


def assemble(message: AudioSegment, chime: AudioSegment | None, repeat: int) -> AudioSegment:
    """Lay out pre-roll, chime, gap, ``repeat`` copies of the message (with longer gaps) and
    post-roll. No level change: the parts come in mastered (see :func:`render`)."""
    bell = chime if chime is not None and len(chime) else None
    parts = _layout(message, bell, repeat, lambda ms: AudioSegment.silent(ms, SAMPLE_RATE))
    out = parts[0]
    for part in parts[1:]:
        out += part
    return out


def master(message: AudioSegment, target_lufs: float = TARGET_LUFS,
           ceiling_dbtp: float = PEAK_CEILING_DBTP, *, bell: AudioSegment | None = None,
           repeat: int = 1) -> AudioSegment:
    """Gain and limit ``message`` so that the bulletin it will be assembled into (with ``bell``
    and ``repeat``) has ``target_lufs`` integrated loudness and a true peak ≤ ``ceiling_dbtp``.

    The loudness that counts is the whole bulletin's: the gaps and the chime shift it a few
    tenths from the message's own. Only the message is processed, though: K-weighting is linear
    and the parts are separated by silence, so the bulletin's K-weighted signal is the same
    layout of the K-weighted parts, and measuring it costs one filter pass over one copy.

    The limiter takes back some of the gain it is given (more, the harder it works), so the gain
    is found by the secant method, each try limiting the *original* signal so that distortion
    does not pile up; two or three tries land within 0.1 LU.
    """
    x = samples(message)
    weighted_bell = k_weight(samples(bell), SAMPLE_RATE) if bell is not None and len(bell) else None

    def bulletin_loudness(y: np.ndarray) -> float:
        weighted = _layout(k_weight(y, SAMPLE_RATE), weighted_bell, repeat,
                           lambda ms: np.zeros(SAMPLE_RATE * ms // 1000, dtype=np.float32))
        return gated_loudness(np.concatenate(weighted), SAMPLE_RATE)

    loudness = bulletin_loudness(x)
    if loudness <= -100.0:  # silence: nothing to normalise
        return message
    tries: list[tuple[float, float]] = []  # (gain dB, resulting loudness)
    gain = target_lufs - loudness
    y = x
    for _ in range(4):
        y = limit(x * 10 ** (gain / 20), SAMPLE_RATE, ceiling_dbtp)
        result = bulletin_loudness(y)
        tries.append((gain, result))
        if abs(target_lufs - result) < 0.1:
            break
        if len(tries) == 1:  # limiter loss grows with gain: step a little past the error
            gain += 1.4 * (target_lufs - result)
        else:
            (g0, l0), (g1, l1) = tries[-2], tries[-1]
            slope = (l1 - l0) / (g1 - g0) if abs(g1 - g0) > 1e-6 else 1.0
            gain = g1 + (target_lufs - l1) / max(slope, 0.2)
    return from_samples(y, SAMPLE_RATE)


def export(seg: AudioSegment, fmt: str) -> bytes:
    """Encode to ``mp3`` (64 kbps CBR, 22.05 kHz mono), ``wav`` (16-bit PCM) or ``g711``
    (8 kHz mono µ-law WAV, what SIP/RTP paging and Axis speakers take)."""
    _check_fmt(fmt)
    buf = io.BytesIO()
    # bitexact: no encoder version string, so identical input gives identical bytes (and sha256)
    # on every machine with the same ffmpeg.
    exact = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags:a", "+bitexact"]
    if fmt == "wav":
        seg.export(buf, format="wav")
    elif fmt == "mp3":
        return encode_mp3(seg)
    else:
        ffmpeg()
        seg.export(buf, format="wav", codec="pcm_mulaw",
                   parameters=["-ac", "1", "-ar", "8000", *exact])
    return buf.getvalue()


def encode_mp3(seg: AudioSegment) -> bytes:
    """64 kbps CBR mono MP3 with LAME in-process (lameenc), no ID3 tag (cheap speaker decoders
    need none). In-process rather than the ffmpeg subprocess: a third of the cold render time."""
    enc = lameenc.Encoder()
    enc.set_bit_rate(MP3_KBPS)
    enc.set_in_sample_rate(seg.frame_rate)
    enc.set_channels(1)
    enc.set_quality(MP3_QUALITY)
    # lameenc writes no LAME/Info tag, so players cannot remove the codec's delay: take it out of
    # the pre-roll silence instead, and the decoded chime starts exactly where it was placed.
    pcm = seg.set_channels(1).set_sample_width(2).raw_data[2 * _MP3_DELAY_SAMPLES:]
    return bytes(enc.encode(pcm) + enc.flush())


def decode_mp3(data: bytes) -> np.ndarray:
    """Our own MP3 bulletin → float samples at ``SAMPLE_RATE``, decoded in-process (miniaudio's
    dr_mp3) the way a player would: what :func:`render` measures loudness and peaks on."""
    d = miniaudio.decode(data, output_format=miniaudio.SampleFormat.SIGNED16, nchannels=1,
                         sample_rate=SAMPLE_RATE)
    return np.frombuffer(d.samples, dtype="<i2").astype(np.float64) / 32768.0


def render(message: AudioSegment, chime: AudioSegment | None, repeat: int,
           fmt: str) -> tuple[bytes, float]:
    """Master, assemble and encode a bulletin; returns the file bytes and the duration (s).

    The message is mastered once, before it is repeated, for the loudness of the whole bulletin;
    the chime is set ``CHIME_LU`` under the target, so the balance does not depend on how loud
    the TTS or the recording came out.

    Encoders move levels: LAME's CBR mode comes out ~0.45 dB quieter, and lossy coding and
    resampling overshoot peaks by up to about a dB. The per-format trim pre-compensates the
    typical case; then what a player will actually decode is measured, and if it misses the
    target by more than ``LOUDNESS_TOLERANCE_LU`` or peaks above ``MAX_PEAK_DBFS`` the message
    is mastered once more with the measured error taken out.
    """
    _check_fmt(fmt)
    loud_trim, ceiling = _FORMAT_TRIM[fmt]
    target = TARGET_LUFS + loud_trim
    has_chime = chime is not None and len(chime) > 0
    for attempt in range(1, _ATTEMPTS + 1):
        bell = None
        if chime is not None and has_chime:
            bell = from_samples(limit(samples(level(chime, target + CHIME_LU)), SAMPLE_RATE,
                                      ceiling))
        bulletin = assemble(master(message, target, ceiling, bell=bell, repeat=repeat), bell,
                            repeat)
        data = export(bulletin, fmt)
        if fmt == "wav":  # lossless: what we mastered is what plays
            break
        decoded = decode_mp3(data) if fmt == "mp3" else samples(decode(data))
        loudness, peak = integrated_loudness(decoded, SAMPLE_RATE), true_peak_db(decoded)
        if abs(loudness - TARGET_LUFS) <= LOUDNESS_TOLERANCE_LU and peak <= MAX_PEAK_DBFS - 0.1:
            break
        log.info("%s came out at %.2f LUFS, peak %.2f dBFS (attempt %d); re-mastering",
                 fmt, loudness, peak, attempt)
        if attempt == _ATTEMPTS:
            log.warning("%s bulletin still off target after %d attempts: %.2f LUFS, %.2f dBFS",
                        fmt, attempt, loudness, peak)
        target += TARGET_LUFS - loudness
        ceiling -= max(0.0, peak - (MAX_PEAK_DBFS - 0.2))
    return data, bulletin.frame_count() / bulletin.frame_rate


def _check_fmt(fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError("format", f"不支持的音频格式 / unsupported audio format {fmt!r}; "
                         f"use one of {sorted(FORMATS)}")
