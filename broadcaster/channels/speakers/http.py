"""``http``: push the bulletin to an IP loudspeaker controller (DESIGN A7).

``POST {url}`` multipart with parts ``audio`` and ``meta`` (JSON), ``Authorization: Bearer`` and
``Idempotency-Key: {delivery_id}`` so that a re-send after a crash cannot play twice. Any 2xx
accepts; 408, 429 and 5xx are retried; any other 4xx is permanent.
"""

from __future__ import annotations

import json
import threading
from typing import Literal

import requests
from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.channels.speakers.base import PlayJob, SpeakerChannel, SpeakerConfig
from broadcaster.errors import PermanentError, TransientError
from broadcaster.net import check_push_answer, failure_reason

_MIME = {"mp3": "audio/mpeg", "wav": "audio/wav"}


class HttpConfig(SpeakerConfig):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    token: str = Field(min_length=1)
    timeout_s: float = Field(default=30, gt=0, le=300)


class HttpChannel(SpeakerChannel):
    type = "http"
    Config = HttpConfig
    mode = "schedule"
    idempotent = True  # Idempotency-Key
    withdrawable = True  # DELETE {url} with the same Idempotency-Key

    def __init__(self, config: SpeakerConfig, ctx) -> None:  # type: ignore[no-untyped-def]
        super().__init__(config, ctx)
        self._local = threading.local()  # requests.Session is not thread-safe to share

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def send(self, job: PlayJob) -> SendResult:
        cfg: HttpConfig = self.config  # type: ignore[assignment]
        meta = {
            "delivery_id": str(job.delivery_id),
            "village": job.village_id,
            "play_at": job.play_at.isoformat(),
            "expires_at": job.expires_at.isoformat(),
            "repeat": job.repeat,
            "sha256": job.sha256,
        }
        ext = job.audio_path.suffix.lstrip(".")
        try:
            with job.audio_path.open("rb") as fh:
                resp = self._session().post(
                    cfg.url,
                    files={
                        "audio": (job.audio_path.name, fh, _MIME.get(ext, "application/octet-stream")),
                        "meta": (None, json.dumps(meta, ensure_ascii=False), "application/json"),
                    },
                    headers={
                        "Authorization": f"Bearer {cfg.token}",
                        "Idempotency-Key": str(job.delivery_id),
                    },
                    timeout=cfg.timeout_s,
                )
        except FileNotFoundError as exc:
            raise PermanentError(f"audio file missing: {exc.filename}") from exc
        except requests.RequestException as exc:
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        check_push_answer(resp)
        return SendResult(state="sent", provider_id=resp.headers.get("X-Request-Id"))

    def withdraw(self, job: PlayJob) -> None:
        """``DELETE {url}`` with the play's ``Idempotency-Key``: 2xx or 404 means withdrawn."""
        cfg: HttpConfig = self.config  # type: ignore[assignment]
        try:
            resp = self._session().delete(
                cfg.url,
                headers={"Authorization": f"Bearer {cfg.token}", "Idempotency-Key": str(job.delivery_id)},
                timeout=cfg.timeout_s,
            )
        except requests.RequestException as exc:
            raise TransientError(failure_reason(exc, cfg.timeout_s)) from exc
        if resp.status_code != 404:
            check_push_answer(resp)
