"""SimplBooks adapter: contacts (clients), invoices (with rows) and payments (bound receipts).

SimplBooks is a snapshot vendor: no change timestamps, no modified-since filter. Every
``list_changes`` lists everything (the engine skips records whose fingerprint it holds);
a checkpoint ``{"offset": n}`` resumes after the first ``n`` rows of the listing, and the
final checkpoint is ``{"offset": 0}``: the next pass is a complete listing again. A page
shorter than ``per_page`` ends a listing (there are no totals). Pages are not snapshot
consistent, so a row repeated from the previous page (a shift after an insert) is dropped.

Costs, per pass: contacts ``ceil(n / page_size)`` calls; invoices one list call per page
plus one ``invoices/get`` per invoice (rows and ``remnant`` are not in list rows);
payments one list call per invoice page, one ``get_bound_receipts`` per invoice and one
``incomings/get`` per bound receipt. A payment's external id is
``"<receipt id>@<invoice id>"``: receipts do not say which invoice they are bound to, so
the id carries it and ``get`` costs two calls instead of a search.

No field carries a client token on clients: ``find`` uses the natural key (name, plus the
e-mail / registry code / VAT number it has). Invoices carry ours in ``additional_info``
and receipts in ``description`` when the record has no reference of its own.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

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
from syncd.adapters.simplbooks.client import Filter, PageTooLarge, SimplbooksClient
from syncd.adapters.simplbooks.mapping import (
    CONTACT_WRITABLE,
    INVOICE_WRITABLE,
    PAYMENT_WRITABLE,
    VatType,
    additional_info_of,
    choose_vat_type,
    client_id_of,
    client_id_of_receipt,
    contact_from_canonical,
    contact_to_canonical,
    description_of,
    invoice_from_canonical,
    invoice_list_id,
    invoice_to_canonical,
    parse_payment_id,
    payment_external_id,
    payment_from_canonical,
    payment_to_canonical,
    receipt_id_of,
    record_id,
    row_ids_of,
    vat_types_from_list,
)
from syncd.core.model import Contact, Invoice, Payment, normalise, vat_rate
from syncd.errors import NotFound, Retryable, SkipRecord, Uncertain

VENDOR: Final = "simplbooks"
MAX_PAGE_SIZE: Final = 500  # undocumented vendor cap; larger pages are refused with a 400
READ_BACK_ATTEMPTS: Final = 3
VAT_REFRESH_AFTER: Final = dt.timedelta(
    minutes=10
)  # re-read VAT types on a miss, at most this often
VENDOR_ZONE: Final = ZoneInfo("Europe/Tallinn")  # SimplBooks dates are Estonian local dates
_PAYLOAD_LIMIT: Final = 2000

CAPABILITIES: Final = Capabilities(
    change_detection="snapshot",
    removal={"contacts": "delete", "invoices": "delete", "payments": "delete"},
    writable_fields={
        "contacts": CONTACT_WRITABLE,
        "invoices": INVOICE_WRITABLE,
        "payments": PAYMENT_WRITABLE,
    },
    # Sent invoices stay editable through the API, but their amounts are booked: only
    # what does not change the booking may still move.
    sent_invoice_mutable_fields=frozenset({"status", "payments", "due_date", "reference"}),
    max_page_size=MAX_PAGE_SIZE,
    webhooks=False,
    client_token_field={"contacts": None, "invoices": "additional_info", "payments": "description"},
    assigns_invoice_numbers=True,
    # No draft state: every invoice created is numbered and open (see the vendor notes).
    invoice_drafts=False,
    # Every client is one kind of record: SimplBooks cannot say who is a person.
    contact_kinds=False,
)

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _offset(cursor: Checkpoint | None) -> int:
    raw = cursor.get("offset") if cursor else None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        return 0
    return raw


def _payload(row: Any) -> Mapping[str, Any] | str:
    return row if isinstance(row, Mapping) else repr(row)[:_PAYLOAD_LIMIT]


def _digits(external_id: str) -> int | None:
    return int(external_id) if external_id.isascii() and external_id.isdigit() else None


def _clean(text: str | None) -> str | None:
    return " ".join(text.split()) or None if text else None


def _dmy(date: dt.date) -> str:
    # The documented form of created_from / created_until.
    return date.strftime("%d-%m-%Y")


class _Shared:
    """What the resources of one account share: the client, the clock, the VAT type cache."""

    def __init__(self, client: SimplbooksClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self._vat_types: list[VatType] | None = None
        self._vat_loaded_at: dt.datetime | None = None

    def today(self) -> dt.date:
        return self.clock().astimezone(VENDOR_ZONE).date()

    async def vat_types(self, *, lane: Lane, refresh: bool = False) -> list[VatType]:
        """``vat_types/list``, read once per adapter (and again on ``refresh``)."""
        if self._vat_types is None or refresh:
            self._vat_types = vat_types_from_list(await self.client.vat_types(lane=lane))
            self._vat_loaded_at = self.clock()
        return self._vat_types

    async def vat_type_ids(
        self, rates: Iterable[Decimal], client_id: int, *, lane: Lane
    ) -> dict[Decimal, int]:
        """The vendor's VAT type id for each rate (SkipRecord for a rate it lacks)."""
        wanted = {vat_rate(r) for r in rates}
        types = await self.vat_types(lane=lane)

        def candidates(rate: Decimal) -> int:
            return sum(1 for t in types if t.active and t.is_sales and t.rate == rate)

        stale = (
            self._vat_loaded_at is None or self.clock() - self._vat_loaded_at >= VAT_REFRESH_AFTER
        )
        if stale and any(candidates(r) == 0 for r in wanted):
            types = await self.vat_types(lane=lane, refresh=True)  # a type may have been added
        preferred: int | None = None
        if any(candidates(r) > 1 for r in wanted):
            # Several types share the rate (0 %: exempt, intra-EU, export...): the client's
            # default sales VAT type decides, as it would in the SimplBooks UI.
            preferred = await self._client_vat_type(client_id, lane=lane)
        return {rate: choose_vat_type(types, rate, preferred) for rate in wanted}

    async def _client_vat_type(self, client_id: int, *, lane: Lane) -> int | None:
        try:
            data = await self.client.get("clients", client_id, lane=lane)
        except NotFound:
            raise SkipRecord(f"SimplBooks client {client_id} does not exist") from None
        client = data.get("Client") if isinstance(data, Mapping) else None
        raw = (
            client.get("client_settings_sales_vat_type_id") if isinstance(client, Mapping) else None
        )
        try:
            return int(record_id(raw, "VAT type id"))
        except SkipRecord:
            return None


