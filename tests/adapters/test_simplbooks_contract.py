"""The SimplBooks adapter passes the adapter contract against the sandbox, plus vendor specifics."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from syncd.adapters.base import Resource, VendorAdapter
from syncd.adapters.http import RetryPolicy, VendorHttp
from syncd.adapters.simplbooks import create_adapter
from syncd.adapters.simplbooks.adapter import SimplbooksAdapter
from syncd.adapters.simplbooks.client import SimplbooksClient, classify
from syncd.adapters.simplbooks.mapping import CONTACT_TO_CLIENT
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    normalise,
    with_computed_totals,
)
from syncd.errors import AuthFailed, Fatal, NotFound, SkipRecord, Uncertain
from syncd.sandbox.base import SandboxOptions, VendorName
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import AccountSettings
from tests.adapters.contract import (
    AdapterContract,
    all_ids,
    collect,
    records,
    sample_contact,
)

VENDOR: VendorName = "simplbooks"
PAGE_SIZE = 5
TODAY = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
# Retries without real waiting: faults in these tests are injected, not load.
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.0, max_delay=0.0)


async def _no_sleep(_seconds: float) -> None:
    return None


def _account(handle: SandboxHandle, token: str | None = None) -> AccountSettings:
    return AccountSettings(
        name="books",
        vendor=VENDOR,
        base_url=handle.base_urls[VENDOR],
        credentials={"token": SecretStr(token or handle.credentials[VENDOR]["token"])},
        allow_insecure_http=True,
    )


def _make(
    handle: SandboxHandle,
    session: aiohttp.ClientSession,
    *,
    token: str | None = None,
    sleep: Callable[[float], Awaitable[None]] = _no_sleep,
    retry: RetryPolicy = FAST_RETRY,
) -> SimplbooksAdapter:
    adapter = create_adapter(
        _account(handle, token), session, budget=None, sleep=sleep, retry=retry, clock=lambda: TODAY
    )
    assert isinstance(adapter, SimplbooksAdapter)
    for name in ("contacts", "invoices", "payments"):
        adapter.resource(name).page_size = PAGE_SIZE  # type: ignore[attr-defined]
    return adapter


class SandboxSide:
    """The vendor's side through the /_sandbox/ control API."""

    def __init__(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> None:
        self.root = f"{handle.url}/_sandbox"
        self.session = session

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.root + path, json=body) as response:
            data = await response.json()
            assert response.status < 300, data
            return data

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/{VENDOR}/state")
        return result

    async def count(self, resource: Resource) -> int:
        state = await self.state()
        if resource == "contacts":
            return len(state["clients"])
        if resource == "invoices":
            return len(state["invoices"])
        return sum(len(ids) for ids in state["bound_receipts"].values())

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        assert resource == "contacts", "only client edits are needed here"
        await self._call(
            "PATCH", f"/{VENDOR}/clients/{external_id}", {CONTACT_TO_CLIENT[field]: value}
        )

    async def writes(self) -> int:
        counters = await self._call("GET", f"/{VENDOR}/counters")
        return int(counters["writes"])

    async def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", f"/{VENDOR}/counters")
        return result

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        await self._call("PUT", "/settings", {"fault_rate": rate, "fault_kinds": list(kinds)})

    async def settings(self, **values: Any) -> None:
        await self._call("PUT", "/settings", values)

    async def pay(self, invoice_id: str, amount: str, date: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call(
            "POST", f"/{VENDOR}/invoices/{invoice_id}/payments", {"amount": amount, "date": date}
        )
        return result


@pytest.fixture
async def handle() -> AsyncIterator[SandboxHandle]:
    options = SandboxOptions(
        seed=11, contacts=12, invoices=8, rate_limits=False, fault_rate=0.0, control=True
    )
    async with running_sandbox(options, vendors=(VENDOR,)) as served:
        yield served


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
def side(handle: SandboxHandle, session: aiohttp.ClientSession) -> SandboxSide:
    return SandboxSide(handle, session)


class TestSimplbooksContract(AdapterContract):
    resources = ("contacts", "invoices", "payments")

    @pytest.fixture
    def adapter(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> VendorAdapter:
        return _make(handle, session)

    @pytest.fixture
    def vendor_side(self, side: SandboxSide) -> SandboxSide:
        return side

    @pytest.fixture
    def bad_adapter(self, handle: SandboxHandle, session: aiohttp.ClientSession) -> VendorAdapter:
        return _make(handle, session, token="not-the-sandbox-token")


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def adapter(handle: SandboxHandle, session: aiohttp.ClientSession) -> SimplbooksAdapter:
    return _make(handle, session)


def _invoice(contact_id: str, rates: list[int], *, reference: str | None = None) -> Invoice:
    lines = tuple(
        InvoiceLine(
            f"Service {n}",
            Decimal(n % 4 + 1) / (2 if n % 3 == 0 else 1),
            Decimal(f"{(n * 37) % 500 + 1}.{(n * 13) % 100:02d}"),
            Decimal(rate),
        )
        for n, rate in enumerate(rates, 1)
    )
    return normalise(
        with_computed_totals(
            Invoice(
                number=None,
                contact=contact_id,
                issue_date=dt.date(2026, 11, 2),
                due_date=dt.date(2026, 11, 16),
                status="open",
                lines=lines,
                reference=reference,
            )
        )
    )


async def _new_invoice(adapter: SimplbooksAdapter, **contact: Any) -> tuple[str, Invoice]:
    created = await adapter.resource("contacts").create(
        sample_contact(**contact), client_token=None
    )
    wanted = _invoice(created.external_id, [21, 9, 0], reference=f"ref-{created.external_id}")
    invoice = await adapter.resource("invoices").create(wanted, client_token=None)
    assert isinstance(invoice.value, Invoice)
    return invoice.external_id, invoice.value


# --------------------------------------------------------------------------- snapshot listing


async def test_every_pass_is_a_complete_listing_and_deletions_vanish(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    contacts = adapter.resource("contacts")
    first = await collect(contacts.list_changes(None))
    assert first[-1].checkpoint == {"offset": 0}
    again = await collect(contacts.list_changes(first[-1].checkpoint))
    assert [r.external_id for r in records(again)] == [r.external_id for r in records(first)]
    assert [r.value for r in records(again)] == [r.value for r in records(first)]
    gone = records(first)[0].external_id
    await contacts.remove(gone)
    after = {r.external_id for r in records(await collect(contacts.list_changes(None)))}
    assert gone not in after
    assert len(after) == await side.count("contacts")


async def test_a_listing_that_fills_its_last_page_ends_with_an_empty_final_page(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    contacts = adapter.resource("contacts")
    while (await side.count("contacts")) % PAGE_SIZE:
        await contacts.create(sample_contact(), client_token=None)
    pages = await collect(contacts.list_changes(None))
    assert pages[-1].final and not pages[-1].records
    assert len(records(pages)) == await side.count("contacts")


async def test_a_resumed_listing_continues_after_the_checkpoint(
    adapter: SimplbooksAdapter,
) -> None:
    contacts = adapter.resource("contacts")
    for _ in range(2 * PAGE_SIZE):
        await contacts.create(sample_contact(), client_token=None)
    full = [r.external_id for r in records(await collect(contacts.list_changes(None)))]
    resumed = [r.external_id for r in records(await collect(contacts.list_changes({"offset": 7})))]
    assert resumed == full[7:]


async def test_a_page_size_the_vendor_refuses_is_halved_until_it_is_accepted(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    contacts = adapter.resource("contacts")
    contacts.page_size = 4000  # type: ignore[attr-defined]
    listed = records(await collect(contacts.list_changes(None)))
    assert len(listed) == await side.count("contacts")
    assert contacts.page_size <= 1000  # type: ignore[attr-defined]


async def test_listing_counts_its_api_calls(adapter: SimplbooksAdapter, side: SandboxSide) -> None:
    before = (await side.counters())["requests_total"]
    pages = await collect(adapter.resource("invoices").list_changes(None))
    after = (await side.counters())["requests_total"]
    assert sum(page.api_calls for page in pages) == after - before
    # One list call per page plus one detail call per invoice.
    assert after - before == len(pages) + await side.count("invoices")


# --------------------------------------------------------------------------- errors and auth


async def test_a_wrong_token_is_auth_failed_without_the_token_in_the_message(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    bad = _make(handle, session, token="wrong-token-7f3a9c")
    with pytest.raises(AuthFailed) as caught:
        await bad.resource("invoices").get("5001")
    assert "Used API token is expired or wrong." in str(caught.value)
    assert "wrong-token-7f3a9c" not in str(caught.value)


async def test_a_missing_token_is_auth_failed_with_the_vendors_message(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    http = VendorHttp(
        session, account="books", vendor=VENDOR, base_url=handle.base_urls[VENDOR],
        auth_headers={}, classify=classify, sleep=_no_sleep,
    )  # fmt: skip
    with pytest.raises(AuthFailed, match="API token in HTTP header is missing"):
        await SimplbooksAdapter(SimplbooksClient(http), account="books").verify()


async def test_a_base_url_the_vendor_does_not_serve_is_fatal_not_a_missing_record(
    handle: SandboxHandle, session: aiohttp.ClientSession
) -> None:
    account = _account(handle).model_copy(
        update={"base_url": handle.base_urls[VENDOR].replace("/demo/", "/other/")}
    )
    adapter = create_adapter(account, session, budget=None, sleep=_no_sleep)
    with pytest.raises(Fatal, match="base_url"):
        await adapter.resource("contacts").get("1")


async def test_get_of_a_missing_invoice_or_payment_is_none(adapter: SimplbooksAdapter) -> None:
    assert await adapter.resource("invoices").get("999999") is None
    assert await adapter.resource("invoices").get("not-an-id") is None
    assert await adapter.resource("payments").get("999999@5001") is None
    assert await adapter.resource("payments").get("garbage") is None


async def test_updating_a_deleted_contact_is_not_found(adapter: SimplbooksAdapter) -> None:
    contacts = adapter.resource("contacts")
    created = await contacts.create(sample_contact(), client_token=None)
    await contacts.remove(created.external_id)
    await contacts.remove(created.external_id)  # removing twice is fine
    with pytest.raises(NotFound):
        await contacts.update(created.external_id, created.value, frozenset({"email"}))


async def test_a_client_with_invoices_cannot_be_removed(adapter: SimplbooksAdapter) -> None:
    _invoice_id, invoice = await _new_invoice(adapter)
    assert invoice.contact is not None
    with pytest.raises(SkipRecord) as caught:
        await adapter.resource("contacts").remove(invoice.contact)
    assert "related documents" in caught.value.reason
    assert await adapter.resource("contacts").get(invoice.contact) is not None


async def test_an_invoice_for_an_unknown_client_is_skipped(adapter: SimplbooksAdapter) -> None:
    with pytest.raises(SkipRecord):
        await adapter.resource("invoices").create(_invoice("999999", [22]), client_token=None)


async def test_an_unknown_vat_rate_is_skipped_without_writing(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    before = await side.writes()
    with pytest.raises(SkipRecord) as caught:
        await adapter.resource("invoices").create(
            _invoice(contact.external_id, [23]), client_token=None
        )
    assert "23" in caught.value.reason
    assert await side.writes() == before


# --------------------------------------------------------------------------- uncertain writes


async def _lose_next_write(side: SandboxSide) -> None:
    await side.set_faults(1.0, ("lost_response",))


@pytest.mark.parametrize("reference", [None, "PO-4711"])
async def test_a_lost_invoice_create_is_settled_by_find(
    adapter: SimplbooksAdapter, side: SandboxSide, reference: str | None
) -> None:
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    wanted = _invoice(contact.external_id, [22, 9], reference=reference)
    invoices = adapter.resource("invoices")
    before = await side.count("invoices")
    await _lose_next_write(side)
    with pytest.raises(Uncertain):
        await invoices.create(wanted, client_token="tok-42")
    await side.set_faults(0.0, ())
    assert await side.count("invoices") == before + 1
    found = await invoices.find(client_token="tok-42", natural_key=wanted)
    assert found is not None and isinstance(found.value, Invoice)
    assert found.value.lines == wanted.lines
    assert found.value.reference == (reference or "tok-42")
    other = _invoice(contact.external_id, [22, 9], reference="someone else")
    assert await invoices.find(client_token="tok-other", natural_key=other) is None


async def test_a_lost_contact_create_is_settled_by_its_natural_key(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    contacts = adapter.resource("contacts")
    wanted = sample_contact(coc_number="12345678")
    await _lose_next_write(side)
    with pytest.raises(Uncertain):
        await contacts.create(wanted, client_token="ignored")
    await side.set_faults(0.0, ())
    found = await contacts.find(client_token=None, natural_key=wanted)
    assert found is not None and found.value == await _value(adapter, "contacts", found.external_id)
    twin = Contact(**{**_fields(wanted), "coc_number": "87654321"})
    assert await contacts.find(client_token=None, natural_key=twin) is None


async def test_a_lost_payment_create_is_settled_by_find(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    invoice_id, _invoice_value = await _new_invoice(adapter)
    payments = adapter.resource("payments")
    wanted = Payment(invoice=invoice_id, date=dt.date(2026, 11, 5), amount=Decimal("10.00"))
    await _lose_next_write(side)
    with pytest.raises(Uncertain):
        await payments.create(wanted, client_token="pay-token-1")
    await side.set_faults(0.0, ())
    by_key = await payments.find(client_token="pay-token-1", natural_key=wanted)
    by_token = await payments.find(client_token="pay-token-1", natural_key=None)
    assert by_key is not None and by_token is not None
    assert by_key.external_id == by_token.external_id
    assert by_key.external_id.endswith(f"@{invoice_id}")
    assert await payments.find(client_token="never", natural_key=None) is None


async def _value(adapter: SimplbooksAdapter, resource: Resource, external_id: str) -> Any:
    record = await adapter.resource(resource).get(external_id)
    assert record is not None
    return record.value


def _fields(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in contact.__dataclass_fields__}


# --------------------------------------------------------------------------- rate limits


async def test_the_vendors_429_is_absorbed_by_retries(
    handle: SandboxHandle, session: aiohttp.ClientSession, side: SandboxSide
) -> None:
    # 60 requests a minute, scaled to 60 a second; rejected requests still count.
    await side.settings(rate_limits=True, rate_scale=60.0)
    adapter = _make(
        handle, session, sleep=_real_sleep, retry=RetryPolicy(attempts=8, base_delay=0.3)
    )
    contacts = adapter.resource("contacts")
    ids = [r.external_id for r in records(await collect(contacts.list_changes(None)))]
    for _ in range(80 // len(ids) + 1):
        for external_id in ids:
            assert await contacts.get(external_id) is not None
    assert (await side.counters())["rate_limited"] > 0


async def _real_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


# --------------------------------------------------------------------------- invoices


@pytest.mark.parametrize(
    ("country", "rates"),
    [
        ("NL", [21]),
        ("NL", [21, 9, 0, 21, 9, 0, 21]),
        ("EE", [22, 9, 0, 24, 13] * 4),
    ],
    ids=["one-line", "seven-lines-nl", "twenty-lines-ee"],
)
async def test_invoices_round_trip_to_the_cent(
    adapter: SimplbooksAdapter, country: str, rates: list[int]
) -> None:
    extra = (
        {"postal_code": "10111", "city": "Tallinn", "phone": "+3725550000"}
        if country == "EE"
        else {}
    )
    contact = await adapter.resource("contacts").create(
        sample_contact(country=country, **extra), client_token=None
    )
    wanted = _invoice(contact.external_id, rates, reference="round trip")
    created = await adapter.resource("invoices").create(wanted, client_token=None)
    fetched = await adapter.resource("invoices").get(created.external_id)
    assert fetched is not None and isinstance(fetched.value, Invoice)
    got = fetched.value
    assert got.lines == wanted.lines
    assert (got.subtotal, got.tax_total, got.total) == (
        wanted.subtotal,
        wanted.tax_total,
        wanted.total,
    )
    assert (got.issue_date, got.due_date, got.reference, got.currency) == (
        wanted.issue_date,
        wanted.due_date,
        wanted.reference,
        wanted.currency,
    )
    assert got.number is not None, "SimplBooks numbers the invoice"
    assert got.status == "open"


async def test_vat_types_are_read_once_per_adapter(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    for _ in range(3):
        await _new_invoice(adapter)
    requests = (await side.counters())["requests"]
    assert sum(n for key, n in requests.items() if "vat_types" in key) == 1


async def test_a_zero_rate_uses_the_clients_default_vat_type(
    adapter: SimplbooksAdapter, handle: SandboxHandle, side: SandboxSide
) -> None:
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    await side._call(
        "PATCH",
        f"/{VENDOR}/clients/{contact.external_id}",
        {"client_settings_sales_vat_type_id": 9},
    )
    created = await adapter.resource("invoices").create(
        _invoice(contact.external_id, [0, 21]), client_token=None
    )
    state = await side.state()
    rows = next(
        i["Task"] for i in state["invoices"] if str(i["Invoice"]["id"]) == created.external_id
    )
    assert [row["vat_type_id"] for row in rows] == [9, 10]  # Eksport 0 %, OSS 21 %


async def test_updating_lines_keeps_existing_rows_and_their_accounts(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    invoice_id, invoice = await _new_invoice(adapter)
    before = await side.state()
    old_rows = next(i["Task"] for i in before["invoices"] if str(i["Invoice"]["id"]) == invoice_id)
    lines = (
        InvoiceLine("Consultancy, revised", Decimal("2"), Decimal("100.00"), Decimal("21")),
        invoice.lines[1],
    )
    desired = normalise(
        with_computed_totals(Invoice(**{**_invoice_fields(invoice), "lines": lines}))
    )
    updated = await adapter.resource("invoices").update(invoice_id, desired, frozenset({"lines"}))
    assert isinstance(updated.value, Invoice)
    assert updated.value.lines == desired.lines
    assert updated.value.total == desired.total
    after = await side.state()
    new_rows = next(i["Task"] for i in after["invoices"] if str(i["Invoice"]["id"]) == invoice_id)
    assert [r["id"] for r in new_rows] == [r["id"] for r in old_rows[:2]]


async def test_a_discounted_line_total_survives_a_round_trip(adapter: SimplbooksAdapter) -> None:
    contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
    line = InvoiceLine(
        "Discounted", Decimal("3"), Decimal("33.33"), Decimal("21"), Decimal("90.00")
    )
    wanted = normalise(
        with_computed_totals(
            Invoice(
                number=None,
                contact=contact.external_id,
                issue_date=dt.date(2026, 11, 2),
                due_date=dt.date(2026, 11, 30),
                lines=(line,),
            )
        )
    )
    created = await adapter.resource("invoices").create(wanted, client_token=None)
    assert isinstance(created.value, Invoice)
    assert created.value.lines == wanted.lines
    assert created.value.total == wanted.total


async def test_header_updates_leave_the_rows_alone(adapter: SimplbooksAdapter) -> None:
    invoice_id, invoice = await _new_invoice(adapter)
    desired = Invoice(
        **{
            **_invoice_fields(invoice),
            "due_date": dt.date(2026, 12, 24),
            "reference": "new ref",
            "lines": (),
        }
    )
    updated = await adapter.resource("invoices").update(
        invoice_id, desired, frozenset({"due_date", "reference"})
    )
    assert isinstance(updated.value, Invoice)
    assert (updated.value.due_date, updated.value.reference) == (dt.date(2026, 12, 24), "new ref")
    assert updated.value.lines == invoice.lines


def _invoice_fields(invoice: Invoice) -> dict[str, Any]:
    return {name: getattr(invoice, name) for name in invoice.__dataclass_fields__}


# --------------------------------------------------------------------------- payments


async def test_payments_are_listed_and_change_the_invoice_status(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    invoice_id, invoice = await _new_invoice(adapter)
    payments = adapter.resource("payments")
    part = Payment(
        invoice=invoice_id, date=dt.date(2026, 11, 3), amount=Decimal("100.00"), reference="first"
    )
    created = await payments.create(part, client_token=None)
    assert created.value == normalise(part)
    partly = await _value(adapter, "invoices", invoice_id)
    assert (partly.status, partly.amount_paid) == ("partially_paid", Decimal("100.00"))
    rest = invoice.total - Decimal("100.00")
    await payments.create(
        Payment(invoice=invoice_id, date=dt.date(2026, 11, 4), amount=rest), client_token="tok-rest"
    )
    paid = await _value(adapter, "invoices", invoice_id)
    assert (paid.status, paid.amount_paid) == ("paid", invoice.total)
    listed = records(await collect(payments.list_changes(None)))
    ours = [r for r in listed if isinstance(r.value, Payment) and r.value.invoice == invoice_id]
    assert sorted(r.value.amount for r in ours) == sorted([Decimal("100.00"), rest])  # type: ignore[union-attr]
    assert len(listed) == await side.count("payments")
    swept = {entry.external_id for entry in await all_ids(payments)}
    assert {r.external_id for r in listed} == swept


async def test_a_payment_a_bookkeeper_registers_is_listed(
    adapter: SimplbooksAdapter, side: SandboxSide
) -> None:
    invoice_id, _invoice_value = await _new_invoice(adapter)
    booked = await side.pay(invoice_id, "12.34", "2026-11-10")
    external_id = f"{booked['Incoming']['id']}@{invoice_id}"
    record = await adapter.resource("payments").get(external_id)
    assert record is not None and record.value == Payment(
        invoice=invoice_id,
        date=dt.date(2026, 11, 10),
        amount=Decimal("12.34"),
        reference=booked["Incoming"]["description"],
    )


async def test_payment_updates_and_removal(adapter: SimplbooksAdapter) -> None:
    invoice_id, _invoice_value = await _new_invoice(adapter)
    payments = adapter.resource("payments")
    created = await payments.create(
        Payment(invoice=invoice_id, date=dt.date(2026, 11, 3), amount=Decimal("5.00")),
        client_token=None,
    )
    desired = Payment(
        invoice=invoice_id, date=dt.date(2026, 11, 6), amount=Decimal("7.50"), reference="fixed"
    )
    updated = await payments.update(
        created.external_id, desired, frozenset({"date", "amount", "reference"})
    )
    assert updated.value == desired
    with pytest.raises(SkipRecord):
        await payments.update(
            created.external_id,
            Payment(invoice="5001", date=desired.date, amount=desired.amount),
            frozenset({"invoice"}),
        )
    await payments.remove(created.external_id)
    assert await payments.get(created.external_id) is None
    assert (await _value(adapter, "invoices", invoice_id)).amount_paid == Decimal("0.00")


# --------------------------------------------------------------------------- paging (stub client)


class _ShiftingClient:
    """A client whose second page repeats a row of the first (an insert shifted the listing)."""

    def __init__(self, pages: dict[int, list[int]]) -> None:
        self.pages = pages
        self.calls = 0
        self.asked: list[tuple[int, int]] = []

    async def list_page(self, category: str, *, page: int, per_page: int, **_: Any) -> list[Any]:
        self.calls += 1
        self.asked.append((page, per_page))
        return [{"Client": {"id": i, "name": f"Client {i}"}} for i in self.pages.get(page, [])]


async def test_a_row_repeated_from_the_previous_page_is_listed_once() -> None:
    from syncd.adapters.simplbooks.adapter import ContactsResource, _Shared

    stub = _ShiftingClient({1: [1, 2, 3], 2: [3, 4, 5], 3: [6]})
    contacts = ContactsResource(_Shared(stub, lambda: TODAY), page_size=3)  # type: ignore[arg-type]
    pages = await collect(contacts.list_changes(None))
    assert [r.external_id for r in records(pages)] == ["1", "2", "3", "4", "5", "6"]
    assert [p.checkpoint for p in pages] == [{"offset": 3}, {"offset": 6}, {"offset": 0}]
    assert [p.api_calls for p in pages] == [1, 1, 1]
    assert stub.asked == [(1, 3), (2, 3), (3, 3)]
