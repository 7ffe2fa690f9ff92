"""The ledger of release 0.1.0, exactly as ``create_all`` made it from that release's models.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

Written out by hand from ``git show 8041292:broadcaster/ledger/models.py`` (frozen in
``tests/data/ledger_0_1_0_models.py``), in the same table and column order, with the same
implicit constraint names, so that a ledger made by 0.1.0 (no ``alembic_version`` table) is this
revision and is only stamped, never re-created. ``tests/test_migrations.py`` checks the equality
on both dialects.

``UTCDateTime`` was a TypeDecorator over a naive ``DateTime`` (UTC): ``DATETIME`` on SQLite,
``TIMESTAMP WITHOUT TIME ZONE`` on PostgreSQL. ``JSON`` is ``JSON`` on both (not JSONB).
No column had a server default: defaults were Python-side.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit table is append-only in the database itself (DESIGN A8): 0.1.0 attached these to the
# table's after_create event, so they are part of its schema and must be here too.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER audit_no_{verb.lower()} BEFORE {verb} ON audit "
    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
POSTGRESQL_FUNCTION = (
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$"
)
POSTGRESQL_TRIGGER = (
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION audit_append_only()"
)


def upgrade() -> None:
    """Create the nine tables of 0.1.0 with their indexes and the audit triggers."""
    # Order as create_all sorted them (dependencies first, then by name).
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("speaker_id", sa.String(100), nullable=True),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("object_type", sa.String(30), nullable=True),
        sa.Column("object_id", sa.String(50), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        for ddl in SQLITE_TRIGGERS:
            op.execute(ddl)
    elif dialect == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("user", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    op.create_table(
        "console_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "contact_flags",
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("phone"),
    )
    op.create_table(
        "endpoint_contacts",
        sa.Column("speaker_id", sa.String(100), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("address", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("speaker_id"),
    )
    op.create_table(
        "readings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(200), nullable=True),
        sa.Column("valid_from", sa.DateTime(), nullable=True),
        sa.Column("valid_to", sa.DateTime(), nullable=True),
        sa.Column("issued_at", sa.DateTime(), nullable=True),
        sa.Column("advice", sa.Text(), nullable=True),
        sa.Column("reading", sa.JSON(), nullable=True),
        sa.Column("outcomes", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_readings_night", "readings", ["night"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("region", sa.String(100), nullable=False),
        sa.Column("night", sa.Date(), nullable=True),
        sa.Column("level", sa.Integer(), nullable=True),
        sa.Column("reading_id", sa.Integer(), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("sms_text", sa.Text(), nullable=True),
        sa.Column("speaker_text", sa.Text(), nullable=True),
        sa.Column("audio_sha256", sa.String(64), nullable=True),
        sa.Column("repeat", sa.Integer(), nullable=True),
        sa.Column("villages", sa.JSON(), nullable=True),
        sa.Column("sms_groups", sa.JSON(), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column("approved_by", sa.String(100), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("cancelled_by", sa.String(100), nullable=True),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
        sa.ForeignKeyConstraint(["reading_id"], ["readings.id"]),
    )
    op.create_index("ix_alerts_night", "alerts", ["night"])
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("slot", sa.String(40), nullable=False),
        sa.Column("contact_name", sa.String(100), nullable=True),
        sa.Column("village_id", sa.String(100), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("audio_sha256", sa.String(64), nullable=True),
        sa.Column("audio_ext", sa.String(8), nullable=True),
        sa.Column("repeat", sa.Integer(), nullable=True),
        sa.Column("play_at", sa.DateTime(), nullable=True),
        sa.Column("due_at", sa.DateTime(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("played_at", sa.DateTime(), nullable=True),
        sa.Column("provider_id", sa.String(200), nullable=True),
        sa.Column("provider_status", sa.String(30), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("possible_duplicate", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("alert_id", "channel", "target", "slot", name="uq_delivery"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"]),
    )
    op.create_index("ix_deliveries_alert_id", "deliveries", ["alert_id"])
    op.create_index("ix_deliveries_claim", "deliveries", ["channel", "state", "due_at"])
    op.create_index("ix_deliveries_due", "deliveries", ["state", "due_at"])
    op.create_index("ix_deliveries_target", "deliveries", ["channel", "target", "state"])


def downgrade() -> None:
    """Drop everything :func:`upgrade` made (an empty database again)."""
    for table in ("deliveries", "alerts", "readings", "endpoint_contacts", "contact_flags",
                  "console_users", "console_sessions", "audit", "api_tokens"):
        op.drop_table(table)  # drops the table's indexes and triggers with it
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS audit_append_only()")
