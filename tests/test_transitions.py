"""The delivery state machine: the transition table over every state and event (pure), then the
ledger's transition methods on SQLite and PostgreSQL for late, repeated and crossing events.

Times are fixed (28 Nov 2026, Asia/Shanghai), whatever the real hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import product

import pytest

from broadcaster.ledger import Alert, Delivery, Ledger, Outcome, play_row, sms_row
from broadcaster.ledger.deliveries import Deliveries
from broadcaster.ledger.transitions import (
    DISPATCH_EVENTS,
    EVENTS,
    FINAL,
    GUARDED,
    MOVES,
    OPEN,
    STATES,
    TRANSITIONS,
    WITHDRAWAL,
    WITHDRAWALS,
    next_state,
    next_withdrawal,
)
from tests.conftest import local

PAIRS = list(product(STATES, EVENTS))
RANK = {"pending": 0, "sending": 1, "sent": 2, **{s: 3 for s in FINAL}}  # how far a delivery has gone
BACK_TO_PENDING = {"release", "retry", "reconcile_pending"}
LATE = [e for e in EVENTS if e.startswith(("receipt_", "report_"))]  # what providers and endpoints say

# ------------------------------------------------------------------ the table (pure)


def test_the_table_defines_every_state_and_event() -> None:
    assert set(TRANSITIONS) == set(PAIRS) and len(TRANSITIONS) == len(STATES) * len(EVENTS)
    assert {s for s, _ in MOVES} | set(MOVES.values()) <= set(STATES)
    assert {e for _, e in MOVES} <= set(EVENTS) and GUARDED <= set(MOVES)
    assert set(OPEN) | FINAL | {"sent"} == set(STATES) and not OPEN & FINAL  # sent: gone out, not final
    # Every event moves something, but an agent's acknowledgement (it moves the withdrawal only).
    assert {e for _, e in MOVES} == set(EVENTS) - {"report_cancelled"}


@pytest.mark.parametrize("state,event", PAIRS, ids=[f"{s}-{e}" for s, e in PAIRS])
def test_every_pair_follows_the_rules(state: str, event: str) -> None:
    new = next_state(state, event)
    assert new == MOVES.get((state, event), state)  # an explicit entry, or no change
    if state in FINAL and new != state:  # final states move only to what the villagers heard
        assert (new, event) == ("played", "report_played") and (state, event) in GUARDED
    if state in ("delivered", "played"):
        assert new == state
    if RANK[new] < RANK[state]:  # backwards: only sending → pending, by the dispatcher
        assert (state, new) == ("sending", "pending") and event in BACK_TO_PENDING
    if event in LATE:  # a receipt or report never moves a delivery backwards
        assert RANK[new] >= RANK[state]
    if event == "cancel":  # in flight stays in flight (the cancel is settled with the outcome)
        assert new == ("cancelled" if state == "pending" else state)
    if event in DISPATCH_EVENTS and event != "claim" and state != "sending":
        assert new == state or event == "expire"  # outcomes are about a send in flight
    if state == "sending" and event.startswith("report_"):
        assert new == state  # an endpoint's report waits for the send's own outcome


@pytest.mark.parametrize("event", LATE)
def test_a_repeated_receipt_or_report_changes_nothing(event: str) -> None:
    for state in STATES:
        once = next_state(state, event)
        assert next_state(once, event) == once


def test_withdrawal_sub_states() -> None:
    assert {w for w, _ in WITHDRAWAL} | set(WITHDRAWAL.values()) <= set(WITHDRAWALS)
    assert next_withdrawal(None, "cancel") == "requested"
    assert next_withdrawal("requested", "withdraw") == "pending" and next_withdrawal("requested", "settle") is None
    for w in ("done", "failed"):  # settled: only a play that happened anyway is noted (as failed)
        assert all(next_withdrawal(w, e) == w for e in ("claim", "withdrawn", "withdraw_retry", "report_cancelled"))
    assert next_withdrawal("pending", "unknown event") == "pending"


# ------------------------------------------------------- the ledger's methods

NOW = local(2026, 11, 28, 16, 30)
PLAY_AT = local(2026, 11, 28, 19, 30)


@pytest.fixture
def lg(ledger_url: str) -> Iterator[Ledger]:
    ledger = Ledger(ledger_url)
    yield ledger
    ledger.close()


def _alert(lg: Ledger, rows: list[dict]) -> int:
    a = Alert(kind="auto", dedupe_key=f"t:{len(rows)}:{rows[0]['target']}", region="XX镇", night=NOW.date(),
              level=4, rules=["warn"], status="dispatching", created_at=NOW)
    return lg.create_alert(a, rows)[0]


def _sms(n: int = 1) -> list[dict]:
    return [sms_row(phone=f"+8613800138{i:03d}", name="张三", village_id="dongcun", body="测试", kind="twilio",
                    due_at=NOW, expires_at=NOW + timedelta(hours=12), now=NOW) for i in range(n)]


def _play(speaker: str = "xicun-ip", kind: str = "http", mode: str = "schedule") -> dict:
    return play_row(speaker_id=speaker, village_id="xicun", kind=kind, mode=mode, sha256="ab" * 32, ext="mp3",
                    repeat=1, play_at=PLAY_AT, expires_at=PLAY_AT + timedelta(hours=1), now=NOW)


def row(lg: Ledger, delivery_id: int) -> Delivery:
    with lg.reader() as s:
        d = s.get(Delivery, delivery_id)
    assert d is not None
    return d


def _sent_sms(lg: Ledger) -> Delivery:
    _alert(lg, _sms())
    (job,) = lg.deliveries.claim(NOW, 10)
    lg.deliveries.finish([Outcome(job.id, "handed", NOW, provider_id="SM1", segments=1)])
    return row(lg, job.id)


def _receipt(lg: Ledger, event: str, status: str) -> tuple[str | None, bool]:
    r = lg.deliveries.receipt("sms", "SM1", event, NOW, provider_status=status, error=f"{status} 30003")
    return r.state, r.moved


def test_late_sent_receipt_after_delivered_changes_nothing(lg: Ledger) -> None:
    d = _sent_sms(lg)
    assert _receipt(lg, "receipt_delivered", "delivered") == ("delivered", True)
    assert _receipt(lg, "receipt_sent", "sent") == ("delivered", False)
    got = row(lg, d.id)
    assert (got.state, got.provider_status, got.delivered_at) == ("delivered", "delivered", NOW)


def test_repeated_receipt_is_applied_once(lg: Ledger) -> None:
    _sent_sms(lg)
    assert _receipt(lg, "receipt_delivered", "delivered") == ("delivered", True)
    assert _receipt(lg, "receipt_delivered", "delivered") == ("delivered", False)
    unknown = lg.deliveries.receipt("sms", "SM-unknown", "receipt_delivered", NOW, provider_status="delivered")
    assert (unknown.delivery_id, unknown.moved) == (None, False)


def test_failed_receipt_then_delivered_stays_failed(lg: Ledger) -> None:
    d = _sent_sms(lg)
    assert _receipt(lg, "receipt_failed", "undelivered") == ("failed", True)
    assert _receipt(lg, "receipt_delivered", "delivered") == ("failed", False)
    assert row(lg, d.id).last_error == "undelivered 30003"


def test_receipt_flags_an_unreachable_number(lg: Ledger) -> None:
    d = _sent_sms(lg)
    lg.deliveries.receipt("sms", "SM1", "receipt_failed", NOW, provider_status="failed", unreachable="21610")
    # A receipt for a message that is not ours flags nothing (issue 18: it could silence any number).
    lg.deliveries.receipt("sms", "SM-x", None, NOW, provider_status="failed", unreachable="30005", phone="+8613900000000")
    assert lg.reads.unreachable() == {d.target: "21610"}


def test_agent_played_after_cancel_shows_played_and_repeats_change_nothing(lg: Ledger) -> None:
    aid = _alert(lg, [_play("dongcun-room", "agent", "pull")])
    (d,), _ = lg.deliveries.agent_commands("dongcun-room", NOW)  # handed to the agent (sent_at)
    assert lg.deliveries.cancel([aid], "cancelled by 小李", NOW, {"http", "folder"}) == (1, 1)
    assert (row(lg, d.id).state, row(lg, d.id).withdrawal) == ("cancelled", "pending")
    assert lg.deliveries.agent_commands("dongcun-room", NOW) == ([], [d.id])
    report = lg.deliveries.report
    assert report(d.id, "dongcun-room", "played", PLAY_AT, played_at=PLAY_AT) == "played"
    got = row(lg, d.id)
    assert (got.state, got.withdrawal, got.played_at) == ("played", "failed", PLAY_AT)
    assert "withdrawal" in (got.last_error or "")
    for status in ("played", "cancelled", "failed", "expired"):  # repeated and late reports
        assert report(d.id, "dongcun-room", status, PLAY_AT + timedelta(minutes=5)) == "played"
    assert row(lg, d.id).updated_at == PLAY_AT
    assert report(d.id, "xicun-room", "played", PLAY_AT) is None  # another speaker's play


def test_acknowledged_withdrawal_is_done_and_a_late_played_changes_nothing(lg: Ledger) -> None:
    aid = _alert(lg, [_play("dongcun-room", "agent", "pull")])
    (d,), _ = lg.deliveries.agent_commands("dongcun-room", NOW)
    lg.deliveries.cancel([aid], "superseded by alert 2", NOW, set())
    assert lg.deliveries.report(d.id, "dongcun-room", "cancelled", NOW) == "cancelled"
    assert lg.deliveries.report(d.id, "dongcun-room", "played", NOW) == "cancelled"
    assert row(lg, d.id).withdrawal == "done"


def test_expired_pulled_play_is_believed_only_when_played_on_time(lg: Ledger) -> None:
    _alert(lg, [_play("dongcun-room", "agent", "pull")])
    late = PLAY_AT + timedelta(hours=2)
    assert lg.deliveries.expire_due(late) == 1
    with lg.reader() as s:
        d = s.query(Delivery).one()
    assert lg.deliveries.report(d.id, "dongcun-room", "played", late, played_at=late) == "expired"
    assert lg.deliveries.report(d.id, "dongcun-room", "played", late, played_at=PLAY_AT) == "played"


def test_cancel_of_a_sending_sms_leaves_it_sent(lg: Ledger) -> None:
    aid = _alert(lg, _sms(2))
    a, b = lg.deliveries.claim(NOW, 10)
    assert lg.deliveries.cancel([aid], "cancelled by 小李", NOW, {"http"}) == (0, 0)
    assert [(row(lg, j.id).state, row(lg, j.id).withdrawal) for j in (a, b)] == [("sending", "requested")] * 2
    lg.deliveries.finish([Outcome(a.id, "handed", NOW, provider_id="SM1", segments=1),
                          Outcome(b.id, "retry", NOW, error="HTTP 503", due_at=NOW + timedelta(seconds=30))])
    sent, retried = row(lg, a.id), row(lg, b.id)
    assert (sent.state, sent.withdrawal, sent.provider_id, sent.last_error) == ("sent", None, "SM1", None)
    # Sent back to pending by its outcome: cancelled instead, as asked; never claimed again.
    assert (retried.state, retried.withdrawal, retried.last_error) == ("cancelled", None, "cancelled by 小李")
    assert lg.deliveries.claim(NOW + timedelta(minutes=1), 10) == []


def test_cancel_of_a_sending_play_withdraws_it_after_the_outcome(lg: Ledger) -> None:
    aid = _alert(lg, [_play(), _play("nancun-4g", "mqtt", "schedule")])
    http, mqtt = sorted(lg.deliveries.claim(NOW, 10), key=lambda j: j.target != "xicun-ip")
    lg.deliveries.cancel([aid], "superseded by alert 2", NOW, {"http", "folder"})
    lg.deliveries.finish([Outcome(http.id, "handed", NOW, withdrawable=True),
                          Outcome(mqtt.id, "handed", NOW, withdrawable=False)])
    d = row(lg, http.id)
    assert (d.state, d.withdrawal, d.due_at, d.last_error) == ("cancelled", "pending", NOW, "superseded by alert 2")
    assert (row(lg, mqtt.id).state, row(lg, mqtt.id).withdrawal) == ("sent", None)  # cannot be taken back
    (w,) = lg.deliveries.claim_withdrawals(NOW, 10)
    assert w.id == http.id and row(lg, http.id).withdrawal == "sending"
    lg.deliveries.finish([Outcome(w.id, "withdrawn", NOW)])
    assert (row(lg, http.id).state, row(lg, http.id).withdrawal) == ("cancelled", "done")


def test_pushed_play_already_sent_is_withdrawn_at_once(lg: Ledger) -> None:
    aid = _alert(lg, [_play()])
    (job,) = lg.deliveries.claim(NOW, 10)
    lg.deliveries.finish([Outcome(job.id, "handed", NOW)])
    assert lg.deliveries.cancel([aid], "cancelled by 小李", NOW, {"http"}) == (1, 1)
    (w,) = lg.deliveries.claim_withdrawals(NOW, 10)
    lg.deliveries.finish([Outcome(w.id, "withdraw_retry", NOW, due_at=NOW + timedelta(seconds=5))])
    assert (row(lg, job.id).withdrawal, row(lg, job.id).due_at) == ("pending", NOW + timedelta(seconds=5))
    (w,) = lg.deliveries.claim_withdrawals(NOW + timedelta(seconds=5), 10)
    lg.deliveries.finish([Outcome(w.id, "withdraw_failed", NOW, error="withdrawal failed: HTTP 503")])
    assert (row(lg, job.id).state, row(lg, job.id).withdrawal) == ("cancelled", "failed")


def test_finish_fast_path_and_slow_path(lg: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    slow: list[int] = []
    real = Deliveries._finish_slow
    monkeypatch.setattr(Deliveries, "_finish_slow", lambda self, conn, outcomes: (
        slow.append(len(outcomes)), real(self, conn, outcomes))[1])
    aid = _alert(lg, _sms(4))
    a, b, c, d = lg.deliveries.claim(NOW, 10)
    lg.deliveries.finish([Outcome(a.id, "handed", NOW, provider_id="SMa"),
                          Outcome(b.id, "fail", NOW, error="21211 invalid number")])
    assert slow == [] and [row(lg, j.id).state for j in (a, b)] == ["sent", "failed"]
    # c was settled meanwhile (a receipt that beat the outcome), d got a cancel request.
    with lg.session() as s:
        s.get(Delivery, c.id).state = "delivered"  # type: ignore[union-attr]
    lg.deliveries.cancel([aid], "cancelled by 小李", NOW, set())
    lg.deliveries.finish([Outcome(c.id, "handed", NOW, provider_id="SMc"),
                          Outcome(d.id, "release", NOW, attempts=0)])
    assert slow == [2]
    assert (row(lg, c.id).state, row(lg, c.id).provider_id) == ("delivered", None)  # no step back to sent
    assert (row(lg, d.id).state, row(lg, d.id).attempts) == ("cancelled", 0)
    # A late outcome for a row no longer in flight changes nothing at all.
    lg.deliveries.finish([Outcome(a.id, "retry", NOW, error="late", due_at=NOW)])
    assert (row(lg, a.id).state, row(lg, a.id).last_error) == ("sent", None) and slow == [2, 1]


# ------------------------------------------------- the dispatcher's events (pure)


def _job(channel: str = "sms", attempts: int = 2, expires_in: timedelta = timedelta(hours=1)):  # type: ignore[no-untyped-def]
    from broadcaster.ledger import DeliveryJob

    return DeliveryJob(7, 1, channel, "twilio", "+8613800138000", None, None, "测试", None, None, None,
                       PLAY_AT if channel == "speaker" else None, NOW + expires_in, attempts, NOW)


def test_the_dispatcher_reports_what_happened_as_events() -> None:
    from broadcaster.channels import SendResult
    from broadcaster.dispatch.outcomes import RELEASE, send_outcome, withdrawal_outcome
    from broadcaster.errors import PermanentError, TransientError

    def event(answer, **kw) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        o = send_outcome(_job(**kw), answer, NOW, withdrawable=True)
        return o.event, o.error, o.attempts  # type: ignore[return-value]

    assert event(SendResult("sent", "SM1", 1)) == ("handed", None, None)
    assert send_outcome(_job(), SendResult("played"), NOW).event == "confirmed_played"
    assert send_outcome(_job(), SendResult("delivered"), NOW).event == "confirmed_delivered"
    assert event(RELEASE) == ("release", None, 1)
    assert event(PermanentError("21211 invalid number")) == ("fail", "21211 invalid number", None)
    retry = send_outcome(_job(), TransientError("HTTP 503", retry_after=120), NOW)
    assert (retry.event, retry.due_at) == ("retry", NOW + timedelta(seconds=120))
    assert event(TransientError("HTTP 503", retry_after=120), expires_in=timedelta(seconds=60))[0] == "expire"
    for answer in (SendResult(), RELEASE, PermanentError("x"), TransientError("y")):
        assert send_outcome(_job(), answer, NOW).event in DISPATCH_EVENTS

    play = _job("speaker")
    assert withdrawal_outcome(play, None, NOW).event == "withdrawn"
    assert (withdrawal_outcome(play, RELEASE, NOW).event, withdrawal_outcome(play, RELEASE, NOW).due_at) == (
        "withdraw_retry", None)
    assert withdrawal_outcome(play, TransientError("503", retry_after=60), NOW).event == "withdraw_retry"
    late = withdrawal_outcome(play, TransientError("503", retry_after=60), PLAY_AT - timedelta(seconds=30))
    assert (late.event, late.error) == ("withdraw_failed", "withdrawal failed: 503")
    assert withdrawal_outcome(play, PermanentError("401"), NOW).event == "withdraw_failed"
