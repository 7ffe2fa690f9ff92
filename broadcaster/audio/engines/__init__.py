"""Text-to-speech engines: plugins of the ``broadcaster.tts`` entry-point group (DESIGN A9).

- ``espeak``: espeak-ng, embedded through the shared library in the ``espeakng-loader`` wheel via
  ctypes. No server, no network, ~0.1 s for 15 s of Mandarin. Robotic, but always there.
- ``command``: any external TTS program (``audio.command``), e.g. a local neural voice.

An engine is a class with ``type``, a ``Config`` model (validated with the rest of the
configuration from ``audio.voice``, ``audio.command`` and an ``audio.<type>`` section) and the
:class:`Engine` methods. Engines raise :class:`broadcaster.errors.RenderError` with a readable
(Chinese, then English) message when synthesis cannot happen.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from pydub import AudioSegment

from broadcaster import plugins
from broadcaster.audio import compose
from broadcaster.audio.speech import normalise_for_speech, split_sentences
from broadcaster.errors import InputError

__all__ = ["Engine", "create_engine", "speak"]


class Engine(Protocol):
    """What the renderer needs from a TTS engine."""

    type: ClassVar[str]
    #: True when the engine is cheap per call, so each sentence is synthesised on its own and
    #: the composer controls the pauses; False for engines with a costly start-up (processes).
    per_sentence: ClassVar[bool]

    def identity(self) -> str:
        """Everything that changes the engine's output, for the render cache key."""
        ...

    def synthesize(self, text: str) -> AudioSegment:
        """Speak already-normalised text; returns mono 16-bit audio at compose.SAMPLE_RATE."""
        ...


def create_engine(name: str, **options: Any) -> Engine:
    """The engine installed as ``name``, configured from ``options`` (those its ``Config`` knows:
    ``voice``, ``command``, ``rate``, ...). Unknown names and bad options raise ValueError."""
    try:
        cls = plugins.get("tts", name)
    except KeyError as exc:
        raise ValueError(f"未知的语音合成引擎 / unknown TTS engine {name!r}: {exc.args[0]}") from exc
    fields = cls.Config.model_fields
    return cls(cls.Config.model_validate({k: v for k, v in options.items() if k in fields and v is not None}))


def speak(engine: Engine, text: str) -> AudioSegment:
    """Normalise ``text`` for speech and synthesise it, sentence by sentence where cheap."""
    spoken = normalise_for_speech(text)
    sentences = split_sentences(spoken) if engine.per_sentence else [spoken]
    parts = [compose.trim(engine.synthesize(s)) for s in sentences if s.strip()]
    parts = [p for p in parts if len(p)]
    if not parts:
        raise InputError("text", f"没有可朗读的文字 / nothing to speak in {text!r}")
    return compose.join(parts)
