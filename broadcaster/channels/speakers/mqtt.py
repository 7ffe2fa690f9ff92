"""``mqtt``: 4G/WiFi cloud loudspeakers (安圣-style) told over MQTT to fetch and play a URL (DESIGN A7).

At ``play_at`` the dispatcher calls :meth:`MqttChannel.send`, which publishes, QoS 1, to the
speaker's topic ``{"method":"playUrl","url","vol","repeat","frameId": delivery_id}`` and waits
for the broker's PUBACK (no ack in time, or no broker: transient, retried until expiry).
The speaker answers on ``reply_topic`` (``/devtoser``) with ``{"method":"playUrl","result":"ok"
or a reason,"imei","frameId"}``; the subscriber this channel keeps open hands that to the
confirmation callback the Service binds (``played``, or ``failed`` with the reason).

The audio URL is signed and expires with the delivery, since these speakers cannot send a token.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from pydantic import Field

from broadcaster.channels import SendResult
from broadcaster.channels.speakers.base import PlayJob, SpeakerChannel, SpeakerConfig
from broadcaster.errors import TransientError

log = logging.getLogger(__name__)

# confirm(delivery_id, speaker_id, ok, error) -> True once recorded (False: try again shortly)
Confirm = Callable[[int, str, bool, str | None], bool]
# sign(audio file name, expires_at) -> URL the speaker can fetch without a token
Signer = Callable[[str, datetime], str]


class MqttConfig(SpeakerConfig):
    type: Literal["mqtt"]
    broker: str = Field(pattern=r"^mqtts?://[^/:]+(:\d{1,5})?/?$")
    topic: str = Field(min_length=1)
    reply_topic: str = "/devtoser"
    username: str | None = None
    password: str | None = None
    vol: int = Field(default=80, ge=0, le=100)
    timeout_s: float = Field(default=10, gt=0, le=120)


class MqttChannel(SpeakerChannel):
    type = "mqtt"
    Config = MqttConfig
    mode = "play_at"
    idempotent = False  # the speaker plays on receipt; a re-send after a crash may play twice

    def __init__(self, config: SpeakerConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._lock = threading.Lock()
        self._confirm: Confirm | None = None
        self._sign: Signer | None = None

    @property
    def cfg(self) -> MqttConfig:
        return self.config  # type: ignore[return-value]

    def bind(self, confirm: Confirm | None = None, sign: Signer | None = None) -> None:
        """Wire the ledger callback for the speaker's replies and the audio URL signer."""
        self._confirm, self._sign = confirm, sign

    # ------------------------------------------------------------- connection

    def _connect(self) -> mqtt.Client:
        with self._lock:
            if self._client is not None:
                return self._client
            u = urlsplit(self.cfg.broker)
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                            client_id=f"broadcaster-{self.id}-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
            if self.cfg.username:
                c.username_pw_set(self.cfg.username, self.cfg.password)
            if u.scheme == "mqtts":
                c.tls_set()
            c.on_connect = self._on_connect
            c.on_disconnect = lambda *_a: self._connected.clear()
            c.on_message = self._on_message
            c.reconnect_delay_set(1, 30)
            try:
                c.connect(u.hostname or "127.0.0.1", u.port or (8883 if u.scheme == "mqtts" else 1883), keepalive=30)
            except OSError as exc:
                raise TransientError(f"MQTT broker {u.hostname}:{u.port} unreachable: {exc.strerror or exc}") from exc
            c.loop_start()  # paho's network thread; reconnects by itself
            self._client = c
            return c

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, rc: Any, _props: Any = None) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("speaker %s: MQTT connect refused: %s", self.id, rc)
            return
        client.subscribe(self.cfg.reply_topic, qos=1)
        self._connected.set()

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            data = json.loads(msg.payload)
            frame = int(data.get("frameId"))
        except (ValueError, TypeError, AttributeError):
            return  # other devices' chatter on the shared reply topic
        if data.get("method") != "playUrl" or "result" not in data:
            return
        # Replies to an earlier run's publishes count too; the ledger checks the speaker owns it.
        ok = str(data.get("result", "")).lower() == "ok"
        error = None if ok else f"speaker replied: {data.get('result')}"
        log.info("speaker %s: delivery %d %s", self.id, frame, "played" if ok else error)
        self._deliver_confirmation(frame, ok, error, tries=20)

    def _deliver_confirmation(self, frame: int, ok: bool, error: str | None, tries: int) -> None:
        # The reply can beat the dispatcher's own "sent" record; then try again shortly.
        if self._confirm is None:
            return
        try:
            done = self._confirm(frame, self.id, ok, error)
        except Exception:  # noqa: BLE001 - never kill paho's thread
            log.exception("speaker %s: recording the reply for %d failed", self.id, frame)
            done = False
        if not done and tries > 0:
            t = threading.Timer(0.5, self._deliver_confirmation, (frame, ok, error, tries - 1))
            t.daemon = True
            t.start()

    # ------------------------------------------------------------------- send

    def send(self, job: PlayJob) -> SendResult:
        client = self._connect()
        if not self._connected.wait(self.cfg.timeout_s):
            raise TransientError(f"MQTT broker {self.cfg.broker} not connected")
        name = f"{job.sha256}.{job.audio_path.suffix.lstrip('.') or 'mp3'}"
        url = self._sign(name, job.expires_at) if self._sign else job.audio_url
        payload = {"method": "playUrl", "url": url, "vol": self.cfg.vol, "repeat": job.repeat,
                   "frameId": str(job.delivery_id)}
        info = client.publish(self.cfg.topic, json.dumps(payload), qos=1)
        try:
            info.wait_for_publish(self.cfg.timeout_s)
        except (RuntimeError, ValueError) as exc:  # queue full / not connected
            raise TransientError(f"MQTT publish failed: {exc}") from exc
        if not info.is_published():
            raise TransientError(f"no PUBACK from {self.cfg.broker} within {self.cfg.timeout_s:g} s")
        return SendResult(state="sent", provider_id=f"frame:{job.delivery_id}")

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.loop_stop()
                self._client.disconnect()
                self._client = None
                self._connected.clear()
