"""SQLAlchemy 2 models of the ledger: the source of truth for every reading, alert and delivery."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as UTC, returned aware, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class ReadingRow(Base):
    """One poll's answer: tonight's chosen reading (if any) and every source's outcome."""

    __tablename__ = "readings"
    id: Mapped[int] = mapped_column(primary_key=True)
    night: Mapped[date] = mapped_column(Date, index=True)
    fetched_at: Mapped[datetime]
    region: Mapped[str] = mapped_column(String(100))
    level: Mapped[int | None]
    source: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[datetime | None]
    valid_to: Mapped[datetime | None]
    issued_at: Mapped[datetime | None]
    advice: Mapped[str | None] = mapped_column(Text)
    reading: Mapped[dict[str, Any] | None]
    outcomes: Mapped[list[Any]]
    error: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20), default="scheduled")  # scheduled | catch-up | manual


class Alert(Base):
    """An automatic alert (one per region, night and level), a manual broadcast or a system notice."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # auto | manual | system
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str] = mapped_column(String(100))
    night: Mapped[date | None] = mapped_column(Date, index=True)
    level: Mapped[int | None]
    reading_id: Mapped[int | None] = mapped_column(ForeignKey("readings.id"))
    rules: Mapped[list[Any]]
    status: Mapped[str] = mapped_column(String(20), default="scheduled")
    sms_text: Mapped[str | None] = mapped_column(Text)
    speaker_text: Mapped[str | None] = mapped_column(Text)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    repeat: Mapped[int | None]
    villages: Mapped[list[Any] | None]
    sms_groups: Mapped[list[Any] | None]
    at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    created_by: Mapped[str | None] = mapped_column(String(100))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    approved_at: Mapped[datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(100))
    superseded_by: Mapped[int | None]
    note: Mapped[str | None] = mapped_column(Text)


class Delivery(Base):
    """One SMS to one number, or one play on one endpoint: state, attempts and last error."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel", "target", "slot", name="uq_delivery"),
        Index("ix_deliveries_due", "state", "due_at"),
        # The dispatcher claims per channel: without the channel in the index, a claim on an idle
        # channel walks every pending row of the busy one.
        Index("ix_deliveries_claim", "channel", "state", "due_at"),
        Index("ix_deliveries_target", "channel", "target", "state"),
        Index("ix_deliveries_withdrawal", "withdrawal", "due_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # sms | speaker
    kind: Mapped[str] = mapped_column(String(20))  # sms provider type or speaker type
    target: Mapped[str] = mapped_column(String(100))  # E.164 number or speaker id
    slot: Mapped[str] = mapped_column(String(40), default="")  # play time for speakers
    contact_name: Mapped[str | None] = mapped_column(String(100))
    village_id: Mapped[str | None] = mapped_column(String(100))
    body: Mapped[str | None] = mapped_column(Text)
    audio_sha256: Mapped[str | None] = mapped_column(String(64))
    audio_ext: Mapped[str | None] = mapped_column(String(8))
    repeat: Mapped[int | None]
    play_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]  # None: never pushed (agent endpoints pull)
    expires_at: Mapped[datetime]
    # Written only through the transition table (broadcaster.ledger.transitions).
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    played_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(200))
    provider_status: Mapped[str | None] = mapped_column(String(30))
    segments: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Withdrawal of a cancelled play the endpoint already holds (DESIGN A7), and a cancel asked
    # while the send was in flight: the sub-states are documented beside the transition table.
    withdrawal: Mapped[str | None] = mapped_column(String(10))
    updated_at: Mapped[datetime]
    # The directory group an SMS was sent for (the first of the rule's groups the contact is in),
    # kept so that the weekly report counts by group as it was, not as the directory is now.
    # Not ``group``: that is an SQL keyword every hand-written query would have to quote.
    sms_group: Mapped[str | None] = mapped_column(String(40))
    # The claim's lease (DESIGN A15): the node that holds a ``sending`` row (or a withdrawal being
    # sent) and until when. The holder renews it while it works; once it has lapsed, another node
    # settles the row as a crash would be settled (broadcaster.dispatch.recovery).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    # The rules template an SMS was made from and its placeholders' values (JSON object), for
    # providers that send only registered templates (DESIGN A10); NULL for free text.
    sms_template: Mapped[str | None] = mapped_column(String(64))
    sms_values: Mapped[str | None] = mapped_column(Text)


class ScheduleFire(Base):
    """One run of a scheduled job (poll, deadline, report) at one fire time: recorded before the
    job runs, unique, so that two nodes that both believe they lead run it only once (A15)."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("job_id", "fire_at", name="uq_schedule_fire"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(String(100))
    fire_at: Mapped[datetime] = mapped_column(index=True)
    node: Mapped[str] = mapped_column(String(100))
    started_at: Mapped[datetime]


class AuditEntry(Base):
    """Append-only: who did what, when, with the exact text and audio hash."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    object_type: Mapped[str | None] = mapped_column(String(30))
    object_id: Mapped[str | None] = mapped_column(String(50))
    detail: Mapped[dict[str, Any] | None]


