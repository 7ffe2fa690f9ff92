"""From tonight's level to what is sent: pure functions, no I/O (DESIGN A4).

Every rule that matches adds its targets; a contact gets at most one SMS per alert and an
endpoint plays each scheduled time once. A play time already past becomes one play as soon as
possible, unless the night is over or that moment falls in quiet hours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broadcaster.config import Config
from broadcaster.config.models import ClipTemplate, Rule, When, template_text
from broadcaster.feeds import Reading
from broadcaster.messages import TemplateValues, local_label, render
from broadcaster.timeutil import Night, in_window


@dataclass(frozen=True)
class SmsPlan:
    name: str
    phone: str  # E.164
    village_id: str | None
    rule: str
    body: str
    group: str | None = None  # the directory group it is sent for: the first of the rule's the contact is in
    template: str | None = None  # the rules template ``body`` was rendered from (A10)
    values: Mapping[str, str] = field(default_factory=dict)  # and its placeholders' values


@dataclass(frozen=True)
class PlayPlan:
    village_id: str
    village_name: str
    speaker_id: str
    speaker_type: str
    play_at: datetime
    rule: str
    text: str | None  # spoken text, or None when the template is a recorded clip
    clip: str | None
    repeat: int | None


@dataclass(frozen=True)
class ChatPlan:
    """One message to one group chat (A12); ``chat_type`` says whether the poster follows."""

    chat_id: str
    chat_type: str
    rule: str
    text: str


@dataclass(frozen=True)
class DisplayPlan:
    """The warning on one village screen until ``until`` (A12)."""

    display_id: str
    display_type: str
    village_id: str
    rule: str
    text: str
    until: datetime


@dataclass
class Decision:
    level: int
    level_name: str
    night: Night
    fired: list[str] = field(default_factory=list)
    sms: list[SmsPlan] = field(default_factory=list)
    plays: list[PlayPlan] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # what was left out and why
    chats: list[ChatPlan] = field(default_factory=list)
    displays: list[DisplayPlan] = field(default_factory=list)

    @property
    def sends_anything(self) -> bool:
        return bool(self.sms or self.plays or self.chats or self.displays)


def matches(when: When, level: int, night: Night) -> bool:
    """True when a rule's condition holds for this level and night."""
    if when.level_at_least is not None and level < when.level_at_least:
        return False
    if when.level_in is not None and level not in when.level_in:
        return False
    if when.weekdays is not None and night.date.isoweekday() not in when.weekdays:
        return False
    if when.months is not None and night.date.month not in when.months:
        return False
    return True


def template_values(cfg: Config, level: int, night: Night, reading: Reading | None) -> TemplateValues:
    tz = cfg.tz
    vf = reading.valid_from.astimezone(tz) if reading else night.start
    vt = reading.valid_to.astimezone(tz) if reading else night.end
    return TemplateValues(
        town=cfg.settings.town,
        date=night.label(),
        level=level,
        level_name=cfg.rules.levels.get(level, ""),
        advice=(reading.advice or "") if reading else "",
        valid_from=local_label(vf),
        valid_to=local_label(vt),
    )


def quiet(cfg: Config, moment: datetime, level: int) -> bool:
    """True when a loudspeaker may not play at ``moment`` for this level."""
    q = cfg.settings.schedule.quiet_hours
    if q is None:
        return False
    if q.except_level_at_least is not None and level >= q.except_level_at_least:
        return False
    return in_window(moment.astimezone(cfg.tz).time(), q.from_, q.to)


