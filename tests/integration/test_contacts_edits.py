"""Two-way edits through the sandbox: different fields merge, a same-field edit waits.

Edits are made the way a user of each vendor would make them (the emulators' control
hooks: a Perfex e-mail is its customer's primary contact's, a Moneybird e-mail is
``send_invoices_to_email``), and checked in each vendor's own state.
"""

from __future__ import annotations

import itertools

import pytest

from syncd.sandbox.base import VENDORS, VendorName, VendorSeed
from tests.integration.helpers import (
    SyncWorld,
    assert_union,
    find_held,
    human_edit,
    open_sync,
    same_phone,
    sandbox_options,
    seeds_for,
)

PAIRS: list[tuple[VendorName, VendorName]] = list(itertools.combinations(VENDORS, 2))


def _dutch_companies(world: SyncWorld) -> list[str]:
    """E-mail addresses of Dutch companies seeded into some vendor (every side holds them
    after the first pass), the ones seeded into several vendors first."""
    shared = world.shared()
    found: dict[str, bool] = {}
    for seed in world.seeds.values():
        for contact in seed.contacts:
            if contact.country == "NL" and contact.email:
                found.setdefault(contact.email.lower(), contact.key in shared)
    return sorted(found, key=lambda email: (not found[email], email))


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
async def test_edits_to_different_fields_on_two_sides_both_survive(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    left, right = pair
    async with open_sync(pair, sqlite_db_url, contacts=10) as world:
        await world.engine.once()
        email = _dutch_companies(world)[0]
        on_left = find_held(world.emulator(left), email=email)
        on_right = find_held(world.emulator(right), email=email)
        new_email = "sales+" + email
        new_phone = "+31 30 555 0142"

        human_edit(world.emulator(left), on_left, "email", new_email)
        human_edit(world.emulator(right), on_right, "phone", new_phone)
        totals = await world.engine.once()

        assert all(st.errors == [] for st in totals.values())
        for vendor in pair:
            held = find_held(world.emulator(vendor), email=new_email)
            assert held.id == (on_left if vendor == left else on_right).id
            assert held.email is not None and held.email.lower() == new_email
            assert same_phone(held.phone, new_phone), (vendor, held.phone)
        assert await world.open_conflicts() == []
        assert_union(world)


async def test_a_same_field_edit_waits_in_the_conflict_queue(migrated_db_url: str) -> None:
    pair: tuple[VendorName, VendorName] = ("perfex", "moneybird")
    # Perfex starts with the companies, Moneybird empty: the first pass copies them over
    # without any disagreement (seeded copies differ in spelling, which "manual" would
    # rightly queue).
    seeds = seeds_for(sandbox_options(), ["perfex"], ["organization"])
    seeds["moneybird"] = VendorSeed(contacts=(), invoices=())
    async with open_sync(pair, migrated_db_url, seeds=seeds, conflict="manual") as world:
        await world.engine.once()
        assert await world.open_conflicts() == []
        assert_union(world)
        perfex, moneybird = world.emulator("perfex"), world.emulator("moneybird")
        email, other_email = _dutch_companies(world)[:2]
        p_held = find_held(perfex, email=email)
        m_held = find_held(moneybird, email=email)

        # Both sides change the same field; Perfex also changes another one; and a
        # different company is edited meanwhile.
        human_edit(perfex, p_held, "email", "perfex+" + email)
        human_edit(perfex, p_held, "phone", "+31 10 555 0199")
        human_edit(moneybird, m_held, "email", "moneybird+" + email)
        other = find_held(moneybird, email=other_email)
        human_edit(moneybird, other, "phone", "+31 40 555 0123")
        totals = await world.engine.once()

        assert all(st.errors == [] for st in totals.values())
        conflicts = await world.open_conflicts()
        assert [(c.field, c.policy) for c in conflicts] == [("email", "manual")]
        assert conflicts[0].candidates == {
            "perfex": "perfex+" + email,
            "moneybird": "moneybird+" + email,
        }
        # Nobody's e-mail was overwritten while the conflict waits ...
        assert find_held(perfex, email="perfex+" + email).id == p_held.id
        assert find_held(moneybird, email="moneybird+" + email).id == m_held.id
        # ... while the other field of that company and the other company kept syncing.
        assert same_phone(find_held(moneybird, email="moneybird+" + email).phone, "+31105550199")
        assert same_phone(find_held(perfex, email=other_email).phone, "+31405550123")

        # A pass while the conflict is open writes nothing new.
        writes = world.writes()
        await world.engine.once(reconcile=False)
        assert world.writes() == writes

        await world.engine.resolve_conflict(conflicts[0].id, take="moneybird")
        await world.engine.once()

        assert await world.open_conflicts() == []
        assert find_held(perfex, email="moneybird+" + email).id == p_held.id
        assert find_held(moneybird, email="moneybird+" + email).id == m_held.id
