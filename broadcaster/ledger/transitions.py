"""The delivery state machine (DESIGN A6, A7, B1): one table, state × event → state.

Every change of a delivery's ``state`` is an event looked up in :data:`TRANSITIONS`; the
ledger's transition methods (:mod:`broadcaster.ledger.deliveries`) are the only writers. A pair
the table does not move keeps its state ("no change"), so a late or repeated event is harmless.

Rules (``tests/test_transitions.py`` checks each over every state and event):

1. Final states (delivered, played, failed, expired, cancelled) never move, except to ``played``
   when an endpoint reports what the villagers heard: ``cancelled → played`` for a play that
   happened before its withdrawal reached the endpoint (only while the endpoint held it: see
   :data:`WITHDRAWAL`), ``expired → played`` only for a pulled play reported as played before
   its expiry (the agent may only have been unable to reach us).
2. ``delivered`` and ``played`` never change.
3. Only ``sending`` moves back to ``pending`` (retry, release, reconcile_pending).
4. ``cancel`` on ``sending`` leaves it sending; the cancel is noted in the ``withdrawal`` column
   (``requested``) and settled when the send's outcome is recorded: a play handed to an endpoint
   that can give it back is cancelled and withdrawn, an SMS that went out stays sent, anything
   sent back to pending is cancelled.
5. Receipts and endpoint reports never move a delivery backwards (and never out of a final
   state but by rule 1); an endpoint's report on ``sending`` waits for the send's own outcome
   (the endpoint may answer before the dispatcher has recorded the hand-over; it asks again).
   A ``failed`` receipt is final: Twilio never sends ``delivered`` after ``failed``, and if a
   provider did, the ledger would keep the first word.
"""

from __future__ import annotations

STATES = ("pending", "sending", "sent", "delivered", "played", "failed", "expired", "cancelled")
OPEN = frozenset({"pending", "sending"})
FINAL = frozenset({"delivered", "played", "failed", "expired", "cancelled"})

DISPATCH_EVENTS = (
    "claim",                # due: the dispatcher takes it (committed before the channel is called)
    "release",              # not attempted (shutting down): the attempt does not count
    "handed",               # the channel accepted it
    "confirmed_played",     # the channel accepted it and confirmed the play at once
    "confirmed_delivered",  # the channel accepted it and confirmed delivery at once
    "retry",                # a transient error, with time left before expiry
    "fail",                 # a permanent error
    "expire",               # too late to deliver (the sweep, or a transient error near expiry)
    "reconcile_sent",       # after a crash: the provider has it
    "reconcile_pending",    # after a crash: send again
)
EVENTS = DISPATCH_EVENTS + (
    "cancel",               # a cancelled broadcast or superseded alert: what has not gone out
    "withdraw",             # ... and a play already handed to an endpoint that can give it back
    "receipt_sent", "receipt_delivered", "receipt_failed",     # an SMS provider's receipt
    "report_played", "report_failed", "report_expired",        # an endpoint's report
    "report_cancelled",     # an agent acknowledges a withdrawal (the state stays cancelled)
)

MOVES: dict[tuple[str, str], str] = {
    ("pending", "claim"): "sending",
    ("sending", "release"): "pending",
    ("sending", "retry"): "pending",
    ("sending", "reconcile_pending"): "pending",
    ("sending", "handed"): "sent",
    ("sending", "reconcile_sent"): "sent",
    ("sending", "confirmed_played"): "played",
    ("sending", "confirmed_delivered"): "delivered",
    ("sending", "fail"): "failed",
    ("pending", "expire"): "expired",
    ("sending", "expire"): "expired",
    ("pending", "cancel"): "cancelled",
    ("sent", "withdraw"): "cancelled",
    ("pending", "receipt_sent"): "sent",
    ("sending", "receipt_sent"): "sent",
    ("pending", "receipt_delivered"): "delivered",
    ("sending", "receipt_delivered"): "delivered",
    ("sent", "receipt_delivered"): "delivered",
    ("pending", "receipt_failed"): "failed",
    ("sending", "receipt_failed"): "failed",
    ("sent", "receipt_failed"): "failed",
    ("pending", "report_played"): "played",
    ("sent", "report_played"): "played",
    ("cancelled", "report_played"): "played",  # guarded: the endpoint held the play
    ("expired", "report_played"): "played",    # guarded: a pulled play reported on time
    ("pending", "report_failed"): "failed",
    ("sent", "report_failed"): "failed",
    ("pending", "report_expired"): "expired",
    ("sent", "report_expired"): "expired",
}
# Moves the transition method makes only when a condition on the row holds (else: no change).
GUARDED = frozenset({("cancelled", "report_played"), ("expired", "report_played")})

# The whole table: every state × event, the "no change" rule written out.
TRANSITIONS: dict[tuple[str, str], str] = {(s, e): MOVES.get((s, e), s) for s in STATES for e in EVENTS}

# Withdrawal of a cancelled play (DESIGN A7), in the ``withdrawal`` column beside the state:
#   None       nothing to withdraw
#   requested  cancelled while its send was in flight; settled when the outcome is recorded
#   pending    the endpoint must be told: pushed by the dispatcher at ``due_at``, or carried by
#              the agent's next long poll
#   sending    the dispatcher is telling the endpoint
#   done       the endpoint confirmed (a DELETE, an unlink, an agent's acknowledgement)
#   failed     it could not be told before the play time, or the play happened anyway
WITHDRAWALS: tuple[str | None, ...] = (None, "requested", "pending", "sending", "done", "failed")
WITHDRAWAL: dict[tuple[str | None, str], str | None] = {
    (None, "cancel"): "requested",            # on a sending row only
    (None, "withdraw"): "pending",            # a play its endpoint holds was cancelled
    ("requested", "withdraw"): "pending",     # the outcome: handed to an endpoint that can give it back
    ("requested", "settle"): None,            # the outcome: anything else
    ("pending", "claim"): "sending",
    ("sending", "withdrawn"): "done",
    ("sending", "withdraw_retry"): "pending",  # a transient error before the play time, or shutdown
    ("sending", "withdraw_failed"): "failed",
    ("sending", "requeue"): "pending",         # after a crash (a DELETE or unlink is idempotent)
    ("pending", "report_cancelled"): "done",
    ("sending", "report_cancelled"): "done",
    ("pending", "report_played"): "failed",    # played before the withdrawal reached it
    ("sending", "report_played"): "failed",
    ("failed", "report_played"): "failed",
}
WITHDRAWAL_EVENTS = ("withdrawn", "withdraw_retry", "withdraw_failed")  # the dispatcher's outcomes


def next_state(state: str, event: str) -> str:
    """The state after ``event`` (unguarded); ``KeyError`` for an unknown state or event."""
    return TRANSITIONS[state, event]


def sources(event: str, table: dict[tuple[str, str], str] = MOVES) -> tuple[str, ...]:
    """The states ``event`` moves, in table order: the ``WHERE state IN (...)`` of a bulk update."""
    return tuple(s for (s, e) in table if e == event)


def next_withdrawal(withdrawal: str | None, event: str) -> str | None:
    """The withdrawal sub-state after ``event`` (no entry: unchanged)."""
    return WITHDRAWAL.get((withdrawal, event), withdrawal)
