"""The Moneybird adapter: contacts, sales invoices and their payments behind the contract.

Change detection
    Moneybird is an *incremental* vendor. A pass asks the synchronization API for the
    ids and versions of the records changed since the cursor
    (``GET {resource}/synchronization.json?filter=updated_after:...``, one call, not
    paginated) and fetches them in chunks of at most 100 with the synchronization POST.
    The vendor reference recommends both halves: the POST is its cheapest bulk read
    (100 records a call under a 150 calls / 5 min limit), and the ``updated_after``
    filter keeps the id list to what changed. Versus paging ``/contacts/filter.json``,
    the id list is a fixed snapshot that this adapter orders itself (by version, then
    id), so a page's checkpoint ("resume after version v, id i") stays exact while
    records keep changing: a record edited mid-pass gets a higher version and comes
    later in the same order, never skipped.
Cursor
    The final checkpoint is ``{"updated_after": T}``: the highest ``updated_at`` among
    the records fetched *unchanged since the id list was taken* (same version), so no
    record whose change is older than T was outside that list. ``updated_after`` is
    exclusive and has second precision; the overlap window (``overlap``, 30 s) is taken
    off T when the cursor is used, so a same-second edit or a slow commit is listed
    again rather than missed (the engine recognises unchanged records by fingerprint).
    Mid-pass checkpoints add ``resume`` (version and id of the page's last entry) and
    ``high`` (T so far).
Quiet passes
    The overlap window lists the newest records again on every pass, changed or not.
    Every cursor therefore also carries ``seen``: the records inside the window already
    fetched at the version now listed (id -> version). Those are not
    fetched again, so a pass over an account where nothing changed is the one id-list
    call. A record enters ``seen`` only when the listing's ``Date`` header (the vendor's
    clock) is past the second its version names (``settled``): versions are epoch
    seconds, and a change later in that same second could keep the version, so such a
    record is fetched once more on the next pass instead.
Sales-invoice period trap
    Invoice lists and the invoice synchronization GET default to ``period:this_year``,
    and any filter replaces the defaults; every invoice filter therefore names
    ``state:all`` and the explicit ``period`` of ``mapping.ALL_PERIODS``.
Archive vs delete
    Contacts are removed by archiving (Moneybird keeps contacts that have documents
    anyway); every contact read passes ``include_archived=true`` and ``list_ids`` tells
    archived ids from active ones with a second synchronization GET. Invoices and
    payments are deleted.
Payments
    Moneybird has no payment list or payment synchronization: payments are listed from
    the ``payments`` embedded in the sales invoices that changed (registering a payment
    changes its invoice), one page per chunk of invoices. Payments cannot be edited
    (``update`` is a SkipRecord) and carry no client token: an uncertain create is settled
    by the natural key (invoice, date, amount, transaction reference).
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, TypeVar

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
from syncd.adapters.moneybird import mapping
from syncd.adapters.moneybird.client import SYNC_POST_LIMIT, MoneybirdClient
from syncd.core.model import Contact, Invoice, Payment, money, normalise
from syncd.errors import Fatal, NotFound, Retryable, SkipRecord, Uncertain

__all__ = ["CAPABILITIES", "OVERLAP", "MoneybirdAdapter"]

logger = logging.getLogger(__name__)

VENDOR: Final = "moneybird"
MAX_PAGE_SIZE: Final = 100
OVERLAP: Final = dt.timedelta(seconds=30)
ID_BATCH: Final = 1000
_SENT_STATES: Final = frozenset({"open", "late", "reminded", "pending_payment"})

CAPABILITIES: Final = Capabilities(
    change_detection="incremental",
    removal={"contacts": "archive", "invoices": "delete", "payments": "delete"},
    writable_fields={
        "contacts": frozenset(
            {
                "kind",
                "name",
                "first_name",
                "last_name",
                "email",
                "phone",
                "address_line1",
                "address_line2",
                "postal_code",
                "city",
                "country",
                "vat_number",
                "coc_number",
                "iban",
                "customer_number",
                # Through the archive endpoint; Moneybird's API cannot un-archive, so that
                # direction is a refusal with a reason (``update``).
                "archived",
            }
        ),
        "invoices": frozenset(
            {"contact", "issue_date", "due_date", "currency", "status", "lines", "reference"}
        ),
        # Written on create only: Moneybird cannot edit a registered payment.
        "payments": frozenset({"invoice", "date", "amount", "reference"}),
    },
    # The spec's own example edits the reference of an open invoice; state changes and
    # payments go on after sending. Lines and amounts of a sent invoice are left alone.
    sent_invoice_mutable_fields=frozenset({"status", "payments", "reference"}),
    max_page_size=MAX_PAGE_SIZE,
    webhooks=True,
    client_token_field={"contacts": "customer_id", "invoices": "reference", "payments": None},
    assigns_invoice_numbers=True,
)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).isoformat() if moment is not None else None


def _later(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _version_number(version: Any) -> int:
    if isinstance(version, bool):
        return 0
    if isinstance(version, int):
        return version
    if isinstance(version, str) and version.strip().isdigit():
        return int(version)
    return 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    """One line of a synchronization GET."""

    id: str
    version: str | None

    @property
    def key(self) -> tuple[int, int]:
        return (_version_number(self.version), int(self.id))


def _entries(items: Iterable[Any]) -> list[_Entry]:
    seen: dict[str, _Entry] = {}
    for item in items:
        if not isinstance(item, Mapping):
            continue
        found = mapping.id_text(item.get("id"))
        if found is not None:
            seen[found] = _Entry(found, mapping.record_version(item))
    return sorted(seen.values(), key=lambda e: e.key)


def _parse_seen(raw: Any) -> dict[str, str]:
    """A cursor's ``seen`` (id -> version); anything unreadable is left out (fetched again)."""
    if not isinstance(raw, Mapping):
        return {}
    seen: dict[str, str] = {}
    for key, version in raw.items():
        rid = mapping.id_text(key)
        if rid is not None and isinstance(version, str):
            seen[rid] = version
    return seen


