"""API tokens may expire (issue 18, item 8: optional token expiry).

Revision ID: security_2
Revises: security_1
Create Date: 2026-12-01

- ``api_tokens.expires_at`` (NULL in old rows and for tokens made without ``--expires-days``): from
  this instant on the token is refused (401) like a revoked one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "security_2"
down_revision: str | Sequence[str] | None = "security_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``expires_at`` column (native ADD COLUMN on SQLite too)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Drop it (on SQLite by recreating ``api_tokens``)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("expires_at")
