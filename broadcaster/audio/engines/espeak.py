"""``espeak``: espeak-ng embedded through ctypes (the ``espeakng-loader`` wheel). Always there."""

from __future__ import annotations

import ctypes
import threading
from typing import ClassVar

import numpy as np
from pydantic import Field
from pydub import AudioSegment

from broadcaster.audio import compose
from broadcaster.errors import RenderError
from broadcaster.plugins import PluginConfig

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
        raise RenderError(f"无法加载 espeak-ng / cannot load espeak-ng: {exc}") from exc
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
    if rate <= 0:
        raise RenderError(f"espeak-ng 初始化失败 / espeak-ng failed to initialise ({rate})")
    lib.espeak_SetSynthCallback(_callback)
    _espeak_lib, _espeak_rate = lib, rate
    return lib


class EspeakConfig(PluginConfig):
    """``voice`` is an espeak voice name (``cmn`` Mandarin, ``yue`` Cantonese); ``rate`` words per
    minute. We default to 160 rather than espeak's 175: slower speech carries better over
    echoing outdoor horns and to older listeners."""

    voice: str = "cmn"
    rate: int | None = Field(default=None, ge=80, le=450)


class EspeakEngine:
    """Embedded espeak-ng."""

    type: ClassVar[str] = "espeak"
    Config = EspeakConfig
    per_sentence: ClassVar[bool] = True

    def __init__(self, config: EspeakConfig) -> None:
        self.voice = config.voice
        self.rate = config.rate

    def identity(self) -> str:
        return f"espeak:{self.voice}:{self.rate or DEFAULT_RATE}"

    def synthesize(self, text: str) -> AudioSegment:
        encoded = text.encode("utf-8")
        buf = ctypes.create_string_buffer(encoded)
        with _espeak_lock:
            lib = _espeak()
            if lib.espeak_SetVoiceByName(self.voice.encode("ascii", "replace")) != 0:
                raise RenderError(
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
            raise RenderError(f"espeak-ng 合成失败 / espeak-ng synthesis failed (error {err})")
        seg = AudioSegment(data=pcm.astype("<i2").tobytes(), sample_width=2, frame_rate=rate,
                           channels=1)
        return compose.conform(seg)
