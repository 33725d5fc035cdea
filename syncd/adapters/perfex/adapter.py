"""Perfex CRM adapter: contacts (customers + primary contact), invoices and payments.

Perfex keeps no modification times, so every listing is a full snapshot; the engine skips
records whose fingerprint it already holds. Checkpoints are row offsets into the listing
(``{"offset": n}``); the final page's checkpoint is ``{}``: the next pass lists everything.

Cost per full pass, in API calls: contacts ``ceil(customers / page) + ceil(primary contacts /
100)`` (primary contacts are listed once per pass, not per customer: Perfex allows 1000
requests an hour); invoices ``ceil(invoices / page)`` plus one detail read per invoice whose
list row changed since it was last read (list rows carry no lines and no payments). A cached
detail is read again after ``detail_max_age`` seconds anyway, so a line-text edit that keeps
every total, or a further partial payment, shows up within that time.

Client tokens: invoices carry ours in ``adminnote``, payments in ``note`` (as ``syncd:<token>``);
customers have no free field the API round-trips, so contacts are found by natural key
(company name, VAT number, primary e-mail).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

from syncd.adapters.base import (
    Canonical,
    Capabilities,
    Checkpoint,
    IdVersion,
    Lane,
    Page,
    Resource,
    ResourceAdapter,
    Skipped,
    VendorRecord,
)
from syncd.adapters.perfex.client import MAX_PAGE_SIZE, ListPage, PerfexClient, created_id
from syncd.adapters.perfex.mapping import (
    CUSTOMER_KEYS_BY_FIELD,
    DEFAULT_NUMBER_PADDING,
    PRIMARY_KEYS_BY_FIELD,
    Countries,
    Currencies,
    PaymentModes,
    Taxes,
    UnknownLookup,
    contact_from_canonical,
    contact_to_canonical,
    customer_id,
    format_invoice_number,
    invoice_from_canonical,
    invoice_has_token,
    invoice_id,
    invoice_item_ids,
    invoice_to_canonical,
    invoice_update_body,
    payment_from_canonical,
    payment_has_token,
    payment_id,
    payment_to_canonical,
    primary_contact,
    wants_cancel,
)
from syncd.core.model import (
    CONTACT_FIELDS,
    INVOICE_FIELDS,
    PAYMENT_FIELDS,
    Contact,
    Invoice,
    Payment,
    clean_text,
    normalise,
    normalise_code,
)
from syncd.errors import NotFound, Retryable, SkipRecord, Uncertain

__all__ = ["CAPABILITIES", "PerfexAdapter"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

CAPABILITIES = Capabilities(
    change_detection="snapshot",
    removal={"contacts": "archive", "invoices": "archive", "payments": "delete"},
    writable_fields={
        "contacts": frozenset(
            {
                "kind",
                "name",
                "first_name",
                "last_name",
                "email",
                "phone",
                "website",
                "address_line1",
                "address_line2",
                "postal_code",
                "city",
                "region",
                "country",
                "vat_number",
                "archived",
            }
        ),
        "invoices": frozenset(
            {
                "number",
                "contact",
                "issue_date",
                "due_date",
                "currency",
                "status",
                "lines",
                "subtotal",
                "tax_total",
                "total",
            }
        ),
        "payments": frozenset({"invoice", "date", "amount", "method", "reference"}),
    },
    # Perfex does not lock a sent invoice: an admin (and the API) may still edit all of it.
    sent_invoice_mutable_fields=frozenset(
        {
            "number",
            "contact",
            "issue_date",
            "due_date",
            "currency",
            "status",
            "lines",
            "subtotal",
            "tax_total",
            "total",
        }
    ),
    max_page_size=MAX_PAGE_SIZE,
    webhooks=True,  # POST /webhooks, signed X-Webhook-Signature; a hint only, never relied on
    client_token_field={"contacts": None, "invoices": "adminnote", "payments": "note"},
    assigns_invoice_numbers=False,
)

_PRIMARY_KEYS = ("id", "userid", "is_primary", "firstname", "lastname", "email", "phonenumber")
# Keys only a detail read carries; the rest is what a list row carries too.
_DETAIL_ONLY = frozenset(
    {
        "items",
        "payments",
        "client",
        "total_left_to_pay",
        "attachments",
        "scheduled_email",
        "project_data",
    }
)
_DIGITS = re.compile(r"[0-9]{1,18}")
_UNCERTAIN_AFTER_CREATE = (Retryable, NotFound, Uncertain)


# --------------------------------------------------------------------------- helpers


def _offset(cursor: Checkpoint | None) -> int:
    if not cursor:
        return 0
    value = cursor.get("offset")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _checkpoint(next_offset: int, final: bool) -> Checkpoint:
    return {} if final else {"offset": next_offset}


def _as_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return format(value, "f") if not isinstance(value, str | int) else str(value)


def _differs(stored: object, wanted: object) -> bool:
    return _as_text(stored) != _as_text(wanted)


def _answer_row(answer: Any, key: str, expected: str) -> dict[str, Any] | None:
    """The record in a write answer when it is the one we wrote (else None: read it back)."""
    if isinstance(answer, Mapping):
        data = answer.get("data")
        if isinstance(data, Mapping) and str(data.get(key)) == expected:
            return dict(data)
    return None


def _skipped(exc: SkipRecord, row: object, fallback_id: str | None = None) -> Skipped:
    payload: Mapping[str, Any] | str = row if isinstance(row, Mapping) else repr(row)[:2000]
    return Skipped(external_id=exc.external_id or fallback_id, reason=exc.reason, payload=payload)


def _raw_id(row: object, *keys: str) -> str | None:
    if isinstance(row, Mapping):
        for key in keys:
            value = row.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
    return None


def _unseen(rows: list[Any], seen: set[str], *keys: str) -> list[Any]:
    """Rows whose id this pass has not listed yet (rows shift between pages on inserts)."""
    fresh: list[Any] = []
    for row in rows:
        ref = _raw_id(row, *keys)
        if ref is not None:
            if ref in seen:
                continue
            seen.add(ref)
        fresh.append(row)
    return fresh


def _signature(row: Mapping[str, Any]) -> str:
    """A hash of an invoice's list-level columns: equal rows need no new detail read."""
    header = {k: v for k, v in row.items() if k not in _DETAIL_ONLY}
    text = json.dumps(header, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def _paged(
    fetch: Callable[[int, int], Awaitable[ListPage]], *, offset: int, limit: int
) -> AsyncIterator[tuple[list[Any], int, bool]]:
    """``(rows, offset after them, final)`` per vendor page, starting at row ``offset``.

    Stops on a short page, on the vendor's total, on ``has_more: false``, and on a page
    that repeats the previous one (the Themesic module clamps a page beyond the last).
    """
    previous: list[Any] | None = None
    while True:
        page, skip = divmod(offset, limit)
        found = await fetch(page + 1, limit)
        if previous is not None and found.rows and found.rows == previous:
            yield [], offset, True
            return
        previous = found.rows
        end = page * limit + len(found.rows)
        final = (
            len(found.rows) < limit
            or found.has_more is False
            or (found.total is not None and end >= found.total)
        )
        yield found.rows[skip:], max(end, offset), final
        if final:
            return
        offset = end


# --------------------------------------------------------------------------- shared state


class _Lookups:
    """Perfex lookup tables, read once per adapter and again when a write misses one."""

    def __init__(
        self, client: PerfexClient, clock: Callable[[], float], refresh_after: float
    ) -> None:
        self._client = client
        self._clock = clock
        self._refresh_after = refresh_after
        self._countries: tuple[float, Countries] | None = None
        self._currencies: tuple[float, Currencies] | None = None
        self._taxes: tuple[float, Taxes] | None = None
        self._modes: tuple[float, PaymentModes] | None = None

    async def countries(self, lane: Lane) -> Countries:
        if self._countries is None:
            rows = await self._client.countries(lane=lane)
            self._countries = (self._clock(), Countries.from_rows(rows))
        return self._countries[1]

    async def currencies(self, lane: Lane) -> Currencies:
        if self._currencies is None:
            rows = await self._client.currencies(lane=lane)
            self._currencies = (self._clock(), Currencies.from_rows(rows))
        return self._currencies[1]

    async def taxes(self, lane: Lane) -> Taxes:
        if self._taxes is None:
            rows = await self._client.taxes(lane=lane)
            self._taxes = (self._clock(), Taxes.from_rows(rows))
        return self._taxes[1]

    async def payment_modes(self, lane: Lane) -> PaymentModes:
        if self._modes is None:
            rows = await self._client.payment_modes(lane=lane)
            self._modes = (self._clock(), PaymentModes.from_rows(rows))
        return self._modes[1]

    def forget_stale(self) -> bool:
        """Drop the write-side tables read longer ago than ``refresh_after``; True if any."""
        now = self._clock()
        stale = False
        if self._currencies is not None and now - self._currencies[0] >= self._refresh_after:
            self._currencies, stale = None, True
        if self._taxes is not None and now - self._taxes[0] >= self._refresh_after:
            self._taxes, stale = None, True
        if self._modes is not None and now - self._modes[0] >= self._refresh_after:
            self._modes, stale = None, True
        return stale


async def _with_lookups(lookups: _Lookups, build: Callable[[], Awaitable[_T]]) -> _T:
    """``build()``; when it needs a tax or currency Perfex lacks, re-read stale tables once."""
    try:
        return await build()
    except UnknownLookup:
        if not lookups.forget_stale():
            raise
    return await build()


class _DetailCache:
    """Invoice detail records by id, valid while the list row is unchanged and not too old."""

    def __init__(self, clock: Callable[[], float], max_age: float, max_entries: int) -> None:
        self._clock = clock
        self._max_age = max_age
        self._max_entries = max_entries
        self._entries: OrderedDict[str, tuple[str, float, VendorRecord]] = OrderedDict()

    def get(self, external_id: str, signature: str) -> VendorRecord | None:
        entry = self._entries.get(external_id)
        if entry is None:
            return None
        stored, read_at, record = entry
        if stored != signature or self._clock() - read_at >= self._max_age:
            return None
        self._entries.move_to_end(external_id)
        return record

    def put(self, external_id: str, signature: str, record: VendorRecord) -> None:
        self._entries[external_id] = (signature, self._clock(), record)
        self._entries.move_to_end(external_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def drop(self, external_id: str) -> None:
        self._entries.pop(external_id, None)


class _Base:
    """What every Perfex resource shares: the client, lookups and a page size."""

    def __init__(self, owner: PerfexAdapter) -> None:
        self._owner = owner
        self._client = owner.client
        self._lookups = owner.lookups
        self.page_size = MAX_PAGE_SIZE

    def _limit(self) -> int:
        return max(1, min(int(self.page_size), MAX_PAGE_SIZE))


# --------------------------------------------------------------------------- contacts


class PerfexContacts(_Base):
    """Perfex customers, each with its primary contact folded in."""

    resource: Resource = "contacts"

    async def _primaries(self, lane: Lane) -> dict[str, dict[str, Any]]:
        """Every customer's primary contact (the few columns the mapping reads)."""
        found: dict[str, dict[str, Any]] = {}

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.contacts(page=page, limit=limit, primary_only=True, lane=lane)

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            for row in rows:
                if isinstance(row, Mapping) and row.get("is_primary") in ("1", 1, True):
                    owner = _raw_id(row, "userid")
                    if owner is not None:
                        found.setdefault(owner, {k: row.get(k) for k in _PRIMARY_KEYS})
        return found

    async def _primary_of(self, customer: str, lane: Lane) -> Mapping[str, Any] | None:
        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.contacts(
                page=page, limit=limit, customer_id=customer, primary_only=True, lane=lane
            )

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            match = primary_contact(rows, customer)
            if match is not None:
                return match
        return None

    @staticmethod
    def _record(
        customer: Mapping[str, Any], primary: Mapping[str, Any] | None, countries: Countries
    ) -> VendorRecord:
        value = contact_to_canonical(customer, primary, countries)
        extra = {} if primary is None else {"primary_contact_id": _raw_id(primary, "id")}
        return VendorRecord(external_id=customer_id(customer), value=value, extra=extra)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Every customer (a snapshot), resuming at the checkpoint's offset."""
        calls = self._client.calls
        countries = await self._lookups.countries(lane)
        primaries = await self._primaries(lane)
        seen: set[str] = set()

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.customers(page=page, limit=limit, lane=lane)

        async for rows, next_offset, final in _paged(
            fetch, offset=_offset(cursor), limit=self._limit()
        ):
            records: list[VendorRecord] = []
            skipped: list[Skipped] = []
            for row in _unseen(rows, seen, "userid"):
                try:
                    owner = customer_id(row)
                    records.append(self._record(row, primaries.get(owner), countries))
                except SkipRecord as exc:
                    skipped.append(_skipped(exc, row, _raw_id(row, "userid")))
            now = self._client.calls
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=_checkpoint(next_offset, final),
                final=final,
                api_calls=now - calls,
            )
            calls = now

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every customer id; inactive customers are flagged archived."""

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.customers(page=page, limit=limit, lane=lane)

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            batch = [
                IdVersion(external_id=ref, archived=row.get("active") in ("0", 0, False))
                for row in rows
                if isinstance(row, Mapping) and (ref := _raw_id(row, "userid")) is not None
            ]
            yield batch

    async def _read(self, external_id: str, lane: Lane) -> VendorRecord | None:
        try:
            customer = await self._client.customer(external_id, lane=lane)
        except NotFound:
            return None
        primary = await self._primary_of(external_id, lane)
        return self._record(customer, primary, await self._lookups.countries(lane))

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One customer with its primary contact, or None."""
        return await self._read(external_id, lane)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """``POST /customers`` (with the e-mail, as the v1 reference shows), then the primary
        contact if Perfex did not make one from it. Customers hold no client token."""
        if not isinstance(value, Contact):
            raise TypeError(f"perfex contacts take a Contact, not {type(value).__name__}")
        countries = await self._lookups.countries("push")
        write = contact_from_canonical(value, countries)
        body: dict[str, Any] = dict(write.customer)
        if write.primary is not None:
            body.update({k: write.primary[k] for k in ("email", "firstname", "lastname")})
        answer = await self._client.create_customer(body)
        new_id = created_id(answer, "userid")
        if new_id is None:
            raise Uncertain("perfex created a customer without saying its id; look it up")
        try:
            customer = _answer_row(answer, "userid", new_id)
            if customer is None:
                customer = await self._client.customer(new_id, lane="push")
            primary = await self._primary_of(new_id, "push")
            if write.primary is not None and primary is None:
                primary = await self._add_primary(new_id, write.primary)
        except _UNCERTAIN_AFTER_CREATE as exc:
            raise Uncertain(
                f"perfex customer {new_id} was created, but reading it back failed ({exc})"
            ) from None
        return self._record(customer, primary, countries)

    async def _add_primary(
        self, customer: str, fields: Mapping[str, str]
    ) -> Mapping[str, Any] | None:
        """Create the primary contact; a refusal leaves the customer without one (logged)."""
        try:
            answer = await self._client.create_contact(
                {"userid": int(customer), **fields, "is_primary": "1"}
            )
        except SkipRecord as exc:
            logger.warning(
                "perfex refused the primary contact of customer %s: %s", customer, exc.reason
            )
            return None
        row = _answer_row(answer, "userid", customer)
        if row is not None and row.get("is_primary") in ("1", 1, True):
            return row
        return await self._primary_of(customer, "push")

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """Write ``fields``: customer columns by ``PUT /customers``, e-mail, names and phone on
        the primary contact (created when missing)."""
        if not isinstance(value, Contact):
            raise TypeError(f"perfex contacts take a Contact, not {type(value).__name__}")
        countries = await self._lookups.countries("push")
        customer = await self._client.customer(external_id, lane="push")
        primary = await self._primary_of(external_id, "push")
        current = contact_to_canonical(customer, primary, countries)
        wanted = normalise(value)
        asked = [f for f in sorted(fields) if f in CONTACT_FIELDS]
        merged = dataclasses.replace(current, **{f: getattr(wanted, f) for f in asked})
        write = contact_from_canonical(merged, countries)

        customer_keys = {k for f in asked for k in CUSTOMER_KEYS_BY_FIELD.get(f, ())}
        changes = {
            k: write.customer[k]
            for k in sorted(customer_keys)
            if _differs(customer.get(k), write.customer[k])
        }
        if changes:
            answer = await self._client.update_customer(external_id, changes)
            customer = _answer_row(answer, "userid", external_id) or await self._client.customer(
                external_id, lane="push"
            )
        primary_keys = {k for f in asked for k in PRIMARY_KEYS_BY_FIELD.get(f, ())}
        if write.primary is not None and primary_keys:
            if primary is None:
                primary = await self._add_primary(external_id, write.primary)
            else:
                contact_changes = {
                    k: write.primary[k]
                    for k in sorted(primary_keys)
                    if _differs(primary.get(k), write.primary[k])
                }
                contact_ref = _raw_id(primary, "id")
                if contact_changes and contact_ref is not None:
                    # The e-mail address goes along every time: some versions require it.
                    contact_changes["email"] = write.primary["email"]
                    answer = await self._client.update_contact(contact_ref, contact_changes)
                    primary = _answer_row(answer, "id", contact_ref) or await self._primary_of(
                        external_id, "push"
                    )
        return self._record(customer, primary, countries)

    async def remove(self, external_id: str) -> None:
        """Archive: Perfex's "inactive" customer (deleting one would orphan its invoices)."""
        try:
            await self._client.update_customer(external_id, {"active": "0"})
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By natural key: same company name (and VAT number where both have one), then the
        primary e-mail. Several matches: the one with that e-mail, else the newest."""
        if not isinstance(natural_key, Contact):
            return None
        key = normalise(natural_key)
        candidates: dict[str, Mapping[str, Any]] = {}
        for term in dict.fromkeys(t for t in (key.vat_number, key.name) if t):
            async for row in self._search_customers(term):
                if self._matches(row, key):
                    candidates[customer_id(row)] = row
        if not candidates and key.email:
            for owner in await self._owners_of_email(key.email):
                try:
                    row = await self._client.customer(owner, lane="push")
                except NotFound:
                    continue
                if self._matches(row, key):
                    candidates[owner] = row
        if not candidates:
            return None
        countries = await self._lookups.countries("push")
        records = [
            self._record(row, await self._primary_of(ref, "push"), countries)
            for ref, row in candidates.items()
        ]
        by_email = [
            r for r in records if key.email and getattr(r.value, "email", None) == key.email
        ]
        pool = by_email or records
        return max(pool, key=lambda r: int(r.external_id))

    @staticmethod
    def _matches(row: Mapping[str, Any], key: Contact) -> bool:
        company = clean_text(row.get("company") if isinstance(row.get("company"), str) else None)
        if company is None or company.casefold() != key.name.casefold():
            return False
        vat = row.get("vat")
        stored = normalise_code(vat) if isinstance(vat, str) else None
        return key.vat_number is None or stored is None or stored == key.vat_number

    async def _search_customers(self, term: str) -> AsyncIterator[Mapping[str, Any]]:
        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.customers(page=page, limit=limit, search=term, lane="push")

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            for row in rows:
                if isinstance(row, Mapping) and _raw_id(row, "userid") is not None:
                    yield row

    async def _owners_of_email(self, email: str) -> list[str]:
        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.contacts(
                page=page, limit=limit, primary_only=True, search=email, lane="push"
            )

        owners: list[str] = []
        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            for row in rows:
                if isinstance(row, Mapping) and isinstance(row.get("email"), str):
                    owner = _raw_id(row, "userid")
                    if owner and row["email"].strip().lower() == email and owner not in owners:
                        owners.append(owner)
        return owners


# --------------------------------------------------------------------------- invoices


class PerfexInvoices(_Base):
    """Perfex invoices with their items and payments."""

    resource: Resource = "invoices"

    def __init__(self, owner: PerfexAdapter, cache: _DetailCache, number_padding: int) -> None:
        super().__init__(owner)
        self._cache = cache
        self._padding = number_padding

    def _record(self, detail: Mapping[str, Any], currencies: Currencies) -> VendorRecord:
        value = invoice_to_canonical(detail, currencies, number_padding=self._padding)
        record = VendorRecord(external_id=invoice_id(detail), value=value)
        self._cache.put(record.external_id, _signature(detail), record)
        return record

    async def _detail(
        self, row: Mapping[str, Any], currencies: Currencies, lane: Lane
    ) -> VendorRecord | None:
        external_id = invoice_id(row)
        cached = self._cache.get(external_id, _signature(row))
        if cached is not None:
            return cached
        try:
            detail = await self._client.invoice(external_id, lane=lane)
        except NotFound:
            return None  # deleted since it was listed
        return self._record(detail, currencies)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Every invoice (a snapshot); details are read only for changed list rows."""
        calls = self._client.calls
        currencies = await self._lookups.currencies(lane)
        seen: set[str] = set()

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.invoices(page=page, limit=limit, lane=lane)

        async for rows, next_offset, final in _paged(
            fetch, offset=_offset(cursor), limit=self._limit()
        ):
            records: list[VendorRecord] = []
            skipped: list[Skipped] = []
            for row in _unseen(rows, seen, "id"):
                try:
                    record = await self._detail(_as_row(row), currencies, lane)
                except SkipRecord as exc:
                    skipped.append(_skipped(exc, row, _raw_id(row, "id")))
                    continue
                if record is not None:
                    records.append(record)
            now = self._client.calls
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=_checkpoint(next_offset, final),
                final=final,
                api_calls=now - calls,
            )
            calls = now

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every invoice id; cancelled invoices are flagged archived (our removal cancels)."""

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.invoices(page=page, limit=limit, lane=lane)

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            yield [
                IdVersion(external_id=ref, archived=str(row.get("status")) == "5")
                for row in rows
                if isinstance(row, Mapping) and (ref := _raw_id(row, "id")) is not None
            ]

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One invoice with its lines, or None."""
        try:
            detail = await self._client.invoice(external_id, lane=lane)
        except NotFound:
            self._cache.drop(external_id)
            return None
        return self._record(detail, await self._lookups.currencies(lane))

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """``POST /invoices`` with lines, Perfex tax names and our token in ``adminnote``."""
        if not isinstance(value, Invoice):
            raise TypeError(f"perfex invoices take an Invoice, not {type(value).__name__}")

        async def build() -> dict[str, Any]:
            return invoice_from_canonical(
                value,
                await self._lookups.currencies("push"),
                await self._lookups.taxes("push"),
                client_token=client_token,
            )

        body = await _with_lookups(self._lookups, build)
        currencies = await self._lookups.currencies("push")
        answer = await self._client.create_invoice(body)
        new_id = created_id(answer, "id")
        if new_id is None:
            raise Uncertain("perfex created an invoice without saying its id; look it up")
        try:
            detail = _answer_row(answer, "id", new_id)
            if detail is None or not isinstance(detail.get("items"), list):
                detail = await self._client.invoice(new_id, lane="push")
            if wants_cancel(value):
                answer = await self._client.update_invoice(new_id, {"status": 5})
                detail = _answer_row(answer, "id", new_id)
                if detail is None or not isinstance(detail.get("items"), list):
                    detail = await self._client.invoice(new_id, lane="push")
        except _UNCERTAIN_AFTER_CREATE as exc:
            raise Uncertain(
                f"perfex invoice {new_id} was created, but reading it back failed ({exc})"
            ) from None
        return self._record(detail, currencies)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """``PUT /invoices/{id}`` with the changed fields (lines rewritten in place)."""
        if not isinstance(value, Invoice):
            raise TypeError(f"perfex invoices take an Invoice, not {type(value).__name__}")
        currencies = await self._lookups.currencies("push")
        detail = await self._client.invoice(external_id, lane="push")
        current = invoice_to_canonical(detail, currencies, number_padding=self._padding)
        wanted = normalise(value)
        asked = frozenset(f for f in fields if f in INVOICE_FIELDS)
        merged = dataclasses.replace(current, **{f: getattr(wanted, f) for f in asked})

        async def build() -> dict[str, Any]:
            return invoice_update_body(
                current,
                merged,
                asked,
                await self._lookups.currencies("push"),
                await self._lookups.taxes("push"),
                invoice_item_ids(detail),
            )

        body = await _with_lookups(self._lookups, build)
        if body:
            answer = await self._client.update_invoice(external_id, body)
            fresh = _answer_row(answer, "id", external_id)
            if fresh is None or not isinstance(fresh.get("items"), list):
                fresh = await self._client.invoice(external_id, lane="push")
            detail = fresh
        return self._record(detail, currencies)

    async def remove(self, external_id: str) -> None:
        """Cancel (status 5): Perfex deletes only its most recent invoice, by default."""
        self._cache.drop(external_id)
        try:
            await self._client.update_invoice(external_id, {"status": 5})
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By our token in ``adminnote``, else by number within the natural key's contact."""
        key = normalise(natural_key) if isinstance(natural_key, Invoice) else None
        if client_token is None and (key is None or key.number is None or key.contact is None):
            return None
        customer = key.contact if key is not None else None
        best: str | None = None

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.invoices(page=page, limit=limit, customer_id=customer, lane="push")

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            for raw in rows:
                row = _as_row(raw)
                ref = _raw_id(row, "id")
                if ref is None or not _DIGITS.fullmatch(ref):
                    continue
                if client_token is not None:
                    hit = invoice_has_token(row, client_token)
                else:
                    assert key is not None
                    hit = self._number_of(row) == key.number and (
                        key.contact is None or str(row.get("clientid")) == key.contact
                    )
                if hit and (best is None or int(ref) > int(best)):
                    best = ref
        return None if best is None else await self.get(best, lane="push")

    def _number_of(self, row: Mapping[str, Any]) -> str | None:
        number, prefix, date = row.get("number"), row.get("prefix"), row.get("date")
        if not isinstance(number, str | int) or str(row.get("status")) == "6":
            return None
        try:
            issued = _row_date(date)
        except ValueError:
            return None
        fmt = row.get("number_format")
        return format_invoice_number(
            prefix if isinstance(prefix, str) else "",
            str(int(str(number))) if _DIGITS.fullmatch(str(number)) else str(number),
            fmt if isinstance(fmt, str) else None,
            issued,
            self._padding,
        )