def settled(version: str | None, listed_at: dt.datetime | None) -> bool:
    """Whether a record listed at ``version`` and fetched after that listing holds the
    last content of that version.

    Moneybird's ``version`` is the epoch second of ``updated_at`` (vendor reference §7),
    so a second change within that same second may keep the version. The listing's
    ``Date`` (vendor clock, whole seconds) after that second means the fetch, which
    follows the listing, read the record once the second was over: a later change gets
    a later version. Without that proof the record is fetched again next time.
    """
    if version is None or listed_at is None or not version.strip().isdigit():
        return False
    return int(listed_at.timestamp()) > int(version)


@dataclasses.dataclass(frozen=True, slots=True)
class _Cursor:
    since: dt.datetime | None
    resume: tuple[int, int] | None
    high: dt.datetime | None
    # Records already fetched at their listed version (inside the overlap window).
    seen: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, cursor: Checkpoint | None) -> _Cursor:
        """A checkpoint as given back by the engine; anything unreadable restarts fully."""
        if not cursor:
            return cls(None, None, None)
        since = mapping.parse_timestamp(cursor.get("updated_after"))
        high = mapping.parse_timestamp(cursor.get("high"))
        resume = None
        raw = cursor.get("resume")
        if isinstance(raw, Mapping):
            version, rid = raw.get("version"), mapping.id_text(raw.get("id"))
            if isinstance(version, int) and not isinstance(version, bool) and rid is not None:
                resume = (version, int(rid))
        seen = _parse_seen(cursor.get("seen")) if since is not None else {}
        return cls(since, resume, high, seen)

    def final(
        self, high: dt.datetime | None, seen: Mapping[str, str], overlap: dt.timedelta
    ) -> dict[str, Any]:
        upto = _later(self.since, high)
        return {"updated_after": _iso(upto), "seen": _window(seen, upto, overlap)}

    def after(
        self,
        entry: _Entry,
        high: dt.datetime | None,
        seen: Mapping[str, str],
        overlap: dt.timedelta,
    ) -> dict[str, Any]:
        return {
            "updated_after": _iso(self.since),
            "resume": {"version": entry.key[0], "id": entry.id},
            "high": _iso(high),
            "seen": _window(seen, _later(self.since, high), overlap),
        }


