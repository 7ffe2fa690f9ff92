"""The weekly reports in the console (DESIGN A14): every week's report to download.

- ``GET /reports``: every week with data, newest first: when the schedule sent it, and links.
- ``GET /reports/{stem}.{xlsx|pdf}``: the report made now from the ledger (a past week's figures
  are final; this week's so far).
- ``GET /reports/sent/{file}``: the file exactly as the schedule sent it.
- ``GET /api/v1/reports/{stem}.{xlsx|pdf}``: the same as the second, with a bearer token.

Every route needs the operator role or higher (a console session, or a token for the API).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from broadcaster.auth.accounts import SessionInfo
from broadcaster.flows.report import FORMATS, make_report, period_from_stem
from broadcaster.flows.report_schedule import reports_dir, weeks
from broadcaster.web.auth import Principal, require
from broadcaster.web.console_kit import ConsoleKit

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

MEDIA = {"xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "pdf": "application/pdf"}


def _disposition(name: str) -> str:
    """``attachment`` with the Chinese file name (RFC 6266/5987) and an ASCII fallback."""
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def router(svc: Service) -> APIRouter:
    """The report pages and downloads bound to ``svc``."""
    r = APIRouter()
    kit = ConsoleKit(svc)

    def fresh(name: str) -> Response:
        stem, _, ext = name.rpartition(".")
        tz = svc.cfg.tz
        period = period_from_stem(stem, svc.now().astimezone(tz).date())
        if period is None or ext not in FORMATS:
            raise HTTPException(404, "没有这份报告 / no such report (周报-2026-W48.xlsx or .pdf)")
        with tempfile.TemporaryDirectory(prefix="report-") as tmp:
            made = make_report(svc.cfg, svc.ledger, period, svc.now(), Path(tmp), ext)
            data = made.files[0].read_bytes()
        headers = {"Content-Disposition": _disposition(f"{stem}.{ext}"), "Cache-Control": "no-store"}
        return Response(data, media_type=MEDIA[ext], headers=headers)

    @r.get("/reports", include_in_schema=False)
    def reports_page(request: Request, me: SessionInfo = Depends(kit.user)) -> HTMLResponse:
        sched = svc.cfg.settings.report
        return kit.page(request, "reports.html", me, weeks=weeks(svc), schedule=sched,
                        quote=quote)

    @r.get("/reports/sent/{name}", include_in_schema=False)
    def sent_file(name: str, me: SessionInfo = Depends(kit.user)) -> FileResponse:
        folder = reports_dir(svc.cfg)
        path = folder / name
        # Only a file the schedule recorded, and only inside the folder (no ../).
        known = {f for w in svc.ledger.report_reads.records() for f in (w.files or [])}
        if name not in known or path.resolve().parent != folder.resolve() or not path.is_file():
            raise HTTPException(404, "没有这份已发送的报告 / no such sent report")
        ext = path.suffix.lstrip(".")
        return FileResponse(path, media_type=MEDIA.get(ext, "application/octet-stream"),
                            headers={"Content-Disposition": _disposition(name)})

    @r.get("/reports/{name}", include_in_schema=False)
    def console_download(name: str, me: SessionInfo = Depends(kit.user)) -> Response:
        return fresh(name)

    @r.get("/api/v1/reports/{name}", tags=["api"],
           responses={200: {"content": {MEDIA["xlsx"]: {}, MEDIA["pdf"]: {}}}})
    def api_download(name: str, p: Principal = Depends(require("operator"))) -> Response:
        """The report ``周报-2026-W48.xlsx`` (or ``.pdf``, or ``周报-FROM_TO.pdf``) made now."""
        return fresh(name)

    return r
