"""The tables of the canonical store (DESIGN section 4) as typed SQLAlchemy models."""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from syncd.store.db import Base, ExactNumeric, Id, Json, Money, UTCDateTime, utcnow

__all__ = [
    "ACCOUNT_STATES",
    "CONFLICT_STATES",
    "MATCH_REVIEW_STATES",
    "OUTBOX_OPS",
    "OUTBOX_STATES",
    "RESOURCES",
    "SYNC_JOBS",
    "Account",
    "Audit",
    "Conflict",
    "Contact",
    "Cursor",
    "Instance",
    "Invoice",
    "InvoiceLine",
    "Lease",
    "Link",
    "MatchReview",
    "Outbox",
    "Payment",
    "Quarantine",
    "RateBucket",
    "SyncRun",
    "Workspace",
]

# Allowed values of the constrained text columns; CHECK constraints are built from these.
RESOURCES = ("contacts", "invoices", "invoice_lines", "payments")
ACCOUNT_STATES = ("active", "paused", "auth_failed")
OUTBOX_OPS = ("create", "update", "delete", "archive")
OUTBOX_STATES = ("pending", "sending", "uncertain", "done", "failed", "dead")
CONFLICT_STATES = ("open", "resolved")
MATCH_REVIEW_STATES = ("open", "accepted", "rejected")
SYNC_JOBS = ("pull", "push", "reconcile")

# Ids are never reused on SQLite either (AUTOINCREMENT), matching PostgreSQL sequences:
# audit rows and links refer to canonical ids long after a row is gone.
_NO_ID_REUSE = {"sqlite_autoincrement": True}


def _one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    """A named CHECK that ``column`` holds one of ``values``."""
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)


def _id() -> Mapped[int]:
    return mapped_column(Id, primary_key=True, autoincrement=True)


def _fk(target: str, *, nullable: bool = False, ondelete: str | None = None) -> Mapped[Any]:
    return mapped_column(Id, ForeignKey(target, ondelete=ondelete), nullable=nullable)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class Workspace(Base):
    """A group of accounts that sync with each other (``[[workspace]]`` in the config)."""

    __tablename__ = "workspaces"
    __table_args__ = (UniqueConstraint("name"), _NO_ID_REUSE)

    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String, nullable=False)
    created_at: Mapped[datetime] = _created()