def _window(
    seen: Mapping[str, str], upto: dt.datetime | None, overlap: dt.timedelta
) -> dict[str, str]:
    """The part of ``seen`` the next listing (``updated_after`` upto - overlap) can show.

    A version is the epoch second of the record's change (vendor reference §7), so it
    places the record in time; a second of margin for the filter's flooring. This only
    keeps the cursor small: a record left out is fetched again if it is listed again.
    """
    if upto is None:
        return {}
    bound = int((upto - overlap).timestamp()) - 1
    return {rid: v for rid, v in sorted(seen.items()) if v.isdigit() and int(v) >= bound}


def _skipped(raw: Any, exc: SkipRecord, fallback_id: str | None) -> Skipped:
    payload: Mapping[str, Any] | str = raw if isinstance(raw, Mapping) else repr(raw)
    return Skipped(external_id=exc.external_id or fallback_id, reason=exc.reason, payload=payload)


class TaxRates:
    """The administration's tax rates, fetched once per adapter and refreshed on a miss."""

    def __init__(self, client: MoneybirdClient) -> None:
        self._client = client
        self._rates: dict[str, mapping.TaxRate] | None = None
        self._lock = asyncio.Lock()
        self._missed: set[str] = set()  # ids a refresh did not find: do not refetch each time

    async def all(self, lane: Lane) -> dict[str, mapping.TaxRate]:
        """Every tax rate by id (one fetch per adapter)."""
        async with self._lock:
            if self._rates is None:
                self._rates = mapping.tax_rates_from_vendor(await self._client.tax_rates(lane=lane))
            return self._rates

    async def covering(self, ids: Iterable[str], lane: Lane) -> dict[str, mapping.TaxRate]:
        """The rates, refetched once when one of ``ids`` is new (a rate added since)."""
        rates = await self.all(lane)
        unknown = {i for i in ids if i not in rates} - self._missed
        if unknown:
            async with self._lock:
                self._rates = mapping.tax_rates_from_vendor(await self._client.tax_rates(lane=lane))
                rates = self._rates
            self._missed |= {i for i in unknown if i not in rates}
        return rates


def _tax_rate_ids(raw: Any) -> set[str]:
    details = raw.get("details") if isinstance(raw, Mapping) else None
    if not isinstance(details, list):
        return set()
    found = (mapping.id_text(d.get("tax_rate_id")) for d in details if isinstance(d, Mapping))
    return {i for i in found if i is not None}


# --------------------------------------------------------------------------- shared listing


