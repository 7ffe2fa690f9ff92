"""The Chinese provider doubles speak the real wire formats: every test drives a double through
the official SDK (or, for Aliyun's REST TTS, plain HTTP as Aliyun documents it)."""

from __future__ import annotations

import base64
import io
import json
import time
import wave
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import miniaudio
import pytest
import requests

pytest.importorskip("alibabacloud_dysmsapi20170525")
pytest.importorskip("tencentcloud.sms")
pytest.importorskip("tencentcloud.tts")

from alibabacloud_dysmsapi20170525 import models as ali  # noqa: E402
from Tea.exceptions import TeaException  # noqa: E402
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: E402
    TencentCloudSDKException,
)
from tencentcloud.sms.v20210111 import models as tcm  # noqa: E402
from tencentcloud.tts.v20190823 import models as ttsm  # noqa: E402

from tests.doubles import cn_sdk  # noqa: E402
from tests.doubles.aliyun import SEND_DELIVERED, SEND_WAITING, AliyunSmsDouble  # noqa: E402
from tests.doubles.aliyun_pop import rpc_signature  # noqa: E402
from tests.doubles.cloud_tts import AliyunTtsDouble, TencentTtsDouble  # noqa: E402
from tests.doubles.cn_base import CN_TZ  # noqa: E402
from tests.doubles.tencent import TencentSmsDouble, tc3_signature  # noqa: E402

AK, SK = "test-ak", "test-secret"
SID, SKEY = "test-secret-id", "test-secret-key"
SIGN, APP = "XX镇文化站", "1400000000"
A, B, C = "13800138000", "13900139000", "15012345678"


# -- fixtures and SDK factories -------------------------------------------------------
@pytest.fixture
def aliyun() -> Iterator[AliyunSmsDouble]:
    with AliyunSmsDouble({AK: SK}, templates={"SMS_1": "【提醒】${date}夜间${level}级"},
                         sign_names=[SIGN]) as double:
        yield double
    assert double.internal_errors == []


@pytest.fixture
def tencent() -> Iterator[TencentSmsDouble]:
    with TencentSmsDouble({SID: SKEY}, templates={"1234567": "{1}夜间{2}级"},
                          sign_names=[SIGN], sdk_app_id=APP) as double:
        yield double
    assert double.internal_errors == []


def ali_send(double: AliyunSmsDouble, numbers: str, secret: str = SK, **kw: Any) -> Any:
    req = ali.SendSmsRequest(phone_numbers=numbers, sign_name=kw.pop("sign", SIGN),
                             template_code=kw.pop("template", "SMS_1"),
                             template_param=kw.pop("param", '{"date":"12月1日","level":"3"}'),
                             **kw)
    return cn_sdk.aliyun_sms(double.port, AK, secret).send_sms(req)


def tc_send(double: TencentSmsDouble, numbers: list[str], key: str = SKEY,
            params: tuple[str, ...] = ("今晚", "3"), timeout: float = 10, **kw: Any) -> Any:
    req = tcm.SendSmsRequest()
    req.PhoneNumberSet, req.SmsSdkAppId, req.SignName = numbers, APP, kw.get("sign", SIGN)
    req.TemplateId, req.TemplateParamSet = kw.get("template", "1234567"), list(params)
    req.SessionContext = "alert-7"
    return cn_sdk.tencent_sms(double.port, kw.get("sid", SID), key, timeout).SendSms(req)


@pytest.fixture
def receiver() -> Iterator[cn_sdk.ReceiptSink]:
    with cn_sdk.ReceiptSink() as sink:
        yield sink


# -- known-answer vectors of sms-providers.md ----------------------------------------
def test_signature_vectors():
    params = {"AccessKeyId": "testAK", "Action": "SendSms", "Format": "JSON",
              "PhoneNumbers": "13800138000", "SignName": "阿里云", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
              "TemplateCode": "SMS_153055065", "TemplateParam": '{"code":"1234"}',
              "Timestamp": "2017-07-12T02:42:19Z", "Version": "2017-05-25",
              "RegionId": "cn-hangzhou"}
    assert rpc_signature(params, "POST", "testSecret") == "S/v7jzZKXL0vueaRKHQxQhAZdhs="
    assert rpc_signature(params, "GET", "testSecret") == "K2aVl18lLP980fUMYc1PiQP660Y="
    body = (b'{"PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400006666", "TemplateId": '
            b'"1110", "SignName": "\\u817e\\u8baf\\u4e91", "TemplateParamSet": ["4370"]}')
    # The host is only signature input (Tencent's documented example); every request goes to 127.0.0.1.
    assert tc3_signature("tcSecret", "sms", "sms.tencentcloudapi.com", 1700000000, body) == \
        "343e9777e323a695fabff9d6498f99770529b36ab80d6c8a2c1bd592a05e4105"


