"""Registered SMS templates (DESIGN A10): each SMS keeps its rules template and values.

Revision ID: cnsms_1
Revises: households_1
Create Date: 2026-12-01

- ``deliveries.sms_template`` and ``deliveries.sms_values`` (JSON object), both NULL in old rows
  and for loudspeaker plays: what a template-only provider (Aliyun, Tencent) sends instead of the
  free text in ``body``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "cnsms_1"
down_revision: str | Sequence[str] | None = "households_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two nullable columns (a plain ADD COLUMN, also on SQLite)."""
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("sms_template", sa.String(64), nullable=True))
        batch.add_column(sa.Column("sms_values", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop them (on SQLite by recreating ``deliveries``)."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("sms_values")
        batch.drop_column("sms_template")
