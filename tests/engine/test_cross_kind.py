"""One contact filed as a person in one vendor and as an organization in another.

A sole trader is often the owner (a person) in the CRM and the business (an
organization) in the books. Simplicate keeps persons and organizations as different
records and cannot turn one into the other; Moneybird can. The rule (``core.merge``,
``core.plan``): a copy in a vendor that cannot change a contact's kind keeps the kind it
was created with; syncd never asks that vendor to change it, keeps every other field in
step, writes names in the shape of each copy's kind (a person's first and last name, a
business's own name), records no lost edit and queues no conflict for the kind, and
says why in the audit.

These run the real Simplicate and Moneybird adapters against the sandbox emulators.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from syncd.store import tables as t
from tests.integration.helpers import (
    SEED_TIME,
    Held,
    SyncWorld,
    held_contacts,
    open_sync,
    seed_contact,
    seeds_of,
)

VAT = "NL123456782B01"
LATER = SEED_TIME + dt.timedelta(days=3)

# The owner, in the CRM; no VAT number (a Simplicate person has none).
JAN_PERSON = seed_contact(
    "jan",
    "Jan Jansen",
    kind="person",
    first_name="Jan",
    last_name="Jansen",
    email="jan@jansenadvies.nl",
    phone="+31 6 1111 2222",
)
# The business, in the books, with its contact person.
JAN_BUSINESS = seed_contact(
    "jan",
    "Jansen Advies",
    first_name="Jan",
    last_name="Jansen",
    email="jan@jansenadvies.nl",
    phone="+31 6 1111 2222",
    vat_number=VAT,
)


@pytest.fixture
def sqlite_db_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A private SQLite database at the newest schema (a copy of the session template)."""
    path = tmp_path / "cross_kind.db"
    shutil.copyfile(_sqlite_template, path)
    path.chmod(0o600)
    return f"sqlite+aiosqlite:///{path}"


def only(world: SyncWorld, vendor: Any) -> Held:
    (held,) = held_contacts(world.emulator(vendor))
    return held


async def assert_settled(world: SyncWorld) -> None:
    """Nothing failed or dead-lettered, nothing waits, and no conflict is open."""
    rows = await world.rows(t.Outbox)
    unsettled = [(r.op, r.state, r.last_error) for r in rows if r.state != "done"]
    assert unsettled == []
    assert not [r for r in rows if (r.last_error or "").startswith("simplicate refused")]
    assert await world.open_conflicts() == []


async def kind_audit(world: SyncWorld) -> list[t.Audit]:
    return [a for a in await world.rows(t.Audit) if a.field == "kind"]


async def once_writes_nothing(world: SyncWorld) -> None:
    writes = world.writes()
    totals = await world.engine.once()
    assert world.writes() == writes
    assert all(s.pushed == 0 and s.failed == 0 and not s.errors for s in totals.values())


