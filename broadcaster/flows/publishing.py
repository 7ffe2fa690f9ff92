"""What an alert looks like outside: its poster, and the messages its chats and screens get (A12).

The ledger's chat and display rows hold only the text and the target; the headline, colour,
poster and links are made here from the alert when the dispatcher sends (and for the console,
the API and the public page), so every outlet shows the same facts from one table
(:mod:`broadcaster.publish.levels`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from typing import TYPE_CHECKING

from broadcaster.channels.chats import ChatJob
from broadcaster.channels.displays import DisplayJob
from broadcaster.errors import PermanentError
from broadcaster.ledger import Alert, DeliveryJob
from broadcaster.messages import local_label
from broadcaster.publish import levels
from broadcaster.publish.poster import PosterInput, poster_cache_key, render_poster
from broadcaster.timeutil import Night

if TYPE_CHECKING:  # the wiring sits above this layer; only its type is named here
    from broadcaster.runtime.service import Service

MANUAL_TITLE = "广播通知"
_CACHE_SIZE = 16  # posters are ~100 kB; a few nights' worth is plenty
_posters: OrderedDict[str, bytes] = OrderedDict()
_lock = threading.Lock()


def public_link(svc: Service) -> str:
    """The public page every message links to (what staff forward to ordinary WeChat groups)."""
    return svc.cfg.settings.http.public_url.rstrip("/") + "/public"


def headline(svc: Service, alert: Alert) -> str:
    """``东村镇一氧化碳中毒气象预警 4级（容易发生）``, or the manual broadcast's title."""
    town = svc.cfg.settings.town
    if alert.kind != "auto" or alert.level is None:
        return f"{town}{MANUAL_TITLE}"
    name = levels.level_name(alert.level, svc.cfg.rules.levels)
    return f"{town}一氧化碳中毒气象预警 {alert.level}级（{name}）"


def poster_input(svc: Service, alert: Alert) -> PosterInput:
    """The poster's facts for ``alert``: level, town, night, valid time and advice."""
    town = svc.cfg.settings.town
    issued = alert.created_at.astimezone(svc.cfg.tz) if alert.created_at else None
    if alert.kind != "auto" or alert.level is None:
        return PosterInput(town=town, level=None, title=MANUAL_TITLE, issued_by=town, issued_at=issued,
                           advice=alert.sms_text or alert.speaker_text or "")
    night = Night(alert.night, svc.cfg.tz) if alert.night else svc.tonight()
    reading = svc.ledger.reads.latest_reading(night.date)
    start = reading.valid_from if reading and reading.valid_from else night.start
    end = reading.valid_to if reading and reading.valid_to else night.end
    advice = (reading.advice if reading else None) or alert.sms_text or alert.speaker_text or ""
    return PosterInput(
        town=town, level=alert.level, level_name=levels.level_name(alert.level, svc.cfg.rules.levels),
        night=f"{night.label()}夜间", valid=f"{local_label(start.astimezone(svc.cfg.tz))}至"
        f"{local_label(end.astimezone(svc.cfg.tz))}", advice=advice, issued_by=town, issued_at=issued)


def poster_png(svc: Service, alert: Alert) -> bytes:
    """The alert's poster as PNG bytes (rendered once per distinct content, then cached)."""
    p = poster_input(svc, alert)
    key = poster_cache_key(p)
    with _lock:
        png = _posters.get(key)
        if png is not None:
            _posters.move_to_end(key)
            return png
    png = render_poster(p)
    with _lock:
        _posters[key] = png
        while len(_posters) > _CACHE_SIZE:
            _posters.popitem(last=False)
    return png


def compose(svc: Service, job: DeliveryJob) -> ChatJob | DisplayJob:
    """The message of one chat or display delivery, made from its alert at send time."""
    alert = svc.ledger.reads.alert(job.alert_id)
    if alert is None:
        raise PermanentError(f"alert {job.alert_id} not found")
    colour = levels.colour(alert.level if alert.kind == "auto" else None)
    text = job.body or alert.sms_text or ""
    if job.channel == "display":
        start = datetime.fromisoformat(job.slot) if job.slot else svc.now()
        return DisplayJob(delivery_id=job.id, display_id=job.target, village_id=job.village_id or "",
                          text=text, level=alert.level or 3, colour=colour,
                          start=start.astimezone(svc.cfg.tz), until=(job.play_at or job.expires_at).astimezone(svc.cfg.tz),
                          image_url=svc.cfg.settings.http.public_url.rstrip("/") + "/public/poster.png")
    part = "image" if job.slot == "image" else "text"
    return ChatJob(delivery_id=job.id, alert_id=job.alert_id, chat_id=job.target, part=part,
                   title=headline(svc, alert), text=text, level=alert.level if alert.kind == "auto" else None,
                   colour=colour, link=public_link(svc),
                   image=poster_png(svc, alert) if part == "image" else None)
