"""Adding a village agent in one documented path (issue 19, item 4): ``broadcaster agent add``
prints the directory line and the token; the token then works; tokens are refused for speakers
that are not agents."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.web.auth import resolve_token


@pytest.fixture(autouse=True)
def _keep_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved


def add_agent(confdir: Path, capsys, village: str = "dongcun", sid: str = "dongcun-room") -> str:
    """Run ``agent add``, paste its line into directory.yaml as the admin would; the token."""
    assert main(["agent", "add", "--village", village, "--id", sid, "-c", str(confdir / "broadcaster.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    line = next(x.strip() for x in out if x.strip().startswith("- {id: "))
    assert out[0].startswith("1. 把下面这一行加到 directory.yaml 中 东村（dongcun）的 speakers 下")
    token = out[-1].strip()
    path = confdir / "directory.yaml"
    d = yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = yaml.safe_load(line)[0]
    assert entry["id"] == sid and entry["type"] == "agent" and re.fullmatch(r"[0-9a-f]{64}", entry["token_sha256"])
    next(v for v in d["villages"] if v["id"] == village)["speakers"].append(entry)
    path.write_text(yaml.safe_dump(d, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return token


def test_agent_add_prints_the_line_and_a_token_that_works(confdir: Path, capsys) -> None:
    token = add_agent(confdir, capsys)
    assert main(["check", "-c", str(confdir / "broadcaster.yaml")]) == 0  # the pasted line is valid
    capsys.readouterr()
    svc = Service(load_config(confdir / "broadcaster.yaml"))
    try:
        who = resolve_token(svc, token)
        assert who is not None and who.role == "agent" and who.speaker_id == "dongcun-room"
    finally:
        svc.close()
    # the same id again, an unknown village: refused, naming the flag, in Chinese first
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["agent", "add", "--village", "dongcun", "--id", "dongcun-room", "-c", cfg]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("参数错误：--id：终端编号 dongcun-room 已被使用")
    assert main(["agent", "add", "--village", "beicun", "--id", "beicun-room", "-c", cfg]) == 2
    assert "已知的村：东村（dongcun）" in capsys.readouterr().err


def test_agent_tokens_only_for_agent_speakers(confdir: Path, capsys) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["token", "create", "--name", "东村喇叭", "--role", "agent", "--speaker", "dongcun-dir", "-c", cfg]) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("参数错误：--speaker：喇叭终端 dongcun-dir 不是广播室代理") and "agent add" in err


def test_a_running_service_takes_a_new_agent_and_it_gets_tonights_play(confdir: Path, capsys) -> None:
    from tests.conftest import edit_yaml, local
    from tests.test_api import make_api

    api = make_api(confdir)  # the running service, on the test's clock (14:00)
    try:
        api.svc.poll()  # a level-4 night: 19:30 in every village (the folder endpoints)
        token = add_agent(confdir, capsys)
        h = {"Authorization": f"Bearer {token}"}
        assert api.client.get("/api/agent/v1/commands?wait=0", headers=h).status_code == 401  # not yet known
        api.clock.set(local(2026, 11, 28, 17, 40))
        added, problems = api.svc.reload_directory(actor="test")
        assert added == ["dongcun-room"] and not [p for p in problems if not p.warning]
        cmds = api.client.get("/api/agent/v1/commands?wait=0", headers=h)
        assert cmds.status_code == 200, cmds.text
        plays = [c for c in cmds.json() if c.get("play_at")]
        assert len(plays) == 1 and plays[0]["play_at"].startswith("2026-11-28T19:30"), cmds.json()
        assert any(e.action == "directory.reload" for e in api.audit())
        # Reloading again adds nothing twice; a broken file changes nothing.
        assert api.svc.reload_directory(actor="test")[0] == []
        edit_yaml(confdir / "directory.yaml", lambda d: d["contacts"][0].update(phone="123"))
        added, problems = api.svc.reload_directory(actor="test")
        assert added == [] and problems and "dongcun-room" in api.svc.cfg.speakers
        assert len([c for c in api.client.get("/api/agent/v1/commands?wait=0", headers=h).json()
                    if c.get("play_at")]) == 1
    finally:
        api.svc.close()


@pytest.mark.clock
def test_sighup_makes_broadcaster_run_read_the_directory_again(confdir: Path, tmp_path: Path, capsys) -> None:
    import signal

    from tests.conftest import edit_yaml
    from tests.support.procs import free_port, wait_for
    from tests.support.stack import Stack

    port = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(
        listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    stack = Stack(tmp_path, confdir, port)
    try:
        stack.start_server()
        add_agent(confdir, capsys)
        stack.server.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "directory reloaded" in stack.log.read_text(), timeout=15), stack.log.read_text()[-2000:]
        assert "1 new" in stack.log.read_text() and stack.server.poll() is None  # still serving
    finally:
        stack.close()
