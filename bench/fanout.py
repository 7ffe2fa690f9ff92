"""Fan-out: one alert to N SMS recipients (twilio provider) and M ``http`` speakers.

Runs the real code path below the rules: ``alerts.iter_sms_rows``/``play_rows`` ->
``Ledger.create_alert`` (SQLite file in a temp dir, or PostgreSQL) -> ``Dispatcher`` (its own
loop thread, as in ``broadcaster run``) -> ``TwilioProvider`` (the twilio SDK) and
``HttpChannel``, against the doubles of ``bench.doubles`` (another process). Logging is set up
as ``broadcaster run`` does it (INFO, masking filter) and goes to this process's stderr.

Prints one ``RESULT {json}`` line. Run by ``bench/run.py``; by hand::

    python -m bench.fanout --twilio-url URL --speaker-url URL --n 10000 --m 300
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

from bench.common import FROM, PG_URL, ROOT, SID, SMS_BODY, SPEAKER_TOKEN, TOKEN, Usage, emit, phone

BULLETIN = ("各位村民请注意：今晚XX镇一氧化碳中毒气象条件4级，风险高。夜间风小湿度大，易形成逆温。"
            "用煤炉取暖的家庭，睡前务必熄灭炉火，不要门窗紧闭，保持室内通风。")


def _pg_database() -> tuple[str, Any]:
    """A fresh PostgreSQL database for this run, and a function that drops it."""
    import sqlalchemy as sa

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return f"{PG_URL.rsplit('/', 1)[0]}/{name}", drop


def run(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    # Imports inside: the RSS and CPU of importing the service are part of what is measured.
    from broadcaster.flows.alerts import Timing, play_rows, sms_rows

    try:
        from broadcaster.flows.alerts import iter_sms_rows
    except ImportError:  # an older tree (A/B runs against the code before issue 7)
        from broadcaster.flows.alerts import sms_rows as iter_sms_rows
    from sqlalchemy import text

    from broadcaster.audio import Renderer
    from broadcaster.audio.links import AudioLinks
    from broadcaster.channels.sms import SmsContext
    from broadcaster.channels.sms.twilio import TwilioConfig, TwilioProvider
    from broadcaster.channels.speakers import SpeakerContext
    from broadcaster.channels.speakers.http import HttpChannel, HttpConfig
    from broadcaster.dispatch import Dispatcher, Endpoints
    from broadcaster.ledger import Alert, Ledger
    from broadcaster.logutil import setup_logging
    from broadcaster.rules import PlayPlan, SmsPlan
    from broadcaster.timeutil import Clock

    setup_logging()
    drop = None
    if a.pg:
        url, drop = _pg_database()
    else:
        url = f"sqlite:///{tmp / 'ledger.db'}"
    twilio = TwilioConfig.model_validate({"account_sid": SID, "auth_token": TOKEN, "from": FROM,
                                          "base_url": a.twilio_url})
    renderer = Renderer(tmp / "audio", ROOT / "audio" / "chime.wav", ROOT / "audio" / "clips")
    ctx = SpeakerContext(base_dir=tmp)
    speakers = {f"spk{i:04d}": HttpChannel(HttpConfig(id=f"spk{i:04d}", type="http", url=a.speaker_url,
                                                      token=SPEAKER_TOKEN), ctx) for i in range(a.m)}
    ledger = Ledger(url)
    clock = Clock()
    dispatcher = Dispatcher(
        ledger,
        Endpoints(sms=TwilioProvider(twilio, SmsContext("http://127.0.0.1:9", tmp, timezone.utc)),
                  speakers=speakers, audio_path=renderer.find,
                  links=AudioLinks("http://127.0.0.1:9", b"bench")),
        clock, rate_per_s=a.rate, concurrency=a.concurrency)
    dispatcher.start()
    now = clock.now()
    t = Timing(now=now, sms_expires_at=now + timedelta(hours=2), play_expiry=timedelta(hours=1),
               night_end=None)
    # Rendered before the clock starts, as the audio benchmark measures it on its own.
    renderer.render(BULLETIN, fmt="mp3")
    plays = [PlayPlan(f"v{i:04d}", f"村{i}", sid, "http", now, "bench", BULLETIN, None, None)
             for i, sid in enumerate(speakers)]

    def plans() -> Iterator[SmsPlan]:  # recipients are generated, never held as a list
        for i in range(a.n):
            yield SmsPlan(f"联系人{i}", phone(i), f"v{i % max(1, a.m):04d}", "bench", SMS_BODY)

    def rows() -> Iterator[dict[str, Any]]:
        if a.materialize:  # as service.py does it today: the rules' list, then a list of rows
            yield from sms_rows(list(plans()), "twilio", t)
        else:
            yield from iter_sms_rows(plans(), "twilio", t)
        yield from play_rows(plays, speakers, "mp3", lambda tx, c, r, f: renderer.render(tx, fmt=f), t)[0]

    u0, t0 = Usage.now(), time.perf_counter()
    alert = Alert(kind="auto", dedupe_key=f"bench:{uuid.uuid4().hex}", region="XX镇", level=4,
                  rules=["bench"], status="dispatching", created_at=now, created_by="bench")
    alert_id, _ = ledger.create_alert(alert, rows())
    t_created = time.perf_counter()
    dispatcher.wake()
    first_sms_final = None
    total = a.n + a.m
    # The observer's queries cost the measured process CPU too. This one reads only the open rows
    # (through the (state, due_at) index; the ledger holds this one alert), and the loop sleeps
    # half the expected remaining time: few polls, and the end is still seen within ~20 ms.
    open_sql = text("SELECT channel, count(*) FROM deliveries WHERE state IN ('pending', 'sending') "
                    "GROUP BY channel")
    while True:
        with ledger.read_engine.connect() as conn:
            open_by = dict(conn.execute(open_sql).all())
        open_sms, open_all = open_by.get("sms", 0), sum(open_by.values())
        elapsed = time.perf_counter() - t0
        if open_sms == 0 and first_sms_final is None:
            first_sms_final = time.perf_counter()
        if open_all == 0:
            break
        if elapsed > a.timeout:
            raise SystemExit(f"not final after {a.timeout} s: {ledger.reads.counts([alert_id])}")
        rate = (total - open_all) / elapsed if total > open_all else 0.0
        expected = open_all / rate if rate else a.poll
        time.sleep(min(a.poll, max(0.02, expected / 2)))
    t_done = time.perf_counter()
    u1 = Usage.now()
    threads = thread_cpu()
    dispatcher.stop()
    counts = ledger.reads.counts([alert_id])  # after stop(): nothing is left in flight
    ledger.close()
    if drop:
        drop()
    total = t_done - t0
    writes = 3 * (a.n + a.m)  # each delivery: inserted, claimed (sending), finished
    return {
        "n": a.n, "m": a.m, "db": "postgresql" if a.pg else "sqlite", "materialized": a.materialize,
        "concurrency": a.concurrency,
        "rate_per_s": a.rate, "insert_s": round(t_created - t0, 3), "total_s": round(total, 3),
        "sms_done_s": round((first_sms_final or t_done) - t0, 3),
        "sms_per_s": round(a.n / ((first_sms_final or t_done) - t0), 1),
        "dispatch_sms_per_s": round(a.n / ((first_sms_final or t_done) - t_created), 1),
        "ledger_insert_rows_per_s": round((a.n + a.m) / max(1e-9, t_created - t0)),
        "ledger_writes_per_s": round(writes / total),
        "cpu_s": round(u1.cpu_s - u0.cpu_s, 2), "peak_rss_mb": round(u1.peak_rss_mb, 1),
        "counts": counts, "thread_cpu_s": threads,
    }


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, summed by role (name without its number)."""
    import os
    import re
    import threading

    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for th in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{th.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        role = re.sub(r"[_-]?\d+(_\d+)?$", "", th.name) or th.name
        out[role] = round(out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick, 2)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--twilio-url", required=True)
    p.add_argument("--speaker-url", required=True)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--m", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--pg", action="store_true", help="ledger on PostgreSQL instead of SQLite")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--materialize", action="store_true",
                   help="hold all recipients and rows in lists first, as service.py does (for RSS comparison)")
    p.add_argument("--poll", type=float, default=2.0, help="longest wait between completion checks")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        emit(run(a, Path(tmp)))


if __name__ == "__main__":
    main()
