"""Crash safety with the Chinese providers: `broadcaster run` is SIGKILLed while a batch request
is at the provider (the provider has the numbers, its answer has not come back), then restarted.
The restarted service asks the provider's query API, records those as sent, sends the rest, and
no number gets the alert twice."""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import ROOT, edit_yaml
from tests.doubles.aliyun import AliyunSmsDouble
from tests.doubles.tencent import TencentSmsDouble
from tests.test_kill import free_port, numbers, sms_states, start, wait_ready
from tests.test_sms_cn import AK, ALI_TEMPLATES, APP, SID, SIGN, SK, SKEY, TC_TEMPLATES

N = 450  # Aliyun: one request of 450 numbers; Tencent: three of up to 200


def prepare(confdir: Path, provider: str, port: int, database: str) -> None:
    shutil.copy(ROOT / "config" / "rules-cn.yaml", confdir / "rules-cn.yaml")
    section = ({"access_key_id": AK, "access_key_secret": SK, "sign_name": SIGN}
               if provider == "aliyun" else
               {"secret_id": SID, "secret_key": SKEY, "sdk_app_id": APP, "sign_name": SIGN})
    section.update(endpoint=f"127.0.0.1:{port}", protocol="http", timeout_s=20)
    listen = free_port()
    edit_yaml(confdir / "broadcaster.yaml", lambda d: d.update(
        database=database, rules="rules-cn.yaml",
        schedule={**d["schedule"], "season": {"start": "01-01", "end": "12-31"}},
        sms={"provider": provider, "rate_per_s": 50, provider: section},
        http={"listen": f"127.0.0.1:{listen}", "public_url": f"http://127.0.0.1:{listen}"}))
    edit_yaml(confdir / "directory.yaml", lambda d: d.update(
        contacts=[{"name": f"干部{i}", "phone": p, "groups": ["cadres"]} for i, p in enumerate(numbers(N))]))


@pytest.mark.clock  # `broadcaster run` runs on the wall clock (its catch-up poll sends tonight's alert)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_kill_during_a_batch_then_restart_sends_no_number_twice(provider: str, confdir: Path, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    log = tmp_path / "run.log"
    double = (AliyunSmsDouble({AK: SK}, templates=ALI_TEMPLATES, sign_names=[SIGN]) if provider == "aliyun" else
              TencentSmsDouble({SID: SKEY}, sdk_app_id=APP, templates=TC_TEMPLATES, sign_names=[SIGN]))
    with double:
        prepare(confdir, provider, double.port, database)
        double.slow_s = 30  # the provider takes each batch at once but answers after the kill
        proc = start(confdir, log)
        try:
            deadline = time.monotonic() + 60
            while not double.messages() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            assert double.messages(), log.read_text()[-3000:]
            time.sleep(0.2)  # let every request of the claim reach the provider
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        before = len(double.messages())
        assert 0 < before and sms_states(database).get("sent", 0) == 0  # killed mid-batch: nothing recorded
        double.slow_s = 0
        proc = start(confdir, log)
        try:
            wait_ready(confdir)
            deadline = time.monotonic() + 60
            while sms_states(database).get("sent", 0) < N and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, log.read_text()[-3000:]
        per_number = Counter(m.phone[-11:] for m in double.messages())
        assert {n for n, c in per_number.items() if c > 1} == set()
        assert set(per_number) == set(numbers(N))
        assert sms_states(database) == {"sent": N}
