"""``dingtalk``: 钉钉自定义机器人 with 加签 (reference §2, DESIGN A12).

``POST {webhook}&timestamp=MS&sign=S`` where S is the URL-encoded base64 HMAC-SHA256, keyed by the
secret, of ``"{timestamp}\\n{secret}"`` (milliseconds; the robot refuses a timestamp more than an
hour off). Body ``{"msgtype":"markdown","markdown":{"title","text"}}``. Answer ``{"errcode",
"errmsg"}``: 130101 (over 20 a minute) is retried after the robot's ten-minute block; 310000
(sign not match, keywords not in content, ip not in whitelist) and the rest are permanent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.parse
from typing import Any, Literal

from broadcaster.channels.chats.base import ChatChannel, ChatConfig, ChatJob, headline


class DingtalkConfig(ChatConfig):
    type: Literal["dingtalk"]
    secret: str | None = None  # 加签 secret ("SEC..."); None when the robot uses keywords or IPs


def sign(secret: str, timestamp_ms: int) -> str:
    """加签: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")), URL-encoded."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(mac).decode("ascii"))


class DingtalkChannel(ChatChannel):
    type = "dingtalk"
    Config = DingtalkConfig
    retry_codes = {130101: 600.0, -1: 5.0}

    def request(self, job: ChatJob) -> tuple[str, dict[str, Any]]:
        cfg: DingtalkConfig = self.config  # type: ignore[assignment]
        url = cfg.webhook
        if cfg.secret:
            ts = round(time.time() * 1000)  # the robot checks it against its own wall clock
            url += ("&" if "?" in url else "?") + f"timestamp={ts}&sign={sign(cfg.secret, ts)}"
        title = headline(job)
        text = f'#### <font color="{job.colour}">{title}</font>\n\n{job.text}'
        if job.link:
            text += f"\n\n[查看详情]({job.link})"
        return url, {"msgtype": "markdown", "markdown": {"title": title, "text": text}}

    def answer_code(self, body: dict[str, Any]) -> tuple[int, str]:
        return int(body.get("errcode", -999)), str(body.get("errmsg", ""))