class _SyncedResource(abc.ABC):
    """What contacts, invoices and payments share: the synchronization-API listing."""

    resource: Resource
    sync_path: ClassVar[str]  # "contacts" or "sales_invoices"
    include_archived: ClassVar[bool] = False

    def __init__(
        self,
        client: MoneybirdClient,
        taxes: TaxRates,
        *,
        page_size: int = MAX_PAGE_SIZE,
        overlap: dt.timedelta = OVERLAP,
    ) -> None:
        self.client = client
        self.taxes = taxes
        self.page_size = page_size
        self.overlap = overlap

    # --- hooks
    def _filter(self, since: dt.datetime | None) -> str | None:
        return None if since is None else f"updated_after:{mapping.filter_time(since)}"

    @abc.abstractmethod
    async def _map_chunk(
        self, raws: Sequence[Any], lane: Lane
    ) -> tuple[list[VendorRecord], list[Skipped]]:
        """Fetched rows as records, and the rows that cannot be synced with their reasons."""

    # --- helpers
    async def _sync_ids(
        self, since: dt.datetime | None, *, archived: bool, lane: Lane
    ) -> list[Any]:
        items, _ = await self._sync_ids_dated(since, archived=archived, lane=lane)
        return items

    async def _sync_ids_dated(
        self, since: dt.datetime | None, *, archived: bool, lane: Lane
    ) -> tuple[list[Any], dt.datetime | None]:
        try:
            return await self.client.sync_ids_dated(
                self.sync_path, filters=self._filter(since), include_archived=archived, lane=lane
            )
        except NotFound as exc:
            raise Fatal(
                f"moneybird has no {self.sync_path} list at {self.client.http.base_url} "
                f"({exc}); check the account's base_url (administration id)"
            ) from None

    async def _fetch(self, ids: Sequence[str], lane: Lane) -> list[Any]:
        """The records of ``ids`` (in chunks of 100), only those asked, each once."""
        wanted = set(ids)
        found: dict[str, Any] = {}
        for start in range(0, len(ids), SYNC_POST_LIMIT):
            chunk = ids[start : start + SYNC_POST_LIMIT]
            for raw in await self.client.sync_records(self.sync_path, chunk, lane=lane):
                rid = mapping.id_text(raw.get("id")) if isinstance(raw, Mapping) else None
                if rid in wanted and rid not in found:
                    found[rid] = raw
        return [found[i] for i in ids if i in found]

    # --- the contract
    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Yield the records changed since ``cursor``; see the module docstring."""
        state = _Cursor.parse(cursor)
        previous: dict[str, Any] = dict(cursor) if cursor else {"updated_after": None}
        calls = self.client.calls
        query_since = state.since - self.overlap if state.since is not None else None
        items, listed_at = await self._sync_ids_dated(
            query_since, archived=self.include_archived, lane=lane
        )
        listed = _entries(items)
        # What the overlap window shows again at the version already fetched is not
        # fetched again (the vendor's own protocol: fetch the ids whose version changed).
        known = {
            e.id: state.seen[e.id]
            for e in listed
            if e.version is not None and state.seen.get(e.id) == e.version
        }
        high = state.high
        entries = [e for e in listed if e.id not in known]
        if state.resume is not None:
            entries = [e for e in entries if e.key > state.resume]
        size = max(1, min(self.page_size, SYNC_POST_LIMIT))
        chunks = [entries[i : i + size] for i in range(0, len(entries), size)]
        if not chunks:
            checkpoint = state.final(high, known, self.overlap)
            yield Page((), (), checkpoint, final=True, api_calls=self.client.calls - calls)
            return
        for index, chunk in enumerate(chunks):
            raws = await self._fetch([e.id for e in chunk], lane)
            versions = {e.id: e.version for e in chunk}
            for raw in raws:
                # Only records unchanged since the id list may raise the cursor.
                rid = mapping.id_text(raw.get("id"))
                version = mapping.record_version(raw)
                if rid is None or version != versions.get(rid):
                    continue
                updated_at = mapping.parse_timestamp(raw.get("updated_at"))
                high = _later(high, updated_at)
                if version is not None and settled(version, listed_at):
                    known[rid] = version
            records, skipped = await self._map_chunk(raws, lane)
            final = index == len(chunks) - 1
            checkpoint = (
                state.final(high, known, self.overlap)
                if final
                else state.after(chunk[-1], high, known, self.overlap)
            )
            # Payments of 100 invoices can outnumber a page: split, and let the earlier
            # parts resume before this chunk (records may repeat, never go missing).
            parts = [records[i : i + MAX_PAGE_SIZE] for i in range(0, len(records), MAX_PAGE_SIZE)]
            parts = parts or [[]]
            for n, part in enumerate(parts):
                last_part = n == len(parts) - 1
                yield Page(
                    records=tuple(part),
                    skipped=tuple(skipped) if last_part else (),
                    checkpoint=checkpoint if last_part else previous,
                    final=final and last_part,
                    api_calls=self.client.calls - calls,
                )
                calls = self.client.calls
            previous = checkpoint

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Yield every id (with its version) the vendor holds, in batches."""
        batch = [IdVersion(e.id, e.version) for e in _entries(await self._all_ids(lane))]
        for start in range(0, len(batch), ID_BATCH):
            yield batch[start : start + ID_BATCH]
        if not batch:
            yield []

    async def _all_ids(self, lane: Lane) -> list[Any]:
        return await self._sync_ids(None, archived=self.include_archived, lane=lane)


