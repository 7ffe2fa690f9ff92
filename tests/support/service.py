"""Services for in-process tests: one way to build them, all closed when the test ends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import Clock, FakeClock

MakeService = Callable[..., Service]


class ServiceFactory:
    """``make_service(at=..., clock=..., config=...)``: a :class:`Service` on the test's copy of
    the configuration, its clock a FakeClock at ``at`` (or ``clock``, or the wall clock)."""

    def __init__(self, confdir: Path) -> None:
        self.confdir = confdir
        self.made: list[Service] = []

    def __call__(self, at: datetime | None = None, *, clock: Clock | None = None,
                 config: Path | None = None) -> Service:
        if clock is None:
            clock = FakeClock(at) if at is not None else Clock()
        svc = Service(load_config(config or self.confdir / "broadcaster.yaml"), clock=clock)
        self.made.append(svc)
        return svc

    def close(self) -> None:
        for svc in self.made:
            svc.close()
        self.made.clear()
