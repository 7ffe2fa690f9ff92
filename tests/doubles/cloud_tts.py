"""Loopback doubles of the cloud TTS engines of DESIGN.md A11, answering with a real,
playable tone (WAV, MP3 via ``lameenc``, or raw PCM) whose length grows with the text.

``AliyunTtsDouble`` plays both Aliyun hosts on one port:

* the POP API ``CreateToken`` (nls-meta, version 2019-02-28, RPC style, signed exactly like
  dysmsapi: ACS3 by default, V2 RPC accepted), as sent by
  ``alibabacloud_nls_cloud_meta20190228.client.Client(Config(..., endpoint="127.0.0.1:PORT",
  protocol="http")).create_token()`` -> ``resp.body.token.id`` / ``.expire_time`` (Unix s);
* the 智能语音交互 REST gateway ``/stream/v1/tts``: GET with query parameters or POST with a
  JSON body (``appkey``, ``token`` or header ``X-NLS-Token``, ``text``, ``format`` pcm|wav|mp3,
  ``sample_rate`` 8000|16000, ``voice``, ``volume``, ``speech_rate``, ``pitch_rate``). Success is
  HTTP 200 with ``Content-Type: audio/mpeg`` whatever the format (what Aliyun's own samples
  test for); a failure is JSON ``{"task_id","result","status","message"}``, e.g. status
  40000001 ``Gateway:ACCESS_DENIED:The token '…' is invalid!`` (documented). The HTTP status
  of failures (400 here) and the codes other than 40000001 are **[U]** unverified.

``TencentTtsDouble`` answers ``TextToVoice`` (tts 2019-08-23, TC3-signed, checked with the
same verifier as the SMS double) as sent by ``tencentcloud.tts.v20190823.tts_client.TtsClient``:
``resp.Audio`` is base64 of the audio (``Codec`` wav (default) | mp3 | pcm), ``resp.SessionId``
echoes the request. Errors raise ``TencentCloudSDKException`` (``InvalidParameterValue.*``).

Both: ``set_down(...)`` / ``set_up()`` and ``slow_s`` (longer than the client's timeout) from
``ProviderDouble``; every synthesis is kept in ``syntheses``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import secrets
import struct
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import lameenc

from .aliyun_pop import AliyunPopDouble
from .server import Request, Response
from .tencent_api import TencentApiDouble


def tone_pcm(seconds: float, rate: int = 16000, freq: float = 440.0) -> bytes:
    """16-bit little-endian mono sine samples."""
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate)))
                    for i in range(n))


def tone(fmt: str, seconds: float, rate: int = 16000) -> bytes:
    """A tone as ``wav``, ``mp3`` or ``pcm`` bytes."""
    pcm = tone_pcm(seconds, rate)
    if fmt == "pcm":
        return pcm
    if fmt == "wav":
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        return out.getvalue()
    enc = lameenc.Encoder()
    enc.set_bit_rate(32)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(7)
    return bytes(enc.encode(pcm) + enc.flush())


def seconds_for(text: str) -> float:
    """Audio length for ``text``: about a Mandarin reading pace, capped to keep tests fast."""
    return min(3.0, 0.2 + 0.1 * len(text))


@dataclass
class Synthesis:
    """One successful synthesis."""

    text: str
    voice: str | None
    fmt: str
    sample_rate: int
    credential: str  # Aliyun: the token; Tencent: the SecretId
    audio: bytes


class AliyunTtsDouble(AliyunPopDouble):
    """Aliyun CreateToken + REST TTS on 127.0.0.1 (see the module doc).

    ``appkeys``: the project appkeys the gateway knows. ``token_ttl_s``: token lifetime
    (``expire_tokens()`` ends every token at once, to test renewal).
    """

    host_id = "nls-meta.cn-shanghai.aliyuncs.com"
    version = "2019-02-28"

    def __init__(self, access_keys: dict[str, str] | None = None, *,
                 appkeys: Iterable[str] = ("test-appkey",), token_ttl_s: float = 24 * 3600,
                 **kw: Any) -> None:
        super().__init__(access_keys or {"test-ak": "test-secret"}, **kw)
        self.appkeys = set(appkeys)
        self.token_ttl_s = token_ttl_s
        self.tokens: dict[str, float] = {}  # token -> expiry (Unix s)
        self.syntheses: list[Synthesis] = []
        self.actions["CreateToken"] = self._create_token

    def expire_tokens(self) -> None:
        """Make every token issued so far expired."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, time.time() - 1)

    def _create_token(self, params: dict[str, str], req: Request) -> Response:
        token, expire = secrets.token_hex(16), int(time.time() + self.token_ttl_s)
        with self._lock:
            self.tokens[token] = expire
        self.note(req, code="OK")
        return Response.json(200, {
            "ErrMsg": "", "NlsRequestId": secrets.token_hex(16),
            "RequestId": secrets.token_hex(16).upper(),
            "Token": {"UserId": "1234567890123456", "Id": token, "ExpireTime": expire},
        })

    def serve_path(self, req: Request) -> Response:
        if req.path != "/stream/v1/tts" or req.method not in ("GET", "POST"):
            return self._failure(req, 40000000, "Gateway:CLIENT_ERROR:Unsupported path!", 404)
        if req.method == "GET":
            p: dict[str, Any] = {k: v[-1] for k, v in req.query.items()}
        else:
            try:
                p = json.loads(req.body or b"{}")
            except ValueError:
                p = None  # type: ignore[assignment]
            if not isinstance(p, dict):
                return self._failure(req, 40000000,
                                     "Gateway:CLIENT_ERROR:in post data, json format illegal")
        self.note(req, action="tts", params=p)
        token = str(p.get("token") or req.header("x-nls-token") or "")
        with self._lock:
            expiry = self.tokens.get(token)
        if expiry is None:
            return self._failure(req, 40000001,
                                 f"Gateway:ACCESS_DENIED:The token '{token}' is invalid!")
        if expiry < time.time():
            return self._failure(req, 40000001,
                                 f"Gateway:ACCESS_DENIED:The token '{token}' has expired!")
        if p.get("appkey") not in self.appkeys:
            return self._failure(req, 40020105, "Meta:APPKEY_NOT_EXIST:Appkey not exist!")
        text, fmt = str(p.get("text") or ""), str(p.get("format") or "pcm")
        try:
            rate = int(p.get("sample_rate") or 16000)
        except ValueError:
            rate = 0
        if not text or len(text) > 300 or fmt not in ("pcm", "wav", "mp3") \
                or rate not in (8000, 16000):
            return self._failure(req, 40000003, "Gateway:PARAMETER_INVALID:Illegal parameter!")
        audio = tone(fmt, seconds_for(text), rate)
        with self._lock:
            self.syntheses.append(Synthesis(text, p.get("voice"), fmt, rate, token, audio))
        self.note(req, code="20000000")
        return Response(200, audio, {"Content-Type": "audio/mpeg"})

    def _failure(self, req: Request, status: int, message: str, http: int = 400) -> Response:
        self.note(req, code=str(status))
        return Response.json(http, {"task_id": secrets.token_hex(16), "result": "",
                                    "status": status, "message": message})


