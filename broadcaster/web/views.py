"""Read models for the console pages: plain dicts built from the ledger, no HTML here."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.channels.speakers.agent import AgentConfig
from broadcaster.feeds.base import Factor
from broadcaster.flows.flags import flag_key
from broadcaster.flows.limits import FLAG_DAYS
from broadcaster.ledger import Alert, AuditEntry
from broadcaster.logutil import mask_phone
from broadcaster.wording import KIND_ZH, STATE_ZH, STATUS_ZH

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

__all__ = ["KIND_ZH", "STATE_ZH", "STATUS_ZH"]  # re-exported for the templates; the words live in the catalogue

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


def next_plays(svc: Service, limit: int = 200) -> list[dict[str, Any]]:
    """Every loudspeaker endpoint's next play (or, once tonight's play time has passed, its last
    one): village, endpoint, play time and a state a clerk reads at a glance. Endpoints without a
    play in the last 12 hours are left out."""
    names = {v: village.name for v, village in svc.cfg.villages.items()}
    now, tz = svc.now(), svc.cfg.tz
    rows = svc.ledger.reads.next_plays(now, now - timedelta(hours=12), limit)
    chosen: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:  # soonest first: the first play still to come wins, else the latest past one
        key = (row[0] or "", row[1])
        prev = chosen.get(key)
        if prev is None or (prev[2] is not None and prev[2] <= now):
            chosen[key] = row
    order = {v: i for i, v in enumerate(svc.cfg.villages)}
    out = []
    for (vid, target), (_, _, play_at, alert_id, kind, state, played_at, error) in sorted(
            chosen.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0][1])):
        out.append({"village": names.get(vid, vid), "speaker": target, "at": play_at.astimezone(tz) if play_at else None,
                    "alert_id": alert_id, "kind": KIND_ZH.get(kind, kind), "state": state,
                    "label": play_label(state, play_at, now, tz, played_at=played_at, error=error)})
    return out


def play_label(state: str, play_at: datetime | None, now: datetime, tz: Any, *, played_at: datetime | None = None,
               error: str | None = None) -> str:
    """A play's state in the words a clerk reads: 已下发 · 19:30 播放, 已播放 19:30, 未播出：reason."""
    hm = _hm(play_at, now, tz)
    if state == "played":
        return f"已播放 {_hm(played_at or play_at, now, tz)}"
    if state == "sent":
        # Handed to the endpoint, which plays it at its time; a folder endpoint never reports back.
        return f"已下发 · {hm} 播放" if play_at is None or play_at > now else f"已下发 · {hm} 应已播放（终端不回报）"
    if state in ("pending", "sending"):
        word = "待下发" if state == "pending" else "下发中"
        return f"{word} · {hm} 播放" if play_at is None or play_at > now else f"{word} · 已过 {hm}，仍在重试"
    if state == "cancelled":
        return f"已取消{'：' + error if error else ''}"
    why = error or ("超过有效期未能下发" if state == "expired" else "下发失败")
    return f"未播出：{why}"


def _hm(t: datetime | None, now: datetime, tz: Any) -> str:
    """``19:30`` for a time on the town's current day, ``12-02 19:30`` otherwise."""
    if t is None:
        return "—"
    local = t.astimezone(tz)
    return local.strftime("%H:%M") if local.date() == now.astimezone(tz).date() else local.strftime("%m-%d %H:%M")


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
            part = f"文件 {d.slot[5:]}" if d.slot.startswith("file:") else CHAT_PART_ZH.get(d.slot, d.slot)
            who = f"{d.target}（{part}）"
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


def play_state(states: dict[str, int], play_at: datetime | str | None = None, now: datetime | None = None,
               tz: Any = None) -> dict[str, Any]:
    """One village's plays summed up: the least advanced state that still matters, how many of
    its play tasks (endpoints × play times) were played, and (given the first play time and the
    clock) the clerk's words for it."""
    state = next((st for st in ("sending", "pending", "failed", "expired", "sent", "played", "cancelled")
                  if states.get(st)), "pending")
    out: dict[str, Any] = {"state": state, "played": states.get("played", 0), "total": sum(states.values())}
    if now is not None:
        at = datetime.fromisoformat(play_at) if isinstance(play_at, str) else play_at
        out["label"] = play_label(state, at, now, tz or now.tzinfo)
    return out


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
