"""Request bodies are bounded before they are parsed, and API callers are known before they send one.

FastAPI reads and parses a body (a JSON document into memory, an upload onto disk) before any
dependency runs, so a 40 MB upload without a token used to be written to disk before its 401, and
a 21 MB JSON body took 150 MB of memory. :class:`BodyLimit`, an ASGI middleware in front of every
route, refuses with 413 a body whose ``Content-Length`` is over the limit and cuts off one that
grows past it while streaming (chunked); and on ``/api/`` it answers 401 to a body-carrying request
without a valid bearer token before the first byte of the body is read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster.flows.manual import MAX_UPLOAD_BYTES
from broadcaster.web.auth import _bearer, current_principal, resolve_token

#: Routes that take a recording (multipart): the recording plus room for the other fields.
UPLOAD_PATHS = frozenset({"/api/v1/broadcasts/upload", "/compose", "/console/preview"})
UPLOAD_LIMIT = MAX_UPLOAD_BYTES + 1024 * 1024
#: Every other body: JSON, forms, receipts.
BODY_LIMIT = 64 * 1024
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class _TooLarge(Exception):
    pass


def limit_for(path: str) -> int:
    """The largest body accepted on ``path``."""
    return UPLOAD_LIMIT if path in UPLOAD_PATHS else BODY_LIMIT


def _uses_bearer(dependant: Any) -> bool:
    return any(d.call is current_principal or _uses_bearer(d) for d in dependant.dependencies)


def _leaves(routes: list[Any]) -> Iterator[Any]:
    """Every endpoint route, through included routers (FastAPI keeps them nested)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _leaves(inner.routes)
        elif getattr(r, "dependant", None) is not None:
            yield r


def _needs_bearer(scope: Scope, table: list[tuple[Any, bool]]) -> bool:
    """True when the route ``scope`` goes to authenticates by bearer token (receipts, signed by
    their provider, and the console's forms do not). ``table`` caches the app's routes."""
    if not table:
        table.extend((r, _uses_bearer(r.dependant)) for r in _leaves(scope["app"].router.routes))
    for route, bearer in table:
        if route.matches(scope)[0] == Match.FULL:
            return bearer
    return False


class BodyLimit:
    """ASGI middleware: bounded bodies, and bearer tokens checked before an API body is read."""

    def __init__(self, app: ASGIApp, svc: Any, audit: Any) -> None:
        self.app, self.svc, self.audit = app, svc, audit
        self._routes: list[tuple[Any, bool]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send)
            return
        path, limit = scope["path"], limit_for(scope["path"])
        headers = dict(scope["headers"])
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if declared > limit:
            await _too_large(send, limit)
            return
        if _needs_bearer(scope, self._routes):
            request = Request(scope)
            token = _bearer(request)
            if await run_in_threadpool(resolve_token, self.svc, token) is None:
                await run_in_threadpool(self.audit.failed, request, 401)
                await _send(send, 401, {"detail": "缺少或无效的访问令牌 / missing or invalid bearer token"},
                            [(b"www-authenticate", b"Bearer")])
                return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    over = True
                    raise _TooLarge
            return msg

        async def watch(msg: Message) -> None:
            nonlocal started
            if over:  # whatever the app made of the cut-off body (FastAPI: a 400), the answer is 413
                if msg["type"] == "http.response.start" and not started:
                    started = True
                    await _too_large(send, limit)
                return
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, watch)
        except _TooLarge:
            if not started:
                await _too_large(send, limit)


async def _too_large(send: Send, limit: int) -> None:
    await _send(send, 413, {"detail": f"请求内容过大（最多 {limit // 1024} KB） / request body over {limit} bytes"})


async def _send(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    data = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            (b"connection", b"close"), *extra]})
    await send({"type": "http.response.body", "body": data})