def decide(
    cfg: Config,
    level: int,
    night: Night,
    now: datetime,
    reading: Reading | None = None,
    unreachable: Mapping[str, str] | None = None,
) -> Decision:
    """What the rules send for ``level`` on ``night`` when decided at ``now``.

    ``unreachable`` maps E.164 numbers a provider reported unreachable to the reason; they
    are skipped and listed in ``held``.
    """
    unreachable = unreachable or {}
    values = template_values(cfg, level, night, reading)
    d = Decision(level=level, level_name=values.level_name, night=night)
    fired: list[Rule] = [r for r in cfg.rules.rules if matches(r.when, level, night)]
    d.fired = [r.name for r in fired]
    templates = cfg.rules.templates

    seen_phones: set[str] = set()
    for rule in fired:
        if not rule.sms:
            continue
        body = render(template_text(templates[rule.sms.template]) or "", values)
        # Group `duty` is the night's duty day on the roster; its 带班领导 too at level 5 (A13).
        for c, group in cfg.book.recipients(rule.sms.groups, night.start, cfg.tz, with_leader=level >= 5):
            if c.phone in seen_phones:
                continue
            seen_phones.add(c.phone)
            if c.phone in unreachable:
                d.held.append(f"SMS {c.name}: {unreachable[c.phone]}")
                continue
            d.sms.append(SmsPlan(c.name, c.phone, c.village_id, rule.name, body, group,
                                 rule.sms.template, values.as_dict()))

    villages = cfg.villages
    seen_slots: set[tuple[str, datetime]] = set()
    for rule in fired:
        sp = rule.speakers
        if not sp:
            continue
        tmpl = templates[sp.template]
        text = None if isinstance(tmpl, ClipTemplate) else render(template_text(tmpl) or "", values)
        clip = tmpl.clip if isinstance(tmpl, ClipTemplate) else None
        ids = list(villages) if sp.villages == "all" else sp.villages
        times = sorted(night.at(t) for t in sp.at)
        for vid in ids:
            village = villages[vid]
            for speaker in cfg.speakers_of(vid):
                sid, stype = speaker.id, speaker.type
                for when in _play_times(times, now, night):
                    if (sid, when) in seen_slots:
                        continue
                    seen_slots.add((sid, when))
                    if quiet(cfg, when, level):
                        d.held.append(f"{village.name} {sid} {when.astimezone(cfg.tz):%H:%M}: 静默时段（quiet hours）")
                        continue
                    d.plays.append(PlayPlan(vid, village.name, sid, stype, when, rule.name, text, clip, sp.repeat))
    d.chats, d.displays = _chat_plans(cfg, fired, values, now), _display_plans(cfg, fired, values, now, night)
    return d


def _chat_plans(cfg: Config, fired: list[Rule], values: TemplateValues, now: datetime) -> list[ChatPlan]:
    """Each chat once per alert, with the text of the first rule that names it."""
    out: dict[str, ChatPlan] = {}
    for rule in fired:
        if not rule.chats:
            continue
        text = render(cfg.rules.templates[rule.chats.template], values)  # type: ignore[arg-type]
        ids = list(cfg.chats) if rule.chats.ids == "all" else rule.chats.ids
        for cid in ids:
            if cid in cfg.chats and cid not in out:
                out[cid] = ChatPlan(cid, cfg.chats[cid].type, rule.name, text)
    return list(out.values())


def _display_plans(cfg: Config, fired: list[Rule], values: TemplateValues, now: datetime,
                   night: Night) -> list[DisplayPlan]:
    """Each screen once per alert, until the first ``until`` of the rule after now."""
    out: dict[str, DisplayPlan] = {}
    for rule in fired:
        dt = rule.displays
        if not dt:
            continue
        text = render(cfg.rules.templates[dt.template], values)  # type: ignore[arg-type]
        until = night.at(dt.until)
        while until <= now:  # "the first HH:MM after the alert"
            until += timedelta(days=1)
        ids = list(cfg.villages) if dt.villages == "all" else dt.villages
        for did, (village, dc) in cfg.displays.items():
            if village.id in ids and did not in out:
                out[did] = DisplayPlan(did, dc.type, village.id, rule.name, text, until)
    return list(out.values())


def _play_times(times: list[datetime], now: datetime, night: Night) -> list[datetime]:
    """Future times as they are; all past ones collapse into one play now, if the night is not over."""
    future = [t for t in times if t >= now]
    if len(future) < len(times) and now < night.end:
        return [now.replace(microsecond=0)] + future
    return future
