"""A week in the ledger with known outcomes, made the way the service makes it (issue 16).

The flows write it (polls from a ``file`` feed, the feed deadline, a manual broadcast approved by
another person, an incident with a correction); the outcomes are recorded through the ledger's
transition methods, as the dispatcher, the receipts and the endpoints would (the dispatcher's
thread never runs, so nothing moves by itself). 2026-W48 is Monday 11-23 to Sunday 11-29, on the
demo directory: cadres 张三 (东村), 李四 (西村), 王五 (南村); vulnerable 赵六, 钱七; duty 孙八;
leaders 周九; folder loudspeakers dongcun-dir, xicun-dir, nancun-dir.

=========  =====================================================================================
Sun 11-22  level 4 (week 47: must not count in W48): 3 SMS sent, 3 plays sent
Mon 11-23  level 3, alert: cadres 张三 delivered, 李四 sent, 王五 sent; plays 东村 played,
           西村 played, 南村 failed
Tue 11-24  the feed fails at 16:30 (a feed failure); 17:30 the deadline SMS to duty 孙八, sent
Wed 11-25  level 5, alert: cadres 张三 delivered, 李四 failed unreachable (receipt 30005), 王五
           failed cap; vulnerable 赵六 delivered, 钱七 expired; duty 孙八 sent; plays 东村 played,
           西村 expired, 南村 sent (not final)
Thu 11-26  06:40 incident in 西村, reported 08:30 (2 affected; corrected to 3 at 11:00): two SMS
           to 周九, sent; 09:00 broadcast by 刘站长 approved by 陈镇长, for 12:00, to 东村 and 西村
           and the cadres: plays handed at once, then cancelled at 10:00 (SMS never sent): 东村's
           play withdrawn, 西村's withdrawal failed; 10:30 broadcast by 王干事 approved by 陈镇长,
           SMS to the cadres now: 2 sent (李四 is held: unreachable since Wednesday); 16:30
           level 2: no alert
=========  =====================================================================================

SMS in W48 by group: cadres 7 sent, 2 delivered, 2 failed (unreachable 1, cap 1); vulnerable 1
sent, 1 delivered, 1 failed (expired 1); duty 2 sent; leaders 2 sent. Plays: 东村 played 2,
withdrawn 1; 西村 played 1, expired 1; 南村 failed 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.flows.deadline import deadline_check
from broadcaster.flows.incidents import Incidents
from broadcaster.flows.manual import BroadcastRequest, Broadcasts
from broadcaster.ledger import Ledger, Outcome
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local

W48 = "2026-W48"
MONDAY = local(2026, 11, 23).date()
FRIDAY_1500 = local(2026, 11, 27, 15, 0)
EXPECTED_SMS = {  # group: (sent, delivered, failed, {reason: n})
    "cadres": (7, 2, 2, {"unreachable": 1, "cap": 1}),
    "vulnerable": (1, 1, 1, {"expired": 1}),
    "duty": (2, 0, 0, {}),
    "leaders": (2, 0, 0, {}),
}
EXPECTED_PLAYS = {"东村": (2, 0, 0, 1), "西村": (1, 0, 1, 0), "南村": (0, 1, 0, 0)}  # played, failed, expired, withdrawn
NIGHT_LEVELS = {"2026-11-23": 3, "2026-11-24": None, "2026-11-25": 5, "2026-11-26": 2}


def use_file_feed(confdir: Path) -> Path:
    """Point the configuration at ``readings.json`` beside it; returns that path."""
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(feed={"type": "file", "path": "readings.json"}))
    return confdir / "readings.json"


def write_reading(path: Path, night: datetime, level: int) -> None:
    """Tonight's canonical reading (A5) at ``level``, issued at 16:00 that day."""
    d = night.date()
    doc = {"issued_at": f"{d}T16:00:00+08:00", "source": "XX县气象台",
           "forecasts": [{"region": "XX镇", "valid_from": f"{d}T20:00:00+08:00",
                          "valid_to": f"{d + timedelta(days=1)}T08:00:00+08:00", "level": level}]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def settle(lg: Ledger, now: datetime, channel: str, outcome: Callable[[Any], tuple[str, str | None]]) -> dict[str, int]:
    """Claim every due delivery of ``channel`` and record ``outcome(job) -> (event, error)`` for
    each, as the dispatcher would; returns ``{target: delivery id}``."""
    jobs = lg.deliveries.claim(now, 1000, channel)
    outcomes = []
    for j in jobs:
        event, error = outcome(j)
        outcomes.append(Outcome(j.id, event, now, provider_id=f"P{j.id}" if event == "handed" else None,
                                segments=1 if event == "handed" else None, error=error))
    lg.deliveries.finish(outcomes)
    return {j.target: j.id for j in jobs}


def handed(_job: Any) -> tuple[str, str | None]:
    return "handed", None


def build_week(svc: Service, feed: Path) -> dict[str, Any]:
    """Write the week of the module docstring into ``svc``'s ledger; returns ids worth checking."""
    clock: FakeClock = svc.clock  # type: ignore[assignment]
    lg = svc.ledger
    phone = {c.name: c.phone for c in svc.cfg.directory.contacts}
    ids: dict[str, Any] = {}

    # Sunday 11-22 (week 47)
    clock.set(local(2026, 11, 22, 16, 30))
    write_reading(feed, clock.now(), 4)
    ids["sun_alert"] = svc.poll().alert_id
    settle(lg, clock.now(), "sms", handed)
    settle(lg, clock.now(), "speaker", handed)

    # Monday 11-23, level 3
    clock.set(local(2026, 11, 23, 16, 30))
    write_reading(feed, clock.now(), 3)
    ids["mon_alert"] = svc.poll().alert_id
    sms = settle(lg, clock.now(), "sms", handed)
    lg.deliveries.receipt("sms", f"P{sms[phone['张三']]}", "receipt_delivered", clock.now(), provider_status="delivered")
    plays = settle(lg, local(2026, 11, 23, 19, 30), "speaker", handed)
    at = local(2026, 11, 23, 19, 31)
    lg.deliveries.report(plays["dongcun-dir"], "dongcun-dir", "played", at)
    lg.deliveries.report(plays["xicun-dir"], "xicun-dir", "played", at)
    lg.deliveries.report(plays["nancun-dir"], "nancun-dir", "failed", at, error="功放无电")

    # Tuesday 11-24: the feed fails, the deadline tells the duty officer
    clock.set(local(2026, 11, 24, 16, 30))
    feed.write_text("{not json", encoding="utf-8")
    assert svc.poll().result.reading is None
    clock.set(local(2026, 11, 24, 17, 30))
    ids["deadline_alert"] = deadline_check(svc)
    settle(lg, clock.now(), "sms", handed)

    # Wednesday 11-25, level 5
    clock.set(local(2026, 11, 25, 16, 30))
    write_reading(feed, clock.now(), 5)
    ids["wed_alert"] = svc.poll().alert_id

    def wed(job: Any) -> tuple[str, str | None]:
        if job.target == phone["王五"]:
            return "fail", "cap: 10 SMS to this number in 24 h (sms.caps.per_number_per_day)"
        if job.target == phone["钱七"]:
            return "expire", "HTTPSConnectionPool: read timed out"
        return "handed", None

    sms = settle(lg, clock.now(), "sms", wed)
    for name in ("张三", "赵六"):
        lg.deliveries.receipt("sms", f"P{sms[phone[name]]}", "receipt_delivered", clock.now(),
                              provider_status="delivered")
    lg.deliveries.receipt("sms", f"P{sms[phone['李四']]}", "receipt_failed", clock.now(), provider_status="undelivered",
                          error="号码不存在或已停机 / unknown or inactive number (30005)",
                          unreachable="号码不存在或已停机 / unknown or inactive number (30005)")
    plays = settle(lg, local(2026, 11, 25, 19, 30), "speaker",
                   lambda j: ("expire", "endpoint down") if j.target == "xicun-dir" else ("handed", None))
    lg.deliveries.report(plays["dongcun-dir"], "dongcun-dir", "played", local(2026, 11, 25, 19, 31))

    # Thursday 11-26: an incident, a manual broadcast that is cancelled, a quiet night
    clock.set(local(2026, 11, 26, 8, 30))
    inc = Incidents(svc)
    ids["incident"] = inc.create({"village": "xicun", "occurred_at": "2026-11-26T06:40", "affected": 2, "deaths": 0,
                                  "description": "王某家两人晨起头晕恶心，疑似煤炉封火导致一氧化碳中毒，已送镇卫生院。",
                                  "measures": "开窗通风，熄灭炉火"}, "刘站长")["id"]
    settle(lg, clock.now(), "sms", handed)
    clock.set(local(2026, 11, 26, 9, 0))
    bc = Broadcasts(svc)
    ids["broadcast"] = bid = bc.create(BroadcastRequest("今晚降温，请检查烟道，睡前熄灭炉火。", ["dongcun", "xicun"],
                                                        ["cadres"], "2026-11-26T12:00"), "刘站长")["id"]
    bc.approve(bid, "陈镇长")
    settle(lg, clock.now(), "speaker", handed)
    clock.set(local(2026, 11, 26, 10, 0))
    bc.cancel(bid, "刘站长")
    withdrawals = lg.deliveries.claim_withdrawals(clock.now(), 10)
    assert len(withdrawals) == 2
    lg.deliveries.finish([Outcome(j.id, "withdrawn" if j.target == "dongcun-dir" else "withdraw_failed",
                                  clock.now(), error=None if j.target == "dongcun-dir" else "withdrawal failed: 404")
                          for j in withdrawals])
    clock.set(local(2026, 11, 26, 10, 30))
    ids["broadcast2"] = bid2 = bc.create(BroadcastRequest("明日上午村委会发放一氧化碳报警器。", [], ["cadres"]),
                                         "王干事")["id"]
    bc.approve(bid2, "陈镇长")
    settle(lg, clock.now(), "sms", handed)
    clock.set(local(2026, 11, 26, 11, 0))
    inc.correct(ids["incident"], {"affected": 3, "note": "又有一人入院"}, "刘站长")
    settle(lg, clock.now(), "sms", handed)
    clock.set(local(2026, 11, 26, 16, 30))
    write_reading(feed, clock.now(), 2)
    assert svc.poll().alert_id is None
    return ids
