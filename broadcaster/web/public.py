"""The public outputs of DESIGN A12: ``/public`` (tonight's level for everyone, no sign-in), its
poster, the CAP 1.2 messages and their Atom feed; and the operator's poster of any alert.

``/public`` is the link staff forward to every WeChat group, so a burst of visits must cost little:
each answer is made at most once every ``_FRESH_S`` seconds and served from memory in between,
with ``Cache-Control`` and an ``ETag`` so phones and proxies keep it too. Nothing on these pages
names a person, a number, a token or an endpoint: only the town, the level and the advice.
"""

from __future__ import annotations

import hashlib
import html
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from broadcaster.errors import PermanentError
from broadcaster.flows import publishing
from broadcaster.web.auth import Id, require

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

_FRESH_S = 10.0  # how long an answer is served from memory (a new alert shows within this)
_MAX_AGE = 60    # what browsers and proxies may keep


class _Cached:
    """One answer per key, remade at most every ``_FRESH_S`` seconds (thread-safe)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, bytes, str]] = {}
        self._lock = threading.Lock()

    def fresh(self, key: str) -> tuple[bytes, str] | None:
        """The answer for ``key`` if it is fresh (no I/O: safe on the event loop)."""
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and time.monotonic() - hit[0] < _FRESH_S:
            return hit[1], hit[2]
        return None

    def get(self, key: str, make: Callable[[], bytes]) -> tuple[bytes, str]:
        hit = self.fresh(key)
        if hit is not None:
            return hit
        now = time.monotonic()
        body = make()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            self._items[key] = (now, body, etag)
        return body, etag


def _answer(request: Request, body: bytes, etag: str, media_type: str, max_age: int = _MAX_AGE) -> Response:
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def page_html(v: publishing.PublicView, hotline: str | None = None) -> str:
    """The phone-sized page (inline CSS: one request besides the poster)."""
    e = html.escape
    if v.level is None:
        main = f'<p class="none">今晚暂无一氧化碳中毒气象预警。</p>'
    else:
        main = (f'<div class="level" style="background:{v.colour};color:{v.text_colour}">'
                f'<div class="num">{v.level}级</div><div class="name">{e(v.level_name)}</div></div>'
                f'<p class="valid">有效时间：{e(v.valid)}</p>'
                f'<h2>防范建议</h2><p class="advice">{e(v.advice or "请开窗通风，检查烟道，睡前熄灭炉火。")}</p>'
                f'<img src="/public/poster.png" alt="{e(v.town)}一氧化碳中毒气象预警海报 {v.level}级" width="1080" height="1350">')
    call = f'<p class="hotline">咨询电话：<a href="tel:{e(hotline)}">{e(hotline)}</a></p>' if hotline else ""
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(v.town)}一氧化碳中毒气象预警</title>
<style>
body{{margin:0;font-family:system-ui,"PingFang SC","Noto Sans SC","Microsoft YaHei",sans-serif;color:#212121;background:#fafafa}}
main{{max-width:560px;margin:0 auto;padding:16px}}
h1{{font-size:1.3rem;margin:.2em 0}} h2{{font-size:1.1rem;margin:1em 0 .3em}}
.level{{border-radius:12px;padding:16px;text-align:center}} .num{{font-size:3.5rem;font-weight:700}}
.name{{font-size:1.5rem}} .advice,.valid,.none{{font-size:1.1rem;line-height:1.6}}
img{{width:100%;height:auto;margin-top:12px;border-radius:8px}} footer{{color:#666;font-size:.85rem;margin-top:16px}}
</style></head>
<body><main>
<h1>{e(v.town)} · {e(v.night)}一氧化碳中毒气象预警</h1>
{main}
{call}
<footer>本页面无需登录，可转发到微信群。<a href="/public/cap.atom">CAP 订阅</a></footer>
</main></body></html>
"""


def router(svc: Service) -> APIRouter:
    r = APIRouter()
    cache = _Cached()
    operator = Depends(require("operator"))

    def view() -> publishing.PublicView:
        return publishing.public_view(svc)

    async def cached(key: str, make: Callable[[], bytes]) -> tuple[bytes, str]:
        # A fresh answer is served on the event loop itself (no thread hop: a burst of visits is
        # mostly these); a stale one is remade on a worker thread (it reads the ledger).
        return cache.fresh(key) or await run_in_threadpool(cache.get, key, make)

    @r.get("/public", tags=["public"], include_in_schema=False)
    async def public_page(request: Request) -> Response:
        body, etag = await cached("page", lambda: page_html(view(), svc.cfg.settings.public.hotline).encode("utf-8"))
        return _answer(request, body, etag, "text/html; charset=utf-8")

    @r.get("/public/poster.png", tags=["public"])
    async def public_poster(request: Request) -> Response:
        def make() -> bytes:
            v = view()
            return publishing.render_cached(v.poster) if v.poster is not None else b""
        body, etag = await cached("poster", make)
        if not body:
            raise HTTPException(404, "今晚暂无预警海报 / no warning tonight")
        return _answer(request, body, etag, "image/png")

    @r.get("/public/cap.atom", tags=["public"])
    async def cap_atom(request: Request) -> Response:
        body, etag = await cached("atom", lambda: publishing.cap_feed(svc))
        return _answer(request, body, etag, "application/atom+xml; charset=utf-8")

    @r.get("/public/cap/{alert_id}.xml", tags=["public"])
    def cap_xml(alert_id: Id, request: Request) -> Response:
        alert = svc.ledger.reads.alert(alert_id)
        if alert is None or alert.kind != "auto":
            raise HTTPException(404, f"alert_id: 没有该自动预警 / no automatic alert {alert_id}")
        try:
            body = publishing.cap_message(svc, alert)
        except PermanentError as exc:
            raise HTTPException(404, str(exc)) from exc
        return _answer(request, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                       "application/cap+xml; charset=utf-8", max_age=300)

    @r.get("/api/v1/alerts/{alert_id}/poster.png", tags=["alerts"])
    def alert_poster(alert_id: Id, request: Request, p=operator) -> Response:  # type: ignore[no-untyped-def]
        alert = svc.ledger.reads.alert(alert_id)
        if alert is None:
            raise HTTPException(404, f"alert_id: 没有该预警 / no alert {alert_id}")
        body = publishing.poster_png(svc, alert)
        return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=60"})

    return r
