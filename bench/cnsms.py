"""Fan-out through 阿里云短信: one alert to N recipients via the ``aliyun`` provider (issue 13).

The real code path below the rules: ``alerts.iter_sms_rows`` (a registered template and its
values per row) -> ``Ledger.create_alert`` (SQLite file in a temp dir) -> ``Dispatcher`` (its
own loop thread, batching claimed SMS that read the same text into requests of up to 1,000
numbers) -> ``AliyunProvider`` (the official dysmsapi SDK) -> ``AliyunSmsDouble`` in another
process, answering every request after ``--latency-ms`` and checking its ACS3 signature.

The target (issue 13): 10,000 recipients at 50 ms latency all final in at most 3 s. Run by hand
from the project root::

    .venv/bin/python -m bench.cnsms --n 10000 --latency-ms 50

Prints one ``RESULT {json}`` line; each run is checked: the double holds exactly one message per
number and the ledger shows every delivery ``sent``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AK, SK, SIGN, CODE = "bench-ak", "bench-secret", "XX镇文化站", "SMS_123456789"

# The double runs in its own process (as the Twilio bench's doubles do): its CPU is not ours.
_DOUBLE = """
import sys, time
sys.path.insert(0, {root!r})
from tests.doubles.aliyun import AliyunSmsDouble
from tests.doubles.faults import FaultPlan
d = AliyunSmsDouble({{{ak!r}: {sk!r}}}, templates=[{code!r}], sign_names=[{sign!r}],
                    faults=FaultPlan(latency_ms={latency}))
d.start()
print(d.port, flush=True)
sys.stdin.read()  # until the bench closes our stdin
print(len(d.messages()), len({{m.phone for m in d.messages()}}), len(d.calls_of("SendSms")), flush=True)
d.stop()
"""


def phone(i: int) -> str:
    """The i-th of distinct valid China Mobile numbers (+86 139 ...)."""
    return f"+86139{i:08d}"


def run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from sqlalchemy import text

    from broadcaster.audio.links import AudioLinks
    from broadcaster.channels.sms import SmsContext
    from broadcaster.channels.sms.aliyun import AliyunConfig, AliyunProvider
    from broadcaster.config.models import SmsTemplate
    from broadcaster.dispatch import Dispatcher, Endpoints
    from broadcaster.flows.alerts import Timing, iter_sms_rows
    from broadcaster.ledger import Alert, Ledger
    from broadcaster.logutil import setup_logging
    from broadcaster.rules import SmsPlan
    from broadcaster.timeutil import Clock

    setup_logging()
    double = subprocess.Popen([sys.executable, "-c", _DOUBLE.format(
        root=str(ROOT), ak=AK, sk=SK, code=CODE, sign=SIGN, latency=a.latency_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(double.stdout.readline())  # type: ignore[union-attr]
    template = SmsTemplate.model_validate({
        "text": "【{town}文化站】{date}夜间一氧化碳中毒气象条件{level}级（{level_name}），请开窗通风。",
        "aliyun": {"code": CODE, "params": {"date": "{date}", "level": "{level}", "name": "{level_name}"}}})
    cfg = AliyunConfig(access_key_id=AK, access_key_secret=SK, sign_name=SIGN,
                       endpoint=f"127.0.0.1:{port}", protocol="http")
    provider = AliyunProvider(cfg, SmsContext("http://127.0.0.1:9", tmp, timezone.utc,
                                              templates={"sms_warn": template}))
    ledger = Ledger(f"sqlite:///{tmp / 'ledger.db'}")
    clock = Clock()
    dispatcher = Dispatcher(ledger, Endpoints(sms=provider, speakers={}, audio_path=lambda s, e: None,
                                              links=AudioLinks("http://127.0.0.1:9", b"bench")),
                            clock, rate_per_s=a.rate, concurrency=a.concurrency)
    dispatcher.start()
    now = clock.now()
    t = Timing(now=now, sms_expires_at=now + timedelta(hours=2), play_expiry=timedelta(hours=1), night_end=None)
    values = {"town": "XX镇", "date": "11月28日", "level": "4", "level_name": "容易发生"}
    body = template.text.format(**values)

    def plans() -> Iterator[SmsPlan]:
        for i in range(a.n):
            yield SmsPlan(f"联系人{i}", phone(i), None, "bench", body, None, "sms_warn", values)

    t0 = time.perf_counter()
    alert = Alert(kind="auto", dedupe_key=f"bench:{uuid.uuid4().hex}", region="XX镇", level=4,
                  rules=["bench"], status="dispatching", created_at=now, created_by="bench")
    alert_id, _ = ledger.create_alert(alert, iter_sms_rows(plans(), "aliyun", t))
    t_created = time.perf_counter()
    dispatcher.wake()
    open_sql = text("SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')")
    while True:
        with ledger.read_engine.connect() as conn:
            left = conn.execute(open_sql).scalar()
        if left == 0:
            break
        if time.perf_counter() - t0 > a.timeout:
            raise SystemExit(f"not final after {a.timeout} s: {ledger.reads.counts([alert_id])}")
        time.sleep(0.02)
    t_done = time.perf_counter()
    dispatcher.stop()
    counts = ledger.reads.counts([alert_id])
    ledger.close()
    out, _ = double.communicate("", timeout=30)
    accepted, distinct, requests = (int(x) for x in out.split())
    ok = counts["sms"] == {"sent": a.n} and accepted == distinct == a.n
    return {"n": a.n, "latency_ms": a.latency_ms, "create_s": round(t_created - t0, 2),
            "all_final_s": round(t_done - t0, 2), "sms_per_s": round(a.n / (t_done - t0)),
            "requests": requests, "accepted": accepted, "distinct_numbers": distinct,
            "counts": counts, "ok": ok}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--latency-ms", type=float, default=50)
    p.add_argument("--rate", type=float, default=50, help="sms.rate_per_s: requests per second")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--timeout", type=float, default=120)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(a, Path(tmp))
    print("RESULT " + json.dumps(result, ensure_ascii=False))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