# --------------------------------------------------------------------------- contacts


class ContactsResource(_SyncedResource):
    """Moneybird contacts (companies and persons); archived ones included."""

    resource: Resource = "contacts"
    sync_path = "contacts"
    include_archived = True

    def _record(self, raw: Any) -> VendorRecord:
        value = mapping.contact_to_canonical(raw)
        return VendorRecord(
            external_id=mapping.external_id(raw, "contact"),
            value=value,
            version=mapping.record_version(raw),
            updated_at=mapping.record_updated_at(raw, "contact"),
        )

    async def _map_chunk(
        self, raws: Sequence[Any], lane: Lane
    ) -> tuple[list[VendorRecord], list[Skipped]]:
        records: list[VendorRecord] = []
        skipped: list[Skipped] = []
        for raw in raws:
            try:
                records.append(self._record(raw))
            except SkipRecord as exc:
                skipped.append(_skipped(raw, exc, mapping.id_text(raw.get("id"))))
        return records, skipped

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every contact id; archived ones flagged (they vanish without include_archived)."""
        everything = _entries(await self._sync_ids(None, archived=True, lane=lane))
        active = {e.id for e in _entries(await self._sync_ids(None, archived=False, lane=lane))}
        batch = [IdVersion(e.id, e.version, archived=e.id not in active) for e in everything]
        for start in range(0, len(batch), ID_BATCH):
            yield batch[start : start + ID_BATCH]
        if not batch:
            yield []

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """The contact, archived or not; None when Moneybird does not know it."""
        try:
            raw = await self.client.contact(external_id, lane=lane)
        except NotFound:
            return None
        return self._record(raw)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """Create a contact; ``customer_id`` = its customer number, else ``client_token``.

        An archived contact is archived right after; should that fail, the contact as
        created (active) is returned, so the engine sees the difference and archives it
        with a later update instead of creating it twice.
        """
        contact = _expect(value, Contact, "contacts")
        body = mapping.contact_body(contact, customer_id=client_token)
        raw = await self.client.create_contact(body)
        if contact.archived and isinstance(raw, Mapping) and not raw.get("archived"):
            created = self._record(raw)
            try:
                await self._archive(created.external_id)
                raw = await self.client.contact(created.external_id, lane="push")
            except (Retryable, SkipRecord, NotFound, Uncertain) as exc:
                logger.warning(
                    "moneybird contact %s created but not archived yet: %s",
                    created.external_id,
                    exc,
                )
                return created
        return self._record(raw)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """PATCH only the Moneybird attributes of ``fields``; archive when asked."""
        contact = _expect(value, Contact, "contacts")
        writable = fields & CAPABILITIES.writable_fields["contacts"]
        raw: Any = None
        if writable:
            body = mapping.contact_body(contact, fields=writable)
            if body["contact"]:
                raw = await self.client.update_contact(external_id, body)
        if "archived" in fields:
            current = (
                raw if raw is not None else await self.client.contact(external_id, lane="push")
            )
            if contact.archived and not current.get("archived"):
                await self._archive(external_id)
                raw = None
            elif not contact.archived and current.get("archived"):
                raise SkipRecord(
                    "moneybird's API cannot un-archive a contact; restore it in Moneybird",
                    external_id=external_id,
                )
        if raw is None:
            raw = await self.client.contact(external_id, lane="push")
        return self._record(raw)

    async def _archive(self, external_id: str) -> None:
        try:
            await self.client.archive_contact(external_id)
        except SkipRecord:
            # 400 "can_not_be_archived" also answers a repeat of an archive that landed.
            current = await self.client.contact(external_id, lane="push")
            if not current.get("archived"):
                raise

    async def remove(self, external_id: str) -> None:
        """Archive the contact (a contact already gone counts as removed)."""
        try:
            await self._archive(external_id)
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By client token (``customer_id``), then customer number, then name and e-mail."""
        key = natural_key if isinstance(natural_key, Contact) else None
        for customer_id in dict.fromkeys(
            c for c in (client_token, key.customer_number if key else None) if c
        ):
            try:
                return self._record(
                    await self.client.contact_by_customer_id(customer_id, lane="push")
                )
            except NotFound:
                continue
        if key is None or not key.name.strip():
            return None
        wanted = normalise(key)
        for raw in await self.client.search_contacts(wanted.name, lane="push"):
            try:
                found = self._record(raw)
            except SkipRecord:
                continue
            got = found.value
            assert isinstance(got, Contact)
            same_name = got.name.casefold() == wanted.name.casefold()
            if same_name and (wanted.email is None or got.email == wanted.email):
                return found
        return None


