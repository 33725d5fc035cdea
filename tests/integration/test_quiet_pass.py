"""Issue 5 acceptance: a second ``once`` after convergence makes zero vendor writes and at
most one list call per vendor collection (plus reconcile when due).

All four vendors share one contacts flow in the sandbox. The counts are exact, per vendor
and per route, so that any extra call shows up as a failure:

- simplicate: ``contacts`` are two vendor collections (organizations and persons, separate
  endpoints, vendor reference §5), one probe call each (``q[updated_at][ge]`` OR-ed with
  ``q[created_at][ge]``, which also finds new rows without ``updated_at``, §7);
- moneybird: one synchronization GET (ids + versions, §7); nothing is fetched when no
  version changed;
- perfex: customers, plus the contacts list, since a customer has no e-mail field and
  its e-mail lives on its primary contact (vendor reference §5);
- simplbooks: one client list (snapshot vendor, no change timestamps).

The sandbox runs Moneybird in the vendor's own version scheme (``version`` = epoch second
of ``updated_at``) on a clock that moves one second every time it is read, as if each
request came a second after the one before. That is what lets the last fetch of the
converging ``once`` prove its records final (its listing is dated after their version's
second; the Moneybird adapter's "Quiet passes"). On a clock where the converging pass
fetches in the same second as its own writes, Moneybird fetches those records once more
on the next pass (tests/adapters/test_moneybird_quiet.py shows why that call is needed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from syncd.app import open_runtime
from syncd.sandbox.base import VENDORS, SandboxOptions, VendorName, VendorSeed
from syncd.sandbox.moneybird import MoneybirdEmulator
from syncd.sandbox.simplicate import SimplicateEmulator, SimplicateQuirks
from syncd.sandbox.testing import running_sandbox
from syncd.settings import parse_settings
from syncd.store import tables as t
from tests.integration.helpers import (
    Held,
    SyncWorld,
    assert_agree,
    assert_union,
    attribute,
    config_data,
    find_held,
    held_contacts,
    human_edit,
    load_seeds,
    requests_since,
    same_phone,
    sandbox_options,
    seeds_for,
)
from tests.invoices.helpers import RATES, held_invoices, payment_count, random_lines, seed_invoice
from tests.invoices.helpers import config_data as books_config
from tests.invoices.helpers import seed_contact as invoice_seed_contact

# Every request of a quiet pass, per vendor (see the module docstring for the why).
QUIET_PASS: dict[VendorName, Counter[str]] = {
    "simplicate": Counter({"GET /crm/organization": 1, "GET /crm/person": 1}),
    "moneybird": Counter({"GET /contacts/synchronization.json": 1}),
    "perfex": Counter({"GET /customers": 1, "GET /contacts": 1}),
    "simplbooks": Counter({"GET /clients/list": 1}),
}

START = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC)  # after every seeded time


class TickingClock:
    """A sandbox clock that moves one second forward every time it is read."""

    def __init__(self, start: dt.datetime) -> None:
        self._ticks = itertools.count()
        self._start = start

    def __call__(self) -> dt.datetime:
        return self._start + dt.timedelta(seconds=next(self._ticks))


@pytest.fixture
async def world(sqlite_db_url: str) -> AsyncIterator[SyncWorld]:
    options = sandbox_options(contacts=16, overlap=0.6)
    seeds = seeds_for(options, VENDORS, ("organization",))
    async with running_sandbox(options, vendors=VENDORS, clock=TickingClock(START)) as handle:
        load_seeds(handle, seeds)
        moneybird = handle.emulators["moneybird"]
        assert isinstance(moneybird, MoneybirdEmulator)
        epoch = dataclasses.replace(moneybird.quirks, version_mode="epoch")
        moneybird.quirks = moneybird.store.quirks = epoch
        data = config_data(handle, VENDORS, sqlite_db_url)
        settings = parse_settings(data, environ={}, base_dir=Path("."))
        async with open_runtime(settings, shared_budgets=False) as runtime:
            yield SyncWorld(handle, settings, runtime, dict(seeds), VENDORS)


async def converge(world: SyncWorld) -> None:
    totals = await world.engine.once()
    assert {name: st.errors for name, st in totals.items()} == {v: [] for v in VENDORS}
    assert await world.open_reviews() == []
    assert_union(world)
    assert_agree(world)


async def reconcile_runs(world: SyncWorld) -> int:
    async with world.runtime.sessionmaker() as s:
        query = select(func.count()).select_from(t.SyncRun).where(t.SyncRun.job == "reconcile")
        return int((await s.execute(query)).scalar_one())


async def quiet_once(world: SyncWorld) -> dict[VendorName, Counter[str]]:
    """One ``once`` (reconcile when due, as the CLI runs it) that must write nothing."""
    writes = world.writes()
    before = world.requests()
    totals = await world.engine.once()
    spent = requests_since(before, world.requests())
    assert world.writes() == writes, "a pass after convergence wrote to a vendor"
    for vendor in VENDORS:
        st = totals[vendor]
        assert (st.errors, st.pushed, st.changed) == ([], 0, 0), vendor
        assert st.api_calls == sum(spent[vendor].values()), vendor
    return spent


async def test_a_second_once_lists_each_vendor_collection_once_and_writes_nothing(
    world: SyncWorld,
) -> None:
    await converge(world)
    sweeps = await reconcile_runs(world)
    assert sweeps == len(VENDORS), "the first once reconciles (never swept before)"

    spent = await quiet_once(world)

    assert spent == QUIET_PASS
    assert await reconcile_runs(world) == sweeps, "reconcile is not due yet"
    # And it stays that way.
    assert await quiet_once(world) == QUIET_PASS


async def test_reconcile_runs_when_due_and_then_waits_for_its_interval(world: SyncWorld) -> None:
    await converge(world)
    sweeps = await reconcile_runs(world)
    interval = world.settings.workspaces[0].accounts[0].reconcile_interval
    real = world.engine.clock
    world.engine.clock = lambda: real() + interval + dt.timedelta(minutes=1)

    due = await quiet_once(world)

    assert await reconcile_runs(world) == sweeps + len(VENDORS), "one sweep per account"
    for vendor in VENDORS:
        # The sweep lists the same collections again (ids only): more calls, same routes.
        assert set(due[vendor]) == set(QUIET_PASS[vendor]), vendor
        assert sum(due[vendor].values()) > sum(QUIET_PASS[vendor].values()), vendor
    assert await quiet_once(world) == QUIET_PASS
    assert await reconcile_runs(world) == sweeps + len(VENDORS)


def _edit_targets(world: SyncWorld) -> dict[VendorName, tuple[str, Held]]:
    """Per vendor, a company held by every vendor (a different one each) to edit there."""
    tokens = world.world_tokens()
    copies = {v: attribute(held_contacts(world.emulator(v)), tokens)[0] for v in VENDORS}
    everywhere = sorted(k for k in tokens if all(copies[v].get(k) for v in VENDORS))
    assert len(everywhere) >= len(VENDORS), "the seed shares too few companies"
    return {v: (key, copies[v][key][0]) for v, key in zip(VENDORS, everywhere, strict=False)}


async def test_changes_made_just_before_the_quiet_pass_are_picked_up(world: SyncWorld) -> None:
    await converge(world)
    targets = _edit_targets(world)
    phones = {v: f"+3120777{n:04d}" for n, v in enumerate(VENDORS)}
    for vendor, (_, held) in targets.items():
        human_edit(world.emulator(vendor), held, "phone", phones[vendor])
    # A new Simplicate organization, made through the API by another integration, whose
    # row has no updated_at yet (vendor reference §7).
    simplicate = world.emulator("simplicate")
    assert isinstance(simplicate, SimplicateEmulator)
    simplicate.quirks = dataclasses.replace(simplicate.quirks, new_records_lack_updated_at=True)
    credentials = world.handle.credentials["simplicate"]
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            f"{world.handle.base_urls['simplicate']}/crm/organization",
            json={"name": "Nieuwkomer Installaties B.V.", "email": "info@nieuwkomer.nl"},
            headers={
                "Authentication-Key": credentials["key"],
                "Authentication-Secret": credentials["secret"],
            },
        )
        assert response.status == 200, await response.text()
    simplicate.quirks = SimplicateQuirks()
    made = [r for r in simplicate.dump()["organization"] if r["name"].startswith("Nieuwkomer")]
    assert len(made) == 1 and not made[0].get("updated_at")

    totals = await world.engine.once(reconcile=False)

    assert {name: st.errors for name, st in totals.items()} == {v: [] for v in VENDORS}
    tokens = world.world_tokens()
    for vendor, (key, _) in targets.items():
        for other in VENDORS:
            copies = attribute(held_contacts(world.emulator(other)), tokens)[0][key]
            assert len(copies) == 1, (vendor, other, key)
            assert same_phone(copies[0].phone, phones[vendor]), (vendor, other, copies[0].phone)
    for vendor in VENDORS:
        assert find_held(world.emulator(vendor), email="info@nieuwkomer.nl").name.startswith(
            "Nieuwkomer"
        )
    # Once those changes have settled, the quiet pass is back to its floor.
    assert await quiet_once(world) == QUIET_PASS


# ---------------------------------------------------------------- invoices and payments

# Every request of a quiet pass of a contacts + invoices flow (resources contacts,
# invoices, payments), per CRM -> bookkeeping pair, with INVOICES invoices of which one
# is paid (one receipt). Each resource is one list call, except:
# - moneybird lists its sales invoices once for invoices and once for payments (payments
#   live inside their invoices; there is no payment list or sync, vendor reference §6);
# - simplbooks, a snapshot vendor, lists invoices for both resources and then reads every
#   invoice (rows and the unpaid rest are not in list rows) and its bound receipts (no
#   receipt list can say which invoice a receipt pays): vendor reference §8, §9 and §11
#   (row-only edits and partial payments show nowhere else).
INVOICES = 3
QUIET_BOOKS_PASS: dict[tuple[VendorName, VendorName], dict[VendorName, Counter[str]]] = {
    ("simplicate", "moneybird"): {
        "simplicate": Counter(
            {
                "GET /crm/organization": 1,
                "GET /crm/person": 1,
                "GET /invoices/invoice": 1,
                "GET /invoices/payment": 1,
            }
        ),
        "moneybird": Counter(
            {"GET /contacts/synchronization.json": 1, "GET /sales_invoices/synchronization.json": 2}
        ),
    },
    ("perfex", "simplbooks"): {
        "perfex": Counter(
            {"GET /customers": 1, "GET /contacts": 1, "GET /invoices": 1, "GET /payments": 1}
        ),
        "simplbooks": Counter(
            {
                "GET /clients/list": 1,
                "GET /invoices/list": 2,
                "GET /invoices/get/{id}": INVOICES,
                "GET /invoices/get_bound_receipts/{id}": INVOICES,
                "GET /incomings/get/{id}": 1,
            }
        ),
    },
}


@pytest.mark.parametrize("pair", list(QUIET_BOOKS_PASS), ids=lambda p: "->".join(p))
async def test_a_quiet_pass_of_invoices_lists_each_resource_once(
    pair: tuple[VendorName, VendorName], sqlite_db_url: str
) -> None:
    crm, books = pair
    rng = random.Random(f"quiet:{crm}->{books}")
    contacts = (
        invoice_seed_contact("c1", "Acme B.V.", email="info@acme.nl", vat="NL123456789B01"),
        invoice_seed_contact("c2", "Beta Bouw B.V.", email="post@betabouw.nl"),
    )
    invoices = tuple(
        seed_invoice(
            f"i{n}",
            contacts[n % 2].key,
            random_lines(rng, 2, RATES[books]),
            number=f"INV-{n:06d}",
        )
        for n in range(1, INVOICES + 1)
    )
    options = SandboxOptions(
        seed=7, contacts=0, invoices=0, rate_limits=False, fault_rate=0.0, control=True
    )
    vendors = (crm, books)
    async with running_sandbox(options, vendors=vendors, clock=TickingClock(START)) as handle:
        load_seeds(handle, {crm: VendorSeed(contacts, invoices), books: VendorSeed((), ())})
        if books == "moneybird":
            moneybird = handle.emulators["moneybird"]
            assert isinstance(moneybird, MoneybirdEmulator)
            epoch = dataclasses.replace(moneybird.quirks, version_mode="epoch")
            moneybird.quirks = moneybird.store.quirks = epoch
        data = books_config(handle, crm, books, sqlite_db_url, conflict="manual")
        settings = parse_settings(data, environ={}, base_dir=Path("."))
        async with open_runtime(settings, shared_budgets=False) as runtime:
            engine = runtime.engine
            totals = await engine.once()
            assert {n: st.errors for n, st in totals.items()} == {crm: [], books: []}
            held = held_invoices(handle.emulators[books])
            assert len(held) == INVOICES
            handle.emulators[books].register_payment(held[0].id, held[0].total, START.date())
            totals = await engine.once()
            assert {n: st.errors for n, st in totals.items()} == {crm: [], books: []}
            assert payment_count(handle.emulators[crm]) == 1

            writes = {v: handle.counters(v).writes for v in vendors}
            before = {v: Counter(handle.counters(v).requests) for v in vendors}
            again = await engine.once()
            spent = {v: Counter(handle.counters(v).requests) - before[v] for v in vendors}

            assert {v: handle.counters(v).writes for v in vendors} == writes
            assert all((st.pushed, st.changed, st.errors) == (0, 0, []) for st in again.values())
            assert spent == QUIET_BOOKS_PASS[pair]
