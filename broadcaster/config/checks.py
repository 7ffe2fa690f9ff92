"""Checks that span files: groups, villages and templates that rules refer to, duplicates."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from broadcaster.config.models import ClipTemplate, SmsTemplate, template_text
from broadcaster.config.paths import display
from broadcaster.config.roster import DUTY_DAY_STARTS, LEADERS
from broadcaster.errors import Problem
from broadcaster.messages import SAMPLE_VALUES, render, sms_segments

if TYPE_CHECKING:
    from broadcaster.config.models import Config

MAX_SEGMENTS = 2


def cross_check(cfg: "Config", rules_file: str, dir_file: str) -> list[Problem]:
    out: list[Problem] = []
    main_file = display(cfg.path)
    d = cfg.directory
    groups = set(d.groups)
    village_ids = Counter(v.id for v in d.villages)
    for i, v in enumerate(d.villages):
        if village_ids[v.id] > 1:
            out.append(Problem(dir_file, f"villages[{i}].id", f"duplicate village id {v.id!r}"))
    for i, c in enumerate(d.contacts):
        for g in c.groups:
            if g not in groups:
                out.append(Problem(dir_file, f"contacts[{i}].groups", f"{c.name}: unknown group {g!r}"))
        if c.village is not None and c.village not in village_ids:
            out.append(Problem(dir_file, f"contacts[{i}].village", f"{c.name}: unknown village {c.village!r}"))

    templates = cfg.rules.templates
    clips_dir = cfg.resolve(cfg.settings.audio.clips)
    for name, t in templates.items():
        if isinstance(t, ClipTemplate) and not (clips_dir / t.clip).is_file():
            out.append(Problem(rules_file, f"templates.{name}.clip", f"clip not found: {display(clips_dir / t.clip)}"))
    for i, rule in enumerate(cfg.rules.rules):
        where = f"rules[{i}]"
        if rule.sms:
            for g in rule.sms.groups:
                if g not in groups:
                    out.append(Problem(rules_file, f"{where}.sms.groups", f"unknown group {g!r}; directory has: {', '.join(sorted(groups))}"))
            t = templates.get(rule.sms.template)
            if t is None:
                out.append(Problem(rules_file, f"{where}.sms.template", f"unknown template {rule.sms.template!r}"))
            elif isinstance(t, ClipTemplate):
                out.append(Problem(rules_file, f"{where}.sms.template", "an SMS template must be text, not a clip"))
            else:
                out.extend(_registration_problems(cfg, rules_file, rule.sms.template, t, f"{where}.sms.template"))
                seg = sms_segments(render(template_text(t) or "", SAMPLE_VALUES))
                if seg.count > MAX_SEGMENTS:
                    out.append(Problem(rules_file, f"templates.{rule.sms.template}",
                                       f"renders to {seg.count} SMS segments ({seg.units} {seg.encoding} units); keep it to {MAX_SEGMENTS}", warning=True))
        for key, target in (("chats", rule.chats), ("displays", rule.displays)):
            if target is None:
                continue
            t = templates.get(target.template)
            if t is None:
                out.append(Problem(rules_file, f"{where}.{key}.template", f"unknown template {target.template!r}"))
            elif isinstance(t, ClipTemplate):
                out.append(Problem(rules_file, f"{where}.{key}.template", "群消息和显示屏模板须为文字 / a chat or display template must be text, not a clip"))
        if rule.chats and rule.chats.ids != "all":
            for cid in rule.chats.ids:
                if cid not in cfg.chats:
                    out.append(Problem(rules_file, f"{where}.chats.ids", f"未知的群 / unknown chat {cid!r}; directory has: {', '.join(sorted(cfg.chats)) or 'none'}"))
        if rule.displays and rule.displays.villages != "all":
            for vid in rule.displays.villages:
                if vid not in village_ids:
                    out.append(Problem(rules_file, f"{where}.displays.villages", f"unknown village {vid!r}"))
        if rule.speakers:
            if rule.speakers.template not in templates:
                out.append(Problem(rules_file, f"{where}.speakers.template", f"unknown template {rule.speakers.template!r}"))
            if rule.speakers.villages != "all":
                for v in rule.speakers.villages:
                    if v not in village_ids:
                        out.append(Problem(rules_file, f"{where}.speakers.villages", f"unknown village {v!r}"))
        if not rule.sms and not rule.speakers:
            out.append(Problem(rules_file, where, "rule sends nothing: give `sms` and/or `speakers`", warning=True))

    # The feed-deadline SMS to the duty group (A10: reserved template, always in use).
    if any(p in TEMPLATE_ONLY for p in cfg.settings.sms.chosen):
        t = templates.get("deadline_sms")
        out.extend(_registration_problems(cfg, rules_file, "deadline_sms", t if isinstance(t, SmsTemplate) else "",
                                          "数据源截止提醒 / the feed-deadline SMS"))

    a = cfg.settings.audio
    if a.chime is not None and not cfg.resolve(a.chime).is_file():
        out.append(Problem(main_file, "audio.chime", f"file not found: {display(cfg.resolve(a.chime))}"))
    out.extend(_report_checks(cfg, main_file, dir_file))
    out.extend(_checkin_checks(cfg, main_file))
    return out


def _checkin_checks(cfg: "Config", main_file: str) -> list[Problem]:
    """Check-ins (A13) need households, and confirm_by must come after send_at in the duty day."""
    c = cfg.settings.checkins
    if c is None:
        return []
    out: list[Problem] = []
    if cfg.directory.households_file is None:
        out.append(Problem(main_file, "checkins", "已配置包户核实，但 directory.yaml 没有 households_file："
                           "不会发出核实短信 / check-ins are configured but there is no households_file",
                           warning=True))

    def in_day(t: Any) -> tuple[bool, Any]:  # the duty day runs 08:00 to 08:00
        return (t < DUTY_DAY_STARTS, t)

    if in_day(c.confirm_by) <= in_day(c.send_at):
        out.append(Problem(main_file, "checkins.confirm_by",
                           f"须晚于 send_at（{c.send_at:%H:%M}；值班日从 08:00 到次日 08:00）"
                           f" / must come after send_at in the duty day"))
    return out


# The providers that send only registered templates, by the SmsTemplate field of their registration.
TEMPLATE_ONLY = tuple(f for f in SmsTemplate.model_fields if f != "text")


def _registration_problems(cfg: "Config", rules_file: str, name: str, t: str | SmsTemplate,
                           used_at: str) -> list[Problem]:
    """A template in use that a configured template-only provider cannot send (DESIGN A10)."""
    out: list[Problem] = []
    for provider in cfg.settings.sms.chosen:
        if provider not in TEMPLATE_ONLY:
            continue
        if not isinstance(t, SmsTemplate) or t.registration(provider) is None:
            out.append(Problem(rules_file, f"templates.{name}.{provider}",
                               f"模板 {name} 缺少 {provider} 的登记（短信服务商 {provider} 只发送已登记的模板，"
                               f"见 {used_at}）/ template {name!r} has no {provider} registration "
                               f"(code and params), and {provider} sends registered templates only"))
    return out


def _report_checks(cfg: "Config", main_file: str, dir_file: str) -> list[Problem]:
    """The weekly report's delivery and the incident SMS (A14)."""
    out: list[Problem] = []
    s = cfg.settings
    if s.report is not None and s.report.email and s.smtp is None:
        out.append(Problem(main_file, "report.email", "sending the report by e-mail needs an `smtp` section"))
    if s.report is not None:
        for cid in s.report.chats:
            if cid not in cfg.chats:
                out.append(Problem(main_file, "report.chats", f"未知的群 / unknown chat {cid!r}; {dir_file} `chats` has: "
                                   f"{', '.join(sorted(cfg.chats)) or 'none'}"))
    if s.smtp is not None and s.smtp.username and not s.smtp.password:
        out.append(Problem(main_file, "smtp.password", "give the password of `smtp.username` "
                           "(from the environment: password: ${SMTP_PASSWORD})"))
    if not any(LEADERS in c.groups for c in cfg.directory.contacts):
        out.append(Problem(dir_file, "contacts", f"no contact is in group `{LEADERS}`: incident "
                           "reports (事故上报) are recorded but reach nobody by SMS", warning=True))
    return out
