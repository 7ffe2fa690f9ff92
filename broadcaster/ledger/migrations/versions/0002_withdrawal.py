"""Withdrawal of cancelled and superseded plays: ``deliveries.withdrawal`` and its index.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

``withdrawal`` is NULL (nothing to withdraw) for every delivery of an older ledger, which is right:
nothing was ever withdrawn before this column existed. The index serves the dispatcher's and the
agents' scans for withdrawals that are due.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``deliveries.withdrawal`` (String(10), NULL) and ``ix_deliveries_withdrawal``."""
    # Adding a nullable column is native on SQLite, so batch mode alters in place here (no copy of
    # the table); it would recreate the table only for an operation SQLite cannot do.
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("withdrawal", sa.String(10), nullable=True))
        batch.create_index("ix_deliveries_withdrawal", ["withdrawal", "due_at"])


def downgrade() -> None:
    """Drop the index and the column (on SQLite by recreating ``deliveries``)."""
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_withdrawal")
        batch.drop_column("withdrawal")
