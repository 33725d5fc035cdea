"""The Simplicate adapter: contacts (organizations and persons), invoices and payments.

Change detection is incremental on ``updated_at`` (zone-less Europe/Amsterdam text).

Listing (``list_changes``)
    Each collection is read in ``updated_at`` order with keyset paging: a request asks for
    ``q[updated_at][ge]=<last timestamp seen>`` and skips, with ``offset``, only the rows of
    that same second already seen. A record edited while a pass runs moves to the end of
    the order instead of shifting unseen rows under a plain offset. Each request also
    re-reads the last row seen (the "anchor"); when it is not where it was, rows of that
    second moved, and the second is read again from its start. Contacts list the
    organizations, then the persons, in one pass. An incremental pass also asks, per
    collection, for rows created since the cursor that have no ``updated_at`` yet
    (``q[created_at][ge]`` with ``q[updated_at]=null``): the vendor reference warns that new
    rows may lack one.
Quiet passes (the probe)
    An incremental pass first asks each collection once for ``q[updated_at][ge]=<bound>``
    OR-ed (``q[or][created_at][ge]=<bound>``) with rows created since the bound, with
    ``metadata=count``. When that one page holds every matching row (the usual case
    between two polls), it is the collection's whole answer: one call instead of two.
    Otherwise the keyset phases above read the collection (one call more than before).
    Organizations and persons stay two collections: two calls for ``contacts``.
Checkpoints
    A page's checkpoint holds the phase, the keyset position and the highest modification
    time seen so far; the final page's checkpoint is ``{"updated_at": <UTC ISO>}``, the
    highest modification time seen. When that cursor is used, ``OVERLAP`` is taken off
    and the result is turned into a wall-clock bound that is safe across the end of summer
    time (``mapping.local_lower_bound``), so clock skew or a same-second edit is never
    missed; the engine recognises the repeats by fingerprint.
Id sweeps (``list_ids``)
    ``sort=id`` with overlapping offset pages (each page re-reads the last rows of the one
    before), so a deletion during the sweep cannot hide a live id and fake a deletion.
Writes
    A create answers with the new id only; the record is read back. If the read-back
    fails, the create raises ``Uncertain`` (it landed) so the caller settles it with
    ``find`` rather than creating it again. Simplicate has no field that could carry our
    client token without showing it to users, so ``find`` looks records up by natural key.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, ClassVar, Final, Literal

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
from syncd.adapters.simplicate.client import (
    INVOICE,
    MAX_LIMIT,
    ORGANIZATION,
    PAYMENT,
    PERSON,
    Collection,
    SimplicateClient,
)
from syncd.adapters.simplicate.mapping import (
    ADDRESS_FIELDS,
    INVOICE_UPDATABLE,
    InvoiceLookups,
    contact_from_canonical,
    contact_to_canonical,
    id_kind,
    invoice_from_canonical,
    invoice_lookups,
    invoice_to_canonical,
    local_lower_bound,
    parse_local_timestamp,
    payment_from_canonical,
    payment_to_canonical,
)
from syncd.core.model import (
    CONTACT_FIELDS,
    Contact,
    Invoice,
    Payment,
    normalise_contact,
    normalise_invoice,
    normalise_payment,
)
from syncd.errors import NotFound, Retryable, SkipRecord, Uncertain, VendorUnavailable

__all__ = [
    "CAPABILITIES",
    "OVERLAP",
    "ContactsResource",
    "InvoicesResource",
    "PaymentsResource",
    "SimplicateAdapter",
]

OVERLAP: Final = dt.timedelta(minutes=2)
_CHECKPOINT_VERSION: Final = 2  # 2: incremental passes start each collection with a probe
_FIND_PAGES: Final = 10  # natural-key lookups read at most this many pages of candidates
_RESTARTS: Final = 5  # re-reads of a second whose rows moved, per pass, before giving up on it

_CONTACT_WRITABLE: Final = frozenset(CONTACT_FIELDS) - {"kind"}
_INVOICE_WRITABLE: Final = INVOICE_UPDATABLE
# Invoice fields Simplicate derives itself: an update that carries them changes nothing.
_INVOICE_DERIVED: Final = frozenset(
    {"number", "currency", "status", "subtotal", "tax_total", "total", "amount_paid"}
)
_PAYMENT_WRITABLE: Final = frozenset({"date", "amount", "reference"})

CAPABILITIES: Final = Capabilities(
    change_detection="incremental",
    removal={"contacts": "archive", "invoices": "delete", "payments": "none"},
    writable_fields={
        "contacts": _CONTACT_WRITABLE,
        "invoices": _INVOICE_WRITABLE,
        "payments": _PAYMENT_WRITABLE,
    },
    sent_invoice_mutable_fields=frozenset(),
    max_page_size=MAX_LIMIT,
    webhooks=False,
    client_token_field={"contacts": None, "invoices": None, "payments": None},
    assigns_invoice_numbers=True,
)

TimeField = Literal["updated_at", "created_at"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Phase:
    collection: Collection
    field: TimeField | Literal["probe"]


@dataclasses.dataclass(slots=True)
class _Position:
    """Where a pass stands: JSON-able through ``as_checkpoint``."""

    incremental: bool
    since: str | None  # wall-clock lower bound of this pass (None: everything)
    phase: int
    key: str | None  # keyset: the last timestamp text seen in this phase
    skip: int  # rows with that timestamp already seen
    high: str | None  # highest modification time seen (UTC ISO), this pass or before
    anchor: str | None = None  # id of the last row seen (expected again at offset skip - 1)

    def as_checkpoint(self) -> dict[str, Any]:
        return {
            "v": _CHECKPOINT_VERSION,
            "incremental": self.incremental,
            "since": self.since,
            "phase": self.phase,
            "key": self.key,
            "skip": self.skip,
            "high": self.high,
            "anchor": self.anchor,
        }

    def next_phase(self) -> None:
        self.phase += 1
        self.key, self.skip, self.anchor = self.since, 0, None


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat()


def _from_iso(text: object) -> dt.datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(dt.UTC) if moment.tzinfo is not None else None


def _later(a: str | None, b: dt.datetime | None) -> str | None:
    current = _from_iso(a)
    if b is None:
        return a
    if current is None or b > current:
        return _iso(b)
    return a


def _start(cursor: Checkpoint | None) -> _Position:
    """The position a listing starts from: a page checkpoint, a final cursor, or nothing."""
    if cursor and cursor.get("v") in (1, _CHECKPOINT_VERSION) and "phase" in cursor:
        since, key, high = cursor.get("since"), cursor.get("key"), cursor.get("high")
        phase, skip, anchor = cursor.get("phase"), cursor.get("skip"), cursor.get("anchor")
        if (
            isinstance(phase, int)
            and isinstance(skip, int)
            and skip >= 0
            and phase >= 0
            and all(v is None or isinstance(v, str) for v in (since, key, high, anchor))
        ):
            incremental = bool(cursor.get("incremental"))
            if incremental and cursor.get("v") == 1:
                # Version 1 had no probe phases: (updated, created) per collection.
                phase += phase // 2 + 1
            return _Position(
                incremental=incremental,
                since=since,
                phase=phase,
                key=key,
                skip=skip,
                high=high,
                anchor=anchor,
            )
    previous = _from_iso(cursor.get("updated_at")) if cursor else None
    if previous is None:
        return _Position(False, None, 0, None, 0, None)
    since = local_lower_bound(previous - OVERLAP)
    return _Position(True, since, 0, since, 0, _iso(previous))


def _stamp(row: Mapping[str, Any], field: str) -> str | None:
    """The row's timestamp text in ``field`` when it is a real timestamp."""
    value = row.get(field)
    if isinstance(value, str) and parse_local_timestamp(value) is not None:
        return value
    return None


