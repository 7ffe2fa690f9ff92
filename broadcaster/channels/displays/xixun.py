"""``xixun``: a Xixun/Sysolution (熙讯) LED controller through its RealtimeServer (reference §5.1).

The controller keeps a WebSocket open to the vendor's RealtimeServer (it dials out, so 4G screens
behind NAT work); the service drives it with ``POST {server}/command/{card_id}`` and one JSON
command (``authorization`` header when the server's ``config.js`` sets one):

* show: ``commandXixunPlayer`` / ``PlayXixunTask`` with one ``MultiLineText`` source in the
  level's colour, the task named ``co-{delivery_id}``, scheduled every day between ``from`` and
  ``until`` (HH:MM). A new task replaces the card's current one, so a re-send after a crash shows
  it once. The server answers 200 with the card's reply, which must be ``_type: success``; a
  player's ``{"_type":"Error"}`` also comes back as 200 and is a failure; 500 is the card being
  offline (``... does not exist!``), its error or ``timeout``: retried.
* withdraw: ``getPlayingProgram``; only when the card still plays ``co-{delivery_id}`` is it
  cleared (``clearPlayerTask``), so withdrawing a superseded warning never clears its successor.

[UNVERIFIED] how the player treats a time range that runs past midnight (a night's warning does);
the service also clears the task when the warning is withdrawn.
"""

from __future__ import annotations

import html
import threading
import uuid
from typing import Any, Literal

import requests
from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.channels.displays.base import DisplayChannel, DisplayConfig, DisplayJob
from broadcaster.errors import PermanentError, TransientError
from broadcaster.net import failure_reason


class XixunConfig(DisplayConfig):
    type: Literal["xixun"]
    server: str = Field(pattern=r"^https?://")  # the RealtimeServer, e.g. http://10.0.0.5:8081
    card_id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    auth: str | None = None  # the server's ``authorization`` secret, if it sets one
    width: int = Field(default=128, ge=8, le=8192)
    height: int = Field(default=64, ge=8, le=8192)
    font_px: int = Field(default=16, ge=8, le=512)
    timeout_s: float = Field(default=15, gt=0, le=120)


def _rid() -> str:
    return uuid.uuid4().hex


class XixunDisplay(DisplayChannel):
    type = "xixun"
    Config = XixunConfig

    def __init__(self, config: DisplayConfig) -> None:
        super().__init__(config)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _command(self, body: dict[str, Any]) -> dict[str, Any]:
        cfg: XixunConfig = self.config  # type: ignore[assignment]
        headers = {"Content-Type": "application/json; charset=UTF-8"}
        if cfg.auth:
            headers["authorization"] = cfg.auth
        url = f"{cfg.server.rstrip('/')}/command/{cfg.card_id}"
        try:
            resp = self._session().post(url, json=body, headers=headers, timeout=cfg.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code >= 500:  # offline card, the card's error, or no answer in time
            raise TransientError(f"HTTP {resp.status_code}: {resp.text[:200]}", code=resp.status_code)
        if resp.status_code != 200:
            raise PermanentError(f"HTTP {resp.status_code}: {resp.text[:200]}", code=resp.status_code)
        try:
            reply = resp.json()
        except ValueError:
            raise PermanentError("not a RealtimeServer answer") from None
        if not isinstance(reply, dict) or reply.get("_type") != "success":
            why = reply.get("errorMessage") or reply.get("message") if isinstance(reply, dict) else reply
            raise PermanentError(f"card refused: {why}")
        return reply

    def send(self, job: DisplayJob) -> SendResult:
        cfg: XixunConfig = self.config  # type: ignore[assignment]
        text = html.escape(job.text)
        source = {"id": _rid(), "name": "co", "_type": "MultiLineText", "center": True, "lineHeight": 1.4,
                  "speed": 20, "playTime": 0, "timeSpan": 10, "left": 0, "top": 0, "width": cfg.width,
                  "height": cfg.height, "entryEffect": "None", "exitEffect": "None", "entryEffectTimeSpan": 0,
                  "exitEffectTimeSpan": 0,
                  "html": f"<span style='color:{job.colour};font-size:{cfg.font_px}px'>{text}</span>"}
        task = {"_id": _rid(), "name": f"co-{job.delivery_id}", "insert": False, "items": [{
            "_id": _rid(), "repeatTimes": 1,
            "_program": {"id": _rid(), "totalSize": 0, "name": f"co-{job.delivery_id}", "width": cfg.width,
                         "height": cfg.height, "layers": [{"repeat": False, "sources": [source]}]},
            "schedules": [{"dateType": "All", "timeType": "Range", "startTime": f"{job.start:%H:%M}",
                           "endTime": f"{job.until:%H:%M}", "filterType": "None"}]}]}
        self._command({"type": "commandXixunPlayer", "_id": _rid(), "command": {
            "_type": "PlayXixunTask", "id": _rid(), "preDownloadURL": "", "notificationURL": "", "task": task}})
        return SendResult(state="sent", provider_id=f"co-{job.delivery_id}")

    def withdraw(self, job: DisplayJob) -> None:
        playing = self._command({"type": "getPlayingProgram", "_id": _rid()})
        if playing.get("name") == f"co-{job.delivery_id}":
            self._command({"type": "clearPlayerTask", "_id": _rid()})