class Account(Base):
    """One vendor account, mirrored from the config, with its operational state."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("name"), _one_of("state", ACCOUNT_STATES), _NO_ID_REUSE)

    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _fk("workspaces.id")
    name: Mapped[str] = mapped_column(String, nullable=False)
    vendor: Mapped[str] = mapped_column(String, nullable=False)
    state: Mapped[str] = mapped_column(String, nullable=False, default="active")
    state_reason: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A pull asked for by a webhook that reached an instance not holding the account:
    # the holder's outbox watch starts the pull and clears it (see syncd.scheduler).
    pull_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class _Canonical(Base):
    """Columns every canonical entity has: workspace, optimistic version, timestamps."""

    __abstract__ = True

    # sort_order: id and workspace first, bookkeeping last, the entity's own fields between.
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True, sort_order=-2)
    workspace_id: Mapped[int] = mapped_column(
        Id, ForeignKey("workspaces.id"), nullable=False, sort_order=-1
    )
    # The ORM checks and bumps this on every UPDATE (StaleDataError on a lost race).
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, sort_order=1)
    created_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, sort_order=1
    )
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow, sort_order=1
    )
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=1)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.version}


class Contact(_Canonical):
    """A canonical contact (organisation or person)."""

    __tablename__ = "contacts"
    # One index per identity key, the key first: matching ORs the keys, and each arm of
    # the OR can only use an index that starts with its own column (SQLite "MULTI-INDEX
    # OR", PostgreSQL "BitmapOr"); led by workspace_id they served only that column.
    __table_args__ = (
        Index(None, "vat_number", "workspace_id"),
        Index(None, "email", "workspace_id"),
        Index(None, "coc_number", "workspace_id"),
        Index(None, "iban", "workspace_id"),
        Index(None, "postal_code", "workspace_id"),
        _NO_ID_REUSE,
    )

    kind: Mapped[str] = mapped_column(String, nullable=False)
    name: Mapped[str] = mapped_column(String, nullable=False)
    first_name: Mapped[str | None] = mapped_column(String)
    last_name: Mapped[str | None] = mapped_column(String)
    email: Mapped[str | None] = mapped_column(String)
    phone: Mapped[str | None] = mapped_column(String)
    website: Mapped[str | None] = mapped_column(String)
    address_line1: Mapped[str | None] = mapped_column(String)
    address_line2: Mapped[str | None] = mapped_column(String)
    postal_code: Mapped[str | None] = mapped_column(String)
    city: Mapped[str | None] = mapped_column(String)
    region: Mapped[str | None] = mapped_column(String)
    country: Mapped[str | None] = mapped_column(String)
    vat_number: Mapped[str | None] = mapped_column(String)
    coc_number: Mapped[str | None] = mapped_column(String)
    iban: Mapped[str | None] = mapped_column(String)
    bic: Mapped[str | None] = mapped_column(String)
    customer_number: Mapped[str | None] = mapped_column(String)
    archived: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class Invoice(_Canonical):
    """A canonical sales invoice."""

    __tablename__ = "invoices"

    number: Mapped[str | None] = mapped_column(String)
    contact_id: Mapped[int | None] = _fk("contacts.id", nullable=True)
    issue_date: Mapped[dt.date | None] = mapped_column(Date)
    due_date: Mapped[dt.date | None] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    subtotal: Mapped[Decimal] = mapped_column(Money, nullable=False)
    tax_total: Mapped[Decimal] = mapped_column(Money, nullable=False)
    total: Mapped[Decimal] = mapped_column(Money, nullable=False)
    amount_paid: Mapped[Decimal] = mapped_column(Money, nullable=False)
    reference: Mapped[str | None] = mapped_column(String)

    # Matching compares number and reference case-insensitively, so the indexes are on
    # lower(...). A reference has no length cap (the number has, see TEXT_LIMITS), and a
    # PostgreSQL btree entry holds at most 2704 bytes: there it is a hash index, which
    # serves the equality look-up whatever the length (SQLite ignores the option).
    __table_args__ = (
        Index("ix_invoices_lower_number_workspace_id", func.lower(number), "workspace_id"),
        Index("ix_invoices_lower_reference", func.lower(reference), postgresql_using="hash"),
        Index(None, "contact_id"),
        _NO_ID_REUSE,
    )


class InvoiceLine(_Canonical):
    """One line of a canonical invoice; ``position`` orders lines within the invoice."""

    __tablename__ = "invoice_lines"
    __table_args__ = (Index(None, "invoice_id", "position"), _NO_ID_REUSE)

    invoice_id: Mapped[int] = _fk("invoices.id", ondelete="CASCADE")
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    quantity: Mapped[Decimal] = mapped_column(ExactNumeric(18, 4), nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    # A percentage: 21.00 means 21 %.
    vat_rate: Mapped[Decimal] = mapped_column(ExactNumeric(5, 2), nullable=False)
    line_total: Mapped[Decimal | None] = mapped_column(Money)


class Payment(_Canonical):
    """A payment registered against a canonical invoice."""

    __tablename__ = "payments"
    __table_args__ = (Index(None, "invoice_id"), _NO_ID_REUSE)

    invoice_id: Mapped[int] = _fk("invoices.id", ondelete="CASCADE")
    date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    method: Mapped[str | None] = mapped_column(String)
    reference: Mapped[str | None] = mapped_column(String)


class Link(Base):
    """Ties one vendor record (account, resource, external id) to a canonical entity."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("account_id", "resource", "external_id"),
        # Led by (resource, canonical_id): the engine also looks up every link of a record
        # without naming an account. The unique key above serves (account_id, resource).
        Index(None, "resource", "canonical_id", "account_id"),
        _one_of("resource", RESOURCES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    external_id: Mapped[str] = mapped_column(String, nullable=False)
    # Not a foreign key: it points into contacts, invoices, ... depending on ``resource``.
    canonical_id: Mapped[int] = mapped_column(Id, nullable=False)
    # Canonical fields as last agreed with this account: the merge base.
    base: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    base_fingerprint: Mapped[str] = mapped_column(String, nullable=False)
    external_version: Mapped[str | None] = mapped_column(String)
    external_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = _updated()
    # Set when the account deleted the record under ``delete = "ignore"``: the link is
    # kept so the record is never created there again, and nothing is written to it.
    detached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Cursor(Base):
    """Where the last pull of one (account, resource) got to."""

    __tablename__ = "cursors"
    __table_args__ = (
        UniqueConstraint("account_id", "resource"),
        _one_of("resource", RESOURCES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    value: Mapped[str | None] = mapped_column(String)
    # Mid-pull progress (page token, overlap window, ...) so an interrupted pull resumes.
    checkpoint: Mapped[dict[str, Any] | None] = mapped_column(Json)
    last_full_sweep_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = _updated()


class Outbox(Base):
    """One pending write to one account; drained in id order by the push job."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index(None, "account_id", "state", "next_attempt_at"),
        # A record's own rows, at one account or any: without it the look-up read every
        # pending row of the account, which is the whole backlog during an initial load.
        Index(None, "resource", "canonical_id", "account_id"),
        UniqueConstraint("account_id", "client_token"),
        _one_of("resource", RESOURCES),
        _one_of("op", OUTBOX_OPS),
        _one_of("state", OUTBOX_STATES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    op: Mapped[str] = mapped_column(String, nullable=False)
    canonical_id: Mapped[int] = mapped_column(Id, nullable=False)
    fields: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    # Written into a vendor field where possible, to find an uncertain create again.
    client_token: Mapped[str | None] = mapped_column(String)
    state: Mapped[str] = mapped_column(String, nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Conflict(Base):
    """A field both sides changed, with each account's value; open until resolved."""

    __tablename__ = "conflicts"
    __table_args__ = (
        Index(None, "workspace_id", "state"),
        Index(None, "resource", "canonical_id"),
        _one_of("resource", RESOURCES),
        _one_of("state", CONFLICT_STATES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _fk("workspaces.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    canonical_id: Mapped[int] = mapped_column(Id, nullable=False)
    field: Mapped[str] = mapped_column(String, nullable=False)
    # {account name: value}
    candidates: Mapped[dict[str, Any]] = mapped_column(Json, nullable=False)
    policy: Mapped[str] = mapped_column(String, nullable=False)
    state: Mapped[str] = mapped_column(String, nullable=False, default="open")
    resolution: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = _created()
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MatchReview(Base):
    """An ambiguous identity match awaiting a human decision; nothing was created for it."""

    __tablename__ = "match_reviews"
    __table_args__ = (
        Index(None, "workspace_id", "state"),
        Index(None, "account_id", "resource", "external_id"),
        _one_of("resource", RESOURCES),
        _one_of("state", MATCH_REVIEW_STATES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _fk("workspaces.id")
    account_id: Mapped[int] = _fk("accounts.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    external_id: Mapped[str] = mapped_column(String, nullable=False)
    # Candidate canonical entities with their scores, as the matcher produced them.
    candidates: Mapped[list[Any]] = mapped_column(Json, nullable=False)
    state: Mapped[str] = mapped_column(String, nullable=False, default="open")
    # The canonical entity the reviewer accepted, if any.
    chosen_canonical_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime] = _created()
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Quarantine(Base):
    """A vendor record that could not be mapped, kept with its reason and raw payload."""

    __tablename__ = "quarantine"
    __table_args__ = (
        UniqueConstraint("account_id", "resource", "external_id"),
        _one_of("resource", RESOURCES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    external_id: Mapped[str | None] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[Any] = mapped_column(Json, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Audit(Base):
    """One field-level change of a canonical entity: who, what, old, new, why."""

    __tablename__ = "audit"
    __table_args__ = (
        Index(None, "resource", "canonical_id"),
        _one_of("resource", RESOURCES),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    workspace_id: Mapped[int] = _fk("workspaces.id")
    resource: Mapped[str] = mapped_column(String, nullable=False)
    canonical_id: Mapped[int] = mapped_column(Id, nullable=False)
    # The account the change came from; NULL for the engine itself (or a removed account).
    account_id: Mapped[int | None] = _fk("accounts.id", nullable=True, ondelete="SET NULL")
    field: Mapped[str] = mapped_column(String, nullable=False)
    old: Mapped[Any] = mapped_column(Json, nullable=True)
    new: Mapped[Any] = mapped_column(Json, nullable=True)
    reason: Mapped[str] = mapped_column(String, nullable=False)
    run_id: Mapped[str | None] = mapped_column(String)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class RateBucket(Base):
    """One rate window of one account, shared by every syncd instance on this database."""

    __tablename__ = "rate_buckets"
    __table_args__ = (UniqueConstraint("account_id", "window_seconds"), _NO_ID_REUSE)

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    window_seconds: Mapped[int] = mapped_column(Integer, nullable=False)
    capacity: Mapped[int] = mapped_column(Integer, nullable=False)
    tokens: Mapped[float] = mapped_column(Double, nullable=False)
    refilled_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    penalty_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Optional sliding-window log of request times, for vendors that count that way.
    log: Mapped[list[Any] | None] = mapped_column(Json)


class Lease(Base):
    """Which instance holds an account, until when, under which fencing token."""

    __tablename__ = "leases"
    __table_args__ = (UniqueConstraint("account_id"), _NO_ID_REUSE)

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    owner: Mapped[str] = mapped_column(String, nullable=False)
    # Only ever increases for an account, so a stale holder's writes can be refused.
    fencing_token: Mapped[int] = mapped_column(Id, nullable=False)
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class Instance(Base):
    """A running ``syncd run`` process and its heartbeat, so instances can split accounts.

    Each instance renews its row while it runs and deletes it when it stops; a row whose
    ``expires_at`` passed belongs to an instance that died. Live instances each aim for
    ceil(accounts / live instances) leases, which spreads the accounts evenly.
    """

    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("owner"), _NO_ID_REUSE)

    id: Mapped[int] = _id()
    # The same name the instance writes into ``leases.owner`` (host:pid:random).
    owner: Mapped[str] = mapped_column(String, nullable=False)
    hostname: Mapped[str] = mapped_column(String, nullable=False)
    pid: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    # PostgreSQL: the advisory lock the process holds while it lives (None: an instance
    # that holds none, which only its expiry can declare dead). See syncd.store.leases.
    liveness_key: Mapped[int | None] = mapped_column(BigInteger)


class SyncRun(Base):
    """One run of one job for one account, with its counts."""

    __tablename__ = "sync_runs"
    __table_args__ = (
        Index(None, "account_id", "started_at"),
        Index(None, "run_id"),
        _one_of("job", SYNC_JOBS),
        _NO_ID_REUSE,
    )

    id: Mapped[int] = _id()
    account_id: Mapped[int] = _fk("accounts.id")
    job: Mapped[str] = mapped_column(String, nullable=False)
    run_id: Mapped[str] = mapped_column(String, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pulled: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    changed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pushed: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    conflicts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    errors: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String, nullable=False, default="running")
    error: Mapped[str | None] = mapped_column(Text)
