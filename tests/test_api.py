"""The JSON API (DESIGN A6): auth, roles, validation, approval, scheduling and cancel."""

from __future__ import annotations

import io
import json
import math
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.ledger import AuditEntry
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from broadcaster.web.auth import create_token
from tests.conftest import edit_yaml, local

START = local(2026, 11, 28, 14, 0)


@dataclass
class Api:
    svc: Service
    clock: FakeClock
    client: TestClient
    confdir: Path
    tokens: dict[str, str]

    def h(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    def post(self, path: str, who: str | None = "alice", **kw):  # type: ignore[no-untyped-def]
        return self.client.post(path, headers=self.h(who), **kw)

    def get(self, path: str, who: str | None = "alice", **kw):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self.h(who), **kw)

    def outbox(self) -> list[dict]:
        p = self.confdir.parent / "var" / "outbox" / "sms.jsonl"
        return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []

    def speaker_files(self) -> list[Path]:
        base = self.confdir.parent / "var" / "speakers"
        return sorted(base.rglob("*.mp3")) if base.exists() else []

    def audit(self) -> list[AuditEntry]:
        with self.svc.ledger.reader() as s:
            return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def make_api(confdir: Path, edit=None) -> Api:  # type: ignore[no-untyped-def]
    if edit:
        edit_yaml(confdir / "broadcaster.yaml", edit)
    clock = FakeClock(START)
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    tokens = {name: create_token(svc.ledger, name, role, START, speaker)
              for name, role, speaker in (("alice", "operator", None), ("bob", "operator", None),
                                          ("carol", "approver", None), ("admin", "admin", None),
                                          ("agent", "agent", "dongcun-dir"))}
    return Api(svc, clock, TestClient(create_app(svc)), confdir, tokens)


@pytest.fixture
def api(confdir: Path) -> Iterator[Api]:
    a = make_api(confdir)
    yield a
    a.svc.close()


BODY = {"text": "今晚有大风降温，请注意通风防煤气中毒。", "villages": ["dongcun", "xicun"], "sms_groups": ["cadres"]}


def wav_bytes(seconds: float, rate: int = 8000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        period = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * i / 40))) for i in range(40))
        w.writeframes(period * int(seconds * rate / 40))
    return buf.getvalue()


# ---------------------------------------------------------------- auth and roles


@pytest.mark.parametrize("method,path", [
    ("get", "/api/v1/status"), ("post", "/api/v1/broadcasts"), ("post", "/api/v1/broadcasts/1/approve"),
    ("post", "/api/v1/broadcasts/1/cancel"), ("get", "/api/v1/broadcasts/1"), ("get", "/api/v1/alerts"),
    ("post", "/api/v1/preview"), ("post", "/api/v1/broadcasts/upload"),
])
def test_no_token_is_401_and_audited(api: Api, method: str, path: str) -> None:
    r = getattr(api.client, method)(path, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401
    assert any(e.action == "auth.failed" and e.detail["path"] == path for e in api.audit())
    assert not any("not-a-token" in json.dumps(e.detail) for e in api.audit())


def test_agent_token_cannot_create_or_approve(api: Api) -> None:
    assert api.post("/api/v1/broadcasts", "agent", json=BODY).status_code == 403
    bid = api.post("/api/v1/broadcasts", json=BODY).json()["id"]
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "agent").status_code == 403
    assert api.get("/api/v1/status", "agent").status_code == 403


def test_operator_cannot_approve_and_author_cannot_approve_own(api: Api) -> None:
    bid = api.post("/api/v1/broadcasts", "carol", json=BODY).json()["id"]  # an approver authors it
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "bob").status_code == 403  # wrong role
    r = api.post(f"/api/v1/broadcasts/{bid}/approve", "carol")  # own
    assert r.status_code == 403
    assert api.get(f"/api/v1/broadcasts/{bid}").json()["status"] == "pending_approval"
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "admin").status_code == 200
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "admin").status_code == 409


def test_status_endpoint(api: Api) -> None:
    r = api.get("/api/v1/status")
    assert r.status_code == 200 and "next_jobs" in r.json() and "level" in r.json()


# ------------------------------------------------------------------- validation


@pytest.mark.parametrize("change,field", [
    ({"text": ""}, "text"),
    ({"text": "   "}, "text"),
    ({"text": "字" * 501}, "text"),
    ({"villages": ["dongcun", "atlantis"]}, "villages"),
    ({"sms_groups": ["martians"]}, "sms_groups"),
    ({"at": "2026-11-28T13:00:00+08:00"}, "at"),
    ({"at": "tomorrow"}, "at"),
    ({"repeat": 0}, "repeat"),
    ({"villages": [], "sms_groups": []}, "villages"),
    ({"villages": "some"}, "villages"),
])
def test_invalid_broadcast_is_422_naming_the_field(api: Api, change: dict, field: str) -> None:
    r = api.post("/api/v1/broadcasts", json={**BODY, **change})
    assert r.status_code == 422, r.text
    assert field in r.text


def test_upload_not_audio_or_too_long_is_422(api: Api) -> None:
    form = {"text": "录音广播", "villages": "dongcun"}
    r = api.post("/api/v1/broadcasts/upload", data=form, files={"audio": ("x.mp3", b"not audio at all", "audio/mpeg")})
    assert r.status_code == 422 and "audio" in r.text
    long = wav_bytes(5.5 * 60, rate=4000)
    r = api.post("/api/v1/broadcasts/upload", data=form, files={"audio": ("long.wav", long, "audio/wav")})
    assert r.status_code == 422 and "audio" in r.text and "5" in r.text


