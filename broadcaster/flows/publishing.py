"""What an alert looks like outside: its poster, and the messages its chats and screens get (A12).

The ledger's chat and display rows hold only the text and the target; the headline, colour,
poster and links are made here from the alert when the dispatcher sends (and for the console,
the API and the public page), so every outlet shows the same facts from one table
(:mod:`broadcaster.publish.levels`).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.channels.chats import ChatJob
from broadcaster.channels.displays import DisplayJob
from broadcaster.errors import PermanentError
from broadcaster.ledger import Alert, DeliveryJob
from broadcaster.messages import local_label
from broadcaster.publish import levels
from broadcaster.publish.cap import FEED_DAYS, CapFeedEntry, CapInput, CapRef, cap_alert, cap_atom_feed
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
                           advice=alert.speaker_text or alert.sms_text or "", hotline=svc.cfg.settings.public.hotline)
    night = Night(alert.night, svc.cfg.tz) if alert.night else svc.tonight()
    reading = svc.ledger.reads.latest_reading(night.date)
    start = reading.valid_from if reading and reading.valid_from else night.start
    end = reading.valid_to if reading and reading.valid_to else night.end
    advice = (reading.advice if reading else None) or alert.sms_text or alert.speaker_text or ""
    return PosterInput(
        town=town, level=alert.level, level_name=levels.level_name(alert.level, svc.cfg.rules.levels),
        night=f"{night.label()}夜间", valid=f"{local_label(start.astimezone(svc.cfg.tz))}至"
        f"{local_label(end.astimezone(svc.cfg.tz))}", advice=advice, issued_by=town, issued_at=issued,
        hotline=svc.cfg.settings.public.hotline)


def manual_poster(svc: Service, text: str) -> bytes:
    """The poster of a manual broadcast of ``text`` (the compose page's preview)."""
    town = svc.cfg.settings.town
    return render_cached(PosterInput(town=town, level=None, title=MANUAL_TITLE, issued_by=town,
                                     issued_at=svc.now().astimezone(svc.cfg.tz), advice=text,
                                     hotline=svc.cfg.settings.public.hotline))


def poster_png(svc: Service, alert: Alert) -> bytes:
    """The alert's poster as PNG bytes (rendered once per distinct content, then cached)."""
    return render_cached(poster_input(svc, alert))


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
    if job.slot.startswith("file:"):
        return file_job(job, headline(svc, alert))
    part = "image" if job.slot == "image" else "text"
    return ChatJob(delivery_id=job.id, alert_id=job.alert_id, chat_id=job.target, part=part,
                   title=headline(svc, alert), text=text, level=alert.level if alert.kind == "auto" else None,
                   colour=colour, link=public_link(svc),
                   image=poster_png(svc, alert) if part == "image" else None)


def file_job(job: DeliveryJob, title: str) -> ChatJob:
    """A file handed to a chat (the weekly report's workbook or PDF): the row's body is its path,
    read now so a retry sends the file as it is on disk."""
    path = Path(job.body or "")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PermanentError(f"文件不见了 / file missing: {path.name} ({exc.strerror})") from exc
    return ChatJob(delivery_id=job.id, alert_id=job.alert_id, chat_id=job.target, part="file", title=title,
                   text="", file_name=path.name, file_data=data)


# ------------------------------------------------------------------- CAP 1.2


def cap_sender(svc: Service) -> str:
    """The CAP ``sender``: this service, named by its public host."""
    host = svc.cfg.settings.http.public_url.split("://", 1)[1].split("/", 1)[0]
    return f"broadcaster@{host}"


def cap_url(svc: Service, alert_id: int) -> str:
    return svc.cfg.settings.http.public_url.rstrip("/") + f"/public/cap/{alert_id}.xml"


def cap_message(svc: Service, alert: Alert) -> bytes:
    """The automatic alert as a CAP 1.2 message (DESIGN A12); an escalation references the
    alerts it superseded."""
    if alert.kind != "auto" or alert.level is None or alert.night is None:
        raise PermanentError(f"alert {alert.id} is not an automatic alert: no CAP message")
    tz = svc.cfg.tz
    night = Night(alert.night, tz)
    town = svc.cfg.settings.town
    p = poster_input(svc, alert)
    sender = cap_sender(svc)
    earlier = [a for a in svc.ledger.reads.alerts_for_night(alert.night) if a.superseded_by == alert.id]
    sent = alert.created_at.astimezone(tz)
    return cap_alert(CapInput(
        identifier=f"co-{town_slug(svc)}-{alert.id}", sender=sender, sent=sent, level=alert.level,
        level_name=levels.level_name(alert.level, svc.cfg.rules.levels), town=town,
        expires=max(night.end, sent + timedelta(minutes=1)), sender_name=town,
        instruction=p.advice or "请开窗通风，检查烟道，睡前熄灭炉火。", onset=night.start, effective=sent,
        web=public_link(svc),
        references=tuple(CapRef(sender, f"co-{town_slug(svc)}-{a.id}", a.created_at.astimezone(tz))
                         for a in earlier)))


def town_slug(svc: Service) -> str:
    """A CAP-safe token for the deployment (identifiers must be unique per sender)."""
    return hashlib.sha1(svc.cfg.settings.town.encode("utf-8")).hexdigest()[:8]


def cap_feed(svc: Service) -> bytes:
    """The Atom feed of the last 30 days' automatic alerts, each linking to its CAP message."""
    now = svc.now().astimezone(svc.cfg.tz)
    entries = [CapFeedEntry(url=cap_url(svc, a.id), title=headline(svc, a), updated=a.created_at.astimezone(svc.cfg.tz),
                            page_url=public_link(svc))
               for a in svc.ledger.reads.auto_alerts_since(now - timedelta(days=FEED_DAYS))
               if a.level is not None and a.night is not None]
    return cap_atom_feed(entries, svc.cfg.settings.http.public_url.rstrip("/") + "/public/cap.atom",
                         f"{svc.cfg.settings.town}一氧化碳中毒气象预警", now, author=svc.cfg.settings.town)


# ---------------------------------------------------------------- public page


@dataclass(frozen=True)
class PublicView:
    """Tonight for everyone: no names, numbers or endpoints (DESIGN A12)."""

    town: str
    night: str
    level: int | None
    level_name: str
    colour: str
    text_colour: str
    advice: str
    valid: str
    alert_id: int | None
    poster: PosterInput | None


def public_view(svc: Service) -> PublicView:
    """Tonight's highest standing automatic alert, else tonight's latest reading, else nothing."""
    night = svc.tonight()
    town = svc.cfg.settings.town
    alerts = [a for a in svc.ledger.reads.alerts_for_night(night.date)
              if a.region == town and a.level is not None and a.superseded_by is None]
    if alerts:
        a = max(alerts, key=lambda x: (x.level or 0, x.id))
        p = poster_input(svc, a)
        return PublicView(town, p.night, a.level, p.level_name, levels.colour(a.level), levels.text_colour(a.level),
                          p.advice, p.valid, a.id, p)
    r = svc.ledger.reads.latest_reading(night.date)
    if r is None or r.level is None:
        return PublicView(town, f"{night.label()}夜间", None, "", levels.colour(None), levels.text_colour(None),
                          "", "", None, None)
    tz = svc.cfg.tz
    valid = (f"{local_label((r.valid_from or night.start).astimezone(tz))}至"
             f"{local_label((r.valid_to or night.end).astimezone(tz))}")
    name = levels.level_name(r.level, svc.cfg.rules.levels)
    p = PosterInput(town=town, level=r.level, level_name=name, night=f"{night.label()}夜间", valid=valid,
                    advice=r.advice or "", issued_by=town, issued_at=r.fetched_at.astimezone(tz),
                    hotline=svc.cfg.settings.public.hotline)
    return PublicView(town, p.night, r.level, name, levels.colour(r.level), levels.text_colour(r.level),
                      p.advice, valid, None, p)


def render_cached(p: PosterInput) -> bytes:
    """A poster's PNG from the shared cache (rendered once per distinct content)."""
    key = poster_cache_key(p)
    with _lock:
        png = _posters.get(key)
    if png is None:
        png = render_poster(p)
        with _lock:
            _posters[key] = png
            while len(_posters) > _CACHE_SIZE:
                _posters.popitem(last=False)
    return png
