"""The contract every vendor adapter fulfils, and the value types it speaks in.

An adapter turns one vendor account into three resources — contacts, invoices,
payments — each behind the same :class:`ResourceAdapter` protocol. Adapters speak only
canonical values (``syncd.core.model``) and external ids; the engine never sees vendor
JSON. Everything an adapter may do over HTTP goes through ``VendorHttp`` (``http.py``),
which is where statuses become ``syncd.errors`` exceptions and where the rate budget is
taken.

Change detection comes in two flavours, declared in :class:`Capabilities`:

``incremental``
    ``list_changes(cursor)`` returns only records changed since the cursor (Moneybird
    ``updated_after``, Simplicate ``q[updated_at][ge]`` with an overlap window). Records
    may repeat across passes (overlap); the engine recognises unchanged ones by their
    fingerprint.
``snapshot``
    The vendor has no change timestamps (Perfex, SimplBooks): ``list_changes`` lists
    everything every time and the engine skips records whose fingerprint it already holds.

Paging and checkpoints: ``list_changes`` yields one :class:`Page` per vendor page. Each
page carries a ``checkpoint`` (JSON-able) that, passed back as ``cursor``, resumes the
listing *after* that page; the last page has ``final=True`` and its checkpoint is the
cursor for the next pass. Memory stays O(page).

Writes return what the vendor holds afterwards (from the response, or a read-back when
the vendor returns only an id), so the engine can store it as the link's base and
recognise the echo on the next pull.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

from syncd.core.model import Contact, Invoice, Payment, UnstorableValue, storable
from syncd.errors import SkipRecord

Resource: TypeAlias = Literal["contacts", "invoices", "payments"]
RESOURCES: tuple[Resource, ...] = ("contacts", "invoices", "payments")
Lane: TypeAlias = Literal["push", "pull", "reconcile"]
Canonical: TypeAlias = Contact | Invoice | Payment
Checkpoint: TypeAlias = Mapping[str, Any]  # JSON-able; opaque to the engine
_C = TypeVar("_C", Contact, Invoice, Payment)

# The longest external id syncd keeps. Ids are indexed (links, quarantine), and a
# PostgreSQL btree entry holds at most 2704 bytes; real vendor ids have 45 characters at
# most (Simplicate's ``organization:<32 hex>``). Mappings refuse a longer id.
MAX_EXTERNAL_ID_LENGTH: Final = 255


def refuse_long_id(external_id: str, what: str) -> None:
    """SkipRecord (without the id) when ``external_id`` is longer than syncd keeps."""
    if len(external_id) > MAX_EXTERNAL_ID_LENGTH:
        raise SkipRecord(
            f"{what} id is {len(external_id)} characters long; syncd keeps ids of at most "
            f"{MAX_EXTERNAL_ID_LENGTH}"
        )


def storable_value(value: _C, external_id: str | None = None) -> _C:
    """``value`` normalised, or a ``SkipRecord`` naming each field the store cannot hold.

    Every mapping returns its canonical values through here, so that one record with an
    8 KB e-mail address or an amount beyond the store's numeric columns is quarantined
    with that reason while the rest of its page syncs (see ``syncd.core.model.storable``).
    """
    try:
        return storable(value)
    except UnstorableValue as exc:
        raise SkipRecord(f"cannot be stored: {exc}", external_id=external_id) from None


@dataclass(frozen=True, slots=True)
class VendorRecord:
    """One vendor record, already mapped to its canonical value."""

    external_id: str
    value: Canonical
    # The vendor's own change marker, when it has one (Moneybird ``version``, an
    # ``updated_at`` string...). Used to skip unchanged records cheaply.
    version: str | None = None
    updated_at: dt.datetime | None = None  # UTC-aware; the vendor's modification time
    # Secondary ids the engine should know (e.g. Perfex primary contact id). JSON-able.
    extra: Mapping[str, Any] = field(default_factory=dict)


# Text no database column can hold: NUL (PostgreSQL refuses it) and lone surrogates
# (not encodable as UTF-8). JSON escapes can put either into a parsed vendor string.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON data that every store can hold, for a quarantine payload.

    Decimals become their exact text, dates ISO text, tuples and sets lists, keys text,
    NaN and infinities text, anything else its repr; NUL and lone surrogates in text
    become U+FFFD.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):  # NaN and Infinity are not JSON (PostgreSQL refuses them)
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, Mapping):
        return {json_safe(str(k)): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return json_safe(repr(value))


@dataclass(frozen=True, slots=True)
class Skipped:
    """A vendor record that could not be mapped; quarantined with ``reason``.

    ``payload`` (and ``reason``, which may quote vendor text) are made storable on
    construction: see ``json_safe``.
    """

    external_id: str | None
    reason: str
    payload: Mapping[str, Any] | str  # the raw vendor data (never holds our secrets)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", json_safe(self.payload))
        object.__setattr__(self, "reason", json_safe(self.reason))
        if self.external_id is not None:
            # An id too long to index is not kept (the payload still holds it).
            kept = len(self.external_id) <= MAX_EXTERNAL_ID_LENGTH
            object.__setattr__(self, "external_id", json_safe(self.external_id) if kept else None)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing: mapped records, skipped ones, and where to resume."""

    records: tuple[VendorRecord, ...]
    skipped: tuple[Skipped, ...]
    checkpoint: Checkpoint
    final: bool
    api_calls: int = 1


