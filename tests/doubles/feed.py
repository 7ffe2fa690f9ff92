"""Loopback double for HTTP feeds: canonical JSON (DESIGN.md A5), QWeather, Open-Meteo...

Configure documents per path with ``set``; every request is recorded (method, path, query,
headers including ``Accept-Encoding``, body) with what was answered. Bodies can be served
gzip-compressed with ``Content-Encoding: gzip``, either always (``gzip=True``, as QWeather's
API does) or only when the client sends ``Accept-Encoding: gzip`` (``gzip="auto"``).
A ``FaultPlan`` applies to every request; its per-key ``scripts`` are keyed by path.
"""

from __future__ import annotations

import gzip as gzip_mod
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Literal

from .faults import FaultPlan
from .server import LoopbackDouble, Request, Response

_JSON = "application/json; charset=utf-8"
_BINARY = "application/octet-stream"

Body = bytes | str | dict | list
BodyOrFactory = Body | Callable[[Request], Body]


@dataclass
class FeedDocument:
    """What one path serves."""

    body: BodyOrFactory
    status: int = 200
    headers: dict[str, str] | None = None
    delay_s: float = 0
    gzip: bool | Literal["auto"] = False
    content_type: str | None = None


@dataclass
class FeedRequest:
    """One request as the feed server saw and answered it (``status`` None = reset).

    ``headers`` keys are lower-case; ``gzipped`` tells whether the answer was compressed.
    """

    arrived: float
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: str | None = None
    gzipped: bool = False
    answered: float | None = None

    @property
    def accepts_gzip(self) -> bool:
        """Whether the client offered ``Accept-Encoding: gzip``."""
        return "gzip" in self.headers.get("accept-encoding", "").lower()


class FeedServer(LoopbackDouble):
    """Serves configured documents on 127.0.0.1; unknown paths get 404 JSON.

    A path given to ``set`` with a query string (``/v7/warning/now?location=101010100``)
    matches only that exact target; without one it matches the path with any query.
    """

    def __init__(self, faults: FaultPlan | None = None, *, port: int = 0) -> None:
        super().__init__(faults, port=port)
        self._docs: dict[str, FeedDocument] = {}
        self._requests: list[FeedRequest] = []

    def set(
        self,
        path: str,
        body: BodyOrFactory,
        status: int = 200,
        headers: dict[str, str] | None = None,
        delay_s: float = 0,
        *,
        gzip: bool | Literal["auto"] = False,
        content_type: str | None = None,
    ) -> None:
        """Serve ``body`` at ``path``.

        ``body``: bytes as is; str UTF-8 encoded; dict/list as JSON (UTF-8, non-ASCII kept);
        or a callable ``(Request) -> body`` evaluated per request (on the server's event loop,
        so it must not block; use ``delay_s`` for slowness). ``content_type`` defaults
        to ``application/json; charset=utf-8`` for dict/list and for text that parses as
        JSON, else ``text/plain; charset=utf-8`` (str) or ``application/octet-stream``.
        ``delay_s`` delays this path's answers on top of the plan's latency.
        """
        with self._lock:
            self._docs[path] = FeedDocument(body, status, headers, delay_s, gzip, content_type)

    def remove(self, path: str) -> None:
        """Stop serving ``path`` (it answers 404 again)."""
        with self._lock:
            self._docs.pop(path, None)

    def url_for(self, path: str) -> str:
        """Absolute URL of ``path`` on this server."""
        return self.url + path

    # -- records ---------------------------------------------------------------------
    @property
    def requests(self) -> list[FeedRequest]:
        """Every request so far, in arrival order (a copy)."""
        with self._lock:
            return sorted(self._requests, key=lambda r: r.arrived)

    def hits(self, path: str) -> int:
        """Number of requests for ``path`` (query ignored)."""
        return sum(1 for r in self.requests if r.path == path)

    def hits_by_path(self) -> Counter[str]:
        """Number of requests per path."""
        return Counter(r.path for r in self.requests)

    def clear(self) -> None:
        """Forget recorded requests (documents stay)."""
        with self._lock:
            self._requests.clear()

    # -- hooks -----------------------------------------------------------------------
    def fault_key(self, req: Request) -> str | None:
        return req.path

    def on_answer(self, req: Request, resp: Response | None, fault: str | None) -> None:
        rec = FeedRequest(
            arrived=req.arrived, method=req.method, path=req.path, query=req.query,
            headers=dict(req.headers), body=req.body, fault=fault, answered=time.monotonic(),
            status=resp.status if resp is not None else None,
            gzipped=resp is not None and resp.headers.get("Content-Encoding") == "gzip",
        )
        with self._lock:
            self._requests.append(rec)

    def handle(self, req: Request) -> Response:
        with self._lock:
            doc = self._docs.get(req.target) or self._docs.get(req.path)
        if doc is None:
            return Response.json(404, {"error": f"no document at {req.path}"})
        raw = doc.body(req) if callable(doc.body) else doc.body
        body, ctype = _encode(raw)
        headers = {"Content-Type": doc.content_type or ctype, **(doc.headers or {})}
        accepts = "gzip" in (req.header("accept-encoding") or "").lower()
        if doc.gzip is True or (doc.gzip == "auto" and accepts):
            body = gzip_mod.compress(body, mtime=0)
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        return Response(doc.status, body, headers, delay_s=doc.delay_s)


def _encode(raw: Body) -> tuple[bytes, str]:
    """Bytes and default Content-Type for a configured body."""
    if isinstance(raw, (dict, list)):
        return json.dumps(raw, ensure_ascii=False).encode("utf-8"), _JSON
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    try:
        json.loads(data)
        return data, _JSON
    except ValueError:
        return data, "text/plain; charset=utf-8" if isinstance(raw, str) else _BINARY
