"""An in-memory vendor and its adapter, for engine tests.

``FakeVendor`` holds the records a vendor would hold and lets a test act on it as a human
user would (create, edit, delete, archive), inject faults, and count calls and writes.
``FakeAdapter`` implements the adapter contract over it and passes the same contract
suite as the real adapters, so engine tests on the fake rely on real behaviour.

A vendor is ``incremental`` (every change gets a higher sequence number, and the cursor
is the highest sequence seen, like Moneybird versions) or ``snapshot`` (every listing is
everything, like Perfex). Faults follow the HTTP layer's rules: a failed read is retried
as often as ``VendorHttp`` tries a safe call and then raises ``VendorUnavailable``; a
failed write raises ``Uncertain`` (with the write committed or not, at random, as
"response lost" or "reset") or ``RateLimited`` (not committed).

``create_adapter`` is the registry's factory for the vendor slug "fake": accounts with the
same ``base_url`` share one ``FakeVendor`` (see ``shared_vendor``), so a test can act on
the vendor behind an adapter the application built.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from syncd.adapters.base import (
    Canonical,
    Capabilities,
    Checkpoint,
    IdVersion,
    Lane,
    Page,
    Resource,
    ResourceAdapter,
    VendorAdapter,
    VendorRecord,
)
from syncd.adapters.http import DEFAULT_ATTEMPTS, RateBudget
from syncd.core.model import (
    CONTACT_FIELDS,
    INVOICE_FIELDS,
    PAYMENT_FIELDS,
    Contact,
    Invoice,
    Payment,
    normalise,
)
from syncd.errors import AuthFailed, RateLimited, Uncertain, VendorUnavailable

if TYPE_CHECKING:
    import aiohttp

    from syncd.settings import AccountSettings

# A faulted read is tried as often as VendorHttp tries a safe call.
READ_ATTEMPTS = DEFAULT_ATTEMPTS


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class _Stored:
    value: Canonical
    seq: int
    updated_at: dt.datetime
    token: str | None = None
    deleted: bool = False


@dataclass(slots=True)
class FakeVendor:
    """The vendor's side: records, a sequence clock, faults and counters."""

    name: str = "fake"
    change_detection: Literal["incremental", "snapshot"] = "incremental"
    removal: Literal["delete", "archive"] = "delete"
    credentials: str = "good"
    clock: Callable[[], dt.datetime] = _utcnow
    seed: int = 0
    records: dict[Resource, dict[str, _Stored]] = field(
        default_factory=lambda: {"contacts": {}, "invoices": {}, "payments": {}}
    )
    seq: int = 0
    next_id: int = 1000
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ()
    calls: int = 0
    writes: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)  # noqa: S311 - test double, not crypto

    # -- acting as a human user of the vendor
    def human_create(self, resource: Resource, value: Canonical) -> str:
        external_id = str(self.next_id)
        self.next_id += 1
        self._put(resource, external_id, normalise(value), token=None)
        return external_id

    def human_edit(self, resource: Resource, external_id: str, **changes: Any) -> Canonical:
        stored = self._live(resource, external_id)
        value = normalise(dataclasses.replace(stored.value, **changes))
        self._put(resource, external_id, value, token=stored.token)
        return value

    def human_delete(self, resource: Resource, external_id: str) -> None:
        stored = self._live(resource, external_id)
        self.seq += 1
        stored.deleted = True
        stored.seq = self.seq

    def human_archive(self, external_id: str) -> None:
        self.human_edit("contacts", external_id, archived=True)

    def live(self, resource: Resource) -> dict[str, Canonical]:
        """Every record the vendor holds (archived ones included), by id."""
        return {k: s.value for k, s in self.records[resource].items() if not s.deleted}

    # -- internals shared with the adapter
    def _live(self, resource: Resource, external_id: str) -> _Stored:
        stored = self.records[resource].get(external_id)
        if stored is None or stored.deleted:
            raise KeyError(f"{resource} {external_id} does not exist")
        return stored

    def _put(
        self, resource: Resource, external_id: str, value: Canonical, token: str | None
    ) -> None:
        self.seq += 1
        self.records[resource][external_id] = _Stored(
            value=value, seq=self.seq, updated_at=self.clock(), token=token
        )

    def _fault(self, *, write: bool) -> str | None:
        self.calls += 1
        if self.fault_rate <= 0 or self._rng.random() >= self.fault_rate:
            return None
        allowed = _WRITE_KINDS if write else _READ_KINDS
        kinds = [k for k in self.fault_kinds if k in allowed]
        return self._rng.choice(kinds) if kinds else None


