"""Read models for the console pages: plain dicts built from the ledger, no HTML here."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.channels.speakers.agent import AgentConfig
from broadcaster.feeds.base import Factor
from broadcaster.flows.flags import flag_key
from broadcaster.flows.limits import FLAG_DAYS
from broadcaster.ledger import Alert, AuditEntry
from broadcaster.logutil import mask_phone

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

STATE_ZH = {"pending": "待发送", "sending": "发送中", "sent": "已发出", "delivered": "已送达", "played": "已播放",
            "failed": "失败", "expired": "已过期", "cancelled": "已取消"}
STATUS_ZH = {"pending_approval": "待审批", "scheduled": "已排期", "dispatching": "发送中", "done": "已完成",
             "cancelled": "已取消", "active": "生效", "superseded": "已被更新"}
KIND_ZH = {"auto": "自动", "manual": "人工", "system": "系统"}
CHANNEL_ZH = {"sms": "短信", "speaker": "喇叭", "chat": "群消息", "display": "显示屏"}
CHAT_PART_ZH = {"text": "文字", "image": "海报"}
SPEAKER_ZH = {"agent": "广播室代理", "http": "IP 喇叭", "mqtt": "4G 喇叭", "folder": "广播软件文件夹"}
LEVEL_COLOURS = {1: "#2e7d32", 2: "#1565c0", 3: "#f9a825", 4: "#ef6c00", 5: "#c62828"}
PAGE = 200


def nights(svc: Service, days: int = 7) -> list[dict[str, Any]]:
    """The last ``days`` nights, oldest first: the final level polled for each (None if none)."""
    last = svc.tonight().date
    first = last - timedelta(days=days - 1)
    rows = svc.ledger.reads.night_levels(first)
    level = {n: lv for n, lv in rows if lv is not None}  # the latest valid poll of a night wins
    out = []
    for i in range(days):
        d = first + timedelta(days=i)
        out.append({"date": d, "label": f"{d.month}/{d.day}", "level": level.get(d),
                    "colour": LEVEL_COLOURS.get(level.get(d) or 0, "#bdbdbd")})
    return out


def next_plays(svc: Service, limit: int = 10) -> list[dict[str, Any]]:
    """Loudspeaker plays still to come, soonest first."""
    names = {v: village.name for v, village in svc.cfg.villages.items()}
    rows = svc.ledger.reads.next_plays(svc.now(), limit)
    tz = svc.cfg.tz
    return [{"village": names.get(v or "", v), "speaker": t, "at": p.astimezone(tz) if p else None,
             "alert_id": a, "kind": KIND_ZH.get(k, k)} for v, t, p, a, k in rows]


def deliveries(svc: Service, alert_id: int, page: int = 0) -> tuple[list[dict[str, Any]], int]:
    """One alert's deliveries (one page) for the drill-down, phone numbers masked; and the total."""
    names = {v: village.name for v, village in svc.cfg.villages.items()}
    tz = svc.cfg.tz
    rows, total = svc.ledger.reads.deliveries_page(alert_id, page, PAGE)
    out = []
    for d in rows:
        if d.channel == "sms":
            who = f"{d.contact_name or ''} {mask_phone(d.target)}".strip()
        elif d.channel == "chat":  # the chat's id and what went there (WeCom: text, then the poster)
            who = f"{d.target}（{CHAT_PART_ZH.get(d.slot, d.slot)}）"
        else:
            who = d.target
        when = d.played_at or d.delivered_at or d.sent_at or d.updated_at
        out.append({"id": d.id, "channel": CHANNEL_ZH.get(d.channel, d.channel), "who": who,
                    "village": names.get(d.village_id or "", d.village_id or ""), "state": d.state,
                    "state_zh": STATE_ZH.get(d.state, d.state), "attempts": d.attempts,
                    "at": when.astimezone(tz) if when else None, "error": d.last_error or "",
                    "play_at": d.play_at.astimezone(tz) if d.play_at and d.channel == "speaker" else None,
                    "until": d.play_at.astimezone(tz) if d.play_at and d.channel == "display" else None,
                    "duplicate": d.possible_duplicate})
    return out, total


