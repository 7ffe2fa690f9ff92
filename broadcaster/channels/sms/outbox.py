"""``outbox``: SMS written as JSON lines to a file instead of sent (the embedded default).

One line per message: ``{"to", "body", "alert_id", "delivery_id", "time"}`` (the time in the
town's zone) and, for a message made from a rules template, ``"template"`` with its ``"values"``.
A station can forward the file by other means; tests and demos read it.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import SmsContext, SmsJob, SmsProvider
from broadcaster.errors import TransientError
from broadcaster.messages import sms_segments
from broadcaster.plugins import PluginConfig


class OutboxConfig(PluginConfig):
    """``sms.outbox``: where the lines go (relative to broadcaster.yaml)."""

    path: Path = Path("../var/outbox/sms.jsonl")


class OutboxProvider(SmsProvider):
    type = "outbox"
    Config = OutboxConfig

    def __init__(self, config: OutboxConfig, ctx: SmsContext) -> None:  # type: ignore[override]
        super().__init__(config, ctx)
        self.path = config.path if config.path.is_absolute() else (ctx.base_dir / config.path).resolve()
        self._lock = threading.Lock()

    def send(self, job: SmsJob) -> SendResult:
        record: dict[str, Any] = {
            "to": job.to,
            "body": job.body,
            "alert_id": job.alert_id,
            "delivery_id": job.delivery_id,
            "time": datetime.now(self.ctx.tz).isoformat(),
        }
        if job.template:
            record.update(template=job.template, values=dict(job.values))
        line = json.dumps(record, ensure_ascii=False)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise TransientError(f"cannot append to outbox: {exc.strerror}") from exc
        return SendResult(state="sent", provider_id=f"outbox-{job.delivery_id}", segments=sms_segments(job.body).count)

    def find_sent(self, job: SmsJob, since: datetime) -> str | None:
        """The outbox itself records what was written: look for this delivery's line."""
        if not self.path.exists():
            return None
        needle = f'"delivery_id": {job.delivery_id},'
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if needle in line:
                    return f"outbox-{job.delivery_id}"
        return None
