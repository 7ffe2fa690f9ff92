"""Crash safety of chats and displays: `broadcaster run` is SIGKILLed while it posts to many
robots and screens, and restarted. Each alert has one delivery per chat (text and, for WeCom, the
poster) and per screen; every one ends sent; a screen shows each warning once (Idempotency-Key);
a robot, which has no idempotency key, gets a message twice only where the ledger flags that
delivery as a possible duplicate (the send was in flight at the kill), never otherwise."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import edit_yaml
from tests.doubles.chats import WecomRobotDouble
from tests.doubles.display import HttpDisplayDouble
from tests.doubles.faults import FaultPlan
from tests.test_kill import prepare, start, wait_ready

ROBOTS = 30
KILLS = 2


def chat_rows(database: str) -> list[tuple[str, str, str, bool]]:
    eng = sa.create_engine(database)
    with eng.connect() as c:
        rows = c.execute(sa.text("SELECT target, slot, state, possible_duplicate FROM deliveries "
                                 "WHERE channel IN ('chat', 'display')")).all()
    eng.dispose()
    return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.mark.timeout(180)
def test_kill_and_restart_posts_each_chat_message_once(confdir: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "run.log"
    rng = random.Random(20261201)
    keys = [f"key{i:02d}" for i in range(ROBOTS)]
    with WecomRobotDouble(keys, faults=FaultPlan(latency_ms=40)) as wecom, \
            HttpDisplayDouble("led-token", faults=FaultPlan(latency_ms=40)) as led:
        prepare(confdir, "http://127.0.0.1:9", database, n=3)  # a run on a port of its own, all year
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(sms={"provider": "outbox"}))

        def directory(d: dict) -> None:
            d["chats"] = [{"id": f"chat-{k}", "type": "wecom", "webhook": wecom.webhook_url(k)} for k in keys]
            for v in d["villages"]:
                v["speakers"] = []
                v["displays"] = [{"id": f"{v['id']}-led", "type": "http", "url": led.show_url, "token": "led-token"}]

        def rules(d: dict) -> None:
            d["templates"]["chat_warn"] = "{date}夜间一氧化碳中毒气象条件{level}级，请开窗通风。"
            d["rules"] = [{"name": "warn", "when": {"level_at_least": 3},
                           "chats": {"ids": "all", "template": "chat_warn"},
                           "displays": {"villages": "all", "template": "chat_warn", "until": "08:00"}}]
        edit_yaml(confdir / "directory.yaml", directory)
        edit_yaml(confdir / "rules.yaml", rules)
        total = ROBOTS * 2 + 3

        kills = 0
        while kills < KILLS:
            proc = start(confdir, log)
            target = len(wecom.requests) + rng.randint(3, 12)
            deadline = time.monotonic() + 60
            while len(wecom.requests) < min(target, ROBOTS * 2 - 1) and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills += 1
            if len(wecom.requests) >= ROBOTS * 2 - 1:
                break
        proc = start(confdir, log)
        wait_ready(confdir)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = chat_rows(database)
            if len(rows) == total and all(r[2] == "sent" for r in rows):
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()[-3000:]

        rows = chat_rows(database)
        assert kills >= 2, "dispatch finished before the process could be killed often enough"
        assert len(rows) == total and {r[2] for r in rows} == {"sent"}, rows
        # Each robot got its text and its poster; twice only where the ledger says it may have.
        got = Counter((m.robot, m.msgtype) for m in wecom.messages)
        flagged = {(t.removeprefix("chat-"), {"text": "markdown", "image": "image"}[s]) for t, s, _st, dup in rows
                   if dup and t.startswith("chat-")}
        assert set(got) == {(k, t) for k in keys for t in ("markdown", "image")}
        twice = {k for k, n in got.items() if n > 1}
        assert twice <= flagged, (twice, flagged)
        assert max(got.values()) <= 1 + kills
        print(f"kills={kills} requests={len(wecom.requests)} duplicates={sorted(twice)} flagged={len(flagged)}")
        # Screens: each warning shown once, whatever was re-sent.
        assert len(led.on_screen()) == 3 and [h for h in led.history if h[0] == "show"].__len__() == 3
        assert wecom.internal_errors == [] and led.internal_errors == []
