"""Indexes for the engine's per-record look-ups, so they stop reading a growing set.

- contacts: each identity-key index now starts with its key, ``(key, workspace_id)``
  instead of ``(workspace_id, key)``: candidate matching ORs the keys, and each arm of
  the OR can use only an index led by its own column.
- invoices: matching compares ``lower(number)`` and ``lower(reference)``; the plain
  ``(workspace_id, number)`` index served neither. The reference index is a hash index
  on PostgreSQL, whose btree entries cannot hold a long (uncapped) reference.
- links: ``(resource, canonical_id, account_id)`` instead of ``(account_id, resource,
  canonical_id)``, which also serves the look-ups of a record's links at any account.
- outbox: ``(resource, canonical_id, account_id)``, for a record's active rows.

Revision ID: e6a41c2f0b85
Revises: d51a7e0c93f2
Create Date: 2026-11-23 18:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e6a41c2f0b85"
down_revision: str | Sequence[str] | None = "d51a7e0c93f2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTACT_KEYS = ("vat_number", "email", "coc_number", "iban", "postal_code")


def upgrade() -> None:
    """Apply this revision."""
    for key in CONTACT_KEYS:
        op.drop_index(f"ix_contacts_workspace_id_{key}", table_name="contacts")
        op.create_index(f"ix_contacts_{key}_workspace_id", "contacts", [key, "workspace_id"])
    op.drop_index("ix_invoices_workspace_id_number", table_name="invoices")
    op.create_index(
        "ix_invoices_lower_number_workspace_id",
        "invoices",
        [sa.text("lower(number)"), "workspace_id"],
    )
    op.create_index(
        "ix_invoices_lower_reference",
        "invoices",
        [sa.text("lower(reference)")],
        postgresql_using="hash",
    )
    op.drop_index("ix_links_account_id_resource_canonical_id", table_name="links")
    op.create_index(
        "ix_links_resource_canonical_id_account_id",
        "links",
        ["resource", "canonical_id", "account_id"],
    )
    op.create_index(
        "ix_outbox_resource_canonical_id_account_id",
        "outbox",
        ["resource", "canonical_id", "account_id"],
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_outbox_resource_canonical_id_account_id", table_name="outbox")
    op.drop_index("ix_links_resource_canonical_id_account_id", table_name="links")
    op.create_index(
        "ix_links_account_id_resource_canonical_id",
        "links",
        ["account_id", "resource", "canonical_id"],
    )
    op.drop_index("ix_invoices_lower_reference", table_name="invoices")
    op.drop_index("ix_invoices_lower_number_workspace_id", table_name="invoices")
    op.create_index("ix_invoices_workspace_id_number", "invoices", ["workspace_id", "number"])
    for key in CONTACT_KEYS:
        op.drop_index(f"ix_contacts_{key}_workspace_id", table_name="contacts")
        op.create_index(f"ix_contacts_workspace_id_{key}", "contacts", ["workspace_id", key])
