"""The engine on fake vendors: two-way contacts, merge, conflicts, deletions, dry run, faults."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.runner import describe_plan
from syncd.store import tables as t
from tests.engine.helpers import (
    by_name,
    count,
    make_engine,
    names,
    open_conflicts,
    org,
    vendor,
)

Maker = async_sessionmaker[AsyncSession]


async def test_overlapping_accounts_converge_to_the_union(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books", detection="snapshot")
    crm.human_create(
        "contacts", org("Acme B.V.", email="info@acme.nl", vat_number="NL123456789B01")
    )
    crm.human_create("contacts", org("Bakker Installaties", postal_code="1012AB", country="NL"))
    crm.human_create("contacts", org("Only In CRM"))
    books.human_create(
        "contacts", org("ACME BV", email="INFO@acme.nl", vat_number="nl 1234.56789.b01")
    )
    books.human_create(
        "contacts", org("Bakker Installaties B.V.", postal_code="1012 ab", country="NL")
    )
    books.human_create("contacts", org("Only In Books"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})

    totals = await engine.once()

    assert len(crm.live("contacts")) == 4
    assert len(books.live("contacts")) == 4
    assert "Only In Books" in names(crm) and "Only In CRM" in names(books)
    assert await count(db_sessionmaker, t.Contact) == 4
    assert totals["crm"].matched + totals["books"].matched == 2
    assert totals["crm"].errors == [] and totals["books"].errors == []


async def test_a_second_once_writes_nothing_and_lists_once(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    for i in range(20):
        crm.human_create("contacts", org(f"Company {i}", email=f"c{i}@example.com"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    assert len(books.live("contacts")) == 20
    writes = crm.writes + books.writes
    calls = {"crm": crm.calls, "books": books.calls}

    totals = await engine.once(reconcile=False)

    assert crm.writes + books.writes == writes
    # One listing of contacts per account, nothing else (pages hold 7 records; the
    # incremental cursor returns nothing new).
    assert crm.calls - calls["crm"] == 1
    assert books.calls - calls["books"] == 1
    assert all(s.pushed == 0 and s.changed == 0 for s in totals.values())


async def test_edits_to_different_fields_on_two_sides_both_survive(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme", email="a@acme.nl", phone="+31201234567"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")

    crm.human_edit("contacts", crm_id, email="sales@acme.nl")
    books.human_edit("contacts", books_id, city="Utrecht")
    await engine.once()

    for v in (crm, books):
        _, contact = by_name(v, "Acme")
        assert contact.email == "sales@acme.nl"
        assert contact.city == "Utrecht"
    assert await open_conflicts(db_sessionmaker) == []


async def test_same_field_edit_follows_newest(db_sessionmaker: Maker) -> None:
    now = [dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)]
    crm = vendor("crm", clock=lambda: now[0])
    books = vendor("books", clock=lambda: now[0])
    crm.human_create("contacts", org("Acme", email="a@acme.nl"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")

    now[0] += dt.timedelta(minutes=5)
    books.human_edit("contacts", books_id, email="old@acme.nl")
    now[0] += dt.timedelta(minutes=5)
    crm.human_edit("contacts", crm_id, email="newest@acme.nl")
    await engine.once()

    assert by_name(crm, "Acme")[1].email == "newest@acme.nl"
    assert by_name(books, "Acme")[1].email == "newest@acme.nl"


async def test_manual_conflict_waits_while_other_fields_sync(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme", email="a@acme.nl"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books}, conflict="manual")
    await engine.once()
    crm_id, _ = by_name(crm, "Acme")
    books_id, _ = by_name(books, "Acme")

    crm.human_edit("contacts", crm_id, email="crm@acme.nl", city="Delft")
    books.human_edit("contacts", books_id, email="books@acme.nl")
    await engine.once()

    conflicts = await open_conflicts(db_sessionmaker)
    assert [c.field for c in conflicts] == ["email"]
    assert conflicts[0].candidates == {"crm": "crm@acme.nl", "books": "books@acme.nl"}
    # The other field kept syncing; neither side's email was overwritten meanwhile.
    assert by_name(books, "Acme")[1].city == "Delft"
    assert by_name(crm, "Acme")[1].email == "crm@acme.nl"
    assert by_name(books, "Acme")[1].email == "books@acme.nl"

    await engine.resolve_conflict(conflicts[0].id, take="books")
    await engine.once()

    assert by_name(crm, "Acme")[1].email == "books@acme.nl"
    assert await open_conflicts(db_sessionmaker) == []


async def test_deletion_propagates_after_reconcile(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    for i in range(5):
        crm.human_create("contacts", org(f"Company {i}"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books}, delete="propagate")
    await engine.once()
    crm_id, _ = by_name(crm, "Company 3")

    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")
    await engine.once(reconcile=False)

    assert "Company 3" not in names(books)
    assert len(books.live("contacts")) == 4


async def test_a_modify_beats_a_delete(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    for i in range(5):
        crm.human_create("contacts", org(f"Company {i}"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books}, delete="propagate")
    await engine.once()
    crm_id, _ = by_name(crm, "Company 2")
    books_id, _ = by_name(books, "Company 2")

    books.human_edit("contacts", books_id, email="new@company2.nl")
    await engine.pull("books")  # the edit reaches canonical, but crm never received it
    crm.human_delete("contacts", crm_id)
    await engine.reconcile("crm")
    await engine.once(reconcile=False)

    assert by_name(books, "Company 2")[1].email == "new@company2.nl"
    assert by_name(crm, "Company 2")[1].email == "new@company2.nl"  # created again


async def test_mass_deletion_is_refused(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    for i in range(10):
        crm.human_create("contacts", org(f"Company {i}"))
    engine = make_engine(
        db_sessionmaker, {"crm": crm, "books": books}, delete="propagate", max_delete_percent=20
    )
    await engine.once()
    for external_id in list(crm.live("contacts"))[:5]:
        crm.human_delete("contacts", external_id)

    stats = await engine.reconcile("crm")
    await engine.once(reconcile=False)

    assert stats.errors and "50" in stats.errors[0]
    assert len(books.live("contacts")) == 10


async def test_dry_run_prints_the_plan_and_writes_nothing(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    crm.human_create("contacts", org("Bakker"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})

    planned = await engine.dry_run()

    assert describe_plan(planned) == ["would create 2 contacts in books: Acme, Bakker"]
    assert books.writes == 0 and crm.writes == 0
    assert await count(db_sessionmaker, t.Contact) == 0
    assert await count(db_sessionmaker, t.Outbox) == 0

    totals = await engine.once()
    assert totals["books"].created == 2


@pytest.mark.parametrize("seed", range(3))
async def test_faulty_writes_never_duplicate(db_sessionmaker: Maker, seed: int) -> None:
    kinds = ("lost_response", "reset", "server_error", "rate_limit", "unavailable")
    crm = vendor("crm", seed=seed, fault_rate=0.3, fault_kinds=kinds)
    books = vendor(
        "books", detection="snapshot", seed=seed + 100, fault_rate=0.3, fault_kinds=kinds
    )
    for i in range(15):
        crm.human_create("contacts", org(f"Crm {i}", email=f"crm{i}@example.com"))
        books.human_create("contacts", org(f"Books {i}", email=f"books{i}@example.com"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})

    for _ in range(6):
        await engine.once(max_rounds=4)
    crm.fault_rate = books.fault_rate = 0.0
    await engine.once()

    assert names(crm) == names(books)
    assert len(names(crm)) == 30
    assert len(set(names(crm))) == 30


async def test_three_accounts_converge(db_sessionmaker: Maker) -> None:
    a, b, c = vendor("a"), vendor("b", detection="snapshot"), vendor("c", removal="archive")
    a.human_create("contacts", org("From A", email="x@a.nl"))
    b.human_create("contacts", org("From B", email="x@b.nl"))
    c.human_create("contacts", org("From C", email="x@c.nl"))
    engine = make_engine(db_sessionmaker, {"a": a, "b": b, "c": c})
    await engine.once()
    assert names(a) == names(b) == names(c) == ["From A", "From B", "From C"]

    b_id, _ = by_name(b, "From A")
    b.human_edit("contacts", b_id, phone="+3720000000")
    await engine.once()
    assert {by_name(v, "From A")[1].phone for v in (a, b, c)} == {"+3720000000"}


async def test_before_write_hook_can_refuse_an_accounts_writes(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.prepare()
    seen: list[int] = []

    class Fenced(Exception):
        pass

    async def fence(session: AsyncSession, account_id: int) -> None:
        seen.append(account_id)
        raise Fenced(f"account {account_id} is held by another instance")

    engine.before_write = fence
    with pytest.raises(Fenced):
        await engine.pull("crm")

    assert seen and set(seen) == {engine.accounts["crm"].id}
    assert await count(db_sessionmaker, t.Contact) == 0
    assert await count(db_sessionmaker, t.Link) == 0


async def test_an_open_match_review_holds_creates_of_its_candidates(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Smit Transport", postal_code="1012AB", country="NL"))
    books.human_create("contacts", org("Smid Transport", postal_code="1012 AB", country="NL"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})

    await engine.once()

    # The books record may be the CRM's company: nothing is created either way meanwhile.
    assert names(crm) == ["Smit Transport"]
    assert names(books) == ["Smid Transport"]
    async with db_sessionmaker() as s:
        reviews = (await s.execute(select(t.MatchReview))).scalars().all()
    assert [r.state for r in reviews] == ["open"]

    await engine.decide_match(reviews[0].id, accept=True)
    await engine.once()

    assert len(crm.live("contacts")) == 1 and len(books.live("contacts")) == 1
    assert await count(db_sessionmaker, t.Contact) == 1


async def test_rejecting_a_match_review_lets_both_records_sync(db_sessionmaker: Maker) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Smit Transport", postal_code="1012AB", country="NL"))
    books.human_create("contacts", org("Smid Transport", postal_code="1012 AB", country="NL"))
    engine = make_engine(db_sessionmaker, {"crm": crm, "books": books})
    await engine.once()
    async with db_sessionmaker() as s:
        review = (await s.execute(select(t.MatchReview))).scalars().one()

    await engine.decide_match(review.id, accept=False)
    await engine.once()

    assert names(crm) == names(books) == ["Smid Transport", "Smit Transport"]
    assert await count(db_sessionmaker, t.Contact) == 2
