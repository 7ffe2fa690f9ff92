"""The loopback doubles speak their real wire formats (checked with the real clients)."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import time
from datetime import date, datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.doubles import FaultPlan, FeedServer, SpeakerReceiver, TwilioDouble, num_segments

SID = "AC" + "a" * 32
TOKEN = "test_auth_token"
FROM = "+15017122661"
TO = "+8613800138000"
BAD_TO = "+8613800138001"


@pytest.fixture
def twilio():
    with TwilioDouble(SID, TOKEN, errors={BAD_TO: 21211, "+8613800138002": 21610}) as double:
        yield double
    assert double.internal_errors == []


def sdk(double: TwilioDouble, user: str = SID, secret: str = TOKEN, **kw) -> Client:
    """A real twilio Client pointed at the double (see sms-providers.md §1.7)."""
    client = Client(user, secret, **kw)
    client.api.base_url = double.url
    client.edge = client.region = None
    return client


def create_url(double: TwilioDouble) -> str:
    return f"{double.url}/2010-04-01/Accounts/{SID}/Messages.json"


# -- Twilio ------------------------------------------------------------------------------
def test_sdk_create_parses_201(twilio):
    msg = sdk(twilio).messages.create(to=TO, from_=FROM, body="今晚有煤气中毒风险，请开窗通风。",
                                      status_callback="https://example.com/cb")
    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert (msg.status, msg.to, msg.from_, msg.num_segments) == ("queued", TO, FROM, "1")
    assert msg.date_created.tzinfo is not None and msg.error_code is None
    mg = "MG" + "1" * 32
    via_service = sdk(twilio).messages.create(to=TO, messaging_service_sid=mg, body="hi")
    assert (via_service.status, via_service.num_segments) == ("accepted", "0")
    [rec, _] = twilio.accepted()
    assert (rec.to, rec.from_, rec.auth_user, rec.status, rec.sid) == (TO, FROM, SID, 201, msg.sid)
    assert twilio.accepted_by_to() == {TO: 2} and twilio.messages_by_to() == {TO: 2}


def test_permanent_errors_raise_with_twilio_codes(twilio):
    client = sdk(twilio)
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to=BAD_TO, from_=FROM, body="x")
    assert (exc.value.status, exc.value.code) == (400, 21211)
    assert f"The 'To' number {BAD_TO} is not a valid phone number." in exc.value.msg
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="+8613800138002", from_=FROM, body="x")
    assert exc.value.code == 21610
    with pytest.raises(TwilioRestException) as exc:
        client.messages.create(to="13800138000", from_=FROM, body="x")  # not E.164
    assert exc.value.code == 21211
    body = requests.post(create_url(twilio), data={"To": TO, "Body": "x"}, auth=(SID, TOKEN)).json()
    assert body["code"] == 21603 and body["more_info"].endswith("/21603") and body["status"] == 400
    assert twilio.accepted() == []
    assert [r.error_code for r in twilio.requests] == [21211, 21610, 21211, 21603]


def test_auth(twilio):
    with pytest.raises(TwilioRestException) as exc:
        sdk(twilio, secret="wrong").messages.create(to=TO, from_=FROM, body="x")
    assert (exc.value.status, exc.value.code) == (401, 20003)
    twilio.api_keys["SK" + "c" * 32] = "key-secret"
    client = sdk(twilio, "SK" + "c" * 32, "key-secret", account_sid=SID)
    msg = client.messages.create(to=TO, from_=FROM, body="x")
    assert msg.account_sid == SID and twilio.accepted()[0].auth_user == "SK" + "c" * 32


def test_429_carries_retry_after_and_violations_are_found():
    with TwilioDouble(SID, TOKEN, FaultPlan(script=[429, 429], retry_after_s=2)) as double:
        with pytest.raises(TwilioRestException) as exc:
            sdk(double).messages.create(to=TO, from_=FROM, body="x")
        assert (exc.value.status, exc.value.code) == (429, 20429)
        form = {"To": TO, "From": FROM, "Body": "x"}
        resp = requests.post(create_url(double), data=form, auth=(SID, TOKEN))
        assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
        assert resp.json() == {"code": 20429, "message": "Too Many Requests", "status": 429,
                               "more_info": "https://www.twilio.com/docs/errors/20429"}
        sdk(double).messages.create(to=TO, from_=FROM, body="x")  # retried at once: too early
        first, second, third = double.requests
        assert (first.fault, first.retry_after, third.status) == ("429", 2.0, 201)
        assert double.retry_after_violations() == [(first, second), (second, third)]


def test_list_and_fetch_find_accepted_messages(twilio):
    client = sdk(twilio)
    sids = [client.messages.create(to=TO, from_=FROM, body=f"m{i}").sid for i in range(3)]
    client.messages.create(to="+8613900139000", from_=FROM, body="other")
    today = datetime.now(timezone.utc).date()
    found = client.messages.list(to=TO, date_sent_after=today)
    assert [m.sid for m in found] == sids[::-1]  # newest first, like Twilio
    # The SDK turns a date into midnight "Z" (serialize.iso8601_datetime), key "DateSent>".
    midnight = f"{today.isoformat()}T00:00:00Z"
    assert twilio.requests[-1].query == {"To": [TO], "DateSent>": [midnight]}
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)  # the SDK sends ...T..:..:..Z
    assert len(client.messages.list(to=TO, date_sent_after=hour_ago, page_size=2)) == 3  # 2 pages
    assert client.messages.list(to=TO, date_sent_after=today + timedelta(days=1)) == []
    assert len(client.messages.list(date_sent_before=date(2000, 1, 1))) == 0
    page = requests.get(create_url(twilio), params={"To": TO, "PageSize": 2}, auth=(SID, TOKEN))
    assert page.json()["page_size"] == 2
    assert page.json()["next_page_uri"].startswith(f"/2010-04-01/Accounts/{SID}/Messages.json?")
    assert client.messages(sids[0]).fetch().body == "m0"
    with pytest.raises(TwilioRestException) as exc:
        client.messages("SM" + "0" * 32).fetch()
    assert exc.value.status == 404


def test_status_callback_signature_validates(twilio):
    with FeedServer() as receiver:
        receiver.set("/twilio/status", b"", status=200)
        url = receiver.url_for("/twilio/status?tenant=1")
        msg = sdk(twilio).messages.create(to=TO, from_=FROM, body="x", status_callback=url)
        assert twilio.send_status_callback(msg.sid, "delivered").status_code == 200
        twilio.send_status_callback(msg.sid, "undelivered", error_code=30003, bad_signature=True)
        good, bad = receiver.requests
    validator = RequestValidator(TOKEN)
    form = {k: v[0] for k, v in _form(good.body).items()}
    assert form["MessageStatus"] == form["SmsStatus"] == "delivered"
    assert form["MessageSid"] == form["SmsSid"] == msg.sid
    assert form["To"] == TO and len(form["RawDlrDoneDate"]) == 10 and "ErrorCode" not in form
    assert validator.validate(url, form, good.headers["x-twilio-signature"])
    bad_form = {k: v[0] for k, v in _form(bad.body).items()}
    assert bad_form["ErrorCode"] == "30003"
    assert not validator.validate(url, bad_form, bad.headers["x-twilio-signature"])
    assert sdk(twilio).messages(msg.sid).fetch().status == "undelivered"


def test_known_signature_vector():
    # sms-providers.md §1.6 known-answer vector, through the double's own signing path.
    with TwilioDouble("AC" + "a" * 32, "test_auth_token") as double:
        msg = sdk(double).messages.create(to=TO, from_=FROM, body="x")
        url, params, headers = double.status_callback(
            msg.sid, "delivered", "https://example.com/sms/status?tenant=1",
            raw_dlr_done_date="2311281920")
    validator = RequestValidator("test_auth_token")
    assert validator.validate(url, params, headers["X-Twilio-Signature"])
    params.update(MessageSid="SM" + "b" * 32, SmsSid="SM" + "b" * 32)
    assert validator.compute_signature(url, params) == "wavNL76VZutfd6bVtyTssski+LY="


def test_faults_500_reset_lost_answer_and_timeout():
    plan = FaultPlan(script=[500, "reset", "reset_after", "timeout"], timeout_s=0.6)
    with TwilioDouble(SID, TOKEN, plan) as double:
        def post() -> requests.Response:
            form = {"To": TO, "From": FROM, "Body": "x"}
            return requests.post(create_url(double), data=form, auth=(SID, TOKEN), timeout=0.3)

        assert post().json()["code"] == 20500
        with pytest.raises(requests.ConnectionError):
            post()
        with pytest.raises(requests.ConnectionError):
            post()  # processed, then reset: the message exists
        with pytest.raises(requests.ReadTimeout):
            post()  # processed, answer too late
        assert post().status_code == 201
        time.sleep(0.1)
        faults = [(r.fault, r.status, r.sid is not None) for r in double.requests]
    assert faults == [("500", 500, False), ("reset", None, False), ("reset_after", None, True),
                      ("timeout", None, True), (None, 201, True)]
    assert len(double.accepted()) == 1 and double.messages_by_to() == {TO: 3}


@pytest.mark.parametrize(("body", "segments"), [
    ("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3),
    ("{" * 80, 1), ("{" * 81, 2),
    ("a" * 152 + "€" + "a" * 152, 3),  # 306 septets, but the € escape pair cannot straddle
    ("煤" * 70, 1), ("煤" * 71, 2), ("煤" * 134, 2), ("煤" * 135, 3), ("😀" * 35, 1), ("😀" * 36, 2),
])
def test_num_segments(body, segments):
    assert num_segments(body) == segments


def test_fault_plan_is_seeded_and_validated():
    def draws() -> list[str | None]:
        plan = FaultPlan(p429=.3, p500=.2, seed=7)
        return [(f.label if f else None) for f in (plan.decide() for _ in range(50))]

    assert draws() == draws() and {"429", "500", None} <= set(draws())
    keyed = FaultPlan(script=[503], scripts={TO: [500, "ok"]})
    got = [keyed.decide(TO), keyed.decide("+86"), keyed.decide(TO), keyed.decide(TO)]
    assert [f.label if f else None for f in got] == ["500", "503", None, None]
    with pytest.raises(ValueError):
        FaultPlan(p429=.6, p500=.6)
    with pytest.raises(ValueError):
        FaultPlan(script=["explode"])


# -- http speaker ------------------------------------------------------------------------
AUDIO = bytes(range(256)) * 40 + b"\r\n--boundary\r\n"


def play(receiver: SpeakerReceiver, delivery_id: str = "d-1", token: str = "tok",
         audio: bytes = AUDIO, sha: str | None = None) -> requests.Response:
    """Push the way broadcaster's ``http`` speaker channel does (DESIGN.md A7)."""
    meta = {"delivery_id": delivery_id, "village": "东村", "play_at": "2026-11-28T19:30:00+08:00",
            "expires_at": "2026-11-28T22:00:00+08:00", "repeat": 2,
            "sha256": sha or hashlib.sha256(audio).hexdigest()}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": delivery_id}
    files = {"audio": ("bulletin.mp3", audio, "audio/mpeg"),
             "meta": (None, json.dumps(meta, ensure_ascii=False), "application/json")}
    return requests.post(receiver.play_url, headers=headers, files=files, timeout=5)