async def test_a_crm_person_and_a_books_organization_joined_by_a_review_converge(
    sqlite_db_url: str,
) -> None:
    # The CRM's copy is the newer one: under ``newest`` its kind would have won and the
    # Moneybird business would have been turned into a person.
    person = dataclasses.replace(JAN_PERSON, updated_at=LATER)
    seeds = seeds_of(simplicate=[person], moneybird=[JAN_BUSINESS])
    async with open_sync(("simplicate", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        crm_id = only(world, "simplicate").id
        books_id = only(world, "moneybird").id
        await world.engine.once()
        # Same e-mail, other kinds: a person decides whether they are one contact.
        (review,) = await world.open_reviews()
        await world.engine.decide_match(review.id, accept=True)
        await world.engine.once()

        await assert_settled(world)
        crm, books = only(world, "simplicate"), only(world, "moneybird")
        assert (crm.id, crm.kind, crm.name) == (crm_id, "person", "Jan Jansen")
        assert (books.id, books.kind, books.name) == (books_id, "organization", "Jansen Advies")
        assert (books.raw["firstname"], books.raw["lastname"]) == ("Jan", "Jansen")
        assert books.vat == VAT
        (contact,) = await world.rows(t.Contact)
        assert (contact.kind, contact.name) == ("organization", "Jansen Advies")
        (kind,) = await kind_audit(world)
        assert (kind.old, kind.new) == ("person", "organization")
        assert "differs by vendor design" in kind.reason
        await once_writes_nothing(world)


async def test_edits_reach_the_other_filing_in_its_own_shape(sqlite_db_url: str) -> None:
    seeds = seeds_of(simplicate=[JAN_PERSON], moneybird=[JAN_BUSINESS])
    async with open_sync(("simplicate", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()
        (review,) = await world.open_reviews()
        await world.engine.decide_match(review.id, accept=True)
        await world.engine.once()
        crm, books = only(world, "simplicate"), only(world, "moneybird")

        # The owner's first name in the CRM is the business's contact person in the
        # books; the business's phone and its new name stay the books' own kind of name.
        world.emulator("simplicate").mutate("person", crm.id, {"first_name": "Johan"})
        world.emulator("moneybird").mutate(
            "contacts", books.id, {"phone": "+31 20 555 0000", "company_name": "Jansen & Co"}
        )
        await world.engine.once()

        await assert_settled(world)
        crm, books = only(world, "simplicate"), only(world, "moneybird")
        assert (crm.kind, crm.name, crm.raw["first_name"]) == ("person", "Johan Jansen", "Johan")
        assert crm.phone is not None and crm.phone.replace(" ", "").endswith("205550000")
        assert (books.kind, books.name) == ("organization", "Jansen & Co")
        assert (books.raw["firstname"], books.raw["lastname"]) == ("Johan", "Jansen")
        await once_writes_nothing(world)


@pytest.mark.parametrize("conflict", ["newest", "manual"])
async def test_a_crm_organization_and_a_books_person_with_one_vat_number_converge(
    sqlite_db_url: str, conflict: str
) -> None:
    business = dataclasses.replace(
        JAN_BUSINESS, email="info@jansenadvies.nl", first_name=None, last_name=None
    )
    owner = dataclasses.replace(JAN_PERSON, vat_number=VAT, email=None, updated_at=LATER)
    seeds = seeds_of(simplicate=[business], moneybird=[owner])
    async with open_sync(
        ("moneybird", "simplicate"), sqlite_db_url, seeds=seeds, conflict=conflict
    ) as world:
        crm_id = only(world, "simplicate").id
        await world.engine.once()

        # One VAT number: one legal entity, linked without a review, and even under
        # ``manual`` nobody is asked about the kind or the name.
        assert await world.open_reviews() == []
        await assert_settled(world)
        crm, books = only(world, "simplicate"), only(world, "moneybird")
        assert (crm.id, crm.kind, crm.name, crm.vat) == (
            crm_id,
            "organization",
            "Jansen Advies",
            VAT,
        )
        assert (books.kind, books.name, books.raw["company_name"]) == ("person", "Jan Jansen", None)
        # The CRM's e-mail reached the books; the person's names stay off the CRM's
        # organization (it has no first or last name).
        assert books.email == "info@jansenadvies.nl"
        await once_writes_nothing(world)

        world.emulator("moneybird").mutate("contacts", books.id, {"phone": "+31 20 555 0000"})
        world.emulator("simplicate").mutate("organization", crm.id, {"email": "jan@jansen.nl"})
        await world.engine.once()

        await assert_settled(world)
        crm, books = only(world, "simplicate"), only(world, "moneybird")
        assert crm.phone is not None and crm.phone.replace(" ", "").endswith("205550000")
        assert books.email == "jan@jansen.nl"
        assert (crm.kind, crm.name, books.kind, books.name) == (
            "organization",
            "Jansen Advies",
            "person",
            "Jan Jansen",
        )
        await once_writes_nothing(world)
