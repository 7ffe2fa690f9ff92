"""``wecom``: 企业微信群机器人 (reference §1, DESIGN A12).

``POST {webhook}`` (the key is in the URL) ``{"msgtype":"markdown","markdown":{"content"}}`` for the
text and ``{"msgtype":"image","image":{"base64","md5"}}`` for the poster: two deliveries, retried
separately. Answer ``{"errcode","errmsg"}``: 0 accepted; 45009 (over the rate) retried after a
minute, -1 (busy) soon; anything else (93000 robot removed, 40058 bad payload...) is permanent.
WeCom markdown has three named colours only, so the level's own colour is named in words.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Literal

from broadcaster.channels.chats.base import ChatChannel, ChatConfig, ChatJob, headline

#: WeCom markdown's colours: info green, comment grey, warning orange-red.
_FONT = {1: "info", 2: "info", 3: "warning", 4: "warning", 5: "warning"}
MARKDOWN_LIMIT = 4096  # bytes


class WecomConfig(ChatConfig):
    type: Literal["wecom"]


class WecomChannel(ChatChannel):
    type = "wecom"
    Config = WecomConfig
    takes_images = True
    retry_codes = {45009: 60.0, -1: 5.0}

    def request(self, job: ChatJob) -> tuple[str, dict[str, Any]]:
        if job.part == "image":
            data = job.image or b""
            return self.config.webhook, {"msgtype": "image", "image": {
                "base64": base64.b64encode(data).decode("ascii"), "md5": hashlib.md5(data).hexdigest()}}
        colour = _FONT.get(job.level or 0, "comment")
        lines = [f'### <font color="{colour}">{headline(job)}</font>', "", job.text]
        if job.link:
            lines += ["", f"[查看详情]({job.link})"]
        # Over the limit the robot refuses the whole message (40058): cut the tail instead, on a
        # character boundary (the headline comes first, so it always survives).
        content = "\n".join(lines).encode("utf-8")[:MARKDOWN_LIMIT].decode("utf-8", "ignore")
        return self.config.webhook, {"msgtype": "markdown", "markdown": {"content": content}}

    def answer_code(self, body: dict[str, Any]) -> tuple[int, str]:
        return int(body.get("errcode", -999)), str(body.get("errmsg", ""))
