"""``file``: the canonical JSON (DESIGN A5) from a local file, e.g. one the bureau drops by FTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from broadcaster.errors import FeedError
from broadcaster.feeds.base import Reading, Source, SourceConfig
from broadcaster.feeds.canonical import parse_document
from broadcaster.timeutil import Night


class FileConfig(SourceConfig):
    type: Literal["file"]
    path: Path


class FileSource(Source):
    type = "file"
    Config = FileConfig

    def fetch(self, night: Night) -> list[Reading]:
        cfg: FileConfig = self.config  # type: ignore[assignment]
        path = cfg.path if cfg.path.is_absolute() else self.ctx.base_dir / cfg.path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FeedError(self.name, f"cannot read {path}: {exc.strerror}") from exc
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FeedError(self.name, f"malformed JSON in {path}: {exc}") from exc
        return parse_document(doc, self.name)
