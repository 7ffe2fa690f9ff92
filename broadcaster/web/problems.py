"""The one shape of a 422 answer, as served and as declared in ``/openapi.json``.

Every invalid input, whether a route finds it (``HTTPException(422, {"field", "message"})``) or
FastAPI's request validation does, is answered ``{"detail": {"field": ..., "message": ...}}``: the
field named the way a caller wrote it (``villages.3``, ``wait``), the message Chinese first. The
schema declares that shape (``ValidationProblem``) as every route's 422 instead of FastAPI's
default ``HTTPValidationError``, which the app never sends.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    """Which input was wrong and why."""

    field: str = Field(description="the invalid field, dotted for nested ones (e.g. `villages.3`)")
    message: str = Field(description="what is wrong with it, in Chinese, then English")


class ValidationProblem(BaseModel):
    """The body of every 422 answer."""

    detail: FieldProblem


#: Merged into every route's responses (``FastAPI(responses=...)``); FastAPI then adds no default 422.
RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationProblem, "description": "invalid input / 输入无效"}}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    # The first element says where it came from (body, query, path, header): not part of the name.
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts) or "body"


async def on_invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's request validation failed: name the first wrong field, in our shape."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    first = errors[0] if errors else {"loc": ("body",), "msg": str(exc)}
    message = f"输入无效 / invalid input: {first.get('msg', '')}"
    if len(errors) > 1:
        message += f" (+{len(errors) - 1})"
    # A body that is not JSON at all has the parse position in its loc, not a field.
    field = "body" if first.get("type") == "json_invalid" else _field(first.get("loc", ()))
    body = ValidationProblem(detail=FieldProblem(field=field, message=message))
    return JSONResponse(body.model_dump(), status_code=422)
