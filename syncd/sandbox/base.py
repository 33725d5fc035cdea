"""The contract between the sandbox framework and each vendor emulator.

The framework (``common.py``, ``server.py``, ``control.py``, ``seed.py``) owns what every
emulator shares: request counting, rate-limit windows, seeded fault injection, the
``/_sandbox/`` control API and the vendor-neutral seeded world. Each vendor module
(``simplicate.py``, ``moneybird.py``, ``perfex.py``, ``simplbooks.py``) owns its routes, its
in-memory records, its auth check and its own 429/401 response shapes.

A vendor emulator is a subclass of :class:`VendorEmulator`. The framework calls
``build_routes`` once, wraps every request in its middleware (count -> auth -> rate
limit -> fault -> handler), and calls the control hooks from the control API.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web

VendorName = Literal["simplicate", "moneybird", "perfex", "simplbooks"]
VENDORS: tuple[VendorName, ...] = ("simplicate", "moneybird", "perfex", "simplbooks")

# Every fault kind the injector knows. "lost_response" means: the handler runs and its
# write is committed, then the connection is dropped before the response is sent.
FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",  # the vendor's own 429
    "server_error",  # 500
    "unavailable",  # 503
    "reset",  # connection reset before the handler runs (nothing written)
    "slow",  # the response is delayed past a client timeout (options.slow_seconds)
    "garbled",  # 200 with a truncated/garbled JSON body (reads only)
    "html",  # 200 with an HTML error page (reads only)
    "lost_response",  # write committed, response lost (writes only)
)


# ---------------------------------------------------------------- seeded, vendor-neutral world


@dataclass(frozen=True, slots=True)
class SeedContact:
    """A company or person as it exists in the real world, before any vendor formats it."""

    key: str  # stable world id, e.g. "c0007"; the same company in two vendors shares a key
    kind: Literal["organization", "person"]
    name: str  # company name, or "First Last" for a person
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    website: str | None
    address: str | None  # street + number
    postal_code: str | None
    city: str | None
    country: str  # ISO-3166 alpha-2: "NL" or "EE"
    vat_number: str | None
    coc_number: str | None  # KvK (NL, 8 digits) or registrikood (EE, 8 digits)
    iban: str | None  # valid checksum
    bic: str | None
    customer_number: str | None
    created_at: dt.datetime  # UTC-aware
    updated_at: dt.datetime  # UTC-aware


@dataclass(frozen=True, slots=True)
class SeedLine:
    description: str
    quantity: Decimal
    unit_price: Decimal  # excl. VAT, 2 decimals
    vat_rate: Decimal  # percent: 21, 9, 0 (NL) or 22, 9, 0 (EE)


@dataclass(frozen=True, slots=True)
class SeedPayment:
    date: dt.date
    amount: Decimal  # incl. VAT, 2 decimals


@dataclass(frozen=True, slots=True)
class SeedInvoice:
    key: str  # e.g. "i0012"
    contact_key: str
    number: str | None  # None for drafts
    issue_date: dt.date
    due_date: dt.date
    currency: str  # "EUR"
    status: Literal["draft", "open", "sent", "partially_paid", "paid", "overdue", "cancelled"]
    lines: tuple[SeedLine, ...]
    payments: tuple[SeedPayment, ...]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class VendorSeed:
    """What one vendor starts with: contacts (already given this vendor's small formatting
    differences where they overlap another vendor) and invoices that reference them."""

    contacts: tuple[SeedContact, ...]
    invoices: tuple[SeedInvoice, ...]


# ---------------------------------------------------------------- options and counters


@dataclass(frozen=True, slots=True)
class RateWindow:
    requests: int
    per_seconds: float


@dataclass(slots=True)
class SandboxOptions:
    """Everything that shapes a sandbox run; all of it can be changed through the control API."""

    seed: int = 1
    contacts: int = 40  # size of the world; each vendor gets a share
    invoices: int = 40
    overlap: float = 0.3  # share of contacts that exist in more than one vendor
    rate_limits: bool = True
    rate_scale: float = 1.0  # windows are divided by this: 60 s at scale 60 becomes 1 s
    fault_rate: float = 0.0  # probability that a request gets a fault
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    slow_seconds: float = 35.0  # delay of a "slow" fault (> a client's read timeout)
    control: bool = False  # serve /_sandbox/ (tests and the demo only)
    # Fixed default credentials, printed by `syncd sandbox`; override per vendor.
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    # Fixed ids that appear in URLs.
    moneybird_administration_id: str = "123456789"
    simplbooks_company_id: str = "demo"


@dataclass(slots=True)
class Counters:
    """What the sandbox saw: tests assert on these through the control API."""

    requests: dict[str, int] = field(default_factory=dict)  # "GET /crm/organization" -> n
    rate_limited: int = 0  # 429s sent, from rate limits and from faults
    writes: int = 0  # committed creates/updates/deletes
    faults: dict[str, int] = field(default_factory=dict)  # kind -> n
    auth_failures: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "requests_total": sum(self.requests.values()),
            "rate_limited": self.rate_limited,
            "writes": self.writes,
            "faults": dict(self.faults),
            "auth_failures": self.auth_failures,
        }


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Result of taking one request from a vendor's windows."""

    allowed: bool
    limit: int  # the tightest window's size
    remaining: int  # requests left in the tightest window
    reset_seconds: float  # until the tightest window frees a request
    window_seconds: float


