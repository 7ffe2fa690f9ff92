"""``mqtt`` endpoints against the local Mosquitto: publish at play_at, speaker fetches, reply -> played."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import requests
import uvicorn

from broadcaster.config import load_config
from broadcaster.errors import TransientError
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from tests.conftest import edit_yaml, local, port_open, unavailable

# The service runs on the wall clock here: .ci/run repeats these at four hours of the town's day.
pytestmark = pytest.mark.clock

BROKER = ("127.0.0.1", 1883)


@pytest.fixture(autouse=True)
def _broker() -> None:
    if not port_open(*BROKER):
        unavailable("no MQTT broker (mosquitto) on 127.0.0.1:1883")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeCloudSpeaker:
    """A 4G speaker: subscribes to its topic, GETs the URL, replies ``ok`` (or ``result``) on the reply topic."""

    def __init__(self, imei: str, reply_topic: str, result: str = "ok") -> None:
        self.imei, self.reply_topic, self.result = imei, reply_topic, result
        self.commands: list[dict] = []
        self.fetched: list[tuple[int, int]] = []  # (status, bytes)
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=imei)
        self.c.on_message = self._on_message
        self.c.connect(*BROKER)
        self.c.subscribe(f"/sertodev/{imei}", qos=1)
        self.c.loop_start()

    def _on_message(self, client, _ud, msg) -> None:  # type: ignore[no-untyped-def]
        cmd = json.loads(msg.payload)
        self.commands.append(cmd)

        def work() -> None:
            r = requests.get(cmd["url"], timeout=10)
            self.fetched.append((r.status_code, len(r.content)))
            result = self.result if r.status_code == 200 else f"download failed {r.status_code}"
            client.publish(self.reply_topic, json.dumps({"method": "playUrl", "result": result, "imei": self.imei,
                                                         "frameId": cmd["frameId"], "timestamp": int(time.time())}), qos=1)

        threading.Thread(target=work, daemon=True).start()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def running(confdir: Path) -> Iterator[tuple[Service, FakeClock, str, str]]:
    imei = "86" + uuid.uuid4().hex[:13]
    reply = f"/devtoser-test-{uuid.uuid4().hex[:8]}"  # private reply topic: tests may run in parallel
    port = free_port()

    def d(data: dict) -> None:
        data["villages"][0]["speakers"] = [{"id": "dongcun-4g", "type": "mqtt", "broker": "mqtt://127.0.0.1:1883",
                                            "topic": f"/sertodev/{imei}", "reply_topic": reply, "vol": 70}]
    edit_yaml(confdir / "directory.yaml", d)
    edit_yaml(confdir / "broadcaster.yaml",
              lambda c: c["http"].update(listen=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}"))
    clock = FakeClock(local(2026, 11, 28, 16, 30))
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    server = uvicorn.Server(uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield svc, clock, imei, reply
    finally:
        server.should_exit = True
        t.join(5)
        svc.close()


def speaker_row(svc: Service):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from broadcaster.ledger import Delivery

    with svc.ledger.reader() as s:
        return s.scalars(select(Delivery).where(Delivery.target == "dongcun-4g")).one()


def wait_state(svc: Service, states: set[str], timeout: float = 10):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = speaker_row(svc)
        if row.state in states:
            return row
        time.sleep(0.1)
    return speaker_row(svc)


@pytest.mark.parametrize("result,final", [("ok", "played"), ("busy", "failed")])
def test_cloud_speaker_fetches_and_confirms(running, result: str, final: str) -> None:  # type: ignore[no-untyped-def]
    svc, clock, imei, reply = running
    speaker = FakeCloudSpeaker(imei, reply, result)
    try:
        report = svc.poll()
        assert report.created
        svc.dispatcher.drain([report.alert_id])
        row = speaker_row(svc)
        assert row.state == "pending" and speaker.commands == []  # nothing before play_at
        clock.set(local(2026, 11, 28, 19, 30, ) + timedelta(seconds=1))
        svc.dispatcher.drain([report.alert_id])
        row = wait_state(svc, {final})
        assert row.state == final, row.last_error
        cmd = speaker.commands[0]
        assert cmd["method"] == "playUrl" and cmd["vol"] == 70 and cmd["repeat"] == 1
        assert cmd["frameId"] == str(row.id) and "sig=" in cmd["url"]
        assert speaker.fetched and speaker.fetched[0][0] == 200 and speaker.fetched[0][1] > 1000
        if final == "played":
            assert row.played_at is not None
        else:
            assert "busy" in (row.last_error or "")
    finally:
        speaker.close()


def test_broker_down_is_transient(confdir: Path) -> None:
    from broadcaster.channels.speakers import SpeakerContext
    from broadcaster.channels.speakers.base import PlayJob
    from broadcaster.channels.speakers.mqtt import MqttChannel, MqttConfig

    port = free_port()  # nothing listens there
    ch = MqttChannel(MqttConfig(id="x", type="mqtt", broker=f"mqtt://127.0.0.1:{port}", topic="/sertodev/1", timeout_s=1),
                     SpeakerContext(base_dir=confdir))
    now = local(2026, 11, 28, 19, 30)
    job = PlayJob(1, "x", "v", now, now + timedelta(hours=1), 1, "0" * 64, confdir / "a.mp3", "http://x/a.mp3")
    with pytest.raises(TransientError):
        ch.send(job)
    ch.close()
