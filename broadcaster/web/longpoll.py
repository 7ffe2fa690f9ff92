"""Wakes agents' long polls when, and only when, their speaker's commands change (DESIGN A8).

An agent's ``GET /api/agent/v1/commands`` carries the ``ETag`` of the answer it already has
(``If-None-Match``). While the answer would be the same, the request waits: it is answered early
only when something changed for that speaker (a play added, withdrawn, reported or expired),
otherwise after its ``wait``. So an idle village PC makes one request per ``wait`` and the server
does no work per waiting agent.

Changes are noticed by one query for all agents every ``interval`` seconds (only while some agent
waits): a fingerprint per speaker of its open and withdrawn plays. That also sees changes made by
other processes on the same ledger (the CLI's ``broadcast``, a second node), which an in-process
signal would miss. :meth:`CommandWatch.poke` makes the next check immediate for in-process writes.
Where the ledger can say cheaply whether anything was committed since (``version``: SQLite), the
query is made only when something was, so an idle service does no query at all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from fastapi.concurrency import run_in_threadpool

log = logging.getLogger(__name__)

Fingerprints = Callable[[], dict[str, tuple[Any, ...]]]
Version = Callable[[], "int | None"]


class CommandWatch:
    """Per speaker, a version number that moves when its commands may have changed."""

    def __init__(self, fingerprints: Fingerprints, interval: float = 1.0,
                 version: Version = lambda: None) -> None:
        self._fingerprints = fingerprints
        self._ledger_version = version
        self._seen: int | None = None  # the ledger's version at the last query
        self._interval = interval
        self._prints: dict[str, tuple[Any, ...]] = {}
        self._versions: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: asyncio.Event | None = None
        self.closed = False

    def version(self, speaker_id: str) -> int:
        return self._versions.get(speaker_id, 0)

    async def wait(self, speaker_id: str, seen: int, timeout: float) -> None:
        """Return when ``speaker_id``'s version is no longer ``seen``, at ``timeout``, or on close."""
        if self.closed or self.version(speaker_id) != seen or timeout <= 0:
            return
        self._ensure_running()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(speaker_id, set())
        waiters.add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            waiters.discard(fut)
            if not waiters:
                self._waiters.pop(speaker_id, None)

    def poke(self) -> None:
        """Check now instead of at the next interval (thread-safe)."""
        if self._loop is not None and self._kick is not None:
            self._loop.call_soon_threadsafe(self._kick.set)

    def close(self) -> None:
        """Answer every waiting poll now (shutdown); thread-safe."""
        self.closed = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    # ------------------------------------------------------------------ internals

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._kick = asyncio.Event()
            self._task = self._loop.create_task(self._run(), name="agent-command-watch")

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def _run(self) -> None:
        assert self._kick is not None
        while not self.closed:
            if self._waiters:
                # Read before the query: a commit in between shows as a change at the next look.
                version = self._ledger_version()
                if version is None or version != self._seen:
                    try:
                        prints = await run_in_threadpool(self._fingerprints)
                        self._seen = version
                    except Exception:  # noqa: BLE001 - a ledger hiccup must not end long polls for good
                        log.exception("checking agents' commands failed; trying again")
                        prints = self._prints
                    self._apply(prints)
            try:
                await asyncio.wait_for(self._kick.wait(), self._interval)
            except TimeoutError:
                pass
            self._kick.clear()

    def _apply(self, prints: dict[str, tuple[Any, ...]]) -> None:
        for sid in set(prints) | set(self._prints):
            if prints.get(sid) != self._prints.get(sid):
                self._versions[sid] = self._versions.get(sid, 0) + 1
                for fut in self._waiters.get(sid, ()):
                    if not fut.done():
                        fut.set_result(None)
        self._prints = prints
