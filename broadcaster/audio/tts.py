"""Text-to-speech engines behind one small interface, with a registry keyed by name.

- ``espeak``: espeak-ng, embedded through the shared library in the ``espeakng-loader`` wheel via
  ctypes. No server, no network, ~0.1 s for 15 s of Mandarin. Robotic, but always there.
- ``command``: any external TTS program, given as an argv template with ``{text}``, ``{out}`` and
  optionally ``{voice}``; the text is also written to its stdin (for programs such as piper that
  read it there). It must write a WAV or MP3 to ``{out}``.

Engines raise :class:`broadcaster.errors.BroadcasterError` with a readable (Chinese, then English)
message when synthesis cannot happen; that is an operations problem, not bad user input.
"""

from __future__ import annotations

import ctypes
import json
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
from pydub import AudioSegment

from broadcaster.audio import compose
from broadcaster.audio.speech import normalise_for_speech, split_sentences
from broadcaster.errors import BroadcasterError

__all__ = [
    "ENGINES",
    "CommandEngine",
    "Engine",
    "EspeakEngine",
    "create_engine",
    "register",
    "speak",
]


class Engine(Protocol):
    """What the renderer needs from a TTS engine."""

    #: True when the engine is cheap per call, so each sentence is synthesised on its own and
    #: the composer controls the pauses; False for engines with a costly start-up (processes).
    per_sentence: ClassVar[bool]

    def identity(self) -> str:
        """Everything that changes the engine's output, for the render cache key."""
        ...

    def synthesize(self, text: str) -> AudioSegment:
        """Speak already-normalised text; returns mono 16-bit audio at compose.SAMPLE_RATE."""
        ...


ENGINES: dict[str, Callable[..., Engine]] = {}


def register(name: str) -> Callable[[type], type]:
    """Class decorator: make an engine available under ``name`` (the ``audio.tts`` config value)."""

    def deco(cls: type) -> type:
        ENGINES[name] = cls
        return cls

    return deco


def create_engine(name: str, **options: object) -> Engine:
    """Instantiate the engine registered as ``name`` with its options (voice, command, rate...)."""
    try:
        factory = ENGINES[name]
    except KeyError:
        raise ValueError(
            f"未知的语音合成引擎 / unknown TTS engine {name!r}; choose one of {sorted(ENGINES)}"
        ) from None
    return factory(**options)


def speak(engine: Engine, text: str) -> AudioSegment:
    """Normalise ``text`` for speech and synthesise it, sentence by sentence where cheap."""
    spoken = normalise_for_speech(text)
    sentences = split_sentences(spoken) if engine.per_sentence else [spoken]
    parts = [compose.trim(engine.synthesize(s)) for s in sentences if s.strip()]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError(f"没有可朗读的文字 / nothing to speak in {text!r}")
    return compose.join(parts)


# --- espeak-ng via ctypes -------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_ESPEAK_RATE = 1
DEFAULT_RATE = 160
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

# espeak-ng keeps global state and is not thread-safe: every call into it holds this lock.
_espeak_lock = threading.Lock()
_espeak_lib: ctypes.CDLL | None = None
_espeak_rate = 0
_chunks: list[np.ndarray] = []


def _on_samples(wav: ctypes._Pointer, count: int, _events: int | None) -> int:  # type: ignore[type-arg]
    if count > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
    return 0  # 0 = continue synthesis


_callback = _SynthCallback(_on_samples)  # module-level so it is never garbage-collected


def _espeak() -> ctypes.CDLL:
    """Load and initialise espeak-ng once (caller holds ``_espeak_lock``)."""
    global _espeak_lib, _espeak_rate
    if _espeak_lib is not None:
        return _espeak_lib
    try:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = str(espeakng_loader.get_data_path()).encode()
    except (ImportError, OSError) as exc:
        raise BroadcasterError(f"无法加载 espeak-ng / cannot load espeak-ng: {exc}") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
    if rate <= 0:
        raise BroadcasterError(f"espeak-ng 初始化失败 / espeak-ng failed to initialise ({rate})")
    lib.espeak_SetSynthCallback(_callback)
    _espeak_lib, _espeak_rate = lib, rate
    return lib


