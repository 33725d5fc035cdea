"""Links remember a deletion under ``delete = "ignore"`` (links.detached_at).

Revision ID: 7c1e2d9a4b60
Revises: 420b5fd5f4b9
Create Date: 2026-11-23 12:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c1e2d9a4b60"
down_revision: str | Sequence[str] | None = "420b5fd5f4b9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("detached_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("links") as batch:
        batch.drop_column("detached_at")
