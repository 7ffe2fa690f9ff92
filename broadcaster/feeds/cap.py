"""``cap``: official warnings read as CAP 1.2 (a provincial or national warning feed), DESIGN A12.

``url`` names one CAP message or an Atom/RSS feed of them; entries that only link to their message
are fetched in turn (at most ``max_links``). Only ``info`` blocks whose ``event`` contains
``event_match`` count (default 一氧化碳, the 一氧化碳中毒气象条件 warning), and, when ``areas`` is set,
only those naming one of those areas in an ``areaDesc``. ``level_map`` maps CAP severity to our
level (defaults in :mod:`broadcaster.publish.levels`: Minor 2, Moderate 3, Severe 4, Extreme 5).
A valid feed with no such warning in force is "no official warning", an answer and not an error.
"""

from __future__ import annotations

import urllib.parse
from datetime import timedelta
from typing import Literal

import requests
from pydantic import Field

from broadcaster.errors import FeedError
from broadcaster.feeds.base import Reading, Source, SourceConfig, SourceContext
from broadcaster.net import failure_reason
from broadcaster.publish.cap_read import MAX_BYTES, CapReading, parse_cap
from broadcaster.timeutil import Night


class CapConfig(SourceConfig):
    type: Literal["cap"]
    url: str = Field(pattern=r"^https?://")
    event_match: str = Field(default="一氧化碳", min_length=1)
    areas: list[str] | None = None  # areaDesc values that mean us (default: every area of the feed)
    level_map: dict[str, int] | None = None  # type: ignore[assignment]  # CAP severity -> our level
    headers: dict[str, str] = {}
    timeout_s: float = Field(default=10, gt=0, le=120)
    max_links: int = Field(default=20, ge=0, le=200)


class CapSource(Source):
    type = "cap"
    Config = CapConfig
    empty_means_no_warning = True

    def __init__(self, config: SourceConfig, ctx: SourceContext) -> None:
        cfg: CapConfig = config  # type: ignore[assignment]
        # Our level_map is by severity and applied while reading; the base's (by the source's own
        # integer scale) must not apply it again.
        self.severity_map = cfg.level_map
        super().__init__(cfg.model_copy(update={"level_map": None}), ctx)

    def _get(self, url: str) -> bytes:
        cfg: CapConfig = self.config  # type: ignore[assignment]
        try:
            resp = requests.get(url, headers=cfg.headers, timeout=cfg.timeout_s, stream=True)
            if resp.status_code != 200:
                raise FeedError(self.name, f"HTTP {resp.status_code}")
            data = resp.raw.read(MAX_BYTES + 1, decode_content=True)
        except requests.RequestException as exc:
            raise FeedError(self.name, failure_reason(exc, cfg.timeout_s)) from exc
        return data

    def _read(self, data: bytes) -> list[CapReading]:
        cfg: CapConfig = self.config  # type: ignore[assignment]
        try:
            return parse_cap(data, cfg.event_match, self.severity_map)
        except FeedError as exc:
            raise FeedError(self.name, exc.reason) from exc

    def fetch(self, night: Night) -> list[Reading]:
        cfg: CapConfig = self.config  # type: ignore[assignment]
        first = self._read(self._get(cfg.url))
        readings = list(first)
        for link in getattr(first, "links", [])[: cfg.max_links]:
            readings.extend(self._read(self._get(urllib.parse.urljoin(cfg.url, link))))
        out: list[Reading] = []
        for r in readings:
            if r.level is None or r.msg_type == "Cancel":
                continue
            if cfg.areas is not None and not set(cfg.areas) & set(r.areas):
                continue
            start = r.onset or r.effective
            end = r.expires or (start + timedelta(hours=24))
            out.append(Reading(region=self.region, valid_from=start, valid_to=end, level=r.level,
                               issued_at=r.sent, source=f"{self.name}: {r.sender_name or r.sender}",
                               advice=r.instruction or None))
        # Newest first: an update replaces what it references.
        return sorted(out, key=lambda x: x.issued_at, reverse=True)