@dataclass(frozen=True, slots=True)
class IdVersion:
    """One entry of an id sweep (reconcile): an id, and its version where the vendor has one."""

    external_id: str
    version: str | None = None
    archived: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a vendor can do; the planner and guards read these, never vendor names."""

    change_detection: Literal["incremental", "snapshot"]
    # Per resource: how a removal is expressed at this vendor.
    removal: Mapping[Resource, Literal["delete", "archive", "none"]]
    # Per resource: canonical fields this vendor can store and write.
    writable_fields: Mapping[Resource, frozenset[str]]
    # Canonical invoice fields that may still change once the vendor has sent it.
    sent_invoice_mutable_fields: frozenset[str]
    max_page_size: int
    webhooks: bool
    # Per resource: where the vendor can carry our client token (None: natural key only).
    client_token_field: Mapping[Resource, str | None]
    # Whether this vendor assigns invoice numbers itself (bookkeeping) or takes ours (CRM).
    assigns_invoice_numbers: bool = False
    # Whether an invoice can wait here as an unnumbered draft (False: every invoice
    # created is final, so a draft from elsewhere is not created until it is finalised).
    invoice_drafts: bool = True
    # Whether the vendor tells persons from organizations (False: every contact reads as
    # one kind, so the kind it reports says nothing).
    contact_kinds: bool = True


@runtime_checkable
class ResourceAdapter(Protocol):
    """One resource (contacts, invoices or payments) of one vendor account."""

    resource: Resource

    def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        """Yield pages of records changed since ``cursor`` (everything when None or when
        the vendor is snapshot-only); the last page has ``final=True``."""
        ...

    def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        """Yield every id the vendor currently holds (archived ones flagged), in batches."""
        ...

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        """One record, or None when the vendor says it does not exist."""
        ...

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        """Create a record; ``client_token`` is written where the vendor has a field for it.

        Raises ``Uncertain`` when the request was sent and its outcome is unknown: the
        caller must call ``find`` before any retry.
        """
        ...

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        """Write ``fields`` of ``value`` (the full desired canonical record) to the vendor."""
        ...

    async def remove(self, external_id: str) -> None:
        """Delete or archive, as ``Capabilities.removal`` says for this resource."""
        ...

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        """Look a record up by client token, else by natural key (to settle ``Uncertain``)."""
        ...


@runtime_checkable
class VendorAdapter(Protocol):
    """One vendor account: its capabilities and its resources."""

    vendor: str
    account: str
    capabilities: Capabilities

    def resource(self, name: Resource) -> ResourceAdapter:
        """The adapter for ``name``; raises KeyError for a resource the vendor lacks."""
        ...

    async def verify(self) -> None:
        """One cheap authenticated call; raises AuthFailed / VendorUnavailable."""
        ...
