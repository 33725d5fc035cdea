"""The bookkeeping invoice number goes back to the CRM where the CRM has a field for it.

Issue 6: the bookkeeping system assigns numbers (the default flow owner of ``number`` is
the bookkeeping account); the number is written back to the CRM where it has a field for
it, and drafts without numbers are handled. Of the two CRMs only Perfex can take a number
(its adapter lists ``number`` as writable); Simplicate numbers its invoices itself and has
no field for another system's number.

Perfex stores a number as an integer under a per-invoice prefix, so it can hold the
digits of a bookkeeping number, not its exact text: the tests compare those digits.
"""

from __future__ import annotations

import re

import pytest

from syncd.adapters.perfex.adapter import CAPABILITIES as PERFEX
from syncd.adapters.simplicate.adapter import CAPABILITIES as SIMPLICATE
from syncd.sandbox.base import SeedLine, VendorName, VendorSeed
from tests.invoices.helpers import (
    D,
    canonical_invoice,
    open_books,
    seed_contact,
    seed_invoice,
    send_in_books,
)

LINES = [
    SeedLine("Consultancy", D(3), D("95.00"), D(21)),
    SeedLine("Books", D(2), D("12.50"), D(9)),
]


def _seed(status: str, number: str | None) -> VendorSeed:
    return VendorSeed(
        contacts=(seed_contact("c1", "Acme B.V.", email="info@acme.nl"),),
        invoices=(seed_invoice("i1", "c1", LINES, number=number, status=status),),
    )


def _digits(number: str | None) -> int | None:
    runs = re.findall(r"\d+", number or "")
    return int(runs[-1]) if runs else None


def test_only_perfex_can_hold_a_number_from_elsewhere() -> None:
    assert "number" in PERFEX.writable_fields["invoices"]
    assert "number" not in SIMPLICATE.writable_fields["invoices"]


async def test_perfex_gets_the_number_moneybird_assigns(sqlite_db_url: str) -> None:
    async with open_books(
        "perfex", "moneybird", sqlite_db_url, crm_seed=_seed("open", "INV-000042")
    ) as world:
        await world.once()
        copy = world.only("moneybird")
        assert copy.sent and copy.number is not None
        await world.once(reconcile=False)

        assert (await canonical_invoice(world, "moneybird", copy.id)).number == copy.number
        assert _digits(world.only("perfex").number) == _digits(copy.number)
        # Perfex prints the digits under its own prefix; that is not a change to undo.
        writes = world.handle.counters("perfex").writes
        await world.once(reconcile=False)
        assert world.handle.counters("perfex").writes == writes


async def test_a_perfex_draft_gets_its_number_when_moneybird_sends_it(sqlite_db_url: str) -> None:
    async with open_books(
        "perfex", "moneybird", sqlite_db_url, crm_seed=_seed("draft", None)
    ) as world:
        await world.once()
        draft = world.only("moneybird")
        assert (draft.state, draft.number) == ("draft", None)
        assert world.only("perfex").number is None

        send_in_books(world, draft.id)
        await world.once(reconcile=False)

        sent = world.only("moneybird")
        assert sent.number is not None
        assert (await canonical_invoice(world, "moneybird", sent.id)).number == sent.number
        assert _digits(world.only("perfex").number) == _digits(sent.number)


async def test_simplbooks_keeps_the_perfex_number(sqlite_db_url: str) -> None:
    # SimplBooks takes the number it is given (a Perfex invoice already has one), so both
    # sides print the same number and there is nothing to write back.
    async with open_books(
        "perfex", "simplbooks", sqlite_db_url, crm_seed=_seed("open", "INV-000042")
    ) as world:
        await world.once()
        copy = world.only("simplbooks")
        assert copy.number == world.only("perfex").number == "INV-000042"
        assert (await canonical_invoice(world, "simplbooks", copy.id)).number == "INV-000042"


async def test_a_perfex_draft_waits_for_simplbooks_until_it_is_finalised(
    sqlite_db_url: str,
) -> None:
    async with open_books(
        "perfex", "simplbooks", sqlite_db_url, crm_seed=_seed("draft", None)
    ) as world:
        await world.once()
        # SimplBooks has no drafts (it would number the invoice at once): nothing there yet,
        # and the Perfex draft stays an unnumbered draft.
        assert world.invoices("simplbooks") == []
        draft = world.only("perfex")
        assert draft.number is None and not draft.sent
        assert await world.outbox_left() == []

        # Finalised in Perfex (it gets Perfex's next number), it is booked in SimplBooks,
        # which gives it the number of record.
        world.emulator("perfex").mutate("invoices", draft.id, {"status": 1, "number": 7})
        await world.once()
        copy = world.only("simplbooks")
        assert copy.number is not None
        assert (await canonical_invoice(world, "simplbooks", copy.id)).number == copy.number
        assert _digits(world.only("perfex").number) == _digits(copy.number)


@pytest.mark.parametrize("books", ["moneybird", "simplbooks"])
async def test_a_simplicate_concept_stays_unnumbered_and_nothing_fails(
    books: VendorName, sqlite_db_url: str
) -> None:
    async with open_books(
        "simplicate", books, sqlite_db_url, crm_seed=_seed("draft", None)
    ) as world:
        await world.once()
        if books == "simplbooks":
            # No drafts there: the concept is not booked until it is finalised.
            assert world.invoices(books) == []
        else:
            copy = world.only(books)
            if not copy.sent:
                send_in_books(world, copy.id)
        totals = await world.once(reconcile=False)

        if books != "simplbooks":
            assert world.only(books).number is not None
        concept = world.only("simplicate")
        assert (concept.state, concept.number) == ("Concept", None)
        assert all(st.failed == 0 for st in totals.values())
        assert await world.outbox_left() == []
        assert await world.quarantined() == []


async def test_a_simplicate_concept_reaches_simplbooks_once_it_is_sent(sqlite_db_url: str) -> None:
    async with open_books(
        "simplicate", "simplbooks", sqlite_db_url, crm_seed=_seed("draft", None)
    ) as world:
        await world.once()
        assert world.invoices("simplbooks") == []

        concept = world.only("simplicate")
        world.emulator("simplicate").mutate("invoice", concept.id, {"status": "Sent"})
        await world.once()

        copy = world.only("simplbooks")
        assert copy.sent and copy.number is not None
        assert copy.lines == world.only("simplicate").lines
        assert await world.outbox_left() == []
        assert await world.quarantined() == []
