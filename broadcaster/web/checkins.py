"""Check-ins (包户核实, DESIGN A13): the cadres' page, the board in the API and the console.

Cadre's page (no sign-in, the code is the key)::

    GET  /c/{code}        the cadre's households with tap-to-call numbers and the three answers
    POST /c/{code}        form fields ``household`` and ``answer`` -> 303 back to the page

An unknown code is 404, a code of a night that is over 410. A client that tries more than
``BAD_CODES_PER_WINDOW`` unknown codes in ``WINDOW_S`` seconds gets 429 until the window passes:
the codes are 128 random bits, and this keeps anyone from even trying. Pages are ``no-store``,
``noindex`` and send no referrer, so a household's address and number stay on the cadre's phone.

API (operator): ``GET /api/v1/checkins?night=YYYY-MM-DD`` (default: the current duty day's night).
Console: ``/checkins`` (tonight's board by village), ``/households`` (households by village and the
roster by date). A changed workbook is picked up without a restart: the service looks at the files'
modification stamps at most once every ``Service.WORKBOOK_CHECK_S`` seconds when it next needs the
households or the roster (a poll, the check-in jobs, these pages), and admins can read it at once
with the button on ``/households``.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth.accounts import SessionInfo
from broadcaster.errors import InputError, NotFound
from broadcaster.flows.checkins import CheckinPage, Expired, board, current_night
from broadcaster.web.auth import Principal, require
from broadcaster.web.console import templates
from broadcaster.web.console_kit import ConsoleKit

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

BAD_CODES_PER_WINDOW = 20
WINDOW_S = 600.0
_PRIVATE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
            "X-Frame-Options": "DENY"}


class BadCodeLimiter:
    """Unknown codes per client in a sliding window (in memory, per node)."""

    def __init__(self, limit: int = BAD_CODES_PER_WINDOW, window_s: float = WINDOW_S) -> None:
        self.limit, self.window_s = limit, window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, q: deque[float], now: float) -> None:
        while q and q[0] <= now - self.window_s:
            q.popleft()

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._seen.get(client)
            if q is None:
                return False
            self._trim(q, now)
            return len(q) >= self.limit

    def miss(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            q = self._seen[client]
            self._trim(q, now)
            q.append(now)


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def router(svc: Service) -> APIRouter:
    """Check-in routes bound to ``svc``."""
    r = APIRouter()
    page = CheckinPage(svc)
    limiter = BadCodeLimiter()
    kit = ConsoleKit(svc)

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("town", svc.cfg.settings.town)
        resp = templates.TemplateResponse(request, name, ctx, status_code=status)
        resp.headers.update(_PRIVATE)
        return resp

    def refused(request: Request, exc: NotFound) -> HTMLResponse:
        if isinstance(exc, Expired):
            return render(request, "checkin_gone.html", 410, reason="这个核实链接已过期（只在当晚有效）。")
        limiter.miss(_client(request))
        return render(request, "checkin_gone.html", 404, reason="没有这个核实链接，请核对短信中的地址。")

    def guard(request: Request) -> None:
        if limiter.blocked(_client(request)):
            raise HTTPException(429, "尝试次数过多，请稍后再试 / too many attempts", headers={"Retry-After": "600"})

    # async: the page is a cached code lookup, one indexed read and a template, well under a
    # millisecond; run in the event loop it skips the thread hand-off that dominated when 300
    # cadres opened their links at once (bench/checkin_pages.py).
    @r.get("/c/{code}", include_in_schema=False)
    async def checkin_page(code: str, request: Request) -> Response:
        guard(request)
        try:
            view = page.view(code)
        except NotFound as exc:
            return refused(request, exc)
        done = request.query_params.get("ok", "")
        return render(request, "checkin.html", v=view, done=done[:40], error="")

    @r.post("/c/{code}", include_in_schema=False)
    async def checkin_post(code: str, request: Request) -> Response:
        guard(request)
        form = await request.form()
        try:
            head = page.answer(code, str(form.get("household", "")), str(form.get("answer", "")), _client(request))
        except NotFound as exc:
            return refused(request, exc)
        except InputError as exc:
            view = page.view(code)
            return render(request, "checkin.html", 422, v=view, done="", error=exc.message.split(" / ")[0],
                          field=exc.field)
        return RedirectResponse(f"/c/{code}?ok={quote(head)}", status_code=303, headers=_PRIVATE)

    @r.get("/api/v1/checkins", tags=["api"])
    def checkins_api(night: str | None = Query(default=None, description="YYYY-MM-DD; default tonight"),
                     p: Principal = Depends(require("operator"))) -> dict[str, Any]:
        """The check-in board of a night: every household with its latest answer (null while open)."""
        return board(svc, _night(night))

    def _night(raw: str | None) -> date:
        if not raw:
            return current_night(svc).date
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise HTTPException(422, {"field": "night", "message": "日期格式应为 YYYY-MM-DD / expected YYYY-MM-DD"}) from None

    # ------------------------------------------------------------------ console

    @r.get("/checkins", include_in_schema=False)
    def board_page(request: Request, night: str | None = None,
                   me: SessionInfo = Depends(kit.user)) -> HTMLResponse:
        d = _night(night)
        b = board(svc, d)
        names = {v.id: v.name for v in svc.cfg.directory.villages}
        by_village: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for h in b["households"]:
            by_village[names.get(h["village"], h["village"])].append(h)
        open_n = sum(1 for h in b["households"] if h["answer"] in (None, "联系不上"))
        return kit.page(request, "checkins.html", me, night=d, issued=b["issued"], by_village=by_village,
                        open_n=open_n, total=len(b["households"]), prev=d - timedelta(days=1),
                        next=d + timedelta(days=1), c=svc.cfg.settings.checkins)

    @r.get("/households", include_in_schema=False)
    def households_page(request: Request, me: SessionInfo = Depends(kit.user)) -> HTMLResponse:
        book = svc.cfg.book
        names = {v.id: v.name for v in svc.cfg.directory.villages}
        by_village: dict[str, list[Any]] = defaultdict(list)
        for h in book.households:
            by_village[names.get(h.village_id, h.village_id)].append(h)
        today = current_night(svc).date
        return kit.page(request, "households.html", me, by_village=by_village, roster=book.roster,
                        today=today, files=book.files, read_at=book.read_at,
                        problems=getattr(svc, "workbook_problems", []))

    @r.post("/households/reload", include_in_schema=False)
    async def reload_post(request: Request, me: SessionInfo = Depends(kit.user)) -> Response:
        await kit.form(request, me)
        if me.role != "admin":
            raise HTTPException(403, "只有管理员可以重新读取工作簿 / admins only")
        taken, problems = svc.reload_workbooks(force=True, actor=me.user)
        errors = [str(p) for p in problems if not p.warning]
        msg = "工作簿已重新读取" if taken else (f"工作簿有 {len(errors)} 处错误，仍使用上一版" if errors else "工作簿没有变化")
        return kit.back("/households", msg)

    return r