class _Resource(abc.ABC):
    """Paging, read-back and removal shared by the three resources."""

    resource: Resource
    category: str

    def __init__(self, shared: _Shared, page_size: int = MAX_PAGE_SIZE) -> None:
        self.shared = shared
        self.client = shared.client
        self.page_size = page_size

    async def _pages(
        self,
        category: str,
        cursor: Checkpoint | None,
        *,
        lane: Lane,
        id_of: Callable[[Any], str],
        filters: Mapping[str, Filter] | None = None,
    ) -> AsyncIterator[tuple[list[Any], Checkpoint, bool]]:
        """Rows of ``category/list`` page by page, with the checkpoint after each page."""
        offset = _offset(cursor)
        previous: set[str] = set()
        while True:
            size = max(1, int(self.page_size))
            page, skip = divmod(offset, size)
            try:
                rows = await self.client.list_page(
                    category, page=page + 1, per_page=size, filters=filters, lane=lane
                )
            except PageTooLarge:
                if size == 1:
                    raise
                self.page_size = size // 2
                continue
            final = len(rows) < size
            offset = page * size + len(rows)
            fresh: list[Any] = []
            seen: set[str] = set()
            for row in rows[skip:]:
                try:
                    row_id = id_of(row)
                except SkipRecord:
                    fresh.append(row)  # the caller reports it as skipped
                    continue
                if row_id in previous or row_id in seen:
                    continue
                seen.add(row_id)
                fresh.append(row)
            previous = seen
            yield fresh, {"offset": 0 if final else offset}, final
            if final:
                return

    async def _scan(
        self,
        category: str,
        filters: Mapping[str, Filter],
        *,
        lane: Lane,
        id_of: Callable[[Any], str],
    ) -> AsyncIterator[Any]:
        """Every row of a filtered listing."""
        async for rows, _checkpoint, _final in self._pages(
            category, None, lane=lane, id_of=id_of, filters=filters
        ):
            for row in rows:
                yield row

    @abc.abstractmethod
    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One record by id; None when the vendor no longer has it."""

    async def _read_back(self, external_id: str) -> VendorRecord:
        """What the vendor holds after a write; Uncertain when it cannot be read."""
        for _ in range(READ_BACK_ATTEMPTS):
            try:
                record = await self.get(external_id, lane="push")
            except Retryable:
                continue
            if record is not None:
                return record
            break
        raise Uncertain(
            f"simplbooks accepted the write of {self.resource} {external_id} but it could not "
            "be read back; look it up before retrying"
        )

    async def _delete(self, record_id: int) -> None:
        try:
            await self.client.delete(self.category, record_id)
        except NotFound:
            return  # already gone: what a removal wants


# --------------------------------------------------------------------------- contacts


def _client_row_id(row: Any) -> str:
    inner = row.get("Client", row) if isinstance(row, Mapping) else row
    return record_id(inner.get("id") if isinstance(inner, Mapping) else None, "client id")


class ContactsResource(_Resource):
    """Clients: one e-mail and one phone each; no archive (removal deletes)."""

    resource: Resource = "contacts"
    category = "clients"

    def _map(self, row: Any) -> VendorRecord | Skipped:
        try:
            external_id, contact = contact_to_canonical(row)
        except SkipRecord as exc:
            return Skipped(exc.external_id, exc.reason, _payload(row))
        return VendorRecord(external_id=external_id, value=contact)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        mark = self.client.calls
        async for rows, checkpoint, final in self._pages(
            "clients", cursor, lane=lane, id_of=_client_row_id
        ):
            mapped = [self._map(row) for row in rows]
            yield Page(
                records=tuple(m for m in mapped if isinstance(m, VendorRecord)),
                skipped=tuple(m for m in mapped if isinstance(m, Skipped)),
                checkpoint=checkpoint,
                final=final,
                api_calls=self.client.calls - mark,
            )
            mark = self.client.calls

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        async for rows, _checkpoint, _final in self._pages(
            "clients", None, lane=lane, id_of=_client_row_id
        ):
            batch: list[IdVersion] = []
            for row in rows:
                try:
                    batch.append(IdVersion(_client_row_id(row)))
                except SkipRecord:
                    continue
            yield batch

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        client_id = _digits(external_id)
        if client_id is None:
            return None
        try:
            data = await self.client.get("clients", client_id, lane=lane)
        except NotFound:
            return None
        found, contact = contact_to_canonical(data)
        return VendorRecord(external_id=found, value=contact)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        contact = _expect(value, Contact)
        new_id = await self.client.create("clients", {"Client": contact_from_canonical(contact)})
        return await self._read_back(str(new_id))

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        contact = _expect(value, Contact)
        client_id = _digits(external_id)
        if client_id is None:
            raise NotFound(f"simplbooks has no client {external_id!r}")
        wanted = fields & CONTACT_WRITABLE
        if wanted:
            body = {"id": client_id, **contact_from_canonical(contact, wanted)}
            await self.client.update("clients", {"Client": body}, idempotent=True)
        record = await self.get(external_id, lane="push")
        if record is None:
            raise NotFound(f"simplbooks client {external_id} is gone")
        return record

    async def remove(self, external_id: str) -> None:
        client_id = _digits(external_id)
        if client_id is not None:
            await self._delete(client_id)  # a client with documents: SkipRecord (vendor's message)

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        if not isinstance(natural_key, Contact):
            return None
        wanted = normalise(natural_key)
        if not wanted.name:
            return None
        matches: list[VendorRecord] = []
        async for row in self._scan(
            "clients", {"name": wanted.name}, lane="push", id_of=_client_row_id
        ):
            mapped = self._map(row)
            if isinstance(mapped, VendorRecord) and _same_contact(mapped.value, wanted):
                matches.append(mapped)
        return min(matches, key=lambda r: int(r.external_id), default=None)


def _same_contact(found: Canonical, wanted: Contact) -> bool:
    if not isinstance(found, Contact) or found.name.casefold() != wanted.name.casefold():
        return False
    return all(
        getattr(found, key) == getattr(wanted, key)
        for key in ("email", "coc_number", "vat_number")
        if getattr(wanted, key) is not None
    )


# --------------------------------------------------------------------------- invoices


class InvoicesResource(_Resource):
    """Sales invoices with rows; SimplBooks numbers them and derives their status."""

    resource: Resource = "invoices"
    category = "invoices"

    async def _detail(self, invoice_id: int, *, lane: Lane) -> Any | None:
        try:
            return await self.client.get("invoices", invoice_id, lane=lane)
        except NotFound:
            return None

    def _map(self, detail: Any, payload: Any) -> VendorRecord | Skipped:
        try:
            external_id, invoice = invoice_to_canonical(detail, today=self.shared.today())
        except SkipRecord as exc:
            return Skipped(exc.external_id, exc.reason, _payload(payload))
        return VendorRecord(external_id=external_id, value=invoice)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        mark = self.client.calls
        async for rows, checkpoint, final in self._pages(
            "invoices", cursor, lane=lane, id_of=invoice_list_id
        ):
            records: list[VendorRecord] = []
            skipped: list[Skipped] = []
            for row in rows:
                try:
                    invoice_id = int(invoice_list_id(row))
                    detail = await self._detail(invoice_id, lane=lane)
                except SkipRecord as exc:
                    skipped.append(Skipped(exc.external_id, exc.reason, _payload(row)))
                    continue
                if detail is None:
                    continue  # deleted since the list call
                mapped = self._map(detail, detail)
                if isinstance(mapped, VendorRecord):
                    records.append(mapped)
                else:
                    skipped.append(mapped)
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=checkpoint,
                final=final,
                api_calls=self.client.calls - mark,
            )
            mark = self.client.calls

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        async for rows, _checkpoint, _final in self._pages(
            "invoices", None, lane=lane, id_of=invoice_list_id
        ):
            batch: list[IdVersion] = []
            for row in rows:
                try:
                    batch.append(IdVersion(invoice_list_id(row)))
                except SkipRecord:
                    continue
            yield batch

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        invoice_id = _digits(external_id)
        if invoice_id is None:
            return None
        detail = await self._detail(invoice_id, lane=lane)
        if detail is None:
            return None
        found, invoice = invoice_to_canonical(detail, today=self.shared.today())
        return VendorRecord(external_id=found, value=invoice)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        invoice = normalise(_expect(value, Invoice))
        client_id = client_id_of(invoice.contact)
        vat_ids = await self.shared.vat_type_ids(
            (line.vat_rate for line in invoice.lines), client_id, lane="push"
        )
        body = invoice_from_canonical(invoice, vat_type_ids=vat_ids, client_token=client_token)
        try:
            new_id = await self.client.create("invoices", body)
        except NotFound as exc:  # "Client with given ID does not exist."
            raise SkipRecord(str(exc)) from None
        return await self._read_back(str(new_id))

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        invoice = normalise(_expect(value, Invoice))
        invoice_id = _digits(external_id)
        if invoice_id is None:
            raise NotFound(f"simplbooks has no invoice {external_id!r}")
        wanted = fields & INVOICE_WRITABLE
        if wanted:
            row_ids: list[int] = []
            vat_ids: dict[Decimal, int] = {}
            if "lines" in wanted:
                current = await self.client.get("invoices", invoice_id, lane="push")
                row_ids = row_ids_of(current)  # rows keep their ids, articles and accounts
                if "contact" in wanted:
                    client_id = client_id_of(invoice.contact)
                else:
                    header = current.get("Invoice") if isinstance(current, Mapping) else None
                    raw = header.get("client_id") if isinstance(header, Mapping) else None
                    client_id = int(record_id(raw, f"invoice {external_id}: client_id"))
                vat_ids = await self.shared.vat_type_ids(
                    (line.vat_rate for line in invoice.lines), client_id, lane="push"
                )
            body = invoice_from_canonical(
                invoice, vat_type_ids=vat_ids, fields=wanted, row_ids=row_ids
            )
            body["Invoice"] = {"id": invoice_id, **body["Invoice"]}
            try:
                # Not resent blindly: rows without an id are added by the vendor.
                await self.client.update("invoices", body, idempotent=False)
            except NotFound as exc:
                if "client with given id" in str(exc).lower():
                    raise SkipRecord(str(exc)) from None
                raise
        record = await self.get(external_id, lane="push")
        if record is None:
            raise NotFound(f"simplbooks invoice {external_id} is gone")
        return record

    async def remove(self, external_id: str) -> None:
        invoice_id = _digits(external_id)
        if invoice_id is not None:
            await self._delete(invoice_id)

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By number when the key has one; else among the client's invoices of that date,
        by the token (or reference) in ``additional_info``, or by identical content."""
        if not isinstance(natural_key, Invoice):
            return None
        wanted = normalise(natural_key)
        token = _clean(client_token)
        if wanted.number is not None:
            async for row in self._scan(
                "invoices", {"invoice_number": wanted.number}, lane="push", id_of=invoice_list_id
            ):
                inner = row.get("invoices", row) if isinstance(row, Mapping) else {}
                number = inner.get("number") if isinstance(inner, Mapping) else None
                if _clean(str(number)) == wanted.number:
                    record = await self.get(invoice_list_id(row), lane="push")
                    if record is not None and wanted.contact in (None, _contact_of(record)):
                        return record
            return None
        if wanted.contact is None or _digits(wanted.contact) is None:
            return None
        filters: dict[str, Filter] = {"client_id": int(wanted.contact)}
        if wanted.issue_date is not None:
            filters["created_from"] = filters["created_until"] = _dmy(wanted.issue_date)
        async for row in self._scan("invoices", filters, lane="push", id_of=invoice_list_id):
            try:
                detail = await self._detail(int(invoice_list_id(row)), lane="push")
            except SkipRecord:
                continue
            if detail is None:
                continue
            mapped = self._map(detail, detail)
            if isinstance(mapped, VendorRecord) and _same_invoice(
                mapped.value, additional_info_of(detail), wanted, token
            ):
                return mapped
        return None


