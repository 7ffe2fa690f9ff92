"""Several nodes on one PostgreSQL (A15): claim leases and the scheduler's fire records.

Revision ID: nodes_1
Revises: report_1
Create Date: 2026-12-02

- ``deliveries.claimed_by`` and ``deliveries.lease_until`` (both NULL in old rows): the node that
  holds a ``sending`` row and until when. A row an older release left ``sending`` has no lease, so
  the first node to start settles it, as the older release itself did at start.
- ``schedule_fires``: one row per run of a scheduled job at a fire time, unique on
  ``(job_id, fire_at)``, so that a job is run once even by two nodes that both believe they lead.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "nodes_1"
down_revision: str | Sequence[str] | None = "report_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the two lease columns and create ``schedule_fires``."""
    # Nullable columns: native ALTER TABLE ... ADD COLUMN on SQLite too (no copy of the table).
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(100), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
    op.create_table(
        "schedule_fires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(100), nullable=False),
        sa.Column("fire_at", sa.DateTime(), nullable=False),
        sa.Column("node", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "fire_at", name="uq_schedule_fire"),
    )
    op.create_index("ix_schedule_fires_fire_at", "schedule_fires", ["fire_at"])


def downgrade() -> None:
    """Drop ``schedule_fires`` and the lease columns (on SQLite by recreating ``deliveries``)."""
    op.drop_index("ix_schedule_fires_fire_at", table_name="schedule_fires")
    op.drop_table("schedule_fires")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claimed_by")
