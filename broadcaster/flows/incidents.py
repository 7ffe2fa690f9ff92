"""Incident reports (事故上报, DESIGN A14): record, tell the leaders at once, correct, read.

Used by ``POST /api/v1/incidents`` and the console form. An incident is recorded once and never
changed; a correction is a row of its own, shown with it (the first record stays, as reported).
Each incident, and each correction that changes the village or the casualties, goes at once by
SMS to group ``leaders`` (one SMS per person, queued in the same ledger transaction as the record,
so it goes once) and to the chats of ``report.chats``. Every step is
audited.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.config import Config
from broadcaster.config.models import Contact
from broadcaster.config.roster import LEADERS
from broadcaster.errors import InputError, NotFound
from broadcaster.flows.handoff import to_chats
from broadcaster.flows.report import INCIDENT_FIELDS, correction_text, incident_values
from broadcaster.ledger import Alert, Incident, IncidentCorrection, sms_row
from broadcaster.timeutil import tonight

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_PERSONS = 10_000
MAX_AGE = timedelta(days=366)
CLOCK_SKEW = timedelta(minutes=10)  # a phone's clock a little ahead is not "in the future"
SMS_VALID = timedelta(hours=12)
# What a correction must change for the leaders to be told again.
TOLD_AGAIN = ("village", "affected", "deaths")


def incident_sms(town: str, village: str, affected: int, deaths: int, correction: bool = False) -> str:
    """The built-in SMS text of an incident (A13, A14: the reserved template ``incident_sms`` with
    ``{village}``, ``{affected}``, ``{deaths}`` replaces it on template-only providers)."""
    what = "事故更正" if correction else "事故上报"
    return (f"【{town}文化站】{what}：{village}发生一氧化碳中毒事故，涉及{affected}人，死亡{deaths}人。"
            f"详情请登录预警平台查看。")


def leaders(cfg: Config) -> list[Contact]:
    """The people of group ``leaders`` (A13: the group exists whether or not it is declared)."""
    return [c for c in cfg.directory.contacts if LEADERS in c.groups]


# ------------------------------------------------------------------ validation


def _village(cfg: Config, value: Any) -> str:
    if isinstance(value, str) and value.strip():
        v = value.strip()
        for village in cfg.directory.villages:
            if v in (village.id, village.name):
                return village.id
    known = "、".join(f"{x.name}（{x.id}）" for x in cfg.directory.villages)
    raise InputError("village", f"未知的村：{value!r}；可选：{known} / unknown village")


def _time(cfg: Config, value: Any, now: datetime) -> datetime:
    try:
        when = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        raise InputError("occurred_at", "发生时间应为 ISO 8601，如 2026-11-26T06:40 / occurred_at must be ISO 8601")
    when = when if when.tzinfo else when.replace(tzinfo=cfg.tz)  # a wall-clock time, as a person means it
    if when > now + CLOCK_SKEW:
        raise InputError("occurred_at", "发生时间不能晚于现在 / occurred_at is in the future")
    if when < now - MAX_AGE:
        raise InputError("occurred_at", "发生时间不能早于一年前 / occurred_at is more than a year ago")
    return when


def _count(field: str, value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PERSONS:
        name = INCIDENT_FIELDS[field]
        raise InputError(field, f"{name}应为 0 到 {MAX_PERSONS} 的整数 / "
                                f"{field} must be a whole number 0-{MAX_PERSONS}")
    return value


def _text(field: str, value: Any, required: bool) -> str | None:
    text = value.strip() if isinstance(value, str) else None
    if not text:
        if required or (value is not None and not isinstance(value, str)):
            raise InputError(field, f"{INCIDENT_FIELDS.get(field, '说明')}不能为空 / {field} is required")
        return None
    if len(text) > MAX_TEXT:
        raise InputError(field, f"最多 {MAX_TEXT} 字 / {field} is longer than {MAX_TEXT} characters")
    return text


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class Incidents:
    """The incident service layer on top of one :class:`Service`."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def _fields(self, data: Mapping[str, Any], partial: bool) -> dict[str, Any]:
        """The valid fields of ``data`` (for a correction, only those given); InputError names the
        first bad one, in the form's order."""
        cfg, now = self.svc.cfg, self.svc.now()
        out: dict[str, Any] = {}
        check = {"village": lambda v: _village(cfg, v), "occurred_at": lambda v: _time(cfg, v, now),
                 "affected": lambda v: _count("affected", v), "deaths": lambda v: _count("deaths", v),
                 "description": lambda v: _text("description", v, True),
                 "measures": lambda v: _text("measures", v, False)}
        for name, fn in check.items():
            value = data.get(name)
            if partial and _blank(value):
                continue
            if not partial and name != "measures" and _blank(value):
                raise InputError(name, f"请填写{INCIDENT_FIELDS[name]} / {name} is required")
            out[name] = fn(value)
        return out

    def _sms(self, text: str, author: str, now: datetime) -> tuple[Alert, list[dict[str, Any]]]:
        """The alert and the SMS rows that tell group ``leaders`` (numbers reported unreachable held)."""
        unreachable = self.svc.unreachable()
        rows = [sms_row(phone=c.phone, name=c.name, village_id=c.village, body=text, kind=self.svc.sms.type,
                        due_at=now, expires_at=now + SMS_VALID, now=now, group=LEADERS)
                for c in leaders(self.svc.cfg) if c.phone not in unreachable]
        town = self.svc.cfg.settings.town
        alert = Alert(kind="system", dedupe_key="", region=town, night=tonight(now, self.svc.cfg.tz).date,
                      level=None, rules=["incident"], status="dispatching", sms_text=text, created_at=now,
                      created_by=author)
        return alert, rows

    def _village_name(self, village_id: str) -> str:
        v = self.svc.cfg.villages.get(village_id)
        return v.name if v else village_id

    def create(self, data: Mapping[str, Any], author: str) -> dict[str, Any]:
        """Validate and record an incident; leaders get the SMS at once. ``{"id", "sms"}``."""
        f = self._fields(data, partial=False)
        if f["deaths"] > f["affected"]:
            raise InputError("deaths", "死亡人数不能多于涉及人数 / deaths cannot exceed affected")
        now = self.svc.now()
        town = self.svc.cfg.settings.town
        text = incident_sms(town, self._village_name(f["village"]), f["affected"], f["deaths"])
        alert, rows = self._sms(text, author, now)
        incident = Incident(**f, created_at=now, created_by=author)
        incident_id, alert_id = self.svc.ledger.reports.create_incident(incident, alert, rows)
        detail = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in f.items()}
        self.svc.ledger.audit(now, author, "incident.create", "incident", incident_id,
                              {**detail, "sms_alert": alert_id, "sms": len(rows), "text": text})
        log.warning("incident %d reported by %s: %s, %d affected, %d dead; %d SMS to leaders", incident_id,
                    author, f["village"], f["affected"], f["deaths"], len(rows))
        self.svc.dispatcher.wake()
        self._to_chats(text)
        return {"id": incident_id, "sms": len(rows)}

    def correct(self, incident_id: int, data: Mapping[str, Any], author: str) -> dict[str, Any]:
        """Add a correction (the fields it changes and a ``note`` saying why); leaders are told again
        when the village or the casualties change. ``{"id", "incident_id", "sms"}``."""
        found = self.svc.ledger.reports.incident(incident_id)
        if found is None:
            raise NotFound(f"没有编号为 {incident_id} 的事故 / no incident {incident_id}")
        inc, corrections = found
        f = self._fields(data, partial=True)
        before = incident_values(inc, corrections)
        f = {k: v for k, v in f.items() if v != before[k]}
        if not f:
            raise InputError("note", "没有需要更正的内容：请修改至少一项 / nothing to correct: change at least one field")
        note = _text("note", data.get("note"), True)
        after = {**before, **f}
        if after["deaths"] > after["affected"]:
            raise InputError("deaths", "死亡人数不能多于涉及人数 / deaths cannot exceed affected")
        now = self.svc.now()
        alert, rows, text = None, [], None
        if any(k in f for k in TOLD_AGAIN):
            text = incident_sms(self.svc.cfg.settings.town, self._village_name(after["village"]),
                                after["affected"], after["deaths"], correction=True)
            alert, rows = self._sms(text, author, now)
        c = IncidentCorrection(incident_id=incident_id, **f, note=note, created_at=now, created_by=author)
        saved = self.svc.ledger.reports.add_correction(c, alert, rows)
        if saved is None:
            raise NotFound(f"没有编号为 {incident_id} 的事故 / no incident {incident_id}")
        detail = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in f.items()}
        self.svc.ledger.audit(now, author, "incident.correct", "incident", incident_id,
                              {**detail, "note": note, "correction": saved[0], "sms_alert": saved[1],
                               "sms": len(rows), "text": text})
        log.warning("incident %d corrected by %s (%s); %d SMS to leaders", incident_id, author,
                    ", ".join(f), len(rows))
        if rows:
            self.svc.dispatcher.wake()
        if text:
            self._to_chats(text)
        return {"id": saved[0], "incident_id": incident_id, "sms": len(rows)}

    def _to_chats(self, text: str) -> None:
        sched = self.svc.cfg.settings.report
        to_chats(self.svc, sched.chats if sched else [], text)

    # ------------------------------------------------------------------- reads

    def _view(self, inc: Incident, corrections: list[IncidentCorrection]) -> dict[str, Any]:
        tz, cfg = self.svc.cfg.tz, self.svc.cfg
        now = incident_values(inc, corrections)
        texts, values = [], {k: getattr(inc, k) for k in INCIDENT_FIELDS}
        for c in corrections:
            texts.append(correction_text(c, values, cfg))
            values = incident_values(inc, corrections[:len(texts)])
        return {
            "id": inc.id, "village": inc.village, "village_name": self._village_name(inc.village),
            "occurred_at": inc.occurred_at.astimezone(tz).isoformat(), "affected": inc.affected,
            "deaths": inc.deaths, "description": inc.description, "measures": inc.measures,
            "created_at": inc.created_at.astimezone(tz).isoformat(), "created_by": inc.created_by,
            "current": {**{k: v for k, v in now.items() if k != "occurred_at"},
                        "occurred_at": now["occurred_at"].astimezone(tz).isoformat(),
                        "village_name": self._village_name(now["village"])},
            "corrections": [{"id": c.id, "created_at": c.created_at.astimezone(tz).isoformat(),
                             "created_by": c.created_by, "note": c.note, "text": t,
                             "changes": {k: (getattr(c, k).astimezone(tz).isoformat()
                                             if k == "occurred_at" else getattr(c, k))
                                         for k in INCIDENT_FIELDS if getattr(c, k) is not None}}
                            for c, t in zip(corrections, texts)],
        }

    def get(self, incident_id: int) -> dict[str, Any]:
        """One incident as first reported, as it stands now (``current``) and its corrections."""
        found = self.svc.ledger.reports.incident(incident_id)
        if found is None:
            raise NotFound(f"没有编号为 {incident_id} 的事故 / no incident {incident_id}")
        return self._view(*found)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest incidents, newest first."""
        return [self._view(i, c) for i, c in self.svc.ledger.reports.recent_incidents(limit)]
