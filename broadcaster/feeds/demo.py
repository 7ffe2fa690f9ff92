"""``demo``: a fixed level for tonight, for trying the service without a real feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field

from broadcaster.feeds.base import Reading, Source, SourceConfig
from broadcaster.timeutil import Night


class DemoConfig(SourceConfig):
    type: Literal["demo"]
    level: int = Field(ge=1, le=5)
    advice: str = "夜间风小湿度大，易形成逆温（演示数据）"


class DemoSource(Source):
    type = "demo"
    Config = DemoConfig

    def fetch(self, night: Night) -> list[Reading]:
        cfg: DemoConfig = self.config  # type: ignore[assignment]
        issued = min(self.ctx.clock.now(), night.start - timedelta(hours=4))
        return [
            Reading(
                region=self.region,
                valid_from=night.start,
                valid_to=night.end,
                level=cfg.level,
                issued_at=issued,
                source="演示数据",
                advice=cfg.advice,
            )
        ]
