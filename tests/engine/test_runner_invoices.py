"""Invoices and payments through the engine on fake vendors: CRM -> bookkeeping, status and
payments back, sent invoices immutable, contact-first quarantine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.fake import FakeAdapter, FakeVendor
from syncd.core.model import Invoice, InvoiceLine, Payment, normalise, with_computed_totals
from syncd.runner import Engine
from syncd.store import tables as t
from tests.engine.helpers import VirtualClock, open_conflicts, org, settings_for, vendor

Maker = async_sessionmaker[AsyncSession]
D = Decimal


def engine_for(sm: Maker, crm: FakeVendor, books: FakeVendor, **options: Any) -> Engine:
    settings = settings_for(
        ["crm", "books"],
        invoices=True,
        vendors={"crm": "simplicate", "books": "moneybird"},
        **options,
    )
    clock = VirtualClock()
    return Engine(
        settings,
        sm,
        {"crm": FakeAdapter(crm, account="crm"), "books": FakeAdapter(books, account="books")},
        clock=clock,
        sleep=clock.sleep,
    )


def invoice(
    contact: str, number: str, lines: list[tuple[str, str, str, str]], **kw: Any
) -> Invoice:
    value = Invoice(
        number=number,
        contact=contact,
        issue_date=dt.date(2026, 11, 2),
        due_date=dt.date(2026, 11, 30),
        lines=tuple(
            InvoiceLine(description=d, quantity=D(q), unit_price=D(p), vat_rate=D(v))
            for d, q, p, v in lines
        ),
        **kw,
    )
    return normalise(with_computed_totals(value))


def only(v: FakeVendor, resource: str) -> tuple[str, Any]:
    live = v.live(resource)  # type: ignore[arg-type]
    assert len(live) == 1, f"{v.name} holds {len(live)} {resource}"
    return next(iter(live.items()))


LINES = [
    ("Consultancy", "3", "95.00", "21"),
    ("Books", "2", "12.50", "9"),
    ("Export", "1", "100", "0"),
]


async def test_a_crm_invoice_reaches_bookkeeping_with_equal_lines_and_totals(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    contact_id = crm.human_create("contacts", org("Acme B.V.", email="a@acme.nl"))
    crm.human_create("invoices", invoice(contact_id, "2026-001", LINES))
    engine = engine_for(db_sessionmaker, crm, books)

    await engine.once()

    books_contact, _ = only(books, "contacts")
    _, copy = only(books, "invoices")
    _, original = only(crm, "invoices")
    assert copy.contact == books_contact
    assert copy.lines == original.lines
    assert (copy.subtotal, copy.tax_total, copy.total) == (
        original.subtotal,
        original.tax_total,
        original.total,
    )
    assert original.total == D("472.10")  # 285 + 25 + 100 = 410; VAT 59.85 + 2.25 + 0


async def test_a_bookkeeping_invoice_is_not_created_in_the_crm(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    contact_id = books.human_create("contacts", org("Acme B.V."))
    books.human_create("invoices", invoice(contact_id, "B-1", LINES))
    engine = engine_for(db_sessionmaker, crm, books)

    await engine.once()

    assert len(crm.live("contacts")) == 1  # contacts flow both ways
    assert crm.live("invoices") == {}


async def test_status_and_payments_come_back_and_are_never_paid_twice(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    contact_id = crm.human_create("contacts", org("Acme B.V."))
    crm.human_create("invoices", invoice(contact_id, "2026-001", LINES))
    engine = engine_for(db_sessionmaker, crm, books)
    await engine.once()
    books_invoice, _ = only(books, "invoices")

    books.human_edit("invoices", books_invoice, status="partially_paid", amount_paid=D("200.00"))
    books.human_create(
        "payments", Payment(invoice=books_invoice, date=dt.date(2026, 11, 20), amount=D("200.00"))
    )
    for _ in range(3):
        await engine.once()

    _, original = only(crm, "invoices")
    assert original.status == "partially_paid"
    assert original.amount_paid == D("200.00")
    _, payment = only(crm, "payments")
    assert payment.amount == D("200.00")
    assert len(books.live("payments")) == 1


async def test_a_crm_edit_of_a_sent_invoice_becomes_a_conflict(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    contact_id = crm.human_create("contacts", org("Acme B.V."))
    crm_invoice = crm.human_create("invoices", invoice(contact_id, "2026-001", LINES))
    engine = engine_for(db_sessionmaker, crm, books)
    await engine.once()
    books_invoice, _ = only(books, "invoices")
    books.human_edit("invoices", books_invoice, status="sent")
    await engine.once()
    books_lines = only(books, "invoices")[1].lines

    changed = invoice(contact_id, "2026-001", [*LINES, ("Extra", "1", "50", "21")])
    crm.human_edit(
        "invoices",
        crm_invoice,
        lines=changed.lines,
        subtotal=changed.subtotal,
        tax_total=changed.tax_total,
        total=changed.total,
    )
    await engine.once()

    assert only(books, "invoices")[1].lines == books_lines  # never pushed as an edit
    conflicts = await open_conflicts(db_sessionmaker)
    assert "lines" in {c.field for c in conflicts}
    async with db_sessionmaker() as s:
        reasons = (
            await s.execute(select(t.Audit.reason).where(t.Audit.field == "lines"))
        ).scalars()
        assert any("sent" in reason for reason in reasons)


async def test_an_invoice_whose_contact_is_not_synced_is_quarantined_alone(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    # Two CRM records of one company: the second is a duplicate inside the CRM, so its
    # match waits for a person and its invoice cannot go anywhere yet.
    crm.human_create(
        "contacts", org("Acme B.V.", email="info@acme.nl", vat_number="NL123456789B01")
    )
    dup = crm.human_create(
        "contacts", org("Acme BV", email="info@acme.nl", vat_number="NL123456789B01")
    )
    good = crm.human_create("contacts", org("Other Company", email="x@other.nl"))
    crm.human_create("invoices", invoice(dup, "2026-001", LINES))
    crm.human_create("invoices", invoice(good, "2026-002", LINES))
    engine = engine_for(db_sessionmaker, crm, books)

    await engine.once()

    numbers = sorted(inv.number or "" for inv in books.live("invoices").values())
    assert numbers == ["2026-002"]
    async with db_sessionmaker() as s:
        reviews = (await s.execute(select(t.MatchReview))).scalars().all()
        quarantined = (await s.execute(select(t.Quarantine))).scalars().all()
    assert [r.state for r in reviews] == ["open"]
    assert len(quarantined) == 1
    assert quarantined[0].resource == "invoices"
    assert quarantined[0].reason.startswith("contact not synced")

    # Once a person decides (a separate company), the invoice follows on the next pass.
    await engine.decide_match(reviews[0].id, accept=False)
    await engine.once()
    numbers = sorted(inv.number or "" for inv in books.live("invoices").values())
    assert numbers == ["2026-001", "2026-002"]


async def test_two_invoice_flows_in_one_workspace_keep_to_their_own_accounts(
    db_sessionmaker: Maker,
) -> None:
    from pathlib import Path

    from syncd.settings import parse_settings

    def account(name: str, vendor_name: str, base: str, creds: dict[str, str]) -> dict[str, Any]:
        return {
            "name": name,
            "vendor": vendor_name,
            "base_url": base,
            "credentials": creds,
            "allow_insecure_http": True,
        }

    settings = parse_settings(
        {
            "workspace": [
                {
                    "name": "ws",
                    "account": [
                        account(
                            "sc", "simplicate", "http://h/sc/api/v2", {"key": "k", "secret": "s"}
                        ),
                        account("mb", "moneybird", "http://h/mb/api/v2/1", {"token": "t"}),
                        account("px", "perfex", "http://h/px/api/v1", {"api_key": "k"}),
                        account("sb", "simplbooks", "http://h/sb/demo/api", {"token": "t"}),
                    ],
                    "flow": [
                        {"resource": "contacts", "accounts": ["sc", "mb", "px", "sb"]},
                        {"resource": "invoices", "accounts": ["sc", "mb"]},
                        {"resource": "invoices", "accounts": ["px", "sb"]},
                    ],
                }
            ]
        },
        environ={},
        base_dir=Path("."),
    )
    fakes = {name: vendor(name) for name in ("sc", "mb", "px", "sb")}
    sc_contact = fakes["sc"].human_create("contacts", org("Simplicate Client"))
    px_contact = fakes["px"].human_create("contacts", org("Perfex Client"))
    fakes["sc"].human_create("invoices", invoice(sc_contact, "SC-1", LINES))
    fakes["px"].human_create("invoices", invoice(px_contact, "PX-1", LINES))
    clock = VirtualClock()
    engine = Engine(
        settings,
        db_sessionmaker,
        {name: FakeAdapter(v, account=name) for name, v in fakes.items()},
        clock=clock,
        sleep=clock.sleep,
    )

    await engine.once()

    def numbers(name: str) -> list[str]:
        return sorted(i.number or "" for i in fakes[name].live("invoices").values())

    assert numbers("mb") == ["SC-1"]
    assert numbers("sb") == ["PX-1"]
    assert numbers("sc") == ["SC-1"] and numbers("px") == ["PX-1"]
    assert all(len(v.live("contacts")) == 2 for v in fakes.values())


async def test_an_invoice_whose_totals_do_not_add_up_is_quarantined_never_pushed(
    db_sessionmaker: Maker,
) -> None:
    import dataclasses

    crm, books = vendor("crm"), vendor("books")
    contact_id = crm.human_create("contacts", org("Acme B.V."))
    wrong = dataclasses.replace(invoice(contact_id, "2026-009", LINES), total=D("999.99"))
    bad = crm.human_create("invoices", wrong)
    crm.human_create("invoices", invoice(contact_id, "2026-010", LINES))
    engine = engine_for(db_sessionmaker, crm, books)

    await engine.once()

    assert sorted(i.number or "" for i in books.live("invoices").values()) == ["2026-010"]
    async with db_sessionmaker() as s:
        rows = (await s.execute(select(t.Quarantine))).scalars().all()
    assert [(r.external_id, r.resource) for r in rows] == [(bad, "invoices")]
    assert "999.99" in rows[0].reason and "472.10" in rows[0].reason
