"""``http-json``: the canonical JSON over HTTP(S), or another JSON shape through ``mapping``."""

from __future__ import annotations

from typing import Literal

import requests
from pydantic import Field

from broadcaster.errors import FeedError
from broadcaster.net import BoundExceeded, bounded_get, failure_reason
from broadcaster.feeds.base import HttpLimits, Reading, Source, SourceConfig
from broadcaster.feeds.canonical import apply_mapping, parse_document
from broadcaster.timeutil import Night


class HttpJsonConfig(SourceConfig, HttpLimits):
    type: Literal["http-json"]
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = {}
    timeout_s: float = Field(default=10, gt=0, le=120)
    # canonical field -> dotted path in the source's own JSON (see feeds/canonical.py)
    mapping: dict[str, str] | None = None


class HttpJsonSource(Source):
    type = "http-json"
    Config = HttpJsonConfig

    def fetch(self, night: Night) -> list[Reading]:
        cfg: HttpJsonConfig = self.config  # type: ignore[assignment]
        try:
            resp = bounded_get(cfg.url, headers=cfg.headers, timeout_s=cfg.timeout_s, deadline_s=cfg.deadline_s,
                               max_bytes=cfg.max_bytes)
        except BoundExceeded as exc:
            raise FeedError(self.name, str(exc)) from exc
        except requests.RequestException as exc:
            raise FeedError(self.name, failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code != 200:
            raise FeedError(self.name, f"HTTP {resp.status_code}")
        try:
            doc = resp.json()
        except ValueError:
            raise FeedError(self.name, "malformed JSON") from None
        if cfg.mapping:
            try:
                doc = apply_mapping(doc, cfg.mapping)
            except FeedError as exc:
                raise FeedError(self.name, exc.reason) from exc
        return parse_document(doc, self.name)
