"""The feed deadline: no valid reading for tonight by then, the duty group gets one SMS."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from broadcaster.flows.alerts import sms_rows, timing_for_night
from broadcaster.ledger import Alert
from broadcaster.rules import SmsPlan

if TYPE_CHECKING:
    from broadcaster.runtime.service import Service

log = logging.getLogger(__name__)

DUTY_GROUP = "duty"


def deadline_check(svc: "Service") -> int | None:
    """At the deadline: if tonight has no valid reading, SMS the duty group (once per night)."""
    night = svc.tonight()
    if not svc.in_season(night):
        return None
    ok, errors = svc.ledger.reads.feed_errors(night.date)
    if ok:
        return None
    cfg = svc.cfg
    town, dl = cfg.settings.town, cfg.settings.schedule.deadline
    body = (f"【{town}文化站】截至{dl:%H:%M}仍未取得{night.label()}夜间一氧化碳中毒气象条件预报"
            f"（数据源故障），请值班人员人工核实，必要时手动发布预警。")
    values = {"town": town, "date": night.label(), "deadline": f"{dl:%H:%M}"}
    registered = cfg.rules.templates.get("deadline_sms")
    if svc.sms.template_only and registered is not None:  # the reserved template (A10)
        body = str(getattr(registered, "text", registered)).format(**values)
    template = "deadline_sms" if svc.sms.template_only else None
    now = svc.now()
    # An escalation: the roster's people of today's duty day and their 带班领导 (A13).
    plans = [SmsPlan(c.name, c.phone, c.village_id, "deadline", body, DUTY_GROUP, template,
                     values if template else {})
             for c, _g in cfg.book.recipients([DUTY_GROUP], now, cfg.tz, with_leader=True)]
    alert = Alert(kind="system", dedupe_key=f"deadline:{town}:{night.date.isoformat()}", region=town,
                  night=night.date, level=None, rules=["deadline"], status="dispatching", sms_text=body,
                  created_at=now, created_by="scheduler", note="; ".join(errors[-3:]) or "no poll ran")
    alert_id, created = svc.ledger.create_alert(alert, sms_rows(plans, svc.sms.type, timing_for_night(now, night, 60)))
    if created:
        log.warning("feed deadline passed without a valid reading for %s: %d duty SMS queued (alert %d)",
                    night.date, len(plans), alert_id)
        svc.dispatcher.wake()
    return alert_id
