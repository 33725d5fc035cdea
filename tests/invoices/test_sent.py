"""A CRM edit of an invoice that bookkeeping already sent is a conflict, never a push.

Issue 6: in bookkeeping a sent invoice's lines and totals do not change; a change at the
CRM side to such an invoice becomes a conflict saying why. Before bookkeeping sends it,
a CRM edit is an ordinary edit and reaches the bookkeeping draft.

Simplicate only lets a user change the lines of a concept (unsent) invoice, so its cases
start from a concept that bookkeeping sends; Perfex lets anyone edit any invoice.
"""

from __future__ import annotations

import pytest

from syncd.sandbox.base import SeedLine, VendorName, VendorSeed
from syncd.store import tables as t
from tests.invoices.helpers import (
    PAIRS,
    D,
    edit_lines_in_crm,
    open_books,
    pair_id,
    seed_contact,
    seed_invoice,
    send_in_books,
)

LINES = [
    SeedLine("Consultancy", D(3), D("95.00"), D(21)),
    SeedLine("Books", D(2), D("12.50"), D(9)),
    SeedLine("Export", D(1), D("100.00"), D(0)),
]
EXTRA = SeedLine("Extra hours", D("1.5"), D("80.00"), D(21))


def _seed(crm: VendorName) -> VendorSeed:
    # Simplicate: a concept (the only state whose lines a user may edit); Perfex: unpaid.
    status = "draft" if crm == "simplicate" else "open"
    number = None if crm == "simplicate" else "INV-000001"
    return VendorSeed(
        contacts=(seed_contact("c1", "Acme B.V.", email="info@acme.nl"),),
        invoices=(seed_invoice("i1", "c1", LINES, number=number, status=status),),
    )


def _params(
    pairs: list[tuple[VendorName, VendorName]],
) -> list[object]:
    return [pytest.param(p, id=pair_id(p), marks=()) for p in pairs]


# Simplicate lets a user edit lines only in a concept, and SimplBooks takes no concepts
# (a concept reaches it once sent, when Simplicate no longer lets its lines change): the
# situation cannot arise for that pair (see test_numbers.py for how a concept arrives).
EDITABLE_WHEN_SENT = [p for p in PAIRS if p != ("simplicate", "simplbooks")]


@pytest.mark.parametrize("pair", _params(EDITABLE_WHEN_SENT))
async def test_a_crm_edit_of_a_sent_invoice_becomes_a_conflict(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    crm, books = pair
    async with open_books(crm, books, sqlite_db_url, crm_seed=_seed(crm)) as world:
        await world.once()
        copy = world.only(books)
        if not copy.sent:
            send_in_books(world, copy.id)
        await world.once(reconcile=False)
        sent = world.only(books)
        assert sent.sent and sent.number is not None

        edit_lines_in_crm(world, world.only(crm).id, [*LINES, EXTRA])
        await world.once(reconcile=False)

        after = world.only(books)
        assert (after.lines, after.totals) == (sent.lines, sent.totals), "pushed as an edit"
        assert len(world.only(crm).lines) == 4  # the CRM keeps its user's edit
        conflicts = await world.open_conflicts()
        assert [(c.resource, c.field, c.policy) for c in conflicts] == [
            ("invoices", "lines", "immutable")
        ]
        reasons = [a.reason for a in await world.rows(t.Audit, t.Audit.field == "lines")]
        assert any(f"already sent in {books}" in reason for reason in reasons), reasons


@pytest.mark.parametrize(
    "crm",
    [
        pytest.param("simplicate"),
        "perfex",
    ],
)
async def test_a_crm_edit_reaches_a_bookkeeping_draft(crm: VendorName, sqlite_db_url: str) -> None:
    seed = VendorSeed(
        contacts=(seed_contact("c1", "Acme B.V.", email="info@acme.nl"),),
        invoices=(seed_invoice("i1", "c1", LINES, status="draft"),),
    )
    async with open_books(crm, "moneybird", sqlite_db_url, crm_seed=seed) as world:
        await world.once()
        assert world.only("moneybird").state == "draft"

        edit_lines_in_crm(world, world.only(crm).id, [*LINES, EXTRA])
        await world.once(reconcile=False)

        draft = world.only("moneybird")
        assert draft.state == "draft"
        assert draft.lines == world.only(crm).lines
        assert len(draft.lines) == 4
        assert await world.open_conflicts() == []
