"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Write the changes as explicit ``op.*`` calls and never import ``broadcaster.ledger.models``: the models
keep changing, a migration must keep doing what it did. On SQLite, alter tables inside
``with op.batch_alter_table("name") as batch:``. See docs/migrations.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: str | Sequence[str] | None = ${repr(down_revision)}
branch_labels: str | Sequence[str] | None = ${repr(branch_labels)}
depends_on: str | Sequence[str] | None = ${repr(depends_on)}


def upgrade() -> None:
    """Bring the schema from ${repr(down_revision)} to ${repr(up_revision)}."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Undo :func:`upgrade` (development only: operators restore their backup instead)."""
    ${downgrades if downgrades else "pass"}
