"""DESIGN A8: logs never contain tokens, auth secrets or full phone numbers.

A whole manual broadcast (create, approve, send through the twilio provider to the loopback
double, delivery receipt, failed sign-ins) runs with every logger at DEBUG, including the
SDK's and urllib3's; everything logged, as the masking filter of ``setup_logging`` leaves it,
is searched for secrets.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from broadcaster.config import load_config
from broadcaster.logutil import MaskingFilter, setup_logging
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from broadcaster.web.app import create_app
from broadcaster.web.auth import create_token
from tests.conftest import edit_yaml, local
from tests.doubles.twilio import TwilioDouble

SID = "AC" + "1f" * 16
AUTH = "zq8Xv3-twilio-auth-secret-7Hk2"
NOW = local(2026, 11, 28, 14, 0)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield caplog
    root.handlers[:], root.level = saved
    for name in ("twilio.http_client", "urllib3", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)


def install_logging(caplog: pytest.LogCaptureFixture) -> None:
    """The production handler (masking filter, stderr) plus caplog, everything at DEBUG.

    Called in the test body: capsys only replaces ``sys.stderr`` during the call phase.
    """
    setup_logging(logging.DEBUG)
    for name in ("twilio.http_client", "urllib3", "httpx", "broadcaster"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.handler.addFilter(MaskingFilter())
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the root handlers


def test_full_broadcast_logs_no_secret(confdir: Path, logs: pytest.LogCaptureFixture,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    install_logging(logs)
    with TwilioDouble(SID, AUTH) as tw:
        def edit(d: dict) -> None:
            d["sms"] = {"provider": "twilio", "rate_per_s": 50,
                        "twilio": {"account_sid": SID, "auth_token": AUTH, "from": "+15005550006",
                                   "base_url": tw.url, "status_callback": True}}
            d["http"]["public_url"] = "https://bc.example.org"
        edit_yaml(confdir / "broadcaster.yaml", edit)
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
        try:
            alice = create_token(svc.ledger, "alice", "operator", NOW)
            carol = create_token(svc.ledger, "carol", "approver", NOW)
            client = TestClient(create_app(svc))
            bogus = "Wrong-Token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            assert client.get("/api/v1/status", headers={"Authorization": f"Bearer {bogus}"}).status_code == 401
            r = client.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {alice}"},
                            json={"text": "今晚注意防煤气中毒", "villages": ["dongcun"],
                                  "sms_groups": ["cadres", "vulnerable", "duty"]})
            bid = r.json()["id"]
            assert client.post(f"/api/v1/broadcasts/{bid}/approve",
                               headers={"Authorization": f"Bearer {carol}"}).status_code == 200
            svc.dispatcher.drain([bid])
            sms = tw.messages()
            assert len(sms) == 6
            for i, m in enumerate(sms):
                _url, params, headers = tw.status_callback(m["sid"], "undelivered" if i == 0 else "delivered",
                                                           error_code=30005 if i == 0 else None)
                assert client.post("/api/v1/twilio/status", data=params, headers=headers).status_code == 200
            _url, params, headers = tw.status_callback(sms[1]["sid"], "sent", bad_signature=True)
            assert client.post("/api/v1/twilio/status", data=params, headers=headers).status_code == 403
        finally:
            svc.close()
    text = "\n".join(r.getMessage() for r in logs.records) + "\n" + capsys.readouterr().err
    assert "delivery" in text and "receipt" in text  # the flow was actually logged
    secrets = [alice, carol, bogus, AUTH, base64.b64encode(f"{SID}:{AUTH}".encode()).decode()]
    for c in svc.cfg.directory.contacts:
        secrets += [c.phone, c.phone[1:], c.phone[3:]]  # +8613800138000, 8613800138000, 13800138000
    assert "Logging error" not in text
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"secrets in logs: {leaked}"
