"""``command``: an external TTS program (a local neural voice such as Piper or sherpa-onnx)."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydub import AudioSegment

from broadcaster.audio import compose
from broadcaster.errors import InputError, RenderError
from broadcaster.plugins import PluginConfig


class CommandConfig(PluginConfig):
    """``command`` is the argv template: ``{text}``, ``{out}`` and ``{voice}`` are replaced; the
    text is also written to the program's stdin (for programs such as piper that read it there).
    It must write a WAV or MP3 to ``{out}``."""

    command: list[str] = Field(min_length=1)
    voice: str = ""
    timeout_s: float = Field(default=120.0, gt=0, le=900)

    @field_validator("command")
    @classmethod
    def _has_out(cls, v: list[str]) -> list[str]:
        if not any("{out}" in a for a in v):
            raise ValueError("audio.command 必须包含 {out} / audio.command must contain {out}, "
                             "where the program writes its WAV or MP3")
        return v


class CommandEngine:
    """An external TTS program run without a shell, e.g.
    ``["piper", "--model", "zh_CN.onnx", "--output_file", "{out}"]`` (text on stdin) or
    ``["my-tts", "--text", "{text}", "--out", "{out}"]``."""

    type: ClassVar[str] = "command"
    Config = CommandConfig
    per_sentence: ClassVar[bool] = False

    def __init__(self, config: CommandConfig) -> None:
        self.command = list(config.command)
        self.voice = config.voice
        self.timeout_s = config.timeout_s

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
                raise RenderError(
                    f"找不到语音合成程序 / TTS program not found: {what}"
                ) from None
            except subprocess.TimeoutExpired:
                raise RenderError(
                    f"语音合成超时 / TTS program {what} timed out after {self.timeout_s:g} s"
                ) from None
            except OSError as exc:
                raise RenderError(f"无法运行语音合成程序 / cannot run {what}: {exc}") from exc
            if proc.returncode != 0:
                tail = proc.stderr.decode("utf-8", "replace").strip()[-400:]
                raise RenderError(
                    f"语音合成程序出错 / TTS program {what} exited with {proc.returncode}: {tail}"
                )
            if not out.is_file() or out.stat().st_size == 0:
                raise RenderError(
                    f"语音合成程序没有输出音频 / TTS program {what} wrote nothing to {{out}}"
                )
            try:
                return compose.load(out)
            except InputError as exc:
                raise RenderError(
                    f"语音合成程序输出的不是音频 / TTS program {what} wrote no readable "
                    f"audio: {exc}"
                ) from exc
