"""The dispatcher's rate limit and worker pools (no ledger, no channels: plain threading)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

J = TypeVar("J")


class TokenBucket:
    """``rate`` tokens per second, bursts up to ``burst``; ``acquire`` waits for one."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.capacity = burst or max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, stop: threading.Event) -> bool:
        """Take one token, waiting for it; False when ``stop`` is set first."""
        while True:
            with self._lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return True
                wait = (1 - self.tokens) / self.rate
            if stop.wait(wait):
                return False


class WorkerPool(Generic[J]):
    """The worker threads of one channel, taking claimed jobs from a queue.

    Lighter than a ThreadPoolExecutor (no Future, lock and callback per job; that was a quarter
    of the dispatcher thread's CPU in a fan-out). Threads start on demand up to ``size``.
    """

    def __init__(self, size: int, name: str, work: Callable[[J], None]) -> None:
        self.size, self.name, self._work = size, name, work
        self._jobs: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, job: J) -> None:
        """Queue a job; start another thread while fewer than ``size`` run."""
        self._jobs.put(job)
        if len(self._threads) < self.size:
            with self._lock:
                if len(self._threads) < self.size:
                    t = threading.Thread(target=self._run, name=f"{self.name}_{len(self._threads)}", daemon=True)
                    self._threads.append(t)
                    t.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._work(job)

    def shutdown(self) -> None:
        """Each thread ends after the jobs queued before this call."""
        with self._lock:
            for _ in self._threads:
                self._jobs.put(None)
            self._threads = []