def test_speaker_accepts_multipart_once_per_delivery():
    with SpeakerReceiver(token="tok") as receiver:
        assert play(receiver).status_code == 200
        second = play(receiver)
        assert second.status_code == 200 and second.json()["duplicate"] is True
        [stored] = receiver.plays
        assert (stored.audio, stored.filename) == (AUDIO, "bulletin.mp3")
        assert stored.content_type == "audio/mpeg"
        assert stored.sha256 == hashlib.sha256(AUDIO).hexdigest()
        assert (stored.delivery_id, stored.village, stored.repeat) == ("d-1", "东村", 2)
        assert receiver.plays_by_village() == {"东村": 1} and len(receiver.duplicates()) == 1
        assert receiver.internal_errors == []


def test_speaker_rejects_bad_token_sha_and_key():
    with SpeakerReceiver(token="tok") as receiver:
        assert play(receiver, token="nope").status_code == 401
        assert play(receiver, sha="0" * 64).status_code == 400
        auth = {"Authorization": "Bearer tok"}
        resp = requests.post(receiver.play_url, headers=auth, files={"audio": b"x"})
        assert resp.status_code == 400
        errors = [r.error for r in receiver.requests]
    assert receiver.plays == [] and errors[0].startswith("bad")
    assert errors[1].startswith("sha256 mismatch") and errors[2].startswith("missing part")


