"""``outbox``: SMS written as JSON lines to a file instead of sent (the embedded default).

One line per message: ``{"to", "body", "alert_id", "delivery_id", "time"}``. A station can
forward the file by other means; tests and demos read it.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from broadcaster.channels import SendResult
from broadcaster.channels.sms.base import SmsJob, SmsProvider
from broadcaster.errors import TransientError
from broadcaster.messages import sms_segments


class OutboxProvider(SmsProvider):
    type = "outbox"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, job: SmsJob) -> SendResult:
        line = json.dumps(
            {
                "to": job.to,
                "body": job.body,
                "alert_id": job.alert_id,
                "delivery_id": job.delivery_id,
                "time": datetime.now(timezone.utc).isoformat(),
            },
            ensure_ascii=False,
        )
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        except OSError as exc:
            raise TransientError(f"cannot append to outbox: {exc.strerror}") from None
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
