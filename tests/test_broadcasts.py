"""The manual-broadcast service layer and its CLI (``broadcast``, ``token create``)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.flows.manual import BroadcastRequest, Broadcasts
from broadcaster.errors import Conflict
from broadcaster.cli import main
from broadcaster.config import load_config
from broadcaster.errors import Forbidden, InputError
from broadcaster.ledger import ApiToken, AuditEntry, ContactFlag
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.auth import hash_token, resolve_token
from tests.conftest import edit_yaml, local
from tests.doubles.twilio import TwilioDouble
from tests.test_receipts import twilio_config

NOW = local(2026, 11, 28, 10, 0)


@pytest.fixture
def bc(confdir: Path):  # type: ignore[no-untyped-def]
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    yield Broadcasts(svc)
    svc.close()


def test_lifecycle_statuses_are_computed_from_deliveries(bc: Broadcasts) -> None:
    at = NOW + timedelta(hours=2)
    res = bc.create(BroadcastRequest("测试", ["nancun"], ["duty"], at.isoformat(), 1), "alice")
    bid = res["id"]
    assert res["status"] == "pending_approval" and bc.get(bid)["deliveries"] == {"sms": {}, "speaker": {}}
    with pytest.raises(Forbidden):
        bc.approve(bid, "alice")
    assert bc.approve(bid, "carol")["status"] == "scheduled"
    with pytest.raises(Conflict):
        bc.approve(bid, "dave")
    bc.svc.clock.set(at)  # type: ignore[attr-defined]
    assert bc.status_of(bid) == "dispatching"
    bc.svc.dispatcher.drain([bid])
    got = bc.get(bid)
    assert got["status"] == "done" and got["deliveries"] == {"sms": {"sent": 1}, "speaker": {"sent": 1}}
    assert got["approved_by"] == "carol" and got["at"].startswith("2026-11-28T12:00")


def test_naive_at_is_local_time_and_past_is_rejected(bc: Broadcasts) -> None:
    bid = bc.create(BroadcastRequest("测试", "all", [], "2026-11-28T19:30"), "alice")["id"]
    assert bc.get(bid)["at"] == "2026-11-28T19:30:00+08:00"
    with pytest.raises(InputError) as e:
        bc.create(BroadcastRequest("测试", "all", [], "2026-11-28T09:00"), "alice")
    assert e.value.field == "at"


def test_quiet_hours_reject_a_loudspeaker_time(confdir: Path) -> None:
    edit_yaml(confdir / "broadcaster.yaml",
              lambda d: d["schedule"].update(quiet_hours={"from": "21:30", "to": "06:30"}))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    try:
        with pytest.raises(InputError) as e:
            Broadcasts(svc).create(BroadcastRequest("测试", "all", [], "2026-11-28T22:00"), "alice")
        assert e.value.field == "at"
        # SMS only is fine at night.
        Broadcasts(svc).create(BroadcastRequest("测试", [], ["duty"], "2026-11-28T22:00"), "alice")
    finally:
        svc.close()


def test_unreachable_contacts_are_held_with_reason(bc: Broadcasts) -> None:
    with bc.svc.ledger.session() as s:
        s.add(ContactFlag(phone="+8613800138000", unreachable=True, reason="已退订", updated_at=NOW))
    bid = bc.create(BroadcastRequest("测试", [], ["cadres"]), "alice")["id"]
    bc.approve(bid, "carol")
    got = bc.get(bid)
    assert got["deliveries"]["sms"] == {"pending": 2} and got["held"] == ["SMS 张三: 已退订"]
    with bc.svc.ledger.reader() as s:
        approve = s.scalars(select(AuditEntry).where(AuditEntry.action == "broadcast.approve")).one()
    assert approve.detail["held"] == ["SMS 张三: 已退订"] and approve.detail["sms"] == 2


def test_cancel_pending_approval(bc: Broadcasts) -> None:
    bid = bc.create(BroadcastRequest("测试", "all", []), "alice")["id"]
    assert bc.cancel(bid, "bob") == {"id": bid, "status": "cancelled", "cancelled": 0}
    with pytest.raises(Conflict):
        bc.approve(bid, "carol")
    alerts = bc.alerts(NOW - timedelta(days=1))
    assert [(a["id"], a["status"], a["kind"]) for a in alerts] == [(bid, "cancelled", "manual")]


# ------------------------------------------------------------------------- CLI


def outbox(confdir: Path) -> list[dict]:
    p = confdir.parent / "var" / "outbox" / "sms.jsonl"
    return [json.loads(x) for x in p.read_text(encoding="utf-8").splitlines()] if p.exists() else []


def test_cli_broadcast_awaits_approval(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["broadcast", "-c", cfg, "--text", "测试", "--all", "--sms-groups", "cadres"]) == 0
    assert "等待审批" in capsys.readouterr().out and outbox(confdir) == []
    assert main(["broadcast", "-c", cfg, "--text", "测试", "--villages", "atlantis"]) == 2
    assert "villages" in capsys.readouterr().err
    assert main(["broadcast", "-c", cfg, "--text", "", "--all"]) == 2
    assert main(["broadcast", "-c", cfg, "--text", "x", "--all", "--at", "2001-01-01T00:00"]) == 2


def test_cli_broadcast_wait_without_approval(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["http"].update(require_approval=False))
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["broadcast", "-c", cfg, "--text", "测试", "--villages", "dongcun,xicun",
                 "--sms-groups", "cadres", "--repeat", "1", "--wait"]) == 0
    out = capsys.readouterr()
    assert "done" in out.out and "2/5" not in out.out and "5/5" in out.err
    assert len(outbox(confdir)) == 3


def test_cli_broadcast_exit_1_when_a_delivery_fails(confdir: Path) -> None:
    with TwilioDouble("AC" + "0" * 32, "test_auth_token", errors={"+8613800138000": 21211}) as tw:
        edit_yaml(confdir / "broadcaster.yaml", twilio_config(tw))
        rc = main(["broadcast", "-c", str(confdir / "broadcaster.yaml"), "--text", "测试", "--sms-groups", "cadres"])
    assert rc == 1 and len(tw.messages()) == 2


def test_cli_token_create(confdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = str(confdir / "broadcaster.yaml")
    assert main(["token", "create", "-c", cfg, "--name", "小王", "--role", "approver"]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    # Agent tokens belong to agent speakers only (a folder endpoint has no agent to use one).
    assert main(["token", "create", "-c", cfg, "--name", "东村广播室", "--role", "agent", "--speaker", "dongcun-dir"]) == 2
    edit_yaml(confdir / "directory.yaml", lambda d: d["villages"][0]["speakers"].append(
        {"id": "dongcun-room", "type": "agent", "token_sha256": "0" * 64}))
    capsys.readouterr()
    assert main(["token", "create", "-c", cfg, "--name", "东村广播室", "--role", "agent", "--speaker", "dongcun-room"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    agent = lines[-1]
    assert lines[-2] == f"token_sha256: {hashlib.sha256(agent.encode()).hexdigest()}"
    assert main(["token", "create", "-c", cfg, "--name", "x", "--role", "agent"]) == 2
    assert main(["token", "create", "-c", cfg, "--name", "x", "--role", "agent", "--speaker", "nope"]) == 2
    assert main(["token", "create", "-c", cfg, "--name", "x", "--role", "king"]) == 2
    svc = Service(load_config(confdir / "broadcaster.yaml"))
    try:
        assert resolve_token(svc, token).role == "approver"
        assert resolve_token(svc, agent).speaker_id == "dongcun-room"
        with svc.ledger.reader() as s:
            stored = {t.token_sha256 for t in s.scalars(select(ApiToken))}
        assert stored == {hash_token(token), hash_token(agent)}
    finally:
        svc.close()
    db = (confdir.parent / "var" / "broadcaster.db").read_bytes()
    assert token.encode() not in db and agent.encode() not in db
