"""The Simplicate adapter against the Simplicate sandbox: the shared contract, and its own ways.

Everything here talks HTTP to the in-process sandbox on 127.0.0.1 (``running_sandbox``),
acting as a human user through its ``/_sandbox/`` control API.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from syncd.adapters.base import (
    IdVersion,
    Page,
    Resource,
    ResourceAdapter,
    VendorAdapter,
    VendorRecord,
)
from syncd.adapters.http import RetryPolicy
from syncd.adapters.simplicate import auth_headers, classify, create_adapter
from syncd.adapters.simplicate.adapter import (
    OVERLAP,
    ContactsResource,
    SimplicateAdapter,
    _start,
)
from syncd.adapters.simplicate.mapping import local_lower_bound
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    normalise,
    totals_match,
)
from syncd.errors import AuthFailed, NotFound, SkipRecord, Uncertain, VendorUnavailable
from syncd.sandbox.base import Clock, SandboxOptions
from syncd.sandbox.simplicate import SimplicateEmulator, SimplicateQuirks
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import AccountSettings
from tests.adapters.contract import (
    AdapterContract,
    all_ids,
    collect,
    records,
    sample_contact,
    sample_invoice,
)

PAGE_SIZE = 5
# As many tries as the fake adapter's reads: faults at 20 % then fail a read once in 64 000.
RETRY = RetryPolicy(attempts=6, base_delay=0.001, max_delay=0.01)


async def no_wait(_: float) -> None:
    await asyncio.sleep(0)


def options(**overrides: Any) -> SandboxOptions:
    values: dict[str, Any] = {
        "seed": 11,
        "contacts": 12,
        "invoices": 8,
        "rate_limits": False,
        "fault_rate": 0.0,
        "control": True,
    }
    values.update(overrides)
    return SandboxOptions(**values)


def account_for(
    handle: SandboxHandle, *, key: str | None = None, secret: str | None = None
) -> AccountSettings:
    creds = handle.credentials["simplicate"]
    return AccountSettings(
        name="acme-crm",
        vendor="simplicate",
        base_url=handle.base_urls["simplicate"],
        credentials={
            "key": SecretStr(key or creds["key"]),
            "secret": SecretStr(secret or creds["secret"]),
        },
        allow_insecure_http=True,
    )


def make_adapter(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    *,
    key: str | None = None,
    secret: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = no_wait,
    retry: RetryPolicy = RETRY,
) -> SimplicateAdapter:
    adapter = create_adapter(
        account_for(handle, key=key, secret=secret), session, budget=None, sleep=sleep, retry=retry
    )
    for name in ("contacts", "invoices", "payments"):
        adapter.resource(name).page_size = PAGE_SIZE  # type: ignore[attr-defined]
    return adapter


class SandboxSide:
    """The vendor's side through the sandbox control API."""

    def __init__(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> None:
        self.handle = handle
        self.session = session
        self.root = f"{handle.url}/_sandbox"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.root + path, json=body) as response:
            data = await response.json()
            assert response.status < 300, data
            return data

    async def state(self) -> dict[str, list[dict[str, Any]]]:
        data: dict[str, list[dict[str, Any]]] = await self._call("GET", "/simplicate/state")
        return data

    async def count(self, resource: Resource) -> int:
        state = await self.state()
        if resource == "contacts":
            return len(state["organization"]) + len(state["person"])
        return len(state["invoice" if resource == "invoices" else "payment"])

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        vendor_resource, _, _ = external_id.partition(":")
        await self.mutate(
            vendor_resource, external_id, _vendor_fields(vendor_resource, field, value)
        )

    async def mutate(self, vendor_resource: str, external_id: str, fields: dict[str, Any]) -> Any:
        return await self._call("PATCH", f"/simplicate/{vendor_resource}/{external_id}", fields)

    async def create(self, vendor_resource: str, fields: dict[str, Any]) -> Any:
        return await self._call("POST", f"/simplicate/{vendor_resource}", fields)

    async def delete(self, vendor_resource: str, external_id: str) -> None:
        await self._call("DELETE", f"/simplicate/{vendor_resource}/{external_id}")

    async def pay(self, invoice_id: str, amount: str, date: str) -> Any:
        path = f"/simplicate/invoice/{invoice_id}/payments"
        return await self._call("POST", path, {"amount": amount, "date": date})

    async def counters(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/simplicate/counters")
        return data

    async def writes(self) -> int:
        return int((await self.counters())["writes"])

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        await self._call("PUT", "/settings", {"fault_rate": rate, "fault_kinds": list(kinds)})


_ADDRESS_KEYS = {
    "address_line1": "line_1",
    "address_line2": "line_2",
    "postal_code": "postal_code",
    "city": "locality",
    "region": "province",
    "country": "country_code",
}
_PLAIN_KEYS = {
    "email": "email",
    "phone": "phone",
    "iban": "bank_account",
    "bic": "bank_bic",
    "customer_number": "relation_number",
    "vat_number": "vat_number",
    "coc_number": "coc_code",
    "reference": "reference",
}


def _vendor_fields(vendor_resource: str, field: str, value: str) -> dict[str, Any]:
    """A canonical field edit in the words of Simplicate's web app."""
    if field in _ADDRESS_KEYS:
        key = "visiting_address" if vendor_resource == "organization" else "address"
        return {key: {_ADDRESS_KEYS[field]: value}}
    if field == "name" and vendor_resource == "person":
        first, _, family = value.partition(" ")
        return {"first_name": first, "family_name": family or first}
    if field == "website":
        return {"url" if vendor_resource == "organization" else "website_url": value}
    return {_PLAIN_KEYS.get(field, field): value}


@asynccontextmanager
async def stack(
    sandbox_options: SandboxOptions | None = None, *, clock: Clock | None = None
) -> AsyncIterator[tuple[SandboxHandle, aiohttp.ClientSession, SandboxSide]]:
    async with (
        running_sandbox(
            sandbox_options or options(), vendors=("simplicate",), clock=clock
        ) as handle,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session,
    ):
        yield handle, session, SandboxSide(handle, session)


@pytest.fixture
async def served() -> AsyncIterator[tuple[SandboxHandle, aiohttp.ClientSession, SandboxSide]]:
    async with stack() as triple:
        yield triple


@pytest.fixture
def handle(served: tuple[SandboxHandle, aiohttp.ClientSession, SandboxSide]) -> SandboxHandle:
    return served[0]


@pytest.fixture
def session(
    served: tuple[SandboxHandle, aiohttp.ClientSession, SandboxSide],
) -> aiohttp.ClientSession:
    return served[1]


@pytest.fixture
def side(served: tuple[SandboxHandle, aiohttp.ClientSession, SandboxSide]) -> SandboxSide:
    return served[2]


@pytest.fixture
def emulator(handle: SandboxHandle) -> SimplicateEmulator:
    emulator = handle.emulators["simplicate"]
    assert isinstance(emulator, SimplicateEmulator)
    return emulator


class TestSimplicateContract(AdapterContract):
    resources = ("contacts", "invoices", "payments")

    @pytest.fixture
    def adapter(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> SimplicateAdapter:
        return make_adapter(handle, session)

    @pytest.fixture
    def vendor_side(self, side: SandboxSide) -> SandboxSide:
        return side

    @pytest.fixture
    def bad_adapter(
        self, handle: SandboxHandle, session: aiohttp.ClientSession
    ) -> SimplicateAdapter:
        return make_adapter(handle, session, secret="not-the-secret")


# ---------------------------------------------------------------- helpers


def by_id(pages: list[Page]) -> dict[str, VendorRecord]:
    return {r.external_id: r for r in records(pages)}


class FakeClock:
    """A sandbox clock tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


# A fixed "now" after every seeded time (the seeded world lies before 2026-11-01).
START = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.UTC)


# ---------------------------------------------------------------- incremental listing


async def test_capabilities_describe_an_incremental_vendor_that_numbers_its_invoices(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    assert isinstance(adapter, VendorAdapter)
    caps = adapter.capabilities
    assert caps.change_detection == "incremental"
    assert caps.max_page_size == 100
    assert caps.removal == {"contacts": "archive", "invoices": "delete", "payments": "none"}
    assert caps.assigns_invoice_numbers
    assert "kind" not in caps.writable_fields["contacts"]
    assert caps.writable_fields["invoices"] == {"contact", "issue_date", "reference"}
    assert caps.client_token_field == {"contacts": None, "invoices": None, "payments": None}
    for name in ("contacts", "invoices", "payments"):
        resource = adapter.resource(name)
        assert isinstance(resource, ResourceAdapter)
        assert resource.resource == name
    default = create_adapter(account_for(handle), session, budget=None)
    assert default.resource("contacts").page_size == 100  # type: ignore[attr-defined]


async def test_a_cursor_lists_only_what_changed_since_it_minus_the_overlap() -> None:
    clock = FakeClock(START)
    async with stack(clock=clock) as (handle, session, side):
        adapter = make_adapter(handle, session)
        contacts = adapter.resource("contacts")
        everything = await collect(contacts.list_changes(None))
        cursor = everything[-1].checkpoint
        assert set(cursor) == {"updated_at"}
        listed = by_id(everything)
        high = dt.datetime.fromisoformat(cursor["updated_at"])
        recent = {k for k, r in listed.items() if r.updated_at and r.updated_at >= high - OVERLAP}
        seeded = sorted(set(listed) - recent)
        assert len(seeded) >= 2, "the seeded world has contacts older than the overlap"

        clock.advance(minutes=10)
        made = await contacts.create(sample_contact(), client_token=None)
        second = await collect(contacts.list_changes(cursor))
        assert set(by_id(second)) == {made.external_id} | recent, "older records are not listed"
        cursor = second[-1].checkpoint
        assert dt.datetime.fromisoformat(cursor["updated_at"]) == START + dt.timedelta(minutes=10)

        # A record stamped a minute before the cursor (a clock a minute behind, or an edit in
        # the second the cursor was taken) is still seen; one stamped long before is not.
        clock.now = START + dt.timedelta(minutes=9)
        await side.human_edit("contacts", seeded[0], "email", "skew@example.org")
        clock.now = START + dt.timedelta(minutes=2)
        await side.human_edit("contacts", seeded[1], "email", "old@example.org")
        clock.now = START + dt.timedelta(minutes=11)
        third = by_id(await collect(contacts.list_changes(cursor)))
        assert seeded[0] in third and seeded[1] not in third
        assert made.external_id in third, "the overlap lists the last pass's newest record again"


async def test_incremental_filters_use_zone_less_amsterdam_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After every seeded time, and still summer time: 12:00 in Amsterdam is 10:00 UTC.
    clock = FakeClock(dt.datetime(2026, 10, 23, 10, 0, 0, tzinfo=dt.UTC))
    async with stack(clock=clock) as (handle, session, _side):
        adapter = make_adapter(handle, session)
        contacts = adapter.resource("contacts")
        made = await contacts.create(sample_contact(), client_token=None)
        assert made.updated_at == clock.now
        assert made.version == "2026-10-23 12:00:00"
        pages = await collect(contacts.list_changes(None))
        assert pages[-1].checkpoint == {"updated_at": "2026-10-23T10:00:00+00:00"}

        sent: list[tuple[str, list[tuple[str, str]]]] = []
        real = adapter.client.list_rows

        async def spy(collection: Any, params: Any, *, lane: Any = "pull") -> Any:
            sent.append((collection, list(params)))
            return await real(collection, params, lane=lane)

        monkeypatch.setattr(adapter.client, "list_rows", spy)
        clock.advance(minutes=30)
        again = by_id(await collect(contacts.list_changes(pages[-1].checkpoint)))
        assert set(again) == {made.external_id}
        # The cursor minus the overlap, as Amsterdam wall-clock text (CEST, UTC+2).
        bounds = {v for _, params in sent for k, v in params if k.endswith("[ge]")}
        assert bounds == {"2026-10-23 11:58:00"}
        # One probe per collection answers the whole quiet pass: rows updated since the
        # bound OR-ed with rows created since it (new rows may lack updated_at).
        assert [c for c, _ in sent] == ["/crm/organization", "/crm/person"]
        for _, params in sent:
            assert ("q[updated_at][ge]", "2026-10-23 11:58:00") in params
            assert ("q[or][created_at][ge]", "2026-10-23 11:58:00") in params
            assert ("metadata", "count") in params


async def test_a_record_edited_during_a_pass_does_not_hide_another(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    for _ in range(8):
        await contacts.create(sample_contact(), client_token=None)
    truth = {e.external_id for e in await all_ids(contacts)}
    pages = contacts.list_changes(None)
    assert isinstance(pages, AsyncGenerator)  # so it can be closed after one page
    first = await anext(pages)
    await pages.aclose()
    assert not first.final and len(first.records) == PAGE_SIZE
    # A user edits a record of the first page: it moves to the end of updated_at order.
    await side.human_edit("contacts", first.records[0].external_id, "phone", "+31207654321")
    rest = by_id(await collect(contacts.list_changes(first.checkpoint)))
    assert truth - {r.external_id for r in first.records} <= set(rest)
    assert rest[first.records[0].external_id].value.phone == "+31207654321"  # type: ignore[union-attr]


async def test_checkpoints_resume_across_organizations_and_persons(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    for n in range(3):
        await contacts.create(
            sample_contact(
                kind="person",
                name=f"Anne van der Berg{n}",
                first_name="Anne",
                last_name=f"van der Berg{n}",
            ),
            client_token=None,
        )
    pages = await collect(contacts.list_changes(None))
    kinds = [r.external_id.partition(":")[0] for r in records(pages)]
    assert kinds == sorted(kinds, key=lambda k: k != "organization"), "organizations first"
    assert {"organization", "person"} <= set(kinds)
    total = set(by_id(pages))
    for n, page in enumerate(pages[:-1]):
        resumed = await collect(contacts.list_changes(page.checkpoint))
        before = {r.external_id for p in pages[: n + 1] for r in p.records}
        assert total - before <= set(by_id(resumed)), f"resume after page {n} loses nothing"
        assert resumed[-1].checkpoint == pages[-1].checkpoint


async def test_new_records_without_updated_at_are_found_by_created_at(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    cursor = (await collect(contacts.list_changes(None)))[-1].checkpoint
    emulator.quirks = SimplicateQuirks(new_records_lack_updated_at=True)
    made = await contacts.create(sample_contact(), client_token=None)
    assert made.version is not None and made.updated_at is not None  # from created_at
    later = by_id(await collect(contacts.list_changes(cursor)))
    assert made.external_id in later
    full = await collect(contacts.list_changes(None))
    assert made.external_id in by_id(full)


async def test_a_quiet_pass_probes_each_collection_once_and_still_sees_rows_without_updated_at(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    emulator: SimplicateEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    cursor = (await collect(contacts.list_changes(None)))[-1].checkpoint
    emulator.quirks = SimplicateQuirks(new_records_lack_updated_at=True)
    made = await contacts.create(sample_contact(), client_token=None)
    assert emulator.dump()["organization"][-1].get("updated_at") in (None, "")

    sent: list[tuple[str, list[tuple[str, str]]]] = []
    real = adapter.client.list_rows

    async def spy(collection: Any, params: Any, *, lane: Any = "pull") -> Any:
        sent.append((collection, list(params)))
        return await real(collection, params, lane=lane)

    monkeypatch.setattr(adapter.client, "list_rows", spy)
    pages = await collect(contacts.list_changes(cursor))
    assert made.external_id in by_id(pages)
    assert [c for c, _ in sent] == ["/crm/organization", "/crm/person"]
    assert pages[-1].final and sum(p.api_calls for p in pages) == 2


async def test_a_probe_that_does_not_hold_every_row_falls_back_to_the_keyset_phases(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    emulator: SimplicateEmulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    adapter = make_adapter(handle, session)  # pages of PAGE_SIZE rows
    contacts = adapter.resource("contacts")
    cursor = (await collect(contacts.list_changes(None)))[-1].checkpoint
    made = [await contacts.create(sample_contact(), client_token=None) for _ in range(PAGE_SIZE)]
    emulator.quirks = SimplicateQuirks(new_records_lack_updated_at=True)
    bare = await contacts.create(sample_contact(), client_token=None)

    sent: list[tuple[str, list[tuple[str, str]]]] = []
    real = adapter.client.list_rows

    async def spy(collection: Any, params: Any, *, lane: Any = "pull") -> Any:
        sent.append((collection, list(params)))
        return await real(collection, params, lane=lane)

    monkeypatch.setattr(adapter.client, "list_rows", spy)
    listed = by_id(await collect(contacts.list_changes(cursor)))
    assert {m.external_id for m in made} | {bare.external_id} <= set(listed)
    organization_calls = [p for c, p in sent if c == "/crm/organization"]
    # The probe, then the updated_at pages, then the created_at phase for bare rows.
    assert ("q[or][created_at][ge]", cursor_bound(cursor)) in organization_calls[0]
    assert len(organization_calls) > 2
    assert any(("q[updated_at]", "null") in p for p in organization_calls[1:])


async def test_a_probe_page_checkpoint_resumes_with_the_next_collection(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    cursor = (await collect(contacts.list_changes(None)))[-1].checkpoint
    org = await contacts.create(sample_contact(), client_token=None)
    person = await contacts.create(
        sample_contact(kind="person", name="Eva Smit", first_name="Eva", last_name="Smit"),
        client_token=None,
    )
    pages = await collect(contacts.list_changes(cursor))
    assert len(pages) == 2 and not pages[0].final  # one probe page per collection
    assert org.external_id in by_id(pages[:1]) and person.external_id in by_id(pages[1:])
    resumed = await collect(contacts.list_changes(pages[0].checkpoint))
    assert person.external_id in by_id(resumed) and org.external_id not in by_id(resumed)
    assert resumed[-1].checkpoint == pages[-1].checkpoint


def cursor_bound(cursor: Mapping[str, Any]) -> str:
    """The wall-clock lower bound a final cursor gives the next incremental pass."""
    previous = dt.datetime.fromisoformat(cursor["updated_at"])
    return local_lower_bound(previous - OVERLAP)


def test_a_version_1_checkpoint_resumes_in_the_same_phase() -> None:
    position = _start(
        {
            "v": 1,
            "incremental": True,
            "since": "2026-10-23 11:58:00",
            "phase": 3,  # version 1: persons, created_at
            "key": "2026-10-23 11:58:00",
            "skip": 0,
            "high": None,
            "anchor": None,
        }
    )
    phases = ContactsResource.phases(ContactsResource.__new__(ContactsResource), True)
    assert phases[position.phase].collection == "/crm/person"
    assert phases[position.phase].field == "created_at"


async def test_an_empty_vendor_lists_one_final_page(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    emulator.reset()
    adapter = make_adapter(handle, session)
    pages = await collect(adapter.resource("contacts").list_changes(None))
    assert len(pages) == 1 and pages[0].final and not pages[0].records
    assert pages[0].checkpoint == {"updated_at": None}
    assert await all_ids(adapter.resource("contacts")) == []
    payments = await collect(adapter.resource("payments").list_changes(None))
    assert payments[-1].final and not records(payments)


# ---------------------------------------------------------------- id sweeps and removal


async def test_id_sweep_flags_archived_contacts_and_forgets_deleted_ones(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    archived = await contacts.create(sample_contact(), client_token=None)
    deleted = await contacts.create(sample_contact(), client_token=None)
    await contacts.remove(archived.external_id)
    await side.delete("organization", deleted.external_id)
    swept = {e.external_id: e for e in await all_ids(contacts)}
    assert swept[archived.external_id].archived
    assert deleted.external_id not in swept
    assert len(swept) == await side.count("contacts")
    assert all(isinstance(e, IdVersion) and e.version for e in swept.values())
    assert await contacts.get(deleted.external_id) is None


async def test_removing_an_unknown_contact_or_invoice_is_a_no_op(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    before = await side.writes()
    await adapter.resource("contacts").remove("organization:" + "0" * 32)
    await adapter.resource("invoices").remove("invoice:" + "0" * 32)
    await adapter.resource("contacts").remove("not-a-simplicate-id")
    assert await side.writes() == before


async def test_get_answers_none_for_ids_of_another_type_or_unknown(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    assert await contacts.get("invoice:" + "a" * 32) is None
    assert await contacts.get("person:" + "a" * 32) is None
    assert await adapter.resource("invoices").get("organization:abc") is None
    with pytest.raises(NotFound):
        await contacts.update("999", sample_contact(), frozenset({"email"}))


# ---------------------------------------------------------------- writes


async def test_a_lost_create_response_is_uncertain_and_find_settles_it(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    wanted = sample_contact(vat_number="NL123456789B01", customer_number="C-7781")
    before = await side.count("contacts")
    await side.set_faults(1.0, ("lost_response",))
    with pytest.raises(Uncertain):
        await contacts.create(wanted, client_token="ct-lost-1")
    await side.set_faults(0.0, ())
    assert await side.count("contacts") == before + 1, "the write landed"
    found = await contacts.find(client_token="ct-lost-1", natural_key=wanted)
    assert found is not None
    assert found.value == wanted
    other = dataclasses.replace(wanted, customer_number="C-0000")
    assert await contacts.find(client_token=None, natural_key=other) is None


async def test_find_tries_the_strongest_natural_key_each_contact_has(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    by_coc = await contacts.create(sample_contact(coc_number="87654321"), client_token=None)
    by_name = await contacts.create(
        sample_contact(
            kind="person", name="Bram de Vries", first_name="Bram", last_name="de Vries", email=None
        ),
        client_token=None,
    )
    assert isinstance(by_coc.value, Contact) and isinstance(by_name.value, Contact)
    found = await contacts.find(client_token=None, natural_key=by_coc.value)
    assert found is not None and found.external_id == by_coc.external_id
    found = await contacts.find(client_token=None, natural_key=by_name.value)
    assert found is not None and found.external_id == by_name.external_id
    renamed = dataclasses.replace(by_coc.value, name="Another Name B.V.")
    assert await contacts.find(client_token=None, natural_key=renamed) is None
    assert await contacts.find(client_token="x", natural_key=None) is None


async def test_persons_keep_their_family_name_prefix(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    wanted = sample_contact(
        kind="person",
        name="Anne van der Berg",
        first_name="Anne",
        last_name="van der Berg",
        iban="NL91ABNA0417164300",
        bic="ABNANL2A",
        customer_number="P-1",
    )
    created = await contacts.create(wanted, client_token=None)
    assert created.external_id.startswith("person:")
    assert created.value == wanted
    stored = next(p for p in emulator.dump()["person"] if p["id"] == created.external_id)
    assert (stored["first_name"], stored["family_name_prefix"], stored["family_name"]) == (
        "Anne",
        "van der",
        "Berg",
    )
    renamed = dataclasses.replace(wanted, name="Anne de Wit", last_name="de Wit")
    updated = await contacts.update(created.external_id, renamed, frozenset({"last_name", "name"}))
    assert updated.value == renamed


async def test_an_organization_with_a_postal_address_gets_that_address_updated(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    side: SandboxSide,
    emulator: SimplicateEmulator,
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    created = await contacts.create(sample_contact(), client_token=None)
    await side.mutate(
        "organization",
        created.external_id,
        {
            "has_different_postal_address": True,
            "postal_address": {
                "line_1": "Postbus 12",
                "postal_code": "1000AA",
                "locality": "Amsterdam",
                "country_code": "NL",
            },
        },
    )
    listed = await contacts.get(created.external_id)
    assert listed is not None and isinstance(listed.value, Contact)
    assert (listed.value.address_line1, listed.value.postal_code) == ("Postbus 12", "1000 AA")
    moved = dataclasses.replace(listed.value, address_line1="Postbus 99")
    updated = await contacts.update(created.external_id, moved, frozenset({"address_line1"}))
    assert updated.value == moved
    stored = next(o for o in emulator.dump()["organization"] if o["id"] == created.external_id)
    assert stored["postal_address"]["line_1"] == "Postbus 99"
    assert stored["visiting_address"]["line_1"] == created.value.address_line1  # type: ignore[union-attr]


async def test_clearing_a_field_and_archiving_through_update(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    created = await contacts.create(
        sample_contact(website="https://acme.example"), client_token=None
    )
    assert isinstance(created.value, Contact) and created.value.website == "https://acme.example"
    cleared = dataclasses.replace(created.value, website=None, phone=None, archived=True)
    updated = await contacts.update(
        created.external_id, cleared, frozenset({"website", "phone", "archived"})
    )
    assert updated.value == cleared
    with pytest.raises(SkipRecord, match="cannot turn"):
        await contacts.update(
            created.external_id, dataclasses.replace(cleared, kind="person"), frozenset({"name"})
        )


# ---------------------------------------------------------------- invoices


def random_invoice(rng: random.Random, contact: str, lines: int) -> Invoice:
    made = tuple(
        InvoiceLine(
            description=f"Line {n}",
            quantity=Decimal(rng.randint(1, 4000)) / Decimal(rng.choice((1, 4, 100))),
            unit_price=Decimal(rng.randint(-5000, 250000)) / 100,
            vat_rate=Decimal(rng.choice((0, 9, 21))),
        )
        for n in range(lines)
    )
    return sample_invoice(contact, lines=made, reference=f"rand-{rng.random():.8f}")


@pytest.mark.parametrize("lines", [1, 2, 7, 20])
async def test_invoices_with_many_lines_round_trip_to_the_cent(
    handle: SandboxHandle, session: aiohttp.ClientSession, lines: int
) -> None:
    adapter = make_adapter(handle, session)
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    invoices = adapter.resource("invoices")
    wanted = random_invoice(random.Random(lines), contact.external_id, lines)
    created = await invoices.create(wanted, client_token=None)
    fetched = await invoices.get(created.external_id)
    assert fetched is not None and fetched.value == created.value
    got = created.value
    assert isinstance(got, Invoice)
    assert got.lines == wanted.lines
    assert got.subtotal == wanted.subtotal
    # Simplicate rounds VAT per line, syncd per rate: at most half a cent per line apart.
    assert totals_match(got, tolerance=Decimal("0.005") * lines)
    assert (got.status, got.number, got.amount_paid) == ("draft", None, Decimal("0.00"))
    assert (got.issue_date, got.due_date, got.reference) == (
        wanted.issue_date,
        wanted.due_date,
        wanted.reference,
    )


async def test_a_sent_invoice_gets_a_number_and_payments_settle_it(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    invoices = adapter.resource("invoices")
    payments = adapter.resource("payments")
    created = await invoices.create(
        sample_invoice(contact.external_id, status="sent"), client_token=None
    )
    invoice = created.value
    assert isinstance(invoice, Invoice) and invoice.status == "sent" and invoice.number
    half = Payment(created.external_id, dt.date(2026, 11, 10), invoice.total / 2, reference="half")
    paid = await payments.create(half, client_token=None)
    assert paid.value == normalise(half)
    assert (await payments.find(client_token=None, natural_key=half)) == paid
    after = await invoices.get(created.external_id)
    assert after is not None and isinstance(after.value, Invoice)
    assert after.value.status == "partially_paid"
    assert after.value.amount_paid == normalise(half).amount
    await side.pay(created.external_id, str(invoice.total - normalise(half).amount), "2026-11-12")
    settled = await invoices.get(created.external_id)
    assert settled is not None and isinstance(settled.value, Invoice)
    assert settled.value.status == "paid" and settled.value.amount_paid == invoice.total
    listed = by_id(await collect(payments.list_changes(None)))
    assert paid.external_id in listed and len(listed) == await side.count("payments")
    swept = {e.external_id for e in await all_ids(payments)}
    assert set(listed) == swept
    corrected = dataclasses.replace(normalise(half), amount=Decimal("1.00"), reference=None)
    updated = await payments.update(paid.external_id, corrected, frozenset({"amount", "reference"}))
    assert updated.value == corrected
    with pytest.raises(SkipRecord, match="cannot delete payments"):
        await payments.remove(paid.external_id)
    with pytest.raises(SkipRecord, match="no longer be changed"):
        await invoices.update(
            created.external_id,
            dataclasses.replace(invoice, reference="late"),
            frozenset({"reference"}),
        )


async def test_concept_invoice_headers_update_but_lines_are_fixed_once_created(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session)
    contacts = adapter.resource("contacts")
    first = await contacts.create(sample_contact(), client_token=None)
    person = await contacts.create(
        sample_contact(kind="person", name="Eva Smit", first_name="Eva", last_name="Smit"),
        client_token=None,
    )
    invoices = adapter.resource("invoices")
    created = await invoices.create(sample_invoice(first.external_id), client_token=None)
    assert isinstance(created.value, Invoice)
    moved = dataclasses.replace(
        created.value,
        contact=person.external_id,
        reference="po-77",
        issue_date=dt.date(2026, 11, 5),
    )
    updated = await invoices.update(
        created.external_id, moved, frozenset({"contact", "reference", "issue_date", "total"})
    )
    assert isinstance(updated.value, Invoice)
    assert (updated.value.contact, updated.value.reference, updated.value.issue_date) == (
        person.external_id,
        "po-77",
        dt.date(2026, 11, 5),
    )
    with pytest.raises(SkipRecord, match="cannot change lines"):
        await invoices.update(created.external_id, moved, frozenset({"lines"}))
    found = await invoices.find(client_token=None, natural_key=updated.value)
    assert found is not None and found.external_id == created.external_id
    await invoices.remove(created.external_id)
    assert await invoices.get(created.external_id) is None


async def test_an_invoice_at_a_rate_the_tenant_lacks_is_skipped_with_a_reason(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contact = await adapter.resource("contacts").create(
        sample_contact(country="EE"), client_token=None
    )
    estonian = sample_invoice(
        contact.external_id,
        lines=(InvoiceLine("Teenus", Decimal(1), Decimal("100.00"), Decimal(22)),),
    )
    before = await side.writes()
    with pytest.raises(SkipRecord, match="no VAT class for 22 %"):
        await adapter.resource("invoices").create(estonian, client_token=None)
    with pytest.raises(SkipRecord, match="EUR only"):
        await adapter.resource("invoices").create(
            dataclasses.replace(sample_invoice(contact.external_id), currency="USD"),
            client_token=None,
        )
    with pytest.raises(SkipRecord, match="refused the invoice"):
        await adapter.resource("invoices").create(
            sample_invoice("organization:" + "f" * 32), client_token=None
        )
    assert await side.writes() == before


async def test_lookups_are_fetched_once_per_adapter(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    adapter = make_adapter(handle, session)
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    for _ in range(3):
        await adapter.resource("invoices").create(
            sample_invoice(contact.external_id), client_token=None
        )
    requests = emulator.counters.requests
    assert sum(n for k, n in requests.items() if k.startswith("GET /invoices/vatclass")) == 1
    assert sum(n for k, n in requests.items() if k.startswith("GET /invoices/invoicestatus")) == 1


async def test_seeded_invoices_list_with_their_debtors_and_due_dates(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    adapter = make_adapter(handle, session)
    listed = records(await collect(adapter.resource("invoices").list_changes(None)))
    contacts = by_id(await collect(adapter.resource("contacts").list_changes(None)))
    assert listed
    for record in listed:
        invoice = record.value
        assert isinstance(invoice, Invoice)
        assert invoice.contact in contacts
        assert invoice.due_date is not None and invoice.issue_date is not None
        assert invoice.due_date >= invoice.issue_date
        assert totals_match(invoice, tolerance=Decimal("0.005") * max(1, len(invoice.lines)))
        assert (invoice.status == "draft") == (invoice.number is None)


# ---------------------------------------------------------------- rate limits, faults, auth


async def test_the_vendors_429_is_absorbed_by_retries() -> None:
    # Simplicate's 60 requests a minute, scaled to 60 a quarter second.
    async with stack(options(rate_limits=True, rate_scale=240.0)) as (handle, session, side):
        adapter = make_adapter(
            handle,
            session,
            sleep=asyncio.sleep,
            retry=RetryPolicy(attempts=8, base_delay=0.1, max_delay=0.5),
        )
        contacts = adapter.resource("contacts")
        results = await asyncio.gather(*(adapter.verify() for _ in range(90)))
        assert len(results) == 90
        listed = await collect(contacts.list_changes(None))
        assert listed[-1].final
        assert (await side.counters())["rate_limited"] > 0, "the vendor did answer 429"


async def test_reads_complete_under_every_read_fault(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    invoices = adapter.resource("invoices")
    clean = by_id(await collect(invoices.list_changes(None)))
    await side.set_faults(0.3, ("server_error", "unavailable", "reset", "garbled", "html"))
    faulty = by_id(await collect(invoices.list_changes(None)))
    swept = {e.external_id for e in await all_ids(invoices)}
    await side.set_faults(0.0, ())
    assert {k: v.value for k, v in faulty.items()} == {k: v.value for k, v in clean.items()}
    assert swept == set(clean)


async def test_wrong_credentials_fail_every_call_without_leaking_the_secret(
    handle: SandboxHandle, session: aiohttp.ClientSession, emulator: SimplicateEmulator
) -> None:
    secret = "wrong-secret-value-1234"
    bad = make_adapter(handle, session, secret=secret)
    calls: list[Callable[[], Awaitable[Any]]] = [
        bad.verify,
        lambda: bad.resource("contacts").get("organization:" + "a" * 32),
        lambda: bad.resource("contacts").create(sample_contact(), client_token=None),
        lambda: collect(bad.resource("invoices").list_changes(None)),
        lambda: all_ids(bad.resource("payments")),
    ]
    for quirks in (SimplicateQuirks(), SimplicateQuirks(plain_text_api_errors=True)):
        emulator.quirks = quirks
        for call in calls:
            with pytest.raises(AuthFailed) as caught:
                await call()
            assert secret not in str(caught.value)
            assert "simplicate" in str(caught.value)


def test_auth_headers_carry_key_and_secret_and_classify_spots_credential_refusals() -> None:
    account = AccountSettings(
        name="acme-crm",
        vendor="simplicate",
        base_url="https://acme.simplicate.nl/api/v2",
        credentials={"key": SecretStr("k-1"), "secret": SecretStr("s-1")},
    )
    assert auth_headers(account) == {"Authentication-Key": "k-1", "Authentication-Secret": "s-1"}
    refused = classify(400, {}, {"data": None, "errors": ["Invalid API key"]}, "")
    assert isinstance(refused, AuthFailed)
    assert classify(400, {}, {"data": None, "errors": ["No name given"]}, "") is None
    assert classify(401, {}, None, "") is None  # the generic rule: AuthFailed
    assert classify(200, {}, {"data": []}, "") is None


async def test_contract_sample_contacts_need_no_retry_when_all_is_well(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    adapter = make_adapter(handle, session)
    contacts: ResourceAdapter = adapter.resource("contacts")
    before = await side.counters()
    await contacts.create(sample_contact(), client_token=None)
    after = await side.counters()
    assert after["requests_total"] - before["requests_total"] == 2, "one POST, one read-back"


# ---------------------------------------------------------------- recorded answers (no sandbox)

FIXTURES = Path(__file__).parent / "fixtures" / "simplicate"


def recorded(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))


class Recorded:
    """A tiny server on 127.0.0.1 that answers each (method, path) with a canned reply."""

    def __init__(self) -> None:
        self.replies: dict[tuple[str, str], tuple[int, str]] = {}
        self.requests: list[tuple[str, str]] = []

    def add(self, method: str, path: str, body: Any, status: int = 200) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.replies[(method, "/simplicate/api/v2" + path)] = (status, text)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path))
        status, text = self.replies.get((request.method, request.path), (404, '{"data": null}'))
        return web.Response(status=status, text=text, content_type="application/json")


@asynccontextmanager
async def offline() -> AsyncIterator[tuple[SimplicateAdapter, Recorded]]:
    server = Recorded()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    account = AccountSettings(
        name="acme-crm",
        vendor="simplicate",
        base_url=f"http://127.0.0.1:{port}/simplicate/api/v2",
        credentials={"key": SecretStr("k"), "secret": SecretStr("s")},
        allow_insecure_http=True,
    )
    try:
        async with aiohttp.ClientSession() as session:
            yield create_adapter(account, session, budget=None, sleep=no_wait, retry=RETRY), server
    finally:
        await runner.cleanup()


async def test_a_recorded_list_maps_each_row_or_quarantines_it_with_its_id() -> None:
    async with offline() as (adapter, mocked):
        mocked.add("GET", "/crm/organization", recorded("organization_list"))
        mocked.add("GET", "/crm/person", {"data": [], "errors": None, "debug": None})
        pages = await collect(adapter.resource("contacts").list_changes(None))
    assert [r.external_id for r in records(pages)] == [
        "organization:aaaa0000bbbb1111cccc2222dddd3333"
    ]
    skipped = [s for p in pages for s in p.skipped]
    assert [(s.external_id, s.reason) for s in skipped] == [
        ("organization:eeee4444ffff5555aaaa6666bbbb7777", "organization without a name")
    ]
    assert pages[-1].final
    assert pages[-1].checkpoint == {"updated_at": "2026-11-02T07:00:00+00:00"}


async def test_a_create_answered_without_an_id_is_uncertain() -> None:
    async with offline() as (adapter, mocked):
        mocked.add("POST", "/crm/organization", {"data": None, "errors": None, "debug": None})
        with pytest.raises(Uncertain, match="no new id"):
            await adapter.resource("contacts").create(sample_contact(), client_token=None)


async def test_a_create_whose_read_back_fails_is_uncertain_not_retried() -> None:
    async with offline() as (adapter, mocked):
        mocked.add("POST", "/crm/organization", recorded("created"))
        new_id = recorded("created")["data"]["id"]
        mocked.add("GET", f"/crm/organization/{new_id}", {"errors": ["Server error"]}, 500)
        with pytest.raises(Uncertain, match="reading it back failed"):
            await adapter.resource("contacts").create(sample_contact(), client_token=None)
        methods = [m for m, _ in mocked.requests]
        assert methods == ["POST"] + ["GET"] * RETRY.attempts, "the POST is never repeated"


async def test_a_refused_write_is_skipped_with_the_vendors_message() -> None:
    async with offline() as (adapter, mocked):
        mocked.add("POST", "/crm/organization", recorded("error_400"), 400)
        with pytest.raises(SkipRecord, match="No name given for the organization"):
            await adapter.resource("contacts").create(sample_contact(), client_token=None)


@pytest.mark.parametrize(
    "body", [[], {"rows": []}, {"data": {"id": "organization:1"}}], ids=["list", "no data", "item"]
)
async def test_a_listing_outside_the_envelope_is_vendor_unavailable(body: Any) -> None:
    async with offline() as (adapter, mocked):
        mocked.add("GET", "/crm/organization", body)
        with pytest.raises(VendorUnavailable):
            await collect(adapter.resource("contacts").list_changes(None))


async def test_a_recorded_invoice_and_payment_read_by_id() -> None:
    async with offline() as (adapter, mocked):
        invoice_id = recorded("invoice_sent")["data"]["id"]
        payment_id = recorded("payment")["data"]["id"]
        mocked.add("GET", f"/invoices/invoice/{invoice_id}", recorded("invoice_sent"))
        mocked.add("GET", f"/invoices/payment/{payment_id}", recorded("payment"))
        got = await adapter.resource("invoices").get(invoice_id)
        paid = await adapter.resource("payments").get(payment_id)
    assert got is not None and isinstance(got.value, Invoice)
    assert got.value.status == "partially_paid" and got.value.amount_paid == Decimal("200.00")
    assert got.version == "2026-11-20 16:45:10"
    assert got.updated_at == dt.datetime(2026, 11, 20, 15, 45, 10, tzinfo=dt.UTC)
    assert paid is not None and isinstance(paid.value, Payment) and paid.value.invoice == invoice_id