# -- Aliyun SMS -------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", [None, "v2"])  # ACS3 (the default) and the V2 RPC one
def test_aliyun_send_to_three_numbers_is_recorded(aliyun, algorithm):
    req = ali.SendSmsRequest(phone_numbers=f"{A},+86{B},0086{C}", sign_name=SIGN,
                             template_code="SMS_1", template_param='{"date":"12月1日","level":"3"}',
                             out_id="alert-7 a+b")
    resp = cn_sdk.aliyun_sms(aliyun.port, AK, SK, signature_algorithm=algorithm).send_sms(req)
    assert (resp.status_code, resp.body.code, resp.body.message) == (200, "OK", "OK")
    assert resp.body.biz_id.endswith("^0") and resp.body.request_id
    msgs = aliyun.messages()
    assert [m.phone for m in msgs] == [A, B, C] and {m.biz_id for m in msgs} == {resp.body.biz_id}
    m = msgs[0]
    assert (m.sign_name, m.template_code, m.out_id) == (SIGN, "SMS_1", "alert-7 a+b")
    assert m.params == {"date": "12月1日", "level": "3"}
    assert m.content == f"【{SIGN}】【提醒】12月1日夜间3级"
    assert [(c.action, c.code, c.status) for c in aliyun.calls] == [("SendSms", "OK", 200)]


def test_aliyun_business_errors_come_back_as_200(aliyun):
    aliyun.errors = {B: ["isv.BLACK_KEY_CONTROL_LIMIT"]}
    aliyun.limit_per_day = 1
    cases = [({"template": "SMS_404"}, A, "isv.SMS_TEMPLATE_ILLEGAL"),
             ({"sign": "别人的签名"}, A, "isv.SMS_SIGNATURE_ILLEGAL"),
             ({}, f"{A},1380013800", "isv.MOBILE_NUMBER_ILLEGAL"),
             ({"param": '{"date":"d"}'}, A, "isv.TEMPLATE_MISSING_PARAMETERS"),
             ({"param": '{"date":"d","level":3}'}, A, "isv.INVALID_JSON_PARAM"),
             ({}, B, "isv.BLACK_KEY_CONTROL_LIMIT")]
    for kw, numbers, code in cases:
        body = ali_send(aliyun, numbers, **kw).body
        assert (body.code, body.biz_id) == (code, None), code
    assert aliyun.messages() == []
    assert ali_send(aliyun, B).body.code == "OK"  # the scripted list is used up
    limited = ali_send(aliyun, B).body
    assert (limited.code, limited.message) == ("isv.BUSINESS_LIMIT_CONTROL",
                                               "触发天级流控Permits:1")


def test_aliyun_gateway_errors_raise(aliyun):
    with pytest.raises(TeaException) as bad:
        ali_send(aliyun, A, secret="wrong")
    assert (bad.value.code, bad.value.status_code) == ("SignatureDoesNotMatch", 400)
    assert bad.value.data["Code"] == "SignatureDoesNotMatch"
    aliyun.throttle_next()
    with pytest.raises(TeaException) as throttled:
        ali_send(aliyun, A)
    assert throttled.value.code == "Throttling.User"
    aliyun.set_down(503)
    with pytest.raises(TeaException) as down:
        ali_send(aliyun, A)
    assert (down.value.code, down.value.status_code) == ("ServiceUnavailable", 503)
    aliyun.set_down("refused")
    with pytest.raises(TeaException) as refused:
        ali_send(aliyun, A)
    assert type(refused.value).__name__ == "UnretryableException"
    aliyun.set_up()
    assert ali_send(aliyun, A).body.code == "OK"
    # One request per SDK call: tea-openapi does not retry (retry_options is None).
    assert [c.code for c in aliyun.calls] == ["SignatureDoesNotMatch", "Throttling.User", None,
                                              "OK"]


def test_aliyun_read_timeout_is_not_retried(aliyun):
    aliyun.slow_s = 1.0
    client = cn_sdk.aliyun_sms(aliyun.port, AK, SK, read_timeout=200)  # milliseconds
    t0 = time.monotonic()
    with pytest.raises(TeaException):
        client.send_sms(ali.SendSmsRequest(phone_numbers=A, sign_name=SIGN, template_code="SMS_1",
                                           template_param='{"date":"d","level":"3"}'))
    assert time.monotonic() - t0 < 0.9
    assert len(aliyun.messages()) == 1  # the send happened; only the answer was late
    time.sleep(0.1)
    assert len(aliyun.calls) == 1


