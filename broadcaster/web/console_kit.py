"""What a console page outside ``console.py`` needs: the session, the page, the CSRF-checked form.

The same sessions, templates, CSRF token and sign-in redirect as :mod:`broadcaster.web.console`,
for the pages that came later (the weekly reports, incidents), so each feature keeps its routes in
a module of its own.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from broadcaster.auth.accounts import Accounts, SessionInfo
from broadcaster.web import views
from broadcaster.web.console import COOKIE, _SignIn, harden, templates

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service


class ConsoleKit:
    """Session, page and form helpers bound to one service."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.accounts = Accounts(svc.ledger, timedelta(minutes=svc.cfg.settings.http.session_minutes))
        self.secure = svc.cfg.settings.http.public_url.startswith("https://")

    def user(self, request: Request) -> SessionInfo:
        """FastAPI dependency: the signed-in user, or the browser goes to sign in."""
        info = self.accounts.session(request.cookies.get(COOKIE, ""), self.svc.now())
        if info is None:
            raise _SignIn(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return info

    def page(self, request: Request, name: str, me: SessionInfo, status_code: int = 200,
             **ctx: Any) -> HTMLResponse:
        """A template rendered like the console's own pages (town, message, approvals badge)."""
        ctx.update(me=me, town=self.svc.cfg.settings.town, msg=request.query_params.get("msg", ""),
                   approvals=len(views.pending_broadcasts(self.svc)))
        resp = templates.TemplateResponse(request, name, ctx, status_code=status_code)
        harden(resp, self.secure)
        return resp

    async def form(self, request: Request, me: SessionInfo) -> FormData:
        """The posted form, after its CSRF token was checked (403 otherwise)."""
        data = await request.form()
        if not hmac.compare_digest(str(data.get("csrf", "")), me.csrf):
            raise HTTPException(403, "表单已过期，请刷新页面后重试 / CSRF token missing or wrong")
        return data

    @staticmethod
    def back(url: str, msg: str) -> RedirectResponse:
        """303 to ``url`` with a message shown at the top of the page."""
        return RedirectResponse(f"{url}?msg={quote(msg)}", status_code=303)
