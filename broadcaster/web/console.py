"""The culture station's web console (Jinja2, Simplified Chinese).

Pages: sign-in, dashboard (``/``), compose, approvals, history with drill-down, villages, audit
(admins). Every page needs a console session (:mod:`broadcaster.auth.accounts`); every form carries the
session's CSRF token, and sign-in a double-submit token. Writes go through the same service layer
as the API and the CLI (:class:`broadcaster.flows.manual.Broadcasts`), so the rules, the approval
and the audit are the same whichever door a broadcast comes in by.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import io
import logging
import math
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from broadcaster.auth.accounts import Accounts, SessionInfo, at_least
from broadcaster.flows.manual import MAX_TEXT, MAX_UPLOAD_BYTES, BroadcastRequest, Broadcasts
from broadcaster.errors import Conflict, Forbidden, InputError, NotFound, TooBusy
from broadcaster.messages import sms_segments
from broadcaster.flows import flags, publishing
from broadcaster.flows.status import status
from broadcaster.web import views
from broadcaster.web.audit_view import audit_rows
from broadcaster.web.auth import Id
from broadcaster.web.guard import SignInGuard

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

COOKIE, LOGIN_COOKIE = "bc_session", "bc_login"
ROLE_ZH = {"operator": "操作员", "approver": "审批人", "admin": "管理员"}
FIELD_ZH = {"text": "广播内容", "villages": "村", "sms_groups": "短信分组", "sms_scope": "短信范围", "at": "发送时间", "repeat": "重复次数",
            "audio": "录音文件"}

CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals.update(STATE_ZH=views.STATE_ZH, STATUS_ZH=views.STATUS_ZH, KIND_ZH=views.KIND_ZH,
                             ROLE_ZH=ROLE_ZH, LEVEL_COLOURS=views.LEVEL_COLOURS, MAX_TEXT=MAX_TEXT,
                             CHAT_TYPE_ZH={"wecom": "企业微信", "dingtalk": "钉钉", "feishu": "飞书"})
templates.env.filters["t"] = lambda d, f="%m-%d %H:%M": d.strftime(f) if d else "—"


class _SignIn(Exception):
    """Raised by the session dependency: the browser goes to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def router(svc: Service) -> APIRouter:
    """The console's pages, bound to ``svc``."""
    r = APIRouter(include_in_schema=False)
    accounts = Accounts(svc.ledger, timedelta(minutes=svc.cfg.settings.http.session_minutes))
    guard = SignInGuard(svc)
    bc = Broadcasts(svc)
    secure = svc.cfg.settings.http.public_url.startswith("https://")
    tz = svc.cfg.tz

    def user(request: Request) -> SessionInfo:
        info = accounts.session(request.cookies.get(COOKIE, ""), svc.now())
        if info is None:
            raise _SignIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return info

    def page(request: Request, name: str, me: SessionInfo | None, status_code: int = 200,
             **ctx: Any) -> HTMLResponse:
        ctx.update(me=me, town=svc.cfg.settings.town, msg=request.query_params.get("msg", ""),
                   approvals=len(views.pending_broadcasts(svc)) if me else 0)
        resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        harden(resp, secure)
        return resp

    async def form(request: Request, me: SessionInfo) -> FormData:
        data = await request.form(max_part_size=MAX_UPLOAD_BYTES + 1024)
        if not hmac.compare_digest(str(data.get("csrf", "")), me.csrf):
            raise HTTPException(403, "表单已过期，请刷新页面后重试 / CSRF token missing or wrong")
        return data

    def back(url: str, msg: str) -> RedirectResponse:
        return RedirectResponse(f"{url}?msg={quote(msg)}", status_code=303)

    # ------------------------------------------------------------------ sign-in

    @r.get("/login")
    def login_form(request: Request, next: str = "/") -> HTMLResponse:
        token = secrets.token_urlsafe(24)
        resp = page(request, "login.html", None, next=_local(next), login_csrf=token,
                    no_users=not accounts.has_users(), error="")
        resp.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="strict", secure=secure, max_age=3600)
        return resp

    @r.post("/login")
    async def login(request: Request) -> Response:
        data = await request.form()
        name, nxt = str(data.get("name", "")), _local(str(data.get("next", "/")))
        if not hmac.compare_digest(str(data.get("csrf", "")), request.cookies.get(LOGIN_COOKIE, "") or "-"):
            return page(request, "login.html", None, 403, next=nxt, login_csrf=request.cookies.get(LOGIN_COOKIE, ""),
                        no_users=False, error="页面已过期，请重新登录 / the sign-in page expired")
        client = request.client.host if request.client else "?"
        wait = guard.refuse_for(client)
        if wait > 0:
            # A fixed small page, no template: a flood of refusals must cost the event loop nothing.
            secs = math.ceil(wait)
            return HTMLResponse(f'<!doctype html><meta charset="utf-8"><title>请稍后再试</title>'
                                f"<p>失败次数过多，请 {secs} 秒后再试 / too many failed sign-ins; try again in {secs} s</p>"
                                f'<p><a href="/login">返回登录</a></p>', status_code=429,
                                headers={"Retry-After": str(secs), "Cache-Control": "no-store"})
        # A name under attack is slowed, never locked: the wait is asynchronous and short.
        delay = guard.slow_for(name)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            # scrypt and the ledger off the event loop: a flood of sign-ins must not stall /healthz.
            token, info = await run_in_threadpool(accounts.sign_in, name, str(data.get("password", "")), svc.now())
        except Forbidden as exc:
            await run_in_threadpool(guard.failed, client, name)
            log.warning("console sign-in failed from %s", client)
            return page(request, "login.html", None, 401, next=nxt, login_csrf=request.cookies.get(LOGIN_COOKIE, ""),
                        no_users=False, error=str(exc))
        guard.succeeded(client, name)
        await run_in_threadpool(svc.ledger.audit, svc.now(), info.user, "console.signin", "console_user", None,
                                {"from": client})
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/")
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    @r.post("/logout")
    async def logout(request: Request, me: SessionInfo = Depends(user)) -> Response:
        await form(request, me)
        await run_in_threadpool(accounts.sign_out, request.cookies.get(COOKIE, ""))
        await run_in_threadpool(svc.ledger.audit, svc.now(), me.user, "console.signout")
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    # ---------------------------------------------------------------- dashboard

    @r.get("/")
    def dashboard(request: Request, me: SessionInfo = Depends(user)) -> HTMLResponse:
        st = status(svc)
        level = st["level"]
        return page(request, "dashboard.html", me, st=st, level=level,
                    colour=views.LEVEL_COLOURS.get(level or 0, "#757575"),
                    reason=views.reason(st["reading"], st["sources"]), nights=views.nights(svc),
                    plays=views.next_plays(svc), problems=st["problems"][:8])

    # ------------------------------------------------------------------ compose

    def compose_page(request: Request, me: SessionInfo, values: dict[str, Any], error: str = "",
                     field: str = "", code: int = 200) -> HTMLResponse:
        return page(request, "compose.html", me, code, villages=svc.cfg.villages,
                    chats={cid: c.type for cid, c in svc.cfg.chats.items()},
                    groups=svc.cfg.directory.groups, v=values, error=error, field=field,
                    approval=svc.cfg.settings.http.require_approval, repeat_default=svc.cfg.settings.audio.repeat)

    @r.get("/compose")
    def compose_form(request: Request, me: SessionInfo = Depends(user)) -> HTMLResponse:
        return compose_page(request, me, {"villages": [], "sms_groups": [], "chats": [], "text": "", "at": "",
                                          "repeat": "", "sms_scope": "villages"})

    @r.post("/compose")
    async def compose(request: Request, me: SessionInfo = Depends(user)) -> Response:
        data = await form(request, me)
        values = {"text": str(data.get("text", "")), "villages": [str(v) for v in data.getlist("villages")],
                  "sms_groups": [str(g) for g in data.getlist("sms_groups")], "at": str(data.get("at", "")),
                  "chats": [str(c) for c in data.getlist("chats")],
                  "repeat": str(data.get("repeat", "")), "sms_scope": str(data.get("sms_scope", "town"))}
        upload = data.get("audio")
        blob = await upload.read(MAX_UPLOAD_BYTES + 1) if isinstance(upload, UploadFile) and upload.filename else None
        try:
            repeat = int(values["repeat"]) if values["repeat"].strip() else None
        except ValueError:
            return compose_page(request, me, values, "重复次数应为数字", "repeat", 422)
        everyone = set(values["villages"]) >= set(svc.cfg.villages) and bool(svc.cfg.villages)
        req = BroadcastRequest(values["text"], "all" if everyone else values["villages"], values["sms_groups"],
                               values["at"] or None, repeat, upload=blob, chats=values["chats"],
                               sms_scope=values["sms_scope"])
        try:
            out = await run_in_threadpool(bc.create, req, me.user, f"user:{me.user}")  # renders: off the loop
        except InputError as exc:
            return compose_page(request, me, values, f"{FIELD_ZH.get(exc.field, exc.field)}：{exc.message}",
                                exc.field, 422)
        except TooBusy as exc:
            return compose_page(request, me, values, str(exc).split(" / ")[0], "", 429)
        word = "已提交审批" if out["status"] == "pending_approval" else "已安排发送"
        return back(f"/history/{out['id']}", f"广播 #{out['id']} {word}")

    @r.get("/favicon.ico")
    def favicon() -> Response:
        """The browser tab's icon (a red bell-shaped mark); no 404 on every page."""
        return Response(_favicon(), media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"})

    @r.get("/console/poster.png")
    def poster_preview(text: str = "", me: SessionInfo = Depends(user)) -> Response:
        """The poster a manual broadcast of ``text`` gets (staff forward it to ordinary WeChat groups)."""
        return Response(publishing.manual_poster(svc, text.strip()[:MAX_TEXT]), media_type="image/png",
                        headers={"Cache-Control": "private, no-store"})

    @r.get("/console/segments")
    def segments(text: str = "", me: SessionInfo = Depends(user)) -> JSONResponse:
        seg = sms_segments(text.strip())
        out: dict[str, Any] = {"encoding": seg.encoding, "units": seg.units, "count": seg.count,
                               "chars": len(text.strip()), "max": MAX_TEXT}
        registered = bc.sms_preview(text)  # a template-only provider (A10): which template, what is read
        if registered is not None:
            out["sms"] = registered
        return JSONResponse(out)

    @r.post("/console/preview")
    async def preview(request: Request, me: SessionInfo = Depends(user)) -> Response:
        """The bulletin exactly as it will play: the text spoken, or the uploaded recording."""
        data = await form(request, me)
        text = str(data.get("text", "")).strip()
        upload = data.get("audio")
        try:
            raw = str(data.get("repeat") or "").strip()
            repeat = int(raw) if raw else None
        except ValueError:
            return JSONResponse({"error": "无法试听：重复次数应为数字"}, status_code=422)
        blob = await upload.read(MAX_UPLOAD_BYTES + 1) if isinstance(upload, UploadFile) and upload.filename else None
        try:
            # TTS and ffmpeg in a worker thread, one render at a time and one per user (RenderGate).
            b = await run_in_threadpool(lambda: bc.preview(text, upload=blob, repeat=repeat, who=f"user:{me.user}"))
        except InputError as exc:
            return JSONResponse({"error": f"无法试听：{exc.message.split(' / ')[0]}"}, status_code=422)
        except TooBusy as exc:
            return JSONResponse({"error": str(exc).split(" / ")[0]}, status_code=429,
                                headers={"Retry-After": str(exc.retry_after_s)})
        return FileResponse(b.path, media_type="audio/mpeg")

    @r.get("/console/audio/{sha}.{ext}")
    def audio(sha: str, ext: str, me: SessionInfo = Depends(user)) -> FileResponse:
        path = svc.audio_file(sha, ext)
        if path is None:
            raise HTTPException(404, "no such audio")
        return FileResponse(path, media_type="audio/mpeg" if ext == "mp3" else "audio/wav")

    # ---------------------------------------------------------------- approvals

    @r.get("/approvals")
    def approvals(request: Request, me: SessionInfo = Depends(user)) -> HTMLResponse:
        items = [bc.get(a.id) for a in views.pending_broadcasts(svc)]
        return page(request, "approvals.html", me, items=items, can_approve=at_least(me.role, "approver"),
                    names={v: village.name for v, village in svc.cfg.villages.items()},
                    groups=svc.cfg.directory.groups, fmt=svc.cfg.settings.audio.format)

    @r.post("/broadcasts/{bid}/approve")
    async def approve(bid: Id, request: Request, me: SessionInfo = Depends(user)) -> Response:
        await form(request, me)
        if not at_least(me.role, "approver"):
            return back("/approvals", "需要审批人权限")
        try:
            await run_in_threadpool(bc.approve, bid, me.user, f"user:{me.user}")
        except (Forbidden, Conflict, NotFound) as exc:
            return back("/approvals", str(exc).split(" / ")[0])
        return back(f"/history/{bid}", f"广播 #{bid} 已审批，将按时发送")

    @r.post("/broadcasts/{bid}/cancel")
    async def cancel(bid: Id, request: Request, me: SessionInfo = Depends(user)) -> Response:
        await form(request, me)
        try:
            out = await run_in_threadpool(bc.cancel, bid, me.user)
        except (Conflict, NotFound) as exc:
            return back(f"/history/{bid}", str(exc).split(" / ")[0])
        return back(f"/history/{bid}", f"广播 #{bid} 已取消（{out['cancelled']} 条未发出的已撤回）")

    # ------------------------------------------------------------------ history

    @r.get("/history")
    def history(request: Request, days: int = 7, me: SessionInfo = Depends(user)) -> HTMLResponse:
        days = min(max(days, 1), 366)
        now = svc.now()
        rows = bc.alerts(now - timedelta(days=days))[::-1]
        for a in rows:
            a["sms"] = views.sms_summary(a["deliveries"].get("sms", {}))
            a["village_states"] = {v: views.play_state(s, a["play_at"].get(v), now, tz) for v, s in a["plays"].items()}
        return page(request, "history.html", me, rows=rows, days=days,
                    names={v: village.name for v, village in svc.cfg.villages.items()},
                    live=any(a["status"] in ("scheduled", "dispatching") for a in rows))

    @r.get("/history/{aid}")
    def alert_detail(aid: Id, request: Request, p: int = Query(0, ge=0, le=10**6), me: SessionInfo = Depends(user)) -> HTMLResponse:
        found = bc.alerts(ids=[aid])
        if not found:
            raise HTTPException(404, "没有这条记录")
        a, now = found[0], svc.now()
        a["sms"] = views.sms_summary(a["deliveries"].get("sms", {}))
        a["village_states"] = {v: views.play_state(s, a["play_at"].get(v), now, tz) for v, s in a["plays"].items()}
        rows, total = views.deliveries(svc, aid, max(p, 0))
        # Which engine spoke each bulletin (A11): a cloud voice, or espeak when the cloud failed.
        a["engines"] = sorted({svc.renderer.cache.engine_of(sha) or "录音/未知" for sha in svc.ledger.reads.bulletins(aid)})
        if a["kind"] == "manual":  # what was asked for, shown before any delivery exists (pending approval)
            asked = bc.get(aid)
            a["asked_villages"], a["asked_groups"] = asked["villages"], asked["sms_groups"]
            a["sms_scope"] = asked["sms_scope"]
        return page(request, "alert.html", me, a=a, rows=rows, total=total, p=max(p, 0), per=views.PAGE,
                    groups=svc.cfg.directory.groups,
                    names={v: village.name for v, village in svc.cfg.villages.items()},
                    live=a["status"] in ("scheduled", "dispatching"))

    # ----------------------------------------------------------------- villages

    @r.get("/villages")
    def village_page(request: Request, me: SessionInfo = Depends(user)) -> HTMLResponse:
        return page(request, "villages.html", me, villages=views.villages(svc),
                    unreachable=views.unreachable(svc))

    @r.post("/villages/unreachable/clear")
    async def clear_flag(request: Request, me: SessionInfo = Depends(user)) -> Response:
        """An admin clears an unreachable flag (audited): the number is tried again from now on."""
        data = await form(request, me)
        if not at_least(me.role, "admin"):
            return page(request, "denied.html", me, 403)
        try:
            await run_in_threadpool(flags.clear_by_key, svc, str(data.get("key", "")), me.user)
        except NotFound as exc:
            return back("/villages", str(exc).split(" / ")[0])
        return back("/villages", "已清除不可达标记，以后的预警会再发送到这个号码")

    # -------------------------------------------------------------------- audit

    @r.get("/audit")
    def audit(request: Request, p: int = 0, me: SessionInfo = Depends(user)) -> HTMLResponse:
        if not at_least(me.role, "admin"):
            return page(request, "denied.html", me, 403)
        rows, total = audit_rows(svc, max(p, 0))
        return page(request, "audit.html", me, rows=rows, total=total, p=max(p, 0), per=views.PAGE)

    return r


def install(app: Any) -> None:
    """App-level handler: a page that needs a session sends the browser to sign in."""

    @app.exception_handler(_SignIn)
    async def _to_login(request: Request, exc: _SignIn) -> Response:
        if request.method != "GET" or request.url.path.startswith("/console/"):
            return JSONResponse({"detail": "请先登录 / sign in first"}, status_code=401)
        return RedirectResponse(f"/login?next={quote(exc.next_url)}", status_code=303)


def harden(resp: Response, secure: bool) -> Response:
    """The headers every console page carries (HSTS only when served over https)."""
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    # The pages' own few inline scripts keep script-src open; everything else is locked down.
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    if secure:
        resp.headers["Strict-Transport-Security"] = "max-age=31536000"
    return resp


@functools.cache
def _favicon() -> bytes:
    """A 32 px icon drawn once: the console's red, with a white loudspeaker."""
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (32, 32), (155, 28, 28, 255))
    d = ImageDraw.Draw(img)
    d.rectangle((6, 12, 12, 20), fill="white")
    d.polygon([(12, 12), (22, 5), (22, 27), (12, 20)], fill="white")
    d.arc((20, 9, 30, 23), -60, 60, fill="white", width=2)
    buf = io.BytesIO()
    img.save(buf, format="ICO", sizes=[(32, 32)])
    return buf.getvalue()


def _local(url: str) -> str:
    """Only same-site paths after sign-in (no open redirect)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"