def test_speaker_scripted_statuses():
    with SpeakerReceiver(token="tok", script=[500, 429, 200]) as receiver:
        assert [play(receiver).status_code for _ in range(4)] == [500, 429, 200, 200]
        assert [r.fault for r in receiver.requests] == ["500", "429", None, None]
        assert len(receiver.plays) == 1 and len(receiver.duplicates()) == 1


# -- feeds -------------------------------------------------------------------------------
CANONICAL = {"issued_at": "2026-11-28T16:00:00+08:00", "source": "XX县气象台",
             "forecasts": [{"region": "XX镇", "valid_from": "2026-11-28T20:00:00+08:00",
                            "valid_to": "2026-11-29T08:00:00+08:00", "level": 4,
                            "advice": "夜间风小湿度大"}]}


def test_feed_serves_json_gzip_and_records():
    with FeedServer() as feed:
        feed.set("/co.json", CANONICAL)
        feed.set("/v7/warning/now", {"code": "200", "warning": []}, gzip=True)
        feed.set("/auto", "plain text", gzip="auto")
        resp = requests.get(feed.url_for("/co.json"))
        assert resp.json() == CANONICAL
        assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
        resp = requests.get(feed.url_for("/v7/warning/now?location=101010100&key=k"))
        assert resp.headers["Content-Encoding"] == "gzip" and resp.json()["code"] == "200"
        conn = http.client.HTTPConnection("127.0.0.1", feed.port)  # no Accept-Encoding at all
        conn.request("GET", "/auto")
        raw = conn.getresponse()
        assert raw.read() == b"plain text" and raw.getheader("Content-Encoding") is None
        conn.request("GET", "/auto", headers={"Accept-Encoding": "gzip"})
        assert gzip.decompress(conn.getresponse().read()) == b"plain text"
        conn.close()
        assert requests.get(feed.url_for("/missing")).status_code == 404
        recs = feed.requests
    assert recs[1].query == {"location": ["101010100"], "key": ["k"]}
    assert recs[1].accepts_gzip and recs[1].gzipped
    assert [r.accepts_gzip for r in recs[2:4]] == [False, True] and feed.hits("/auto") == 2


