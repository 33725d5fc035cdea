"""Payments registered in bookkeeping mark the CRM invoice paid, never twice.

Issue 6 acceptance: a payment registered in bookkeeping marks the CRM invoice paid, or
partially paid with the right amount, on the next pass; nothing is ever paid twice. Each
pair: three invoices go from the CRM to bookkeeping, the bookkeeper sends them and books
two payments that settle the first, two identical part payments (same day, same amount:
the case a natural key cannot tell apart) on the second and nothing on the third. Payments are
counted at both vendors after every pass, with and without injected "write committed,
response lost" faults.
"""

from __future__ import annotations

import random

import pytest

from syncd.sandbox.base import VendorName, VendorSeed
from tests.invoices.helpers import (
    PAIRS,
    RATES,
    Books,
    D,
    HeldInvoice,
    canonical_invoice,
    cents,
    linked_copy,
    open_books,
    pair_id,
    pay_in_books,
    random_lines,
    seed_contact,
    seed_invoice,
    send_in_books,
)

# Two equal payments on one day: same invoice, date and amount, still two payments.
PART_PAYMENTS = (D("50.00"), D("50.00"))
PART = sum(PART_PAYMENTS, D(0))

# How each CRM shows "paid in full" and "partly paid" (Simplicate has no partly-paid
# status: the invoice stays Sent with less outstanding; Perfex: 2 paid, 3 partially paid).
# Share of writes whose answer the sandbox drops after committing them. Reads are not
# faulted ("lost_response" is a write fault); a faulted idempotent call (e.g. Moneybird's
# send action) is retried by the adapter after a real backoff, so the rate stays modest.
FAULT_RATE = 0.3

PAID = {"simplicate": "Paid", "perfex": "2"}
PARTLY = {"simplicate": "Sent", "perfex": "3"}


def _seed(crm: VendorName, books: VendorName) -> VendorSeed:
    rng = random.Random(f"pay {crm}->{books}")
    return VendorSeed(
        contacts=(seed_contact("c1", "Acme B.V.", email="info@acme.nl", vat="NL123456789B01"),),
        invoices=tuple(
            seed_invoice(
                f"i{n}", "c1", random_lines(rng, n + 1, RATES[books]), number=f"INV-{n:06d}"
            )
            for n in range(1, 4)
        ),
    )


async def _send_all(world: Books) -> list[tuple[HeldInvoice, str]]:
    """Send every bookkeeping copy; (bookkeeping invoice, CRM id) in CRM number order."""
    for held in world.invoices(world.books):
        if not held.sent:
            send_in_books(world, held.id)
    crm_ids = {
        held.id: await linked_copy(world, "invoices", world.books, held.id)
        for held in world.invoices(world.books)
    }
    crm_numbers = {h.id: h.number or "" for h in world.invoices(world.crm)}
    return sorted(
        ((held, crm_ids[held.id]) for held in world.invoices(world.books)),
        key=lambda pair: crm_numbers[pair[1]],
    )


def _pay(world: Books, full: HeldInvoice, part: HeldInvoice) -> None:
    """Settle ``full`` in two instalments; two identical payments on ``part``."""
    half = cents(full.total / 2)
    pay_in_books(world, full.id, half)
    pay_in_books(world, full.id, full.total - half)
    for amount in PART_PAYMENTS:
        pay_in_books(world, part.id, amount)


def _assert_paid_at_crm(world: Books, sent: list[tuple[HeldInvoice, str]]) -> None:
    crm = {h.id: h for h in world.invoices(world.crm)}
    books = {h.id: h for h in world.invoices(world.books)}
    (full, full_crm), (_, part_crm), (_, none_crm) = sent
    # Paid in full: the CRM's own figures say so, and it holds the same two payments.
    assert crm[full_crm].state == PAID[world.crm]
    assert crm[full_crm].paid == crm[full_crm].total == books[full.id].total
    assert sorted(p.amount for p in crm[full_crm].payments) == sorted(
        p.amount for p in books[full.id].payments
    )
    assert len(crm[full_crm].payments) == 2
    # Partly paid, with the right amount.
    assert crm[part_crm].state == PARTLY[world.crm]
    assert crm[part_crm].paid == PART
    assert sorted(p.amount for p in crm[part_crm].payments) == list(PART_PAYMENTS)
    # Not paid at all.
    assert crm[none_crm].paid == 0 and crm[none_crm].payments == ()
    # Payments only ever go from bookkeeping to the CRM, each exactly once.
    assert world.payments() == {world.crm: 4, world.books: 4}


