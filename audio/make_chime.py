"""Synthesise the attention chime played before every bulletin and write audio/chime.wav.

Our own synthesis (no third-party recording): three ascending bell tones, G4-C5-E5, the
"announcement starts" pattern that public-address systems use, each with a few harmonics that
decay faster than the fundamental, so it sounds like a struck chime rather than a beep. About
2 s, 22.05 kHz mono 16-bit, so it matches the TTS output and needs no resampling.

Run: ``.venv/bin/python audio/make_chime.py`` (deterministic; rerun only to change the sound).
``--demo-clip`` also writes ``audio/clips/demo-zh.wav``, a short demonstration "recording" spoken
by our own embedded espeak-ng engine, so that clip playback can be tested without any
third-party recording.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np

RATE = 22050
DURATION_S = 2.0
# (start time s, fundamental Hz): G4, C5, E5
NOTES: tuple[tuple[float, float], ...] = ((0.0, 392.00), (0.42, 523.25), (0.84, 659.25))
# (frequency ratio, relative amplitude, decay time constant s); the slightly inharmonic top
# partial gives the metallic "ding", and it dies away first as in a real bar or bell.
PARTIALS: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.00, 0.55),
    (2.0, 0.32, 0.30),
    (3.0, 0.12, 0.18),
    (4.16, 0.06, 0.10),
)
ATTACK_S = 0.005  # a few ms of rise: no click, still a crisp strike
PEAK_DBFS = -3.0


def chime() -> np.ndarray:
    """The chime as float samples in [-1, 1]."""
    t = np.arange(int(RATE * DURATION_S)) / RATE
    out = np.zeros_like(t)
    for start, f0 in NOTES:
        local = t - start
        active = local >= 0
        lt = local[active]
        tone = np.zeros_like(lt)
        for ratio, amp, tau in PARTIALS:
            tone += amp * np.exp(-lt / tau) * np.sin(2 * np.pi * f0 * ratio * lt)
        attack = np.clip(lt / ATTACK_S, 0.0, 1.0)
        tone *= 0.5 - 0.5 * np.cos(np.pi * attack)
        out[active] += tone
    fade = int(0.08 * RATE)  # let the tail reach silence instead of being cut
    out[-fade:] *= np.linspace(1.0, 0.0, fade) ** 2
    return out / np.abs(out).max() * 10 ** (PEAK_DBFS / 20)


def write_wav(path: Path, samples: np.ndarray) -> None:
    """Write mono 16-bit PCM with the stdlib ``wave`` module."""
    pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())


DEMO_CLIP_TEXT = "这是演示录音。"


def write_demo_clip(path: Path) -> None:
    """Speak DEMO_CLIP_TEXT with our espeak engine and write it as 22.05 kHz mono 16-bit WAV."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from broadcaster.audio import compose, engines

    seg = compose.level(engines.speak(engines.create_engine("espeak"), DEMO_CLIP_TEXT), -18.0)
    write_wav(path, compose.samples(seg))


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    args = [a for a in argv[1:] if not a.startswith("--")]
    out = Path(args[0]) if args else here / "chime.wav"
    write_wav(out, chime())
    print(f"wrote {out} ({out.stat().st_size} bytes, {DURATION_S:g} s)")
    if "--demo-clip" in argv:
        clip = here / "clips" / "demo-zh.wav"
        write_demo_clip(clip)
        print(f"wrote {clip} ({clip.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
