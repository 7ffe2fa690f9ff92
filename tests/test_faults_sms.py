"""Under 429s (with Retry-After) and 500s every message goes through exactly once, never early."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.runtime.service import Service
from broadcaster.timeutil import Clock
from tests.conftest import edit_yaml
from tests.doubles.faults import FaultPlan
from tests.doubles.twilio import TwilioDouble
from tests.test_kill import SID, TOKEN, numbers

N = 200


@pytest.mark.timeout(120)
def test_429_and_500_storm(confdir: Path, ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    # Shorter backoff keeps the test quick; Retry-After (1 s) is still a floor the test checks.
    monkeypatch.setattr("broadcaster.net.BASE_S", 0.25)
    plan = FaultPlan(p429=0.3, retry_after_s=1, p500=0.1, seed=7, latency_ms=5)
    with TwilioDouble(account_sid=SID, auth_token=TOKEN, faults=plan) as tw:
        edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
            database=ledger_url,
            schedule={**d["schedule"], "season": {"start": "01-01", "end": "12-31"}},
            sms={"provider": "twilio", "rate_per_s": 500, "concurrency": 32,
                 "twilio": {"account_sid": SID, "auth_token": "${TWILIO_AUTH_TOKEN}", "from": "+15005550006",
                            "base_url": tw.url}}))
        edit_yaml(confdir / "directory.yaml", lambda d: d.update(
            contacts=[{"name": f"联系人{i}", "phone": p, "groups": ["cadres"]} for i, p in enumerate(numbers(N))]))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=Clock())
        try:
            report = svc.poll()
            assert report.created
            deadline = time.monotonic() + 90
            while svc.ledger.reads.open_count([report.alert_id], "sms") and time.monotonic() < deadline:
                svc.dispatcher.drain([report.alert_id], timeout=2)
                time.sleep(0.05)
            counts = svc.ledger.reads.counts([report.alert_id])["sms"]
        finally:
            svc.close()
        faults = [r for r in tw.requests if r.is_create and r.status in (429, 500)]
        assert len(faults) > N * 0.2  # the storm really happened
        assert counts == {"sent": N}
        by_to = tw.accepted_by_to()
        assert len(by_to) == N and set(by_to.values()) == {1}
        assert tw.retry_after_violations() == []
    assert datetime.now(timezone.utc)