# ---------------------------------------------------------------- the emulator contract


Clock = Callable[[], dt.datetime]  # returns UTC-aware "now"; tests may freeze or advance it


class VendorEmulator(abc.ABC):
    """One vendor's API. Subclasses keep their records in plain dicts (in memory)."""

    name: VendorName
    # The vendor's documented limits, before options.rate_scale is applied.
    default_rate_windows: tuple[RateWindow, ...]

    def __init__(self, options: SandboxOptions, clock: Clock) -> None:
        self.options = options
        self.clock = clock
        self.counters = Counters()

    # --- serving
    @abc.abstractmethod
    def build_routes(self, app: web.Application) -> None:
        """Add this vendor's routes to ``app`` (paths relative to the vendor's prefix)."""

    @abc.abstractmethod
    def check_auth(self, request: web.Request) -> web.Response | None:
        """Return the vendor's own auth-failure response, or None when auth is fine."""

    @abc.abstractmethod
    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        """The vendor's own 429, with its documented headers."""

    def current_rate_windows(self) -> tuple[RateWindow, ...]:
        """The windows in force right now, before options.rate_scale is applied.

        Override to change limits at runtime (e.g. SimplBooks halving its limit after a
        busy day); the framework asks before every request.
        """
        return self.default_rate_windows

    def on_request(self, request: web.Request) -> None:
        """Called for every request that passed auth, before rate limiting (no-op default)."""
        return None

    def credential(self, key: str) -> str:
        """The credential value this emulator expects: options.credentials, else the default.

        Raises KeyError when neither defines ``key`` for this vendor.
        """
        from syncd.sandbox.registry import DEFAULT_CREDENTIALS  # lazy: registry imports us

        configured = self.options.credentials.get(self.name, {})
        if key in configured:
            return configured[key]
        return DEFAULT_CREDENTIALS[self.name][key]

    def server_error_response(self, status: int) -> web.Response:
        """The body an injected 500/503 fault answers with; override for the vendor's own."""
        if status == 503:
            page = (
                "<html><head><title>503 Service Temporarily Unavailable</title></head>"
                "<body><center><h1>503 Service Temporarily Unavailable</h1></center>"
                "<hr><center>nginx</center></body></html>"
            )
            return web.Response(status=503, text=page, content_type="text/html")
        return web.json_response({"error": "Internal Server Error"}, status=status)

    def counts_rejected_requests(self) -> bool:
        """Whether a request answered with 429 still uses up the window (SimplBooks: yes)."""
        return False

    def is_write(self, request: web.Request) -> bool:
        """Whether this request writes (used for fault selection and counters)."""
        return request.method in {"POST", "PUT", "PATCH", "DELETE"}

    def route_key(self, request: web.Request) -> str:
        """A counter key for the request: method + route template, ids collapsed."""
        resource = request.match_info.route.resource
        canonical = resource.canonical if resource is not None else request.path
        return f"{request.method} {canonical}"

    # --- state and control
    @abc.abstractmethod
    def load_seed(self, seed: VendorSeed) -> None:
        """Replace all records with the seeded ones (in this vendor's own shapes)."""

    @abc.abstractmethod
    def dump(self) -> dict[str, Any]:
        """All records as JSON-able data, in this vendor's own shapes, by resource."""

    @abc.abstractmethod
    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change a record as a human user would (bump updated_at/version); return it.

        Raises KeyError when the record does not exist, ValueError for a bad field.
        """

    @abc.abstractmethod
    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a record as a human user would; return it (with its new id)."""

    @abc.abstractmethod
    def delete(self, resource: str, record_id: str) -> None:
        """Delete a record as a human user would. Raises KeyError when absent."""

    def archive(self, resource: str, record_id: str) -> dict[str, Any]:
        """Archive a record (vendors with archiving only). Raises KeyError / ValueError."""
        raise ValueError(f"{self.name} has no archive for {resource}")

    @abc.abstractmethod
    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        """Register a payment on an invoice as a bookkeeper would; return the payment."""

    def reset(self) -> None:
        """Forget all records and counters."""
        self.load_seed(VendorSeed(contacts=(), invoices=()))
        self.counters = Counters()
