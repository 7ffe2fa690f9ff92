"""The FastAPI application served by ``broadcaster run``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broadcaster.web import agent_api, api, auth, checkins, console, incidents, problems, public, receipts, reports
from broadcaster.web.limits import BodyLimit
from broadcaster.web.longpoll import CommandWatch
from broadcaster.wording import zh_first

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service


def create_app(svc: Service, scheduler: Any = None) -> FastAPI:
    """Ops endpoints, the JSON API (``/docs``), agent endpoints, Twilio receipts and the console."""
    app = FastAPI(title="broadcaster", version="0.1.0",
                  description="CO-poisoning alerts to SMS and village loudspeakers",
                  responses=problems.RESPONSES)
    # One 422 shape for all invalid input, the one the schema declares (problems.ValidationProblem).
    app.add_exception_handler(RequestValidationError, problems.on_invalid_request)
    app.state.svc = svc
    app.state.auth_audit = auth.AuthAudit(svc)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        # role: whether this node runs the scheduler's jobs (DESIGN A15); without a scheduler
        # (an app built for tests or tools) it runs none.
        node = {"role": getattr(scheduler, "role", "standby"), "node": svc.ledger.node}
        if svc.ledger.ping():
            return JSONResponse({"status": "ok", **node})
        return JSONResponse({"status": "ledger unreachable", **node}, status_code=503)

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # Long polls wait on this; broadcaster.runtime.server closes it on shutdown so they answer at once.
    app.state.command_watch = watch = CommandWatch(
        lambda: svc.ledger.reads.agent_fingerprints(svc.now()), version=svc.ledger.version)
    # The cadres' check-in pages first: 300 opened at once must not each try every other route
    # before theirs (FastAPI matches routes in order; their paths overlap none of the others').
    app.include_router(checkins.router(svc))
    app.include_router(agent_api.router(svc, watch))
    for mod in (api, receipts, console, incidents, reports, public):
        app.include_router(mod.router(svc))
    console.install(app)

    @app.exception_handler(StarletteHTTPException)
    async def chinese_first(request: Request, exc: StarletteHTTPException) -> Response:
        """Every error ``detail`` a caller reads starts in Chinese (the English after it)."""
        detail: Any = exc.detail
        if isinstance(detail, str):
            detail = zh_first(detail, "请求失败")
        elif isinstance(detail, dict) and isinstance(detail.get("message"), str):
            detail = {**detail, "message": zh_first(detail["message"], "取值无效")}
        return await http_exception_handler(request, StarletteHTTPException(exc.status_code, detail, exc.headers))
    # Outermost of ours: bodies are bounded, and API callers authenticated, before any route reads one.
    app.add_middleware(BodyLimit, svc=svc, audit=app.state.auth_audit)
    return app
