"""Check-ins (包户核实, DESIGN A13): each 包户干部 confirms tonight that their households are safe.

- :func:`send_links` at ``checkins.send_at``: on a night at or above ``level_at_least`` each
  cadre gets one SMS with a personal link ``{public_url}/c/{code}``; the code is 128 random bits
  (``secrets.token_urlsafe(16)``), valid until the night ends, stored only as its sha256.
- :class:`CheckinPage` is what the page shows and records (``broadcaster.web.checkins``).
- :func:`escalate` at ``confirm_by``: the duty officer (and the 带班领导 at level 5) gets one SMS
  counting and naming, by village, the households with no answer or 联系不上.

``send_at`` and ``confirm_by`` are times of the duty day holding the night (08:00 to 08:00).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from broadcaster.config.roster import DUTY, DUTY_DAY_STARTS, duty_day_of
from broadcaster.config.workbooks import Household
from broadcaster.errors import InputError, NotFound
from broadcaster.flows.alerts import sms_rows, timing_for_night
from broadcaster.ledger import Alert
from broadcaster.rules import SmsPlan
from broadcaster.timeutil import Night

if TYPE_CHECKING:
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

ANSWERS = ("已电话确认安全", "已入户查看", "联系不上")
UNREACHED = "联系不上"
CODE_BYTES = 16  # 128 bits


class Expired(NotFound):
    """A check-in code of a night that is over."""


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def household_id(h: Household) -> str:
    """A short stable id of a household for the page's form (not its address or number)."""
    return hashlib.sha256(f"{h.village_id}\x1f{h.head}\x1f{h.address}".encode()).hexdigest()[:16]


def moment(night: Night, t: time) -> datetime:
    """``t`` in the duty day holding ``night``: from 08:00 on that date, earlier times the next."""
    day = night.date if t >= DUTY_DAY_STARTS else night.date + timedelta(days=1)
    return datetime.combine(day, t, night.tz)


def current_night(svc: Service) -> Night:
    """The night of the duty day under way (at 10:00 it is tonight; at 07:00 last night)."""
    return Night(duty_day_of(svc.now(), svc.cfg.tz), svc.cfg.tz)


def _level(svc: Service, night: Night) -> int | None:
    polled, alerted = svc.ledger.reads.tonight_levels(night.date)
    return alerted if alerted is not None else polled


def send_links(svc: Service) -> int | None:
    """Send tonight's check-in links if due, once per night; returns the alert id or None.

    Safe to call at any time (the scheduler's job, after a poll, at start): it does nothing
    before ``send_at``, after the night, out of season, below the level, or when already done.
    """
    cfg, c = svc.cfg, svc.cfg.settings.checkins
    if c is None:
        return None
    svc.reload_workbooks()
    now, night = svc.now(), current_night(svc)
    if not (moment(night, c.send_at) <= now < night.end) or not svc.in_season(night):
        return None
    level = _level(svc, night)
    if level is None or level < c.level_at_least:
        return None
    cadres = cfg.book.by_cadre()
    if not cadres or svc.ledger.checkins.links_sent(night.date):
        return None
    codes, plans = [], []
    base = cfg.settings.http.public_url.rstrip("/")
    for phone, homes in cadres.items():
        code = secrets.token_urlsafe(CODE_BYTES)
        name = homes[0].cadre_name
        codes.append((code_hash(code), phone, name, [h.key for h in homes]))
        plans.append(SmsPlan(name, phone, homes[0].village_id, "checkin",
                             checkin_sms(cfg.settings.town, name, level, len(homes), f"{base}/c/{code}"),
                             "household_cadres"))
    if not svc.ledger.checkins.issue(night.date, codes, night.end, now):
        return None
    alert = Alert(kind="system", dedupe_key=f"checkin:{cfg.settings.town}:{night.date.isoformat()}",
                  region=cfg.settings.town, night=night.date, level=level, rules=["checkin"],
                  status="dispatching", sms_text=checkin_sms(cfg.settings.town, "{name}", level, 0, "{link}"),
                  created_at=now, created_by="scheduler", note=f"{len(plans)} cadres")
    alert_id, created = svc.ledger.create_alert(alert, sms_rows(plans, svc.sms.type, timing_for_night(now, night, 60)))
    if created:
        log.info("check-in links for %s: %d cadres, %d households (alert %d)", night.date, len(plans),
                 sum(len(h) for h in cadres.values()), alert_id)
        svc.dispatcher.wake()
    return alert_id


def checkin_sms(town: str, name: str, level: int, count: int, link: str) -> str:
    """The built-in check-in SMS (template ``checkin_sms`` with ``{link}`` on template-only providers)."""
    homes = f"{count}户" if count else ""
    return (f"【{town}文化站】{name}：今晚一氧化碳中毒气象条件{level}级。请核实您包保的{homes}重点户"
            f"是否安全，并在此登记：{link} （今晚有效）")


def open_households(svc: Service, night: date) -> list[Household]:
    """Households of the current workbook with no answer or 联系不上 for ``night``."""
    answers = svc.ledger.checkins.answers(night)
    return [h for h in svc.cfg.book.households
            if answers.get(h.key, (UNREACHED,))[0] == UNREACHED]


