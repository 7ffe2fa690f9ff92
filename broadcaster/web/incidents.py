"""Incident reports (事故上报, DESIGN A14): the JSON API and the console's form.

API (bearer token, role operator or higher)::

    POST /api/v1/incidents                      {"village", "occurred_at", "affected", "deaths",
                                                 "description", "measures"?} -> 201 {"id", "sms"}
    GET  /api/v1/incidents                      the latest incidents with their corrections
    GET  /api/v1/incidents/{id}                 one incident: as reported, as it stands, corrections
    POST /api/v1/incidents/{id}/corrections     the fields to change and "note" -> 201 {"id", ...}

Invalid input is 422 ``{"detail": {"field", "message"}}`` naming the field (Chinese, then English),
like the broadcasts API. Console: ``/incidents`` (list and form), ``/incidents/{id}`` (correction form).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from broadcaster.auth.accounts import SessionInfo
from broadcaster.errors import InputError, NotFound
from broadcaster.flows.incidents import MAX_PERSONS, MAX_TEXT, Incidents
from broadcaster.flows.report import INCIDENT_FIELDS
from broadcaster.web.api import _http_errors
from broadcaster.web.auth import Id, Principal, require
from broadcaster.web.console_kit import ConsoleKit

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

FIELD_ZH = {**INCIDENT_FIELDS, "note": "更正说明"}
FORM_FIELDS = (*INCIDENT_FIELDS, "note")
EXAMPLE = {"village": "xicun", "occurred_at": "2026-11-26T06:40:00+08:00", "affected": 3, "deaths": 0,
           "description": "王某家三人晨起头晕恶心，疑似煤炉封火导致一氧化碳中毒，已送镇卫生院。",
           "measures": "开窗通风，熄灭炉火，村干部入户检查同组 12 户烟道。"}


def router(svc: Service) -> APIRouter:
    """The incident API and console routes bound to ``svc``."""
    r = APIRouter()
    incidents = Incidents(svc)
    kit = ConsoleKit(svc)
    operator = Depends(require("operator"))

    # ---------------------------------------------------------------------- API

    @r.post("/api/v1/incidents", status_code=201, tags=["api"])
    def create(body: dict[str, Any] = Body(..., examples=[EXAMPLE]),
               p: Principal = operator) -> dict[str, Any]:
        """Record an incident (audited); group ``leaders`` gets an SMS at once."""
        with _http_errors():
            return incidents.create(body, p.name)

    @r.get("/api/v1/incidents", tags=["api"])
    def recent(p: Principal = operator) -> list[dict[str, Any]]:
        """The latest 100 incidents, newest first, each with its corrections."""
        return incidents.recent()

    @r.get("/api/v1/incidents/{incident_id}", tags=["api"])
    def get(incident_id: Id, p: Principal = operator) -> dict[str, Any]:
        """One incident as first reported, as it stands after its corrections, and the corrections."""
        with _http_errors():
            return incidents.get(incident_id)

    @r.post("/api/v1/incidents/{incident_id}/corrections", status_code=201, tags=["api"])
    def correct(incident_id: Id, body: dict[str, Any] = Body(..., examples=[{"deaths": 1, "note": "一人抢救无效"}]),
                p: Principal = operator) -> dict[str, Any]:
        """Correct an incident: the fields that change and ``note`` (why). The first record stays."""
        with _http_errors():
            return incidents.correct(incident_id, body, p.name)

    # ------------------------------------------------------------------ console

    def list_page(request: Request, me: SessionInfo, values: dict[str, Any], error: str = "", field: str = "",
                  code: int = 200) -> HTMLResponse:
        return kit.page(request, "incidents.html", me, code, items=incidents.recent(), v=values, error=error,
                        field=field, villages=svc.cfg.villages, max_text=MAX_TEXT, max_persons=MAX_PERSONS)

    def error_text(exc: InputError) -> str:
        return f"{FIELD_ZH.get(exc.field, exc.field)}：{exc.message.split(' / ')[0]}"

    @r.get("/incidents", include_in_schema=False)
    def incidents_page(request: Request, me: SessionInfo = Depends(kit.user)) -> HTMLResponse:
        return list_page(request, me, {})

    @r.post("/incidents", include_in_schema=False)
    async def incidents_post(request: Request, me: SessionInfo = Depends(kit.user)) -> Response:
        data = await kit.form(request, me)
        values = {k: str(data.get(k, "")) for k in INCIDENT_FIELDS}
        try:
            out = incidents.create(values, me.user)
        except InputError as exc:
            return list_page(request, me, values, error_text(exc), exc.field, 422)
        return kit.back(f"/incidents/{out['id']}", f"事故 #{out['id']} 已上报，已短信通知领导 {out['sms']} 人")

    def detail_page(request: Request, me: SessionInfo, incident_id: int, values: dict[str, Any],
                    error: str = "", field: str = "", code: int = 200) -> HTMLResponse:
        try:
            item = incidents.get(incident_id)
        except NotFound:
            raise HTTPException(404, "没有这起事故") from None
        return kit.page(request, "incident.html", me, code, i=item, v=values, error=error, field=field,
                        villages=svc.cfg.villages, max_text=MAX_TEXT, max_persons=MAX_PERSONS)

    @r.get("/incidents/{incident_id}", include_in_schema=False)
    def incident_page(incident_id: Id, request: Request, me: SessionInfo = Depends(kit.user)) -> HTMLResponse:
        return detail_page(request, me, incident_id, {})

    @r.post("/incidents/{incident_id}/corrections", include_in_schema=False)
    async def correction_post(incident_id: Id, request: Request,
                              me: SessionInfo = Depends(kit.user)) -> Response:
        data = await kit.form(request, me)
        values = {k: str(data.get(k, "")) for k in FORM_FIELDS}
        try:
            out = incidents.correct(incident_id, values, me.user)
        except InputError as exc:
            return detail_page(request, me, incident_id, values, error_text(exc), exc.field, 422)
        except NotFound:
            raise HTTPException(404, "没有这起事故") from None
        told = f"，已短信通知领导 {out['sms']} 人" if out["sms"] else ""
        return kit.back(f"/incidents/{incident_id}", f"更正已记录{told}")

    return r
