"""``http``: the generic display push of DESIGN A12, which a site adapter translates for its screen.

``POST {url}`` JSON ``{"delivery_id","text","level","color","from","until","image_url"}`` with
``Authorization: Bearer {token}`` and ``Idempotency-Key: {delivery_id}``; 2xx = shown; 408, 429
and 5xx are retried, other 4xx permanent. Withdrawal is ``DELETE {url}`` with the same key; 2xx
or 404 (not on screen) both mean it is down.
"""

from __future__ import annotations

import threading
from typing import Literal

import requests
from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.channels.displays.base import DisplayChannel, DisplayConfig, DisplayJob
from broadcaster.errors import TransientError
from broadcaster.net import check_push_answer, failure_reason


class HttpDisplayConfig(DisplayConfig):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    token: str = Field(min_length=1)
    timeout_s: float = Field(default=15, gt=0, le=120)


def _iso(dt) -> str:  # type: ignore[no-untyped-def]
    """ISO 8601 with the offset, seconds, no fraction (what simple screen firmware parses)."""
    return dt.replace(microsecond=0).isoformat()


class HttpDisplay(DisplayChannel):
    type = "http"
    Config = HttpDisplayConfig

    def __init__(self, config: DisplayConfig) -> None:
        super().__init__(config)
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _headers(self, job: DisplayJob) -> dict[str, str]:
        cfg: HttpDisplayConfig = self.config  # type: ignore[assignment]
        return {"Authorization": f"Bearer {cfg.token}", "Idempotency-Key": str(job.delivery_id)}

    def send(self, job: DisplayJob) -> SendResult:
        cfg: HttpDisplayConfig = self.config  # type: ignore[assignment]
        body = {"delivery_id": str(job.delivery_id), "text": job.text, "level": job.level,
                "color": job.colour, "from": _iso(job.start), "until": _iso(job.until),
                "image_url": job.image_url}
        try:
            resp = self._session().post(cfg.url, json=body, headers=self._headers(job), timeout=cfg.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        check_push_answer(resp, body_chars=200)
        return SendResult(state="sent")

    def withdraw(self, job: DisplayJob) -> None:
        cfg: HttpDisplayConfig = self.config  # type: ignore[assignment]
        try:
            resp = self._session().delete(cfg.url, headers=self._headers(job), timeout=cfg.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code != 404:
            check_push_answer(resp, body_chars=200)