def test_upload_recording_plays_it(confdir: Path) -> None:
    api = make_api(confdir, lambda d: d["http"].update(require_approval=False))
    try:
        r = api.post("/api/v1/broadcasts/upload", data={"text": "录音广播", "villages": "all", "repeat": "1"},
                     files={"audio": ("rec.wav", wav_bytes(3), "audio/wav")})
        assert r.status_code == 201, r.text
        bid = r.json()["id"]
        api.svc.dispatcher.drain([bid])
        got = api.get(f"/api/v1/broadcasts/{bid}").json()
        assert got["upload"] and got["deliveries"]["speaker"] == {"sent": 3} and got["status"] == "done"
        assert len(api.speaker_files()) == 3 and api.outbox() == []
    finally:
        api.svc.close()


# -------------------------------------------------------------------- lifecycle


def test_approved_broadcast_goes_out_at_its_time(api: Api) -> None:
    at = local(2026, 11, 28, 18, 0)
    r = api.post("/api/v1/broadcasts", json={**BODY, "at": at.isoformat(), "repeat": 1})
    assert r.status_code == 201 and r.json()["status"] == "pending_approval"
    bid = r.json()["id"]
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "carol").json()["status"] == "scheduled"
    got = api.get(f"/api/v1/broadcasts/{bid}").json()
    assert got["deliveries"] == {"sms": {"pending": 3}, "speaker": {"pending": 2}} and got["text"] == BODY["text"]

    api.clock.set(local(2026, 11, 28, 17, 59))
    api.svc.dispatcher.drain([bid])
    # No SMS before `at`; the bulletin is handed to folder endpoints as soon as it is approved
    # (DESIGN A7), named for its play time, and the broadcast still reads as scheduled.
    assert api.outbox() == [] and [f.name[:13] for f in api.speaker_files()] == ["20261128-1800"] * 2
    assert api.get(f"/api/v1/broadcasts/{bid}").json()["status"] == "scheduled"

    api.clock.set(at)
    api.svc.dispatcher.drain([bid])
    assert sorted(x["to"] for x in api.outbox()) == ["+8613800138000", "+8613900139001", "+8615000150002"]
    assert all(x["body"] == BODY["text"] for x in api.outbox())
    assert [f.name[:13] for f in api.speaker_files()] == ["20261128-1800"] * 2
    got = api.get(f"/api/v1/broadcasts/{bid}").json()
    assert got["status"] == "done" and got["deliveries"] == {"sms": {"sent": 3}, "speaker": {"sent": 2}}

    actions = [(e.actor, e.action) for e in api.audit() if e.object_id == str(bid)]
    assert actions == [("alice", "broadcast.create"), ("carol", "broadcast.approve")]
    create = next(e for e in api.audit() if e.action == "broadcast.create")
    assert create.detail["text"] == BODY["text"] and len(create.detail["audio_sha256"]) == 64

    alerts = api.get("/api/v1/alerts", params={"since": START.isoformat()}).json()
    assert [a["id"] for a in alerts] == [bid] and alerts[0]["kind"] == "manual"
    assert alerts[0]["plays"] == {"dongcun": {"sent": 1}, "xicun": {"sent": 1}}
    assert api.get("/api/v1/alerts", params={"since": "yesterday"}).status_code == 422


def test_cancel_before_at_sends_nothing(api: Api) -> None:
    at = local(2026, 11, 28, 18, 0)
    bid = api.post("/api/v1/broadcasts", json={**BODY, "at": at.isoformat()}).json()["id"]
    api.post(f"/api/v1/broadcasts/{bid}/approve", "carol")
    r = api.post(f"/api/v1/broadcasts/{bid}/cancel", "bob")
    assert r.status_code == 200 and r.json()["cancelled"] == 5
    api.clock.set(at)
    api.svc.dispatcher.drain([bid])
    assert api.outbox() == [] and api.speaker_files() == []
    got = api.get(f"/api/v1/broadcasts/{bid}").json()
    assert got["status"] == "cancelled" and got["deliveries"] == {"sms": {"cancelled": 3}, "speaker": {"cancelled": 2}}
    assert any(e.action == "broadcast.cancel" and e.actor == "bob" for e in api.audit())


def test_without_approval_it_goes_out_now(confdir: Path) -> None:
    api = make_api(confdir, lambda d: d["http"].update(require_approval=False))
    try:
        r = api.post("/api/v1/broadcasts", json={**BODY, "villages": "all"})
        assert r.status_code == 201 and r.json()["status"] == "dispatching"
        api.svc.dispatcher.drain([r.json()["id"]])
        assert len(api.outbox()) == 3 and len(api.speaker_files()) == 3
        assert api.post(f"/api/v1/broadcasts/{r.json()['id']}/cancel").status_code == 409
    finally:
        api.svc.close()


def test_unknown_broadcast_is_404(api: Api) -> None:
    assert api.get("/api/v1/broadcasts/999").status_code == 404
    assert api.post("/api/v1/broadcasts/999/approve", "carol").status_code == 404


def test_preview_is_the_mp3_bulletin(api: Api) -> None:
    r = api.post("/api/v1/preview", json={"text": "试听一下", "repeat": 1})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg" and len(r.content) > 1000
    assert r.content[:3] == b"ID3" or r.content[0] == 0xFF
    assert api.post("/api/v1/preview", json={"text": ""}).status_code == 422