class TencentTtsDouble(TencentApiDouble):
    """Tencent TextToVoice on 127.0.0.1 (see the module doc)."""

    service = "tts"
    version = "2019-08-23"

    def __init__(self, secret_keys: dict[str, str] | None = None, **kw: Any) -> None:
        super().__init__(secret_keys or {"test-secret-id": "test-secret-key"}, **kw)
        self.syntheses: list[Synthesis] = []
        self.actions["TextToVoice"] = self._text_to_voice

    def _text_to_voice(self, p: dict[str, Any], req: Request) -> Response:
        text, session = str(p.get("Text") or ""), p.get("SessionId")
        fmt, rate = p.get("Codec") or "wav", p.get("SampleRate") or 16000
        if not text:
            return self.error(req, "InvalidParameterValue.TextEmpty", "Text is empty.")
        if len(text) > (500 if text.isascii() else 150):
            return self.error(req, "InvalidParameterValue.TextTooLong", "Text is too long.")
        if not session:
            return self.error(req, "InvalidParameterValue.SessionId", "SessionId is required.")
        if fmt not in ("wav", "mp3", "pcm"):
            return self.error(req, "InvalidParameterValue.Codec", "Codec is invalid.")
        if rate not in (8000, 16000, 24000):
            return self.error(req, "InvalidParameterValue.SampleRate", "SampleRate is invalid.")
        audio = tone(fmt, seconds_for(text), rate)
        secret_id = (req.header("authorization") or "").split("Credential=")[-1].split("/")[0]
        with self._lock:
            self.syntheses.append(Synthesis(text, str(p.get("VoiceType")), fmt, rate, secret_id,
                                            audio))
        return self.ok(req, {"Audio": base64.b64encode(audio).decode(), "SessionId": session,
                             "Subtitles": []})
