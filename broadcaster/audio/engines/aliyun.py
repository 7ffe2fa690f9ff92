"""``aliyun``: 阿里云智能语音交互 REST TTS, with a token from CreateToken (DESIGN A11).

The token comes from the nls-meta POP API ``CreateToken`` (2019-02-28, RPC style), called through
tea-openapi's generic ``call_api`` with the same signing as the SMS SDK; it is kept until a
minute before its ``ExpireTime``. Each sentence is one ``POST /stream/v1/tts`` (JSON: appkey,
token, text, format wav, sample_rate 16000, voice); success is audio, a failure JSON with a
``status`` (40000001: the token is invalid or expired, then renewed once). Any failure or a
request slower than ``timeout_s`` raises RenderError, and the renderer's fallback speaks.
"""

from __future__ import annotations

import threading
import time
from typing import Any, ClassVar

import requests
from alibabacloud_tea_openapi import models as pop
from alibabacloud_tea_openapi.client import Client as PopClient
from darabonba.runtime import RuntimeOptions
from pydantic import Field
from pydub import AudioSegment
from Tea.exceptions import TeaException

from broadcaster.audio import compose
from broadcaster.errors import RenderError
from broadcaster.plugins import PluginConfig

TOKEN_INVALID = 40000001


class AliyunTtsConfig(PluginConfig):
    """``audio.aliyun`` (keys from the environment); ``voice`` is a speaker name, e.g. xiaoyun."""

    access_key_id: str = Field(min_length=1)
    access_key_secret: str = Field(min_length=1)
    appkey: str = Field(min_length=1)  # the 智能语音交互 project's appkey
    voice: str = "xiaoyun"
    endpoint: str = "nls-meta.cn-shanghai.aliyuncs.com"  # CreateToken, host[:port]
    tts_url: str = Field(default="https://nls-gateway-cn-shanghai.aliyuncs.com/stream/v1/tts", pattern=r"^https?://")
    protocol: str = Field(default="https", pattern=r"^https?$")
    speech_rate: int = Field(default=0, ge=-500, le=500)
    timeout_s: float = Field(default=10, gt=0, le=120)


class AliyunEngine:
    """REST TTS, one sentence per request."""

    type: ClassVar[str] = "aliyun"
    per_sentence: ClassVar[bool] = True
    Config = AliyunTtsConfig

    def __init__(self, config: AliyunTtsConfig) -> None:
        self.cfg = config
        ms = int(config.timeout_s * 1000)
        self._pop = PopClient(pop.Config(access_key_id=config.access_key_id,
                                         access_key_secret=config.access_key_secret, endpoint=config.endpoint,
                                         protocol=config.protocol, connect_timeout=ms, read_timeout=ms))
        self._http = requests.Session()
        self._lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # (id, expiry as Unix s)

    def identity(self) -> str:
        return f"aliyun:{self.cfg.voice}:{self.cfg.speech_rate}"

    def _get_token(self, renew: bool = False) -> str:
        with self._lock:
            if self._token is None or renew or self._token[1] - 60 < time.time():
                params = pop.Params(action="CreateToken", version="2019-02-28", protocol=self.cfg.protocol.upper(),
                                    pathname="/", method="POST", auth_type="AK", style="RPC",
                                    req_body_type="formData", body_type="json")
                try:
                    body = self._pop.call_api(params, pop.OpenApiRequest(), RuntimeOptions())["body"]
                    token = body["Token"]
                    self._token = (str(token["Id"]), float(token["ExpireTime"]))
                except (TeaException, KeyError, TypeError) as exc:
                    raise RenderError(f"阿里云语音合成取令牌失败 / Aliyun CreateToken failed: "
                                      f"{getattr(exc, 'code', type(exc).__name__)}") from exc
            return self._token[0]

    def synthesize(self, text: str) -> AudioSegment:
        for attempt in (0, 1):
            body: dict[str, Any] = {"appkey": self.cfg.appkey, "token": self._get_token(renew=attempt > 0),
                                    "text": text, "format": "wav", "sample_rate": 16000, "voice": self.cfg.voice,
                                    "speech_rate": self.cfg.speech_rate}
            try:
                r = self._http.post(self.cfg.tts_url, json=body, timeout=self.cfg.timeout_s)
            except requests.RequestException as exc:
                raise RenderError(f"阿里云语音合成不可达 / Aliyun TTS unreachable: {type(exc).__name__}") from exc
            if r.status_code == 200 and r.headers.get("Content-Type", "").startswith("audio/"):
                try:
                    seg = AudioSegment(data=r.content)
                except Exception as exc:  # noqa: BLE001 - any undecodable answer is a failure
                    raise RenderError(f"阿里云语音合成返回的音频无法解码 / Aliyun TTS audio unreadable: {exc}") from exc
                return seg.set_channels(1).set_sample_width(2).set_frame_rate(compose.SAMPLE_RATE)
            try:
                status = r.json().get("status")
            except ValueError:
                status = None
            if status != TOKEN_INVALID or attempt:
                raise RenderError(f"阿里云语音合成失败 / Aliyun TTS failed: HTTP {r.status_code} status {status}")
        raise RenderError("阿里云语音合成失败 / Aliyun TTS failed")
