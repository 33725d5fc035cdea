"""Accounts carry a pull request handed over between instances (accounts.pull_requested_at).

A webhook may reach an instance that does not hold the account's lease; that instance
records the request here and the holder's outbox watch starts the pull.

Revision ID: d51a7e0c93f2
Revises: b3f29c61d0a7
Create Date: 2026-11-23 17:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "d51a7e0c93f2"
down_revision: str | Sequence[str] | None = "b3f29c61d0a7"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("pull_requested_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("pull_requested_at")
