"""Revocation (issue 18, item 8): tokens listed and revoked, users listed and disabled (their
sessions end at once), and ``user add`` never silently changes an existing account."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from tests.conftest import local

NOW = local(2026, 11, 28, 10, 0)


@pytest.fixture
def cfg(confdir: Path) -> str:
    return str(confdir / "broadcaster.yaml")


def _app(cfg: str) -> tuple[Service, TestClient]:
    svc = Service(load_config(cfg), clock=FakeClock(NOW))
    return svc, TestClient(create_app(svc))


def _user(cfg: str, action: str, name: str, role: str, password: str, monkeypatch: pytest.MonkeyPatch) -> int:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    return main(["user", action, "-c", cfg, "--name", name, "--role", role, "--password-stdin"])


def test_a_revoked_token_is_refused_at_once(cfg: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "-c", cfg, "--name", "ops-script", "--role", "operator"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    svc, c = _app(cfg)
    try:
        h = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/status", headers=h).status_code == 200
        assert main(["token", "list", "-c", cfg]) == 0
        listed = capsys.readouterr().out
        assert "ops-script\toperator" in listed and "有效" in listed and token not in listed
        assert main(["token", "revoke", "-c", cfg, "--name", "ops-script"]) == 0
        assert c.get("/api/v1/status", headers=h).status_code == 401  # the running service, no restart
        assert main(["token", "revoke", "-c", cfg, "--name", "ops-script"]) == 2  # nothing left to revoke
        assert any(e.action == "token.revoke" for e in _audit(svc))
    finally:
        svc.close()


def test_disabling_a_user_ends_their_sessions_and_add_does_not_reset(
        cfg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _user(cfg, "add", "小李", "operator", "xiaoli-pass", monkeypatch) == 0
    # `user add` on an existing name changes nothing (no silent role or password change).
    assert _user(cfg, "add", "小李", "admin", "other-pass-1", monkeypatch) == 1
    svc, c = _app(cfg)
    try:
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"name": "小李", "password": "xiaoli-pass", "csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and "小李（操作员）" in c.get("/").text
        assert main(["user", "list", "-c", cfg]) == 0
        assert "小李\toperator" in capsys.readouterr().out
        assert main(["user", "disable", "-c", cfg, "--name", "小李"]) == 0
        assert c.get("/", follow_redirects=False).status_code == 303  # signed out at once
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"name": "小李", "password": "xiaoli-pass", "csrf": token})
        assert r.status_code == 401
        # `user reset` is the explicit way to change a password or role (and re-enables).
        assert _user(cfg, "reset", "小李", "approver", "new-pass-99", monkeypatch) == 0
        token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
        r = c.post("/login", data={"name": "小李", "password": "new-pass-99", "csrf": token}, follow_redirects=False)
        assert r.status_code == 303 and "小李（审批人）" in c.get("/").text
    finally:
        svc.close()


def _audit(svc: Service) -> list:  # type: ignore[type-arg]
    from sqlalchemy import select

    from broadcaster.ledger import AuditEntry

    with svc.ledger.reader() as s:
        return list(s.scalars(select(AuditEntry)))


def test_a_token_bound_to_a_user_is_that_user_in_the_two_person_rule(
        cfg: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert _user(cfg, "add", "王站长", "approver", "wang-pass-1", monkeypatch) == 0
    assert _user(cfg, "add", "李站长", "approver", "li-pass-123", monkeypatch) == 0
    assert main(["token", "create", "-c", cfg, "--name", "ops-script", "--role", "approver", "--user", "王站长"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["token", "create", "-c", cfg, "--name", "x", "--role", "operator", "--user", "nobody"]) == 2
    svc, c = _app(cfg)
    try:
        body = {"text": "测试", "villages": [], "sms_groups": ["duty"]}
        bid = c.post("/api/v1/broadcasts", json=body, headers={"Authorization": f"Bearer {token}"}).json()["id"]

        def approve_in_console(name: str, password: str) -> str:
            b = TestClient(c.app)
            t = re.search(r'name="csrf" value="([^"]+)"', b.get("/login").text).group(1)
            b.post("/login", data={"name": name, "password": password, "csrf": t})
            csrf = re.search(r'name="csrf" value="([^"]+)"', b.get("/").text).group(1)
            return b.post(f"/broadcasts/{bid}/approve", data={"csrf": csrf}, follow_redirects=False).headers["location"]

        # Created through the API by 王站长's token: 王站长 cannot approve it in the console ...
        assert "/approvals" in approve_in_console("王站长", "wang-pass-1")
        assert svc.ledger.reads.alert(bid).status == "pending_approval"
        # ... and another approver can.
        assert f"/history/{bid}" in approve_in_console("李站长", "li-pass-123")
        assert svc.ledger.reads.alert(bid).approved_by == "李站长"
    finally:
        svc.close()
