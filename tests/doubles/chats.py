"""Loopback doubles of the three group-chat robots of DESIGN.md A12: WeCom, DingTalk, Feishu.

Wire facts come from shared/reference/group-chats-and-displays.md §0-§3 unless a comment names
another source. Every rejection is HTTP 200 with a vendor code in the body, as the real robots do.

* ``WecomRobotDouble``   ``POST /cgi-bin/webhook/send?key=KEY``; ``{"errcode","errmsg"}``; files through
  ``POST /cgi-bin/webhook/upload_media?key=KEY&type=file`` (multipart part ``media``), then a
  ``{"msgtype":"file","file":{"media_id"}}`` message (``received_files`` gives the bytes back).
* ``DingtalkRobotDouble`` ``POST /robot/send?access_token=T[&timestamp=MS&sign=S]``; same shape.
* ``FeishuRobotDouble``  ``POST /open-apis/bot/v2/hook/{token}``; ``{"code","msg","data"}``.

Usage::

    with DingtalkRobotDouble([Robot("tok", secret="SECabc")]) as ding:
        url = ding.webhook_url("tok")          # the client appends &timestamp=..&sign=..
        ...
        assert ding.messages[0].msgtype == "markdown"
        ding.rate_limit_next(2)                # the next two sends get 130101
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import threading
from typing import Any

from .chat_base import ChatRobotDouble, Error, Robot, first, visible_text
from .server import Request, Response
from .wecom_media import Media, multipart_file

__all__ = ["DingtalkRobotDouble", "FeishuRobotDouble", "Media", "Robot", "WecomRobotDouble",
           "dingtalk_sign", "feishu_sign"]


def dingtalk_sign(secret: str, timestamp_ms: int | str) -> str:
    """DingTalk 加签: base64(HMAC-SHA256(key=secret, msg="{ts}\\n{secret}")), *not* URL-encoded."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def feishu_sign(secret: str, timestamp_s: int | str) -> str:
    """Feishu: base64(HMAC-SHA256(key="{ts}\\n{secret}", msg=b"")) with ts in seconds."""
    mac = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def _nbytes(value: Any) -> int:
    return len(str(value).encode("utf-8"))


