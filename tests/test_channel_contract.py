"""One contract, every channel type (APScheduler-style): each built-in SMS provider and pushed
loudspeaker type (and the example plugin) against its loopback double: a send is handed over
once; a permanent error is a PermanentError and a transient one a TransientError (with the
provider's Retry-After), never a vendor exception; re-sending the same delivery is harmless
where the type says it is idempotent; a withdrawable type takes a held play back.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster import plugins
from broadcaster.channels import SendResult
from broadcaster.channels.sms import SmsContext, SmsJob
from broadcaster.channels.speakers import PlayJob, SpeakerContext
from broadcaster.errors import PermanentError, TransientError
from tests.conftest import TZ, local
from broadcaster.config.models import SmsTemplate
from tests.doubles.aliyun import AliyunSmsDouble
from tests.doubles.faults import FaultPlan
from tests.doubles.http_speaker import SpeakerReceiver
from tests.doubles.server import Response
from tests.doubles.tencent import TencentSmsDouble
from tests.doubles.twilio import TwilioDouble
from tests.test_plugins import GATEWAY_TOKEN, CountyGatewayDouble

NOW = local(2026, 11, 28, 17, 0)
TO, BAD = "+8613800138000", "+8613900139001"


@dataclass
class Harness:
    """One channel pointed at its double, and how to make that double misbehave."""

    channel: Any
    job: Callable[[int], Any]  # delivery id -> the job to send
    received: Callable[[int], int]  # delivery id -> how many copies the endpoint holds
    permanent: Callable[[], None] | None = None  # the next send of delivery 2 fails for good
    transient: Callable[[], None] | None = None  # the next send of delivery 3 fails for now (Retry-After 7)
    down: Callable[[], None] | None = None  # the endpoint cannot be reached at all
    extra: dict[str, Any] = field(default_factory=dict)


def _sms_job(i: int) -> SmsJob:
    return SmsJob(i, 1, {2: BAD}.get(i, TO), "【XX镇文化站】今晚一氧化碳中毒气象条件4级。")


def _outbox(stack: ExitStack, tmp: Path) -> Harness:
    cls = plugins.get("sms", "outbox")
    ch = cls(cls.Config(path=tmp / "sms.jsonl"), SmsContext("http://127.0.0.1", tmp, TZ))

    def received(i: int) -> int:
        path = tmp / "sms.jsonl"
        return sum(json.loads(x)["delivery_id"] == i for x in path.read_text().splitlines()) if path.exists() else 0

    def down() -> None:
        (tmp / "sms.jsonl").unlink(missing_ok=True)
        (tmp / "sms.jsonl").mkdir()  # a directory where the file should be: cannot append

    return Harness(ch, _sms_job, received, down=down)


def _twilio(stack: ExitStack, tmp: Path) -> Harness:
    tw = stack.enter_context(TwilioDouble(errors={BAD: 21211}, faults=FaultPlan(retry_after_s=7)))
    cls = plugins.get("sms", "twilio")
    cfg = cls.Config.model_validate({"account_sid": tw.account_sid, "auth_token": tw.auth_token,
                                     "from": "+15005550006", "base_url": tw.url, "timeout_s": 3})
    ch = cls(cfg, SmsContext("http://127.0.0.1", tmp, TZ))
    # The double refuses BAD with 21211 (invalid number) by itself: nothing to arrange.
    return Harness(ch, _sms_job, lambda i: len(tw.accepted()), permanent=lambda: None,
                   transient=lambda: tw.faults.add(429, key=TO), down=lambda: tw.stop())


def _gateway(stack: ExitStack, tmp: Path) -> Harness:
    gw = stack.enter_context(CountyGatewayDouble())
    cls = plugins.get("sms", "county-gateway")
    cfg = cls.Config(url=gw.url, token=GATEWAY_TOKEN, receipt_token="r", timeout_s=3)
    ch = cls(cfg, SmsContext("http://127.0.0.1", tmp, TZ))

    def permanent() -> None:
        gw.script[BAD] = [Response.json(200, {"code": 1001, "msg": "no such number"})]

    def transient() -> None:
        gw.script[TO] = [Response.json(503, {"code": 503}, {"Retry-After": "7"})]

    return Harness(ch, _sms_job, lambda i: len(gw.sent), permanent, transient, down=lambda: gw.stop())


def _play_job(tmp: Path) -> Callable[[int], PlayJob]:
    audio = tmp / ("a" * 64 + ".mp3")
    audio.write_bytes(b"ID3" + bytes(1000))
    sha = hashlib.sha256(audio.read_bytes()).hexdigest()
    audio = audio.rename(tmp / f"{sha}.mp3")
    return lambda i: PlayJob(i, "spk", "dongcun", (NOW + timedelta(hours=2)).astimezone(TZ),
                             (NOW + timedelta(hours=3)).astimezone(TZ), 1, sha, audio, f"http://127.0.0.1/{sha}.mp3")


def _folder(stack: ExitStack, tmp: Path) -> Harness:
    cls = plugins.get("speakers", "folder")
    ch = cls(cls.Config(id="spk", type="folder", path=tmp / "out"), SpeakerContext(base_dir=tmp))

    def received(i: int) -> int:
        return len(list((tmp / "out").glob(f"*-{i}.mp3"))) if (tmp / "out").exists() else 0

    def down() -> None:
        (tmp / "out").mkdir(exist_ok=True)
        os.chmod(tmp / "out", 0o500)  # read-only: writing fails (root ignores modes: then a file instead)
        if os.geteuid() == 0:
            os.chmod(tmp / "out", 0o700)
            for f in (tmp / "out").iterdir():
                f.unlink()
            (tmp / "out").rmdir()
            (tmp / "out").write_text("not a directory")

    return Harness(ch, _play_job(tmp), received, down=down)


def _http(stack: ExitStack, tmp: Path) -> Harness:
    rx = stack.enter_context(SpeakerReceiver(token="tok"))
    cls = plugins.get("speakers", "http")
    ch = cls(cls.Config(id="spk", type="http", url=rx.play_url, token="tok", timeout_s=3), SpeakerContext(base_dir=tmp))

    def permanent() -> None:
        rx.faults.add(403)

    def transient() -> None:
        rx.faults.retry_after_s = 7
        rx.faults.add(429)

    return Harness(ch, _play_job(tmp), lambda i: sum(p.delivery_id == str(i) for p in rx.plays),
                   permanent, transient, down=lambda: rx.stop(), extra={"rx": rx})


def _cn_context(tmp: Path) -> SmsContext:
    t = SmsTemplate.model_validate({"text": "【XX镇文化站】今晚一氧化碳中毒气象条件{level}级。",
                                    "aliyun": {"code": "SMS_1", "params": {"level": "{level}"}},
                                    "tencent": {"id": "1", "params": ["{level}"]}})
    return SmsContext("http://127.0.0.1", tmp, TZ, templates={"sms_warn": t})


def _cn_job(i: int) -> SmsJob:
    return SmsJob(i, 1, {2: BAD}.get(i, TO), "【XX镇文化站】今晚一氧化碳中毒气象条件4级。", "sms_warn", {"level": "4"})


def _aliyun(stack: ExitStack, tmp: Path) -> Harness:
    d = stack.enter_context(AliyunSmsDouble({"ak": "sk"}, templates=["SMS_1"]))
    cls = plugins.get("sms", "aliyun")
    cfg = cls.Config(access_key_id="ak", access_key_secret="sk", sign_name="XX镇文化站",
                     endpoint=f"127.0.0.1:{d.port}", protocol="http", timeout_s=3)
    return Harness(cls(cfg, _cn_context(tmp)), _cn_job, lambda i: len(d.messages(TO)),
                   permanent=lambda: d.errors.update({BAD[3:]: "isv.MOBILE_NUMBER_ILLEGAL"}),
                   down=lambda: d.set_down("refused"))


def _tencent(stack: ExitStack, tmp: Path) -> Harness:
    d = stack.enter_context(TencentSmsDouble({"sid": "skey"}, templates=["1"], limit_30s=False))
    cls = plugins.get("sms", "tencent")
    cfg = cls.Config(secret_id="sid", secret_key="skey", sdk_app_id=d.sdk_app_id, sign_name="XX镇文化站",
                     endpoint=f"127.0.0.1:{d.port}", protocol="http", timeout_s=3)
    return Harness(cls(cfg, _cn_context(tmp)), _cn_job, lambda i: len(d.messages(TO)),
                   permanent=lambda: d.errors.update({BAD: "InvalidParameterValue.IncorrectPhoneNumber"}),
                   down=lambda: d.set_down("refused"))


# type -> (harness, what its double can be made to do beyond a normal send)
HARNESSES: dict[str, tuple[Callable[[ExitStack, Path], Harness], set[str]]] = {
    "sms:outbox": (_outbox, set()),
    "sms:twilio": (_twilio, {"permanent", "transient"}),
    "sms:county-gateway": (_gateway, {"permanent", "transient"}),
    "sms:aliyun": (_aliyun, {"permanent"}),
    "sms:tencent": (_tencent, {"permanent"}),
    "speakers:folder": (_folder, {"withdraw"}),
    "speakers:http": (_http, {"permanent", "transient", "withdraw"}),
}


def types_with(cap: str | None = None) -> list[str]:
    return sorted(k for k, (_h, caps) in HARNESSES.items() if cap is None or cap in caps)


@contextmanager
def build(kind: str, tmp: Path) -> Iterator[Harness]:
    with ExitStack() as stack:
        yield HARNESSES[kind][0](stack, tmp)


def test_every_installed_pushed_type_is_covered() -> None:
    pushed = {f"speakers:{n}" for n, c in plugins.available("speakers").items() if c.mode != "pull"}
    sms = {f"sms:{n}" for n in plugins.names("sms")}
    # mqtt speakers need a broker: their contract runs in tests/test_speaker_mqtt.py.
    assert (pushed | sms) - {"speakers:mqtt"} == set(HARNESSES)


@pytest.mark.parametrize("kind", types_with())
def test_send_hands_over_once(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        res = h.channel.send(h.job(1))
        assert isinstance(res, SendResult) and res.state in ("sent", "delivered", "played")
        assert h.received(1) == 1


@pytest.mark.parametrize("kind", types_with())
def test_resend_is_harmless_where_idempotent(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        h.channel.send(h.job(1))
        h.channel.send(h.job(1))
        assert h.received(1) == (1 if getattr(h.channel, "idempotent", False) else 2)


@pytest.mark.parametrize("kind", types_with("permanent"))
def test_permanent_errors_are_permanent(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        assert h.permanent is not None
        h.permanent()
        with pytest.raises(PermanentError):
            h.channel.send(h.job(2))


@pytest.mark.parametrize("kind", types_with("transient"))
def test_transient_errors_are_transient_with_retry_after(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        assert h.transient is not None
        h.transient()
        with pytest.raises(TransientError) as err:
            h.channel.send(h.job(3))
        assert err.value.retry_after == 7


@pytest.mark.parametrize("kind", types_with())
def test_an_unreachable_endpoint_is_transient_not_a_vendor_exception(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        assert h.down is not None
        h.down()
        with pytest.raises(TransientError):
            h.channel.send(h.job(4))


@pytest.mark.parametrize("kind", types_with("withdraw"))
def test_withdrawal_takes_a_held_play_back(kind: str, tmp_path: Path) -> None:
    with build(kind, tmp_path) as h:
        assert h.channel.withdrawable
        h.channel.send(h.job(5))
        assert h.received(5) == 1
        h.channel.withdraw(h.job(5))
        assert h.received(5) == 0
        if kind == "speakers:http":  # a repeated withdrawal (after a crash) is harmless: 404 = withdrawn
            h.channel.withdraw(h.job(5))
