"""Fault plans for the loopback doubles: random or scripted misbehaviour per request.

A double asks its plan once per request (``FaultPlan.decide``) and gets a ``Fault`` back,
or ``None`` for "behave normally". Random faults come from one seeded RNG behind a lock,
so a seeded plan gives the same *sequence* of decisions for the same arrival order.
Scripts give exact control: ``FaultPlan(script=[500, 500, 201])`` answers the first two
requests with 500 and the third normally, then falls back to the probabilities.

Script items:

* ``None``, ``"ok"`` or any 2xx int: no fault, handle the request normally.
* any other int (``429``, ``500``, ``503``, ``400``...): answer that status without
  processing the request; 429 carries ``Retry-After: retry_after_s``.
* ``"reset"``: close the socket (TCP RST) without reading further or answering; the
  request is **not** processed.
* ``"reset_after"``: process the request (e.g. the SMS is created), then reset instead
  of answering: the lost-response case.
* ``"timeout"``: process the request, then wait ``timeout_s`` before answering; a client
  with a shorter timeout gives up although the work was done.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

FaultKind = Literal["status", "reset", "reset_after", "timeout"]
ScriptItem = int | str | None

_NAMED_KINDS = {"reset", "reset_after", "timeout"}


@dataclass(frozen=True)
class Fault:
    """What a double must do instead of (or on top of) answering normally.

    ``kind == "status"`` means: answer ``status`` without processing; for 429 the double adds
    ``Retry-After`` with ``retry_after_s``. The other kinds are described in the module doc.
    """

    kind: FaultKind
    status: int | None = None
    retry_after_s: float | None = None

    @property
    def label(self) -> str:
        """Short name for records: ``"429"``, ``"500"``, ``"reset"``, ``"timeout"``..."""
        return str(self.status) if self.kind == "status" else self.kind


@dataclass
class FaultPlan:
    """Random and scripted faults for a loopback double.

    Probabilities are independent slices of one draw in the order
    reset, reset_after, timeout, 429, 500; their sum must not exceed 1.
    ``latency_ms`` applies to every answer (faulty or not) and is not a fault.
    ``scripts`` holds per-key scripts (key = the double's notion of a subject, e.g. the
    SMS ``To`` number, the speaker's ``Idempotency-Key``, the feed path); a keyed script is
    consumed before the global ``script``.
    """

    latency_ms: float = 0
    p429: float = 0
    retry_after_s: float = 1
    p500: float = 0
    p_reset: float = 0
    p_reset_after: float = 0
    p_timeout: float = 0
    timeout_s: float = 30
    seed: int | None = None
    script: list[ScriptItem] = field(default_factory=list)
    scripts: dict[str, list[ScriptItem]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = self.p429 + self.p500 + self.p_reset + self.p_reset_after + self.p_timeout
        if total > 1 + 1e-9:
            raise ValueError(f"fault probabilities add up to {total:.3f} > 1")
        for item in [*self.script, *(i for s in self.scripts.values() for i in s)]:
            _parse_item(item, self.retry_after_s)  # fail at construction, not mid-test
        self._lock = threading.Lock()
        self._rng = random.Random(self.seed)
        self._script: deque[ScriptItem] = deque(self.script)
        self._keyed: dict[str, deque[ScriptItem]] = {k: deque(v) for k, v in self.scripts.items()}

    @property
    def latency_s(self) -> float:
        """Latency in seconds, for ``Event.wait``."""
        return self.latency_ms / 1000.0

    def decide(self, key: str | None = None) -> Fault | None:
        """Return the fault for the next request (``None`` = answer normally); thread-safe."""
        with self._lock:
            keyed = self._keyed.get(key) if key is not None else None
            if keyed:
                return _parse_item(keyed.popleft(), self.retry_after_s)
            if self._script:
                return _parse_item(self._script.popleft(), self.retry_after_s)
            draw = self._rng.random()
        for kind_p, fault in (
            (self.p_reset, Fault("reset")),
            (self.p_reset_after, Fault("reset_after")),
            (self.p_timeout, Fault("timeout")),
            (self.p429, Fault("status", 429, self.retry_after_s)),
            (self.p500, Fault("status", 500)),
        ):
            if draw < kind_p:
                return fault
            draw -= kind_p
        return None

    def add(self, *items: ScriptItem, key: str | None = None) -> None:
        """Append to the live script (the global one, or ``key``'s): for a test mid-way."""
        for item in items:
            _parse_item(item, self.retry_after_s)
        with self._lock:
            target = self._script if key is None else self._keyed.setdefault(key, deque())
            target.extend(items)

    def remaining_script(self) -> int:
        """How many global script items have not been consumed yet."""
        with self._lock:
            return len(self._script)


def _parse_item(item: ScriptItem, retry_after_s: float) -> Fault | None:
    """Turn one script item into a ``Fault`` (or ``None`` for a normal answer)."""
    if item is None or item == "ok":
        return None
    if isinstance(item, str):
        if item in _NAMED_KINDS:
            return Fault(item)  # type: ignore[arg-type]
        if item.isdigit():
            item = int(item)
        else:
            raise ValueError(f"unknown fault script item {item!r}")
    if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
        raise ValueError(f"bad fault script item {item!r}")
    if 200 <= item < 300:
        return None
    return Fault("status", item, retry_after_s if item == 429 else None)


def retry_after_header(seconds: float) -> str:
    """Format a ``Retry-After`` value.

    HTTP wants whole seconds; a fractional plan value (for fast tests) is sent as e.g.
    ``"0.2"``, so clients should parse the header with ``float()``.
    """
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