_READ_KINDS = frozenset({"rate_limit", "server_error", "unavailable", "reset", "garbled", "html"})
_WRITE_KINDS = frozenset({"rate_limit", "server_error", "unavailable", "reset", "lost_response"})

_FIELDS: Mapping[Resource, frozenset[str]] = {
    "contacts": frozenset(CONTACT_FIELDS),
    "invoices": frozenset(INVOICE_FIELDS),
    "payments": frozenset(PAYMENT_FIELDS),
}


class FakeResource(ResourceAdapter):
    """One resource of a FakeVendor behind the adapter contract."""

    def __init__(
        self,
        vendor: FakeVendor,
        resource: Resource,
        page_size: int = 50,
        budget: RateBudget | None = None,
    ) -> None:
        self.vendor = vendor
        self.resource = resource
        self.page_size = page_size
        self.budget = budget

    # -- fault plumbing, mirroring http.py's rules
    async def _take(self, lane: Lane) -> None:
        """One token per simulated request, as VendorHttp takes one per attempt."""
        if self.budget is not None:
            await self.budget.acquire(lane)

    async def _read(self, lane: Lane = "pull") -> None:
        self._auth()
        for _ in range(READ_ATTEMPTS):
            await self._take(lane)
            if self.vendor._fault(write=False) is None:
                return
            await asyncio.sleep(0)
        raise VendorUnavailable(f"{self.vendor.name} kept failing")

    def _auth(self) -> None:
        if self.vendor.credentials != "good":
            raise AuthFailed(f"{self.vendor.name} rejected the credentials")

    async def _write_fault(self) -> str | None:
        self._auth()
        await self._take("push")
        kind = self.vendor._fault(write=True)
        if kind == "rate_limit":
            raise RateLimited(f"{self.vendor.name} answered 429", retry_after=0.0)
        return kind

    def _after_write(self, kind: str | None) -> None:
        if kind is not None:
            raise Uncertain(f"{self.vendor.name} write outcome unknown ({kind})")

    def _record(self, external_id: str, stored: _Stored) -> VendorRecord:
        return VendorRecord(
            external_id=external_id,
            value=stored.value,
            version=str(stored.seq),
            updated_at=stored.updated_at,
        )

    # -- the contract
    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        incremental = self.vendor.change_detection == "incremental"
        since = int(cursor.get("seq", 0)) if (cursor and incremental) else 0
        start = int(cursor.get("offset", 0)) if (cursor and not incremental) else 0
        items = sorted(
            (
                (s.seq, k, s)
                for k, s in self.vendor.records[self.resource].items()
                if not s.deleted and (s.seq > since)
            ),
            key=lambda t: (t[0], t[1]) if incremental else (0, int(t[1])),
        )
        if not incremental:
            items = items[start:]
        high = self.vendor.seq
        offset = start
        while True:
            await self._read(lane)
            chunk, items = items[: self.page_size], items[self.page_size :]
            offset += len(chunk)
            final = not items
            if incremental:
                checkpoint: dict[str, Any] = {"seq": high if final else chunk[-1][0]}
            else:
                checkpoint = {"offset": 0 if final else offset}
            yield Page(
                records=tuple(self._record(k, s) for _, k, s in chunk),
                skipped=(),
                checkpoint=checkpoint,
                final=final,
            )
            if final:
                return

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        await self._read(lane)
        batch = [
            IdVersion(k, str(s.seq), archived=bool(getattr(s.value, "archived", False)))
            for k, s in sorted(self.vendor.records[self.resource].items())
            if not s.deleted
        ]
        for i in range(0, len(batch), 100):
            yield batch[i : i + 100]
        if not batch:
            yield []

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        await self._read(lane)
        stored = self.vendor.records[self.resource].get(external_id)
        if stored is None or stored.deleted:
            return None
        return self._record(external_id, stored)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        kind = await self._write_fault()
        if kind in (None, "lost_response") or (kind and self.vendor._rng.random() < 0.5):
            external_id = str(self.vendor.next_id)
            self.vendor.next_id += 1
            self.vendor._put(self.resource, external_id, normalise(value), token=client_token)
            self.vendor.writes += 1
            self._after_write(kind)
            return self._record(external_id, self.vendor.records[self.resource][external_id])
        self._after_write(kind)
        raise AssertionError("unreachable")  # pragma: no cover

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        unknown = fields - _FIELDS[self.resource]
        if unknown:
            raise ValueError(f"unknown {self.resource} field(s): {sorted(unknown)}")
        kind = await self._write_fault()
        stored = self.vendor._live(self.resource, external_id)
        if kind in (None, "lost_response") or (kind and self.vendor._rng.random() < 0.5):
            changes = {name: getattr(value, name) for name in fields}
            new = normalise(dataclasses.replace(stored.value, **changes))
            self.vendor._put(self.resource, external_id, new, token=stored.token)
            self.vendor.writes += 1
        self._after_write(kind)
        return self._record(external_id, self.vendor.records[self.resource][external_id])

    async def remove(self, external_id: str) -> None:
        kind = await self._write_fault()
        self.vendor._live(self.resource, external_id)
        if kind in (None, "lost_response") or (kind and self.vendor._rng.random() < 0.5):
            if self.vendor.removal == "archive" and self.resource == "contacts":
                self.vendor.human_archive(external_id)
            else:
                self.vendor.human_delete(self.resource, external_id)
            self.vendor.writes += 1
        self._after_write(kind)

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        await self._read("push")  # a lookup that settles an uncertain write
        live = [(k, s) for k, s in self.vendor.records[self.resource].items() if not s.deleted]
        if client_token is not None:
            for k, s in live:
                if s.token == client_token:
                    return self._record(k, s)
        if natural_key is not None:
            wanted = _natural_key(normalise(natural_key))
            for k, s in live:
                if _natural_key(s.value) == wanted:
                    return self._record(k, s)
        return None


