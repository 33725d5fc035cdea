"""Sandbox fixtures: a served sandbox for vendor tests, and tiny stand-in emulators.

Vendor tests use ``sandbox`` (all four emulators, control API on, rate limits on, faults
off, a small seeded world) and ``sandbox_http``. Override ``sandbox_options``,
``sandbox_vendors`` or ``sandbox_clock`` in a test module to change what is served.

The framework's own tests use ``tiny_sandbox``: the same machinery serving minimal
emulators defined here, so they do not depend on any vendor module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from syncd.sandbox.base import (
    VENDORS,
    Clock,
    RateDecision,
    RateWindow,
    SandboxOptions,
    VendorEmulator,
    VendorName,
    VendorSeed,
)
from syncd.sandbox.testing import SandboxHandle, running_sandbox

# ---------------------------------------------------------------- fixtures for vendor tests


@pytest.fixture
def sandbox_options() -> SandboxOptions:
    """Control on, rate limits on, faults off, a small seeded world."""
    return SandboxOptions(
        seed=7,
        contacts=16,
        invoices=16,
        overlap=0.3,
        rate_limits=True,
        fault_rate=0.0,
        control=True,
    )


@pytest.fixture
def sandbox_vendors() -> tuple[VendorName, ...]:
    return VENDORS


@pytest.fixture
def sandbox_clock() -> Clock | None:
    """None: the wall clock. Override with a callable to freeze or advance time."""
    return None


@pytest.fixture
async def sandbox(
    sandbox_options: SandboxOptions,
    sandbox_vendors: tuple[VendorName, ...],
    sandbox_clock: Clock | None,
) -> AsyncIterator[SandboxHandle]:
    """A sandbox served on a free 127.0.0.1 port for the duration of one test."""
    async with running_sandbox(
        sandbox_options, vendors=sandbox_vendors, clock=sandbox_clock
    ) as handle:
        yield handle


@pytest.fixture
async def sandbox_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session with a short overall timeout."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


# ---------------------------------------------------------------- tiny stand-in emulators


class TinyEmulator(VendorEmulator):
    """The least an emulator needs: Bearer auth, contacts and invoices, its own 429."""

    name: VendorName = "moneybird"
    default_rate_windows = (RateWindow(requests=5, per_seconds=60.0),)

    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        super().__init__(options, clock)
        self.windows: tuple[RateWindow, ...] | None = None  # tests may swap limits
        self.rejected_count = False
        self.handled: list[str] = []  # handlers that ran
        self.seen_by_on_request = 0
        self.records: dict[str, dict[str, dict[str, Any]]] = {"contacts": {}, "invoices": {}}
        self.next_id = 1

    # --- serving
    def build_routes(self, app: web.Application) -> None:
        app.router.add_get("/contacts", self._list)
        app.router.add_get("/contacts/{id}", self._get)
        app.router.add_post("/contacts", self._post)

    def check_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.token()}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return None

    def token(self) -> str:
        """The Bearer token this stand-in accepts (vendors without a token get a made-up one)."""
        try:
            return self.credential("token")
        except KeyError:
            return f"tiny-{self.name}-token"

    def on_request(self, request: web.Request) -> None:
        self.seen_by_on_request += 1

    def current_rate_windows(self) -> tuple[RateWindow, ...]:
        return self.windows if self.windows is not None else self.default_rate_windows

    def counts_rejected_requests(self) -> bool:
        return self.rejected_count

    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        return web.json_response(
            "Retry later",
            status=429,
            headers={
                "RateLimit-Limit": str(decision.limit),
                "RateLimit-Remaining": str(decision.remaining),
                "Retry-After": str(max(1, round(decision.reset_seconds))),
            },
        )

    async def _list(self, request: web.Request) -> web.Response:
        self.handled.append("list")
        return web.json_response(list(self.records["contacts"].values()))

    async def _get(self, request: web.Request) -> web.Response:
        self.handled.append("get")
        record = self.records["contacts"].get(request.match_info["id"])
        if record is None:
            return web.json_response({"error": "record not found"}, status=404)
        return web.json_response(record)

    async def _post(self, request: web.Request) -> web.Response:
        self.handled.append("post")
        body = await request.json()
        record = self.create("contacts", body)
        self.counters.writes += 1
        return web.json_response(record, status=201)

    # --- state and control
    def load_seed(self, seed: VendorSeed) -> None:
        self.records = {"contacts": {}, "invoices": {}}
        self.next_id = 1
        for contact in seed.contacts:
            self.create("contacts", {"name": contact.name, "email": contact.email})
        for invoice in seed.invoices:
            self.create("invoices", {"number": invoice.number, "paid": "0.00"})

    def dump(self) -> dict[str, Any]:
        return {name: list(records.values()) for name, records in self.records.items()}

    def _table(self, resource: str) -> dict[str, dict[str, Any]]:
        if resource not in self.records:
            raise KeyError(f"no resource {resource!r}")
        return self.records[resource]

    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        table = self._table(resource)
        if "id" in fields:
            raise ValueError("id is assigned by the vendor")
        record = {"id": str(self.next_id), **fields, "archived": False}
        self.next_id += 1
        table[record["id"]] = record
        return record

    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        record = self._table(resource)[record_id]
        if "id" in fields:
            raise ValueError("id cannot change")
        record.update(fields)
        return record

    def delete(self, resource: str, record_id: str) -> None:
        del self._table(resource)[record_id]

    def archive(self, resource: str, record_id: str) -> dict[str, Any]:
        if resource != "contacts":
            raise ValueError(f"{resource} cannot be archived")
        record = self._table(resource)[record_id]
        record["archived"] = True
        return record

    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        invoice = self._table("invoices")[invoice_id]
        if amount <= 0:
            raise ValueError("amount must be positive")
        invoice["paid"] = str(Decimal(invoice["paid"]) + amount)
        return {"invoice_id": invoice_id, "amount": str(amount), "date": date.isoformat()}


def _tiny_class(vendor: VendorName) -> type[TinyEmulator]:
    return type(f"Tiny{vendor.capitalize()}", (TinyEmulator,), {"name": vendor})


TINY_CLASSES: dict[str, type[VendorEmulator]] = {v: _tiny_class(v) for v in VENDORS}


@pytest.fixture
def tiny_classes() -> dict[str, type[VendorEmulator]]:
    """A stand-in emulator class for each vendor name (Bearer token auth)."""
    return TINY_CLASSES


@pytest.fixture
def tiny_emulator() -> Callable[..., TinyEmulator]:
    """Build a stand-in emulator outside any server (for limiter unit tests)."""

    def make(
        options: SandboxOptions | None = None,
        vendor: VendorName = "moneybird",
        clock: Clock | None = None,
    ) -> TinyEmulator:
        cls = _tiny_class(vendor)
        return cls(options or SandboxOptions(), clock or (lambda: dt.datetime.now(dt.UTC)))

    return make


@pytest.fixture
def tiny_options() -> SandboxOptions:
    return SandboxOptions(seed=3, contacts=8, invoices=8, control=True, fault_rate=0.0)


@pytest.fixture
async def tiny_sandbox(tiny_options: SandboxOptions) -> AsyncIterator[SandboxHandle]:
    """The framework serving stand-in emulators for all four vendor names."""
    async with running_sandbox(tiny_options, emulator_classes=TINY_CLASSES) as handle:
        yield handle


@pytest.fixture
def auth() -> Callable[[SandboxHandle, VendorName], dict[str, str]]:
    """Headers that pass a stand-in emulator's auth check."""

    def headers(handle: SandboxHandle, vendor: VendorName = "moneybird") -> dict[str, str]:
        emulator = handle.emulators[vendor]
        assert isinstance(emulator, TinyEmulator)
        return {"Authorization": f"Bearer {emulator.token()}"}

    return headers