# Append-only in the database itself, not only by convention: UPDATE and DELETE on the audit
# table are refused by a trigger (created with the table, on SQLite and PostgreSQL).
for _op in ("UPDATE", "DELETE"):
    event.listen(AuditEntry.__table__, "after_create", DDL(
        f"CREATE TRIGGER audit_no_{_op.lower()} BEFORE {_op} ON audit "
        "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END").execute_if(dialect="sqlite"))
event.listen(AuditEntry.__table__, "after_create", DDL(
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$; "
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()").execute_if(dialect="postgresql"))


class ApiToken(Base):
    """An API or console credential; only the sha256 of the token is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    speaker_id: Mapped[str | None] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    # The console user this token acts for (the same person in the two-person rule), or None: a
    # service identity of its own.
    user: Mapped[str | None] = mapped_column(String(100))
    # From this instant on the token is refused like a revoked one (None: it never expires).
    expires_at: Mapped[datetime | None]


class ConsoleUser(Base):
    """A web-console account; only an scrypt hash of the password is stored."""

    __tablename__ = "console_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None]


class ConsoleSession(Base):
    """A signed-in browser. The cookie holds a random token; only its sha256 is stored."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class EndpointContact(Base):
    """When a pulling endpoint (a village agent) last called, and from where."""

    __tablename__ = "endpoint_contacts"
    speaker_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_seen: Mapped[datetime]
    address: Mapped[str | None] = mapped_column(String(64))


class ContactFlag(Base):
    """A number the provider reported unreachable (unsubscribed, unknown, landline)."""

    __tablename__ = "contact_flags"
    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    unreachable: Mapped[bool] = mapped_column(Boolean, default=True)
    reason: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class ReportRecord(Base):
    """A weekly report made by the schedule (DESIGN A14): which files, and when it was sent.

    One row per period (``周报-2026-W48``): a restart, or a second node, finds it and does not send
    again. ``claimed_at`` is the lease of the node making it; ``sent_at`` is set once it went out.
    """

    __tablename__ = "reports"
    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(60), unique=True)  # the file stem
    start: Mapped[date] = mapped_column(Date)
    end: Mapped[date] = mapped_column(Date)
    files: Mapped[list[Any]]  # file names under {data_dir}/reports
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    sent_to: Mapped[dict[str, Any] | None]  # {"email": [...], "refused": {...}, "chats": [...]}
    error: Mapped[str | None] = mapped_column(Text)


class Incident(Base):
    """A reported CO-poisoning incident (事故上报, A14). Never updated: corrections are rows of
    :class:`IncidentCorrection`, so the first record stays as it was reported."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(primary_key=True)
    village: Mapped[str] = mapped_column(String(100))  # village id
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    affected: Mapped[int]
    deaths: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    measures: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))  # the SMS to `leaders`


class IncidentCorrection(Base):
    """A correction of an incident: the fields it changes (None: unchanged) and why."""

    __tablename__ = "incident_corrections"
    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    village: Mapped[str | None] = mapped_column(String(100))
    occurred_at: Mapped[datetime | None]
    affected: Mapped[int | None]
    deaths: Mapped[int | None]
    description: Mapped[str | None] = mapped_column(Text)
    measures: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"))


class CheckinCode(Base):
    """A cadre's personal check-in link for one night (包户核实, A13). Only the code's sha256 is
    kept: the ledger never holds a working link outside the SMS that carried it."""

    __tablename__ = "checkin_codes"
    id: Mapped[int] = mapped_column(primary_key=True)
    code_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    night: Mapped[date] = mapped_column(Date, index=True)
    cadre_phone: Mapped[str] = mapped_column(String(20))  # E.164
    cadre_name: Mapped[str] = mapped_column(String(100))
    # The cadre's households that night, [[village id, 户主, 地址], ...]: the weekly report counts
    # answered and missing ones from the ledger alone, whatever the workbook says later.
    households: Mapped[list[Any]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    __table_args__ = (UniqueConstraint("night", "cadre_phone", name="uq_checkin_code_night_cadre"),)


class CheckinAnswer(Base):
    """One answer given on a check-in page; never updated: the latest one per household counts."""

    __tablename__ = "checkin_answers"
    id: Mapped[int] = mapped_column(primary_key=True)
    night: Mapped[date] = mapped_column(Date, index=True)
    village: Mapped[str] = mapped_column(String(100))  # village id
    head: Mapped[str] = mapped_column(String(100))     # 户主
    address: Mapped[str] = mapped_column(String(200))
    cadre_phone: Mapped[str] = mapped_column(String(20))
    cadre_name: Mapped[str] = mapped_column(String(100))
    answer: Mapped[str] = mapped_column(String(20))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)
