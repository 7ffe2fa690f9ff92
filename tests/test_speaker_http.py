"""``http`` push endpoints against the SpeakerReceiver double (DESIGN A7)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import select

from broadcaster.config import load_config
from broadcaster.ledger import Delivery
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import edit_yaml, local
from tests.doubles.http_speaker import SpeakerReceiver


def rows(svc: Service) -> dict[str, Delivery]:
    with svc.ledger.reader() as s:
        return {d.target: d for d in s.scalars(select(Delivery).where(Delivery.channel == "speaker"))}


def test_push_retry_and_permanent_401(confdir: Path) -> None:
    flaky = SpeakerReceiver(token="tok-dong", script=[500])
    wrong = SpeakerReceiver(token="tok-other")  # we hold a different token: 401
    good = SpeakerReceiver(token="tok-nan")
    with flaky, wrong, good:
        targets = {"dongcun": (flaky, "tok-dong"), "xicun": (wrong, "not-the-token"), "nancun": (good, "tok-nan")}

        def d(data: dict) -> None:
            for v in data["villages"]:
                rec, tok = targets[v["id"]]
                v["speakers"] = [{"id": f"{v['id']}-ip", "type": "http", "url": rec.play_url, "token": tok}]
        edit_yaml(confdir / "directory.yaml", d)
        clock = FakeClock(local(2026, 11, 28, 16, 30))
        svc = Service(load_config(confdir / "broadcaster.yaml"), clock=clock)
        try:
            report = svc.poll()
            svc.dispatcher.drain([report.alert_id])
            r = rows(svc)
            assert r["nancun-ip"].state == "sent"
            assert r["xicun-ip"].state == "failed" and "401" in (r["xicun-ip"].last_error or "")
            assert r["dongcun-ip"].state == "pending" and "500" in (r["dongcun-ip"].last_error or "")
            clock.set(r["dongcun-ip"].due_at)  # the retry is due
            svc.dispatcher.drain([report.alert_id])
            r = rows(svc)
            assert r["dongcun-ip"].state == "sent" and r["dongcun-ip"].attempts == 2
            assert r["xicun-ip"].attempts == 1  # permanent: never retried
        finally:
            svc.close()

        assert [q.status for q in flaky.requests] == [500, 200]
        assert wrong.plays == [] and [q.status for q in wrong.requests] == [401]
        (play,) = good.plays
        req = good.requests[0]
        assert req.headers["authorization"] == "Bearer tok-nan"
        assert req.idempotency_key == str(r["nancun-ip"].id) == play.delivery_id
        assert play.village == "nancun" and play.repeat == 1
        assert play.play_at.startswith("2026-11-28T19:30:00+08:00") and play.expires_at
        assert play.content_type == "audio/mpeg" and hashlib.sha256(play.audio).hexdigest() == play.sha256
        assert play.sha256 == r["nancun-ip"].audio_sha256
        assert json.loads(json.dumps(play.meta))["delivery_id"] == play.delivery_id
        assert flaky.plays[0].delivery_id == str(r["dongcun-ip"].id) and flaky.duplicates() == []