def test_feed_status_delay_faults_and_chunked_post():
    with FeedServer(FaultPlan(scripts={"/flaky": [503, "reset"]})) as feed:
        feed.set("/flaky", {"ok": True})
        feed.set("/slow", b"\x00\x01", status=202, headers={"X-Test": "1"}, delay_s=0.2)
        assert requests.get(feed.url_for("/flaky")).status_code == 503
        with pytest.raises(requests.ConnectionError):
            requests.get(feed.url_for("/flaky"))
        assert requests.get(feed.url_for("/flaky")).json() == {"ok": True}
        started = time.monotonic()
        resp = requests.get(feed.url_for("/slow"))
        assert time.monotonic() - started >= 0.2
        assert (resp.status_code, resp.content, resp.headers["X-Test"]) == (202, b"\x00\x01", "1")
        requests.post(feed.url_for("/flaky"), data=iter([b"chunk-1;", b"chunk-2"]))  # chunked body
        assert feed.requests[-1].body == b"chunk-1;chunk-2" and feed.requests[-1].method == "POST"


def test_stop_is_prompt_with_pending_answers():
    double = TwilioDouble(SID, TOKEN, FaultPlan(script=["timeout"], timeout_s=30)).start()
    with pytest.raises(requests.ReadTimeout):
        form = {"To": TO, "From": FROM, "Body": "x"}
        requests.post(create_url(double), data=form, auth=(SID, TOKEN), timeout=0.2)
    started = time.monotonic()
    double.stop()
    assert time.monotonic() - started < 2


def _form(body: bytes) -> dict[str, list[str]]:
    return parse_qs(body.decode())
