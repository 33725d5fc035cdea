"""The Moneybird adapter against the sandbox emulator: the shared contract, then Moneybird's
own behaviour (cursor and overlap, the this_year trap, uncertain creates, 429s, auth,
invoices to the cent, statuses, payments)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from syncd.adapters.base import Page, Resource, VendorAdapter, VendorRecord
from syncd.adapters.moneybird import MoneybirdAdapter, auth_headers, classify, create_adapter
from syncd.core.model import Contact, Invoice, InvoiceLine, Payment, normalise, with_computed_totals
from syncd.errors import AuthFailed, Fatal, QuotaExhausted, SkipRecord, Uncertain
from syncd.sandbox.base import RateWindow, SandboxOptions
from syncd.sandbox.moneybird import MoneybirdEmulator
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
# canonical field -> the Moneybird attribute a user of the web UI changes
CONTACT_UI_FIELDS = {
    "email": "send_invoices_to_email",
    "name": "company_name",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "address_line1": "address1",
    "postal_code": "zipcode",
    "city": "city",
    "country": "country",
    "vat_number": "tax_number",
    "coc_number": "chamber_of_commerce",
    "iban": "bank_account",
    "customer_number": "customer_id",
}
INVOICE_UI_FIELDS = {"reference": "reference", "issue_date": "invoice_date", "currency": "currency"}
STATE_KEYS: dict[Resource, str] = {
    "contacts": "contacts",
    "invoices": "sales_invoices",
    "payments": "payments",
}


def options(**overrides: Any) -> SandboxOptions:
    """A small seeded world; no rate limits, no faults."""
    values: dict[str, Any] = {
        "seed": 7,
        "contacts": 24,
        "invoices": 16,
        "overlap": 0.3,
        "rate_limits": False,
        "fault_rate": 0.0,
        "control": True,
    }
    values.update(overrides)
    return SandboxOptions(**values)


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def account(
    handle: SandboxHandle, *, token: str | None = None, base_url: str | None = None
) -> AccountSettings:
    return AccountSettings(
        name="books",
        vendor="moneybird",
        base_url=base_url or handle.base_urls["moneybird"],
        credentials={"token": token or handle.credentials["moneybird"]["token"]},
        allow_insecure_http=True,
    )


def make_adapter(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    *,
    token: str | None = None,
    base_url: str | None = None,
    page_size: int = PAGE_SIZE,
    sleep: Any = no_sleep,
) -> MoneybirdAdapter:
    adapter = create_adapter(
        account(handle, token=token, base_url=base_url), session, budget=None, sleep=sleep
    )
    for name in ("contacts", "invoices", "payments"):
        adapter.resource(name).page_size = page_size  # type: ignore[attr-defined]
    return adapter


class MoneybirdSide:
    """The vendor's side of the wire, through the sandbox's /_sandbox/ control API."""

    def __init__(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> None:
        self.handle = handle
        self.session = session

    async def control(self, method: str, path: str, body: Any = None) -> Any:
        url = f"{self.handle.url}/_sandbox/{path}"
        async with self.session.request(method, url, json=body) as response:
            data = await response.json()
            assert response.status < 300, data
            return data

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.control("GET", "moneybird/state")
        return result

    async def count(self, resource: Resource) -> int:
        return len((await self.state())[STATE_KEYS[resource]])

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        fields = CONTACT_UI_FIELDS if resource == "contacts" else INVOICE_UI_FIELDS
        path = f"moneybird/{STATE_KEYS[resource]}/{external_id}"
        await self.control("PATCH", path, {fields[field]: value})

    async def writes(self) -> int:
        counters = await self.control("GET", "moneybird/counters")
        return int(counters["writes"])

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        await self.control("PUT", "settings", {"fault_rate": rate, "fault_kinds": list(kinds)})

    async def requests(self, key: str) -> int:
        counters = await self.control("GET", "moneybird/counters")
        return int(counters["requests"].get(key, 0))


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with running_sandbox(options(), vendors=("moneybird",)) as handle:
        yield handle


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        yield http


@pytest.fixture
def side(sandbox: SandboxHandle, session: aiohttp.ClientSession) -> MoneybirdSide:
    return MoneybirdSide(sandbox, session)


@pytest.fixture
def mb(sandbox: SandboxHandle, session: aiohttp.ClientSession) -> MoneybirdAdapter:
    return make_adapter(sandbox, session)


class TestMoneybirdContract(AdapterContract):
    @pytest.fixture
    def adapter(self, mb: MoneybirdAdapter) -> MoneybirdAdapter:
        return mb

    @pytest.fixture
    def vendor_side(self, side: MoneybirdSide) -> MoneybirdSide:
        return side

    @pytest.fixture
    def bad_adapter(
        self, sandbox: SandboxHandle, session: aiohttp.ClientSession
    ) -> MoneybirdAdapter:
        return make_adapter(sandbox, session, token="not-the-sandbox-token")


# --------------------------------------------------------------------------- helpers


def record_of(pages: list[Page], external_id: str) -> VendorRecord:
    found = [r for r in records(pages) if r.external_id == external_id]
    assert len(found) == 1, f"{external_id} listed {len(found)} times"
    return found[0]


def ids_of(pages: list[Page]) -> set[str]:
    return {r.external_id for r in records(pages)}


def cursor_time(page: Page) -> dt.datetime:
    raw = page.checkpoint["updated_after"]
    assert isinstance(raw, str)
    return dt.datetime.fromisoformat(raw)


async def a_contact(mb: MoneybirdAdapter, **overrides: Any) -> VendorRecord:
    return await mb.resource("contacts").create(sample_contact(**overrides), client_token=None)


# --------------------------------------------------------------------------- cursor and overlap


def test_the_adapter_is_a_vendor_adapter_with_three_resources(mb: MoneybirdAdapter) -> None:
    assert isinstance(mb, VendorAdapter)
    assert [mb.resource(r).resource for r in ("contacts", "invoices", "payments")] == [
        "contacts",
        "invoices",
        "payments",
    ]
    assert mb.capabilities.change_detection == "incremental"
    assert mb.capabilities.client_token_field["contacts"] == "customer_id"
    with pytest.raises(KeyError):
        mb.resource("projects")  # type: ignore[arg-type]


async def test_the_final_cursor_is_the_newest_modification_time_seen(mb: MoneybirdAdapter) -> None:
    pages = await collect(mb.resource("contacts").list_changes(None))
    newest = max(r.updated_at for r in records(pages) if r.updated_at is not None)
    assert cursor_time(pages[-1]) == newest


async def test_a_pass_from_the_cursor_lists_only_what_changed_within_the_overlap(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contacts = mb.resource("contacts")
    fresh = await a_contact(mb)
    full = await collect(contacts.list_changes(None))
    cursor = full[-1].checkpoint
    since = cursor_time(full[-1]) - dt.timedelta(seconds=30)
    expected = {r.external_id for r in records(full) if r.updated_at and r.updated_at > since}
    again = await collect(contacts.list_changes(cursor))
    assert ids_of(again) == expected
    assert fresh.external_id in expected and len(expected) < len(records(full))
    old = next(r for r in records(full) if r.external_id not in expected)
    await side.human_edit("contacts", old.external_id, "city", "Zwolle")
    edited = await collect(contacts.list_changes(cursor))
    assert record_of(edited, old.external_id).value.city == "Zwolle"  # type: ignore[union-attr]


async def test_the_overlap_relists_a_change_a_skewed_cursor_would_miss(
    sandbox: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    with_overlap = make_adapter(sandbox, session)
    created = await a_contact(with_overlap)
    assert created.updated_at is not None
    # A cursor 10 s past the change (a same-second edit committed late, say).
    skewed = {"updated_after": (created.updated_at + dt.timedelta(seconds=10)).isoformat()}
    listed = await collect(with_overlap.resource("contacts").list_changes(skewed))
    assert created.external_id in ids_of(listed)
    without = make_adapter(sandbox, session)
    without.resource("contacts").overlap = dt.timedelta(0)  # type: ignore[attr-defined]
    missed = await collect(without.resource("contacts").list_changes(skewed))
    assert created.external_id not in ids_of(missed)


async def test_a_checkpoint_resume_still_lists_a_record_edited_mid_pass(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contacts = mb.resource("contacts")
    pages = contacts.list_changes(None)
    assert isinstance(pages, AsyncGenerator)
    first = await anext(pages)
    await pages.aclose()
    assert not first.final
    edited = first.records[0].external_id
    await side.human_edit("contacts", edited, "city", "Assen")
    resumed = await collect(contacts.list_changes(first.checkpoint))
    assert record_of(resumed, edited).value.city == "Assen"  # type: ignore[union-attr]


async def test_a_change_after_the_id_list_never_raises_the_cursor_past_it(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contacts = mb.resource("contacts")
    pages = contacts.list_changes(None)
    got = [await anext(pages)]
    later = [e.external_id async for batch in contacts.list_ids() for e in batch]
    target = next(i for i in later if i not in {r.external_id for r in got[0].records})
    await side.human_edit("contacts", target, "city", "Lelystad")
    got += [page async for page in pages]
    edited = record_of(got, target)
    assert edited.value.city == "Lelystad"  # type: ignore[union-attr]
    assert edited.updated_at is not None and cursor_time(got[-1]) < edited.updated_at
    again = await collect(contacts.list_changes(got[-1].checkpoint))
    assert target in ids_of(again), "the next pass still sees it"


async def test_an_unreadable_cursor_starts_a_full_listing(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    pages = await collect(mb.resource("contacts").list_changes({"updated_after": "soon"}))
    assert len(records(pages)) == await side.count("contacts")


async def test_archived_contacts_are_listed_and_flagged_in_the_id_sweep(
    mb: MoneybirdAdapter,
) -> None:
    contacts = mb.resource("contacts")
    kept, gone = await a_contact(mb), await a_contact(mb)
    await contacts.remove(gone.external_id)
    await contacts.remove(gone.external_id)  # a repeat is harmless
    flags = {e.external_id: e.archived for e in await all_ids(contacts)}
    assert (flags[kept.external_id], flags[gone.external_id]) == (False, True)
    listed = record_of(await collect(contacts.list_changes(None)), gone.external_id)
    assert listed.value.archived  # type: ignore[union-attr]


async def test_unarchiving_through_the_api_is_refused_with_a_reason(mb: MoneybirdAdapter) -> None:
    contacts = mb.resource("contacts")
    created = await a_contact(mb)
    await contacts.remove(created.external_id)
    assert isinstance(created.value, Contact)
    active = dataclasses.replace(created.value, archived=False)
    with pytest.raises(SkipRecord, match="un-archive"):
        await contacts.update(created.external_id, active, frozenset({"archived"}))


async def test_archived_is_a_writable_contact_field_and_an_update_archives(
    mb: MoneybirdAdapter,
) -> None:
    # Found by the sandbox integration tests: without "archived" among the writable
    # fields the engine never carried a Moneybird archive to the other vendors, nor an
    # archive elsewhere to Moneybird.
    assert "archived" in mb.capabilities.writable_fields["contacts"]
    contacts = mb.resource("contacts")
    created = await a_contact(mb)
    assert isinstance(created.value, Contact) and not created.value.archived
    archived = dataclasses.replace(created.value, archived=True)

    updated = await contacts.update(created.external_id, archived, frozenset({"archived"}))

    assert isinstance(updated.value, Contact) and updated.value.archived
    flags = {e.external_id: e.archived for e in await all_ids(contacts)}
    assert flags[created.external_id] is True


async def test_an_archived_contact_is_created_archived(mb: MoneybirdAdapter) -> None:
    contacts = mb.resource("contacts")

    created = await contacts.create(sample_contact(archived=True), client_token=None)

    assert isinstance(created.value, Contact) and created.value.archived
    fetched = await contacts.get(created.external_id)
    assert fetched is not None and isinstance(fetched.value, Contact) and fetched.value.archived


# --------------------------------------------------------------------------- finding


async def test_find_uses_the_customer_number_when_no_token_was_written(
    mb: MoneybirdAdapter,
) -> None:
    contacts = mb.resource("contacts")
    wanted = sample_contact(customer_number="CRM-4711")
    created = await contacts.create(wanted, client_token="tok-unused")
    assert created.value.customer_number == "CRM-4711"  # type: ignore[union-attr]
    found = await contacts.find(client_token="tok-unused", natural_key=wanted)
    assert found is not None and found.external_id == created.external_id


async def test_find_by_name_and_email_when_there_is_no_token(mb: MoneybirdAdapter) -> None:
    contacts = mb.resource("contacts")
    wanted = sample_contact()
    created = await contacts.create(wanted, client_token=None)
    found = await contacts.find(client_token=None, natural_key=wanted)
    assert found is not None and found.external_id == created.external_id
    other_mail = dataclasses.replace(wanted, email="someone-else@example.org")
    assert await contacts.find(client_token=None, natural_key=other_mail) is None


@pytest.mark.parametrize("resource", ["contacts", "invoices"])
async def test_a_lost_response_create_is_uncertain_and_find_settles_it_without_a_duplicate(
    mb: MoneybirdAdapter, side: MoneybirdSide, resource: Resource
) -> None:
    contact = await a_contact(mb)
    wanted: Contact | Invoice = (
        sample_contact() if resource == "contacts" else sample_invoice(contact.external_id)
    )
    await mb.taxes.all("pull")  # reads are not faulted by lost_response anyway
    before = await side.count(resource)
    await side.set_faults(1.0, ("lost_response",))
    with pytest.raises(Uncertain):
        await mb.resource(resource).create(wanted, client_token="tok-lost-1")
    await side.set_faults(0.0, ())
    assert await side.count(resource) == before + 1, "the write landed"
    found = await mb.resource(resource).find(client_token="tok-lost-1", natural_key=wanted)
    assert found is not None
    if isinstance(wanted, Contact):
        assert found.value.name == wanted.name  # type: ignore[union-attr]
    else:
        assert found.value.reference == wanted.reference  # type: ignore[union-attr]
    assert await side.count(resource) == before + 1


# --------------------------------------------------------------------------- rate limits and auth


class TightMoneybird(MoneybirdEmulator):
    """Moneybird with a 4-request window, so a short listing meets the vendor's 429."""

    default_rate_windows = (RateWindow(requests=4, per_seconds=300.0),)


