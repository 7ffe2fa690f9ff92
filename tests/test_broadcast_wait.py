"""``broadcaster broadcast --wait`` follows a broadcast through approval to its end (issue 19,
item 6): it shows that it waits, goes on when an approver approves elsewhere, and exits with the
outcome (0 delivered, 1 cancelled)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.cli import admin, main
from broadcaster.config import load_config
from broadcaster.flows.manual import Broadcasts
from broadcaster.runtime.service import Service
from tests.support.procs import wait_for


@pytest.fixture(autouse=True)
def _fast_and_tidy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(admin, "WAIT_POLL_S", 0.05)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = saved


def start(confdir: Path, result: dict[str, int]) -> threading.Thread:
    args = ["broadcast", "-c", str(confdir / "broadcaster.yaml"), "--text", "今晚大风，注意通风",
            "--villages", "dongcun", "--sms-groups", "cadres", "--repeat", "1", "--wait"]
    t = threading.Thread(target=lambda: result.update(rc=main(args)), daemon=True)
    t.start()
    return t


def pending(svc: Service) -> int:
    found = svc.ledger.reads.pending_broadcasts()
    return found[0].id if found else 0


def test_wait_follows_the_broadcast_through_approval_to_delivery(confdir: Path, capsys) -> None:
    svc = Service(load_config(confdir / "broadcaster.yaml"))  # the approver's side (console/API)
    try:
        result: dict[str, int] = {}
        t = start(confdir, result)
        bid = wait_for(lambda: pending(svc), timeout=10)
        wait_for(lambda: "等待审批中" in capsys.readouterr().err, timeout=5)  # shows that it waits
        assert t.is_alive() and "rc" not in result  # it does not return while approval is pending
        Broadcasts(svc).approve(bid, "王站长")
        t.join(timeout=20)
        assert not t.is_alive() and result["rc"] == 0
        out = capsys.readouterr().out
        assert f"广播 {bid} 已由 王站长 审批" in out and f"广播 {bid}: 已完成" in out
        sms = [json.loads(x) for x in (confdir.parent / "var" / "outbox" / "sms.jsonl").read_text().splitlines()]
        assert sorted(m["to"] for m in sms) == ["+8613800138000", "+8613900139001", "+8615000150002"]  # the cadres
    finally:
        svc.close()


def test_wait_exits_1_when_the_broadcast_is_cancelled(confdir: Path, capsys) -> None:
    svc = Service(load_config(confdir / "broadcaster.yaml"))
    try:
        result: dict[str, int] = {}
        t = start(confdir, result)
        bid = wait_for(lambda: pending(svc), timeout=10)
        Broadcasts(svc).cancel(bid, "王站长")
        t.join(timeout=20)
        assert not t.is_alive() and result["rc"] == 1 and "已取消" in capsys.readouterr().out
    finally:
        svc.close()