# -- WeCom --------------------------------------------------------------------------------
class WecomRobotDouble(ChatRobotDouble):
    """WeCom 群机器人. Limits: text 2048 B, markdown 4096 B, image ≤ 2 MB with an md5 of the
    decoded bytes, 20 messages a minute per robot (then 45009 until the window frees); uploaded
    files 5 B to 20 MB, voice ≤ 2 MB AMR, a media_id valid three days for its own robot."""

    vendor = "wecom"
    PATH = "/cgi-bin/webhook/send"
    UPLOAD_PATH = "/cgi-bin/webhook/upload_media"
    MEDIA_TTL_S = 3 * 24 * 3600
    rate_error = (45009, "api freq out of limit")  # text seen in many clients' fixtures

    def __init__(self, robots: Any = ("wecom-key",), *, text_limit: int = 2048,
                 markdown_limit: int = 4096, image_limit: int = 2 * 1024 * 1024,
                 file_limit: int = 20 * 1024 * 1024, voice_limit: int = 2 * 1024 * 1024,
                 **kw: Any) -> None:
        kw.setdefault("per_minute", 20)
        super().__init__(robots, **kw)
        self.text_limit, self.markdown_limit, self.image_limit = (
            text_limit, markdown_limit, image_limit)
        self.file_limit, self.voice_limit = file_limit, voice_limit
        self._media: dict[str, Media] = {}
        self._media_lock = threading.Lock()

    # -- files --------------------------------------------------------------------------
    def upload_url(self, token: str | None = None, media_type: str = "file") -> str:
        return f"{self.url}{self.UPLOAD_PATH}?key={token or next(iter(self.robots))}&type={media_type}"

    @property
    def uploads(self) -> list[Media]:
        """Every accepted upload, in order."""
        with self._media_lock:
            return list(self._media.values())

    def received_files(self, token: str | None = None) -> list[Media]:
        """The files the group saw: each accepted file message's upload, in arrival order."""
        with self._media_lock:
            media = dict(self._media)
        return [media[m.body["file"]["media_id"]] for m in self.messages
                if m.msgtype == "file" and (token is None or m.robot == token)]

    def handle(self, req: Request) -> Response:
        if req.path == self.UPLOAD_PATH:
            return self._upload(req)
        return super().handle(req)

    def _upload(self, req: Request) -> Response:
        """upload_media: multipart part ``media`` with a filename; answers the media_id."""
        if req.method != "POST":
            return self.bad_method(req)
        token = first(req.query, "key") or ""
        if token not in self.robots:
            return self._reply(req, *self.unknown_robot(req))
        scripted = self._scripted_for(token)
        if scripted:
            return self._reply(req, *scripted)
        media_type = first(req.query, "type") or ""
        if media_type not in ("file", "voice"):
            return self._reply(req, 40004, "invalid media type")  # errcode 40004: 不合法的媒体文件类型
        part = multipart_file(req.header("content-type") or "", req.body, "media")
        if part is None:
            return self._reply(req, 44001, "empty media data")  # errcode 44001: 多媒体文件为空
        data, filename, ctype = part
        limit = self.file_limit if media_type == "file" else self.voice_limit
        if len(data) < 5 or len(data) > limit:
            return self._reply(req, 40006, "invalid file size")  # errcode 40006: 不合法的文件大小
        if media_type == "voice" and not filename.lower().endswith(".amr"):
            return self._reply(req, 40004, "invalid media type")  # voice is AMR only
        created = int(self.now())
        media = Media("3" + hashlib.sha256(f"{token}|{created}|{random.random()}".encode()).hexdigest()[:40],
                      token, media_type, filename, ctype, data, created)
        with self._media_lock:
            self._media[media.media_id] = media
        req.chat_result = (0, "ok")  # type: ignore[attr-defined]
        return Response.json(200, {"errcode": 0, "errmsg": "ok", "type": media_type,
                                   "media_id": media.media_id, "created_at": str(created)})

    def route(self, req: Request) -> str | None:
        if req.path in (self.PATH, self.UPLOAD_PATH):
            return first(req.query, "key") or ""
        return None

    def check_security(self, req: Request, robot: Robot, body: dict[str, Any]) -> Error | None:
        if body.get("msgtype") in ("file", "voice"):
            return self._check_media(robot.token, body)
        return None  # the key in the URL is the only credential

    def _check_media(self, token: str, body: dict[str, Any]) -> Error | None:
        """A media_id must be this robot's own upload, of that type, at most three days old."""
        part = body.get(body["msgtype"])
        media_id = part.get("media_id") if isinstance(part, dict) else None
        if not media_id:
            return 40058, "media_id missing. invalid Request Parameter"
        with self._media_lock:
            media = self._media.get(str(media_id))
        if media is None or media.robot != token or media.type != body["msgtype"] \
                or self.now() - media.created_at > self.MEDIA_TTL_S:
            return 40007, "invalid media_id"  # errcode 40007: 不合法的媒体文件id
        return None

    def webhook_url(self, token: str | None = None) -> str:
        return f"{self.url}{self.PATH}?key={token or next(iter(self.robots))}"

    def unknown_robot(self, req: Request) -> Error:
        return 93000, "invalid webhook url"  # also what a removed robot answers

    def bad_json(self) -> Error:
        return 40058, "Warning: wrong json format. invalid Request Parameter"  # [UNVERIFIED] text

    def validate(self, body: dict[str, Any]) -> Error | None:
        kind = body.get("msgtype")
        part = body.get(kind) if isinstance(kind, str) else None
        if kind in ("text", "markdown"):
            limit = self.text_limit if kind == "text" else self.markdown_limit
            content = part.get("content") if isinstance(part, dict) else None
            if not content:
                return 44004, "empty content"  # go-workwx errcodes: 文本消息content参数为空
            if _nbytes(content) > limit:
                # Verbatim shape of live answers quoted in dromara/domain-admin#82 and
                # RayWangQvQ/BiliBiliTool#569 (the double adds the hint/ip/url tail).
                return 40058, f"{kind}.content exceed max length {limit}. invalid Request Parameter"
            return None
        if kind == "image":
            return self._image(part)
        if kind in ("file", "voice"):
            ok = isinstance(part, dict) and part.get("media_id")
            return None if ok else (40058, "media_id missing. invalid Request Parameter")
        if kind in ("news", "template_card"):
            return None if isinstance(part, dict) else (40058, "invalid Request Parameter")
        return 40008, "invalid message type"

    def _image(self, part: Any) -> Error | None:
        if not isinstance(part, dict) or not part.get("base64") or not part.get("md5"):
            return 40058, "image.base64 or image.md5 missing. invalid Request Parameter"
        try:
            data = base64.b64decode(part["base64"], validate=True)
        except (binascii.Error, ValueError, TypeError):
            return 40058, "invalid base64. invalid Request Parameter"
        if not data or len(data) > self.image_limit:
            return 40009, "invalid image size"  # errcode 40009: 上传图片大小不是有效值
        if hashlib.md5(data).hexdigest() != str(part["md5"]).lower():
            # lenye/pmsg#2 quotes the live answer: 301019 "media md5 not match"
            return 301019, "media md5 not match"
        return None

    def answer(self, code: int, msg: str, req: Request) -> dict[str, Any]:
        if code == 0:
            return {"errcode": 0, "errmsg": "ok"}
        # Live errmsgs carry a request hint, the caller's IP and a help link.
        hint = f"{int(self.now() * 1000)}{random.randrange(10**11, 10**12)}"
        tail = (f", hint: [{hint}], from ip: {req.client[0]}, more info at "
                f"https://open.work.weixin.qq.com/devtool/query?e={code}")
        return {"errcode": code, "errmsg": msg + tail}


