"""The FastAPI application served by ``broadcaster run``."""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broadcaster.service import Service


def create_app(svc: Service, scheduler: Any = None) -> FastAPI:
    app = FastAPI(title="broadcaster", version="0.1.0",
                  description="CO-poisoning alerts to SMS and village loudspeakers")
    app.state.svc = svc
    app.state.scheduler = scheduler

    @app.get("/healthz", tags=["ops"])
    def healthz() -> JSONResponse:
        if svc.ledger.ping():
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "ledger unreachable"}, status_code=503)

    @app.get("/metrics", tags=["ops"])
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # GET /api/v1/audio/{sha256}.{ext} (with its auth) lives in agent_api.

    # Routers, each in its own module: agent endpoints, JSON API, receipts, console.
    for name in ROUTERS:
        try:
            mod = importlib.import_module(f"broadcaster.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"broadcaster.web.{name}":
                raise
            continue
        app.include_router(mod.router(svc))
    return app


ROUTERS = ("agent_api", "api", "receipts", "console")
