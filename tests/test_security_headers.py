"""Info items of issue 18 (item 13): the OpenAPI document declares its bearer scheme, console
pages carry a Content-Security-Policy (and HSTS behind https), and ``http.session_minutes`` is
the console's idle timeout."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from broadcaster.auth.accounts import Accounts
from tests.test_api import START, make_api


def test_openapi_declares_the_bearer_scheme(confdir: Path) -> None:
    api = make_api(confdir)
    try:
        doc = api.client.get("/openapi.json").json()
        schemes = doc["components"]["securitySchemes"]
        assert any(s["type"] == "http" and s["scheme"] == "bearer" for s in schemes.values())
        assert doc["paths"]["/api/v1/broadcasts"]["post"]["security"]
    finally:
        api.svc.close()


def test_console_pages_carry_csp_and_hsts_behind_https(confdir: Path) -> None:
    api = make_api(confdir, lambda d: d["http"].update(public_url="https://co.example.org"))
    try:
        r = api.client.get("/login")
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp and "base-uri 'none'" in csp
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        api.svc.close()
    plain = make_api(confdir, lambda d: d["http"].update(public_url="http://127.0.0.1:8080"))
    try:
        assert "Strict-Transport-Security" not in plain.client.get("/login").headers
    finally:
        plain.svc.close()


def test_session_minutes_is_the_idle_timeout(confdir: Path) -> None:
    api = make_api(confdir, lambda d: d["http"].update(session_minutes=10))
    try:
        Accounts(api.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
        c = TestClient(api.client.app)
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        c.post("/login", data={"name": "小李", "password": "xiaoli-pass", "csrf": token})
        api.clock.advance(9 * 60)
        assert c.get("/", follow_redirects=False).status_code == 200
        api.clock.advance(11 * 60)
        assert c.get("/", follow_redirects=False).status_code == 303
    finally:
        api.svc.close()