def _as_row(row: object) -> Mapping[str, Any]:
    if not isinstance(row, Mapping):
        raise SkipRecord(f"listed row is a {type(row).__name__}, not an object")
    return row


def _row_date(value: object) -> dt.date:
    """An invoice row's ``date`` as a date (ValueError when it is not one)."""
    if not isinstance(value, str):
        raise ValueError("no date")
    return dt.date.fromisoformat(value[:10])


# --------------------------------------------------------------------------- payments


class PerfexPayments(_Base):
    """Payments recorded against Perfex invoices."""

    resource: Resource = "payments"

    async def _record(self, row: Mapping[str, Any], lane: Lane) -> VendorRecord:
        value = payment_to_canonical(row, await self._lookups.payment_modes(lane))
        return VendorRecord(external_id=payment_id(row), value=value)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Every payment (a snapshot)."""
        calls = self._client.calls
        modes = await self._lookups.payment_modes(lane)
        seen: set[str] = set()

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.payments(page=page, limit=limit, lane=lane)

        async for rows, next_offset, final in _paged(
            fetch, offset=_offset(cursor), limit=self._limit()
        ):
            records: list[VendorRecord] = []
            skipped: list[Skipped] = []
            for row in _unseen(rows, seen, "paymentid", "id"):
                try:
                    data = _as_row(row)
                    records.append(
                        VendorRecord(payment_id(data), payment_to_canonical(data, modes))
                    )
                except SkipRecord as exc:
                    skipped.append(_skipped(exc, row, _raw_id(row, "paymentid", "id")))
            now = self._client.calls
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=_checkpoint(next_offset, final),
                final=final,
                api_calls=now - calls,
            )
            calls = now

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every payment id."""

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.payments(page=page, limit=limit, lane=lane)

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            batch: list[IdVersion] = []
            for row in rows:
                try:
                    batch.append(IdVersion(external_id=payment_id(row)))
                except SkipRecord:
                    continue
            yield batch

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One payment, or None."""
        try:
            row = await self._client.payment(external_id, lane=lane)
        except NotFound:
            return None
        return await self._record(row, lane)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """``POST /payments`` with our token in ``note``; Perfex recomputes the invoice status."""
        if not isinstance(value, Payment):
            raise TypeError(f"perfex payments take a Payment, not {type(value).__name__}")

        async def build() -> dict[str, Any]:
            modes = await self._lookups.payment_modes("push")
            return payment_from_canonical(value, modes, client_token=client_token)

        body = await _with_lookups(self._lookups, build)
        answer = await self._client.create_payment(body)
        new_id = created_id(answer, "paymentid")
        if new_id is None:
            raise Uncertain("perfex recorded a payment without saying its id; look it up")
        try:
            row = _answer_row(answer, "paymentid", new_id) or _answer_row(answer, "id", new_id)
            if row is None:
                row = await self._client.payment(new_id, lane="push")
        except _UNCERTAIN_AFTER_CREATE as exc:
            raise Uncertain(
                f"perfex payment {new_id} was recorded, but reading it back failed ({exc})"
            ) from None
        return await self._record(row, "push")

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """``PUT /payments/{id}`` with the changed fields (a payment never moves invoice)."""
        if not isinstance(value, Payment):
            raise TypeError(f"perfex payments take a Payment, not {type(value).__name__}")
        asked = {f for f in fields if f in PAYMENT_FIELDS and f != "invoice"}
        modes = await self._lookups.payment_modes("push")
        row = await self._client.payment(external_id, lane="push")
        current = payment_to_canonical(row, modes)
        merged = dataclasses.replace(
            current, **{f: getattr(normalise(value), f) for f in sorted(asked)}
        )
        full = payment_from_canonical(merged, modes)
        keys = {
            "amount": ("amount",),
            "date": ("date",),
            "method": ("paymentmode",),
            "reference": ("transactionid",),
        }
        body = {
            k: full[k]
            for f in sorted(asked)
            for k in keys.get(f, ())
            if k in full and getattr(merged, f) != getattr(current, f)
        }
        if body:
            answer = await self._client.update_payment(external_id, body)
            row = (
                _answer_row(answer, "paymentid", external_id)
                or _answer_row(answer, "id", external_id)
                or await self._client.payment(external_id, lane="push")
            )
        return await self._record(row, "push")

    async def remove(self, external_id: str) -> None:
        """``DELETE /payments/{id}``; Perfex recomputes the invoice status."""
        try:
            await self._client.delete_payment(external_id)
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By our token in ``note``, else by invoice, date, amount (and reference if any)."""
        key = normalise(natural_key) if isinstance(natural_key, Payment) else None
        if client_token is None and key is None:
            return None
        invoice = key.invoice if key is not None else None
        modes = await self._lookups.payment_modes("push")
        best: VendorRecord | None = None

        def fetch(page: int, limit: int) -> Awaitable[ListPage]:
            return self._client.payments(page=page, limit=limit, invoice_id=invoice, lane="push")

        async for rows, _, _ in _paged(fetch, offset=0, limit=MAX_PAGE_SIZE):
            for raw in rows:
                try:
                    row = _as_row(raw)
                    record = VendorRecord(payment_id(row), payment_to_canonical(row, modes))
                except SkipRecord:
                    continue
                if client_token is not None:
                    hit = payment_has_token(row, client_token)
                else:
                    assert key is not None
                    found = record.value
                    assert isinstance(found, Payment)
                    hit = (found.invoice, found.date, found.amount) == (
                        key.invoice,
                        key.date,
                        key.amount,
                    ) and (key.reference is None or found.reference == key.reference)
                if hit and (best is None or int(record.external_id) > int(best.external_id)):
                    best = record
        return best


# --------------------------------------------------------------------------- the adapter


class PerfexAdapter:
    """One Perfex CRM account (the ``/api/v1`` module)."""

    vendor = "perfex"
    capabilities = CAPABILITIES

    def __init__(
        self,
        client: PerfexClient,
        *,
        account: str,
        number_padding: int = DEFAULT_NUMBER_PADDING,
        detail_max_age: float = 3600.0,
        detail_cache_size: int = 20_000,
        lookup_refresh_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.account = account
        self.client = client
        self.lookups = _Lookups(client, clock, lookup_refresh_after)
        cache = _DetailCache(clock, detail_max_age, detail_cache_size)
        self._resources: dict[Resource, ResourceAdapter] = {
            "contacts": PerfexContacts(self),
            "invoices": PerfexInvoices(self, cache, number_padding),
            "payments": PerfexPayments(self),
        }

    def __repr__(self) -> str:
        return f"PerfexAdapter(account={self.account!r})"

    def resource(self, name: Resource) -> ResourceAdapter:
        """The adapter for ``name`` (contacts, invoices or payments)."""
        return self._resources[name]

    async def verify(self) -> None:
        """One cheap authenticated call (the first customer)."""
        await self.client.customers(page=1, limit=1, lane="pull")
