"""Moneybird quiet passes: what the overlap window lists again at a known version is not
fetched again, and a change is never lost for it (see the adapter's "Quiet passes").

The sandbox runs in the vendor's own version scheme here (``version`` = epoch second of
``updated_at``, so two changes in one second share a version) on a clock the tests move.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from syncd.adapters.base import Page, ResourceAdapter
from syncd.adapters.moneybird import MoneybirdAdapter, create_adapter
from syncd.adapters.moneybird.adapter import OVERLAP, settled
from syncd.adapters.moneybird.client import http_date
from syncd.sandbox.base import SandboxOptions
from syncd.sandbox.moneybird import MoneybirdEmulator
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import AccountSettings

# After every seeded time (the seeded world lies before 2026-11-01).
START = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.UTC)


class FakeClock:
    """A sandbox clock the tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclasses.dataclass
class Books:
    handle: SandboxHandle
    emulator: MoneybirdEmulator
    adapter: MoneybirdAdapter
    clock: FakeClock

    @property
    def contacts(self) -> ResourceAdapter:
        return self.adapter.resource("contacts")

    def requests(self) -> Counter[str]:
        return Counter(self.emulator.counters.requests)

    def edit(self, contact_id: str, phone: str) -> None:
        self.emulator.mutate("contacts", contact_id, {"phone": phone})


@pytest.fixture
async def books() -> AsyncIterator[Books]:
    clock = FakeClock(START)
    options = SandboxOptions(
        seed=5, contacts=12, invoices=0, overlap=0.0, rate_limits=False, control=True
    )
    async with running_sandbox(options, vendors=("moneybird",), clock=clock) as handle:
        emulator = handle.emulators["moneybird"]
        assert isinstance(emulator, MoneybirdEmulator)
        epoch = dataclasses.replace(emulator.quirks, version_mode="epoch")
        emulator.quirks = epoch
        emulator.store.quirks = epoch
        account = AccountSettings(
            name="books",
            vendor="moneybird",
            base_url=handle.base_urls["moneybird"],
            credentials={"token": handle.credentials["moneybird"]["token"]},
            allow_insecure_http=True,
        )
        async with aiohttp.ClientSession() as session:
            adapter = create_adapter(account, session, budget=None)
            yield Books(handle, emulator, adapter, clock)


async def pass_of(books: Books, cursor: Any) -> tuple[list[Page], Counter[str]]:
    before = books.requests()
    pages = [page async for page in books.contacts.list_changes(cursor)]
    assert pages and pages[-1].final
    return pages, books.requests() - before


def phone_of(pages: list[Page], external_id: str) -> str | None:
    found = [r.value for p in pages for r in p.records if r.external_id == external_id]
    assert found, f"{external_id} was not listed"
    return found[-1].phone  # type: ignore[union-attr]


def test_settled_needs_the_listing_after_the_versions_second() -> None:
    at = dt.datetime(2026, 11, 20, 12, 0, 5, tzinfo=dt.UTC)
    second = int(at.timestamp())
    assert settled(str(second - 1), at)
    assert not settled(str(second), at)  # a change later in this second keeps the version
    assert not settled(str(second + 3), at)  # a version ahead of the vendor clock
    assert not settled(str(second - 1), None)  # no Date header: fetch again next time
    assert not settled(None, at)
    assert not settled("v7", at)


def test_http_date_reads_the_header_form_and_refuses_garbage() -> None:
    assert http_date("Fri, 20 Nov 2026 12:00:05 GMT") == dt.datetime(
        2026, 11, 20, 12, 0, 5, tzinfo=dt.UTC
    )
    assert http_date(None) is None
    assert http_date("yesterday") is None


async def test_a_quiet_pass_is_one_id_list_once_the_window_is_settled(books: Books) -> None:
    contacts = await pass_of(books, None)
    cursor = contacts[0][-1].checkpoint
    made = [c.external_id for p in contacts[0] for c in p.records][:2]
    books.clock.advance(minutes=5)
    for n, contact_id in enumerate(made):
        books.edit(contact_id, f"+3120555000{n}")
    # Fetched in the second of their versions: not yet known to be final.
    changed, spent = await pass_of(books, cursor)
    assert spent == Counter(
        {"GET /contacts/synchronization.json": 1, "POST /contacts/synchronization.json": 1}
    )
    assert phone_of(changed, made[0]) == "+31205550000"
    assert changed[-1].checkpoint["seen"] == {}

    books.clock.advance(seconds=20)
    again, spent = await pass_of(books, changed[-1].checkpoint)
    # Listed again by the overlap window, fetched once more, now settled.
    assert spent["POST /contacts/synchronization.json"] == 1
    assert set(again[-1].checkpoint["seen"]) == set(made)

    books.clock.advance(seconds=5)
    quiet, spent = await pass_of(books, again[-1].checkpoint)
    assert spent == Counter({"GET /contacts/synchronization.json": 1})
    assert [r for p in quiet for r in p.records] == []
    assert quiet[-1].checkpoint == again[-1].checkpoint

    # A new version is fetched at once, even inside the window.
    books.edit(made[1], "+31205559999")
    books.clock.advance(seconds=2)
    edited, spent = await pass_of(books, quiet[-1].checkpoint)
    assert spent["POST /contacts/synchronization.json"] == 1
    assert [r.external_id for p in edited for r in p.records] == [made[1]]
    assert phone_of(edited, made[1]) == "+31205559999"


async def test_a_change_in_the_second_of_the_fetch_is_not_lost(books: Books) -> None:
    cursor = (await pass_of(books, None))[0][-1].checkpoint
    contact_id = books.emulator.dump()["contacts"][0]["id"]
    books.clock.advance(minutes=5)
    books.edit(contact_id, "+31201110000")
    first, _ = await pass_of(books, cursor)
    assert phone_of(first, contact_id) == "+31201110000"
    version = books.emulator.dump()["contacts"][0]["version"]

    # A user saves again in the very second the pass fetched: the version stays.
    books.edit(contact_id, "+31202220000")
    assert books.emulator.dump()["contacts"][0]["version"] == version
    books.clock.advance(seconds=3)
    second, _ = await pass_of(books, first[-1].checkpoint)
    assert phone_of(second, contact_id) == "+31202220000"


async def test_seen_holds_only_what_the_next_window_lists(books: Books) -> None:
    assert dt.timedelta(minutes=1) > OVERLAP, "the gap below must be wider than the window"
    cursor = (await pass_of(books, None))[0][-1].checkpoint
    books.clock.advance(minutes=10)
    older = [books.emulator.create("contacts", {"company_name": f"Old {n} B.V."}) for n in (1, 2)]
    books.clock.advance(minutes=1)
    newest = books.emulator.create("contacts", {"company_name": "New B.V."})
    books.clock.advance(seconds=5)
    pages, _ = await pass_of(books, cursor)
    listed = {r.external_id for p in pages for r in p.records}
    assert {c["id"] for c in older} | {newest["id"]} <= listed
    # Only the record the next listing (30 s before the newest change) shows again.
    assert set(pages[-1].checkpoint["seen"]) == {newest["id"]}
