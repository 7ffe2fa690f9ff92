"""Twilio status callbacks: signature against http.public_url, forward-only states, unreachable numbers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from broadcaster.ledger import ContactFlag, Delivery
from tests.doubles.twilio import TwilioDouble
from tests.test_api import Api, make_api

PUBLIC = "https://broadcaster.example.org"
URL = PUBLIC + "/api/v1/twilio/status"
SID, TOKEN = "AC" + "0" * 32, "test_auth_token"
ZHANG = "+8613800138000"


def twilio_config(double: TwilioDouble):  # type: ignore[no-untyped-def]
    def edit(d: dict) -> None:
        d["sms"] = {"provider": "twilio", "rate_per_s": 50,
                    "twilio": {"account_sid": SID, "auth_token": TOKEN, "from": "+15005550006",
                               "base_url": double.url, "status_callback": True}}
        d["http"].update(public_url=PUBLIC, require_approval=False)
    return edit


@pytest.fixture
def twilio() -> Iterator[TwilioDouble]:
    with TwilioDouble(SID, TOKEN) as d:
        yield d


@pytest.fixture
def api(confdir: Path, twilio: TwilioDouble) -> Iterator[Api]:
    a = make_api(confdir, twilio_config(twilio))
    yield a
    a.svc.close()


def send_sms(api: Api) -> int:
    r = api.post("/api/v1/broadcasts", json={"text": "今晚注意防煤气中毒", "sms_groups": ["cadres"]})
    assert r.status_code == 201, r.text
    api.svc.dispatcher.drain([r.json()["id"]])
    return r.json()["id"]


def delivery(api: Api, phone: str = ZHANG) -> Delivery:
    with api.svc.ledger.reader() as s:
        return s.scalars(select(Delivery).where(Delivery.target == phone).order_by(Delivery.id.desc())).first()


def callback(api: Api, status: str, error: int | None = None, *, token: str = TOKEN, tamper: bool = False):  # type: ignore[no-untyped-def]
    d = delivery(api)
    params = {"AccountSid": SID, "ApiVersion": "2010-04-01", "MessageSid": d.provider_id, "SmsSid": d.provider_id,
              "MessageStatus": status, "SmsStatus": status, "To": ZHANG, "From": "+15005550006"}
    if error is not None:
        params["ErrorCode"] = str(error)
    sig = RequestValidator(token).compute_signature(URL, params)
    if tamper:
        params["MessageStatus"] = "failed"
    return api.client.post("/api/v1/twilio/status", data=params, headers={"X-Twilio-Signature": sig})


def test_sms_asks_for_callbacks_at_public_url(api: Api, twilio: TwilioDouble) -> None:
    send_sms(api)
    assert len(twilio.messages()) == 3
    assert delivery(api).state == "sent" and delivery(api).provider_id.startswith("SM")
    # The double signs for the StatusCallback URL the SMS was sent with: the public one.
    url, params, headers = twilio.status_callback(delivery(api).provider_id, "delivered")
    assert url == URL
    assert api.client.post("/api/v1/twilio/status", data=params, headers=headers).status_code == 200
    assert delivery(api).state == "delivered"


def test_valid_callback_moves_state_forward_only(api: Api) -> None:
    send_sms(api)
    assert callback(api, "delivered").status_code == 200
    assert delivery(api).state == "delivered" and delivery(api).delivered_at is not None
    assert callback(api, "sent").status_code == 200  # late, out of order
    assert delivery(api).state == "delivered"


def test_bad_signature_is_403_and_changes_nothing(api: Api) -> None:
    send_sms(api)
    assert callback(api, "delivered", tamper=True).status_code == 403
    assert callback(api, "delivered", token="wrong").status_code == 403
    r = api.client.post("/api/v1/twilio/status", data={"MessageSid": delivery(api).provider_id,
                                                       "MessageStatus": "delivered"})
    assert r.status_code == 403
    assert delivery(api).state == "sent"
    assert any(e.action == "receipt.bad_signature" for e in api.audit())


def test_undelivered_records_error(api: Api) -> None:
    send_sms(api)
    assert callback(api, "undelivered", 30003).status_code == 200
    d = delivery(api)
    assert d.state == "failed" and "30003" in (d.last_error or "")
    callback(api, "delivered")  # a failed delivery is final
    assert delivery(api).state == "failed"
    assert api.svc.unreachable() == {}


@pytest.mark.parametrize("code", [21610, 30005, 30006])
def test_unreachable_codes_flag_the_contact_and_next_alert_skips_it(api: Api, code: int) -> None:
    send_sms(api)
    assert callback(api, "failed" if code == 21610 else "undelivered", code).status_code == 200
    with api.svc.ledger.reader() as s:
        flag = s.get(ContactFlag, ZHANG)
    assert flag is not None and flag.unreachable and str(code) in flag.reason
    bid = send_sms(api)
    got = api.get(f"/api/v1/broadcasts/{bid}").json()
    assert got["deliveries"]["sms"] == {"sent": 2}
    assert len(got["held"]) == 1 and "张三" in got["held"][0] and str(code) in got["held"][0]