def _contact_of(record: VendorRecord) -> str | None:
    return record.value.contact if isinstance(record.value, Invoice) else None


def _same_invoice(found: Canonical, info: str | None, wanted: Invoice, token: str | None) -> bool:
    if not isinstance(found, Invoice) or found.contact != wanted.contact:
        return False
    if token is not None and info == token:
        return True
    if wanted.reference is not None:
        return info == wanted.reference
    if token is not None:
        return False
    # Neither token nor reference: only an invoice with the very same lines is ours.
    return (found.issue_date, found.lines) == (wanted.issue_date, wanted.lines)


# --------------------------------------------------------------------------- payments


class PaymentsResource(_Resource):
    """Receipts (``incomings``) bound to invoices; listed invoice by invoice."""

    resource: Resource = "payments"
    category = "incomings"

    async def _bound(self, invoice_id: int, *, lane: Lane) -> list[int] | None:
        try:
            return await self.client.bound_receipts(invoice_id, lane=lane)
        except NotFound:
            return None

    async def _receipt(self, receipt_id: int, *, lane: Lane) -> Any | None:
        try:
            return await self.client.get("incomings", receipt_id, lane=lane)
        except NotFound:
            return None

    async def _invoice_pages(
        self, cursor: Checkpoint | None, *, lane: Lane
    ) -> AsyncIterator[tuple[list[tuple[int, list[int]]], list[Skipped], Checkpoint, bool]]:
        """Per invoice page: (invoice id, bound receipt ids) pairs, unreadable rows, checkpoint."""
        async for rows, checkpoint, final in self._pages(
            "invoices", cursor, lane=lane, id_of=invoice_list_id
        ):
            pairs: list[tuple[int, list[int]]] = []
            skipped: list[Skipped] = []
            for row in rows:
                try:
                    invoice_id = int(invoice_list_id(row))
                except SkipRecord as exc:
                    skipped.append(Skipped(None, f"invoice list row: {exc.reason}", _payload(row)))
                    continue
                bound = await self._bound(invoice_id, lane=lane)
                if bound:
                    pairs.append((invoice_id, bound))
            yield pairs, skipped, checkpoint, final

    def _map(self, data: Any, invoice_id: int, fallback_id: str) -> VendorRecord | Skipped:
        try:
            external_id, payment = payment_to_canonical(data, invoice_id)
        except SkipRecord as exc:
            return Skipped(exc.external_id or fallback_id, exc.reason, _payload(data))
        return VendorRecord(external_id=external_id, value=payment)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        mark = self.client.calls
        async for pairs, skipped, checkpoint, final in self._invoice_pages(cursor, lane=lane):
            records: list[VendorRecord] = []
            for invoice_id, receipts in pairs:
                for receipt_id in receipts:
                    data = await self._receipt(receipt_id, lane=lane)
                    if data is None:
                        continue
                    mapped = self._map(
                        data, invoice_id, payment_external_id(receipt_id, invoice_id)
                    )
                    if isinstance(mapped, VendorRecord):
                        records.append(mapped)
                    else:
                        skipped.append(mapped)
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=checkpoint,
                final=final,
                api_calls=self.client.calls - mark,
            )
            mark = self.client.calls

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        async for pairs, _skipped, _checkpoint, _final in self._invoice_pages(None, lane=lane):
            yield [
                IdVersion(payment_external_id(receipt_id, invoice_id))
                for invoice_id, receipts in pairs
                for receipt_id in receipts
            ]

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        ids = parse_payment_id(external_id)
        if ids is None:
            return None
        receipt_id, invoice_id = ids
        bound = await self._bound(invoice_id, lane=lane)
        if bound is None or receipt_id not in bound:
            return None  # no longer a payment of that invoice
        data = await self._receipt(receipt_id, lane=lane)
        if data is None:
            return None
        found, payment = payment_to_canonical(data, invoice_id)
        return VendorRecord(external_id=found, value=payment)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        payment = normalise(_expect(value, Payment))
        invoice_id = _digits(payment.invoice or "")
        if invoice_id is None:
            raise SkipRecord(
                f"payment invoice {payment.invoice!r} is not a SimplBooks invoice id; "
                "link the invoice first"
            )
        body = {
            "Incoming": payment_from_canonical(payment, client_token=client_token),
            "invoice_id": invoice_id,
        }
        try:
            new_id = await self.client.create("incomings", body)
        except NotFound as exc:  # "Invoice with given ID does not exist."
            raise SkipRecord(str(exc)) from None
        return await self._read_back(payment_external_id(new_id, invoice_id))

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        payment = normalise(_expect(value, Payment))
        ids = parse_payment_id(external_id)
        if ids is None:
            raise NotFound(f"simplbooks has no payment {external_id!r}")
        receipt_id, invoice_id = ids
        wanted = fields & PAYMENT_WRITABLE
        if "invoice" in wanted and payment.invoice != str(invoice_id):
            raise SkipRecord(
                "moving a SimplBooks receipt to another invoice is not supported; "
                "remove the payment and create it on the other invoice"
            )
        wanted -= {"invoice"}
        if wanted:
            body = {"id": receipt_id, **payment_from_canonical(payment, fields=wanted)}
            await self.client.update("incomings", {"Incoming": body}, idempotent=True)
        record = await self.get(external_id, lane="push")
        if record is None:
            raise NotFound(f"simplbooks payment {external_id} is gone")
        return record

    async def remove(self, external_id: str) -> None:
        ids = parse_payment_id(external_id)
        if ids is not None:
            await self._delete(ids[0])

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Among the receipts of the key's invoice: by the token in ``description``, or by
        identical date, amount and reference. Token only: a description search."""
        token = _clean(client_token)
        wanted = normalise(natural_key) if isinstance(natural_key, Payment) else None
        invoice_id = _digits(wanted.invoice or "") if wanted is not None else None
        if wanted is not None and invoice_id is not None:
            for receipt_id in await self._bound(invoice_id, lane="push") or []:
                data = await self._receipt(receipt_id, lane="push")
                if data is None:
                    continue
                mapped = self._map(data, invoice_id, payment_external_id(receipt_id, invoice_id))
                if not isinstance(mapped, VendorRecord) or not isinstance(mapped.value, Payment):
                    continue
                found = mapped.value
                if (token is not None and description_of(data) == token) or (
                    (found.date, found.amount, found.reference)
                    == (wanted.date, wanted.amount, wanted.reference)
                ):
                    return mapped
            return None
        if token is None:
            return None
        return await self._find_by_description(token)

    async def _find_by_description(self, token: str) -> VendorRecord | None:
        async for row in self._scan(
            "incomings", {"description": token}, lane="push", id_of=receipt_id_of
        ):
            if description_of(row) != token:
                continue
            client_id = client_id_of_receipt(row)
            if client_id is None:
                continue
            receipt_id = int(receipt_id_of(row))
            async for invoice_row in self._scan(
                "invoices", {"client_id": client_id}, lane="push", id_of=invoice_list_id
            ):
                invoice_id = int(invoice_list_id(invoice_row))
                if receipt_id in (await self._bound(invoice_id, lane="push") or []):
                    return await self.get(payment_external_id(receipt_id, invoice_id), lane="push")
        return None


# --------------------------------------------------------------------------- the adapter


def _expect(value: Canonical, kind: type[Any]) -> Any:
    if not isinstance(value, kind):
        raise TypeError(f"expected a {kind.__name__}, not {type(value).__name__}")
    return value


class SimplbooksAdapter:
    """One SimplBooks company: contacts, invoices and payments."""

    vendor = VENDOR

    def __init__(
        self,
        client: SimplbooksClient,
        *,
        account: str,
        clock: Clock = _utcnow,
        page_size: int = MAX_PAGE_SIZE,
    ) -> None:
        self.account = account
        self.client = client
        self.capabilities = CAPABILITIES
        self.shared = _Shared(client, clock)
        self._resources: dict[str, ResourceAdapter] = {
            "contacts": ContactsResource(self.shared, page_size),
            "invoices": InvoicesResource(self.shared, page_size),
            "payments": PaymentsResource(self.shared, page_size),
        }

    def resource(self, name: Resource) -> ResourceAdapter:
        """The adapter for ``name``; KeyError for anything else."""
        return self._resources[name]

    async def verify(self) -> None:
        """``vat_types/list``: cheap, authenticated, and it refreshes the VAT type cache."""
        await self.shared.vat_types(lane="pull", refresh=True)