# -- DingTalk -----------------------------------------------------------------------------
class DingtalkRobotDouble(ChatRobotDouble):
    """DingTalk 自定义机器人 with optional 加签, keywords and IP list per robot.

    20 messages a minute per robot; the 21st gets 130101 and the robot stays blocked for
    ``block_s`` (10 minutes). Bodies over 20,000 bytes get 460101 (PrometheusAlert#318).
    """

    vendor = "dingtalk"
    PATH = "/robot/send"
    rate_error = (130101, "send too fast, exceed 20 times per minute")
    # Required fields per msgtype (the custom robot has no file or image upload).
    SHAPES = {"text": ("content",), "markdown": ("title", "text"),
              "link": ("title", "text", "messageUrl"), "actionCard": ("title", "text"),
              "feedCard": ("links",)}

    def __init__(self, robots: Any = ("ding-token",), **kw: Any) -> None:
        kw.setdefault("per_minute", 20)
        kw.setdefault("block_s", 600.0)
        kw.setdefault("body_limit", 20_000)
        super().__init__(robots, **kw)

    def webhook_url(self, token: str | None = None) -> str:
        return f"{self.url}{self.PATH}?access_token={token or next(iter(self.robots))}"

    def route(self, req: Request) -> str | None:
        return (first(req.query, "access_token") or "") if req.path == self.PATH else None

    def unknown_robot(self, req: Request) -> Error:
        # timonwong/prometheus-webhook-dingtalk#91; #226 shows 300005 for the same text.
        return 300001, "token is not exist"

    def check_body(self, req: Request) -> Error | None:
        if "application/json" not in (req.header("content-type") or "").lower():
            return 43004, "无效的HTTP HEADER Content-Type"  # DingTalk error table
        if len(req.body) > self.body_limit:
            return 460101, "description: body 大小不合法;solution:请保持大小在 20000bytes 以内;"
        return None

    def bad_json(self) -> Error:
        return 40035, "缺少参数 json"

    def check_security(self, req: Request, robot: Robot, body: dict[str, Any]) -> Error | None:
        # One errcode, 310000, for every security failure; errmsg tells them apart.
        if robot.allowed_ips and req.client[0] not in robot.allowed_ips:
            return 310000, f"ip {req.client[0]} not in whitelist"
        if robot.secret:
            ts, sign = first(req.query, "timestamp"), first(req.query, "sign")
            if not ts or not ts.isdigit() or abs(self.now() * 1000 - int(ts)) > 3_600_000:
                return 310000, "invalid timestamp"
            # parse_qs already URL-decoded ``sign``: a client that forgot quote_plus sends
            # '+' raw, which decodes to ' ' and fails here exactly as on the real service.
            if not sign or not hmac.compare_digest(sign, dingtalk_sign(robot.secret, ts)):
                return 310000, "sign not match"
        if robot.keywords:
            text = visible_text(body.get(str(body.get("msgtype"))))
            if not any(k in text for k in robot.keywords):
                return 310000, "keywords not in content"
        return None

    def validate(self, body: dict[str, Any]) -> Error | None:
        kind = body.get("msgtype")
        if kind not in self.SHAPES:
            return 400105, "不支持的消息类型"  # DingTalk error table (400105)
        part = body.get(kind)
        for name in self.SHAPES[kind]:
            if not isinstance(part, dict) or not part.get(name):
                return 40035, f"缺少参数 {kind}.{name}"
        return None

    def answer(self, code: int, msg: str, req: Request) -> dict[str, Any]:
        if code == 130101:  # the throttled answer carries extra fields (reference, Additions)
            return {"status": 1111, "wait": 5, "errcode": code, "errmsg": msg}
        return {"errcode": code, "errmsg": msg}


