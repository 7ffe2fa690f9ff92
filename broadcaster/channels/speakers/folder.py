"""``folder``: write the bulletin file into a directory for the station's own playout software.

The file is named ``{play_at:%Y%m%d-%H%M}-{delivery_id}.{ext}`` and written atomically (write to a
hidden temporary name, then rename), so a watcher never picks up half a file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Literal

from broadcaster.channels import SendResult
from broadcaster.channels.speakers.base import PlayJob, SpeakerChannel, SpeakerConfig
from broadcaster.errors import PermanentError, TransientError


class FolderConfig(SpeakerConfig):
    type: Literal["folder"]
    path: Path


class FolderChannel(SpeakerChannel):
    type = "folder"
    Config = FolderConfig
    mode = "schedule"
    idempotent = True  # the file name carries the delivery id
    withdrawable = True  # the file is removed

    @property
    def directory(self) -> Path:
        path: Path = self.config.path  # type: ignore[attr-defined]
        return path if path.is_absolute() else self.ctx.base_dir / path

    def filename(self, job: PlayJob) -> str:
        ext = job.audio_path.suffix.lstrip(".")
        local = job.play_at
        return f"{local:%Y%m%d-%H%M}-{job.delivery_id}.{ext}"

    def send(self, job: PlayJob) -> SendResult:
        target = self.directory / self.filename(job)
        tmp = self.directory / f".{target.name}.part"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(job.audio_path, tmp)
            os.replace(tmp, target)
        except FileNotFoundError as exc:
            raise PermanentError(f"audio file missing: {exc.filename}") from exc
        except OSError as exc:  # disk full, permissions, unmounted share: may clear up
            raise TransientError(f"cannot write {target}: {exc.strerror}") from exc
        return SendResult(state="sent", provider_id=str(target))

    def withdraw(self, job: PlayJob) -> None:
        target = self.directory / self.filename(job)
        try:
            target.unlink()
        except FileNotFoundError:
            raise PermanentError(f"{target.name} is no longer in the folder: the playout software has taken it") from None
        except OSError as exc:
            raise TransientError(f"cannot remove {target}: {exc.strerror}") from exc
