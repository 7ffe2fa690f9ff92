"""Cloud voices (DESIGN A11): 腾讯云语音合成 through its SDK to a loopback double, and the espeak
fallback when the cloud is down or slow: the alert is made, its bulletin spoken by espeak, and
the engine that spoke each bulletin is kept for the console."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doubles.cloud_tts import TencentTtsDouble
from tests.test_api import Api, make_api

SID, SKEY = "tts-secret-id", "tts-secret-key"


@pytest.fixture
def tts() -> Iterator[TencentTtsDouble]:
    with TencentTtsDouble({SID: SKEY}) as d:
        yield d


@pytest.fixture
def api(confdir: Path, tts: TencentTtsDouble) -> Iterator[Api]:
    def edit(d: dict) -> None:
        d["audio"].update(tts="tencent", voice="101001", timeout_s=1,
                          tencent={"secret_id": SID, "secret_key": SKEY, "endpoint": f"127.0.0.1:{tts.port}",
                                   "protocol": "http"})
    a = make_api(confdir, edit)
    yield a
    a.svc.close()


def test_tencent_voice_speaks_the_bulletin_and_is_cached(api: Api, tts: TencentTtsDouble) -> None:
    b = api.svc.renderer.render("各位村民请注意：今晚一氧化碳中毒气象条件4级。请开窗通风。", fmt="mp3")
    assert b.engine == "tencent:101001:0" and b.duration_s > 2
    assert [s.voice for s in tts.syntheses] == ["101001"] * 3  # one request a sentence
    assert all(s.credential == SID and s.fmt == "wav" for s in tts.syntheses)
    again = api.svc.renderer.render("各位村民请注意：今晚一氧化碳中毒气象条件4级。请开窗通风。", fmt="mp3")
    assert again.cached and again.sha256 == b.sha256 and len(tts.syntheses) == 3
    assert api.svc.renderer.cache.engine_of(b.sha256) == "tencent:101001:0"


@pytest.mark.parametrize("trouble", ["down", "slow"])
def test_cloud_down_or_slow_the_alert_is_spoken_by_espeak(api: Api, tts: TencentTtsDouble, trouble: str) -> None:
    if trouble == "down":
        tts.set_down("refused")
    else:
        tts.slow_s = 1.5  # beyond audio.timeout_s (1 s)
    report = api.svc.poll()
    assert report.created  # the warning is made, cloud or not
    with api.svc.ledger.reader() as s:
        from sqlalchemy import select

        from broadcaster.ledger import Delivery
        shas = set(s.scalars(select(Delivery.audio_sha256).where(Delivery.channel == "speaker")).all())
    assert shas and None not in shas
    assert {api.svc.renderer.cache.engine_of(sha) for sha in shas} == {"espeak:cmn:160"}
    if trouble == "down":
        assert tts.syntheses == []
    # The console says which engine spoke tonight's bulletins.
    from broadcaster.auth.accounts import Accounts
    from tests.test_api import START
    from tests.test_console import browser, sign_in

    Accounts(api.svc.ledger).add_user("小李", "operator", "xiaoli-pass", START)
    c = browser(api)
    sign_in(c, "小李", "xiaoli-pass")
    assert "喇叭音频合成：espeak:cmn:160" in c.get(f"/history/{report.alert_id}").text
    # Once the cloud is back, the next bulletin has the natural voice again.
    tts.set_up()
    tts.slow_s = 0
    assert api.svc.renderer.render("今晚请注意通风。").engine.startswith("tencent:")


def test_aliyun_voice_with_a_token_from_create_token(confdir: Path) -> None:
    from tests.doubles.cloud_tts import AliyunTtsDouble

    with AliyunTtsDouble({"ak": "sk"}, appkeys=["app1"]) as ali:
        def edit(d: dict) -> None:
            d["audio"].update(tts="aliyun", voice="xiaoyun", aliyun={
                "access_key_id": "ak", "access_key_secret": "sk", "appkey": "app1", "protocol": "http",
                "endpoint": f"127.0.0.1:{ali.port}", "tts_url": f"{ali.url}/stream/v1/tts"})
        a = make_api(confdir, edit)
        try:
            b = a.svc.renderer.render("各位村民请注意：今晚请开窗通风。")
            assert b.engine == "aliyun:xiaoyun:0" and b.duration_s > 1
            assert [(s.voice, s.fmt, s.sample_rate) for s in ali.syntheses] == [("xiaoyun", "wav", 16000)] * 2
            assert len(ali.calls_of("CreateToken")) == 1  # one token for both sentences
            ali.expire_tokens()  # renewed once when the gateway says the token is invalid
            assert a.svc.renderer.render("今晚请注意。").engine == "aliyun:xiaoyun:0"
            assert len(ali.calls_of("CreateToken")) == 2
            ali.set_down(503)
            assert a.svc.renderer.render("明晚请注意。").engine == "espeak:cmn:160"
        finally:
            a.svc.close()
