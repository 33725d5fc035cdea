"""The engine's per-record look-ups use an index on SQLite, not a scan of a growing table.

Each look-up is made by calling its ``syncd.store.repos`` function, so the statement is
the one the engine sends; it is captured on its way to the driver and explained with the
same parameters (``EXPLAIN QUERY PLAN``). A plan passes when it scans no table and every
index search it makes is narrowed by a column that identifies the record (not only by
workspace, account or state, which select a set that grows with the data).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from syncd.core.model import Contact, Invoice, Payment
from syncd.store import repos
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.migrate import aupgrade

CONTACT = Contact(
    kind="organization",
    name="Acme B.V.",
    email="billing@acme.example",
    postal_code="1234 AB",
    country="NL",
    vat_number="NL123456789B01",
    coc_number="12345678",
    iban="NL91ABNA0417164300",
)
INVOICE = Invoice(
    number="2026-0042",
    contact=None,
    issue_date=dt.date(2026, 11, 23),
    due_date=None,
    reference="PO 7781",
)
PAYMENT = Payment(invoice="7", date=dt.date(2026, 11, 23), amount=Decimal("12.10"))
CONTACT_KEYS = ("vat_number=", "email=", "coc_number=", "iban=", "postal_code=")


@dataclass(frozen=True)
class Lookup:
    name: str
    call: Callable[[AsyncSession], Awaitable[Any]]
    # Every index search in the plan must be narrowed by one of these constraints.
    narrowed_by: tuple[str, ...]

    def __str__(self) -> str:
        return self.name


LOOKUPS = [
    Lookup("link_by_external", lambda s: repos.link_by_external(s, 1, "contacts", "x-1"), ("external_id=",)),
    Lookup("link_by_entity", lambda s: repos.link_by_entity(s, 1, "contacts", 7), ("canonical_id=",)),
    Lookup("first_link", lambda s: repos.first_link(s, "contacts", 7), ("canonical_id=",)),
    Lookup("links_of_entity", lambda s: repos.links_of_entity(s, "contacts", 7), ("canonical_id=",)),
    Lookup("linked_accounts", lambda s: repos.linked_accounts(s, "contacts", [7, 8]), ("canonical_id=",)),
    Lookup("contact_candidates", lambda s: repos.contact_candidates(s, 1, CONTACT, "NL999999999B01"), CONTACT_KEYS),
    Lookup("deleted_contact_candidates", lambda s: repos.contact_candidates(s, 1, CONTACT, None, deleted=True), CONTACT_KEYS),
    Lookup("invoice_candidates", lambda s: repos.invoice_candidates(s, 1, INVOICE), ("<expr>=",)),
    Lookup("active_outbox", lambda s: repos.active_outbox(s, 2, "contacts", 7), ("canonical_id=",)),
    Lookup("active_removals", lambda s: repos.active_removals(s, "contacts", 7), ("canonical_id=",)),
    Lookup("open_conflicts", lambda s: repos.open_conflicts(s, "contacts", 7), ("canonical_id=",)),
    Lookup("last_change_accounts", lambda s: repos.last_change_accounts(s, "contacts", 7), ("canonical_id=",)),
    Lookup("open_review", lambda s: repos.open_review(s, 1, "contacts", "x-1"), ("external_id=",)),
    Lookup("rejected_candidates", lambda s: repos.rejected_candidates(s, 1, "contacts", "x-1"), ("external_id=",)),
    Lookup("invoice_lines", lambda s: repos.invoice_lines(s, 7), ("invoice_id=",)),
    Lookup("payment_candidates", lambda s: repos.payment_candidates(s, 1, PAYMENT), ("invoice_id=",)),
]  # fmt: skip


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    await aupgrade(sqlite_url)
    engine = create_engine(sqlite_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _plans(db: AsyncEngine, lookup: Lookup) -> list[tuple[str, list[str]]]:
    """Each statement the look-up sent, with its plan lines."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    async with create_sessionmaker(db)() as session:
        event.listen(db.sync_engine, "before_cursor_execute", capture)
        try:
            await lookup.call(session)
        finally:
            event.remove(db.sync_engine, "before_cursor_execute", capture)
        plans = []
        connection = await session.connection()
        for statement, parameters in sent:
            result = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plans.append((statement, [str(row[-1]) for row in result.all()]))
    return plans


@pytest.mark.parametrize("lookup", LOOKUPS, ids=str)
async def test_a_per_record_lookup_searches_an_index_narrowed_by_the_record(
    sqlite_db: AsyncEngine, lookup: Lookup
) -> None:
    plans = await _plans(sqlite_db, lookup)

    assert len(plans) == 1, [statement for statement, _ in plans]
    statement, lines = plans[0]
    searches = [line for line in lines if line.startswith("SEARCH ")]
    assert searches, (statement, lines)
    assert not [line for line in lines if line.startswith("SCAN ")], (statement, lines)
    for line in searches:
        assert "USING INDEX" in line or "USING COVERING INDEX" in line, line
        assert any(f"{key}?" in line for key in lookup.narrowed_by), line


async def test_contact_candidates_search_one_index_per_identity_key(
    sqlite_db: AsyncEngine,
) -> None:
    lookup = next(lookup for lookup in LOOKUPS if lookup.name == "contact_candidates")

    [(_, lines)] = await _plans(sqlite_db, lookup)

    assert "MULTI-INDEX OR" in lines
    searched = {
        key.rstrip("=")
        for line in lines
        if line.startswith("SEARCH ")
        for key in CONTACT_KEYS
        if f"({key}?" in line
    }
    assert searched == {key.rstrip("=") for key in CONTACT_KEYS}


async def test_invoice_candidates_search_lower_number_and_lower_reference(
    sqlite_db: AsyncEngine,
) -> None:
    lookup = next(lookup for lookup in LOOKUPS if lookup.name == "invoice_candidates")

    [(statement, lines)] = await _plans(sqlite_db, lookup)

    assert "lower(invoices.number)" in statement
    assert "lower(invoices.reference)" in statement
    used = sorted(
        line.split(" USING INDEX ")[1].split(" ")[0] for line in lines if "USING INDEX" in line
    )
    assert used == ["ix_invoices_lower_number_workspace_id", "ix_invoices_lower_reference"]