async def test_a_429_from_moneybird_is_waited_out_by_the_http_layer(
    session: aiohttp.ClientSession,
) -> None:
    tight = options(rate_limits=True, rate_scale=600.0)  # 4 requests per 0.5 s
    async with running_sandbox(
        tight, vendors=("moneybird",), emulator_classes={"moneybird": TightMoneybird}
    ) as handle:
        adapter = make_adapter(handle, session, page_size=2, sleep=asyncio.sleep)
        pages = await collect(adapter.resource("contacts").list_changes(None))
        counters = handle.counters("moneybird")
        assert counters.rate_limited >= 1, "the window was really exceeded"
        assert len(records(pages)) == len(handle.emulators["moneybird"].dump()["contacts"])


async def test_a_wrong_token_is_auth_failed_without_the_token_in_the_message(
    sandbox: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    bad = make_adapter(sandbox, session, token="wrong-secret-token-123")
    with pytest.raises(AuthFailed) as caught:
        await bad.verify()
    assert "token is invalid" in str(caught.value)
    assert "wrong-secret-token-123" not in str(caught.value)
    with pytest.raises(AuthFailed):
        await bad.resource("invoices").get("1")


async def test_a_token_without_the_sales_invoices_scope_fails_on_invoices_only(
    session: aiohttp.ClientSession,
) -> None:
    scoped = options(credentials={"moneybird": {"scopes": "settings"}})
    async with running_sandbox(scoped, vendors=("moneybird",)) as handle:
        adapter = make_adapter(handle, session)
        await adapter.verify()
        assert records(await collect(adapter.resource("contacts").list_changes(None)))
        with pytest.raises(AuthFailed, match="No access to sales_invoices"):
            await collect(adapter.resource("invoices").list_changes(None))


async def test_a_wrong_administration_id_is_fatal_with_a_hint(
    sandbox: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    wrong = sandbox.base_urls["moneybird"].rsplit("/", 1)[0] + "/987654321"
    adapter = make_adapter(sandbox, session, base_url=wrong)
    with pytest.raises(Fatal, match="base_url"):
        await adapter.verify()
    with pytest.raises(Fatal, match="base_url"):
        await collect(adapter.resource("contacts").list_changes(None))


def test_auth_headers_are_a_bearer_token(sandbox: SandboxHandle) -> None:
    headers = auth_headers(account(sandbox, token="abc123"))
    assert headers == {"Authorization": "Bearer abc123"}


def test_the_plan_limit_402_parks_the_account_instead_of_blaming_a_record() -> None:
    body = {
        "error": "creating sales invoices is limited",
        "symbolic": {"administration": "limit_reached"},
    }
    verdict = classify(402, {}, body, "")
    assert isinstance(verdict, QuotaExhausted)
    assert "creating sales invoices is limited" in str(verdict)
    assert verdict.retry_after and verdict.retry_after > 0
    assert classify(401, {}, {"error": "token is invalid"}, "") is None


# --------------------------------------------------------------------------- invoices


async def test_invoices_are_listed_outside_this_year_despite_the_period_default(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contact = await a_contact(mb)
    old = await side.control(
        "POST",
        "moneybird/sales_invoices",
        {
            "contact_id": contact.external_id,
            "invoice_date": "2021-03-15",
            "details_attributes": [{"description": "Old work", "amount": "1", "price": "10"}],
            "send": True,
        },
    )
    invoices = mb.resource("invoices")
    listed = record_of(await collect(invoices.list_changes(None)), old["id"])
    assert listed.value.issue_date == dt.date(2021, 3, 15)  # type: ignore[union-attr]
    assert old["id"] in {e.external_id for e in await all_ids(invoices)}
    payments_sweep = [e async for batch in mb.resource("payments").list_ids() for e in batch]
    assert isinstance(payments_sweep, list)


def random_lines(rng: random.Random, count: int, rates: tuple[int, ...]) -> tuple[InvoiceLine, ...]:
    return tuple(
        InvoiceLine(
            description=f"Line {n} {rng.choice(['uren', 'licentie', 'reiskosten'])}",
            quantity=Decimal(rng.choice(["1", "2", "0.5", "3.75", "12", "0.3333", "-1"])),
            unit_price=Decimal(rng.randint(-5000, 250000)) / 100,
            vat_rate=Decimal(rng.choice(rates)),
        )
        for n in range(count)
    )


@pytest.mark.parametrize(
    ("count", "country", "rates"),
    [(1, "NL", (21,)), (7, "NL", (0, 9, 21)), (20, "NL", (0, 9, 21)), (12, "EE", (0, 9, 22))],
)
async def test_invoices_of_many_lines_round_trip_to_the_cent(
    mb: MoneybirdAdapter, count: int, country: str, rates: tuple[int, ...]
) -> None:
    contact = await a_contact(
        mb, country=country, postal_code="10115" if country == "EE" else "1015 CJ"
    )
    lines = random_lines(random.Random(count), count, rates)
    wanted = sample_invoice(contact.external_id, lines=lines)
    invoices = mb.resource("invoices")
    created = await invoices.create(wanted, client_token=None)
    fetched = await invoices.get(created.external_id)
    assert fetched is not None and fetched.value == created.value
    got = fetched.value
    assert isinstance(got, Invoice)
    assert got.lines == wanted.lines
    assert (got.subtotal, got.tax_total, got.total) == (
        wanted.subtotal,
        wanted.tax_total,
        wanted.total,
    )
    assert (
        got == dataclasses.replace(wanted, due_date=got.due_date)
        and got.due_date == wanted.due_date
    )


async def test_the_tax_rates_are_fetched_once_per_adapter(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contact = await a_contact(mb)
    for _ in range(2):
        await mb.resource("invoices").create(sample_invoice(contact.external_id), client_token=None)
    await collect(mb.resource("invoices").list_changes(None))
    assert await side.requests("GET /tax_rates.json") == 1


async def test_a_vat_rate_moneybird_lacks_is_skipped_before_anything_is_written(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contact = await a_contact(mb)
    line = InvoiceLine("Odd rate", Decimal(1), Decimal(10), Decimal(13))
    before = await side.writes()
    with pytest.raises(SkipRecord, match="13%"):
        await mb.resource("invoices").create(
            sample_invoice(contact.external_id, lines=(line,)), client_token=None
        )
    assert await side.writes() == before


async def test_an_open_invoice_is_sent_manually_and_numbered_by_moneybird(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contact = await a_contact(mb)
    wanted = sample_invoice(contact.external_id, status="open")
    created = await mb.resource("invoices").create(wanted, client_token=None)
    got = created.value
    assert isinstance(got, Invoice)
    assert got.status in ("open", "overdue") and got.number is not None
    state = await side.state()
    sent = next(i for i in state["sales_invoices"] if i["id"] == created.external_id)
    assert not any(e["action"] == "sales_invoice_send_email" for e in sent["events"])


async def test_status_changes_go_through_moneybird_actions(mb: MoneybirdAdapter) -> None:
    contact = await a_contact(mb)
    invoices = mb.resource("invoices")
    draft = await invoices.create(sample_invoice(contact.external_id), client_token=None)
    assert isinstance(draft.value, Invoice) and draft.value.status == "draft"
    opened = await invoices.update(
        draft.external_id, dataclasses.replace(draft.value, status="open"), frozenset({"status"})
    )
    assert isinstance(opened.value, Invoice) and opened.value.number is not None
    written_off = await invoices.update(
        draft.external_id,
        dataclasses.replace(opened.value, status="uncollectible"),
        frozenset({"status"}),
    )
    assert written_off.value.status == "uncollectible"  # type: ignore[union-attr]
    with pytest.raises(SkipRecord, match="back into a draft"):
        await invoices.update(
            draft.external_id,
            dataclasses.replace(opened.value, status="draft"),
            frozenset({"status"}),
        )


async def test_replacing_lines_updates_removes_and_adds_them(mb: MoneybirdAdapter) -> None:
    contact = await a_contact(mb)
    invoices = mb.resource("invoices")
    created = await invoices.create(sample_invoice(contact.external_id), client_token=None)
    lines = (
        InvoiceLine("Renamed", Decimal("2"), Decimal("50.00"), Decimal("9")),
        InvoiceLine("Second", Decimal("1"), Decimal("1.99"), Decimal("21")),
    )
    assert isinstance(created.value, Invoice)
    wanted = normalise(with_computed_totals(dataclasses.replace(created.value, lines=lines)))
    updated = await invoices.update(created.external_id, wanted, frozenset({"lines"}))
    got = updated.value
    assert isinstance(got, Invoice)
    assert got.lines == wanted.lines and got.total == wanted.total
    more = normalise(with_computed_totals(dataclasses.replace(got, lines=lines + lines)))
    grown = await invoices.update(created.external_id, more, frozenset({"lines"}))
    assert len(grown.value.lines) == 4  # type: ignore[union-attr]


async def test_an_invoice_is_deleted_and_found_by_reference_until_then(
    mb: MoneybirdAdapter,
) -> None:
    contact = await a_contact(mb)
    invoices = mb.resource("invoices")
    wanted = sample_invoice(contact.external_id)
    created = await invoices.create(wanted, client_token="ignored-because-reference-is-set")
    found = await invoices.find(client_token=None, natural_key=wanted)
    assert found is not None and found.external_id == created.external_id
    await invoices.remove(created.external_id)
    await invoices.remove(created.external_id)
    assert await invoices.get(created.external_id) is None
    assert await invoices.find(client_token=wanted.reference, natural_key=wanted) is None


# --------------------------------------------------------------------------- payments


async def test_payments_are_registered_listed_found_and_deleted(
    mb: MoneybirdAdapter, side: MoneybirdSide
) -> None:
    contact = await a_contact(mb)
    invoice = await mb.resource("invoices").create(
        sample_invoice(contact.external_id, status="open"), client_token=None
    )
    payments = mb.resource("payments")
    cursor = (await collect(payments.list_changes(None)))[-1].checkpoint
    wanted = Payment(
        invoice.external_id, dt.date(2026, 11, 20), Decimal("100.00"), reference="T-77"
    )
    created = await payments.create(wanted, client_token=None)
    assert created.value == normalise(wanted)
    assert (await payments.get(created.external_id)) == created
    listed = record_of(await collect(payments.list_changes(cursor)), created.external_id)
    assert listed.value == created.value
    found = await payments.find(client_token=None, natural_key=wanted)
    assert found is not None and found.external_id == created.external_id
    partly = await mb.resource("invoices").get(invoice.external_id)
    assert partly is not None and partly.value.status == "partially_paid"  # type: ignore[union-attr]
    assert created.external_id in {e.external_id for e in await all_ids(payments)}
    with pytest.raises(SkipRecord, match="cannot change"):
        await payments.update(created.external_id, wanted, frozenset({"amount"}))
    await payments.remove(created.external_id)
    assert await payments.get(created.external_id) is None
    assert await payments.find(client_token=None, natural_key=wanted) is None
    assert await side.count("payments") == len(
        [e async for batch in payments.list_ids() for e in batch]
    )


async def test_a_payment_on_a_draft_is_refused_by_moneybird_as_a_skip(mb: MoneybirdAdapter) -> None:
    contact = await a_contact(mb)
    draft = await mb.resource("invoices").create(
        sample_invoice(contact.external_id), client_token=None
    )
    with pytest.raises(SkipRecord, match="not sent"):
        await mb.resource("payments").create(
            Payment(draft.external_id, dt.date(2026, 11, 20), Decimal("1.00")), client_token=None
        )
