"""The one contract every vendor adapter passes (STYLE habit 2).

A vendor's test module subclasses :class:`AdapterContract` (named ``Test<Vendor>Contract``)
and provides three fixtures:

``adapter``
    a ready :class:`~syncd.adapters.base.VendorAdapter` on a fresh, seeded vendor;
``vendor_side``
    a :class:`VendorSide`: acts on the vendor as a human user would, and reads its counters;
``bad_adapter``
    the same vendor reached with wrong credentials.

Every resource adapter has an int attribute ``page_size`` (default: the vendor maximum)
which fixtures set small, so a handful of records spans several pages.

Class attributes say what the vendor has (``resources``). The fake adapter
(``syncd/adapters/fake.py``) passes this suite too, so engine tests that use the fake
rely on exactly the behaviour the real adapters guarantee.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar, Protocol

import pytest

from syncd.adapters.base import (
    Checkpoint,
    IdVersion,
    Page,
    Resource,
    ResourceAdapter,
    VendorAdapter,
    VendorRecord,
)
from syncd.core.model import Contact, Invoice, InvoiceLine, normalise
from syncd.errors import AuthFailed, Retryable, Uncertain

_serial = itertools.count(1)


class VendorSide(Protocol):
    """What a test needs from the vendor's side of the wire."""

    async def count(self, resource: Resource) -> int:
        """How many records of ``resource`` the vendor holds (archived ones included)."""
        ...

    async def human_edit(
        self, resource: Resource, external_id: str, field: str, value: str
    ) -> None:
        """Change one canonical field (e.g. "email", "name") as a user of the vendor's UI would."""
        ...

    async def writes(self) -> int:
        """Committed writes the vendor has seen so far."""
        ...

    async def set_faults(self, rate: float, kinds: tuple[str, ...]) -> None:
        """Inject faults (syncd.sandbox.base.FAULT_KINDS) into this share of requests."""
        ...


def sample_contact(**overrides: Any) -> Contact:
    """A unique, fully valid organization contact."""
    n = next(_serial)
    values: dict[str, Any] = {
        "kind": "organization",
        "name": f"Contract Test {n:04d} B.V.",
        "email": f"info{n}@contract-test.example",
        "phone": "+31201234567",
        "address_line1": f"Keizersgracht {n}",
        "postal_code": "1015 CJ",
        "city": "Amsterdam",
        "country": "NL",
    }
    values.update(overrides)
    return normalise(Contact(**values))


def sample_invoice(contact_id: str, **overrides: Any) -> Invoice:
    """A valid open invoice with lines at 21, 9 and 0 % for ``contact_id``."""
    n = next(_serial)
    lines = (
        InvoiceLine("Consultancy", Decimal("3.5"), Decimal("95.00"), Decimal("21")),
        InvoiceLine("Books", Decimal("2"), Decimal("12.49"), Decimal("9")),
        InvoiceLine("Export service", Decimal("1"), Decimal("250.00"), Decimal("0")),
    )
    values: dict[str, Any] = {
        "number": None,
        "contact": contact_id,
        "issue_date": dt.date(2026, 11, 2),
        "due_date": dt.date(2026, 12, 2),
        "currency": "EUR",
        "status": "draft",
        "lines": lines,
        "reference": f"contract-{n}",
    }
    values.update(overrides)
    from syncd.core.model import with_computed_totals

    return normalise(with_computed_totals(Invoice(**values)))


async def collect(pages: AsyncIterator[Page]) -> list[Page]:
    return [page async for page in pages]


async def all_ids(resource: ResourceAdapter) -> list[IdVersion]:
    return [entry async for batch in resource.list_ids() for entry in batch]


def records(pages: list[Page]) -> list[VendorRecord]:
    return [record for page in pages for record in page.records]