def test_aliyun_batch_and_query_send_details(aliyun):
    values = [{"date": "1日", "level": "2"}, {"date": "1日", "level": "3"}]
    batch = ali.SendBatchSmsRequest(phone_number_json=json.dumps([A, B]),
                                    sign_name_json=json.dumps([SIGN, SIGN], ensure_ascii=False),
                                    template_code="SMS_1", template_param_json=json.dumps(values))
    client = cn_sdk.aliyun_sms(aliyun.port, AK, SK)
    first = client.send_batch_sms(batch).body
    second = ali_send(aliyun, A).body
    assert first.code == second.code == "OK"
    aliyun.deliver([m for m in aliyun.messages(A) if m.biz_id == first.biz_id])
    today = datetime.now(CN_TZ).strftime("%Y%m%d")  # SendDate is a China calendar day
    q = ali.QuerySendDetailsRequest(phone_number=A, send_date=today, page_size=10, current_page=1)
    body = client.query_send_details(q).body
    assert (body.code, body.total_count) == ("OK", 2)
    rows = body.sms_send_detail_dtos.sms_send_detail_dto
    assert [(r.send_status, r.err_code) for r in rows] == [(SEND_DELIVERED, "DELIVERED"),
                                                            (SEND_WAITING, "")]
    assert rows[0].content.endswith("1日夜间2级") and rows[0].receive_date
    q.biz_id, q.page_size = second.biz_id, 1
    only = client.query_send_details(q).body
    assert only.total_count == 1 and only.sms_send_detail_dtos.sms_send_detail_dto[0].phone_num == A


def test_aliyun_push_receipts(aliyun, receiver):
    biz = ali_send(aliyun, f"{A},{B}", out_id="alert-7").body.biz_id
    resp = aliyun.push_receipts(receiver.url, aliyun.messages(B), success=False,
                                err_code="MN:0001")
    assert resp.status_code == 200 and resp.json()["code"] == 0
    [[item]] = receiver.bodies
    assert receiver.content_types[0].startswith("application/json")
    assert set(item) >= {"phone_number", "send_time", "report_time", "success", "err_code",
                         "err_msg", "biz_id", "out_id"}
    assert (item["phone_number"], item["success"], item["err_code"], item["biz_id"],
            item["out_id"]) == (B, False, "MN:0001", biz, "alert-7")
    aliyun.push_receipts(receiver.url)  # the rest: A, delivered
    assert [(r["phone_number"], r["success"]) for r in receiver.bodies[1]] == [(A, True)]


# -- Tencent SMS ------------------------------------------------------------------------
def test_tencent_send_to_three_numbers_per_number_results(tencent):
    tencent.errors = {f"+86{B}": "LimitExceeded.PhoneNumberDailyLimit"}
    resp = tc_send(tencent, [f"+86{A}", B, "+8612345"])
    codes = [(s.PhoneNumber, s.Code) for s in resp.SendStatusSet]
    assert codes == [(f"+86{A}", "Ok"), (f"+86{B}", "LimitExceeded.PhoneNumberDailyLimit"),
                     ("+8612345", "InvalidParameterValue.IncorrectPhoneNumber")]
    ok = resp.SendStatusSet[0]
    assert (ok.Fee, ok.SessionContext, ok.IsoCode, ok.Message) == (1, "alert-7", "CN",
                                                                    "send success")
    [m] = tencent.messages()
    assert (m.phone, m.sign_name, m.template_id, m.params, m.serial_no) == (
        f"+86{A}", SIGN, "1234567", ["今晚", "3"], ok.SerialNo)


def test_tencent_per_number_business_codes(tencent):
    assert tc_send(tencent, [A]).SendStatusSet[0].Code == "Ok"
    again = tc_send(tencent, [A, B]).SendStatusSet  # same content within 30 s
    assert [s.Code for s in again] == ["LimitExceeded.PhoneNumberThirtySecondLimit", "Ok"]
    for kw, code in [({"template": "999"}, "FailedOperation.TemplateIncorrectOrUnapproved"),
                     ({"sign": "别人的签名"}, "FailedOperation.SignatureIncorrectOrUnapproved"),
                     ({"params": ("只有一个",)},
                      "FailedOperation.TemplateParamSetNotMatchApprovedTemplate")]:
        kw.setdefault("params", ("x", "y"))
        assert {s.Code for s in tc_send(tencent, [C, A], **kw).SendStatusSet} == {code}
    tencent.daily_limit = 1
    assert tc_send(tencent, [A], params=("其他", "2")).SendStatusSet[0].Code == \
        "LimitExceeded.PhoneNumberDailyLimit"


