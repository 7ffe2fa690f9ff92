"""What ``broadcaster status`` and ``GET /api/v1/status`` show: tonight, next jobs, deliveries."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from broadcaster.ledger import Alert, Delivery, ReadingRow

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
    now = svc.now()
    night = svc.tonight()
    with svc.ledger.reader() as s:
        row = s.scalars(select(ReadingRow).where(ReadingRow.night == night.date).order_by(ReadingRow.id.desc()).limit(1)).first()
        alerts = list(s.scalars(select(Alert).where(Alert.night == night.date).order_by(Alert.id)))
        by_state = dict(s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
        plays = s.execute(
            select(Delivery.village_id, Delivery.target, Delivery.state, Delivery.play_at, Delivery.played_at, Delivery.last_error)
            .where(Delivery.channel == "speaker", Delivery.alert_id.in_([a.id for a in alerts] or [-1]))
            .order_by(Delivery.village_id, Delivery.play_at)
        ).all()
        failed = s.execute(
            select(Delivery.id, Delivery.channel, Delivery.target, Delivery.state, Delivery.last_error)
            .where(Delivery.state.in_(("failed", "expired")), Delivery.updated_at >= now - timedelta(days=2))
            .order_by(Delivery.id.desc()).limit(20)
        ).all()
    tz = svc.cfg.tz
    return {
        "night": night.date.isoformat(),
        "in_season": svc.in_season(night),
        "level": row.level if row else None,
        "level_name": svc.cfg.rules.levels.get(row.level, "") if row and row.level else None,
        "reading": row.reading if row else None,
        "sources": row.outcomes if row else [],
        "polled_at": row.fetched_at.astimezone(tz).isoformat() if row else None,
        "alerts": [{"id": a.id, "kind": a.kind, "level": a.level, "status": a.status,
                    "superseded_by": a.superseded_by} for a in alerts],
        "next_jobs": next_polls(svc, now),
        "deliveries": by_state,
        "plays": [{"village": v, "speaker": t, "state": st,
                   "play_at": p.astimezone(tz).isoformat() if p else None,
                   "played_at": pa.astimezone(tz).isoformat() if pa else None, "error": e}
                  for v, t, st, p, pa, e in plays],
        "problems": [{"id": i, "channel": c, "target": t if c != "sms" else None, "state": st, "error": e}
                     for i, c, t, st, e in failed],
    }
