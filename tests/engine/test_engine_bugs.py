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
from syncd.errors import Uncertain, VendorUnavailable
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


async def test_no_write_when_the_target_won_the_conflict(db_sessionmaker: Maker) -> None:
    crm = vendor("crm")
    books = vendor("books", detection="snapshot")  # no change times: "books" wins by name
    crm.human_create("contacts", org("Acme", phone="+31201111111"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")
    crm.human_edit("contacts", crm_id, phone="+31202222222")
    books.human_edit("contacts", books_id, phone="+31203333333")
    writes = books.writes

    await engine.once()  # crm is pulled first and queues an update for books; books wins

    assert by_name(crm, "Acme")[1].phone == "+31203333333"
    assert books.writes == writes


async def test_a_decided_review_lets_the_other_candidates_be_created(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    books.human_create("contacts", org("Acme", vat_number="NL123456789B01", email="a@acme.example"))
    books.human_create(
        "contacts", org("Bakker", vat_number="NL987654321B01", email="b@bakker.example")
    )
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.pull("books")
    crm.human_create(
        "contacts", org("ACME BV", vat_number="nl 1234.56789.b01", email="b@bakker.example")
    )
    await engine.once()  # a review in crm: Acme by VAT number, Bakker by e-mail
    async with db_sessionmaker() as s:
        review = (await s.execute(select(t.MatchReview))).scalar_one()
        acme = (
            await s.execute(select(t.Contact).where(t.Contact.vat_number == "NL123456789B01"))
        ).scalar_one()

    await engine.decide_match(review.id, accept=True, canonical_id=acme.id)
    await engine.once()

    assert len(_holding(crm, "NL123456789B01")) == 1
    assert len(_holding(crm, "NL987654321B01")) == 1  # Bakker was a candidate, not a match


async def test_rejecting_two_reviews_of_one_company_makes_one_entity(
    db_sessionmaker: Maker,
) -> None:
    crm, books, shop = vendor("crm"), vendor("books"), vendor("shop")
    crm.human_create("contacts", org("Bakker", vat_number="NL987654321B01", email="x@office.nl"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books, "shop": shop})
    await engine.pull("crm")
    # Tamm is typed into two more vendors with the address it shares with Bakker.
    books.human_create("contacts", org("Tamm", vat_number="NL123456789B01", email="x@office.nl"))
    shop.human_create("contacts", org("TAMM BV", vat_number="NL123456789B01", email="x@office.nl"))
    await engine.once()
    async with db_sessionmaker() as s:
        reviews = list((await s.execute(select(t.MatchReview))).scalars())
    assert len(reviews) == 2  # both ask whether Tamm is Bakker

    for review in reviews:
        await engine.decide_match(review.id, accept=False)
    await engine.once()
    await engine.once()

    async with db_sessionmaker() as s:
        tamm = list(
            (
                await s.execute(select(t.Contact).where(t.Contact.vat_number == "NL123456789B01"))
            ).scalars()
        )
    assert len(tamm) == 1
    for v in (crm, books, shop):
        assert len(_holding(v, "NL123456789B01")) == 1


async def test_a_record_deleted_everywhere_stays_deleted(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Other"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")
    crm.human_edit("contacts", crm_id, phone="+31201111111")
    await engine.pull("crm")  # the phone now waits to be pushed to books
    books.human_edit("contacts", books_id, city="Delft")
    await engine.pull("books")  # and the city to crm

    crm.human_delete("contacts", crm_id)
    books.human_delete("contacts", books_id)
    await engine.reconcile("crm")
    await engine.reconcile("books")
    await engine.once()
    await engine.once()

    assert "Acme" not in [c.name for c in crm.live("contacts").values() if isinstance(c, Contact)]
    assert "Acme" not in [c.name for c in books.live("contacts").values() if isinstance(c, Contact)]


class _LandedUnknown(FakeResource):
    """The first create lands but its answer is lost; the first lookup fails too."""

    created = False
    looked = False

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        record = await super().create(value, client_token=client_token)
        if not self.created:
            self.created = True
            raise Uncertain(f"{self.vendor.name}: the answer to the create was lost")
        return record

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        if not self.looked:
            self.looked = True
            self.vendor.calls += 1
            raise VendorUnavailable(f"{self.vendor.name} is down")
        return await super().find(client_token=client_token, natural_key=natural_key)


async def test_a_create_settled_after_the_deletion_is_removed(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    books.human_create("contacts", org("Acme"))
    books.human_create("contacts", org("Other"))
    engine = _engine(
        db_sessionmaker,
        {"crm": crm, "books": books},
        {"crm": _LandedUnknown},
        delete="propagate",
        max_delete_percent=100,
    )
    await engine.pull("books")
    await engine.push("crm")  # Acme lands in crm; whether it did stays unknown for now
    books_id, _ = by_name(books, "Acme")
    books.human_delete("contacts", books_id)
    await engine.reconcile("books")

    await engine.once()
    await engine.once()

    assert [c.name for c in crm.live("contacts").values() if isinstance(c, Contact)] == ["Other"]


class _RemovalAnswerLost(FakeResource):
    """The first removal (an archive, for an archiving vendor) lands; its answer is lost."""

    lost = False

    async def remove(self, external_id: str) -> None:
        await super().remove(external_id)
        if not self.lost:
            self.lost = True
            raise Uncertain(f"{self.vendor.name}: the answer to the removal was lost")


async def test_our_own_lost_archive_does_not_revive_the_contact(db_sessionmaker: Maker) -> None:
    crm = vendor("crm")
    books = vendor("books", detection="snapshot", removal="archive")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Other"))
    engine = _engine(
        db_sessionmaker,
        {"crm": crm, "books": books},
        {"books": _RemovalAnswerLost},
        delete="propagate",
        max_delete_percent=100,
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")  # an archive is queued for books

    await engine.push("books")  # the archive lands; its answer does not
    await engine.pull("books")
    await engine.once()

    assert "Acme" not in [c.name for c in crm.live("contacts").values() if isinstance(c, Contact)]
    assert by_name(books, "Acme")[1].archived


async def test_no_archive_sent_to_a_record_archived_there_already(db_sessionmaker: Maker) -> None:
    crm = vendor("crm")
    books = vendor("books", detection="snapshot", removal="archive")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Other"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")
    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")  # an archive is queued for books
    books.human_edit("contacts", books_id, archived=True)  # a person archives it there too
    await engine.pull("books")  # the deleted contact stays deleted: books agrees
    writes = books.writes

    await engine.once()

    assert by_name(books, "Acme")[1].archived
    assert books.writes == writes  # the queued archive is moot


async def test_an_archive_with_other_edits_beats_a_deletion(db_sessionmaker: Maker) -> None:
    crm, shop = vendor("crm"), vendor("shop")
    crm.human_create("contacts", org("Acme", phone="+31201111111"))
    crm.human_create("contacts", org("Other"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "shop": shop}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    shop_id, _ = by_name(shop, "Acme")
    # In shop a person changes the address and archives the company; meanwhile somebody
    # deletes it in crm, and crm's deletion is seen first.
    shop.human_edit("contacts", shop_id, address_line1="Straat 1", archived=True)
    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")

    await engine.once()
    await engine.once()

    # A modify beats a delete: the address crm never had keeps the company (archived).
    for v in (crm, shop):
        _, acme = by_name(v, "Acme")
        assert acme.address_line1 == "Straat 1"


async def test_a_company_waiting_in_review_is_not_created_there_from_elsewhere(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    books.human_create(
        "contacts", org("Bouw", vat_number="NL222222222B01", email="office@firm.example")
    )
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    # A second company with the same name and mailbox: a review (is it the first one?).
    books.human_create(
        "contacts", org("Bouw", vat_number="NL333333333B01", email="office@firm.example")
    )
    await engine.pull("books")
    # Meanwhile it is typed into crm without the mailbox, and syncs from there.
    crm.human_create("contacts", org("BOUW BV", vat_number="NL 3333.33333.B01"))
    await engine.once()
    async with db_sessionmaker() as s:
        reviews = list((await s.execute(select(t.MatchReview))).scalars())
    for review in reviews:  # the only candidate is the other company
        await engine.decide_match(review.id, accept=False)
    await engine.once()
    await engine.once()

    async with db_sessionmaker() as s:
        rows = await s.execute(
            select(t.Contact).where(
                t.Contact.vat_number == "NL333333333B01", t.Contact.deleted_at.is_(None)
            )
        )
        assert len(list(rows.scalars())) == 1
    assert len(_holding(books, "NL333333333B01")) == 1
    assert len(_holding(crm, "NL333333333B01")) == 1


async def test_no_update_sent_before_a_removal_of_the_record(db_sessionmaker: Maker) -> None:
    crm = vendor("crm", removal="archive")
    shop = vendor("shop")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Other"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "shop": shop}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    shop_id, _ = by_name(shop, "Acme")
    shop.human_edit("contacts", shop_id, email="new@acme.example")
    await engine.pull("shop")  # an update is queued for crm
    shop.human_delete("contacts", shop_id)
    await engine.reconcile("shop")  # and then an archive
    writes = crm.writes

    await engine.once()

    assert by_name(crm, "Acme")[1].archived
    assert crm.writes == writes + 1  # the archive alone


async def test_a_review_accepted_for_a_company_deleted_meanwhile_keeps_its_edits(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create(
        "contacts", org("Bouw", vat_number="NL999999999B01", email="office@firm.example")
    )
    crm.human_create("contacts", org("Bouw B.V.", vat_number="NL222222222B01"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.pull("crm")
    # Typed into books with the other Bouw's mailbox and a phone number crm never had:
    # a review (the VAT number says one company, the mailbox and name the other).
    books.human_create(
        "contacts",
        org("Bouw", vat_number="NL222222222B01", email="office@firm.example", phone="+31207777777"),
    )
    await engine.pull("books")
    async with db_sessionmaker() as s:
        review = (await s.execute(select(t.MatchReview))).scalar_one()
        bouw = (
            await s.execute(select(t.Contact).where(t.Contact.vat_number == "NL222222222B01"))
        ).scalar_one()
    await engine.decide_match(review.id, accept=True, canonical_id=bouw.id)
    crm_id, _ = by_name(crm, "Bouw B.V.")
    crm.human_delete("contacts", crm_id)  # before books is pulled again
    await engine.reconcile("crm")

    await engine.once()
    await engine.once()

    # The phone is a modify crm's deletion never saw: the company lives on, everywhere.
    phones = {
        name: [
            c.phone
            for c in v.live("contacts").values()
            if isinstance(c, Contact) and c.vat_number == "NL222222222B01"
        ]
        for name, v in (("crm", crm), ("books", books))
    }
    assert phones == {"crm": ["+31207777777"], "books": ["+31207777777"]}


async def _decide_by_vat(engine: Engine, sessionmaker: Maker) -> int:
    """Decide every open review as a person who knows the truth would: accept the
    candidate with the waiting record's own VAT number, otherwise reject."""
    async with sessionmaker() as s:
        reviews = list(
            (await s.execute(select(t.MatchReview).where(t.MatchReview.state == "open"))).scalars()
        )
        vats = {row.id: row.vat_number for row in (await s.execute(select(t.Contact))).scalars()}
    for review in reviews:
        incoming = next(c["incoming"] for c in review.candidates if "incoming" in c)
        ids = [int(c["canonical_id"]) for c in review.candidates if "canonical_id" in c]
        same = [i for i in ids if vats.get(i) == incoming["vat_number"]]
        if same:
            await engine.decide_match(review.id, accept=True, canonical_id=same[0])
        else:
            await engine.decide_match(review.id, accept=False)
    return len(reviews)


async def test_a_rejected_review_asks_again_when_new_candidates_disagree(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Bouw", vat_number="NL111111111B01", email="info@bouw.nl"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    # Two namesakes share the first one's role mailbox: the second is typed into both
    # vendors, the third into crm. Each record asks whether it is the first company.
    books.human_create("contacts", org("Bouw", vat_number="NL222222222B01", email="info@bouw.nl"))
    crm.human_create(
        "contacts", org("BOUW BV", vat_number="NL 2222.22222.B01", email="info@bouw.nl")
    )
    crm.human_create("contacts", org("Bouw", vat_number="NL333333333B01", email="info@bouw.nl"))
    await engine.once()
    assert await _decide_by_vat(engine, db_sessionmaker) == 3  # all three: "no"

    # Rejected: each record is not the first company. The second company's crm record
    # becomes an entity; the third's record then meets that one (same mailbox and name,
    # another VAT number). That doubt is a new question, not a new entity at once: had the
    # third become an entity, books' record of the second would meet two candidates and
    # become a third entity of its own (a duplicate).
    await engine.once()
    assert await _decide_by_vat(engine, db_sessionmaker) == 1
    await engine.once()
    await engine.once()

    async with db_sessionmaker() as s:
        rows = await s.execute(select(t.Contact).where(t.Contact.deleted_at.is_(None)))
        assert sorted(c.vat_number for c in rows.scalars()) == [
            "NL111111111B01",
            "NL222222222B01",
            "NL333333333B01",
        ]
    for v in (crm, books):
        for vat in ("NL111111111B01", "NL222222222B01", "NL333333333B01"):
            assert len(_holding(v, vat)) == 1, (v.name, vat)


async def test_no_archive_sent_to_a_record_we_archived_there_already(
    db_sessionmaker: Maker,
) -> None:
    crm = vendor("crm")
    books = vendor("books", detection="snapshot", removal="archive")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Other"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    crm.human_edit("contacts", crm_id, archived=True)
    await engine.once()  # the archive reaches books as an update
    assert by_name(books, "Acme")[1].archived
    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")  # deleted: books would get an archive
    writes = books.writes

    await engine.once()

    assert by_name(books, "Acme")[1].archived
    assert books.writes == writes  # it holds the record archived already


async def test_push_does_not_duplicate_a_record_typed_in_after_the_last_pull(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    books.human_create("contacts", org("Acme B.V.", vat_number="NL123456789B01"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.pull("books")  # a create of Acme is queued for crm
    await engine.pull("crm")  # crm is pulled after that, before the push
    crm.human_create("contacts", org("ACME BV", vat_number="NL 1234.56789.B01"))

    await engine.push("crm")
    await engine.once()

    assert len(_holding(crm, "NL123456789B01")) == 1


class _UpdateAnswerLost(FakeResource):
    """The first update lands at the vendor; its answer is lost."""

    lost = False

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        record = await super().update(external_id, value, fields)
        if not self.lost:
            self.lost = True
            raise Uncertain(f"{self.vendor.name}: the answer to the update was lost")
        return record


async def test_our_own_update_whose_answer_was_lost_is_no_change_there(
    db_sessionmaker: Maker,
) -> None:
    crm, books = vendor("crm"), vendor("books", detection="snapshot")
    crm.human_create("contacts", org("Acme", phone="+31201111111"))
    engine = _engine(db_sessionmaker, {"crm": crm, "books": books}, {"books": _UpdateAnswerLost})
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    crm.human_edit("contacts", crm_id, phone="+31202222222")
    await engine.pull("crm")
    await engine.push("books")  # the phone lands in books; whether it did stays unknown
    crm.human_edit("contacts", crm_id, phone="+31201111111")  # and crm takes it back

    await engine.pull("crm")
    await engine.pull("books")  # books shows what we sent: our echo, not a change there
    await engine.once()
    await engine.once()

    assert by_name(crm, "Acme")[1].phone == "+31201111111"
    assert by_name(books, "Acme")[1].phone == "+31201111111"


async def test_deleted_everywhere_after_a_conflict_its_loser_lost(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books", detection="snapshot")
    books.human_create("contacts", org("Acme", vat_number="NL123456789B01", phone="+31201111111"))
    books.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    crm.human_create("contacts", org("Acme B.V.", vat_number="NL123456789B01"))
    crm.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=100
    )
    await engine.pull("crm")
    # Matched: books fills the phone; its name loses to crm's newer one (books has no
    # change times). Books' name was weighed and kept out: that is no change by books.
    await engine.pull("books")
    # Before anything is pushed, both delete Acme: each had its own changes only.
    crm.human_delete("contacts", by_name(crm, "Acme B.V.")[0])
    books.human_delete("contacts", by_name(books, "Acme")[0])
    await engine.reconcile("crm")  # books still holds its phone: a modify beats crm's delete
    await engine.reconcile("books")  # crm's name has no source left: books' delete holds

    await engine.once()
    await engine.once()

    assert _holding(crm, "NL123456789B01") == []
    assert _holding(books, "NL123456789B01") == []


async def test_a_company_typed_again_after_its_deletion_is_not_created_twice(
    db_sessionmaker: Maker,
) -> None:
    books = vendor("books")
    crm = vendor("crm", removal="archive")  # keeps the removed copy, archived
    books.human_create("contacts", org("Acme", vat_number="NL123456789B01"))
    books.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    engine = make_engine(
        db_sessionmaker, {"books": books, "crm": crm}, delete="propagate", max_delete_percent=100
    )
    await engine.once()
    books.human_delete("contacts", by_name(books, "Acme")[0])
    await engine.reconcile("books")
    await engine.once()
    assert by_name(crm, "Acme")[1].archived
    # Typed into books again: the deleted company lives on, and crm's archived copy is it.
    books.human_create("contacts", org("ACME BV", vat_number="NL 1234.56789.B01", city="Delft"))

    await engine.once()
    await engine.once()

    held = _holding(crm, "NL123456789B01")
    assert [(c.city, c.archived) for c in held] == [("Delft", False)]


async def test_deleted_everywhere_stays_deleted_when_a_field_came_with_the_first_copy(
    db_sessionmaker: Maker,
) -> None:
    books, crm = vendor("books", detection="snapshot"), vendor("crm")
    books.human_create("contacts", org("Acme", vat_number="NL123456789B01", postal_code="1012 AB"))
    books.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    crm.human_create("contacts", org("ACME BV", vat_number="NL 1234.56789.B01"))
    crm.human_create("contacts", org("Other", vat_number="NL987654321B01"))
    engine = make_engine(
        db_sessionmaker, {"books": books, "crm": crm}, delete="propagate", max_delete_percent=100
    )
    await engine.pull("books")  # Acme is made from books' copy, postcode included
    await engine.pull("crm")  # crm's copy is matched; its (timed) name wins
    # Before anything is pushed, both delete Acme: each had its own changes only.
    books.human_delete("contacts", by_name(books, "Acme")[0])
    crm.human_delete("contacts", by_name(crm, "ACME BV")[0])
    await engine.reconcile("books")  # crm still holds its name: a modify beats the delete
    await engine.reconcile("crm")  # the postcode came from books, which deleted it too

    await engine.once()
    await engine.once()

    assert _holding(books, "NL123456789B01") == []
    assert _holding(crm, "NL123456789B01") == []
