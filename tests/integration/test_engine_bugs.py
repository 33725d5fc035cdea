"""Engine and core bugs the sandbox runs exposed.

Each test states the behaviour issue 5 asks for. Open bugs are strict expected failures
whose ``reason`` is the diagnosis for the lead: a fix turns the test into an unexpected
pass (red under ``strict``), and then the marker goes. Fixed ones stay as regression
tests over the real adapters.
"""

from __future__ import annotations

import datetime as dt

from syncd.store import tables as t
from tests.integration.helpers import (
    find_held,
    held_contacts,
    open_sync,
    same_phone,
    seed_contact,
    seeds_of,
)

EARLY = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 9, 5, 9, 0, tzinfo=dt.UTC)

# Same e-mail, different VAT numbers: two legal entities or one? A person must decide.
KOMPASVELD_BOOKS = seed_contact(
    "kompasveld",
    "Kompasveld Advies B.V.",
    email="jan@kompasveld.nl",
    vat_number="NL111222333B01",
    coc_number="11122233",
)
KOMPASVELD_SIMPLBOOKS = seed_contact(
    "kompasveld",
    "Kompasveld Advies B.V.",
    email="jan@kompasveld.nl",
    vat_number="NL444555666B01",
    coc_number="44455566",
)
OTHERS = [
    seed_contact("molen", "Molenhof Media B.V.", email="post@molenhof.nl"),
    seed_contact("haven", "Havenkamp Bouw B.V.", email="info@havenkamp.nl"),
]


async def _review_world_pulls(sqlite_db_url: str) -> tuple[int, int]:
    seeds = seeds_of(moneybird=[KOMPASVELD_BOOKS, *OTHERS], simplbooks=[KOMPASVELD_SIMPLBOOKS])
    async with open_sync(("moneybird", "simplbooks"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()
        reviews = await world.open_reviews()
        assert len(reviews) == 1
        account = world.runtime.account_ids["simplbooks"]
        pulls = await world.rows(
            t.SyncRun, t.SyncRun.job == "pull", t.SyncRun.account_id == account
        )
        return len(pulls), len(reviews)


async def test_an_open_review_does_not_keep_once_busy(sqlite_db_url: str) -> None:
    pulls, _ = await _review_world_pulls(sqlite_db_url)
    assert pulls <= 3  # the pull that queued the review, one quiet round (and a spare)


async def test_a_match_under_review_is_not_created_again_in_its_own_account(
    sqlite_db_url: str,
) -> None:
    # Found here and by the engine's state machine; fixed in b8d8e9f.
    seeds = seeds_of(moneybird=[KOMPASVELD_BOOKS, *OTHERS], simplbooks=[KOMPASVELD_SIMPLBOOKS])
    async with open_sync(("moneybird", "simplbooks"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()
        (review,) = await world.open_reviews()

        await world.engine.decide_match(review.id, accept=True)
        await world.engine.once()

        for vendor in world.vendors:
            copies = [
                h for h in held_contacts(world.emulator(vendor)) if h.email == "jan@kompasveld.nl"
            ]
            assert len(copies) == 1, (vendor, [h.raw for h in copies])


async def test_a_person_in_simplbooks_links_to_the_same_person_elsewhere(
    sqlite_db_url: str,
) -> None:
    sanne = seed_contact(
        "sanne",
        "Sanne Visser",
        kind="person",
        first_name="Sanne",
        last_name="Visser",
        email="sanne.visser@example.nl",
    )
    seeds = seeds_of(moneybird=[sanne, *OTHERS], simplbooks=[sanne])
    async with open_sync(("moneybird", "simplbooks"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        assert await world.open_reviews() == []
        assert len(held_contacts(world.emulator("simplbooks"))) == 3


async def test_matched_copies_agree_after_the_first_pass(sqlite_db_url: str) -> None:
    # Found here and by the engine's state machine; fixed in 3eb309e.
    # Simplicate's copy is the newer one: whatever "newest" decides, its name stays.
    newer = seed_contact("acme", "Acme Advies B.V.", email="jan@acme-advies.nl", updated_at=LATE)
    older = seed_contact("acme", "ACME ADVIES BV", email="jan@acme-advies.nl", updated_at=EARLY)
    seeds = seeds_of(simplicate=[newer], moneybird=[older, *OTHERS])
    async with open_sync(("simplicate", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        names = {
            v: find_held(world.emulator(v), email="jan@acme-advies.nl").name for v in world.vendors
        }
        assert names == {"simplicate": "Acme Advies B.V.", "moneybird": "Acme Advies B.V."}


async def test_newest_decides_between_freshly_matched_copies(sqlite_db_url: str) -> None:
    older = seed_contact(
        "acme",
        "Acme Advies B.V.",
        email="jan@acme-advies.nl",
        phone="+31 20 111 1111",
        updated_at=EARLY,
    )
    newer = seed_contact(
        "acme",
        "Acme Advies B.V.",
        email="jan@acme-advies.nl",
        phone="+31 20 222 2222",
        updated_at=LATE,
    )
    seeds = seeds_of(simplicate=[older], moneybird=[newer, *OTHERS])
    async with open_sync(("simplicate", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        for vendor in world.vendors:
            held = find_held(world.emulator(vendor), email="jan@acme-advies.nl")
            assert same_phone(held.phone, "+31202222222"), (vendor, held.phone)


async def test_a_parenthesised_country_code_is_understood(sqlite_db_url: str) -> None:
    kadrioru = seed_contact(
        "kadrioru",
        "Kadrioru Energia OÜ",
        email="arve@kadrioruenergia.ee",
        phone="(+372) 6123456",
        country="EE",
    )
    seeds = seeds_of(simplbooks=[kadrioru], moneybird=[])
    async with open_sync(("simplbooks", "moneybird"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        copy = find_held(world.emulator("moneybird"), email="arve@kadrioruenergia.ee")
        assert same_phone(copy.phone, "+3726123456", "EE"), copy.phone


async def test_companies_sharing_a_role_mailbox_are_two_companies(sqlite_db_url: str) -> None:
    jansen = seed_contact(
        "jansen",
        "Bakkerij Jansen B.V.",
        email="facturen@kantoor.nl",
        vat_number="NL111222333B01",
        coc_number="11122233",
    )
    smit = seed_contact(
        "smit",
        "Slagerij Smit B.V.",
        email="facturen@kantoor.nl",
        vat_number="NL444555666B01",
        coc_number="44455566",
    )
    seeds = seeds_of(moneybird=[jansen], simplbooks=[smit])
    async with open_sync(("moneybird", "simplbooks"), sqlite_db_url, seeds=seeds) as world:
        await world.engine.once()

        assert await world.open_reviews() == []
        for vendor in world.vendors:
            assert sorted(h.name for h in held_contacts(world.emulator(vendor))) == [
                "Bakkerij Jansen B.V.",
                "Slagerij Smit B.V.",
            ]