def test_tencent_request_level_errors_raise(tencent):
    for kw, code in [({"key": "wrong"}, "AuthFailure.SignatureFailure"),
                     ({"sid": "nobody"}, "AuthFailure.SecretIdNotFound")]:
        with pytest.raises(TencentCloudSDKException) as e:
            tc_send(tencent, [A], **kw)
        assert e.value.code == code and e.value.requestId
    tencent.throttle_next()
    with pytest.raises(TencentCloudSDKException) as throttled:
        tc_send(tencent, [A])
    assert throttled.value.code == "RequestLimitExceeded"
    with pytest.raises(TencentCloudSDKException) as many:
        tc_send(tencent, [A] * 201)
    assert many.value.code == "LimitExceeded.PhoneNumberCountLimit"
    assert tencent.messages() == []


def test_tencent_answers_that_look_like_success(tencent):
    tencent.omit_send_status_set = True
    assert tc_send(tencent, [A]).SendStatusSet is None  # the adapter must call this a failure
    tencent.omit_send_status_set = False
    # The SDK reads Response.Error only under exactly "application/json": with a charset the
    # AuthFailure passes silently.
    tencent.content_type = "application/json; charset=utf-8"
    assert tc_send(tencent, [A], key="wrong").SendStatusSet is None


def test_tencent_network_failures(tencent):
    tencent.set_down(502)
    with pytest.raises(TencentCloudSDKException) as bad_gateway:
        tc_send(tencent, [A])
    assert bad_gateway.value.code == "ServerNetworkError"
    tencent.set_down("refused")
    with pytest.raises(TencentCloudSDKException) as refused:
        tc_send(tencent, [A])
    assert refused.value.code == "ClientNetworkError"
    tencent.set_up()
    tencent.slow_s = 1.0
    t0 = time.monotonic()
    with pytest.raises(TencentCloudSDKException) as slow:
        tc_send(tencent, [B], timeout=0.2)
    assert slow.value.code == "ClientNetworkError" and time.monotonic() - t0 < 0.9
    time.sleep(0.1)
    assert [c.status for c in tencent.calls] == [502, None]  # no retry (NoopRetryer)
    assert [m.phone for m in tencent.messages()] == [f"+86{B}"]  # sent, answer lost


def test_tencent_pull_status_and_push_receipts(tencent, receiver):
    sent = tc_send(tencent, [A, B]).SendStatusSet
    client = cn_sdk.tencent_sms(tencent.port, SID, SKEY)
    pull = tcm.PullSmsSendStatusRequest()
    pull.Limit, pull.SmsSdkAppId = 100, APP
    assert client.PullSmsSendStatus(pull).PullSmsSendStatusSet == []  # nothing reported yet
    receiver.reply = {"result": 0, "errmsg": "OK"}
    resp = tencent.push_receipts(receiver.url, tencent.messages(A))
    assert resp.json() == {"result": 0, "errmsg": "OK"}
    [[item]] = receiver.bodies
    assert item == {"user_receive_time": item["user_receive_time"], "nationcode": "86",
                    "mobile": A, "report_status": "SUCCESS", "errmsg": "DELIVRD",
                    "description": "用户短信送达成功", "sid": sent[0].SerialNo}
    tencent.deliver(tencent.messages(B), success=False)
    got = client.PullSmsSendStatus(pull).PullSmsSendStatusSet
    assert [(s.PhoneNumber, s.SubscriberNumber, s.CountryCode, s.ReportStatus, s.SerialNo,
             s.SessionContext) for s in got] == [
        (f"+86{A}", A, "86", "SUCCESS", sent[0].SerialNo, "alert-7"),
        (f"+86{B}", B, "86", "FAIL", sent[1].SerialNo, "alert-7")]
    assert client.PullSmsSendStatus(pull).PullSmsSendStatusSet == []  # pulled once


# -- TTS --------------------------------------------------------------------------------
def aliyun_token(double: AliyunTtsDouble, secret: str = SK) -> Any:
    return cn_sdk.aliyun_create_token(double.port, AK, secret)


