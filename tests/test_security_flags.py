"""Unreachable flags (issue 18, item 10): only numbers of known deliveries are flagged, and a flag
expires after FLAG_DAYS, so one receipt cannot silence a number for good."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.config import load_config
from broadcaster.flows.limits import FLAG_DAYS
from broadcaster.flows.manual import BroadcastRequest, Broadcasts
from broadcaster.ledger import ContactFlag
from broadcaster.runtime.service import Service
from broadcaster.timeutil import FakeClock
from tests.conftest import local

NOW = local(2026, 11, 28, 10, 0)
PHONE = "+8613800138000"


@pytest.fixture
def svc(confdir: Path) -> Iterator[Service]:
    s = Service(load_config(confdir / "broadcaster.yaml"), clock=FakeClock(NOW))
    yield s
    s.close()


def test_a_receipt_for_an_unknown_message_flags_nothing(svc: Service) -> None:
    r = svc.ledger.deliveries.receipt("sms", "SM-not-ours", "receipt_failed", NOW, provider_status="undelivered",
                                      unreachable="30006 landline or unreachable carrier", phone=PHONE)
    assert r.delivery_id is None
    assert svc.unreachable() == {} and svc.ledger.reads.unreachable_flags() == []


def test_an_unreachable_flag_expires(svc: Service) -> None:
    with svc.ledger.session() as s:
        s.add(ContactFlag(phone=PHONE, unreachable=True, reason="已退订", updated_at=NOW))
    assert svc.unreachable() == {PHONE: "已退订"}
    bc = Broadcasts(svc)
    first = bc.create(BroadcastRequest("测试", [], ["cadres"]), "alice")["id"]
    bc.approve(first, "carol")
    assert any("已退订" in h for h in bc.get(first)["held"])  # held while the flag is fresh
    svc.clock.set(NOW + timedelta(days=FLAG_DAYS, minutes=1))  # type: ignore[attr-defined]
    assert svc.unreachable() == {}
    bid = bc.create(BroadcastRequest("测试", [], ["cadres"]), "alice")["id"]
    bc.approve(bid, "carol")
    assert not bc.get(bid)["held"]  # the number is tried again


def test_previews_are_evicted_and_do_not_fill_the_bulletin_cache(svc: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("broadcaster.flows.manual.PREVIEWS_KEPT", 2)
    bc = Broadcasts(svc)
    audio = svc.cfg.data_dir / "audio"
    before = set(audio.glob("*.mp3"))
    paths = [bc.preview(f"试听{i}", repeat=1, who="小李").path for i in range(4)]
    kept = sorted(p.name for p in (svc.cfg.data_dir / "previews").glob("*.mp3"))
    assert kept == sorted(p.name for p in paths[-2:])  # the newest two
    assert set(audio.glob("*.mp3")) == before  # the bulletins deliveries use are untouched
