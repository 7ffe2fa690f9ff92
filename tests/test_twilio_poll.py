"""A poll through the `twilio` provider against the loopback Twilio double (real sockets)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.ledger import Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import Clock
from tests.conftest import edit_yaml
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble

# The service runs on the wall clock here: .ci/run repeats these at four hours of the town's day.
pytestmark = pytest.mark.clock

SID = "AC" + "1" * 32
TOKEN = "twilio-secret-token"
CADRES = ["+8613800138000", "+8613900139001", "+8615000150002"]


def use_twilio(confdir: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["sms"].update(
        provider="twilio", rate_per_s=200,
        twilio={"account_sid": "${TWILIO_ACCOUNT_SID}", "auth_token": "${TWILIO_AUTH_TOKEN}",
                "from": "+15005550006", "base_url": url, "timeout_s": 5}))


def poll_and_settle(confdir: Path, clock: Clock, timeout: float = 20):  # type: ignore[no-untyped-def]
    """Poll, then keep dispatching (on the wall clock: retries wait in real time) until this
    alert's SMS are final."""
    svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
    try:
        report = svc.poll()
        if report.created:
            deadline = time.monotonic() + timeout
            while svc.ledger.reads.open_count([report.alert_id], "sms") and time.monotonic() < deadline:
                svc.dispatcher.drain([report.alert_id], timeout=5)
                time.sleep(0.05)
        with svc.ledger.reader() as s:
            rows = {d.target: d for d in s.query(Delivery).filter(Delivery.channel == "sms")}
        return report, rows
    finally:
        svc.close()


@pytest.fixture
def clock() -> Clock:
    # The wall clock (the session's, under BROADCASTER_TEST_AT): retries wait in real time, and a
    # Retry-After is measured on the same clock the double's arrival times are.
    return Clock()


def test_one_post_per_recipient_then_nothing_then_escalation(confdir: Path, clock: Clock,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(season={"start": "01-01", "end": "12-31"}))
    with TwilioDouble(account_sid=SID, auth_token=TOKEN) as tw:
        use_twilio(confdir, tw.url, monkeypatch)
        report, rows = poll_and_settle(confdir, clock)
        assert report.created and report.level == 4
        creates = [r for r in tw.requests if r.is_create]
        assert sorted(r.to for r in creates) == sorted(CADRES)
        assert all(r.path == f"/2010-04-01/Accounts/{SID}/Messages.json" for r in creates)
        assert all(r.auth_user == SID and r.from_ == "+15005550006" for r in creates)
        body = creates[0].body
        assert body and body.startswith("【XX镇文化站】") and "4级（容易发生）" in body
        assert {d.state for d in rows.values()} == {"sent"}
        assert all(d.provider_id and d.provider_id.startswith("SM") for d in rows.values())

        # A second poll for the same night sends nothing.
        report2, _ = poll_and_settle(confdir, clock)
        assert not report2.created and len([r for r in tw.requests if r.is_create]) == 3

        # A higher level later sends that alert once (cadres, vulnerable and duty).
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d["feed"].update(level=5))
        report3, _ = poll_and_settle(confdir, clock)
        report4, _ = poll_and_settle(confdir, clock)
        assert report3.created and not report4.created
        fives = [r for r in tw.requests if r.is_create and "5级" in (r.body or "")]
        assert len(fives) == 6 and len({r.to for r in fives}) == 6


def test_basic_auth_header_is_the_account(confdir: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The double checks Basic auth; a wrong token is a permanent 401 (20003) for every message."""
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(season={"start": "01-01", "end": "12-31"}))
    with TwilioDouble(account_sid=SID, auth_token="another-token") as tw:
        use_twilio(confdir, tw.url, monkeypatch)
        _, rows = poll_and_settle(confdir, clock)
        assert {d.state for d in rows.values()} == {"failed"}
        assert all("20003" in (d.last_error or "") for d in rows.values())
        assert tw.accepted() == []
    assert base64.b64encode(f"{SID}:{TOKEN}".encode())  # the form the SDK sends


def test_21211_fails_one_and_429_is_retried(confdir: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d["schedule"].update(season={"start": "01-01", "end": "12-31"}))
    faults = FaultPlan(retry_after_s=1, scripts={"+8615000150002": [429]})
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=faults, errors={"+8613900139001": 21211}) as tw:
        use_twilio(confdir, tw.url, monkeypatch)
        _, rows = poll_and_settle(confdir, clock)
        assert rows["+8613900139001"].state == "failed" and "21211" in (rows["+8613900139001"].last_error or "")
        assert rows["+8613900139001"].attempts == 1  # permanent: never retried
        assert rows["+8613800138000"].state == "sent"
        assert rows["+8615000150002"].state == "sent" and rows["+8615000150002"].attempts == 2
        tries = [r for r in tw.requests if r.is_create and r.to == "+8615000150002"]
        assert [t.status for t in tries] == [429, 201]
        assert tries[1].arrived - tries[0].arrived >= 1.0  # honoured Retry-After
        assert tw.accepted_by_to() == {"+8613800138000": 1, "+8615000150002": 1}
