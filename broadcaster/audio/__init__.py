"""Broadcast-quality Mandarin bulletins for village loudspeakers.

::

    from broadcaster.audio import Renderer, Bulletin
    r = Renderer(Path("var/audio"), Path("audio/chime.wav"), Path("audio/clips"))
    b = r.render("各位村民请注意：……", repeat=2, fmt="mp3")   # -> Bulletin(sha256, path, ...)
    r.find(b.sha256, b.ext)                                  # -> Path for serving

Modules: ``speech`` (text → speakable 汉字, sentences), ``engines`` (TTS plugins: espeak, command),
``compose`` (pydub assembly, mastering, export), ``loudness`` (BS.1770 loudness, true-peak
limiter), ``cache`` (content-addressed store), ``renderer`` (the :class:`Renderer`).
Errors: :class:`broadcaster.errors.InputError` naming the field for bad input (text, clip,
audio, repeat, format), :class:`broadcaster.errors.RenderError` when audio cannot be made.
"""

from broadcaster.audio.cache import RENDER_VERSION, Bulletin
from broadcaster.audio.compose import FORMATS, PEAK_CEILING_DBTP, TARGET_LUFS
from broadcaster.audio.renderer import Renderer
from broadcaster.audio.speech import normalise_for_speech, split_sentences

__all__ = [
    "FORMATS",
    "PEAK_CEILING_DBTP",
    "RENDER_VERSION",
    "TARGET_LUFS",
    "Bulletin",
    "Renderer",
    "normalise_for_speech",
    "split_sentences",
]
