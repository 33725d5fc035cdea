"""CRM invoices reach bookkeeping with equal lines and totals, for every CRM -> bookkeeping pair.

Issue 6 acceptance: invoices of 1-20 lines at 0/9/21 % VAT (and the Estonian 22 % and
24 % where the bookkeeping vendor has them) reach every bookkeeping vendor with equal lines
and totals to the cent. Each pair gets a CRM holding open invoices of 1, 2, 7 and 20 lines
(every rate the bookkeeping vendor offers used in each longer one) and a draft without a
number; one ``syncd once`` must create each of them once at the bookkeeping vendor, and a
second pass must write nothing anywhere.

Totals are compared with the vendors' own figures. Bookkeeping rounds VAT once per rate
(the EU rule, ``expected_totals``), and so does Perfex; the Simplicate emulator rounds VAT
per line (marked inferred in the vendor reference), so a long Simplicate invoice can state
a VAT total a cent or more away from what bookkeeping computes for the very same lines.
``test_simplicate_rounds_per_line_and_bookkeeping_per_rate`` pins that case down.
"""

from __future__ import annotations

import random

import pytest

from syncd.core.guards import totals_tolerance
from syncd.sandbox.base import SeedInvoice, SeedLine, VendorName, VendorSeed
from syncd.store import tables as t
from tests.invoices.helpers import (
    PAIRS,
    RATES,
    Books,
    D,
    expected_totals,
    find_by_lines,
    linked_copy,
    open_books,
    pair_id,
    per_line_totals,
    random_lines,
    seed_contact,
    seed_invoice,
    seed_lines_of,
)

SIZES = (1, 2, 7, 20)


def _seed(crm: VendorName, books: VendorName) -> VendorSeed:
    rng = random.Random(f"{crm}->{books}")
    contacts = (
        seed_contact("c1", "Acme B.V.", email="info@acme.nl", vat="NL123456789B01"),
        seed_contact("c2", "Järve Ehitus OÜ", email="arved@jarve.ee", country="EE"),
    )
    invoices = [
        seed_invoice(
            f"i{n}",
            contacts[n % 2].key,
            random_lines(rng, size, RATES[books]),
            number=f"INV-{n:06d}",  # Perfex prints six digits by default
        )
        for n, size in enumerate(SIZES, start=1)
    ]
    invoices.append(seed_invoice("draft", "c1", random_lines(rng, 3, RATES[books]), status="draft"))
    return VendorSeed(contacts=contacts, invoices=tuple(invoices))


async def _copy_of(world: Books, invoice: SeedInvoice) -> tuple[str, str]:
    """(CRM id, bookkeeping id) of a seeded CRM invoice and the copy syncd made of it."""
    crm_copy = find_by_lines(world.invoices(world.crm), invoice)
    return crm_copy.id, await linked_copy(world, "invoices", world.crm, crm_copy.id)


@pytest.mark.parametrize("pair", PAIRS, ids=[pair_id(p) for p in PAIRS])
async def test_invoices_reach_bookkeeping_with_equal_lines_and_totals(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    crm, books = pair
    seed = _seed(crm, books)
    async with open_books(crm, books, sqlite_db_url, crm_seed=seed) as world:
        await world.once()

        assert await world.quarantined() == []
        assert await world.open_conflicts() == []
        assert await world.outbox_left() == []
        held = {h.id: h for h in world.invoices(books)}
        # SimplBooks keeps no drafts: the CRM's draft waits until it is finalised.
        final = seed.invoices[:-1] if books == "simplbooks" else seed.invoices
        assert len(held) == len(final), "one bookkeeping invoice per CRM invoice"
        crm_held = {h.id: h for h in world.invoices(crm)}
        for invoice in final:
            crm_id, books_id = await _copy_of(world, invoice)
            copy, original = held[books_id], crm_held[crm_id]
            # Lines: description, quantity, unit price and VAT rate, in order.
            assert copy.lines == seed_lines_of(invoice), invoice.key
            # Bookkeeping's own totals are the EU figures of those lines, to the cent...
            assert copy.totals == expected_totals(invoice.lines), invoice.key
            # ...and equal the CRM's where the CRM rounds VAT the same way.
            assert copy.subtotal == original.subtotal, invoice.key
            if crm == "perfex":
                assert copy.totals == original.totals, invoice.key
            else:
                assert original.totals == per_line_totals(invoice.lines), invoice.key
            assert copy.paid == 0 and copy.payments == ()
        # A draft stays a draft without a number on the CRM side. Moneybird holds it as a
        # draft; SimplBooks, which numbers every invoice it creates, is not given it.
        draft = find_by_lines(world.invoices(crm), seed.invoices[-1])
        assert draft.number is None and not draft.sent
        if books == "moneybird":
            draft_copy = held[await linked_copy(world, "invoices", crm, draft.id)]
            assert (draft_copy.state, draft_copy.number) == ("draft", None)
        else:
            assert all(h.lines != seed_lines_of(seed.invoices[-1]) for h in held.values())

        # Converged: a second pass writes nothing at either vendor.
        writes = {v: world.handle.counters(v).writes for v in pair}
        again = await world.once(reconcile=False)
        assert {v: world.handle.counters(v).writes for v in pair} == writes
        assert all(st.pushed == 0 for st in again.values())


def _half_cent_lines() -> list[SeedLine]:
    # Three lines of 0.05 at 9 %: each line's VAT is 0.0045 (0.00 rounded per line), the
    # group's is 0.0135 (0.01): per-line and per-rate rounding differ by a cent.
    return [SeedLine(f"Sticker {n}", D(1), D("0.05"), D(9)) for n in range(3)] + [
        SeedLine("Consultancy", D(2), D("95.00"), D(21))
    ]


@pytest.mark.parametrize("books", ["moneybird"])
async def test_simplicate_rounds_per_line_and_bookkeeping_per_rate(
    books: VendorName, sqlite_db_url: str
) -> None:
    lines = _half_cent_lines()
    seed = VendorSeed(
        contacts=(seed_contact("c1", "Acme B.V.", email="info@acme.nl"),),
        invoices=(seed_invoice("i1", "c1", lines, number="2026-0001"),),
    )
    async with open_books("simplicate", books, sqlite_db_url, crm_seed=seed) as world:
        await world.once()
        original, copy = world.only("simplicate"), world.only(books)

        assert copy.lines == original.lines
        assert original.totals == (D("190.15"), D("39.90"), D("230.05"))  # VAT per line
        assert copy.totals == (D("190.15"), D("39.91"), D("230.06"))  # VAT per rate
        # Within the rounding rule, so neither side is quarantined; the canonical
        # invoice keeps the CRM's figures (the CRM owns lines and the totals with them).
        tolerance = totals_tolerance(len(lines))
        assert abs(copy.total - original.total) <= tolerance
        assert await world.quarantined() == []
        (canonical,) = await world.rows(t.Invoice)
        assert (canonical.subtotal, canonical.tax_total, canonical.total) == original.totals
