"""``tencent``: 腾讯云语音合成 TextToVoice (tts 2019-08-23) through the official SDK (DESIGN A11).

A natural Mandarin voice from the same cloud account as the SMS. Each sentence is one request
(TextToVoice takes at most 150 Chinese characters); the answer is base64 WAV at 16 kHz, turned
into the composer's format in-process. Any failure or a request slower than ``timeout_s`` raises
RenderError, so the renderer's fallback engine (``audio.fallback``, espeak by default) speaks the
bulletin instead: a warning is never left unspoken because the cloud is down.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import ClassVar

from pydantic import Field
from pydub import AudioSegment
from tencentcloud.common.credential import Credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.tts.v20190823 import models as ttsm
from tencentcloud.tts.v20190823.tts_client import TtsClient

from broadcaster.audio import compose
from broadcaster.errors import RenderError
from broadcaster.plugins import PluginConfig


class TencentTtsConfig(PluginConfig):
    """``audio.tencent`` (keys from the environment); ``voice`` is a VoiceType number, e.g.
    101001 (智瑜, a female news voice)."""

    secret_id: str = Field(min_length=1)
    secret_key: str = Field(min_length=1)
    voice: str = Field(default="101001", pattern=r"^\d+$")
    region: str = "ap-guangzhou"
    endpoint: str = "tts.tencentcloudapi.com"
    protocol: str = Field(default="https", pattern=r"^https?$")
    speed: float = Field(default=0, ge=-2, le=6)
    timeout_s: float = Field(default=10, gt=0, le=120)


class TencentEngine:
    """TextToVoice, one sentence per request."""

    type: ClassVar[str] = "tencent"
    per_sentence: ClassVar[bool] = True
    Config = TencentTtsConfig

    def __init__(self, config: TencentTtsConfig) -> None:
        self.cfg = config
        hp = HttpProfile(endpoint=config.endpoint, protocol=config.protocol, reqTimeout=max(1, int(config.timeout_s)))
        self.client = TtsClient(Credential(config.secret_id, config.secret_key), config.region,
                                ClientProfile(httpProfile=hp))

    def identity(self) -> str:
        return f"tencent:{self.cfg.voice}:{self.cfg.speed:g}"

    def synthesize(self, text: str) -> AudioSegment:
        req = ttsm.TextToVoiceRequest()
        req.Text, req.SessionId = text, uuid.uuid4().hex
        req.VoiceType, req.Codec, req.SampleRate = int(self.cfg.voice), "wav", 16000
        req.Speed, req.PrimaryLanguage, req.ModelType = self.cfg.speed, 1, 1
        try:
            resp = self.client.TextToVoice(req)
            data = base64.b64decode(resp.Audio or "", validate=True)
            seg = AudioSegment(data=data)
        except TencentCloudSDKException as exc:
            raise RenderError(f"腾讯云语音合成失败 / Tencent TTS failed: {exc.get_code()}") from exc
        except (binascii.Error, ValueError, IndexError) as exc:
            raise RenderError(f"腾讯云语音合成返回的音频无法解码 / Tencent TTS audio unreadable: {exc}") from exc
        return seg.set_channels(1).set_sample_width(2).set_frame_rate(compose.SAMPLE_RATE)
