"""API tokens act for a console user (issue 18: two-person approval compares identities).

Revision ID: security_1
Revises: cnsms_1
Create Date: 2026-12-01

- ``api_tokens.user`` (NULL in old rows): the console user a token acts for. A token bound to a
  user is that person in the two-person rule (they cannot approve through the console what they
  created through the API, nor the other way round); a token without one is a service identity of
  its own (``token:NAME``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "security_1"
down_revision: str | Sequence[str] | None = "cnsms_1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``user`` column (native ADD COLUMN on SQLite too)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("user", sa.String(100), nullable=True))


def downgrade() -> None:
    """Drop it (on SQLite by recreating ``api_tokens``)."""
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("user")