def _changed_at(row: Mapping[str, Any]) -> dt.datetime | None:
    return parse_local_timestamp(row.get("updated_at")) or parse_local_timestamp(
        row.get("created_at")
    )


def _record(row: Mapping[str, Any], value: Canonical) -> VendorRecord:
    version = row.get("updated_at") or row.get("created_at")
    return VendorRecord(
        external_id=str(row["id"]),
        value=value,
        version=version if isinstance(version, str) else None,
        updated_at=_changed_at(row),
    )


class _SimplicateResource(abc.ABC):
    """What every Simplicate resource shares: keyset listing, id sweeps, get and read-back."""

    resource: Resource
    kinds: ClassVar[Mapping[str, Collection]]  # id type -> collection
    sweep_select: ClassVar[str] = "id,updated_at"

    def __init__(self, adapter: SimplicateAdapter, page_size: int = MAX_LIMIT) -> None:
        self.adapter = adapter
        self.client = adapter.client
        self.page_size = page_size

    # ------------------------------------------------------------------ hooks

    @abc.abstractmethod
    def map(self, raw: Any) -> Canonical:
        """A raw vendor row of this resource as its canonical value."""

    def phases(self, incremental: bool) -> tuple[_Phase, ...]:
        """Per collection: a full pass reads by ``updated_at``; an incremental pass probes,
        and only when the probe cannot answer reads by ``updated_at`` then ``created_at``."""
        phases: list[_Phase] = []
        for collection in dict.fromkeys(self.kinds.values()):
            if incremental:
                phases.append(_Phase(collection, "probe"))
            phases.append(_Phase(collection, "updated_at"))
            if incremental:
                phases.append(_Phase(collection, "created_at"))
        return tuple(phases)

    # ------------------------------------------------------------------ helpers

    def _limit(self) -> int:
        return max(1, min(int(self.page_size), MAX_LIMIT))

    def _collection_of(self, external_id: str) -> Collection | None:
        kind = id_kind(external_id)
        return self.kinds.get(kind) if kind is not None else None

    def _map_row(self, raw: Any) -> VendorRecord | Skipped:
        try:
            value = self.map(raw)
        except SkipRecord as exc:
            external_id = raw.get("id") if isinstance(raw, Mapping) else None
            payload: Mapping[str, Any] | str = raw if isinstance(raw, Mapping) else repr(raw)
            return Skipped(
                external_id=external_id if isinstance(external_id, str) else exc.external_id,
                reason=exc.reason,
                payload=payload,
            )
        assert isinstance(raw, Mapping)  # map() refuses anything else
        return _record(raw, value)

    async def _read(self, collection: Collection, external_id: str, lane: Lane) -> VendorRecord:
        raw = await self.client.get(collection, external_id, lane=lane)
        return _record(raw, self.map(raw))

    async def _read_back_created(self, collection: Collection, new_id: str) -> VendorRecord:
        """The record a create made; its failure leaves the outcome for ``find`` to settle."""
        try:
            return await self._read(collection, new_id, "push")
        except (Retryable, NotFound) as exc:
            raise Uncertain(
                f"simplicate created {new_id} but reading it back failed ({exc}); "
                "look it up before retrying"
            ) from None

    async def _candidates(
        self, collection: Collection, terms: Sequence[tuple[str, str]]
    ) -> list[Mapping[str, Any]]:
        """Every row matching ``q[...]`` terms (a bounded number of pages)."""
        rows: list[Mapping[str, Any]] = []
        for page in range(_FIND_PAGES):
            params = [
                ("offset", str(page * MAX_LIMIT)),
                ("limit", str(MAX_LIMIT)),
                ("metadata", "count"),
                *((f"q[{name}]", value) for name, value in terms),
            ]
            found, count = await self.client.list_rows(collection, params, lane="push")
            rows.extend(r for r in found if isinstance(r, Mapping))
            if len(found) < MAX_LIMIT or (count is not None and len(rows) >= count):
                break
        return rows

    def _newest(
        self, rows: Sequence[Mapping[str, Any]], matches: Callable[[Canonical], bool]
    ) -> VendorRecord | None:
        """The most recently created row whose canonical value ``matches``."""
        best: tuple[str, VendorRecord] | None = None
        for row in rows:
            mapped = self._map_row(row)
            if isinstance(mapped, Skipped) or not matches(mapped.value):
                continue
            created = row.get("created_at")
            key = created if isinstance(created, str) else ""
            if best is None or key >= best[0]:
                best = (key, mapped)
        return best[1] if best else None

    # ------------------------------------------------------------------ the contract

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Pages of records changed since ``cursor`` (all of them when None)."""
        position = _start(cursor)
        phases = self.phases(position.incremental)
        calls_before = self.client.calls
        previous_rows: set[tuple[str, str | None]] = set()
        restarts = 0
        while True:
            if position.phase >= len(phases):
                yield Page(
                    records=(),
                    skipped=(),
                    checkpoint={"updated_at": position.high},
                    final=True,
                    api_calls=self.client.calls - calls_before,
                )
                return
            phase = phases[position.phase]
            if phase.field == "probe":
                probed = await self._probe(phase.collection, position, lane)
                if probed is None:
                    position.next_phase()  # more than a page: the keyset phases read it
                    continue
                # The probe answered for the whole collection: skip its other two phases.
                position.phase += 2
                position.next_phase()
                final = position.phase >= len(phases)
                if not (probed[0] or probed[1] or final):
                    continue
                yield Page(
                    records=tuple(probed[0]),
                    skipped=tuple(probed[1]),
                    checkpoint=(
                        {"updated_at": position.high} if final else position.as_checkpoint()
                    ),
                    final=final,
                    api_calls=self.client.calls - calls_before,
                )
                calls_before = self.client.calls
                if final:
                    return
                continue
            # Re-read the last row seen: finding it at offset skip - 1 shows that no row of
            # its second moved in front of it since (else that second is read again).
            anchor = position.anchor if position.skip > 0 and restarts <= _RESTARTS else None
            offset = position.skip - 1 if anchor else position.skip
            limit = min(self._limit() + (1 if anchor else 0), MAX_LIMIT)
            params: list[tuple[str, str]] = [
                ("offset", str(offset)),
                ("limit", str(limit)),
                ("sort", phase.field),
                ("metadata", "count"),
            ]
            if position.key is not None:
                params.append((f"q[{phase.field}][ge]", position.key))
            if phase.field == "created_at":
                params.append(("q[updated_at]", "null"))
            rows, count = await self.client.list_rows(phase.collection, params, lane=lane)
            done = len(rows) < limit or (count is not None and offset + len(rows) >= count)
            if anchor is not None:
                head = rows[0] if rows else None
                if not (isinstance(head, Mapping) and head.get("id") == anchor):
                    # Rows of this second moved while we paged: read the second again.
                    restarts += 1
                    position.skip, position.anchor = 0, None
                    continue
                rows = rows[1:]

            records: list[VendorRecord] = []
            skipped: list[Skipped] = []
            seen: set[tuple[str, str | None]] = set()
            for row in rows:
                mapped = self._map_row(row)
                if isinstance(mapped, VendorRecord):
                    records.append(mapped)
                else:
                    skipped.append(mapped)
                stamp = _stamp(row, phase.field) if isinstance(row, Mapping) else None
                if mapped.external_id:
                    seen.add((mapped.external_id, stamp))
                if stamp is not None and stamp != position.key:
                    position.key, position.skip = stamp, 1
                else:
                    position.skip += 1
                position.anchor = mapped.external_id
                if isinstance(row, Mapping):
                    position.high = _later(position.high, _changed_at(row))
            if seen and seen <= previous_rows:
                # The same rows with the same timestamps: the vendor ignored our position.
                raise VendorUnavailable(
                    f"simplicate GET {phase.collection} returned the same page again "
                    "(pagination loop); the listing stopped"
                )
            previous_rows = seen
            if done:
                position.next_phase()
                previous_rows = set()
            final = done and position.phase >= len(phases)
            if not (records or skipped or final):
                continue
            checkpoint: dict[str, Any] = (
                {"updated_at": position.high} if final else position.as_checkpoint()
            )
            yield Page(
                records=tuple(records),
                skipped=tuple(skipped),
                checkpoint=checkpoint,
                final=final,
                api_calls=self.client.calls - calls_before,
            )
            calls_before = self.client.calls
            if final:
                return

    async def _probe(
        self, collection: Collection, position: _Position, lane: Lane
    ) -> tuple[list[VendorRecord], list[Skipped]] | None:
        """Every row changed or created since the pass's bound, when one page holds them.

        One request asks for ``updated_at >= since`` OR ``created_at >= since`` (the
        vendor's ``q[or][...]`` term), which is the union of the two keyset phases: a row
        created since the bound either has ``updated_at`` at or after its creation, or
        none. ``metadata=count`` tells whether the page holds every matching row; then
        the order of rows (and where rows without ``updated_at`` sort) does not matter,
        and the collection costs this one call. Otherwise None: the keyset phases read
        the collection as before (the probe's rows are read again there).
        """
        since = position.since
        if since is None:
            return None
        limit = self._limit()
        params: list[tuple[str, str]] = [
            ("offset", "0"),
            ("limit", str(limit)),
            ("sort", "updated_at"),
            ("metadata", "count"),
            ("q[updated_at][ge]", since),
            ("q[or][created_at][ge]", since),
        ]
        rows, count = await self.client.list_rows(collection, params, lane=lane)
        complete = len(rows) >= count if count is not None else len(rows) < limit
        if not complete:
            return None
        records: list[VendorRecord] = []
        skipped: list[Skipped] = []
        for row in rows:
            mapped = self._map_row(row)
            if isinstance(mapped, VendorRecord):
                records.append(mapped)
            else:
                skipped.append(mapped)
            if isinstance(row, Mapping):
                position.high = _later(position.high, _changed_at(row))
        return records, skipped

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Every id, in batches: ``sort=id`` sweeps whose pages overlap."""
        limit = self._limit()
        overlap = min(10, limit // 5)
        step = max(1, limit - overlap)
        yielded = False
        for collection in dict.fromkeys(self.kinds.values()):
            offset = 0
            previous: set[str] = set()
            while True:
                params = [
                    ("offset", str(offset)),
                    ("limit", str(limit)),
                    ("sort", "id"),
                    ("select", self.sweep_select),
                    ("metadata", "count"),
                ]
                rows, count = await self.client.list_rows(collection, params, lane=lane)
                batch: list[IdVersion] = []
                seen: set[str] = set()
                for row in rows:
                    if not isinstance(row, Mapping) or not isinstance(row.get("id"), str):
                        continue
                    external_id = row["id"]
                    seen.add(external_id)
                    if external_id in previous:
                        continue
                    version = row.get("updated_at") or row.get("created_at")
                    batch.append(
                        IdVersion(
                            external_id=external_id,
                            version=version if isinstance(version, str) else None,
                            archived=row.get("is_active") is False,
                        )
                    )
                if batch:
                    yielded = True
                    yield batch
                if len(rows) < limit or (count is not None and offset + len(rows) >= count):
                    break
                if seen and seen <= previous:
                    raise VendorUnavailable(
                        f"simplicate GET {collection} returned the same ids again during an "
                        "id sweep; the sweep stopped"
                    )
                previous = seen
                offset += step
        if not yielded:
            yield []

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One record, or None when Simplicate does not hold it."""
        collection = self._collection_of(external_id)
        if collection is None:
            return None
        try:
            return await self._read(collection, external_id, lane)
        except NotFound:
            return None


class ContactsResource(_SimplicateResource):
    """Organizations and persons as one ``contacts`` resource (ids keep their type)."""

    resource: Resource = "contacts"
    kinds: ClassVar[Mapping[str, Collection]] = {"organization": ORGANIZATION, "person": PERSON}
    sweep_select: ClassVar[str] = "id,is_active,updated_at"

    def map(self, raw: Any) -> Canonical:
        return contact_to_canonical(raw)

    @staticmethod
    def _collection(value: Contact) -> Collection:
        return ORGANIZATION if value.kind == "organization" else PERSON

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """POST the contact, then read back what Simplicate holds."""
        if not isinstance(value, Contact):
            raise TypeError(f"contacts take a Contact, not {type(value).__name__}")
        collection = self._collection(value)
        new_id = await self.client.create(collection, contact_from_canonical(value))
        return await self._read_back_created(collection, new_id)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """PUT only ``fields`` (a full address when any address field is asked), then read back."""
        if not isinstance(value, Contact):
            raise TypeError(f"contacts take a Contact, not {type(value).__name__}")
        collection = self._collection_of(external_id)
        if collection is None:
            raise NotFound(f"{external_id!r} is not a Simplicate organization or person id")
        if collection != self._collection(value):
            raise SkipRecord(
                f"Simplicate cannot turn {external_id} into a {value.kind}", external_id=external_id
            )
        wanted = fields & _CONTACT_WRITABLE
        address_key: str | None = None
        if collection == ORGANIZATION and wanted & ADDRESS_FIELDS:
            # The listed address is the postal one when the organization has a different
            # postal address: write the same one back.
            current = await self.client.get(collection, external_id, lane="push")
            postal = current.get("postal_address")
            if current.get("has_different_postal_address") is True and isinstance(postal, dict):
                address_key = "postal_address"
        body = contact_from_canonical(value, wanted, address_key=address_key)
        if body:
            await self.client.update(collection, external_id, body)
        return await self._read(collection, external_id, "push")

    async def remove(self, external_id: str) -> None:
        """Archive: ``is_active`` false (a CRM relation keeps its history)."""
        collection = self._collection_of(external_id)
        if collection is None:
            return
        try:
            await self.client.update(collection, external_id, {"is_active": False})
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Look a contact up by natural key (customer number, VAT, CoC, e-mail, name)."""
        if not isinstance(natural_key, Contact):
            return None
        wanted = normalise_contact(natural_key)
        collection = self._collection(wanted)
        body = contact_from_canonical(wanted)
        keys = (
            ("relation_number", "customer_number"),
            ("vat_number", "vat_number"),
            ("coc_code", "coc_number"),
            ("email", "email"),
        )
        terms: list[tuple[str, str]] = []
        matched_on: str | None = None
        for vendor_key, field in keys:
            text = body.get(vendor_key)
            if isinstance(text, str) and text:
                terms = [(vendor_key, text)]
                matched_on = field
                break
        if not terms:
            name_key = "name" if wanted.kind == "organization" else "family_name"
            text = body.get(name_key)
            if not isinstance(text, str) or not text:
                return None
            terms = [(name_key, text)]

        def same(candidate: Canonical) -> bool:
            if not isinstance(candidate, Contact) or candidate.kind != wanted.kind:
                return False
            if candidate.name.casefold() != wanted.name.casefold():
                return False
            return matched_on is None or getattr(candidate, matched_on) == getattr(
                wanted, matched_on
            )

        return self._newest(await self._candidates(collection, terms), same)


class InvoicesResource(_SimplicateResource):
    """Invoices with their lines; lines, status and due date are set when created."""

    resource: Resource = "invoices"
    kinds: ClassVar[Mapping[str, Collection]] = {"invoice": INVOICE}

    def __init__(self, adapter: SimplicateAdapter, page_size: int = MAX_LIMIT) -> None:
        super().__init__(adapter, page_size)
        self._lookups: InvoiceLookups | None = None
        self._lock = asyncio.Lock()

    def map(self, raw: Any) -> Canonical:
        return invoice_to_canonical(raw)

    async def lookups(self) -> InvoiceLookups:
        """VAT classes, statuses, payment terms and our profile: fetched once, then cached."""
        async with self._lock:
            if self._lookups is None:
                self._lookups = invoice_lookups(
                    await self.client.vat_classes(),
                    await self.client.invoice_statuses(),
                    await self.client.payment_terms(),
                    await self.client.organization_profiles(),
                )
            return self._lookups

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """POST the invoice with its lines (VAT classes by rate), then read it back."""
        if not isinstance(value, Invoice):
            raise TypeError(f"invoices take an Invoice, not {type(value).__name__}")
        body = invoice_from_canonical(value, await self.lookups())
        try:
            new_id = await self.client.create(INVOICE, body)
        except NotFound as exc:
            # A 404 on a create names a missing debtor, VAT class or term, not the invoice.
            raise SkipRecord(f"Simplicate refused the invoice: {exc}") from None
        return await self._read_back_created(INVOICE, new_id)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """PUT header fields (contact, date, reference); lines and due date are fixed."""
        if not isinstance(value, Invoice):
            raise TypeError(f"invoices take an Invoice, not {type(value).__name__}")
        if self._collection_of(external_id) is None:
            raise NotFound(f"{external_id!r} is not a Simplicate invoice id")
        fixed = sorted(fields - _INVOICE_WRITABLE - _INVOICE_DERIVED)
        if fixed:
            raise SkipRecord(
                f"Simplicate cannot change {', '.join(fixed)} of an existing invoice",
                external_id=external_id,
            )
        body = invoice_from_canonical(value, InvoiceLookups(), fields & _INVOICE_WRITABLE)
        if body:
            await self.client.update(INVOICE, external_id, body)
        return await self._read(INVOICE, external_id, "push")

    async def remove(self, external_id: str) -> None:
        """DELETE (Simplicate allows it for concept invoices; others are refused)."""
        if self._collection_of(external_id) is None:
            return
        try:
            await self.client.delete(INVOICE, external_id)
        except NotFound:
            return

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Look an invoice up by reference, else by debtor and date, comparing the lines."""
        if not isinstance(natural_key, Invoice) or not natural_key.contact:
            return None
        wanted = normalise_invoice(natural_key)
        kind = id_kind(wanted.contact)
        if kind not in ("organization", "person"):
            return None
        terms: list[tuple[str, str]] = []
        if wanted.reference:
            terms.append(("reference", wanted.reference))
        else:
            terms.append((f"{kind}_id", str(wanted.contact)))
            if wanted.issue_date is not None:
                terms.append(("date", wanted.issue_date.isoformat()))

        def lines_of(invoice: Invoice) -> list[tuple[Any, ...]]:
            return [
                (ln.description, ln.quantity, ln.unit_price, ln.vat_rate) for ln in invoice.lines
            ]

        def same(candidate: Canonical) -> bool:
            return (
                isinstance(candidate, Invoice)
                and candidate.contact == wanted.contact
                and candidate.reference == wanted.reference
                and (wanted.issue_date is None or candidate.issue_date == wanted.issue_date)
                and lines_of(candidate) == lines_of(wanted)
            )

        return self._newest(await self._candidates(INVOICE, terms), same)


class PaymentsResource(_SimplicateResource):
    """Payments on invoices. They carry no timestamps, so every listing is complete."""

    resource: Resource = "payments"
    kinds: ClassVar[Mapping[str, Collection]] = {"payment": PAYMENT}
    sweep_select: ClassVar[str] = "id"

    def map(self, raw: Any) -> Canonical:
        return payment_to_canonical(raw)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Every payment, by ``sort=id`` offset pages; the final cursor starts over."""
        offset = cursor.get("offset", 0) if cursor else 0
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            offset = 0
        limit = self._limit()
        while True:
            calls_before = self.client.calls
            params = [
                ("offset", str(offset)),
                ("limit", str(limit)),
                ("sort", "id"),
                ("metadata", "count"),
            ]
            rows, count = await self.client.list_payments(params, lane=lane)
            mapped = [self._map_row(row) for row in rows]
            offset += len(rows)
            final = len(rows) < limit or (count is not None and offset >= count)
            yield Page(
                records=tuple(m for m in mapped if isinstance(m, VendorRecord)),
                skipped=tuple(m for m in mapped if isinstance(m, Skipped)),
                checkpoint={"offset": 0} if final else {"offset": offset},
                final=final,
                api_calls=self.client.calls - calls_before,
            )
            if final:
                return

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """POST the payment, then read it back."""
        if not isinstance(value, Payment):
            raise TypeError(f"payments take a Payment, not {type(value).__name__}")
        try:
            new_id = await self.client.create(PAYMENT, payment_from_canonical(value))
        except NotFound as exc:
            raise SkipRecord(f"Simplicate refused the payment: {exc}") from None
        return await self._read_back_created(PAYMENT, new_id)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """PUT date, amount or description; a payment cannot move to another invoice."""
        if not isinstance(value, Payment):
            raise TypeError(f"payments take a Payment, not {type(value).__name__}")
        if self._collection_of(external_id) is None:
            raise NotFound(f"{external_id!r} is not a Simplicate payment id")
        if "invoice" in fields:
            current = await self.get(external_id, lane="push")
            if current is None:
                raise NotFound(f"simplicate holds no payment {external_id}")
            if isinstance(current.value, Payment) and current.value.invoice != value.invoice:
                raise SkipRecord(
                    "Simplicate cannot move a payment to another invoice", external_id=external_id
                )
        body = payment_from_canonical(value, fields & _PAYMENT_WRITABLE)
        if body:
            await self.client.update(PAYMENT, external_id, body)
        return await self._read(PAYMENT, external_id, "push")

    async def remove(self, external_id: str) -> None:
        """Simplicate's API cannot delete payments."""
        raise SkipRecord(
            "Simplicate's API cannot delete payments; remove it in Simplicate itself",
            external_id=external_id,
        )

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Look a payment up by invoice, date, amount and description."""
        if not isinstance(natural_key, Payment) or id_kind(natural_key.invoice) != "invoice":
            return None
        wanted = normalise_payment(natural_key)

        def same(candidate: Canonical) -> bool:
            return (
                isinstance(candidate, Payment)
                and (candidate.invoice, candidate.date, candidate.amount)
                == (wanted.invoice, wanted.date, wanted.amount)
                and (wanted.reference is None or candidate.reference == wanted.reference)
            )

        rows = await self._candidates(PAYMENT, [("invoice_id", str(wanted.invoice))])
        return self._newest(rows, same)


class SimplicateAdapter:
    """One Simplicate account behind the adapter contract."""

    vendor = "simplicate"

    def __init__(self, client: SimplicateClient, *, account: str) -> None:
        self.client = client
        self.account = account
        self.capabilities = CAPABILITIES
        self._resources: dict[Resource, ResourceAdapter] = {
            "contacts": ContactsResource(self),
            "invoices": InvoicesResource(self),
            "payments": PaymentsResource(self),
        }

    def resource(self, name: Resource) -> ResourceAdapter:
        """The adapter for ``name``; KeyError for anything else."""
        return self._resources[name]

    async def verify(self) -> None:
        """One cheap authenticated call: the first organization id."""
        await self.client.list_organizations(
            [("offset", "0"), ("limit", "1"), ("select", "id")], lane="pull"
        )
