"""Players for the village agent: a command line with ``{file}``, or the first one found."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, tzinfo
from pathlib import Path

from broadcaster.errors import InputError

Player = Callable[[Path], None]

_WIN_PLAYER = (
    "powershell -NoProfile -NonInteractive -Command "
    "\"Add-Type -AssemblyName presentationCore; $p = New-Object System.Windows.Media.MediaPlayer; "
    "$p.Open([uri]'{file}'); $p.Play(); Start-Sleep -Milliseconds 500; "
    "while ($p.NaturalDuration.HasTimeSpan -eq $false -or $p.Position -lt $p.NaturalDuration.TimeSpan) "
    "{ Start-Sleep -Milliseconds 200 }; $p.Close()\""
)


def default_player_command() -> str:
    """The first local player found: ffplay, aplay, paplay; PowerShell's media player on Windows."""
    if shutil.which("ffplay"):
        return "ffplay -nodisp -autoexit -loglevel error {file}"
    if shutil.which("aplay"):
        return "aplay -q {file}"
    if shutil.which("paplay"):
        return "paplay {file}"
    if sys.platform == "win32" and shutil.which("powershell"):
        return _WIN_PLAYER
    raise InputError("--player", "找不到播放程序（ffplay / aplay / paplay）。请安装 ffmpeg，或用 --player 指定，"
                     "例如 --player \"aplay -D plughw:1,0 {file}\" / no player found: install ffmpeg or give --player")


def command_player(command: str, timeout_s: float = 900) -> Player:
    """A player that runs ``command`` with ``{file}`` replaced; a non-zero exit is a failure."""
    if "{file}" not in command:
        raise InputError("--player", "--player 命令中必须包含 {file}，例如 \"aplay {file}\" / --player must contain {file}")
    parts = shlex.split(command, posix=sys.platform != "win32")

    def play(path: Path) -> None:
        argv = [a.replace("{file}", str(path)) for a in parts]
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, timeout=timeout_s, check=False)
        if res.returncode != 0:
            err = res.stderr.decode("utf-8", "replace").strip()[-300:]
            raise RuntimeError(f"player exited {res.returncode}: {err}")

    return play


def copy_player(folder: Path, tz: tzinfo) -> Player:
    """A player that files each bulletin as ``{time}-{name}`` in ``folder`` (atomically), the
    time in the town's zone ``tz`` whatever the host's (a Docker container's is UTC). The demo's
    built-in agent uses it, so a station without hardware sees what was played and when."""

    def play(path: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{datetime.now(tz):%Y%m%d-%H%M%S}-{path.name}"
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(dest)

    return play
