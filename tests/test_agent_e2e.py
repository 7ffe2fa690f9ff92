"""The village agent end to end over real sockets, plus its offline and expiry rules (DESIGN A7).

``broadcaster run`` and two ``broadcaster agent`` processes; plays are put in the ledger with
``play_at`` a few seconds ahead (the rules' own timing is covered by test_poll/test_rules), and a
fake player records when it was called and the sha256 of what it was given.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from broadcaster.agent import Agent
from broadcaster.config import load_config
from broadcaster.ledger import Alert, Delivery, play_row
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml
from tests.support.clock import today_at
from tests.support.procs import free_port, wait_for
from tests.support.stack import Stack
from tests.test_agent_api import TOKEN_A, TOKEN_B, agent_directory

# The service runs on the wall clock here: .ci/run repeats these at four hours of the town's day.
pytestmark = pytest.mark.clock

def plays(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def stack(tmp_path: Path, confdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Stack, Service]]:
    agent_directory(confdir, monkeypatch)
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    # The service's own catch-up poll must not add plays of its own: SMS only.
    edit_yaml(confdir / "rules.yaml", lambda d: [r.pop("speakers", None) for r in d["rules"]])
    st = Stack(tmp_path, confdir, port, env={"DONGCUN_AGENT_TOKEN": TOKEN_A, "XICUN_AGENT_TOKEN": TOKEN_B})
    svc = Service(load_config(confdir / "broadcaster.yaml"))  # the test's own view of the ledger
    try:
        yield st, svc
    finally:
        st.close()
        svc.close()


def schedule(svc: Service, tag: str, play_at: datetime, speakers: list[str]) -> dict[str, Delivery]:
    """Put one play per speaker into the ledger, each village with its own text (so its own audio)."""
    cfg, now = svc.cfg, svc.now()
    rows = []
    for sid in speakers:
        village, _sc = cfg.speakers[sid]
        channel = svc.speakers[sid]
        b = svc.renderer.render(f"{village.name}测试广播{tag}。", repeat=1, fmt=channel.config.format or "mp3")
        rows.append(play_row(speaker_id=sid, village_id=village.id, kind=channel.type, mode=channel.mode,
                             sha256=b.sha256, ext=b.ext, repeat=1, play_at=play_at,
                             expires_at=play_at + timedelta(minutes=60), now=now))
    alert = Alert(kind="manual", dedupe_key=f"test:{tag}", region=cfg.settings.town, rules=["test"],
                  status="scheduled", created_at=now, created_by="test")
    alert_id, _ = svc.ledger.create_alert(alert, rows)
    return {d.target: d for d in rows_of(svc, alert_id)}


def rows_of(svc: Service, alert_id: int) -> list[Delivery]:
    with svc.ledger.reader() as s:
        return list(s.scalars(select(Delivery).where(Delivery.alert_id == alert_id)))


def state(svc: Service, d: Delivery) -> Delivery:
    with svc.ledger.reader() as s:
        return s.get(Delivery, d.id)


def test_agents_play_on_time_isolated_and_through_an_outage(stack) -> None:  # type: ignore[no-untyped-def]
    st, svc = stack
    st.start_server()
    log_a = st.start_agent("a", TOKEN_A)
    log_b = st.start_agent("b", TOKEN_B)
    play_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=6)
    rows = schedule(svc, "1", play_at, ["dongcun-room", "xicun-room"])

    for log, sid in ((log_a, "dongcun-room"), (log_b, "xicun-room")):
        got = wait_for(lambda log=log: plays(log), 15)
        assert got, (st.tmp / "agent-a.log").read_text()[-2000:]
        assert abs(got[0]["t"] - play_at.timestamp()) < 2.0
        assert got[0]["sha256"] == rows[sid].audio_sha256
        final = wait_for(lambda sid=sid: state(svc, rows[sid]).state == "played" and state(svc, rows[sid]), 10)
        assert final and final.played_at is not None and abs((final.played_at - play_at).total_seconds()) < 2.0
    assert len(plays(log_a)) == 1 and len(plays(log_b)) == 1

    # Village A's token reaches nothing of village B's.
    a = {"Authorization": f"Bearer {TOKEN_A}"}
    b_row = rows["xicun-room"]
    assert rows["dongcun-room"].audio_sha256 != b_row.audio_sha256
    r = requests.get(f"{st.url}/api/v1/audio/{b_row.audio_sha256}.{b_row.audio_ext}", headers=a, timeout=5)
    assert r.status_code in (403, 404)
    r = requests.post(f"{st.url}/api/agent/v1/commands/{b_row.id}/result", json={"status": "failed"}, headers=a, timeout=5)
    assert r.status_code in (403, 404)
    assert requests.get(f"{st.url}/api/agent/v1/commands?wait=0", headers=a, timeout=5).json() == []

    # Outage: A has the command and audio cached; the server dies before play_at and comes back after.
    play_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=7)
    row = schedule(svc, "2", play_at, ["dongcun-room"])["dongcun-room"]
    cached = st.tmp / "cache-a" / "audio" / f"{row.audio_sha256}.mp3"
    assert wait_for(cached.exists, 6), "agent did not cache the audio"
    st.stop_server()
    assert datetime.now(timezone.utc) < play_at, "server took too long to stop"
    got = wait_for(lambda: len(plays(log_a)) >= 2 and plays(log_a), 12)
    assert got and abs(got[1]["t"] - play_at.timestamp()) < 2.0 and got[1]["sha256"] == row.audio_sha256
    # The result waits on the agent's disk (written just after the player returns).
    assert wait_for(lambda: list((st.tmp / "cache-a" / "results").glob("*.json")), 3)
    assert state(svc, row).state == "pending"
    st.start_server()
    final = wait_for(lambda: state(svc, row).state == "played" and state(svc, row), 15)
    assert final and abs((final.played_at - play_at).total_seconds()) < 2.0
    assert len(plays(log_a)) == 2  # played once, never again


def test_a_cancel_reaches_an_agent_that_cached_the_play(stack) -> None:  # type: ignore[no-untyped-def]
    """The agent holds the command and its audio; the play is cancelled (here by another process
    writing the same ledger, as the CLI does): its long poll is answered within seconds with the
    withdrawal, it never plays, and it acknowledges (DESIGN A7)."""
    st, svc = stack
    st.start_server()
    log_a = st.start_agent("a", TOKEN_A, wait=30)  # a long poll like a real village PC's
    play_at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=8)
    row = schedule(svc, "w", play_at, ["dongcun-room"])["dongcun-room"]
    cached = st.tmp / "cache-a" / "audio" / f"{row.audio_sha256}.mp3"
    assert wait_for(cached.exists, 6), (st.tmp / "agent-a.log").read_text()[-2000:]
    n, withdrawing = svc.withdraw([row.alert_id], "cancelled by test")
    assert (n, withdrawing) == (1, 1)
    done = wait_for(lambda: state(svc, row).withdrawal == "done" and state(svc, row), 5)
    assert done and done.state == "cancelled", (st.tmp / "agent-a.log").read_text()[-2000:]
    time.sleep(max(0.0, (play_at - datetime.now(timezone.utc)).total_seconds()) + 1.5)
    assert plays(log_a) == [] and state(svc, row).state == "cancelled"
    assert "已被撤回" in (st.tmp / "agent-a.log").read_text()


# ---------------------------------------------------------------- unit: clock and player injected

DEAD = "http://127.0.0.1:9"  # discard port: nothing answers


def command(cid: int, play_at: datetime, expires_at: datetime, sha: str) -> dict[str, Any]:
    return {"id": cid, "audio_url": f"{DEAD}/api/v1/audio/{sha}.mp3", "sha256": sha,
            "play_at": play_at.isoformat(), "expires_at": expires_at.isoformat(), "repeat": 2, "text": "测试"}


def test_agent_never_plays_after_expiry_and_queues_results_offline(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 28, 11, 30, tzinfo=timezone.utc)
    clock = FakeClock(t0)
    calls: list[tuple[datetime, Path]] = []
    audio = b"ID3fake-mp3-bytes"
    sha = hashlib.sha256(audio).hexdigest()
    agent = Agent(DEAD, "tok", tmp_path, lambda p: calls.append((clock.now(), p)), clock=clock, wait=0)
    (tmp_path / "audio" / f"{sha}.mp3").write_bytes(audio)  # downloaded before the outage
    agent.merge([command(1, t0 + timedelta(minutes=5), t0 + timedelta(minutes=65), sha),
                 command(2, t0 - timedelta(hours=2), t0 - timedelta(hours=1), sha)])
    # Already past expiry: reported expired, never played.
    assert agent.tick() == 1 and calls == []
    assert json.loads((tmp_path / "results" / "2.json").read_text())["status"] == "expired"
    clock.set(t0 + timedelta(minutes=4, seconds=59))
    assert agent.tick() == 0 and calls == []
    clock.set(t0 + timedelta(minutes=5))
    assert agent.tick() == 1 and len(calls) == 2  # repeat 2, from the cache, server unreachable
    res = json.loads((tmp_path / "results" / "1.json").read_text())
    assert res["status"] == "played" and res["played_at"] == (t0 + timedelta(minutes=5)).isoformat()
    assert agent.flush_results() >= 1 and len(list((tmp_path / "results").glob("*.json"))) == 2
    # A restarted agent remembers what it did: nothing plays twice.
    again = Agent(DEAD, "tok", tmp_path, lambda p: calls.append((clock.now(), p)), clock=clock, wait=0)
    again.merge([command(1, t0 + timedelta(minutes=5), t0 + timedelta(minutes=65), sha)])
    assert again.tick() == 0 and len(calls) == 2


def test_agent_reports_a_player_failure(tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 28, 11, 30, tzinfo=timezone.utc)
    clock = FakeClock(t0)

    def broken(_p: Path) -> None:
        raise RuntimeError("player exited 1: no sound card")

    agent = Agent(DEAD, "tok", tmp_path, broken, clock=clock, wait=0)
    (tmp_path / "audio" / f"{'a' * 64}.mp3").write_bytes(b"x")
    agent.merge([command(7, t0, t0 + timedelta(hours=1), "a" * 64)])
    assert agent.tick() == 1
    res = json.loads((tmp_path / "results" / "7.json").read_text())
    assert res["status"] == "failed" and "no sound card" in res["error"]


@pytest.mark.serial  # "stops within 3 s" is a time bound: measured alone
def test_builtin_agent_plays_and_stop_is_prompt_with_long_polls_open(tmp_path: Path, confdir: Path) -> None:
    """The demo's built-in agent plays the catch-up alert's 19:30 play on time; SIGTERM with its
    long poll open stops the service at once and cleanly (no graceful-shutdown timeout, no
    traceback). The service's wall clock starts at 19:29:50 of today, whatever the real hour."""
    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    edit_yaml(confdir / "directory.yaml", lambda d: d["villages"][2]["speakers"].append(
        {"id": "nancun-room", "type": "agent", "builtin": True}))
    start = today_at(19, 29, 50)
    st = Stack(tmp_path, confdir, port, at=start)
    st.start_server()
    try:
        played = confdir.parent / "var" / "played" / "nancun-room"
        assert wait_for(lambda: list(played.glob("*.mp3")), 25), st.log.read_text()[-2000:]
        # Filed under the town's 19:30 (the name is the play's local time), not the real hour.
        assert [f.name[:13] for f in played.glob("*.mp3")] == [f"{start:%Y%m%d}-1930"]
        time.sleep(1.0)  # the agent is back in its long poll
        assert st.server is not None
        t0 = time.monotonic()
        st.server.send_signal(signal.SIGTERM)
        assert st.server.wait(10) == 0
        assert time.monotonic() - t0 < 3.0
    finally:
        st.close()
    log = st.log.read_text()
    assert "Traceback" not in log and "stopped" in log
    assert log.count("reported played") == 1
    # Times in the town's zone whatever the host's (this machine's is UTC, like a container's):
    # the agent's console line and every log line.
    assert f"将于 {start:%m-%d} 19:30:00 播放" in log
    assert re.search(rf"^{start:%Y-%m-%d} 19:2\d:\d\d,\d{{3}}\+0800 INFO", log, re.M), log[:500]