# --------------------------------------------------------------------------- invoices


def _invoice_filter(since: dt.datetime | None) -> str:
    """Every state, the all-years period (never the this_year default), and the cursor."""
    terms = ["state:all", f"period:{mapping.ALL_PERIODS}"]
    if since is not None:
        terms.append(f"updated_after:{mapping.filter_time(since)}")
    return ",".join(terms)


class InvoicesResource(_SyncedResource):
    """Moneybird sales invoices, lines with tax-rate ids; Moneybird numbers them on sending."""

    resource: Resource = "invoices"
    sync_path = "sales_invoices"

    def _filter(self, since: dt.datetime | None) -> str:
        return _invoice_filter(since)

    async def _record(self, raw: Any, lane: Lane) -> VendorRecord:
        rates = await self.taxes.covering(_tax_rate_ids(raw), lane)
        return VendorRecord(
            external_id=mapping.external_id(raw, "sales invoice"),
            value=mapping.invoice_to_canonical(raw, rates),
            version=mapping.record_version(raw),
            updated_at=mapping.record_updated_at(raw, "sales invoice"),
        )

    async def _map_chunk(
        self, raws: Sequence[Any], lane: Lane
    ) -> tuple[list[VendorRecord], list[Skipped]]:
        records: list[VendorRecord] = []
        skipped: list[Skipped] = []
        for raw in raws:
            try:
                records.append(await self._record(raw, lane))
            except SkipRecord as exc:
                skipped.append(_skipped(raw, exc, mapping.id_text(raw.get("id"))))
        return records, skipped

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """The sales invoice, or None when Moneybird does not know it."""
        try:
            raw = await self.client.invoice(external_id, lane=lane)
        except NotFound:
            return None
        return await self._record(raw, lane)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """Create a draft (``reference`` = its reference, else ``client_token``), then bring
        it to the wanted status: sent without e-mail ("Manual") unless it is a draft."""
        invoice = _expect(value, Invoice, "invoices")
        if invoice.status == "cancelled":
            raise SkipRecord(
                "moneybird has no cancelled state (it cancels with a credit invoice); "
                "a cancelled invoice is not created"
            )
        rates = await self.taxes.all("push")
        body = mapping.invoice_body(invoice, rates.values(), reference=client_token)
        raw = await self.client.create_invoice(body)
        external_id = mapping.external_id(raw, "sales invoice")
        if invoice.status != "draft":
            # The invoice exists now: a failure past this point must not hide its id.
            try:
                raw = await self._apply_status(external_id, invoice.status, raw)
            except (Retryable, SkipRecord) as exc:
                logger.warning(
                    "moneybird invoice %s created as draft; moving it to %s failed: %s",
                    external_id,
                    invoice.status,
                    exc,
                )
        return await self._record(raw, "push")

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """PATCH the attributes of ``fields`` (lines matched by position), then the status."""
        invoice = _expect(value, Invoice, "invoices")
        wanted = fields & CAPABILITIES.writable_fields["invoices"]
        current: dict[str, Any] | None = None
        raw: dict[str, Any] | None = None
        attrs = wanted - {"status"}
        if attrs:
            details: Sequence[Any] = ()
            rates: Iterable[mapping.TaxRate] = ()
            if "lines" in attrs:
                current = await self.client.invoice(external_id, lane="push")
                found = current.get("details") or []
                if not isinstance(found, list):
                    raise SkipRecord(
                        "moneybird invoice details is not a list", external_id=external_id
                    )
                details = found
                rates = (await self.taxes.all("push")).values()
            body = mapping.invoice_body(invoice, rates, fields=attrs, current_details=details)
            if body["sales_invoice"]:
                raw = await self.client.update_invoice(external_id, body)
        if "status" in wanted:
            raw = await self._apply_status(external_id, invoice.status, raw or current)
        if raw is None:
            raw = await self.client.invoice(external_id, lane="push")
        return await self._record(raw, "push")

    async def _apply_status(
        self, external_id: str, status: str, raw: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Reach ``status`` through Moneybird's actions where one exists.

        draft -> anything else: send manually (numbered, open; no e-mail). uncollectible:
        mark as uncollectible. open/sent/overdue/partially_paid/paid of a sent invoice
        follow from its dates and payments: nothing to do. Back to draft, and cancelled,
        have no action: SkipRecord.
        """
        if raw is None:
            raw = await self.client.invoice(external_id, lane="push")
        state = raw.get("state")
        if status == "draft":
            if state == "draft":
                return raw
            raise SkipRecord(
                f"moneybird cannot turn a {state} invoice back into a draft",
                external_id=external_id,
            )
        if status == "cancelled":
            raise SkipRecord(
                "moneybird has no cancelled state; cancel with a credit invoice in Moneybird",
                external_id=external_id,
            )
        if state == "draft":
            raw = await self.client.send_invoice_manually(external_id)
            state = raw.get("state")
        if status == "uncollectible" and state in _SENT_STATES:
            try:
                raw = await self.client.mark_uncollectible(external_id)
            except SkipRecord:
                # A retried mark whose first attempt landed is refused: check, not fail.
                raw = await self.client.invoice(external_id, lane="push")
                if raw.get("state") != "uncollectible":
                    raise
        return raw

    async def remove(self, external_id: str) -> None:
        """Delete the sales invoice (one already gone counts as removed)."""
        try:
            await self.client.delete_invoice(external_id)
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """By client token / reference (``find_by_reference``), then by number + contact."""
        key = natural_key if isinstance(natural_key, Invoice) else None
        for reference in dict.fromkeys(
            r for r in (client_token, key.reference if key else None) if r
        ):
            try:
                raw = await self.client.invoice_by_reference(reference, lane="push")
            except NotFound:
                continue
            return await self._record(raw, "push")
        if key is not None and key.number:
            try:
                raw = await self.client.invoice_by_number(key.number, lane="push")
            except NotFound:
                return None
            if key.contact is None or mapping.id_text(raw.get("contact_id")) == key.contact:
                return await self._record(raw, "push")
        return None


# --------------------------------------------------------------------------- payments


class PaymentsResource(_SyncedResource):
    """Payments registered on sales invoices, listed through their invoices."""

    resource: Resource = "payments"
    sync_path = "sales_invoices"

    def _filter(self, since: dt.datetime | None) -> str:
        return _invoice_filter(since)

    def _record(self, raw: Any) -> VendorRecord:
        return VendorRecord(
            external_id=mapping.external_id(raw, "payment"),
            value=mapping.payment_to_canonical(raw),
            updated_at=mapping.record_updated_at(raw, "payment"),
        )

    def _explode(self, invoices: Sequence[Any]) -> tuple[list[VendorRecord], list[Skipped]]:
        records: list[VendorRecord] = []
        skipped: list[Skipped] = []
        for invoice in invoices:
            payments = invoice.get("payments") if isinstance(invoice, Mapping) else None
            if payments is None:
                continue
            if not isinstance(payments, list):
                reason = "moneybird sales invoice payments is not a list"
                skipped.append(_skipped(invoice, SkipRecord(reason), None))
                continue
            for raw in payments:
                try:
                    records.append(self._record(raw))
                except SkipRecord as exc:
                    rid = mapping.id_text(raw.get("id")) if isinstance(raw, Mapping) else None
                    skipped.append(_skipped(raw, exc, rid))
        return records, skipped

    async def _map_chunk(
        self, raws: Sequence[Any], lane: Lane
    ) -> tuple[list[VendorRecord], list[Skipped]]:
        return self._explode(raws)

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every payment id: read from every sales invoice (one POST per 100 invoices)."""
        invoice_ids = [e.id for e in _entries(await self._all_ids(lane))]
        batch: list[IdVersion] = []
        for start in range(0, len(invoice_ids), SYNC_POST_LIMIT):
            chunk = await self._fetch(invoice_ids[start : start + SYNC_POST_LIMIT], lane)
            records, _ = self._explode(chunk)
            batch.extend(IdVersion(r.external_id) for r in records)
            while len(batch) >= ID_BATCH:
                yield batch[:ID_BATCH]
                batch = batch[ID_BATCH:]
        yield batch

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """The payment, or None when Moneybird does not know it."""
        try:
            raw = await self.client.payment(external_id, lane=lane)
        except NotFound:
            return None
        return self._record(raw)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """Register the payment on its invoice (``client_token`` has no field here)."""
        payment = _expect(value, Payment, "payments")
        if not payment.invoice:
            raise SkipRecord("moneybird registers a payment on an invoice; this one has none")
        raw = await self.client.create_payment(payment.invoice, mapping.payment_body(payment))
        return self._record(raw)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """Moneybird cannot edit a registered payment: always a SkipRecord."""
        raise SkipRecord(
            "moneybird cannot change a registered payment; remove it and register a new one",
            external_id=external_id,
        )

    async def remove(self, external_id: str) -> None:
        """Delete the payment from its invoice (one already gone counts as removed)."""
        try:
            raw = await self.client.payment(external_id, lane="push")
            invoice_id = mapping.id_text(raw.get("invoice_id"))
            if invoice_id is None:
                raise SkipRecord("moneybird payment has no invoice_id", external_id=external_id)
            await self.client.delete_payment(invoice_id, external_id)
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Among the payments of the key's invoice: same date, amount and reference."""
        if not isinstance(natural_key, Payment) or not natural_key.invoice:
            return None
        wanted = normalise(natural_key)
        assert wanted.invoice is not None
        try:
            invoice = await self.client.invoice(wanted.invoice, lane="push")
        except NotFound:
            return None
        records, _ = self._explode([invoice])
        for record in records:
            got = record.value
            assert isinstance(got, Payment)
            if (got.date, money(got.amount)) == (wanted.date, wanted.amount) and (
                wanted.reference is None or got.reference == wanted.reference
            ):
                return record
        return None


# --------------------------------------------------------------------------- the adapter


_T = TypeVar("_T", Contact, Invoice, Payment)


def _expect(value: Canonical, kind: type[_T], resource: str) -> _T:
    if not isinstance(value, kind):
        raise TypeError(f"moneybird {resource} takes a {kind.__name__}, not {type(value).__name__}")
    return value


class MoneybirdAdapter:
    """One Moneybird administration: contacts, invoices and payments."""

    vendor = VENDOR

    def __init__(
        self,
        client: MoneybirdClient,
        *,
        account: str,
        page_size: int = MAX_PAGE_SIZE,
        overlap: dt.timedelta = OVERLAP,
    ) -> None:
        self.client = client
        self.account = account
        self.capabilities = CAPABILITIES
        self.taxes = TaxRates(client)
        options: dict[str, Any] = {"page_size": page_size, "overlap": overlap}
        self._resources: dict[Resource, ResourceAdapter] = {
            "contacts": ContactsResource(client, self.taxes, **options),
            "invoices": InvoicesResource(client, self.taxes, **options),
            "payments": PaymentsResource(client, self.taxes, **options),
        }

    def resource(self, name: Resource) -> ResourceAdapter:
        """The adapter for ``name`` (KeyError for anything but the three resources)."""
        return self._resources[name]

    async def verify(self) -> None:
        """One cheap authenticated call (first contact); AuthFailed / Fatal / Retryable."""
        try:
            await self.client.contacts_page(per_page=1, lane="pull")
        except NotFound as exc:
            raise Fatal(
                f"moneybird has no administration at {self.client.http.base_url} ({exc}); "
                "check the account's base_url"
            ) from None
