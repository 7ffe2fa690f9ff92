"""Optional token expiry (issue 18, item 8): ``token create --expires-days N`` makes a token that
is refused (401) from its expiry on, and ``token list`` shows when each one expires."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from fastapi.testclient import TestClient

from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from tests.conftest import local


def test_an_expiring_token_works_until_its_day_and_is_refused_after(
        confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["token", "create", "-c", cfg, "--name", "temp-ops", "--role", "operator", "--expires-days", "2"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1]
    assert "起失效" in out
    assert main(["token", "create", "-c", cfg, "--name", "forever", "--role", "operator"]) == 0
    forever = capsys.readouterr().out.strip().splitlines()[-1]
    svc = Service(load_config(cfg), clock=FakeClock(local(2026, 11, 28, 10, 0)))
    try:
        row = next(t for t in svc.ledger.people.tokens() if t.name == "temp-ops")
        assert row.expires_at - row.created_at == timedelta(days=2)
        expires = row.expires_at
        client = TestClient(create_app(svc))

        def status(tok: str) -> int:
            return client.get("/api/v1/status", headers={"Authorization": f"Bearer {tok}"}).status_code

        svc.clock.set(expires - timedelta(minutes=1))  # type: ignore[attr-defined]
        assert status(token) == 200
        svc.clock.set(expires + timedelta(seconds=1))  # type: ignore[attr-defined]
        assert status(token) == 401
        assert status(forever) == 200  # a token without --expires-days never expires
        assert any(e.action == "auth.failed" for e in svc.ledger.reads.audit_page(0, 50)[0])
    finally:
        svc.close()
    assert main(["token", "list", "-c", cfg]) == 0
    listed = capsys.readouterr().out
    local_expiry = expires.astimezone(load_config(cfg).tz).strftime("%Y-%m-%d %H:%M")
    temp = next(line for line in listed.splitlines() if "temp-ops" in line)
    assert local_expiry in temp
    assert "有效" in temp
    assert "永久" in next(line for line in listed.splitlines() if "\tforever\t" in line)
    with time_machine.travel(expires + timedelta(seconds=1), tick=False):  # the CLI's clock is the wall's
        assert main(["token", "list", "-c", cfg]) == 0
    listed = capsys.readouterr().out
    assert "已过期" in next(line for line in listed.splitlines() if "temp-ops" in line)
    assert "有效" in next(line for line in listed.splitlines() if "\tforever\t" in line)


def test_expires_days_must_be_positive(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["token", "create", "-c", cfg, "--name", "x", "--role", "operator", "--expires-days", "0"]) == 2
    assert "--expires-days" in capsys.readouterr().err
