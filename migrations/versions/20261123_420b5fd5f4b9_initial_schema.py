"""Initial schema: every table of the canonical store (DESIGN section 4).

Revision ID: 420b5fd5f4b9
Revises:
Create Date: 2026-11-23 09:26:32.875743+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "420b5fd5f4b9"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out here rather than imported from syncd, so this revision never changes.
# Integer keys: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "workspaces",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspaces")),
        sa.UniqueConstraint("name", name=op.f("uq_workspaces_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "accounts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("vendor", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('active', 'paused', 'auth_failed')", name=op.f("ck_accounts_state")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_accounts_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "conflicts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("canonical_id", ID, nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("candidates", JSON, nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("resolution", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_conflicts_resource"),
        ),
        sa.CheckConstraint("state IN ('open', 'resolved')", name=op.f("ck_conflicts_state")),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_conflicts_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_conflicts_resource_canonical_id"),
        "conflicts",
        ["resource", "canonical_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conflicts_workspace_id_state"),
        "conflicts",
        ["workspace_id", "state"],
        unique=False,
    )
    op.create_table(
        "contacts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("first_name", sa.String(), nullable=True),
        sa.Column("last_name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("phone", sa.String(), nullable=True),
        sa.Column("website", sa.String(), nullable=True),
        sa.Column("address_line1", sa.String(), nullable=True),
        sa.Column("address_line2", sa.String(), nullable=True),
        sa.Column("postal_code", sa.String(), nullable=True),
        sa.Column("city", sa.String(), nullable=True),
        sa.Column("region", sa.String(), nullable=True),
        sa.Column("country", sa.String(), nullable=True),
        sa.Column("vat_number", sa.String(), nullable=True),
        sa.Column("coc_number", sa.String(), nullable=True),
        sa.Column("iban", sa.String(), nullable=True),
        sa.Column("bic", sa.String(), nullable=True),
        sa.Column("customer_number", sa.String(), nullable=True),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_contacts_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_contacts_workspace_id_coc_number"),
        "contacts",
        ["workspace_id", "coc_number"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contacts_workspace_id_email"), "contacts", ["workspace_id", "email"], unique=False
    )
    op.create_index(
        op.f("ix_contacts_workspace_id_iban"), "contacts", ["workspace_id", "iban"], unique=False
    )
    op.create_index(
        op.f("ix_contacts_workspace_id_postal_code"),
        "contacts",
        ["workspace_id", "postal_code"],
        unique=False,
    )
    op.create_index(
        op.f("ix_contacts_workspace_id_vat_number"),
        "contacts",
        ["workspace_id", "vat_number"],
        unique=False,
    )
    op.create_table(
        "audit",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("canonical_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=True),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("old", JSON, nullable=True),
        sa.Column("new", JSON, nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_audit_resource"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_audit_account_id_accounts"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_audit_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_audit_resource_canonical_id"), "audit", ["resource", "canonical_id"], unique=False
    )
    op.create_table(
        "cursors",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("checkpoint", JSON, nullable=True),
        sa.Column("last_full_sweep_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_cursors_resource"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_cursors_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cursors")),
        sa.UniqueConstraint("account_id", "resource", name=op.f("uq_cursors_account_id_resource")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "invoices",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("number", sa.String(), nullable=True),
        sa.Column("contact_id", ID, nullable=True),
        sa.Column("issue_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("subtotal", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("tax_total", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("total", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("amount_paid", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("reference", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_invoices_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_invoices_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_invoices_contact_id"), "invoices", ["contact_id"], unique=False)
    op.create_index(
        op.f("ix_invoices_workspace_id_number"),
        "invoices",
        ["workspace_id", "number"],
        unique=False,
    )
    op.create_table(
        "leases",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("fencing_token", ID, nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_leases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
        sa.UniqueConstraint("account_id", name=op.f("uq_leases_account_id")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "links",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("canonical_id", ID, nullable=False),
        sa.Column("base", JSON, nullable=False),
        sa.Column("base_fingerprint", sa.String(), nullable=False),
        sa.Column("external_version", sa.String(), nullable=True),
        sa.Column("external_updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_links_resource"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_links_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_links")),
        sa.UniqueConstraint(
            "account_id",
            "resource",
            "external_id",
            name=op.f("uq_links_account_id_resource_external_id"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_links_account_id_resource_canonical_id"),
        "links",
        ["account_id", "resource", "canonical_id"],
        unique=False,
    )
    op.create_table(
        "match_reviews",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("candidates", JSON, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("chosen_canonical_id", ID, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_match_reviews_resource"),
        ),
        sa.CheckConstraint(
            "state IN ('open', 'accepted', 'rejected')", name=op.f("ck_match_reviews_state")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_match_reviews_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_match_reviews_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_reviews")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_match_reviews_account_id_resource_external_id"),
        "match_reviews",
        ["account_id", "resource", "external_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_match_reviews_workspace_id_state"),
        "match_reviews",
        ["workspace_id", "state"],
        unique=False,
    )
    op.create_table(
        "outbox",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("op", sa.String(), nullable=False),
        sa.Column("canonical_id", ID, nullable=False),
        sa.Column("fields", JSON, nullable=False),
        sa.Column("client_token", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "op IN ('create', 'update', 'delete', 'archive')", name=op.f("ck_outbox_op")
        ),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_outbox_resource"),
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'sending', 'uncertain', 'done', 'failed', 'dead')",
            name=op.f("ck_outbox_state"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_outbox_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint(
            "account_id", "client_token", name=op.f("uq_outbox_account_id_client_token")
        ),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_outbox_account_id_state_next_attempt_at"),
        "outbox",
        ["account_id", "state", "next_attempt_at"],
        unique=False,
    )
    op.create_table(
        "quarantine",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("resource", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", JSON, nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "resource IN ('contacts', 'invoices', 'invoice_lines', 'payments')",
            name=op.f("ck_quarantine_resource"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_quarantine_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantine")),
        sa.UniqueConstraint(
            "account_id",
            "resource",
            "external_id",
            name=op.f("uq_quarantine_account_id_resource_external_id"),
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "rate_buckets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("refilled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("penalty_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("log", JSON, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_rate_buckets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_buckets")),
        sa.UniqueConstraint(
            "account_id", "window_seconds", name=op.f("uq_rate_buckets_account_id_window_seconds")
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "sync_runs",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pulled", sa.Integer(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("pushed", sa.Integer(), nullable=False),
        sa.Column("conflicts", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("job IN ('pull', 'push', 'reconcile')", name=op.f("ck_sync_runs_job")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_sync_runs_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_sync_runs_account_id_started_at"),
        "sync_runs",
        ["account_id", "started_at"],
        unique=False,
    )
    op.create_index(op.f("ix_sync_runs_run_id"), "sync_runs", ["run_id"], unique=False)
    op.create_table(
        "invoice_lines",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=18, scale=4), nullable=False),
        sa.Column("unit_price", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("vat_rate", sa.Numeric(precision=5, scale=2), nullable=False),
        sa.Column("line_total", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_lines_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_invoice_lines_workspace_id_workspaces"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        op.f("ix_invoice_lines_invoice_id_position"),
        "invoice_lines",
        ["invoice_id", "position"],
        unique=False,
    )
    op.create_table(
        "payments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("workspace_id", ID, nullable=False),
        sa.Column("invoice_id", ID, nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=False),
        sa.Column("method", sa.String(), nullable=True),
        sa.Column("reference", sa.String(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_payments_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspaces.id"], name=op.f("fk_payments_workspace_id_workspaces")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_payments_invoice_id"), "payments", ["invoice_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_payments_invoice_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_index(op.f("ix_invoice_lines_invoice_id_position"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index(op.f("ix_sync_runs_run_id"), table_name="sync_runs")
    op.drop_index(op.f("ix_sync_runs_account_id_started_at"), table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_table("rate_buckets")
    op.drop_table("quarantine")
    op.drop_index(op.f("ix_outbox_account_id_state_next_attempt_at"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index(op.f("ix_match_reviews_workspace_id_state"), table_name="match_reviews")
    op.drop_index(
        op.f("ix_match_reviews_account_id_resource_external_id"), table_name="match_reviews"
    )
    op.drop_table("match_reviews")
    op.drop_index(op.f("ix_links_account_id_resource_canonical_id"), table_name="links")
    op.drop_table("links")
    op.drop_table("leases")
    op.drop_index(op.f("ix_invoices_workspace_id_number"), table_name="invoices")
    op.drop_index(op.f("ix_invoices_contact_id"), table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("cursors")
    op.drop_index(op.f("ix_audit_resource_canonical_id"), table_name="audit")
    op.drop_table("audit")
    op.drop_index(op.f("ix_contacts_workspace_id_vat_number"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_id_postal_code"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_id_iban"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_id_email"), table_name="contacts")
    op.drop_index(op.f("ix_contacts_workspace_id_coc_number"), table_name="contacts")
    op.drop_table("contacts")
    op.drop_index(op.f("ix_conflicts_workspace_id_state"), table_name="conflicts")
    op.drop_index(op.f("ix_conflicts_resource_canonical_id"), table_name="conflicts")
    op.drop_table("conflicts")
    op.drop_table("accounts")
    op.drop_table("workspaces")