@register("espeak")
class EspeakEngine:
    """Embedded espeak-ng. ``voice`` is an espeak voice name (``cmn`` Mandarin, ``yue``
    Cantonese); ``rate`` is words per minute. We default to 160 rather than espeak's 175:
    slower speech carries better over echoing outdoor horns and to older listeners."""

    per_sentence: ClassVar[bool] = True

    def __init__(self, voice: str = "cmn", rate: int | None = None, **_ignored: object) -> None:
        if rate is not None and not 80 <= rate <= 450:
            raise ValueError(f"语速超出范围 / espeak rate must be 80-450 wpm, got {rate}")
        self.voice = voice
        self.rate = rate

    def identity(self) -> str:
        return f"espeak:{self.voice}:{self.rate or DEFAULT_RATE}"

    def synthesize(self, text: str) -> AudioSegment:
        encoded = text.encode("utf-8")
        buf = ctypes.create_string_buffer(encoded)
        with _espeak_lock:
            lib = _espeak()
            if lib.espeak_SetVoiceByName(self.voice.encode("ascii", "replace")) != 0:
                raise BroadcasterError(
                    f"espeak-ng 没有这个语音 / espeak-ng has no voice {self.voice!r}"
                )
            lib.espeak_SetParameter(_ESPEAK_RATE, self.rate or DEFAULT_RATE, 0)
            _chunks.clear()
            err = lib.espeak_Synth(buf, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                   _ESPEAK_CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            pcm = np.concatenate(_chunks) if _chunks else np.zeros(0, dtype=np.int16)
            _chunks.clear()
            rate = _espeak_rate
        if err != 0:
            raise BroadcasterError(f"espeak-ng 合成失败 / espeak-ng synthesis failed (error {err})")
        seg = AudioSegment(data=pcm.astype("<i2").tobytes(), sample_width=2, frame_rate=rate,
                           channels=1)
        return compose.conform(seg)


# --- external program -----------------------------------------------------------------------


@register("command")
class CommandEngine:
    """An external TTS program run without a shell, e.g.
    ``["piper", "--model", "zh_CN.onnx", "--output_file", "{out}"]`` (text on stdin) or
    ``["my-tts", "--text", "{text}", "--out", "{out}"]``."""

    per_sentence: ClassVar[bool] = False

    def __init__(self, command: list[str] | None = None, voice: str = "", timeout_s: float = 120.0,
                 **_ignored: object) -> None:
        if not command or not all(isinstance(a, str) for a in command):
            raise ValueError("audio.command 必须是非空的参数列表 / audio.command must be a "
                             'non-empty list of strings, e.g. ["my-tts", "--out", "{out}"]')
        if not any("{out}" in a for a in command):
            raise ValueError("audio.command 必须包含 {out} / audio.command must contain {out}, "
                             "where the program writes its WAV or MP3")
        self.command = list(command)
        self.voice = voice
        self.timeout_s = timeout_s

    def identity(self) -> str:
        return "command:" + json.dumps(self.command, ensure_ascii=False) + ":" + self.voice

    def synthesize(self, text: str) -> AudioSegment:
        with tempfile.TemporaryDirectory(prefix="broadcaster-tts-") as tmp:
            out = Path(tmp) / "speech.wav"
            # str.replace, not str.format: other arguments may legitimately contain braces.
            argv = [a.replace("{text}", text).replace("{out}", str(out))
                    .replace("{voice}", self.voice) for a in self.command]
            what = self.command[0]
            try:
                proc = subprocess.run(argv, input=text.encode("utf-8"), capture_output=True,
                                      timeout=self.timeout_s, check=False)
            except FileNotFoundError:
                raise BroadcasterError(
                    f"找不到语音合成程序 / TTS program not found: {what}"
                ) from None
            except subprocess.TimeoutExpired:
                raise BroadcasterError(
                    f"语音合成超时 / TTS program {what} timed out after {self.timeout_s:g} s"
                ) from None
            except OSError as exc:
                raise BroadcasterError(f"无法运行语音合成程序 / cannot run {what}: {exc}") from exc
            if proc.returncode != 0:
                tail = proc.stderr.decode("utf-8", "replace").strip()[-400:]
                raise BroadcasterError(
                    f"语音合成程序出错 / TTS program {what} exited with {proc.returncode}: {tail}"
                )
            if not out.is_file() or out.stat().st_size == 0:
                raise BroadcasterError(
                    f"语音合成程序没有输出音频 / TTS program {what} wrote nothing to {{out}}"
                )
            try:
                return compose.load(out)
            except ValueError as exc:
                raise BroadcasterError(
                    f"语音合成程序输出的不是音频 / TTS program {what} wrote no readable "
                    f"audio: {exc}"
                ) from exc
