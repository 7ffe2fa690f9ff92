"""What ``broadcaster status`` and ``GET /api/v1/status`` show: tonight, next jobs, deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.flows.manual import computed_status

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service


def next_polls(svc: Service, now: datetime, count: int = 4) -> list[dict[str, str]]:
    """The next poll and deadline times from the configuration (no scheduler needed)."""
    cfg = svc.cfg
    local = now.astimezone(cfg.tz)
    sched = cfg.settings.schedule
    out: list[tuple[datetime, str]] = []
    for day in range(3):
        d = (local + timedelta(days=day)).date()
        for t in sched.polls:
            out.append((datetime.combine(d, t, cfg.tz), f"poll {t:%H:%M}"))
        out.append((datetime.combine(d, sched.deadline, cfg.tz), f"feed deadline {sched.deadline:%H:%M}"))
    future = sorted(x for x in out if x[0] > local)[:count]
    return [{"job": name, "at": when.isoformat()} for when, name in future]


def status(svc: Service) -> dict[str, Any]:
    """Tonight's reading and level, its alerts and plays, next jobs, delivery counts and the
    last two days' failed and expired deliveries."""
    now = svc.now()
    night = svc.tonight()
    st = svc.ledger.reads.night_status(night.date, since=now - timedelta(days=2))
    row, alerts, by_state, plays, failed = st.reading, st.alerts, st.by_state, st.plays, st.problems
    tz = svc.cfg.tz
    names = {v: village.name for v, village in svc.cfg.villages.items()}
    return {
        "night": night.date.isoformat(),
        "in_season": svc.in_season(night),
        "level": row.level if row else None,
        "level_name": svc.cfg.rules.levels.get(row.level, "") if row and row.level else None,
        "reading": row.reading if row else None,
        "sources": row.outcomes if row else [],
        "polled_at": row.fetched_at.astimezone(tz).isoformat() if row else None,
        # The status a person sees on the console: scheduled, dispatching or done from the deliveries.
        "alerts": [{"id": a.id, "kind": a.kind, "level": a.level,
                    "status": computed_status(a, svc.ledger.reads.counts([a.id]), now),
                    "superseded_by": a.superseded_by} for a in alerts],
        "next_jobs": next_polls(svc, now),
        "deliveries": by_state,
        "plays": [{"village": v, "village_name": names.get(v or "", v), "speaker": t, "state": st,
                   "play_at": p.astimezone(tz).isoformat() if p else None,
                   "played_at": pa.astimezone(tz).isoformat() if pa else None, "error": e}
                  for v, t, st, p, pa, e in plays],
        "problems": [{"id": i, "channel": c, "target": t if c != "sms" else None, "state": st, "error": e}
                     for i, c, t, st, e in failed],
    }
