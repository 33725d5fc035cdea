"""Contacts between every pair of vendors (and all four at once) through the sandbox.

Issue 5 acceptance: accounts pre-seeded with overlapping companies (small formatting
differences per copy) converge with one ``once`` to exactly the union, each company once
on each side; a second ``once`` after convergence makes zero vendor writes and lists each
vendor collection once.
"""

from __future__ import annotations

import itertools

import pytest

from syncd.sandbox.base import VENDORS, VendorName
from tests.integration.helpers import (
    LIST_ROUTES,
    SyncWorld,
    assert_agree,
    assert_union,
    keys_of,
    open_sync,
    requests_since,
)

PAIRS: list[tuple[VendorName, ...]] = list(itertools.combinations(VENDORS, 2))

# Requests one incremental or snapshot pass of contacts makes per vendor once nothing
# changed, and why (tests/integration/test_quiet_pass.py pins the exact counts):
# - simplicate: organizations and persons are two collections, each read with one query
#   for rows changed or created since the cursor: 2 list calls;
# - moneybird: the synchronization id list; a record the 30 s overlap window lists again
#   is fetched once more only when it was fetched within the second of its last change
#   (this test's writes are that recent, so 1 or 2);
# - perfex: customers, plus the contacts list that holds their e-mail addresses;
# - simplbooks: one client list.
QUIET_PASS_CALLS: dict[VendorName, int] = {
    "simplicate": 2,
    "moneybird": 2,
    "perfex": 2,
    "simplbooks": 1,
}


def _id(vendors: tuple[VendorName, ...]) -> str:
    return "+".join(vendors)


async def _converge_and_check(world: SyncWorld) -> None:
    shared = world.shared()
    for vendor in world.vendors:
        # The seed must make the test mean something: overlap, and records of its own.
        assert keys_of(world.seeds[vendor]) & shared, f"{vendor} shares nothing"
        assert keys_of(world.seeds[vendor]) - shared, f"{vendor} has nothing of its own"

    totals = await world.engine.once()

    assert {name: st.errors for name, st in totals.items()} == {v: [] for v in world.vendors}
    assert sum(st.failed for st in totals.values()) == 0
    assert await world.open_reviews() == []
    assert_union(world)
    assert_agree(world)
    # The shared companies were matched, not created a second time.
    assert sum(st.matched for st in totals.values()) >= len(shared)

    writes = world.writes()
    before = world.requests()
    again = await world.engine.once(reconcile=False)
    spent = requests_since(before, world.requests())

    assert world.writes() == writes, "a pass after convergence wrote to a vendor"
    assert all(st.pushed == 0 and st.changed == 0 for st in again.values())
    for vendor in world.vendors:
        assert set(spent[vendor]) <= LIST_ROUTES[vendor], spent[vendor]
        assert sum(spent[vendor].values()) <= QUIET_PASS_CALLS[vendor], spent[vendor]
        assert again[vendor].api_calls == sum(spent[vendor].values())

    # What reconcile adds when it is due: an id sweep per account, and nothing to do.
    for vendor in world.vendors:
        swept = await world.engine.reconcile(vendor)
        assert (swept.changed, swept.pushed, swept.errors) == (0, 0, [])
    assert world.writes() == writes


@pytest.mark.parametrize("vendors", PAIRS, ids=_id)
async def test_pair_converges_to_the_union(
    vendors: tuple[VendorName, ...], sqlite_db_url: str
) -> None:
    async with open_sync(vendors, sqlite_db_url) as world:
        await _converge_and_check(world)


async def test_all_four_converge_to_the_union(migrated_db_url: str) -> None:
    # Half the companies live in two or three of the four vendors, half in one only.
    # The SQL rate budgets of `syncd once` are on here (they are off elsewhere for speed).
    async with open_sync(
        VENDORS, migrated_db_url, contacts=24, overlap=0.5, shared_budgets=True
    ) as world:
        await _converge_and_check(world)


async def test_people_and_companies_converge_among_the_vendors_that_tell_them_apart(
    sqlite_db_url: str,
) -> None:
    # SimplBooks reads every client as an organization; its people are in
    # test_engine_bugs.py (they wait in the match review).
    vendors: tuple[VendorName, ...] = ("simplicate", "moneybird", "perfex")
    async with open_sync(
        vendors, sqlite_db_url, kinds=("organization", "person"), contacts=20, overlap=0.6
    ) as world:
        people = {c.key for s in world.seeds.values() for c in s.contacts if c.kind == "person"}
        assert people & world.shared(), "the seed shares no person between vendors"
        await _converge_and_check(world)
