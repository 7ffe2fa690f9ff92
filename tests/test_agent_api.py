"""Agent endpoints: long-poll commands, results, per-speaker isolation, audio auth (DESIGN A6, A7)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.ledger import AuditEntry, Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from broadcaster.web.auth import create_token
from tests.conftest import edit_yaml, local

TOKEN_A = "dongcun-agent-token-0123456789"
TOKEN_B = "xicun-agent-token-0123456789ab"


def agent_directory(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dongcun and xicun get an agent speaker each (tokens from env vars); nancun keeps its folder."""
    monkeypatch.setenv("DONGCUN_AGENT_TOKEN", TOKEN_A)
    monkeypatch.setenv("XICUN_AGENT_TOKEN", TOKEN_B)

    def fn(d: dict) -> None:
        for v in d["villages"]:
            if v["id"] in ("dongcun", "xicun"):
                var = v["id"].upper() + "_AGENT_TOKEN"
                v["speakers"] = [{"id": f"{v['id']}-room", "type": "agent", "token": "${" + var + "}"}]

    edit_yaml(confdir / "directory.yaml", fn)


@pytest.fixture
def setup(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, TestClient, FakeClock]]:
    agent_directory(confdir, monkeypatch)
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    report = svc.poll()
    assert report.created and report.plays == 3
    svc.dispatcher.drain([report.alert_id])
    with TestClient(create_app(svc)) as client:
        yield svc, client, clock
    svc.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def deliveries(svc: Service, speaker: str) -> list[Delivery]:
    from sqlalchemy import select

    with svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.target == speaker)))


def test_commands_results_and_isolation(setup) -> None:  # type: ignore[no-untyped-def]
    svc, client, clock = setup
    r = client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A))
    assert r.status_code == 200
    cmds = r.json()
    assert len(cmds) == 1
    c = cmds[0]
    assert set(c) == {"id", "audio_url", "sha256", "play_at", "expires_at", "repeat", "text"}
    assert c["play_at"].startswith("2026-11-28T19:30") and c["text"].startswith("各位村民")
    d = deliveries(svc, "dongcun-room")[0]
    assert d.state == "pending" and d.sent_at is not None and d.attempts == 1  # handed to the agent

    # The audio: own speaker's with its token; not with village B's; operator token gets it.
    name = c["audio_url"].rsplit("/", 1)[1]
    a = client.get(f"/api/v1/audio/{name}", headers=auth(TOKEN_A))
    assert a.status_code == 200 and hashlib.sha256(a.content).hexdigest() == c["sha256"]
    assert client.get(f"/api/v1/audio/{name}").status_code == 401
    op = create_token(svc.ledger, "op", "operator", clock.now())
    assert client.get(f"/api/v1/audio/{name}", headers=auth(op)).status_code == 200

    b = client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_B)).json()
    assert len(b) == 1 and b[0]["id"] != c["id"]
    # Village B's token cannot report A's command; operators cannot use agent endpoints.
    r = client.post(f"/api/agent/v1/commands/{c['id']}/result", json={"status": "played"}, headers=auth(TOKEN_B))
    assert r.status_code == 404
    assert client.get("/api/agent/v1/commands?wait=0", headers=auth(op)).status_code == 403
    assert client.get("/api/agent/v1/commands?wait=0", headers=auth("wrong-token-xxxxxxxx")).status_code == 401
    # Failed authentication on the audio and agent routes is audited like the API's, once per
    # client and minute (the agent 401 just after the audio 401 is counted, not written).
    with svc.ledger.reader() as s:
        failed = s.scalars(select(AuditEntry).where(AuditEntry.action == "auth.failed")).all()
    assert [e.detail["path"] for e in failed] == [f"/api/v1/audio/{name}"]
    assert not any("wrong-token" in str(e.detail) for e in failed)

    # Validation names the field.
    r = client.post(f"/api/agent/v1/commands/{c['id']}/result", json={"status": "loud"}, headers=auth(TOKEN_A))
    assert r.status_code == 422 and "status" in r.text
    r = client.post(f"/api/agent/v1/commands/{c['id']}/result", json={"status": "played", "played_at": "x"},
                    headers=auth(TOKEN_A))
    assert r.status_code == 422 and "played_at" in r.text

    played_at = local(2026, 11, 28, 19, 30)
    clock.set(played_at + timedelta(seconds=40))
    body = {"status": "played", "played_at": played_at.isoformat()}
    for _ in range(2):  # idempotent
        r = client.post(f"/api/agent/v1/commands/{c['id']}/result", json=body, headers=auth(TOKEN_A))
        assert r.status_code == 200 and r.json()["state"] == "played"
    # Forward only: a later "failed" does not undo "played".
    r = client.post(f"/api/agent/v1/commands/{c['id']}/result", json={"status": "failed", "error": "x"},
                    headers=auth(TOKEN_A))
    assert r.json()["state"] == "played"
    d = deliveries(svc, "dongcun-room")[0]
    assert d.state == "played" and d.played_at == played_at
    assert client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json() == []
    agents = client.get("/api/v1/agents", headers=auth(op)).json()["agents"]
    assert set(agents) == {"dongcun-room", "xicun-room"}


def test_long_poll_waits_then_returns_empty(setup) -> None:  # type: ignore[no-untyped-def]
    svc, client, _clock = setup
    cmds = client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json()
    client.post(f"/api/agent/v1/commands/{cmds[0]['id']}/result", json={"status": "failed", "error": "amp off"},
                headers=auth(TOKEN_A))
    assert deliveries(svc, "dongcun-room")[0].state == "failed"
    t0 = time.monotonic()
    assert client.get("/api/agent/v1/commands?wait=1", headers=auth(TOKEN_A)).json() == []
    assert 0.9 <= time.monotonic() - t0 < 3


def test_signed_audio_url_for_cloud_speakers(setup) -> None:  # type: ignore[no-untyped-def]
    from broadcaster.audio.links import AudioLinks, url_key

    svc, client, clock = setup
    d = deliveries(svc, "dongcun-room")[0]
    name = f"{d.audio_sha256}.{d.audio_ext}"
    links = AudioLinks("http://testserver", url_key(svc.cfg.data_dir))
    url = links.signed(name, clock.now() + timedelta(days=3650))
    assert client.get(url[len("http://testserver"):]).status_code == 200
    assert client.get(url[len("http://testserver"):].replace("sig=", "sig=0")).status_code == 403
    old = links.signed(name, local(2020, 1, 1))
    assert client.get(old[len("http://testserver"):]).status_code == 403