def sms_summary(counts: dict[str, int]) -> dict[str, int]:
    """SMS counts as the console shows them: delivered, sent (awaiting receipt), failed, open."""
    return {"delivered": counts.get("delivered", 0), "sent": counts.get("sent", 0),
            "failed": counts.get("failed", 0) + counts.get("expired", 0),
            "open": counts.get("pending", 0) + counts.get("sending", 0), "total": sum(counts.values())}


def play_state(states: dict[str, int]) -> dict[str, Any]:
    """One village's plays summed up: the least advanced state that still matters, and how many
    of its plays (e.g. 17:30 and 19:30) were played."""
    state = next((st for st in ("sending", "pending", "failed", "expired", "sent", "played", "cancelled")
                  if states.get(st)), "pending")
    return {"state": state, "played": states.get("played", 0), "total": sum(states.values())}


def villages(svc: Service) -> list[dict[str, Any]]:
    """Every village and endpoint with its last contact and its last play."""
    tz = svc.cfg.tz
    act = svc.ledger.reads.endpoint_activity(failures_since=svc.now() - timedelta(days=2))
    agent_seen, last_play, last_sent, last_fail = act.agent_seen, act.last_play, act.last_sent, act.last_failure
    out = []
    for vid, village in svc.cfg.villages.items():
        endpoints = []
        for sc in svc.cfg.speakers_of(vid):
            contact = agent_seen.get(sc.id) if sc.type == "agent" else last_sent.get(sc.id)
            kind = SPEAKER_ZH.get(sc.type, sc.type)
            if isinstance(sc, AgentConfig) and sc.builtin:
                kind += "（内置）"
            endpoints.append({"id": sc.id, "type": kind,
                              "contact": contact.astimezone(tz) if contact else None,
                              "played": last_play[sc.id].astimezone(tz) if last_play.get(sc.id) else None,
                              "problem": last_fail.get(sc.id)})
        out.append({"id": vid, "name": village.name, "endpoints": endpoints})
    return out


def unreachable(svc: Service) -> list[dict[str, Any]]:
    """Numbers the provider reported unreachable; they are skipped, with this reason and since
    when, until the flag expires (``Service.unreachable``)."""
    contacts = {c.phone: c for c in svc.cfg.directory.contacts}
    flags = svc.ledger.reads.unreachable_flags(since=svc.now() - timedelta(days=FLAG_DAYS))
    return [{"name": contacts[f.phone].name if f.phone in contacts else "（不在通讯录）",
             "phone": mask_phone(f.phone), "reason": f.reason, "key": flag_key(f.phone),
             "since": f.updated_at.astimezone(svc.cfg.tz)} for f in flags]


def pending_broadcasts(svc: Service) -> list[Alert]:
    """Manual broadcasts waiting for an approver, oldest first."""
    return svc.ledger.reads.pending_broadcasts()


def audit_page(svc: Service, page: int = 0) -> tuple[list[AuditEntry], int]:
    """One page of the audit log, newest first, and its length."""
    return svc.ledger.reads.audit_page(page, PAGE)


def reason(reading: dict[str, Any] | None, sources: list[dict[str, Any]]) -> str:
    """Why tonight has its level, in one line: the advice, the factors, the sources' problems."""
    parts: list[str] = []
    if reading:
        if reading.get("advice"):
            parts.append(reading["advice"])
        factors = [Factor(**f) for f in reading.get("factors") or []]
        pos = sorted((f for f in factors if f.points > 0), key=lambda f: -f.points)
        if pos:
            parts.append("因素：" + "，".join(f.summary() for f in pos))
        if reading.get("source"):
            parts.append(f"来源：{reading['source']}")
    for o in sources:
        if o.get("error"):
            parts.append(f"数据源 {o.get('source')} 失败：{o['error']}")
    return "；".join(parts)
