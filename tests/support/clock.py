"""A wall clock the tests control, shared by the test process and every process it starts.

``broadcaster`` asks ``datetime.now()``/``time.time()`` for the time in many places it does not
own (APScheduler's triggers, uvicorn, the built-in agent's thread), so an injected ``Clock``
alone cannot move a whole ``broadcaster run``. Here the time is moved with time-machine, which
patches the interpreter's wall-clock functions for every thread (not ``time.monotonic``, so
waits and timeouts stay real), and it reaches subprocesses through the environment:

* ``BROADCASTER_FAKE_TIME = "<fake ISO time>@<real epoch seconds>"`` says "at that real moment
  it was that fake time"; every process computes its own fake now from the real elapsed time,
  so the test, ``broadcaster run``, its built-in agent and ``broadcaster agent`` processes (and
  the player commands they start) agree to the millisecond and the clock keeps ticking.
* ``tests/support/faketime`` on ``PYTHONPATH`` holds a ``sitecustomize`` that installs it at the
  start of any Python process that inherits the variable.

``BROADCASTER_TEST_AT=HH:MM`` (or a full ISO time) runs the whole pytest session at that hour of
the town's day (``.ci/run`` uses it); a test that needs a particular moment asks for it with
``env_at`` (subprocesses) or the ``at_time`` fixture (in-process).
"""

from __future__ import annotations

import os
import time as _time
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import time_machine

FAKE_ENV = "BROADCASTER_FAKE_TIME"
HOUR_ENV = "BROADCASTER_TEST_AT"
TOWN_TZ = ZoneInfo("Asia/Shanghai")
_SITE = str(Path(__file__).resolve().parent / "faketime")


def real_time() -> float:
    """The machine's real epoch seconds, even while time is being faked."""
    eh = time_machine.escape_hatch
    return eh.time.time() if eh.is_travelling() else _time.time()


def real_now() -> datetime:
    """The machine's real time (aware), even while time is being faked."""
    return datetime.fromtimestamp(real_time(), TOWN_TZ)


def town_time(spec: str, day: datetime | None = None) -> datetime:
    """``"19:29"`` -> today's (town date) 19:29 in the town's zone; a full ISO time as given."""
    if "T" in spec or " " in spec.strip():
        when = datetime.fromisoformat(spec)
        return when if when.tzinfo else when.replace(tzinfo=TOWN_TZ)
    hh, mm = (int(x) for x in spec.split(":")[:2])
    base = (day or real_now()).astimezone(TOWN_TZ).date()
    return datetime.combine(base, time(hh, mm), TOWN_TZ)


def today_at(hh: int, mm: int, ss: int = 0) -> datetime:
    """The town's current date (as the test sees it) at ``hh:mm:ss``."""
    now = datetime.now(TOWN_TZ)
    return datetime.combine(now.date(), time(hh, mm, ss), TOWN_TZ)


def env_at(when: datetime) -> dict[str, str]:
    """Environment entries that start a subprocess's clock at ``when`` (ticking from now)."""
    if when.tzinfo is None:
        raise ValueError("env_at needs an aware datetime")
    return {FAKE_ENV: f"{when.isoformat()}@{real_time():.6f}",
            "PYTHONPATH": os.pathsep.join(p for p in (_SITE, os.environ.get("PYTHONPATH", "")) if p)}


def fake_now_from(value: str) -> datetime:
    """The fake time now for a ``BROADCASTER_FAKE_TIME`` value."""
    fake, _, real = value.partition("@")
    start = datetime.fromisoformat(fake)
    elapsed = real_time() - float(real) if real else 0.0
    return start + timedelta(seconds=elapsed)


def travel(when: datetime) -> time_machine.travel:
    """Start a ticking travel to ``when`` in this process; returns it (``.stop()`` ends it)."""
    t = time_machine.travel(when, tick=True)
    t.start()
    return t
