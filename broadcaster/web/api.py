"""The JSON API under ``/api/v1`` (DESIGN A6): status, manual broadcasts, alerts, preview.

Manual broadcasts are created either with a JSON body (``POST /api/v1/broadcasts``, the text is
spoken by TTS) or with a multipart form carrying a recording (``POST /api/v1/broadcasts/upload``:
fields ``text``, ``villages`` (comma-separated ids or ``all``), ``sms_groups`` (comma-separated),
``at``, ``repeat`` and the file part ``audio``, MP3 or WAV, at most 10 MB and 5 minutes).
Errors: 401 without a valid token, 403 for the wrong role or an agent token, 404 unknown id,
409 wrong state, 422 ``{"detail": {"field", "message"}}`` for invalid input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from broadcaster.flows.manual import MAX_TEXT, MAX_UPLOAD_BYTES, BroadcastRequest, Broadcasts
from broadcaster.errors import BroadcasterError, Conflict, Forbidden, InputError, NotFound, TooBusy
from broadcaster.web.auth import Id, Principal, require

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service


#: A list of ids in a body: bounded in length and in each entry (the body limit bounds the rest).
_Ids = Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=1000)]


class BroadcastIn(BaseModel):
    """A manual broadcast: the text is sent as SMS to the groups and spoken in the villages."""

    text: str = Field(description=f"SMS and spoken text, 1-{MAX_TEXT} characters")
    villages: _Ids | Literal["all"] = Field(default_factory=list, description='village ids or "all"')
    sms_groups: _Ids = Field(default_factory=list, description="SMS group ids from the directory")
    chats: _Ids = Field(default_factory=list, description="group-chat ids from the directory (A12)")
    at: str | None = Field(default=None, description="ISO 8601 time to go out (default now); local time if naive")
    repeat: int | None = Field(default=None, description="times the message is spoken in the bulletin, 1-10")
    sms_scope: Literal["town", "villages"] = Field(
        default="town", description='"town": the SMS groups across the town; "villages": only their members '
                                    'in the chosen villages (and town staff of no village)')


class PreviewIn(BaseModel):
    text: str
    repeat: int | None = None


class Created(BaseModel):
    id: int
    status: str


@contextmanager
def _http_errors() -> Iterator[None]:
    """Service-layer errors to HTTP statuses (only web/ does this mapping)."""
    try:
        yield
    except InputError as exc:
        raise HTTPException(422, {"field": exc.field, "message": exc.message}) from None
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Forbidden as exc:
        raise HTTPException(403, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except TooBusy as exc:
        raise HTTPException(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)}) from None
    except BroadcasterError as exc:
        raise HTTPException(400, str(exc)) from None


def router(svc: Service) -> APIRouter:
    """The ``/api/v1`` JSON routes bound to ``svc``."""
    r = APIRouter(prefix="/api/v1", tags=["api"])
    bc = Broadcasts(svc)
    operator, approver = Depends(require("operator")), Depends(require("approver"))

    @r.get("/status")
    def get_status(p: Principal = operator) -> dict[str, Any]:
        """Tonight's reading and level, next jobs, delivery counts."""
        from broadcaster.flows.status import status

        return status(svc)

    @r.post("/broadcasts", status_code=201, response_model=Created)
    def create(body: BroadcastIn, p: Principal = operator) -> dict[str, Any]:
        """Create a manual broadcast (awaits approval when ``http.require_approval`` is on)."""
        with _http_errors():
            return bc.create(BroadcastRequest(body.text, body.villages, body.sms_groups, body.at, body.repeat,
                                              chats=body.chats, sms_scope=body.sms_scope), p.name, p.identity)

    @r.post("/broadcasts/upload", status_code=201, response_model=Created)
    def create_upload(
        text: str = Form(..., description="SMS text and description of the recording"),
        audio: UploadFile = File(..., description="MP3 or WAV, at most 10 MB and 5 minutes"),
        villages: str = Form("", description='comma-separated village ids, or "all"'),
        sms_groups: str = Form("", description="comma-separated SMS group ids"),
        at: str | None = Form(None),
        repeat: int | None = Form(None),
        p: Principal = operator,
    ) -> dict[str, Any]:
        """Create a manual broadcast that plays an uploaded recording."""
        data = audio.file.read(MAX_UPLOAD_BYTES + 1)
        vs: list[str] | str = "all" if villages.strip() == "all" else _csv(villages)
        with _http_errors():
            return bc.create(BroadcastRequest(text, vs, _csv(sms_groups), at, repeat, upload=data), p.name,
                             p.identity)

    @r.post("/broadcasts/{broadcast_id}/approve")
    def approve(broadcast_id: Id, p: Principal = approver) -> dict[str, Any]:
        """Approve a pending broadcast; never by its author (403)."""
        with _http_errors():
            return bc.approve(broadcast_id, p.name, p.identity)

    @r.post("/broadcasts/{broadcast_id}/cancel")
    def cancel(broadcast_id: Id, p: Principal = operator) -> dict[str, Any]:
        """Cancel every delivery of the broadcast that has not gone out."""
        with _http_errors():
            return bc.cancel(broadcast_id, p.name)

    @r.get("/broadcasts/{broadcast_id}")
    def get(broadcast_id: Id, p: Principal = operator) -> dict[str, Any]:
        """``{"id","status","text","deliveries":{"sms":{state:n},"speaker":{state:n}}}`` and details."""
        with _http_errors():
            return bc.get(broadcast_id)

    @r.get("/alerts")
    def alerts(since: str | None = Query(None, description="ISO 8601; default 7 days ago"),
               p: Principal = operator) -> list[dict[str, Any]]:
        """Automatic and manual alerts with delivery counts and per-village play states."""
        now = svc.now()
        when = now - timedelta(days=7)
        if since:
            try:
                when = datetime.fromisoformat(since)
            except ValueError:
                raise HTTPException(422, {"field": "since", "message": "应为 ISO 8601 时间 / must be ISO 8601"}) from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=svc.cfg.tz)
        return bc.alerts(when)

    @r.post("/preview", response_class=Response,
            responses={200: {"content": {"audio/mpeg": {}}, "description": "the bulletin as it would play"}})
    def preview(body: PreviewIn, p: Principal = operator) -> Response:
        """Render ``text`` into the MP3 bulletin exactly as it would play (chime, repeats, loudness)."""
        with _http_errors():
            b = bc.preview(body.text, repeat=body.repeat, who=p.identity)  # one quota per person
        return Response(b.path.read_bytes(), media_type="audio/mpeg")

    return r


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
