"""``wecom``: 企业微信群机器人 (reference §1, DESIGN A12).

``POST {webhook}`` (the key is in the URL) ``{"msgtype":"markdown","markdown":{"content"}}`` for the
text and ``{"msgtype":"image","image":{"base64","md5"}}`` for the poster: two deliveries, retried
separately. A file (the weekly report's workbook and PDF) is uploaded first, ``POST
.../webhook/upload_media?key=KEY&type=file`` multipart with the part ``media`` (answer ``{"errcode":0,
"media_id"...}``), then sent as ``{"msgtype":"file","file":{"media_id"}}``. Answer ``{"errcode","errmsg"}``: 0 accepted; 45009 (over the rate) retried after a
minute, -1 (busy) soon; anything else (93000 robot removed, 40058 bad payload...) is permanent.
WeCom markdown has three named colours only, so the level's own colour is named in words.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from broadcaster.channels import SendResult
from broadcaster.channels.chats.base import ChatChannel, ChatConfig, ChatJob, headline
from broadcaster.errors import PermanentError

#: WeCom markdown's colours: info green, comment grey, warning orange-red.
_FONT = {1: "info", 2: "info", 3: "warning", 4: "warning", 5: "warning"}
MARKDOWN_LIMIT = 4096  # bytes
FILE_MIN, FILE_MAX = 5, 20 * 1024 * 1024  # upload_media takes files of 5 B to 20 MB
#: The report's types, named here because a slim system's mime.types may not know .xlsx.
_TYPES = {".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".pdf": "application/pdf"}


class WecomConfig(ChatConfig):
    type: Literal["wecom"]


class WecomChannel(ChatChannel):
    type = "wecom"
    Config = WecomConfig
    takes_images = True
    takes_files = True
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

    def upload_url(self) -> str:
        """``.../webhook/upload_media?key=KEY&type=file`` beside the configured ``.../webhook/send``."""
        parts = urlsplit(self.config.webhook)
        path = parts.path.rsplit("/", 1)[0] + "/upload_media"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "type"] + [("type", "file")]
        return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))

    def deliver(self, job: ChatJob) -> SendResult:
        """A file part is two requests: the upload, then the file message naming its media_id.
        Every attempt uploads again: a media_id lives three days and only for the robot that
        uploaded it, so a retry (perhaps days later, after a restart) never relies on an old one."""
        if job.part != "file":
            return super().deliver(job)
        name, data = job.file_name or "file", job.file_data or b""
        if not FILE_MIN <= len(data) <= FILE_MAX:
            raise PermanentError(f"企业微信群机器人只收5字节至20MB的文件，{name} 有 {len(data)} 字节 "
                                 f"(WeCom robots take files of 5 B to 20 MB)")
        ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        ctype = _TYPES.get(ext) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        answer = self.call(self.upload_url(), files={"media": (name, data, ctype)})
        media_id = answer.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise PermanentError("企业微信上传文件的回答没有 media_id (upload_media answered without a media_id)")
        self.call(self.config.webhook, json={"msgtype": "file", "file": {"media_id": media_id}})
        return SendResult(state="sent")

    def answer_code(self, body: dict[str, Any]) -> tuple[int, str]:
        return int(body.get("errcode", -999)), str(body.get("errmsg", ""))