class AdapterContract:
    """Generic behaviour of every adapter. Not collected by itself (no ``Test`` prefix)."""

    resources: ClassVar[tuple[Resource, ...]] = ("contacts", "invoices")

    # ------------------------------------------------------------------ listing

    async def test_lists_every_contact_to_the_final_page(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        pages = await collect(adapter.resource("contacts").list_changes(None))
        assert pages, "a listing yields at least one page, even when empty"
        assert pages[-1].final
        assert not any(page.final for page in pages[:-1])
        ids = [r.external_id for r in records(pages)] + [
            s.external_id for p in pages for s in p.skipped if s.external_id
        ]
        assert len(ids) == len(set(ids)), "no record is listed twice in one pass"
        assert len(ids) == await vendor_side.count("contacts")

    async def test_page_size_respects_the_vendor_maximum(self, adapter: VendorAdapter) -> None:
        pages = await collect(adapter.resource("contacts").list_changes(None))
        for page in pages:
            assert len(page.records) + len(page.skipped) <= adapter.capabilities.max_page_size

    async def test_a_checkpoint_resumes_after_its_page(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        while len(records(await collect(contacts.list_changes(None)))) <= contacts_page(adapter):
            await contacts.create(sample_contact(), client_token=None)
        full = await collect(contacts.list_changes(None))
        assert len(full) >= 2
        first: Checkpoint = full[0].checkpoint
        resumed = await collect(contacts.list_changes(first))
        first_ids = {r.external_id for r in full[0].records}
        resumed_ids = {r.external_id for r in records(resumed)}
        all_ids_ = {r.external_id for r in records(full)}
        assert resumed_ids, "resuming after page one still lists the rest"
        assert resumed_ids <= all_ids_
        assert all_ids_ - first_ids <= resumed_ids, "nothing after the checkpoint is lost"

    async def test_the_final_checkpoint_sees_a_human_edit(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        contacts = adapter.resource("contacts")
        created = await contacts.create(sample_contact(), client_token=None)
        pages = await collect(contacts.list_changes(None))
        cursor = pages[-1].checkpoint
        await vendor_side.human_edit("contacts", created.external_id, "email", "edited@example.org")
        later = records(await collect(contacts.list_changes(cursor)))
        edited = [r for r in later if r.external_id == created.external_id]
        assert edited, "a record changed after the cursor is listed again"
        assert isinstance(edited[0].value, Contact)
        assert edited[0].value.email == "edited@example.org"

    async def test_listed_values_are_normalised(self, adapter: VendorAdapter) -> None:
        for record in records(await collect(adapter.resource("contacts").list_changes(None))):
            assert record.value == normalise(record.value)
            assert record.external_id and isinstance(record.external_id, str)

    async def test_id_sweep_holds_every_listed_record(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        listed = {r.external_id for r in records(await collect(contacts.list_changes(None)))}
        swept = {entry.external_id for entry in await all_ids(contacts)}
        assert listed <= swept

    # ------------------------------------------------------------------ writes

    async def test_create_returns_what_the_vendor_now_holds(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        wanted = sample_contact()
        created = await contacts.create(wanted, client_token="ct-create-1")
        fetched = await contacts.get(created.external_id)
        assert fetched is not None
        assert fetched.value == created.value
        assert isinstance(created.value, Contact)
        for field in ("name", "email", "city", "postal_code", "country"):
            assert getattr(created.value, field) == getattr(wanted, field), field

    async def test_update_changes_only_the_given_fields(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        created = await contacts.create(sample_contact(), client_token=None)
        assert isinstance(created.value, Contact)
        desired = normalise(
            Contact(**{**_as_dict(created.value), "email": "new@example.org", "city": "Ignored"})
        )
        updated = await contacts.update(created.external_id, desired, frozenset({"email"}))
        assert isinstance(updated.value, Contact)
        assert updated.value.email == "new@example.org"
        assert updated.value.city == created.value.city, "a field not asked for is left alone"
        fetched = await contacts.get(created.external_id)
        assert fetched is not None and fetched.value == updated.value

    async def test_find_settles_an_uncertain_create(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        wanted = sample_contact()
        token = f"ct-find-{next(_serial)}"
        created = await contacts.create(wanted, client_token=token)
        by_token = await contacts.find(client_token=token, natural_key=wanted)
        assert by_token is not None and by_token.external_id == created.external_id
        absent = await contacts.find(client_token="ct-never-written", natural_key=sample_contact())
        assert absent is None

    async def test_remove_follows_the_declared_removal(self, adapter: VendorAdapter) -> None:
        contacts = adapter.resource("contacts")
        created = await contacts.create(sample_contact(), client_token=None)
        await contacts.remove(created.external_id)
        after = await contacts.get(created.external_id)
        removal = adapter.capabilities.removal["contacts"]
        if removal == "delete":
            assert after is None
            swept = {e.external_id for e in await all_ids(contacts)}
            assert created.external_id not in swept
        elif removal == "archive":
            assert after is not None and isinstance(after.value, Contact)
            assert after.value.archived
        else:
            pytest.skip("vendor cannot remove contacts")

    async def test_get_of_an_unknown_id_is_none(self, adapter: VendorAdapter) -> None:
        assert await adapter.resource("contacts").get("999999999") is None

    async def test_create_writes_once(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        before = await vendor_side.writes()
        await adapter.resource("contacts").create(sample_contact(), client_token=None)
        assert await vendor_side.writes() == before + 1

    # ------------------------------------------------------------------ invoices

    async def test_invoice_lines_and_totals_survive_a_round_trip(
        self, adapter: VendorAdapter
    ) -> None:
        if "invoices" not in self.resources:
            pytest.skip("vendor has no invoices")
        contact = await adapter.resource("contacts").create(sample_contact(), client_token=None)
        wanted = sample_invoice(contact.external_id)
        invoices = adapter.resource("invoices")
        created = await invoices.create(wanted, client_token=wanted.reference)
        fetched = await invoices.get(created.external_id)
        assert fetched is not None
        got = fetched.value
        assert isinstance(got, Invoice)
        assert got.contact == contact.external_id
        assert [(ln.quantity, ln.unit_price, ln.vat_rate, ln.line_total) for ln in got.lines] == [
            (ln.quantity, ln.unit_price, ln.vat_rate, ln.line_total) for ln in wanted.lines
        ]
        assert (got.subtotal, got.tax_total, got.total) == (
            wanted.subtotal,
            wanted.tax_total,
            wanted.total,
        )

    async def test_lists_every_invoice_to_the_final_page(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        if "invoices" not in self.resources:
            pytest.skip("vendor has no invoices")
        pages = await collect(adapter.resource("invoices").list_changes(None))
        assert pages[-1].final
        listed = [r.external_id for r in records(pages)] + [
            s.external_id for p in pages for s in p.skipped if s.external_id
        ]
        assert len(listed) == len(set(listed))
        assert len(listed) == await vendor_side.count("invoices")

    # ------------------------------------------------------------------ faults

    async def test_a_full_listing_completes_under_faults(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        contacts = adapter.resource("contacts")
        clean = {r.external_id for r in records(await collect(contacts.list_changes(None)))}
        await vendor_side.set_faults(0.2, READ_FAULTS)
        faulty = {r.external_id for r in records(await collect(contacts.list_changes(None)))}
        await vendor_side.set_faults(0.0, ())
        assert faulty == clean

    async def test_creates_under_faults_never_write_twice(
        self, adapter: VendorAdapter, vendor_side: VendorSide
    ) -> None:
        contacts = adapter.resource("contacts")
        before = await vendor_side.count("contacts")
        wanted = [sample_contact() for _ in range(15)]
        await vendor_side.set_faults(0.2, WRITE_FAULTS)
        for value in wanted:
            await create_settled(contacts, value, client_token=f"ct-fault-{next(_serial)}")
        await vendor_side.set_faults(0.0, ())
        assert await vendor_side.count("contacts") == before + len(wanted)
        listed = records(await collect(contacts.list_changes(None)))
        assert all(isinstance(r.value, Contact) for r in listed)
        names = [r.value.name for r in listed if isinstance(r.value, Contact)]
        for value in wanted:
            assert names.count(value.name) == 1, f"{value.name} exists exactly once"

    # ------------------------------------------------------------------ auth

    async def test_wrong_credentials_raise_auth_failed(self, bad_adapter: VendorAdapter) -> None:
        with pytest.raises(AuthFailed):
            await bad_adapter.verify()
        with pytest.raises(AuthFailed):
            await collect(bad_adapter.resource("contacts").list_changes(None))

    async def test_verify_passes_with_good_credentials(self, adapter: VendorAdapter) -> None:
        await adapter.verify()


READ_FAULTS = ("rate_limit", "server_error", "unavailable", "reset", "garbled", "html")
WRITE_FAULTS = ("rate_limit", "server_error", "unavailable", "reset", "lost_response")


async def create_settled(
    resource: ResourceAdapter, value: Contact, *, client_token: str, attempts: int = 20
) -> VendorRecord:
    """Create the way the engine does: an uncertain outcome is looked up before any retry."""
    for _ in range(attempts):
        try:
            return await resource.create(value, client_token=client_token)
        except Uncertain:
            found = await _find_retrying(resource, value, client_token)
            if found is not None:
                return found
        except Retryable:
            continue
    raise AssertionError(f"could not create {value.name} in {attempts} attempts")


async def _find_retrying(
    resource: ResourceAdapter, value: Contact, client_token: str
) -> VendorRecord | None:
    for _ in range(20):
        try:
            return await resource.find(client_token=client_token, natural_key=value)
        except Retryable:
            continue
    raise AssertionError("find kept failing")


def contacts_page(adapter: VendorAdapter) -> int:
    """The page size the adapter really uses for contacts (for tests that need 2+ pages)."""
    size = getattr(adapter.resource("contacts"), "page_size", None)
    return int(size) if isinstance(size, int) else adapter.capabilities.max_page_size


def _as_dict(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in contact.__dataclass_fields__}