# -- Feishu -------------------------------------------------------------------------------
class FeishuRobotDouble(ChatRobotDouble):
    """Feishu 自定义机器人 with optional signature (in the JSON body), keywords, IP list.

    Limits: 100 requests a minute and 5 a second per bot (11232), body ≤ 20 KB (19036).
    """

    vendor = "feishu"
    PREFIX = "/open-apis/bot/v2/hook/"
    code_field, msg_field = "code", "msg"
    # Live text quoted in a public client's log (see the module README of the reference).
    rate_error = (11232, "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]")
    SHAPES = {"text": ("content", "text"), "post": ("content", "post"),
              "image": ("content", "image_key"), "share_chat": ("content", "share_chat_id")}

    def __init__(self, robots: Any = ("feishu-token",), **kw: Any) -> None:
        kw.setdefault("per_minute", 100)
        kw.setdefault("per_second", 5)
        kw.setdefault("body_limit", 20 * 1024)
        super().__init__(robots, **kw)

    def webhook_url(self, token: str | None = None) -> str:
        return f"{self.url}{self.PREFIX}{token or next(iter(self.robots))}"

    def route(self, req: Request) -> str | None:
        return req.path[len(self.PREFIX):] if req.path.startswith(self.PREFIX) else None

    def bad_method(self, req: Request) -> Response:
        # Opening a hook in a browser (GET) answers 200 with 19002, as public READMEs note.
        return Response.json(200, {"code": 19002, "data": {}, "msg": "params error, msg_type need"})

    def unknown_robot(self, req: Request) -> Error:
        return 19001, "param invalid: incoming webhook access token invalid"

    def check_body(self, req: Request) -> Error | None:
        if len(req.body) > self.body_limit:
            # Code and wording from XUJiahua/alertmanager-webhook-feishu#3 (which says 30KB;
            # the current doc says 20 KB, the default here).
            return 19036, f"The message exceeds the size limit of {self.body_limit // 1024}KB"
        return None

    def bad_json(self) -> Error:
        return 9499, "Bad Request"

    def msgtype(self, body: dict[str, Any]) -> str:
        return str(body.get("msg_type"))

    def check_security(self, req: Request, robot: Robot, body: dict[str, Any]) -> Error | None:
        if robot.allowed_ips and req.client[0] not in robot.allowed_ips:
            return 19022, "Ip Not Allowed"
        if robot.secret:
            bad = (19021, "sign match fail or timestamp is not within one hour from current time")
            ts, sign = body.get("timestamp"), body.get("sign")
            try:
                ts_s = int(str(ts))
            except ValueError:
                return bad
            # A timestamp in milliseconds (a DingTalk habit) is "not within one hour".
            if abs(self.now() - ts_s) > 3600 or not isinstance(sign, str):
                return bad
            if not hmac.compare_digest(sign, feishu_sign(robot.secret, str(ts))):
                return bad
        if robot.keywords:
            text = visible_text([body.get("content"), body.get("card")])
            if not any(k in text for k in robot.keywords):
                return 19024, "Key Words Not Found"
        return None

    def validate(self, body: dict[str, Any]) -> Error | None:
        kind = body.get("msg_type")
        if not kind:
            return 19002, "params error, msg_type need"
        if kind == "interactive":
            return None if isinstance(body.get("card"), (dict, str)) else (9499, "Bad Request")
        if kind not in self.SHAPES:
            return 9499, "Bad Request"  # [UNVERIFIED] code for an unknown msg_type
        outer, inner = self.SHAPES[kind]
        part = body.get(outer)
        return None if isinstance(part, dict) and part.get(inner) else (9499, "Bad Request")

    def answer(self, code: int, msg: str, req: Request) -> dict[str, Any]:
        if code == 0:  # new and legacy fields side by side, as the live service answers
            return {"StatusCode": 0, "StatusMessage": "success", "code": 0, "data": {},
                    "msg": "success"}
        return {"code": code, "data": {}, "msg": msg}

    def ok_message(self) -> str:
        return "success"
