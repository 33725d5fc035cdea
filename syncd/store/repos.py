"""Queries per aggregate for the engine: rows in, rows out, no sync decisions here.

The runner (``syncd/runner.py``) decides; these functions only read and write the tables
of ``syncd/store/tables.py`` inside the caller's session and transaction. Canonical rows
are converted to and from the field dicts the pure core works on (``core.model.to_fields``
form: Decimals as strings, dates ISO, invoice lines as a list of dicts, references to
other canonical entities as canonical ids in text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

from sqlalchemy import ColumnElement, and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from syncd.core.model import (
    CONTACT_FIELDS,
    Contact,
    Invoice,
    Payment,
    contact_from_fields,
    invoice_from_fields,
    normalise,
    payment_from_fields,
    to_fields,
)
from syncd.store import tables as t

Resource: TypeAlias = Literal["contacts", "invoices", "payments"]
Entity: TypeAlias = t.Contact | t.Invoice | t.Payment

ENTITY_TABLES: Mapping[str, type[Entity]] = {
    "contacts": t.Contact,
    "invoices": t.Invoice,
    "payments": t.Payment,
}


# --------------------------------------------------------------------------- accounts


async def ensure_workspace(session: AsyncSession, name: str) -> t.Workspace:
    """The workspace row named ``name``, created when missing."""
    row = (await session.execute(select(t.Workspace).where(t.Workspace.name == name))).scalar()
    if row is None:
        row = t.Workspace(name=name)
        session.add(row)
        await session.flush()
    return row


async def ensure_account(
    session: AsyncSession, *, workspace_id: int, name: str, vendor: str
) -> t.Account:
    """The account row named ``name`` (kept in step with the config), created when missing."""
    row = (await session.execute(select(t.Account).where(t.Account.name == name))).scalar()
    if row is None:
        row = t.Account(workspace_id=workspace_id, name=name, vendor=vendor, state="active")
        session.add(row)
        await session.flush()
    elif row.workspace_id != workspace_id or row.vendor != vendor:
        row.workspace_id = workspace_id
        row.vendor = vendor
    return row


async def account_by_id(session: AsyncSession, account_id: int) -> t.Account:
    row = await session.get(t.Account, account_id)
    if row is None:
        raise LookupError(f"account {account_id} is not in the database")
    return row


# --------------------------------------------------------------------------- links


async def link_by_external(
    session: AsyncSession, account_id: int, resource: str, external_id: str
) -> t.Link | None:
    stmt = select(t.Link).where(
        t.Link.account_id == account_id,
        t.Link.resource == resource,
        t.Link.external_id == external_id,
    )
    return (await session.execute(stmt)).scalar()


async def link_by_entity(
    session: AsyncSession, account_id: int, resource: str, canonical_id: int
) -> t.Link | None:
    stmt = (
        select(t.Link)
        .where(
            t.Link.account_id == account_id,
            t.Link.resource == resource,
            t.Link.canonical_id == canonical_id,
        )
        .order_by(t.Link.id)
    )
    return (await session.execute(stmt)).scalars().first()


async def first_link(session: AsyncSession, resource: str, canonical_id: int) -> t.Link | None:
    """The oldest link of a canonical record: the account it was first seen in."""
    stmt = (
        select(t.Link)
        .where(t.Link.resource == resource, t.Link.canonical_id == canonical_id)
        .order_by(t.Link.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalars().first()


async def links_of_entity(session: AsyncSession, resource: str, canonical_id: int) -> list[t.Link]:
    stmt = select(t.Link).where(t.Link.resource == resource, t.Link.canonical_id == canonical_id)
    return list((await session.execute(stmt)).scalars())


async def linked_accounts(
    session: AsyncSession, resource: str, canonical_ids: Iterable[int]
) -> dict[int, set[int]]:
    """For each canonical id: the ids of the accounts that hold a link to it."""
    ids = list(set(canonical_ids))
    found: dict[int, set[int]] = {i: set() for i in ids}
    if not ids:
        return found
    stmt = select(t.Link.canonical_id, t.Link.account_id).where(
        t.Link.resource == resource, t.Link.canonical_id.in_(ids)
    )
    for canonical_id, account_id in (await session.execute(stmt)).all():
        found[canonical_id].add(account_id)
    return found


async def external_ids(session: AsyncSession, account_id: int, resource: str) -> dict[str, t.Link]:
    """Every link of one account and resource, by external id (reconcile)."""
    stmt = select(t.Link).where(t.Link.account_id == account_id, t.Link.resource == resource)
    return {link.external_id: link for link in (await session.execute(stmt)).scalars()}


# --------------------------------------------------------------------------- canonical rows


def _ref(value: int | None) -> str | None:
    return None if value is None else str(value)


def _id(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{what} is not a canonical id: {value!r}") from None


async def load_entity(session: AsyncSession, resource: str, canonical_id: int) -> Entity | None:
    return await session.get(ENTITY_TABLES[resource], canonical_id)


async def invoice_lines(session: AsyncSession, invoice_id: int) -> list[t.InvoiceLine]:
    stmt = (
        select(t.InvoiceLine)
        .where(t.InvoiceLine.invoice_id == invoice_id)
        .order_by(t.InvoiceLine.position)
    )
    return list((await session.execute(stmt)).scalars())


async def entity_value(
    session: AsyncSession, resource: str, row: Entity
) -> Contact | Invoice | Payment:
    """The canonical model value of a row (references as canonical ids in text)."""
    if isinstance(row, t.Contact):
        return contact_from_fields({name: getattr(row, name) for name in CONTACT_FIELDS})
    if isinstance(row, t.Invoice):
        lines = await invoice_lines(session, row.id)
        return invoice_from_fields(
            {
                "number": row.number,
                "contact": _ref(row.contact_id),
                "issue_date": None if row.issue_date is None else row.issue_date.isoformat(),
                "due_date": None if row.due_date is None else row.due_date.isoformat(),
                "currency": row.currency,
                "status": row.status,
                "lines": [
                    {
                        "description": line.description,
                        "quantity": str(line.quantity),
                        "unit_price": str(line.unit_price),
                        "vat_rate": str(line.vat_rate),
                        "line_total": None if line.line_total is None else str(line.line_total),
                    }
                    for line in lines
                ],
                "subtotal": str(row.subtotal),
                "tax_total": str(row.tax_total),
                "total": str(row.total),
                "amount_paid": str(row.amount_paid),
                "reference": row.reference,
            }
        )
    return payment_from_fields(
        {
            "invoice": _ref(row.invoice_id),
            "date": row.date.isoformat(),
            "amount": str(row.amount),
            "method": row.method,
            "reference": row.reference,
        }
    )


async def entity_fields(session: AsyncSession, resource: str, row: Entity) -> dict[str, Any]:
    """The row as canonical fields (``to_fields`` form of the normalised value)."""
    return to_fields(normalise(await entity_value(session, resource, row)))


def value_from_fields(resource: str, fields: Mapping[str, Any]) -> Contact | Invoice | Payment:
    if resource == "contacts":
        return contact_from_fields(fields)
    if resource == "invoices":
        return invoice_from_fields(fields)
    return payment_from_fields(fields)


async def write_entity(
    session: AsyncSession, resource: str, row: Entity, fields: Mapping[str, Any]
) -> None:
    """Set every column of ``row`` from the complete canonical ``fields``."""
    value = normalise(value_from_fields(resource, fields))
    if isinstance(row, t.Contact):
        assert isinstance(value, Contact)
        for name in CONTACT_FIELDS:
            new = getattr(value, name)
            if getattr(row, name) != new:
                setattr(row, name, new)
        return
    if isinstance(row, t.Invoice):
        assert isinstance(value, Invoice)
        columns: dict[str, Any] = {
            "number": value.number,
            "contact_id": _id(value.contact, "invoice contact"),
            "issue_date": value.issue_date,
            "due_date": value.due_date,
            "currency": value.currency,
            "status": value.status,
            "subtotal": value.subtotal,
            "tax_total": value.tax_total,
            "total": value.total,
            "amount_paid": value.amount_paid,
            "reference": value.reference,
        }
        for name, new in columns.items():
            if getattr(row, name) != new:
                setattr(row, name, new)
        current = await invoice_lines(session, row.id)
        wanted = [
            (line.description, line.quantity, line.unit_price, line.vat_rate, line.line_total)
            for line in value.lines
        ]
        have = [
            (line.description, line.quantity, line.unit_price, line.vat_rate, line.line_total)
            for line in current
        ]
        if wanted != have:
            await session.execute(delete(t.InvoiceLine).where(t.InvoiceLine.invoice_id == row.id))
            for position, line in enumerate(value.lines):
                session.add(
                    t.InvoiceLine(
                        workspace_id=row.workspace_id,
                        invoice_id=row.id,
                        position=position,
                        description=line.description,
                        quantity=line.quantity,
                        unit_price=line.unit_price,
                        vat_rate=line.vat_rate,
                        line_total=line.line_total,
                    )
                )
        return
    assert isinstance(value, Payment)
    invoice_id = _id(value.invoice, "payment invoice")
    if invoice_id is None:
        raise ValueError("a canonical payment needs its invoice")
    columns = {
        "invoice_id": invoice_id,
        "date": value.date,
        "amount": value.amount,
        "method": value.method,
        "reference": value.reference,
    }
    for name, new in columns.items():
        if getattr(row, name) != new:
            setattr(row, name, new)


async def new_entity(
    session: AsyncSession, resource: str, workspace_id: int, fields: Mapping[str, Any]
) -> Entity:
    """Insert a canonical row holding ``fields``; returns it with its id."""
    value = normalise(value_from_fields(resource, fields))
    row: Entity
    if isinstance(value, Contact):
        row = t.Contact(workspace_id=workspace_id, **{n: getattr(value, n) for n in CONTACT_FIELDS})
        session.add(row)
        await session.flush()
        return row
    if isinstance(value, Invoice):
        row = t.Invoice(
            workspace_id=workspace_id,
            currency=value.currency,
            status=value.status,
            subtotal=value.subtotal,
            tax_total=value.tax_total,
            total=value.total,
            amount_paid=value.amount_paid,
        )
    else:
        row = t.Payment(
            workspace_id=workspace_id,
            invoice_id=_id(value.invoice, "payment invoice"),
            date=value.date,
            amount=value.amount,
        )
    session.add(row)
    await session.flush()
    await write_entity(session, resource, row, fields)
    await session.flush()
    return row


async def contact_candidates(
    session: AsyncSession,
    workspace_id: int,
    contact: Contact,
    extra_vat: str | None,
    *,
    deleted: bool = False,
) -> list[t.Contact]:
    """Canonical contacts sharing a queried key value with ``contact`` (normalised): the
    live ones, or with ``deleted`` the deleted ones."""
    value = normalise(contact)
    clauses: list[ColumnElement[bool]] = []
    vats = {v for v in (value.vat_number, extra_vat) if v}
    if vats:
        clauses.append(t.Contact.vat_number.in_(vats))
    for column, wanted in (
        (t.Contact.coc_number, value.coc_number),
        (t.Contact.email, value.email),
        (t.Contact.iban, value.iban),
        (t.Contact.postal_code, value.postal_code),
    ):
        if wanted:
            clauses.append(column == wanted)
    if not clauses:
        return []
    stmt = (
        select(t.Contact)
        .where(
            t.Contact.workspace_id == workspace_id,
            t.Contact.deleted_at.is_not(None) if deleted else t.Contact.deleted_at.is_(None),
            or_(*clauses),
        )
        .order_by(t.Contact.id)
        .limit(50)
    )
    return list((await session.execute(stmt)).scalars())


async def invoice_candidates(
    session: AsyncSession, workspace_id: int, invoice: Invoice
) -> list[t.Invoice]:
    clauses: list[ColumnElement[bool]] = []
    if invoice.number:
        clauses.append(func.lower(t.Invoice.number) == invoice.number.lower())
    if invoice.reference:
        clauses.append(func.lower(t.Invoice.reference) == invoice.reference.lower())
    if not clauses:
        return []
    stmt = (
        select(t.Invoice)
        .where(
            t.Invoice.workspace_id == workspace_id,
            t.Invoice.deleted_at.is_(None),
            or_(*clauses),
        )
        .order_by(t.Invoice.id)
        .limit(50)
    )
    return list((await session.execute(stmt)).scalars())


async def payment_candidates(
    session: AsyncSession, workspace_id: int, payment: Payment
) -> list[t.Payment]:
    invoice_id = _id(payment.invoice, "payment invoice")
    stmt = (
        select(t.Payment)
        .where(
            t.Payment.workspace_id == workspace_id,
            t.Payment.deleted_at.is_(None),
            t.Payment.invoice_id == invoice_id,
            t.Payment.date == payment.date,
            t.Payment.amount == payment.amount,
        )
        .order_by(t.Payment.id)
    )
    return list((await session.execute(stmt)).scalars())


# --------------------------------------------------------------------------- conflicts


async def open_conflicts(
    session: AsyncSession, resource: str, canonical_id: int
) -> dict[str, t.Conflict]:
    stmt = select(t.Conflict).where(
        t.Conflict.resource == resource,
        t.Conflict.canonical_id == canonical_id,
        t.Conflict.state == "open",
    )
    return {row.field: row for row in (await session.execute(stmt)).scalars()}


async def creating_account(session: AsyncSession, resource: str, canonical_id: int) -> int | None:
    """The account a canonical record was made from: that of its first audit row."""
    stmt = (
        select(t.Audit.account_id)
        .where(
            t.Audit.resource == resource,
            t.Audit.canonical_id == canonical_id,
            t.Audit.field == "*",
        )
        .order_by(t.Audit.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar()


async def last_change_accounts(
    session: AsyncSession, resource: str, canonical_id: int
) -> dict[str, int | None]:
    """Per field: the account of the newest audit row that changed it (None: the engine)."""
    stmt = (
        select(t.Audit.field, t.Audit.account_id)
        .where(t.Audit.resource == resource, t.Audit.canonical_id == canonical_id)
        .order_by(t.Audit.id)
    )
    found: dict[str, int | None] = {}
    for name, account_id in (await session.execute(stmt)).all():
        found[name] = account_id
    return found


# --------------------------------------------------------------------------- review queues


async def open_review(
    session: AsyncSession, account_id: int, resource: str, external_id: str
) -> t.MatchReview | None:
    stmt = (
        select(t.MatchReview)
        .where(
            t.MatchReview.account_id == account_id,
            t.MatchReview.resource == resource,
            t.MatchReview.external_id == external_id,
        )
        .order_by(t.MatchReview.id.desc())
    )
    return (await session.execute(stmt)).scalars().first()


async def rejected_candidates(
    session: AsyncSession, account_id: int, resource: str, external_id: str
) -> frozenset[int]:
    """Canonical ids a person said one vendor record is not, over all its rejected reviews."""
    stmt = select(t.MatchReview.candidates).where(
        t.MatchReview.account_id == account_id,
        t.MatchReview.resource == resource,
        t.MatchReview.external_id == external_id,
        t.MatchReview.state == "rejected",
    )
    return frozenset(
        int(candidate["canonical_id"])
        for (candidates,) in (await session.execute(stmt)).all()
        for candidate in candidates
        if isinstance(candidate, dict) and "canonical_id" in candidate
    )


async def open_reviews(
    session: AsyncSession, account_id: int, resource: str
) -> list[t.MatchReview]:
    """The open match reviews of one account and resource."""
    stmt = select(t.MatchReview).where(
        t.MatchReview.account_id == account_id,
        t.MatchReview.resource == resource,
        t.MatchReview.state == "open",
    )
    return list((await session.execute(stmt)).scalars())


async def open_review_candidates(
    session: AsyncSession, account_id: int, resource: str
) -> dict[int, int]:
    """Canonical ids named by open match reviews of one account: {canonical id: review id}."""
    return review_candidates(await open_reviews(session, account_id, resource))


def review_candidates(reviews: Iterable[t.MatchReview]) -> dict[int, int]:
    """Canonical ids the given reviews name as candidates: {canonical id: review id}."""
    found: dict[int, int] = {}
    for review in reviews:
        for candidate in review.candidates:
            if isinstance(candidate, dict) and "canonical_id" in candidate:
                found.setdefault(int(candidate["canonical_id"]), review.id)
    return found


async def claim_outbox(session: AsyncSession, row_id: int) -> t.Outbox | None:
    """Outbox row ``row_id``, locked for this transaction; None if gone or locked elsewhere.

    ``FOR UPDATE SKIP LOCKED``: two pushers never claim one row, and neither waits on the
    other. ``populate_existing`` so that a row already in the session is read afresh.
    """
    stmt = (
        select(t.Outbox)
        .where(t.Outbox.id == row_id)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.execute(stmt)).scalars().first()


async def upsert_quarantine(
    session: AsyncSession,
    *,
    account_id: int,
    resource: str,
    external_id: str | None,
    reason: str,
    payload: Any,
    now: dt.datetime,
) -> None:
    row = None
    if external_id is not None:
        stmt = select(t.Quarantine).where(
            t.Quarantine.account_id == account_id,
            t.Quarantine.resource == resource,
            t.Quarantine.external_id == external_id,
        )
        row = (await session.execute(stmt)).scalar()
    if row is None:
        session.add(
            t.Quarantine(
                account_id=account_id,
                resource=resource,
                external_id=external_id,
                reason=reason,
                payload=payload,
                first_seen_at=now,
                last_seen_at=now,
            )
        )
        return
    row.reason = reason
    row.payload = payload
    row.last_seen_at = now
    row.resolved_at = None


WAITING_REASONS = ("contact not synced", "invoice not synced")


async def waiting_quarantine(
    session: AsyncSession, account_id: int, resource: str, limit: int
) -> list[str]:
    """External ids quarantined only because what they refer to was not linked yet."""
    stmt = (
        select(t.Quarantine.external_id)
        .where(
            t.Quarantine.account_id == account_id,
            t.Quarantine.resource == resource,
            t.Quarantine.resolved_at.is_(None),
            t.Quarantine.external_id.is_not(None),
            or_(*(t.Quarantine.reason.startswith(r) for r in WAITING_REASONS)),
        )
        .order_by(t.Quarantine.last_seen_at)
        .limit(limit)
    )
    return [i for i in (await session.execute(stmt)).scalars() if i is not None]


async def resolve_quarantine(
    session: AsyncSession, account_id: int, resource: str, external_id: str, now: dt.datetime
) -> None:
    stmt = select(t.Quarantine).where(
        t.Quarantine.account_id == account_id,
        t.Quarantine.resource == resource,
        t.Quarantine.external_id == external_id,
        t.Quarantine.resolved_at.is_(None),
    )
    for row in (await session.execute(stmt)).scalars():
        row.resolved_at = now


# --------------------------------------------------------------------------- outbox


ACTIVE_STATES: Sequence[str] = ("pending", "sending", "uncertain", "failed")


async def active_outbox(
    session: AsyncSession, account_id: int, resource: str, canonical_id: int
) -> list[t.Outbox]:
    stmt = (
        select(t.Outbox)
        .where(
            t.Outbox.account_id == account_id,
            t.Outbox.resource == resource,
            t.Outbox.canonical_id == canonical_id,
            t.Outbox.state.in_(ACTIVE_STATES),
        )
        .order_by(t.Outbox.id)
    )
    return list((await session.execute(stmt)).scalars())


async def active_removals(
    session: AsyncSession, resource: str, canonical_id: int
) -> list[t.Outbox]:
    """Queued deletions or archivals of one record, at any account."""
    stmt = select(t.Outbox).where(
        t.Outbox.resource == resource,
        t.Outbox.canonical_id == canonical_id,
        t.Outbox.op.in_(("delete", "archive")),
        t.Outbox.state.in_(("pending", "failed")),
    )
    return list((await session.execute(stmt)).scalars())


async def resources_with_due_creates(
    session: AsyncSession, account_id: int, now: dt.datetime
) -> set[str]:
    """Resources with creates for the account that are due to be sent."""
    stmt = (
        select(t.Outbox.resource)
        .where(
            t.Outbox.account_id == account_id,
            t.Outbox.op == "create",
            t.Outbox.state.in_(("pending", "failed")),
            t.Outbox.next_attempt_at <= now,
        )
        .distinct()
    )
    return {resource for (resource,) in (await session.execute(stmt)).all()}


async def due_outbox(
    session: AsyncSession, account_id: int, now: dt.datetime, limit: int = 50
) -> list[int]:
    stmt = (
        select(t.Outbox.id)
        .where(
            t.Outbox.account_id == account_id,
            t.Outbox.state.in_(("pending", "failed")),
            t.Outbox.next_attempt_at <= now,
        )
        .order_by(t.Outbox.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def unsettled_outbox(
    session: AsyncSession, account_id: int, resource: str | None = None
) -> list[int]:
    """Rows whose write may have landed (``sending`` after a crash, ``uncertain``)."""
    clauses = [t.Outbox.account_id == account_id, t.Outbox.state.in_(("sending", "uncertain"))]
    if resource is not None:
        clauses.append(t.Outbox.resource == resource)
    stmt = select(t.Outbox.id).where(and_(*clauses)).order_by(t.Outbox.id)
    return list((await session.execute(stmt)).scalars())


async def outbox_waiting(
    session: AsyncSession, account_ids: Iterable[int]
) -> tuple[int, dt.datetime | None]:
    """How many rows still wait to be pushed, and the earliest time one is due."""
    ids = list(account_ids)
    stmt = select(func.count(), func.min(t.Outbox.next_attempt_at)).where(
        t.Outbox.account_id.in_(ids), t.Outbox.state.in_(ACTIVE_STATES)
    )
    count, earliest = (await session.execute(stmt)).one()
    return int(count or 0), earliest


# --------------------------------------------------------------------------- cursors


async def cursor_row(session: AsyncSession, account_id: int, resource: str) -> t.Cursor:
    stmt = select(t.Cursor).where(t.Cursor.account_id == account_id, t.Cursor.resource == resource)
    row = (await session.execute(stmt)).scalar()
    if row is None:
        row = t.Cursor(account_id=account_id, resource=resource)
        session.add(row)
        await session.flush()
    return row
