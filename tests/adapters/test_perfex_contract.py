"""The Perfex adapter against the sandbox: the shared contract, then Perfex's own behaviour."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, ClassVar

import aiohttp
import pytest

from syncd.adapters.base import Resource, VendorAdapter
from syncd.adapters.perfex import auth_headers, classify, create_adapter
from syncd.adapters.perfex.adapter import PerfexAdapter, _paged
from syncd.adapters.perfex.client import ListPage
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    compute_totals,
    normalise,
    totals_match,
    with_computed_totals,
)
from syncd.errors import AuthFailed, ConfigError, SkipRecord, Uncertain
from syncd.sandbox.base import Clock, RateWindow, SandboxOptions
from syncd.sandbox.perfex import PerfexEmulator, PerfexQuirks
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import AccountSettings
from tests.adapters.contract import AdapterContract, collect, records, sample_contact

PAGE_SIZE = 5


class EmailDroppingPerfex(PerfexEmulator):
    """Drops the e-mail of a customer create (Themesic's module) instead of making the
    primary contact from it as the v1 reference does (the emulator's default)."""

    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        super().__init__(options, clock, PerfexQuirks(customer_email_creates_contact=False))


class ThemesicAuthPerfex(PerfexEmulator):
    """Answers a bad token the Themesic way: 404 "Token is not found"."""

    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        super().__init__(options, clock, PerfexQuirks(auth_style="themesic"))


class ThemesicListsPerfex(PerfexEmulator):
    """Lists the Themesic way: a page beyond the last repeats it; an empty list is a 404."""

    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        super().__init__(
            options, clock, PerfexQuirks(clamp_page_beyond_last=True, empty_list_404=True)
        )


class TightPerfex(PerfexEmulator):
    """Three requests per window, so a short burst meets the vendor's own 429."""

    default_rate_windows = (RateWindow(3, 3600.0),)


def _options(**overrides: Any) -> SandboxOptions:
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


@asynccontextmanager
async def perfex_sandbox(
    emulator: type[PerfexEmulator] = PerfexEmulator, **overrides: Any
) -> AsyncIterator[SandboxHandle]:
    async with running_sandbox(
        _options(**overrides), vendors=("perfex",), emulator_classes={"perfex": emulator}
    ) as handle:
        yield handle


def account_for(handle: SandboxHandle, **credentials: str) -> AccountSettings:
    return AccountSettings(
        name="perfex-test",
        vendor="perfex",
        base_url=handle.base_urls["perfex"],
        credentials=credentials or {"api_key": handle.credentials["perfex"]["api_key"]},
        allow_insecure_http=True,
    )


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


def make_adapter(
    handle: SandboxHandle, session: aiohttp.ClientSession, **credentials: str
) -> PerfexAdapter:
    adapter = create_adapter(
        account_for(handle, **credentials),
        session,
        budget=None,
        sleep=_no_wait,
        number_padding=4,  # the seeded company pads its numbers to 4 digits
    )
    for name in ("contacts", "invoices", "payments"):
        adapter.resource(name).page_size = PAGE_SIZE  # type: ignore[attr-defined]
    return adapter


class PerfexSide:
    """The vendor's side through the sandbox control API (as a Perfex user would act)."""

    _TABLES: ClassVar[dict[str, str]] = {
        "contacts": "customers",
        "invoices": "invoices",
        "payments": "payments",
    }

    def __init__(self, session: aiohttp.ClientSession, handle: SandboxHandle) -> None:
        self.session = session
        self.root = f"{handle.url}/_sandbox"

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, f"{self.root}{path}", json=body) as response:
            data = await response.json()
            assert response.status < 300, data
            return data

    async def state(self) -> dict[str, Any]:
        data: dict[str, Any] = await self._call("GET", "/perfex/state")
        return data

    async def count(self, resource: Resource) -> int:
        return len((await self.state())[self._TABLES[resource]])

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        if resource == "contacts" and field in ("email", "first_name", "last_name"):
            column = {"email": "email", "first_name": "firstname", "last_name": "lastname"}
            primary = next(
                c
                for c in (await self.state())["contacts"]
                if c["userid"] == external_id and c["is_primary"] == "1"
            )
            await self._call("PATCH", f"/perfex/contacts/{primary['id']}", {column[field]: value})
            return
        columns = {
            ("contacts", "name"): ("company",),
            ("contacts", "city"): ("city", "billing_city"),
            ("contacts", "phone"): ("phonenumber",),
            ("invoices", "due_date"): ("duedate",),
        }[(resource, field)]
        table = self._TABLES[resource]
        await self._call("PATCH", f"/perfex/{table}/{external_id}", dict.fromkeys(columns, value))

    async def writes(self) -> int:
        counters = await self._call("GET", "/perfex/counters")
        return int(counters["writes"])

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        await self._call("PUT", "/settings", {"fault_rate": rate, "fault_kinds": list(kinds)})


@pytest.fixture
async def handle() -> AsyncIterator[SandboxHandle]:
    async with perfex_sandbox() as served:
        yield served


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


class TestPerfexContract(AdapterContract):
    resources = ("contacts", "invoices", "payments")

    @pytest.fixture
    def adapter(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> PerfexAdapter:
        return make_adapter(handle, session)

    @pytest.fixture
    def vendor_side(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> PerfexSide:
        return PerfexSide(session, handle)

    @pytest.fixture
    def bad_adapter(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> PerfexAdapter:
        return make_adapter(handle, session, api_key="not-the-key")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def adapter(handle: SandboxHandle, session: aiohttp.ClientSession) -> PerfexAdapter:
    return make_adapter(handle, session)


@pytest.fixture
def side(handle: SandboxHandle, session: aiohttp.ClientSession) -> PerfexSide:
    return PerfexSide(session, handle)


def _lines(rng: random.Random, count: int, rates: tuple[str, ...]) -> tuple[InvoiceLine, ...]:
    return tuple(
        InvoiceLine(
            description=f"Line {n + 1}",
            quantity=Decimal(rng.choice(("1", "2", "3.5", "0.25", "12", "7.75"))),
            unit_price=Decimal(rng.randint(1, 250_000)) / 100,
            vat_rate=Decimal(rng.choice(rates)),
        )
        for n in range(count)
    )


def _invoice(contact_id: str, lines: tuple[InvoiceLine, ...], **overrides: Any) -> Invoice:
    values: dict[str, Any] = {
        "number": None,
        "contact": contact_id,
        "issue_date": dt.date(2026, 11, 2),
        "due_date": dt.date(2026, 12, 2),
        "currency": "EUR",
        "status": "draft",
        "lines": lines,
    }
    values.update(overrides)
    return normalise(with_computed_totals(Invoice(**values)))


async def _new_contact(adapter: VendorAdapter) -> str:
    created = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    return created.external_id


def _detail_reads(handle: SandboxHandle) -> int:
    return sum(
        n
        for key, n in handle.counters("perfex").requests.items()
        if key.startswith("GET /invoices/") and key.count("/") == 2
    )


# --------------------------------------------------------------------------- snapshot listing


async def test_every_listing_is_a_snapshot_resumed_by_row_offset(adapter: PerfexAdapter) -> None:
    contacts = adapter.resource("contacts")
    for _ in range(7):
        await contacts.create(sample_contact(), client_token=None)
    pages = await collect(contacts.list_changes(None))
    assert [p.checkpoint for p in pages[:-1]] == [
        {"offset": PAGE_SIZE * (n + 1)} for n in range(len(pages) - 1)
    ]
    assert pages[-1].final and pages[-1].checkpoint == {}
    again = await collect(contacts.list_changes(pages[-1].checkpoint))
    assert {r.external_id for r in records(again)} == {r.external_id for r in records(pages)}
    assert all(r.updated_at is None and r.version is None for r in records(pages))


async def test_unchanged_invoices_are_not_read_again_but_a_changed_one_is(
    adapter: PerfexAdapter, side: PerfexSide, handle: SandboxHandle
) -> None:
    invoices = adapter.resource("invoices")
    first = records(await collect(invoices.list_changes(None)))
    assert first and _detail_reads(handle) == len(first)
    second = records(await collect(invoices.list_changes(None)))
    assert [r.value for r in second] == [r.value for r in first]
    assert _detail_reads(handle) == len(first), "unchanged list rows reuse the detail read"
    edited = first[0].external_id
    await side.human_edit("invoices", edited, "due_date", "2027-01-31")
    third = {r.external_id: r.value for r in records(await collect(invoices.list_changes(None)))}
    assert _detail_reads(handle) == len(first) + 1
    changed = third[edited]
    assert isinstance(changed, Invoice) and changed.due_date == dt.date(2027, 1, 31)


async def test_clamped_pages_and_empty_404_lists_end_the_listing(
    session: aiohttp.ClientSession,
) -> None:
    async with perfex_sandbox(ThemesicListsPerfex) as served:
        adapter = make_adapter(served, session)
        side = PerfexSide(session, served)
        contacts = adapter.resource("contacts")
        while (await side.count("contacts")) % PAGE_SIZE:  # the last page is a full one
            await contacts.create(sample_contact(), client_token=None)
        listed = [r.external_id for r in records(await collect(contacts.list_changes(None)))]
        assert len(listed) == len(set(listed)) == await side.count("contacts")
        for payment in (await side.state())["payments"]:
            await side._call("DELETE", f"/perfex/payments/{payment['id']}")
        pages = await collect(adapter.resource("payments").list_changes(None))
        assert len(pages) == 1 and pages[0].final and pages[0].records == ()


async def test_a_page_repeating_the_previous_one_ends_a_listing_without_a_total() -> None:
    pages = [[{"id": "1"}, {"id": "2"}], [{"id": "3"}, {"id": "4"}]]
    asked: list[int] = []

    async def fetch(page: int, limit: int) -> ListPage:
        asked.append(page)
        return ListPage(rows=pages[min(page, len(pages)) - 1])  # clamped, no total

    seen = [(rows, offset, final) async for rows, offset, final in _paged(fetch, offset=0, limit=2)]
    assert [row["id"] for rows, _, _ in seen for row in rows] == ["1", "2", "3", "4"]
    assert seen[-1] == ([], 4, True) and asked == [1, 2, 3]
    resumed = [rows async for rows, _, _ in _paged(fetch, offset=3, limit=2)]
    assert [row["id"] for rows in resumed for row in rows] == ["4"]


# --------------------------------------------------------------------------- uncertain writes


async def test_a_lost_contact_create_is_found_by_natural_key(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contacts = adapter.resource("contacts")
    before = await side.count("contacts")
    wanted = sample_contact(vat_number="NL123456789B01")
    await side.set_faults(1.0, ("lost_response",))
    with pytest.raises(Uncertain):
        await contacts.create(wanted, client_token="ct-lost")
    await side.set_faults(0.0, ())
    assert await side.count("contacts") == before + 1, "the write landed"
    found = await contacts.find(client_token="ct-lost", natural_key=wanted)
    assert found is not None and found.value == wanted


async def test_a_lost_invoice_create_is_found_by_its_token(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contact_id = await _new_contact(adapter)
    wanted = _invoice(contact_id, _lines(random.Random(1), 3, ("21", "9", "0")))
    await side.set_faults(1.0, ("lost_response",))
    with pytest.raises(Uncertain):
        await adapter.resource("invoices").create(wanted, client_token="inv-lost-1")
    await side.set_faults(0.0, ())
    invoices = adapter.resource("invoices")
    found = await invoices.find(client_token="inv-lost-1", natural_key=wanted)
    assert found is not None and isinstance(found.value, Invoice)
    assert found.value.lines == wanted.lines
    assert await invoices.find(client_token="inv-never", natural_key=wanted) is None


async def test_a_contact_create_gets_its_primary_contact_from_the_customer_email(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    # The emulator's default, as the v1 reference shows: the e-mail sent with the customer
    # becomes its primary contact, so the adapter adds no second one.
    before = await side.writes()
    wanted = sample_contact(first_name="Anna", last_name="de Vries")
    created = await adapter.resource("contacts").create(wanted, client_token=None)
    assert await side.writes() == before + 1, "one customer create, nothing after it"
    owned = [c for c in (await side.state())["contacts"] if c["userid"] == created.external_id]
    assert [(c["email"], c["is_primary"]) for c in owned] == [(wanted.email, "1")]
    assert created.value == wanted
    fetched = await adapter.resource("contacts").get(created.external_id)
    assert fetched is not None and fetched.value == wanted


async def test_a_contact_create_adds_the_primary_contact_when_perfex_drops_the_email(
    session: aiohttp.ClientSession,
) -> None:
    async with perfex_sandbox(EmailDroppingPerfex) as served:
        adapter = make_adapter(served, session)
        side = PerfexSide(session, served)
        before = await side.writes()
        wanted = sample_contact(first_name="Anna", last_name="de Vries")
        created = await adapter.resource("contacts").create(wanted, client_token=None)
        assert await side.writes() == before + 2, "customer, then its primary contact"
        assert created.value == wanted
        fetched = await adapter.resource("contacts").get(created.external_id)
        assert fetched is not None and fetched.value == wanted


# --------------------------------------------------------------------------- rate limits, auth


async def test_the_vendors_429_is_absorbed_by_retries(session: aiohttp.ClientSession) -> None:
    # The hour becomes a second, so the real sleeps between retries stay short.
    async with perfex_sandbox(TightPerfex, rate_limits=True, rate_scale=3600.0) as served:
        adapter = create_adapter(account_for(served), session, budget=None)  # real sleeps
        for _ in range(6):
            await adapter.verify()
        assert served.counters("perfex").rate_limited >= 1


async def test_a_token_404_is_an_auth_failure_not_a_missing_record(
    session: aiohttp.ClientSession,
) -> None:
    async with perfex_sandbox(ThemesicAuthPerfex) as served:
        bad = make_adapter(served, session, api_key="expired-key")
        with pytest.raises(AuthFailed):
            await bad.resource("contacts").get("1")
        with pytest.raises(AuthFailed):
            await bad.resource("invoices").get("1")
        with pytest.raises(AuthFailed, match="perfex-test"):
            await bad.verify()


async def test_auth_failures_never_carry_the_key(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    bad = make_adapter(handle, session, api_key="pk_live_do_not_leak")
    with pytest.raises(AuthFailed) as caught:
        await bad.verify()
    assert "pk_live_do_not_leak" not in str(caught.value)
    assert "perfex-test" in str(caught.value)


async def test_a_jwt_authenticates_as_a_bearer_token(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    adapter = make_adapter(handle, session, jwt=handle.credentials["perfex"]["jwt"])
    await adapter.verify()
    assert auth_headers(account_for(handle, jwt="abc")) == {"Authorization": "Bearer abc"}
    assert auth_headers(account_for(handle, api_key="k")) == {"X-API-KEY": "k"}


def test_auth_headers_without_credentials_is_a_config_error() -> None:
    account = AccountSettings.model_construct(
        name="p", vendor="perfex", base_url="https://crm.example.com/api/v1", credentials={}
    )
    with pytest.raises(ConfigError):
        auth_headers(account)


@pytest.mark.parametrize(
    ("status", "body", "auth_failed"),
    [
        (404, {"status": False, "message": "Token is not found"}, True),
        (404, {"status": False, "message": "Token Time Expire."}, True),
        (404, {"status": "error", "message": "Invalid API key"}, True),
        (429, {"status": False, "message": "Too many failed authentication attempts."}, True),
        (404, {"status": "error", "message": "Customer not found"}, False),
        (404, {"status": False, "message": "No data were found"}, False),
        (429, {"status": "error", "message": "Rate limit exceeded"}, False),
        (500, {"status": "error", "message": "Invalid token in the database"}, False),
        (200, {"status": "success", "data": []}, False),
    ],
)
def test_classify_turns_only_token_errors_into_auth_failures(
    status: int, body: dict[str, Any], auth_failed: bool
) -> None:
    verdict = classify(status, {}, body, "")
    assert isinstance(verdict, AuthFailed) if auth_failed else verdict is None


# --------------------------------------------------------------------------- invoices


@pytest.mark.parametrize(
    ("count", "rates"),
    [
        (1, ("21",)),
        (3, ("21", "9", "0")),
        (7, ("9", "0")),
        (12, ("22", "9", "0")),
        (20, ("21", "9", "0")),
    ],
)
async def test_invoices_of_1_to_20_lines_round_trip_to_the_cent(
    adapter: PerfexAdapter, count: int, rates: tuple[str, ...]
) -> None:
    contact_id = await _new_contact(adapter)
    wanted = _invoice(contact_id, _lines(random.Random(count), count, rates), status="open")
    invoices = adapter.resource("invoices")
    created = await invoices.create(wanted, client_token=f"lines-{count}")
    fetched = await invoices.get(created.external_id)
    assert fetched is not None and isinstance(fetched.value, Invoice)
    got = fetched.value
    assert got == created.value
    assert got.lines == wanted.lines
    assert (got.subtotal, got.tax_total, got.total) == compute_totals(wanted.lines)
    assert totals_match(got, tolerance=Decimal(0))
    assert got.status == "open" and got.number is not None and got.contact == contact_id


async def test_an_invoice_update_rewrites_lines_and_finalises_a_draft(
    adapter: PerfexAdapter,
) -> None:
    contact_id = await _new_contact(adapter)
    invoices = adapter.resource("invoices")
    draft = await invoices.create(
        _invoice(contact_id, _lines(random.Random(5), 4, ("21", "9"))), client_token=None
    )
    assert isinstance(draft.value, Invoice) and draft.value.number is None
    new_lines = _lines(random.Random(6), 2, ("21", "0"))
    desired = with_computed_totals(
        dataclasses.replace(draft.value, lines=new_lines, status="open", number="2026-0999")
    )
    updated = await invoices.update(
        draft.external_id, desired, frozenset({"lines", "status", "number", "total"})
    )
    assert isinstance(updated.value, Invoice)
    assert updated.value.lines == normalise(desired).lines
    assert updated.value.status == "open"
    assert updated.value.number is not None and updated.value.number.endswith("0999")
    fetched = await invoices.get(draft.external_id)
    assert fetched is not None and fetched.value == updated.value


async def test_an_unknown_vat_rate_is_skipped_before_anything_is_written(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contact_id = await _new_contact(adapter)
    before = await side.writes()
    odd = (InvoiceLine("Seven percent", Decimal(1), Decimal("10.00"), Decimal(7)),)
    with pytest.raises(SkipRecord, match="7"):
        await adapter.resource("invoices").create(_invoice(contact_id, odd), client_token=None)
    assert await side.writes() == before


async def test_removing_an_invoice_cancels_it(adapter: PerfexAdapter) -> None:
    contact_id = await _new_contact(adapter)
    invoices = adapter.resource("invoices")
    created = await invoices.create(
        _invoice(contact_id, _lines(random.Random(2), 2, ("21",)), status="open"),
        client_token=None,
    )
    await invoices.remove(created.external_id)
    after = await invoices.get(created.external_id)
    assert after is not None and isinstance(after.value, Invoice)
    assert after.value.status == "cancelled"
    swept = {e.external_id: e.archived async for batch in invoices.list_ids() for e in batch}
    assert swept[created.external_id] is True


# --------------------------------------------------------------------------- payments


async def test_payments_are_created_found_by_token_listed_and_deleted(
    adapter: PerfexAdapter,
) -> None:
    contact_id = await _new_contact(adapter)
    invoice = await adapter.resource("invoices").create(
        _invoice(contact_id, _lines(random.Random(3), 2, ("21",)), status="open"),
        client_token=None,
    )
    payments = adapter.resource("payments")
    wanted = normalise(
        Payment(
            invoice=invoice.external_id,
            date=dt.date(2026, 11, 20),
            amount=Decimal("10.00"),
            method="Bank",
            reference="TX-1",
        )
    )
    created = await payments.create(wanted, client_token="pay-1")
    assert created.value == wanted
    found = await payments.find(client_token="pay-1", natural_key=None)
    assert found is not None and found.external_id == created.external_id
    by_key = await payments.find(client_token=None, natural_key=wanted)
    assert by_key is not None and by_key.external_id == created.external_id
    listed = {r.external_id for r in records(await collect(payments.list_changes(None)))}
    assert created.external_id in listed
    paid = await adapter.resource("invoices").get(invoice.external_id)
    assert paid is not None and isinstance(paid.value, Invoice)
    assert paid.value.amount_paid == Decimal("10.00") and paid.value.status == "partially_paid"
    await payments.remove(created.external_id)
    assert await payments.get(created.external_id) is None


# --------------------------------------------------------------------------- contacts


async def test_a_name_change_keeps_a_mailbox_contact_filed_under_the_company(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contacts = adapter.resource("contacts")
    created = await contacts.create(sample_contact(), client_token=None)
    assert isinstance(created.value, Contact) and created.value.first_name is None
    renamed = dataclasses.replace(created.value, name="Renamed Holding B.V.")
    updated = await contacts.update(created.external_id, renamed, frozenset({"name"}))
    assert updated.value == normalise(renamed)
    primary = next(
        c
        for c in (await side.state())["contacts"]
        if c["userid"] == created.external_id and c["is_primary"] == "1"
    )
    assert primary["lastname"] == "Renamed Holding B.V."


async def test_a_human_phone_edit_on_the_customer_shows_when_the_contact_has_none(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contacts = adapter.resource("contacts")
    created = await contacts.create(sample_contact(), client_token=None)
    await side.human_edit("contacts", created.external_id, "phone", "020 765 4321")
    fetched = await contacts.get(created.external_id)
    assert fetched is not None and isinstance(fetched.value, Contact)
    assert fetched.value.phone == "+31207654321"


async def test_a_human_phone_edit_on_the_customer_wins_over_the_contacts_own_number(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    # Found by the sandbox integration tests: the primary contact's number used to win, so
    # a Perfex user's edit of the company's phone number never synced anywhere.
    contacts = adapter.resource("contacts")
    created = await contacts.create(
        sample_contact(phone="+31 20 123 4567", email="sanne@example.nl"), client_token=None
    )
    primary = next(
        c
        for c in (await side.state())["contacts"]
        if c["userid"] == created.external_id and c["is_primary"] == "1"
    )
    await side._call("PATCH", f"/perfex/contacts/{primary['id']}", {"phonenumber": "06 1111 2222"})
    await side.human_edit("contacts", created.external_id, "phone", "020 765 4321")

    fetched = await contacts.get(created.external_id)

    assert fetched is not None and isinstance(fetched.value, Contact)
    assert fetched.value.phone == "+31207654321"


async def test_a_phone_update_leaves_the_primary_contacts_own_number_alone(
    adapter: PerfexAdapter, side: PerfexSide
) -> None:
    contacts = adapter.resource("contacts")
    created = await contacts.create(
        sample_contact(phone="+31 20 123 4567", email="piet@example.nl"), client_token=None
    )
    assert isinstance(created.value, Contact)
    primary = next(
        c
        for c in (await side.state())["contacts"]
        if c["userid"] == created.external_id and c["is_primary"] == "1"
    )
    await side._call("PATCH", f"/perfex/contacts/{primary['id']}", {"phonenumber": "06 1111 2222"})

    moved = dataclasses.replace(created.value, phone="+31 30 555 0000")
    updated = await contacts.update(created.external_id, moved, frozenset({"phone"}))

    assert isinstance(updated.value, Contact) and updated.value.phone == "+31305550000"
    state = await side.state()
    customer = next(c for c in state["customers"] if c["userid"] == created.external_id)
    contact = next(c for c in state["contacts"] if c["id"] == primary["id"])
    assert customer["phonenumber"] == "+31305550000"
    assert contact["phonenumber"] == "06 1111 2222"
