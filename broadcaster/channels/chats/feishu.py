"""``feishu``: 飞书自定义机器人 with signature (reference §3, DESIGN A12).

``POST {webhook}`` ``{"timestamp","sign","msg_type":"interactive","card":{...}}`` where sign is the
base64 HMAC-SHA256 keyed by ``"{timestamp}\\n{secret}"`` over an empty message, the timestamp in
seconds, both in the body (not the URL). The card's header takes the level's colour. Answer
``{"code","msg"}``: 11232 (frequency limited) and 9499 when its message says too many requests are
retried after a minute; 19021 (bad signature), 19024 (keyword), 19022 (IP) and the rest are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Literal

from broadcaster.channels.chats.base import ChatChannel, ChatConfig, ChatJob, headline

#: The card header's named colours nearest the levels' own.
_TEMPLATE = {1: "green", 2: "blue", 3: "yellow", 4: "orange", 5: "red"}


class FeishuConfig(ChatConfig):
    type: Literal["feishu"]
    secret: str | None = None


def sign(secret: str, timestamp_s: int) -> str:
    """base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=b""))."""
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode("ascii")


class FeishuChannel(ChatChannel):
    type = "feishu"
    Config = FeishuConfig
    retry_codes = {11232: 60.0}

    def request(self, job: ChatJob) -> tuple[str, dict[str, Any]]:
        cfg: FeishuConfig = self.config  # type: ignore[assignment]
        elements: list[dict[str, Any]] = [{"tag": "div", "text": {"tag": "lark_md", "content": job.text}}]
        if job.link:
            elements.append({"tag": "action", "actions": [{
                "tag": "button", "text": {"tag": "plain_text", "content": "查看详情"},
                "type": "primary", "url": job.link}]})
        body: dict[str, Any] = {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": {"tag": "plain_text", "content": headline(job)},
                       "template": _TEMPLATE.get(job.level or 0, "grey")},
            "elements": elements}}
        if cfg.secret:
            ts = int(time.time())
            body = {"timestamp": str(ts), "sign": sign(cfg.secret, ts), **body}
        return cfg.webhook, body

    def answer_code(self, body: dict[str, Any]) -> tuple[int, str]:
        code = body.get("code", body.get("StatusCode", -999))
        return int(code), str(body.get("msg", body.get("StatusMessage", "")))

    def is_retryable(self, code: int, msg: str) -> float | None:
        if code == 9499 and "too many request" in msg.lower():
            return 60.0
        return super().is_retryable(code, msg)