def escalate(svc: Service) -> int | None:
    """At ``confirm_by``: one SMS to the duty officer naming the open households, by village."""
    cfg, c = svc.cfg, svc.cfg.settings.checkins
    if c is None:
        return None
    now, night = svc.now(), current_night(svc)
    if not (moment(night, c.confirm_by) <= now < night.end) or not svc.ledger.checkins.issued(night.date):
        return None
    rest = open_households(svc, night.date)
    if not rest:
        log.info("check-ins for %s: every household answered", night.date)
        return None
    body = open_sms(cfg.settings.town, c.confirm_by, rest, {v.id: v.name for v in cfg.directory.villages})
    level = _level(svc, night) or 0
    plans = [SmsPlan(p.name, p.phone, p.village_id, "checkin-open", body, g)
             for p, g in cfg.book.recipients([DUTY], now, cfg.tz, with_leader=level >= 5)]
    alert = Alert(kind="system", dedupe_key=f"checkin-open:{cfg.settings.town}:{night.date.isoformat()}",
                  region=cfg.settings.town, night=night.date, level=None, rules=["checkin-open"],
                  status="dispatching", sms_text=body, created_at=now, created_by="scheduler",
                  note=f"{len(rest)} households open")
    alert_id, created = svc.ledger.create_alert(alert, sms_rows(plans, svc.sms.type, timing_for_night(now, night, 60)))
    if created:
        log.warning("check-ins for %s: %d households open at confirm_by; %d duty SMS (alert %d)",
                    night.date, len(rest), len(plans), alert_id)
        svc.dispatcher.wake()
    return alert_id


def open_sms(town: str, by: time, rest: list[Household], names: dict[str, str]) -> str:
    """``{count}`` and ``{names}`` of the reserved template ``checkin_open_sms``, in a text."""
    by_village: dict[str, list[str]] = defaultdict(list)
    for h in rest:
        by_village[h.village_id].append(h.head)
    listed = "；".join(f"{names.get(v, v)}{len(hs)}户：{'、'.join(hs)}" for v, hs in by_village.items())
    return (f"【{town}文化站】包户核实：截至{by:%H:%M}仍有{len(rest)}户未确认安全（{listed}），"
            f"请值班人员督促包户干部核实。")


@dataclass(frozen=True)
class Holder:
    """Who a valid code belongs to."""

    night: date
    cadre_phone: str
    cadre_name: str


class CheckinPage:
    """What the page of one code shows and records."""

    CACHE_MAX = 10_000

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        # code sha256 -> (holder, expires_at): a code never changes once issued, so the ledger is
        # asked once per code (300 cadres opening their links at once, issue 15's bench).
        self._known: dict[str, tuple[Holder, datetime]] = {}
        # (night, ledger version, answers): the night's answers, read again only when the ledger
        # changed (SQLite's data_version; on PostgreSQL there is no cheap version and every page reads).
        self._answers: tuple[date, int, dict[Any, tuple[str, datetime, str]]] | None = None

    def holder(self, code: str) -> Holder:
        """The code's cadre and night; NotFound for an unknown code, Expired after its night."""
        if not code or len(code) > 64:
            raise NotFound("no such check-in link")
        sha = code_hash(code)
        known = self._known.get(sha)
        if known is None:
            row = self.svc.ledger.checkins.code(sha)
            if row is None:
                raise NotFound("no such check-in link")
            known = (Holder(row.night, row.cadre_phone, row.cadre_name), row.expires_at)
            if len(self._known) >= self.CACHE_MAX:
                self._known.clear()
            self._known[sha] = known
        if self.svc.now() >= known[1]:
            raise Expired("this check-in link has expired")
        return known[0]

    def view(self, code: str) -> dict[str, Any]:
        """The page's content: the cadre's households with their latest answers."""
        h = self.holder(code)
        answers = self._night_answers(h.night)
        names = {v.id: v.name for v in self.svc.cfg.directory.villages}
        homes = self.svc.cfg.book.by_cadre().get(h.cadre_phone, [])
        return {"night": h.night, "cadre": h.cadre_name, "answers": ANSWERS, "town": self.svc.cfg.settings.town,
                "households": [{"id": household_id(x), "village": names.get(x.village_id, x.village_id),
                                "head": x.head, "address": x.address, "category": x.category,
                                "contact": x.contact_name, "phone": x.contact_phone,
                                "answer": answers.get(x.key, (None,))[0]} for x in homes]}

    def _night_answers(self, night: date) -> dict[Any, tuple[str, datetime, str]]:
        version = self.svc.ledger.version()  # read before the query it guards
        cached = self._answers
        if version is not None and cached is not None and cached[0] == night and cached[1] == version:
            return cached[2]
        answers = self.svc.ledger.checkins.answers(night)
        if version is not None:
            self._answers = (night, version, answers)
        return answers

    def answer(self, code: str, household: str, answer: str, client: str) -> str:
        """Record an answer for one of the code's households (audited); returns the 户主."""
        h = self.holder(code)
        if answer not in ANSWERS:
            raise InputError("answer", f"须为 {'、'.join(ANSWERS)} 之一 / must be one of the three answers")
        homes = {household_id(x): x for x in self.svc.cfg.book.by_cadre().get(h.cadre_phone, [])}
        home = homes.get(household)
        if home is None:
            raise InputError("household", "不是您包保的户 / not one of this cadre's households")
        self.svc.ledger.checkins.answer(
            h.night, home.key, (h.cadre_phone, h.cadre_name), answer, self.svc.now(), actor=f"cadre:{h.cadre_name}",
            detail={"village": home.village_id, "head": home.head, "answer": answer, "client": client})
        return home.head


def board(svc: Service, night: date) -> dict[str, Any]:
    """``GET /api/v1/checkins``: every household of the workbook with its answer for ``night``."""
    answers = svc.ledger.checkins.answers(night)
    out = []
    for h in svc.cfg.book.households:
        ans = answers.get(h.key)
        out.append({"village": h.village_id, "head": h.head, "cadre": h.cadre_name,
                    "answer": ans[0] if ans else None,
                    "answered_at": ans[1].astimezone(svc.cfg.tz).isoformat() if ans else None})
    return {"night": night.isoformat(), "issued": svc.ledger.checkins.issued(night), "households": out}
