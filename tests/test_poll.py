"""The automatic flow on the embedded default: poll -> alert -> outbox SMS and folder MP3s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broadcaster.audio.compose import load
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local


def service(confdir: Path, clock: FakeClock) -> Service:
    return Service(load_config(confdir / "broadcaster.yaml"), clock=clock)


def outbox(confdir: Path) -> list[dict]:
    p = confdir.parent / "var" / "outbox" / "sms.jsonl"
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []


def speaker_files(confdir: Path) -> dict[str, list[Path]]:
    base = confdir.parent / "var" / "speakers"
    return {d.name: sorted(d.glob("*.mp3")) for d in sorted(base.iterdir())} if base.exists() else {}


def poll(confdir: Path, clock: FakeClock, **kw):  # type: ignore[no-untyped-def]
    svc = service(confdir, clock)
    try:
        svc.dispatcher.reconcile()
        report = svc.poll(**kw)
        if report.created:
            svc.dispatcher.drain([report.alert_id])
        return report
    finally:
        svc.close()


def test_poll_sends_once_and_writes_one_mp3_per_village(confdir: Path) -> None:
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    r = poll(confdir, clock)
    assert r.level == 4 and r.created and r.sms == 3 and r.plays == 3
    lines = outbox(confdir)
    assert sorted(x["to"] for x in lines) == ["+8613800138000", "+8613900139001", "+8615000150002"]
    assert all(x["alert_id"] == r.alert_id and x["body"].startswith("【XX镇文化站】") for x in lines)
    files = speaker_files(confdir)
    assert set(files) == {"dongcun", "xicun", "nancun"} and all(len(v) == 1 for v in files.values())
    f = files["dongcun"][0]
    assert f.name.startswith("20261128-1930-")  # named by local play time
    audio = load(f)
    assert 5 <= audio.duration_seconds <= 120

    # Polling again, later the same evening, sends nothing new.
    clock.set(local(2026, 11, 28, 18, 0))
    r2 = poll(confdir, clock)
    assert not r2.created and "already alerted" in r2.reason
    assert len(outbox(confdir)) == 3
    assert sum(len(v) for v in speaker_files(confdir).values()) == 3


def test_higher_level_later_escalates_once(confdir: Path) -> None:
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    poll(confdir, clock)
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=5))
    clock.set(local(2026, 11, 28, 18, 0))
    r = poll(confdir, clock)
    assert r.created and r.level == 5 and r.sms == 6
    clock.set(local(2026, 11, 28, 18, 5))
    assert not poll(confdir, clock).created
    lines = outbox(confdir)
    assert len(lines) == 3 + 6
    assert sum("5级" in x["body"] for x in lines) == 6
    # A lower level afterwards never alerts again.
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=3))
    assert not poll(confdir, clock).created and len(outbox(confdir)) == 9


def test_low_level_and_out_of_season_send_nothing(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=2))
    r = poll(confdir, FakeClock(local(2026, 11, 28, 16, 30)))
    assert r.level == 2 and not r.created and outbox(confdir) == []
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=5))
    r = poll(confdir, FakeClock(local(2026, 7, 1, 16, 30)))
    assert r.level == 5 and not r.in_season and not r.created and outbox(confdir) == []


def test_poll_dry_run_cli_prints_and_sends_nothing(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poll", "--dry-run", "-c", str(confdir / "broadcaster.yaml")]) == 0
    out = capsys.readouterr().out
    assert "等级 / level: 4 级（容易发生）" in out and "将发送 / would send: 3 条短信" in out
    assert "138****8000" in out and "13800138000" not in out
    assert outbox(confdir) == [] and speaker_files(confdir) == {}


def test_poll_json_shape(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["poll", "--dry-run", "--json", "-c", str(confdir / "broadcaster.yaml")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["level"] == 4 and data["sms"] == 3 and data["plays"] == 3
    assert data["reading"]["level"] == 4 and data["sources"] == [{"source": "demo", "level": 4}]


def test_poll_exit_1_when_the_feed_fails(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(feed={"type": "file", "path": "missing.json"}))
    assert main(["poll", "-c", str(confdir / "broadcaster.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().out


def test_simulate(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--level", "5", "--date", "2026-12-01", "-c", str(confdir / "broadcaster.yaml")]) == 0
    out = capsys.readouterr().out
    assert "短信 6 条" in out and "喇叭播放 3 次" in out and "12-01 19:30" in out


def test_source_season_limits_a_source(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(season={"start": "12-01", "end": "02-28"}))
    r = poll(confdir, FakeClock(local(2026, 11, 28, 16, 30)), dry_run=True)
    assert r.level is None and r.result.ok and "季节" in (r.result.outcomes[0].note or "")
    r = poll(confdir, FakeClock(local(2026, 12, 5, 16, 30)), dry_run=True)
    assert r.level == 4
