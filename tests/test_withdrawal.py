"""Withdrawal (DESIGN A7): a cancelled broadcast or a superseded alert is taken back from every
endpoint that already holds it: an agent (before and after it cached the audio), an ``http``
endpoint (``DELETE``) and a folder (the file is removed). A play that happened anyway is shown
as played. Times are the FakeClock's (28 Nov 2026, Asia/Shanghai), whatever the real hour.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.agent import Agent
from broadcaster.ledger import Delivery
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local
from tests.doubles.http_speaker import SpeakerReceiver
from tests.test_agent_api import TOKEN_A, auth
from tests.test_api import Api, make_api

AT = local(2026, 11, 28, 18, 0)
BODY = {"text": "今晚停电检修，请注意用火安全。", "villages": ["dongcun", "xicun", "nancun"], "sms_groups": [],
        "at": AT.isoformat(), "repeat": 1}


def rows(api: Api, alert_id: int) -> dict[str, Delivery]:
    with api.svc.ledger.reader() as s:
        return {d.target: d for d in s.scalars(select(Delivery).where(Delivery.alert_id == alert_id))}


@pytest.fixture
def mixed(confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, SpeakerReceiver]]:
    """东村 an agent, 西村 an http endpoint (the double), 南村 a folder."""
    monkeypatch.setenv("DONGCUN_AGENT_TOKEN", TOKEN_A)
    with SpeakerReceiver(token="tok-xi") as receiver:
        def fn(d: dict) -> None:
            for v in d["villages"]:
                if v["id"] == "dongcun":
                    v["speakers"] = [{"id": "dongcun-room", "type": "agent", "token": "${DONGCUN_AGENT_TOKEN}"}]
                if v["id"] == "xicun":
                    v["speakers"] = [{"id": "xicun-ip", "type": "http", "url": receiver.play_url, "token": "tok-xi"}]
        edit_yaml(confdir / "directory.yaml", fn)
        api = make_api(confdir)
        try:
            yield api, receiver
        finally:
            api.svc.close()


def approved(api: Api, body: dict = BODY) -> int:
    bid = api.post("/api/v1/broadcasts", json=body).json()["id"]
    assert api.post(f"/api/v1/broadcasts/{bid}/approve", "carol").status_code == 200
    api.svc.dispatcher.drain([bid])
    return bid


def test_cancel_withdraws_from_http_folder_and_agent(mixed) -> None:  # type: ignore[no-untyped-def]
    api, receiver = mixed
    bid = approved(api)
    # Handed over as soon as approved (A7): http and folder hold the 18:00 play; the agent fetches it.
    r = rows(api, bid)
    assert r["xicun-ip"].state == "sent" and r["nancun-dir"].state == "sent"
    assert [p.delivery_id for p in receiver.plays] == [str(r["xicun-ip"].id)]
    folder_file = Path(r["nancun-dir"].provider_id or "")
    assert folder_file.exists() and folder_file.name.startswith("20261128-1800-")
    got = api.client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A))
    assert [c["id"] for c in got.json()] == [r["dongcun-room"].id]
    etag = got.headers["etag"]

    api.clock.set(AT - timedelta(minutes=10))
    res = api.post(f"/api/v1/broadcasts/{bid}/cancel").json()
    assert res == {"id": bid, "status": "cancelled", "cancelled": 3}
    api.svc.dispatcher.drain([bid])
    r = rows(api, bid)
    # http: DELETE with the same token and Idempotency-Key; folder: the file is gone.
    delete = [q for q in receiver.requests if q.method == "DELETE"]
    assert [(q.idempotency_key, q.status, q.headers["authorization"]) for q in delete] == [
        (str(r["xicun-ip"].id), 204, "Bearer tok-xi")]
    assert [p.delivery_id for p in receiver.withdrawn] == [str(r["xicun-ip"].id)] and receiver.plays == []
    assert not folder_file.exists()
    assert {t: (d.state, d.withdrawal) for t, d in r.items()} == {
        "xicun-ip": ("cancelled", "done"), "nancun-dir": ("cancelled", "done"), "dongcun-room": ("cancelled", "pending")}
    # The agent's next long poll (its ETag no longer matches) carries the withdrawal at once.
    got = api.client.get("/api/agent/v1/commands?wait=5", headers={**auth(TOKEN_A), "If-None-Match": etag})
    assert got.json() == [{"id": r["dongcun-room"].id, "cancelled": True}]
    ack = api.client.post(f"/api/agent/v1/commands/{r['dongcun-room'].id}/result", json={"status": "cancelled"},
                          headers=auth(TOKEN_A))
    assert ack.json() == {"id": r["dongcun-room"].id, "state": "cancelled"}
    assert rows(api, bid)["dongcun-room"].withdrawal == "done"
    assert api.client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json() == []


def test_withdrawal_retries_then_gives_up_at_the_play_time(confdir: Path) -> None:
    with SpeakerReceiver(token="tok", script=[200, 503, 503]) as receiver:
        edit_yaml(confdir / "directory.yaml", lambda d: d.update(villages=[
            {"id": "xicun", "name": "西村", "speakers": [
                {"id": "xicun-ip", "type": "http", "url": receiver.play_url, "token": "tok"}]}],
            contacts=[c for c in d["contacts"] if c.get("village") != "dongcun" and c.get("village") != "nancun"]))
        api = make_api(confdir)
        try:
            bid = approved(api, {**BODY, "villages": ["xicun"]})
            api.post(f"/api/v1/broadcasts/{bid}/cancel")
            api.svc.dispatcher.drain([bid])
            d = rows(api, bid)["xicun-ip"]
            assert (d.state, d.withdrawal) == ("cancelled", "pending") and d.due_at > api.clock.now()
            api.clock.set(AT - timedelta(seconds=1))  # the retry is due; it fails again, too late now
            api.svc.dispatcher.drain([bid])
            d = rows(api, bid)["xicun-ip"]
            assert (d.state, d.withdrawal) == ("cancelled", "failed") and "503" in (d.last_error or "")
        finally:
            api.svc.close()
        assert [q.status for q in receiver.requests] == [200, 503, 503]


def test_a_play_reported_after_the_cancel_shows_as_played(mixed) -> None:  # type: ignore[no-untyped-def]
    api, _receiver = mixed
    bid = approved(api)
    cmd = api.client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json()[0]
    api.post(f"/api/v1/broadcasts/{bid}/cancel")
    # The agent had already started playing: its "played" arrives after the cancel.
    api.clock.set(AT + timedelta(seconds=40))
    res = api.client.post(f"/api/agent/v1/commands/{cmd['id']}/result",
                          json={"status": "played", "played_at": AT.isoformat()}, headers=auth(TOKEN_A))
    assert res.json() == {"id": cmd["id"], "state": "played"}
    d = rows(api, bid)["dongcun-room"]
    assert d.state == "played" and d.played_at == AT and "withdrawal" in (d.last_error or "")
    got = api.get(f"/api/v1/broadcasts/{bid}").json()
    assert got["status"] == "cancelled" and got["deliveries"]["speaker"].get("played") == 1
    # A late "cancelled" acknowledgement changes nothing any more.
    api.client.post(f"/api/agent/v1/commands/{cmd['id']}/result", json={"status": "cancelled"},
                    headers=auth(TOKEN_A))
    assert rows(api, bid)["dongcun-room"].state == "played"


def test_superseded_alert_withdraws_its_plays(mixed) -> None:  # type: ignore[no-untyped-def]
    api, receiver = mixed
    edit_yaml(api.confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=3))
    api.svc.cfg.sources[0].level = 3  # type: ignore[attr-defined]
    api.clock.set(local(2026, 11, 28, 16, 30))
    low = api.svc.poll()
    api.svc.dispatcher.drain([low.alert_id])
    before = rows(api, low.alert_id)
    assert before["xicun-ip"].state == "sent" and Path(before["nancun-dir"].provider_id or "").exists()
    assert api.client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json()

    api.svc.cfg.sources[0].level = 4  # type: ignore[attr-defined]
    api.clock.set(local(2026, 11, 28, 18, 0))
    high = api.svc.poll()
    assert high.created and high.level == 4
    api.svc.dispatcher.drain([low.alert_id, high.alert_id])
    after = rows(api, low.alert_id)
    assert {t: (d.state, d.withdrawal) for t, d in after.items() if d.channel == "speaker"} == {
        "xicun-ip": ("cancelled", "done"), "nancun-dir": ("cancelled", "done"), "dongcun-room": ("cancelled", "pending")}
    assert [p.delivery_id for p in receiver.withdrawn] == [str(before["xicun-ip"].id)]
    assert not Path(before["nancun-dir"].provider_id or "").exists()
    cmds = api.client.get("/api/agent/v1/commands?wait=0", headers=auth(TOKEN_A)).json()
    assert {"id": before["dongcun-room"].id, "cancelled": True} in cmds
    assert any(c.get("audio_url") for c in cmds)  # the level-4 play replaces it


# ----------------------------------------------------------------- the agent's side (unit)

DEAD = "http://127.0.0.1:9"


def command(cid: int, sha: str, t0) -> dict:  # type: ignore[no-untyped-def]
    return {"id": cid, "audio_url": f"{DEAD}/api/v1/audio/{sha}.mp3", "sha256": sha, "repeat": 1, "text": "",
            "play_at": (t0 + timedelta(minutes=5)).isoformat(), "expires_at": (t0 + timedelta(hours=1)).isoformat()}


@pytest.mark.parametrize("cached", [False, True], ids=["before-audio-cached", "after-audio-cached"])
def test_agent_drops_a_withdrawn_command_and_acknowledges(tmp_path: Path, cached: bool) -> None:
    t0 = local(2026, 11, 28, 17, 0)
    clock = FakeClock(t0)
    played: list[Path] = []
    audio = b"ID3 not really an mp3"
    sha = hashlib.sha256(audio).hexdigest()
    agent = Agent(DEAD, "tok", tmp_path, played.append, clock=clock, wait=0)
    if cached:
        (tmp_path / "audio" / f"{sha}.mp3").write_bytes(audio)
    agent.merge([command(5, sha, t0)])
    agent.merge([{"id": 5, "cancelled": True}])
    clock.set(t0 + timedelta(minutes=6))
    assert agent.tick() == 0 and played == []
    assert json.loads((tmp_path / "results" / "5.json").read_text()) == {"status": "cancelled"}
    # Remembered across a restart: the command is never played.
    again = Agent(DEAD, "tok", tmp_path, played.append, clock=clock, wait=0)
    again.merge([command(5, sha, t0)])
    assert again.tick() == 0 and played == []


def test_agent_reports_played_when_the_withdrawal_comes_too_late(tmp_path: Path) -> None:
    t0 = local(2026, 11, 28, 17, 0)
    clock = FakeClock(t0 + timedelta(minutes=5))
    audio = b"ID3 not really an mp3"
    sha = hashlib.sha256(audio).hexdigest()
    agent = Agent(DEAD, "tok", tmp_path, lambda p: None, clock=clock, wait=0)
    (tmp_path / "audio" / f"{sha}.mp3").write_bytes(audio)
    agent.merge([command(6, sha, t0)])
    assert agent.tick() == 1
    agent.merge([{"id": 6, "cancelled": True}])
    assert json.loads((tmp_path / "results" / "6.json").read_text())["status"] == "played"
