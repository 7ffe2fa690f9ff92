"""422 bodies match what ``/openapi.json`` declares (issue 18, item 13).

Real 422 answers, from FastAPI's request validation and from the routes' own checks, are
validated against the 422 schema their operation declares, resolved from the served document.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs  # comes with schemathesis (test extras)
import pytest

from tests.test_api import Api, make_api


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    yield a
    a.svc.close()


def _declared_422(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    resp = doc["paths"][path][method]["responses"]["422"]
    # The whole document rides along so "#/components/schemas/..." references resolve.
    return {**resp["content"]["application/json"]["schema"], "components": doc["components"]}


# (method, schema path, request path, request kwargs, who, the field the answer must name)
CASES = [
    # FastAPI's own validation: a required field missing, a wrong type, a bound broken.
    ("post", "/api/v1/broadcasts", "/api/v1/broadcasts", {"json": {"villages": []}}, "alice", "text"),
    ("get", "/api/v1/broadcasts/{broadcast_id}", "/api/v1/broadcasts/" + "9" * 25, {}, "alice", "broadcast_id"),
    ("get", "/api/agent/v1/commands", "/api/agent/v1/commands?wait=soon", {}, "agent", "wait"),
    ("post", "/api/v1/broadcasts", "/api/v1/broadcasts",
     {"json": {"text": "x", "villages": ["a"] * 1001}}, "alice", "villages"),
    ("post", "/api/v1/broadcasts", "/api/v1/broadcasts",
     {"content": b'{"text": ', "headers": {"Content-Type": "application/json"}}, "alice", "body"),
    # The routes' own checks.
    ("post", "/api/v1/broadcasts", "/api/v1/broadcasts",
     {"json": {"text": "...", "villages": "all"}}, "alice", "text"),
    ("get", "/api/v1/alerts", "/api/v1/alerts?since=yesterday", {}, "alice", "since"),
    ("post", "/api/agent/v1/commands/{delivery_id}/result", "/api/agent/v1/commands/1/result",
     {"json": {"status": "played", "played_at": "2026-11-28T14:00:00"}}, "agent", "played_at"),
]


@pytest.mark.parametrize("method,schema_path,url,kw,who,field", CASES,
                         ids=[f"{c[0]} {c[2][:40]}" for c in CASES])
def test_a_422_body_matches_the_schema_its_operation_declares(
        api: Api, method: str, schema_path: str, url: str, kw: dict[str, Any], who: str, field: str) -> None:
    doc = api.client.get("/openapi.json").json()
    kw = dict(kw)
    r = api.client.request(method.upper(), url, headers={**api.h(who), **kw.pop("headers", {})}, **kw)
    assert r.status_code == 422, r.text
    body = r.json()
    jsonschema_rs.validate(_declared_422(doc, schema_path, method), body)
    # The shape a caller can act on: which field, and why in Chinese first.
    assert body["detail"]["field"].split(".")[0] == field
    assert any("\u4e00" <= ch <= "\u9fff" for ch in body["detail"]["message"].split("/")[0])


def test_every_operation_declares_the_one_422_shape(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            ref = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/ValidationProblem", (method, path)
