"""Hand-overs between instances: accounts.pull_requested_at, instances.liveness_key.

A webhook may reach an instance that does not hold the account's lease; that instance
records the request in ``accounts.pull_requested_at`` and the holder's outbox watch
starts the pull. On PostgreSQL each instance holds an advisory lock on its
``instances.liveness_key`` for as long as its process lives, so the others can tell a
dead instance at once and take its accounts without waiting for its leases to expire.

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
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("liveness_key", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("liveness_key")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("pull_requested_at")