def test_aliyun_tts_token_and_rest_synthesis():
    with AliyunTtsDouble({AK: SK}, appkeys=["ak1"]) as tts:
        token = aliyun_token(tts)["Token"]
        assert len(token["Id"]) == 32 and token["ExpireTime"] > time.time() + 3600
        url = f"{tts.url}/stream/v1/tts"
        got = requests.post(url, timeout=5, json={
            "appkey": "ak1", "token": token["Id"], "text": "今晚开窗通风", "format": "wav",
            "sample_rate": 16000, "voice": "xiaoyun"})
        assert got.status_code == 200 and got.headers["Content-Type"] == "audio/mpeg"
        with wave.open(io.BytesIO(got.content)) as w:
            assert (w.getframerate(), w.getnchannels()) == (16000, 1) and w.getnframes() > 8000
        mp3 = requests.get(url, params={"appkey": "ak1", "text": "煤气", "format": "mp3",
                                        "sample_rate": "8000"},
                           headers={"X-NLS-Token": token["Id"]}, timeout=5)
        info = miniaudio.mp3_get_info(mp3.content)  # decodes the whole stream: it plays
        assert (info.sample_rate, info.nchannels) == (8000, 1) and info.duration > 0.3
        assert [(s.text, s.fmt) for s in tts.syntheses] == [("今晚开窗通风", "wav"),
                                                             ("煤气", "mp3")]
        for body, status in [({"appkey": "ak1", "token": "nope", "text": "x"}, 40000001),
                             ({"appkey": "other", "token": token["Id"], "text": "x"}, 40020105)]:
            bad = requests.post(url, json=body, timeout=5)
            assert bad.headers["Content-Type"].startswith("application/json")
            assert bad.json()["status"] == status
        tts.expire_tokens()
        expired = requests.post(url, json={"appkey": "ak1", "token": token["Id"], "text": "x"},
                                timeout=5).json()
        assert expired["status"] == 40000001 and "expired" in expired["message"]
        with pytest.raises(TeaException) as e:
            aliyun_token(tts, secret="wrong")
        assert e.value.code == "SignatureDoesNotMatch"
        assert tts.internal_errors == []


def test_aliyun_tts_token_through_nls_meta_sdk():
    nls = pytest.importorskip("alibabacloud_nls_cloud_meta20190228.client")
    with AliyunTtsDouble({AK: SK}) as tts:
        body = nls.Client(cn_sdk.aliyun_config(tts.port, AK, SK)).create_token().body
        assert body.token.id in tts.tokens and body.token.expire_time > time.time()


def test_aliyun_tts_down_and_slow():
    with AliyunTtsDouble({AK: SK}) as tts:
        token = aliyun_token(tts)["Token"]["Id"]
        body = {"appkey": "test-appkey", "token": token, "text": "测试"}
        tts.slow_s = 1.0
        with pytest.raises(requests.Timeout):
            requests.post(f"{tts.url}/stream/v1/tts", json=body, timeout=0.2)
        tts.slow_s = 0
        url = tts.url
        tts.set_down("refused")
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{url}/stream/v1/tts", json=body, timeout=1)
        tts.set_up()
        assert requests.post(f"{url}/stream/v1/tts", json=body, timeout=1).status_code == 200


def tc_tts(double: TencentTtsDouble, text: str, key: str = SKEY, timeout: float = 10,
           **kw: Any) -> Any:
    req = ttsm.TextToVoiceRequest()
    req.Text, req.SessionId, req.VoiceType = text, "s-1", 101001
    for name, value in kw.items():
        setattr(req, name, value)
    return cn_sdk.tencent_tts(double.port, SID, key, timeout).TextToVoice(req)


def test_tencent_tts_text_to_voice():
    with TencentTtsDouble({SID: SKEY}) as tts:
        resp = tc_tts(tts, "今晚一氧化碳中毒风险三级")
        assert resp.SessionId == "s-1" and resp.RequestId
        with wave.open(io.BytesIO(base64.b64decode(resp.Audio))) as w:
            assert w.getframerate() == 16000 and w.getnframes() > 16000
        mp3 = base64.b64decode(tc_tts(tts, "开窗", Codec="mp3", SampleRate=8000).Audio)
        assert miniaudio.mp3_get_info(mp3).sample_rate == 8000
        for kw, code in [({"key": "wrong"}, "AuthFailure.SignatureFailure"),
                         ({"Codec": "ogg"}, "InvalidParameterValue.Codec")]:
            with pytest.raises(TencentCloudSDKException) as e:
                tc_tts(tts, "开窗", **kw)
            assert e.value.code == code
        with pytest.raises(TencentCloudSDKException) as e:
            tc_tts(tts, "长" * 151)
        assert e.value.code == "InvalidParameterValue.TextTooLong"
        tts.slow_s = 1.0
        with pytest.raises(TencentCloudSDKException) as slow:
            tc_tts(tts, "开窗", timeout=0.2)
        assert slow.value.code == "ClientNetworkError"
        assert [s.text for s in tts.syntheses] == ["今晚一氧化碳中毒风险三级", "开窗", "开窗"]
        assert tts.internal_errors == []
