"""Check-ins (包户核实, DESIGN A13): ``checkin_codes`` and ``checkin_answers``.

Revision ID: households_1
Revises: nodes_1
Create Date: 2026-12-01

Two new tables, empty in an upgraded ledger; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "households_1"
down_revision: str | Sequence[str] | None = "nodes_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two tables."""
    op.create_table(
        "checkin_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_sha256", sa.String(64), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("cadre_phone", sa.String(20), nullable=False),
        sa.Column("cadre_name", sa.String(100), nullable=False),
        sa.Column("households", sa.JSON(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_sha256"),
        sa.UniqueConstraint("night", "cadre_phone", name="uq_checkin_code_night_cadre"),
    )
    op.create_index("ix_checkin_codes_night", "checkin_codes", ["night"])
    op.create_table(
        "checkin_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("village", sa.String(100), nullable=False),
        sa.Column("head", sa.String(100), nullable=False),
        sa.Column("address", sa.String(200), nullable=False),
        sa.Column("cadre_phone", sa.String(20), nullable=False),
        sa.Column("cadre_name", sa.String(100), nullable=False),
        sa.Column("answer", sa.String(20), nullable=False),
        sa.Column("answered_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_checkin_answers_night", "checkin_answers", ["night"])


def downgrade() -> None:
    """Drop them."""
    op.drop_index("ix_checkin_answers_night", table_name="checkin_answers")
    op.drop_table("checkin_answers")
    op.drop_index("ix_checkin_codes_night", table_name="checkin_codes")
    op.drop_table("checkin_codes")