def _natural_key(value: Canonical) -> tuple[Any, ...]:
    if isinstance(value, Contact):
        return ("contact", value.name.casefold(), value.email)
    if isinstance(value, Invoice):
        return ("invoice", value.reference or value.number, value.contact)
    assert isinstance(value, Payment)
    return ("payment", value.invoice, value.date, value.amount, value.reference)


class FakeAdapter(VendorAdapter):
    """A VendorAdapter over a FakeVendor."""

    def __init__(
        self,
        vendor: FakeVendor,
        *,
        account: str = "fake",
        page_size: int = 50,
        budget: RateBudget | None = None,
    ) -> None:
        self.vendor_state = vendor
        self.vendor = "fake"
        self.account = account
        self.capabilities = Capabilities(
            change_detection=vendor.change_detection,
            removal={"contacts": vendor.removal, "invoices": "delete", "payments": "delete"},
            writable_fields=_FIELDS,
            sent_invoice_mutable_fields=frozenset({"status", "payments", "due_date"}),
            max_page_size=100,
            webhooks=False,
            client_token_field={"contacts": "token", "invoices": "token", "payments": "token"},
        )
        self._resources = {r: FakeResource(vendor, r, page_size, budget) for r in _FIELDS}

    def resource(self, name: Resource) -> FakeResource:
        return self._resources[name]

    async def verify(self) -> None:
        await self._resources["contacts"]._read()


# ---------------------------------------------------------------- the registry's factory

_SHARED: dict[str, FakeVendor] = {}


def shared_vendor(key: str) -> FakeVendor:
    """The FakeVendor behind ``key`` (an account's base_url), made on first use.

    Every adapter ``create_adapter`` builds for the same base_url acts on this one vendor,
    so a test can seed it, edit it as a human would, or inject faults.
    """
    vendor = _SHARED.get(key)
    if vendor is None:
        vendor = _SHARED[key] = FakeVendor(name=f"fake {key}")
    return vendor


def forget_shared_vendors() -> None:
    """Drop every shared FakeVendor (between tests)."""
    _SHARED.clear()


def create_adapter(
    account: AccountSettings,
    session: aiohttp.ClientSession,
    *,
    budget: RateBudget | None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> FakeAdapter:
    """The registry's factory for "fake": an adapter over ``shared_vendor(account.base_url)``.

    ``session`` and ``sleep`` are accepted for the factory signature and not used (nothing
    goes over the network, and the fake never waits); ``budget`` gets one token per
    simulated request.
    """
    return FakeAdapter(shared_vendor(account.base_url), account=account.name, budget=budget)
