"""The chat-robot, display and CAP test assets speak their real formats (driven with requests).

Signatures are computed here the way a client computes them (reference §2.1, §3), not with the
doubles' own helpers, so a wrong helper cannot make a wrong double pass.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import time
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from tests.doubles.chats import DingtalkRobotDouble, FeishuRobotDouble, Robot, WecomRobotDouble
from tests.doubles.display import HttpDisplayDouble
from tests.doubles.display_vendor import XixunRealtimeDouble
from tests.doubles.faults import FaultPlan

DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
FEISHU_SECRET = "fs-secret-value"
CAP_DIR = Path(__file__).parent / "cap"
CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
MD = {"msgtype": "markdown",
      "markdown": {"title": "CO预警", "text": "#### 一氧化碳中毒预警\n> 今晚4级，请开窗通风"}}


def ding_url(double: DingtalkRobotDouble, token: str, secret: str | None = DING_SECRET,
             ts_ms: int | None = None, quote: bool = True) -> str:
    url = double.webhook_url(token)
    if secret is None:
        return url
    ts = str(ts_ms if ts_ms is not None else round(time.time() * 1000))
    mac = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    sign = base64.b64encode(mac).decode()
    return f"{url}&timestamp={ts}&sign={urllib.parse.quote_plus(sign) if quote else sign}"


def feishu_body(text: str = "一氧化碳中毒预警", secret: str = FEISHU_SECRET,
                ts: int | None = None) -> dict:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return {"timestamp": str(ts), "sign": base64.b64encode(mac).decode(),
            "msg_type": "text", "content": {"text": text}}


@pytest.fixture
def wecom():
    with WecomRobotDouble(["k1"]) as double:
        yield double
    assert double.internal_errors == []


@pytest.fixture
def ding():
    robots = [Robot("signed", secret=DING_SECRET), Robot("kw", keywords=("预警",))]
    with DingtalkRobotDouble(robots) as double:
        yield double
    assert double.internal_errors == []


@pytest.fixture
def feishu():
    robots = [Robot("signed", secret=FEISHU_SECRET), Robot("kw", keywords=("预警",))]
    with FeishuRobotDouble(robots) as double:
        yield double
    assert double.internal_errors == []


# -- WeCom --------------------------------------------------------------------------------
def test_wecom_markdown_accepted_and_recorded(wecom):
    r = requests.post(wecom.webhook_url("k1"), json={"msgtype": "markdown",
                                                    "markdown": {"content": "**4级** 请开窗"}})
    assert (r.status_code, r.json()) == (200, {"errcode": 0, "errmsg": "ok"})
    [msg] = wecom.messages
    assert (msg.robot, msg.msgtype, msg.text) == ("k1", "markdown", "**4级** 请开窗")
    assert msg.received_at.tzinfo is timezone.utc


def test_wecom_unknown_key_is_http_200_with_93000(wecom):
    r = requests.post(wecom.webhook_url("nope"), json={"msgtype": "text", "text": {"content": "x"}})
    assert r.status_code == 200 and r.json()["errcode"] == 93000
    assert r.json()["errmsg"].startswith("invalid webhook url, hint: [")


def test_wecom_markdown_limit_is_4096_bytes(wecom):
    ok = requests.post(wecom.webhook_url(), json={"msgtype": "markdown",
                                                 "markdown": {"content": "a" + "煤" * 1365}})
    assert ok.json()["errcode"] == 0  # 1 + 3*1365 = 4096 bytes
    r = requests.post(wecom.webhook_url(), json={"msgtype": "markdown",
                                                "markdown": {"content": "ab" + "煤" * 1365}})
    assert r.json()["errcode"] == 40058
    assert r.json()["errmsg"].startswith("markdown.content exceed max length 4096.")


def test_wecom_image_md5_and_size(wecom):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    image = {"base64": base64.b64encode(png).decode(), "md5": hashlib.md5(png).hexdigest()}

    def send(img: dict) -> int:
        r = requests.post(wecom.webhook_url(), json={"msgtype": "image", "image": img})
        return r.json()["errcode"]

    assert send(image) == 0
    wrong = {**image, "md5": hashlib.md5(base64.b64encode(png)).hexdigest()}  # md5 of the base64
    r = requests.post(wecom.webhook_url(), json={"msgtype": "image", "image": wrong})
    assert r.json()["errcode"] == 301019 and "media md5 not match" in r.json()["errmsg"]
    big = b"\xff\xd8\xff" + b"\0" * (2 * 1024 * 1024)
    huge = {"base64": base64.b64encode(big).decode(), "md5": hashlib.md5(big).hexdigest()}
    assert send(huge) == 40009
    assert len(wecom.messages) == 1


def test_wecom_rate_limit_20_a_minute_then_window_frees(wecom):
    body = {"msgtype": "text", "text": {"content": "预警"}}
    codes = [requests.post(wecom.webhook_url(), json=body).json()["errcode"] for _ in range(21)]
    assert codes == [0] * 20 + [45009]
    wecom.advance(60)
    assert requests.post(wecom.webhook_url(), json=body).json()["errcode"] == 0
    assert wecom.max_per_window("k1") == 20 and len(wecom.rejected(45009)) == 1


def test_wecom_scripted_rate_limit_and_http_fault():
    with WecomRobotDouble(["k1"], faults=FaultPlan(script=[502])) as wecom:
        body = {"msgtype": "text", "text": {"content": "预警"}}
        assert requests.post(wecom.webhook_url(), json=body).status_code == 502
        wecom.rate_limit_next(2)
        codes = [requests.post(wecom.webhook_url(), json=body).json()["errcode"] for _ in range(3)]
        assert codes == [45009, 45009, 0]


# -- DingTalk -----------------------------------------------------------------------------
def test_dingtalk_signed_markdown_accepted(ding):
    r = requests.post(ding_url(ding, "signed"), json=MD)
    assert (r.status_code, r.json()) == (200, {"errcode": 0, "errmsg": "ok"})
    assert ding.messages[0].msgtype == "markdown" and "一氧化碳" in ding.messages[0].text


def test_dingtalk_bad_signatures_get_310000(ding):
    r = requests.post(ding_url(ding, "signed", secret="SECwrong"), json=MD)
    assert r.json() == {"errcode": 310000, "errmsg": "sign not match"}
    # A sign with '+' sent without quote_plus decodes to ' ' on the server: mismatch.
    ts = round(time.time() * 1000)
    def raw_sign(ts: int) -> str:
        msg = f"{ts}\n{DING_SECRET}".encode()
        mac = hmac.new(DING_SECRET.encode(), msg, hashlib.sha256).digest()
        return base64.b64encode(mac).decode()

    while "+" not in raw_sign(ts):
        ts += 1
    raw = requests.post(ding_url(ding, "signed", ts_ms=ts, quote=False), json=MD)
    assert raw.json()["errmsg"] == "sign not match"
    two_hours_ago = round(time.time() * 1000) - 3_700_000
    stale = requests.post(ding_url(ding, "signed", ts_ms=two_hours_ago), json=MD)
    assert stale.json() == {"errcode": 310000, "errmsg": "invalid timestamp"}
    unsigned = requests.post(ding.webhook_url("signed"), json=MD)
    assert unsigned.json()["errmsg"] == "invalid timestamp"
    assert ding.messages == []


def test_dingtalk_keywords_token_and_shape(ding):
    no_kw = {"msgtype": "text", "text": {"content": "今晚开窗"}}
    assert requests.post(ding_url(ding, "kw", None), json=no_kw).json() == {
        "errcode": 310000, "errmsg": "keywords not in content"}
    assert requests.post(ding_url(ding, "kw", None), json=MD).json()["errcode"] == 0
    assert requests.post(ding_url(ding, "nope", None), json=MD).json()["errcode"] == 300001
    no_title = {"msgtype": "markdown", "markdown": {"text": "预警"}}
    assert requests.post(ding_url(ding, "kw", None), json=no_title).json()["errcode"] == 40035


def test_dingtalk_rate_limit_blocks_for_ten_minutes(ding):
    codes = [requests.post(ding_url(ding, "kw", None), json=MD).json() for _ in range(21)]
    assert [c["errcode"] for c in codes] == [0] * 20 + [130101]
    assert codes[-1]["errmsg"] == "send too fast, exceed 20 times per minute"
    ding.advance(61)  # the minute has passed, but the 10-minute block has not
    assert requests.post(ding_url(ding, "kw", None), json=MD).json()["errcode"] == 130101
    ding.advance(600)
    assert requests.post(ding_url(ding, "kw", None), json=MD).json()["errcode"] == 0
    # The wall clock moves too: an hour on, a signature stamped now is out of range.
    ding.advance(3600)
    assert requests.post(ding_url(ding, "signed"), json=MD).json()["errmsg"] == "invalid timestamp"


# -- Feishu -------------------------------------------------------------------------------
def test_feishu_signed_text_accepted(feishu):
    r = requests.post(feishu.webhook_url("signed"), json=feishu_body())
    assert r.status_code == 200 and r.json()["code"] == 0 and r.json()["StatusCode"] == 0
    assert feishu.messages[0].msgtype == "text" and feishu.messages[0].text == "一氧化碳中毒预警"


def test_feishu_bad_signatures_get_19021(feishu):
    expected = {"code": 19021, "data": {},
                "msg": "sign match fail or timestamp is not within one hour from current time"}
    wrong = feishu_body(secret="other")
    assert requests.post(feishu.webhook_url("signed"), json=wrong).json() == expected
    millis = feishu_body(ts=int(time.time() * 1000))  # DingTalk habit: ms instead of s
    assert requests.post(feishu.webhook_url("signed"), json=millis).json() == expected
    unsigned = {"msg_type": "text", "content": {"text": "x"}}
    assert requests.post(feishu.webhook_url("signed"), json=unsigned).json() == expected


def test_feishu_token_keyword_and_shape(feishu):
    assert requests.post(feishu.webhook_url("nope"), json=feishu_body()).json()["code"] == 19001
    kw_missing = {"msg_type": "text", "content": {"text": "开窗"}}
    assert requests.post(feishu.webhook_url("kw"), json=kw_missing).json()["code"] == 19024
    no_type = {"content": {"text": "预警"}}
    assert requests.post(feishu.webhook_url("kw"), json=no_type).json()["code"] == 19002
    title = {"tag": "plain_text", "content": "预警"}
    card = {"msg_type": "interactive", "card": {"header": {"title": title}}}
    assert requests.post(feishu.webhook_url("kw"), json=card).json()["code"] == 0
    assert requests.get(feishu.webhook_url("kw")).json()["code"] == 19002


def test_feishu_per_second_and_scripted_limits(feishu):
    body = {"msg_type": "text", "content": {"text": "预警"}}
    codes = [requests.post(feishu.webhook_url("kw"), json=body).json()["code"] for _ in range(6)]
    assert codes == [0] * 5 + [11232]
    feishu.advance(1.5)
    feishu.rate_limit_next(1, robot="kw")
    codes = [requests.post(feishu.webhook_url("kw"), json=body).json()["code"] for _ in range(2)]
    assert codes == [11232, 0]


# -- http display -------------------------------------------------------------------------
TZ8 = timezone(timedelta(hours=8))


def show_body(delivery_id: str = "d1", until: str = "2026-12-13T08:00:00+08:00") -> dict:
    return {"delivery_id": delivery_id, "text": "今晚一氧化碳中毒4级，请开窗通风", "level": 4,
            "color": "#EF6C00", "from": "2026-12-12T18:00:00+08:00", "until": until,
            "image_url": "http://127.0.0.1:9/public/poster.png"}


def display_call(d: HttpDisplayDouble, method: str, key: str, body: dict | None = None,
                 token: str = "led-token") -> requests.Response:
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    return requests.request(method, d.show_url, json=body, headers=headers)


def test_display_show_is_idempotent_and_withdraw_works():
    with HttpDisplayDouble() as d:
        assert display_call(d, "POST", "d1", show_body()).status_code == 200
        again = display_call(d, "POST", "d1", show_body())
        assert again.status_code == 200 and again.json()["duplicate"] is True
        shown = d.current()
        assert shown is not None and (shown.level, shown.color) == (4, "#EF6C00")
        assert d.on_screen(datetime(2026, 12, 13, 7, 59, tzinfo=TZ8)).keys() == {"d1"}
        assert d.on_screen(datetime(2026, 12, 13, 8, 0, tzinfo=TZ8)) == {}
        assert display_call(d, "DELETE", "d1").status_code == 200
        assert display_call(d, "DELETE", "d1").status_code == 404
        late = display_call(d, "POST", "d1", show_body())  # a retry after the withdraw
        assert late.status_code == 200 and d.on_screen() == {}
        assert d.history == [("show", "d1"), ("withdraw", "d1")] and len(d.duplicates()) == 2
        assert d.internal_errors == []


def test_display_rejects_bad_requests():
    with HttpDisplayDouble() as d:
        assert display_call(d, "POST", "d1", show_body(), token="wrong").status_code == 401
        assert display_call(d, "POST", "d2", show_body()).status_code == 400  # key != delivery_id
        for field, value in [("color", "orange"), ("until", "2026-12-13T08:00:00"),
                             ("level", 6), ("text", "")]:
            assert display_call(d, "POST", "d1", {**show_body(), field: value}).status_code == 400
        body = show_body()
        del body["image_url"]
        r = display_call(d, "POST", "d1", body)
        assert r.status_code == 400 and "image_url" in r.json()["error"]
        assert d.on_screen() == {}


def test_display_scripted_failures_per_key():
    plan = FaultPlan(retry_after_s=2, scripts={"d1": [429, 503, 400]})
    with HttpDisplayDouble(faults=plan) as d:
        first = display_call(d, "POST", "d1", show_body())
        assert (first.status_code, first.headers["Retry-After"]) == (429, "2")
        statuses = [display_call(d, "POST", "d1", show_body()).status_code for _ in range(3)]
        assert statuses == [503, 400, 200] and list(d.on_screen()) == ["d1"]


# -- Xixun RealtimeServer -----------------------------------------------------------------
def xixun_text_task(text: str) -> dict:
    source = {"id": "", "name": "SingleText", "_type": "SingleLineText", "lineHeight": 1.4,
              "speed": 20, "html": f"<span style='color:#EF6C00;font-size:25px'>{text}</span>",
              "playTime": 0, "timeSpan": 10, "left": 0, "top": 0, "width": 128, "height": 256}
    program = {"id": "p1", "totalSize": 0, "name": "co", "width": 128, "height": 256,
               "layers": [{"repeat": False, "sources": [source]}]}
    schedule = {"dateType": "All", "timeType": "Range", "startTime": "18:00", "endTime": "23:59",
                "filterType": "None"}
    item = {"_id": "i1", "_program": program, "repeatTimes": 1, "schedules": [schedule]}
    return {"type": "commandXixunPlayer", "_id": "c1", "command": {
        "_type": "PlayXixunTask", "id": "t1", "preDownloadURL": "", "notificationURL": "",
        "task": {"_id": "t1", "name": "CO预警", "insert": False, "items": [item]}}}


def test_xixun_play_clear_offline_and_errors():
    with XixunRealtimeDouble(cards=("y10-c14-00140",), auth="s3cret") as x:
        url, headers = x.command_url("y10-c14-00140"), {"authorization": "s3cret"}
        assert requests.post(url, json=xixun_text_task("一氧化碳中毒4级")).status_code == 401
        r = requests.post(url, json=xixun_text_task("一氧化碳中毒4级"), headers=headers)
        assert r.status_code == 200 and r.json()["_type"] == "success" and r.json()["_id"] == "c1"
        assert x.screens["y10-c14-00140"].texts == ["一氧化碳中毒4级"]
        playing = requests.post(url, json={"type": "getPlayingProgram"}, headers=headers).json()
        assert playing["name"] == "CO预警"
        x.fail_next("y10-c14-00140", "player_error", "no space")
        r = requests.post(url, json=xixun_text_task("x"), headers=headers)
        assert r.status_code == 200 and r.json()["_type"] == "Error"  # 200, yet not played
        clear = {"type": "clearPlayerTask"}
        assert requests.post(url, json=clear, headers=headers).status_code == 200
        assert x.screens["y10-c14-00140"] is None
        off = requests.post(x.command_url("y10-c14-99999"), json=clear, headers=headers)
        assert (off.status_code, off.text) == (500, "y10-c14-99999 does not exist!")
        assert x.internal_errors == []


# -- CAP 1.2 ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cap_schema():
    etree = pytest.importorskip("lxml.etree")
    return etree, etree.XMLSchema(etree.parse(str(CAP_DIR / "CAP-v1.2.xsd")))


def test_cap_sample_feed_validates(cap_schema):
    etree, schema = cap_schema
    feed = etree.parse(str(CAP_DIR / "sample-province.xml"))
    alerts = feed.findall(f".//{{{CAP_NS}}}alert")
    assert len(alerts) == 2
    for alert in alerts:
        assert schema.validate(etree.ElementTree(copy.deepcopy(alert))), schema.error_log
    events = [e.text for e in feed.iterfind(f".//{{{CAP_NS}}}info/{{{CAP_NS}}}event")]
    assert events == ["一氧化碳中毒气象条件", "gale", "大风"]
    atom = "{http://www.w3.org/2005/Atom}"
    links = feed.findall(f"{atom}entry/{atom}link[@rel='alternate']")
    assert {link.get("type") for link in links} == {"application/cap+xml"}


def test_cap_schema_rejects_alert_without_identifier(cap_schema):
    etree, schema = cap_schema
    feed = etree.parse(str(CAP_DIR / "sample-province.xml"))
    alert = copy.deepcopy(feed.find(f".//{{{CAP_NS}}}alert"))
    alert.remove(alert.find(f"{{{CAP_NS}}}identifier"))
    assert not schema.validate(etree.ElementTree(alert))
    assert "identifier" in str(schema.error_log.last_error)
