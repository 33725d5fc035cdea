"""Engine bugs found by the state machine (tests/engine/test_stateful.py), one test each.

Each test is the smallest deterministic story that shows the bug, written as the
behaviour we want, and marked ``xfail(strict=True)`` with a diagnosis: CI stays green
while the bug is open, and the test turns red (XPASS) the moment it is fixed, which is
the signal to drop the marker and the matching ``AVOID_*`` switch in the state machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.base import Canonical, Resource, VendorRecord
from syncd.adapters.fake import FakeAdapter, FakeResource, FakeVendor
from syncd.core.model import Contact
from syncd.errors import Uncertain
from syncd.runner import Engine
from syncd.store import tables as t
from tests.engine.helpers import VirtualClock, by_name, make_engine, org, settings_for, vendor

Maker = async_sessionmaker[AsyncSession]


def _holding(v: FakeVendor, vat: str) -> list[Contact]:
    return [
        c for c in v.live("contacts").values() if isinstance(c, Contact) and c.vat_number == vat
    ]


class _LostCreate(FakeResource):
    """A contacts resource whose first create times out before the vendor stored it."""

    failed = False

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        if not self.failed:
            self.failed = True
            self.vendor.calls += 1
            raise Uncertain(f"{self.vendor.name}: connection reset before the answer")
        return await super().create(value, client_token=client_token)


def _engine(
    sessionmaker: Maker,
    vendors: dict[str, FakeVendor],
    resources: dict[str, Callable[[FakeVendor, Resource], FakeResource]] | None = None,
    **options: Any,
) -> Engine:
    """Like helpers.make_engine, with a chosen contacts resource for some accounts."""
    adapters = {}
    for name, v in vendors.items():
        adapter = FakeAdapter(v, account=name, page_size=7)
        if resources and name in resources:
            adapter._resources["contacts"] = resources[name](v, "contacts")
        adapters[name] = adapter
    clock = VirtualClock()
    return Engine(
        settings_for(list(vendors), **options),
        sessionmaker,
        adapters,
        call_count=lambda n: vendors[n].calls,
        clock=clock,
        sleep=clock.sleep,
    )


async def test_review_candidate_is_not_created_in_the_same_account(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    books.human_create("contacts", org("Acme", vat_number="NL123456789B01", email="a@acme.example"))
    books.human_create(
        "contacts", org("Bakker", vat_number="NL987654321B01", email="b@bakker.example")
    )
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.pull("books")
    # Acme is typed into crm by hand, with Bakker's address: the VAT number says Acme, the
    # e-mail says Bakker, so the matcher asks a person.
    crm.human_create(
        "contacts", org("ACME BV", vat_number="nl 1234.56789.b01", email="b@bakker.example")
    )

    await engine.once()
    async with db_sessionmaker() as s:
        review = (await s.execute(select(t.MatchReview))).scalar_one()
        acme = (
            await s.execute(select(t.Contact).where(t.Contact.vat_number == "NL123456789B01"))
        ).scalar_one()
    await engine.decide_match(review.id, accept=True, canonical_id=acme.id)
    await engine.once()

    assert len(_holding(crm, "NL123456789B01")) == 1


async def test_settled_create_never_adopts_another_entity_record(db_sessionmaker: Maker) -> None:
    crm, shop = vendor("crm"), vendor("shop")
    crm.human_create("contacts", org("Tamm ja Saar", vat_number="EE100000001"))
    shop.human_create("contacts", org("Tamm ja Saar", vat_number="EE100000002"))  # a namesake
    engine = _engine(db_sessionmaker, {"crm": crm, "shop": shop}, {"shop": _LostCreate})

    await engine.once()
    await engine.once()

    assert len(_holding(shop, "EE100000001")) == 1
    assert len(_holding(shop, "EE100000002")) == 1


async def test_revival_cancels_the_queued_removals(db_sessionmaker: Maker) -> None:
    crm = vendor("crm")
    books = vendor("books", detection="snapshot")
    crm.human_create("contacts", org("Acme", email="a@acme.example"))
    crm.human_create("contacts", org("Other", email="o@other.example"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")

    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")  # the deletion queues a removal for books
    books.human_edit("contacts", books_id, email="new@acme.example")  # before it is pushed
    await engine.once()
    await engine.once()

    for v in (crm, books):
        _, acme = by_name(v, "Acme")
        assert acme.email == "new@acme.example"
        assert not acme.archived


async def test_matched_record_gets_what_it_lacks_when_a_create_was_queued(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books", detection="snapshot")
    crm.human_create(
        "contacts", org("Acme B.V.", vat_number="NL123456789B01", email="a@acme.example")
    )
    books.human_create("contacts", org("ACME BV", vat_number="NL 1234.56789.B01"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})

    await engine.once()  # pulls crm (a create for books is queued), then books (matched)

    assert [c.email for c in books.live("contacts").values() if isinstance(c, Contact)] == [
        "a@acme.example"
    ]


async def test_push_does_not_duplicate_a_record_typed_in_meanwhile(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme B.V.", vat_number="NL123456789B01"))
    books.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    crm.human_create("contacts", org("Bakker", vat_number="NL111222333B01"))
    await engine.pull("crm")  # a create of Bakker is queued for books
    books.human_create("contacts", org("Bakker", vat_number="NL111222333B01"))

    await engine.push("books")
    await engine.once()

    assert len(_holding(books, "NL111222333B01")) == 1