@pytest.mark.parametrize("pair", PAIRS, ids=pair_id)
async def test_bookkeeping_payments_mark_the_crm_invoice_paid_once(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    crm, books = pair
    async with open_books(crm, books, sqlite_db_url, crm_seed=_seed(crm, books)) as world:
        await world.once()
        sent = await _send_all(world)
        _pay(world, sent[0][0], sent[1][0])

        await world.once(reconcile=False)
        _assert_paid_at_crm(world, sent)
        for _ in range(2):  # later passes change nothing and pay nothing again
            writes = {v: world.handle.counters(v).writes for v in pair}
            await world.once(reconcile=False)
            _assert_paid_at_crm(world, sent)
            assert {v: world.handle.counters(v).writes for v in pair} == writes
        assert await world.outbox_left() == []
        assert await world.quarantined() == []


# Two pairs cover every vendor's side of an uncertain create: invoices into Moneybird
# (client token in ``reference``) and SimplBooks (``additional_info``), payments into
# Simplicate (no token field: natural key) and Perfex (token in the payment note).
FAULT_PAIRS: list[tuple[VendorName, VendorName]] = [
    ("simplicate", "moneybird"),
    ("perfex", "simplbooks"),
]


@pytest.mark.parametrize("pair", FAULT_PAIRS, ids=pair_id)
async def test_lost_responses_never_duplicate_invoices_or_payments(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    """Every write may be committed by the vendor while its answer is lost (the sandbox's
    "lost_response" fault): uncertain creates are looked up before any retry."""
    crm, books = pair
    async with open_books(
        crm, books, sqlite_db_url, crm_seed=_seed(crm, books), fault_kinds=("lost_response",)
    ) as world:
        world.handle.options.fault_rate = FAULT_RATE
        for _ in range(3):
            await world.engine.once(reconcile=False)  # faults show up as pass errors
        world.handle.options.fault_rate = 0.0
        await world.once(reconcile=False)
        assert len(world.invoices(books)) == 3, "each CRM invoice reached bookkeeping once"

        sent = await _send_all(world)
        _pay(world, sent[0][0], sent[1][0])
        # First every answer is lost (each payment create at the CRM is uncertain, the
        # two identical ones included), then some.
        for rate in (1.0, FAULT_RATE, FAULT_RATE):
            world.handle.options.fault_rate = rate
            before = world.handle.counters(crm).faults.get("lost_response", 0)
            await world.engine.once(reconcile=False)
            assert world.payments()[crm] <= 4, "a payment was registered twice"
            if rate == 1.0:
                assert world.handle.counters(crm).faults.get("lost_response", 0) >= before + 4
        world.handle.options.fault_rate = 0.0
        await world.once(reconcile=False)

        assert len(world.invoices(books)) == 3
        _assert_paid_at_crm(world, sent)
        assert await world.outbox_left() == []


@pytest.mark.parametrize("books", ["moneybird", "simplbooks"])
async def test_the_canonical_invoice_records_the_payments(
    books: VendorName, sqlite_db_url: str
) -> None:
    async with open_books("perfex", books, sqlite_db_url, crm_seed=_seed("perfex", books)) as w:
        await w.once()
        sent = await _send_all(w)
        _pay(w, sent[0][0], sent[1][0])
        await w.once(reconcile=False)

        full, part = sent[0][0], sent[1][0]
        full_row = await canonical_invoice(w, books, full.id)
        part_row = await canonical_invoice(w, books, part.id)
        assert (full_row.status, full_row.amount_paid) == ("paid", full.total)
        assert (part_row.status, part_row.amount_paid) == ("partially_paid", PART)
