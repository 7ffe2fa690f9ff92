"""Manual broadcasts (DESIGN flow 2): create, approve, cancel, read. Used by the API, CLI and console.

A broadcast is an ``Alert(kind="manual")``. Lifecycle::

    pending_approval -> scheduled -> dispatching -> done        (or cancelled at any point)

Only ``pending_approval``, ``scheduled`` and ``cancelled`` are stored; ``dispatching`` and
``done`` are computed on read from the deliveries, so the dispatcher never has to know about
broadcasts. Deliveries are created when the broadcast is released (on approval, or at creation
when ``http.require_approval`` is off); every delivery is due at ``at`` (or now), so a cancel
before ``at`` reaches every SMS and every loudspeaker and nothing goes out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.audio import Bulletin
from broadcaster.channels.sms.registered import manual_sms
from broadcaster.errors import Conflict, Forbidden, InputError, NotFound, PermanentError, TooBusy
from broadcaster.flows.alerts import Timing, chat_rows
from broadcaster.ledger import OPEN, Alert, play_row, sms_row
from broadcaster.rules import ChatPlan, quiet
from broadcaster.timeutil import tonight

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

MAX_TEXT = 500
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Preview files kept on disk (the newest; each is up to about 10 MB).
PREVIEWS_KEPT = 8
MAX_UPLOAD_S = 300.0
# The chime and loudness trimming add a few seconds to the recording itself.
_CHIME_SLACK_S = 15.0
MAX_AHEAD = timedelta(days=30)
SMS_VALID = timedelta(hours=6)  # an SMS not sent this long after ``at`` is stale
UPLOAD_EXTS = ("mp3", "wav")


@dataclass
class BroadcastRequest:
    """What an operator submits. ``villages`` is a list of ids or ``"all"``."""

    text: str
    villages: list[str] | str = field(default_factory=list)
    sms_groups: list[str] = field(default_factory=list)
    at: datetime | str | None = None
    repeat: int | None = None
    upload: bytes | None = None  # an MP3/WAV recording that replaces the spoken text
    chats: list[str] = field(default_factory=list)  # group-chat ids (A12): the text goes there too
    # Who of the SMS groups gets the text: "town", everyone in them; "villages", only those of the
    # chosen villages (and town staff, who belong to no village).
    sms_scope: str = "town"


SMS_SCOPES = ("town", "villages")


class Broadcasts:
    """The manual-broadcast service layer on top of one :class:`Service`."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    # --------------------------------------------------------------- validation

    def check_text(self, text: object) -> str:
        """The broadcast text, stripped; empty or over ``MAX_TEXT`` characters -> InputError."""
        text = text.strip() if isinstance(text, str) else ""
        if not text:
            raise InputError("text", "广播内容不能为空 / text is empty")
        if len(text) > MAX_TEXT:
            raise InputError("text", f"广播内容最多 {MAX_TEXT} 字 / text is longer than {MAX_TEXT} characters")
        return text

    def check_repeat(self, repeat: object) -> int:
        """``repeat`` (None: the configured default); not an integer 1-10 -> InputError."""
        repeat = self.svc.cfg.settings.audio.repeat if repeat is None else repeat
        if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 10:
            raise InputError("repeat", "重复次数应为 1 到 10 / repeat must be 1-10")
        return repeat

    def preview(self, text: str | None, upload: bytes | None = None, repeat: int | None = None,
                who: str = "") -> Bulletin:
        """The MP3 bulletin exactly as the broadcast would play (the recording, or the text
        spoken), after the same checks as :meth:`create`. Used by the API, console and CLI.
        Renders wait their turn in the service's :class:`RenderGate` (``TooBusy`` when full, or
        when ``who`` had ``http.previews_per_hour`` previews in the last hour)."""
        repeat = self.check_repeat(repeat)
        if upload is None:
            text = self.check_text(text)
        r = self.svc.preview_renderer
        self.svc.renders.admit(who, self.svc.now(), self.svc.cfg.settings.http.previews_per_hour)
        with self.svc.renders.slot(who):
            if upload is not None:
                b = self.upload_bulletin(upload, repeat=repeat, fmt="mp3", renderer=r)
            else:
                b = r.render(text, repeat=repeat, fmt="mp3")
            r.cache.evict(keep=PREVIEWS_KEPT)  # previews are thrown away: the newest few stay
        return b

    def _validate(self, req: BroadcastRequest) -> tuple[str, list[str], list[str], datetime | None, int]:
        cfg, now = self.svc.cfg, self.svc.now()
        text = self.check_text(req.text)
        known = cfg.villages
        if req.villages == "all":
            villages = list(known)
        elif isinstance(req.villages, list) and all(isinstance(v, str) for v in req.villages):
            villages = list(dict.fromkeys(req.villages))
            bad = [v for v in villages if v not in known]
            if bad:
                raise InputError("villages", f"未知的村 / unknown village: {', '.join(bad)}")
        else:
            raise InputError("villages", '应为村编号列表或 "all" / must be a list of village ids or "all"')
        groups = list(dict.fromkeys(req.sms_groups or []))
        bad = [g for g in groups if not isinstance(g, str) or g not in cfg.directory.groups]
        if bad:
            raise InputError("sms_groups", f"未知的短信分组 / unknown SMS group: {', '.join(map(str, bad))}")
        chats = self._check_chats(req.chats)
        if not villages and not groups and not chats:
            raise InputError("villages", "请至少选择一个村、短信分组或群 / choose at least one village, SMS group or chat")
        if groups:
            self._sms(text)  # refused now when the provider's registered template cannot carry it
        at = self._parse_at(req.at, now)
        repeat = self.check_repeat(req.repeat)
        if villages and quiet(cfg, at or now, 0):
            raise InputError("at", "该时间处于静默时段，喇叭不能播放 / the time falls in quiet hours")
        return text, villages, groups, at, repeat

    def _check_chats(self, chats: object) -> list[str]:
        if not isinstance(chats, list) or not all(isinstance(c, str) for c in chats):
            raise InputError("chats", "应为群编号列表 / must be a list of chat ids")
        bad = [c for c in chats if c not in self.svc.cfg.chats]
        if bad:
            raise InputError("chats", f"未知的群 / unknown chat: {', '.join(bad)}")
        return list(dict.fromkeys(chats))

    def _sms(self, text: str) -> tuple[str, str | None, dict[str, str]]:
        """The SMS of a broadcast as (body, template, values); InputError naming ``text`` when a
        template-only provider cannot send it (no ``manual_sms`` registration, or too long)."""
        try:
            return manual_sms(self.svc.sms, self.svc.cfg.settings.town, text)
        except PermanentError as exc:
            raise InputError("text", str(exc)) from None

    def sms_preview(self, text: str) -> dict[str, Any] | None:
        """For the compose page, on a template-only provider (None otherwise): the registered
        template a broadcast's SMS will use, each provider's registration, and what the
        recipient will read, or why this text cannot be sent (DESIGN A10)."""
        provider = self.svc.sms
        if not provider.template_only:
            return None
        t = self.svc.cfg.rules.templates.get("manual_sms")
        regs = []
        for m in getattr(provider, "members", [provider]):
            reg = t.registration(m.type) if t is not None and hasattr(t, "registration") else None
            regs.append({"provider": m.type, "registration": getattr(reg, "code", None) or getattr(reg, "id", None)})
        try:
            reads, template, _ = manual_sms(provider, self.svc.cfg.settings.town, text.strip() or "…")
        except PermanentError as exc:
            return {"template": "manual_sms", "registrations": regs, "reads": None, "error": str(exc)}
        return {"template": template, "registrations": regs, "reads": reads, "error": None}

    def _parse_at(self, value: datetime | str | None, now: datetime) -> datetime | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                raise InputError("at", "时间格式应为 ISO 8601 / at must be an ISO 8601 time") from None
        if value.tzinfo is None:  # a local wall-clock time, as an operator means it
            value = value.replace(tzinfo=self.svc.cfg.tz)
        if value < now - timedelta(seconds=60):
            raise InputError("at", "发送时间已过 / at is in the past")
        if value > now + MAX_AHEAD:
            raise InputError("at", "发送时间不能超过 30 天后 / at is more than 30 days ahead")
        return value if value > now else None

    # ------------------------------------------------------------------- audio

    def _upload_dir(self) -> Path:
        return self.svc.cfg.data_dir / "uploads"

    def upload_bulletin(self, data: bytes, repeat: int = 1, fmt: str | None = None,
                        renderer: Any = None) -> Bulletin:
        """The bulletin an uploaded recording makes; non-audio, over 10 MB or 5 minutes -> InputError."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise InputError("audio", "录音文件不能超过 10 MB / the recording is larger than 10 MB")
        from broadcaster.audio import compose

        # Decode alone first: rendering (loudness, encoding) an over-long upload is the costly part.
        if compose.decode(data, max_seconds=MAX_UPLOAD_S + 1).duration_seconds > MAX_UPLOAD_S:
            raise InputError("audio", "录音不能超过 5 分钟 / the recording is longer than 5 minutes")
        b = (renderer or self.svc.renderer).render_upload(data, fmt=fmt or self.svc.cfg.settings.audio.format,
                                                          repeat=repeat)
        if b.duration_s > repeat * MAX_UPLOAD_S + _CHIME_SLACK_S:
            raise InputError("audio", "录音不能超过 5 分钟 / the recording is longer than 5 minutes")
        return b

    def _check_upload(self, data: bytes) -> str:
        """Check the recording by decoding it (see :meth:`upload_bulletin`); keep the original."""
        self.upload_bulletin(data)
        digest = hashlib.sha256(data).hexdigest()
        d = self._upload_dir()
        d.mkdir(parents=True, exist_ok=True)
        (d / digest).write_bytes(data)
        return digest

    def bulletin(self, a: Alert, fmt: str) -> Bulletin:
        """The broadcast's audio in ``fmt``: the uploaded recording or the spoken text."""
        upload = _note(a).get("upload")
        if upload:
            data = (self._upload_dir() / upload).read_bytes()
            return self.svc.renderer.render_upload(data, fmt=fmt, repeat=a.repeat or 1)
        return self.svc.renderer.render(a.speaker_text, repeat=a.repeat, fmt=fmt)

    # -------------------------------------------------------------- lifecycle

    def create(self, req: BroadcastRequest, author: str, identity: str | None = None) -> dict[str, Any]:
        """Validate, render the bulletin once, store; release it now unless approval is required.
        ``author`` is the name shown; ``identity`` the person behind it for the two-person rule
        (``user:NAME`` for a console user and the API tokens bound to them; default: ``author``)."""
        text, villages, groups, at, repeat = self._validate(req)
        now = self.svc.now()
        quota = self.svc.cfg.settings.http.broadcasts_per_hour
        if self.svc.ledger.reads.broadcasts_by(author, now - timedelta(hours=1)) >= quota:
            raise TooBusy(f"一小时内最多发布 {quota} 条广播，请稍后再试 / at most {quota} broadcasts an hour per user",
                          retry_after_s=300)
        note: dict[str, Any] = {"author_id": identity} if identity and identity != author else {}
        if req.upload is not None:
            note["upload"] = self._check_upload(req.upload)
        chats = self._check_chats(req.chats)
        if chats:
            note["chats"] = chats  # kept in the note until release (no column of its own)
        if req.sms_scope not in SMS_SCOPES:
            raise InputError("sms_scope", '应为 "town"（全镇）或 "villages"（只发所选村） / must be "town" or "villages"')
        if req.sms_scope == "villages" and groups:
            note["sms_scope"] = "villages"  # kept in the note: no column of its own
        a = Alert(
            kind="manual", dedupe_key=f"manual:{uuid.uuid4().hex}", region=self.svc.cfg.settings.town,
            night=tonight(at or now, self.svc.cfg.tz).date, level=None, rules=[], status="pending_approval",
            sms_text=text if groups else None, speaker_text=text, repeat=repeat, villages=villages,
            sms_groups=groups, at=at, created_at=now, created_by=author, note=json.dumps(note) if note else None,
        )
        sha = self.bulletin(a, self.svc.cfg.settings.audio.format).sha256 if villages else None
        a.audio_sha256 = sha
        alert_id, _ = self.svc.ledger.create_alert(a, [])
        self.svc.ledger.audit(now, author, "broadcast.create", "alert", alert_id, {
            "text": text, "audio_sha256": sha, "upload_sha256": note.get("upload"), "villages": villages,
            "sms_groups": groups, "sms_scope": req.sms_scope if groups else None, "chats": chats,
            "at": at.isoformat() if at else None, "repeat": repeat})
        log.info("broadcast %d created by %s: %d villages, %d SMS groups", alert_id, author, len(villages), len(groups))
        if not self.svc.cfg.settings.http.require_approval:
            self._release(alert_id, author, now)
        return {"id": alert_id, "status": self.status_of(alert_id)}

    def approve(self, alert_id: int, approver: str, identity: str | None = None) -> dict[str, Any]:
        """Approve (never by the author: neither the same name nor the same person, see
        :meth:`create`) and release: deliveries are created, due at ``at``."""
        a = self._get(alert_id)
        now = self.svc.now()
        author_id = _note(a).get("author_id") or a.created_by
        if a.created_by == approver or author_id == (identity or approver):
            self.svc.ledger.audit(now, approver, "broadcast.approve_denied", "alert", alert_id,
                                  {"reason": "author cannot approve own broadcast"})
            raise Forbidden("作者不能审批自己的广播 / the author cannot approve their own broadcast")
        if a.status != "pending_approval":
            raise Conflict(f"广播状态为 {a.status}，无法审批 / broadcast is {a.status}, not pending approval")
        self._release(alert_id, approver, now)
        return {"id": alert_id, "status": self.status_of(alert_id)}

    def _release(self, alert_id: int, by: str, now: datetime) -> None:
        a = self._get(alert_id)
        rows, held = self._rows(a, now)
        note = json.dumps({**_note(a), "held": held}) if held or a.note else None
        if not self.svc.ledger.release_broadcast(alert_id, by, now, note, rows):
            raise Conflict("广播已被处理 / broadcast was already released or cancelled")
        self.svc.ledger.audit(now, by, "broadcast.approve", "alert", alert_id, {
            "text": a.speaker_text, "audio_sha256": a.audio_sha256, "sms": sum(r["channel"] == "sms" for r in rows),
            "plays": sum(r["channel"] == "speaker" for r in rows), "held": held,
            "at": a.at.isoformat() if a.at else None})
        log.info("broadcast %d released by %s: %d deliveries, %d held", alert_id, by, len(rows), len(held))
        self.svc.dispatcher.wake()

    def _rows(self, a: Alert, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
        """Delivery rows: one SMS per reachable contact of the groups, one play per endpoint."""
        cfg, when = self.svc.cfg, max(a.at or now, now)
        rows: list[dict[str, Any]] = []
        held: list[str] = []
        unreachable = self.svc.unreachable()
        body, template, values = self._sms(a.sms_text) if a.sms_text else (None, None, {})
        # Group `duty` is who is on the roster at the time it is sent (A13).
        only = set(a.villages or []) if _note(a).get("sms_scope") == "villages" else None
        for c, group in cfg.book.recipients(a.sms_groups or [], when, cfg.tz, with_leader=False):
            if only is not None and c.village_id and c.village_id not in only:
                continue  # another village's people: the operator chose the selected villages only
            if c.phone in unreachable:
                held.append(f"SMS {c.name}: {unreachable[c.phone]}")
                continue
            rows.append(sms_row(phone=c.phone, name=c.name, village_id=c.village_id, body=body,
                                kind=self.svc.sms.type, due_at=when, expires_at=when + SMS_VALID, now=now,
                                group=group, template=template, values=values))
        expiry = timedelta(minutes=cfg.settings.schedule.play_expiry_min)
        for vid in a.villages or []:
            for sc in cfg.speakers_of(vid):
                channel = self.svc.speakers[sc.id]
                b = self.bulletin(a, channel.config.format or cfg.settings.audio.format)
                # Handed over as soon as approved, like automatic alerts (DESIGN A7): a cancel
                # withdraws it from the endpoint that holds it.
                rows.append(play_row(speaker_id=sc.id, village_id=vid, kind=channel.type, mode=channel.mode,
                                     sha256=b.sha256, ext=b.ext, repeat=1, play_at=when, expires_at=when + expiry,
                                     now=now))
        chats = [ChatPlan(cid, cfg.chats[cid].type, "manual", a.speaker_text or "")
                 for cid in _note(a).get("chats", []) if cid in cfg.chats]
        # Chat messages go out at ``at`` like the SMS, and are as stale after SMS_VALID.
        rows += chat_rows(chats, self.svc.image_chat_types(), Timing(when, when + SMS_VALID, expiry, None))
        return rows, held

    def cancel(self, alert_id: int, actor: str) -> dict[str, Any]:
        """Cancel every delivery that has not gone out; what is already sent stays sent."""
        a = self._get(alert_id)
        now = self.svc.now()
        if a.status == "cancelled":
            return {"id": alert_id, "status": "cancelled", "cancelled": 0}
        if a.status != "pending_approval" and self.status_of(alert_id) == "done":
            raise Conflict("广播已全部发出，无法取消 / broadcast is done; nothing left to cancel")
        done = self.svc.cancel_broadcast(alert_id, actor, f"cancelled by {actor}")
        if done is None:  # another cancel came first
            return {"id": alert_id, "status": "cancelled", "cancelled": 0}
        n, withdrawing = done
        self.svc.ledger.audit(now, actor, "broadcast.cancel", "alert", alert_id,
                              {"cancelled_deliveries": n, "withdrawing": withdrawing, "text": a.speaker_text,
                               "audio_sha256": a.audio_sha256})
        log.info("broadcast %d cancelled by %s: %d deliveries cancelled, %d plays to withdraw from endpoints",
                 alert_id, actor, n, withdrawing)
        return {"id": alert_id, "status": "cancelled", "cancelled": n}

    # ------------------------------------------------------------------- reads

    def _get(self, alert_id: int) -> Alert:
        a = self.svc.ledger.reads.alert(alert_id)
        if a is None or a.kind != "manual":
            raise NotFound(f"没有编号为 {alert_id} 的广播 / no broadcast {alert_id}")
        return a

    def status_of(self, alert_id: int) -> str:
        """The broadcast's status: stored (pending approval, cancelled) or computed from its deliveries."""
        a = self.svc.ledger.reads.alert(alert_id)
        if a is None:
            raise NotFound(f"no alert {alert_id}")
        return computed_status(a, self.svc.ledger.reads.counts([alert_id]), self.svc.now())

    def get(self, alert_id: int) -> dict[str, Any]:
        """``{"id","status","text","deliveries":{"sms":{state:n},"speaker":{state:n}}, ...}``."""
        a = self._get(alert_id)
        counts = self.svc.ledger.reads.counts([alert_id])
        tz = self.svc.cfg.tz
        return {
            "id": a.id, "status": computed_status(a, counts, self.svc.now()), "text": a.speaker_text,
            "deliveries": counts, "villages": a.villages or [], "sms_groups": a.sms_groups or [],
            "chats": _note(a).get("chats", []), "sms_scope": _note(a).get("sms_scope", "town"),
            "at": a.at.astimezone(tz).isoformat() if a.at else None, "repeat": a.repeat,
            "audio_sha256": a.audio_sha256, "upload": bool(_note(a).get("upload")),
            "created_by": a.created_by, "created_at": a.created_at.astimezone(tz).isoformat(),
            "approved_by": a.approved_by, "cancelled_by": a.cancelled_by, "held": _note(a).get("held", []),
        }

    def alerts(self, since: datetime | None = None, ids: list[int] | None = None) -> list[dict[str, Any]]:
        """Automatic and manual alerts created since ``since`` (or those in ``ids``), with counts
        and per-village plays."""
        tz, now = self.svc.cfg.tz, self.svc.now()
        out = []
        for h in self.svc.ledger.reads.history(since=since or now, ids=ids):
            a = h.alert
            out.append({
                "id": a.id, "kind": a.kind, "status": computed_status(a, h.deliveries, now), "level": a.level,
                "night": a.night.isoformat() if a.night else None, "text": a.speaker_text or a.sms_text,
                "created_at": a.created_at.astimezone(tz).isoformat(), "created_by": a.created_by,
                "at": a.at.astimezone(tz).isoformat() if a.at else None, "superseded_by": a.superseded_by,
                "deliveries": h.deliveries, "plays": h.plays,
                "play_at": {v: t.astimezone(tz).isoformat() for v, t in h.play_at.items()},
                "sms_scope": _note(a).get("sms_scope", "town") if a.kind == "manual" else None,
            })
        return out


def computed_status(a: Alert, counts: dict[str, dict[str, int]], now: datetime) -> str:
    """Stored status for pending/cancelled; otherwise scheduled, dispatching or done from deliveries."""
    if a.status in ("pending_approval", "cancelled"):
        return a.status
    states = {st for ch in counts.values() for st, n in ch.items() if n}
    # Before ``at``, plays already handed to their endpoints (sent) are still to come.
    if a.at is not None and now < a.at and states <= {"pending", "sent"}:
        return "scheduled"
    # "sent" counts as gone out: a receipt may still move it to delivered or failed, but
    # nothing more will be sent for it.
    if not states & OPEN:
        return "done"
    return "dispatching"


def failed(counts: dict[str, dict[str, int]]) -> int:
    """How many deliveries ended failed or expired."""
    return sum(n for ch in counts.values() for st, n in ch.items() if st in ("failed", "expired"))


def _note(a: Alert) -> dict[str, Any]:
    try:
        return json.loads(a.note) if a.note else {}
    except ValueError:
        return {}
