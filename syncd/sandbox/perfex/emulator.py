"""Perfex CRM ``/api/v1`` emulator: customers, contacts, invoices, payments, lookups.

Routes (relative to the framework prefix ``/perfex/api/v1``); auth is ``X-API-KEY: <key>`` or
``Authorization: Bearer <jwt>``; bodies are JSON:

    GET|POST        /customers              GET|PUT|DELETE /customers/{id}
    GET             /customers/{id}/contacts               /customers/{id}/invoices
    GET|POST        /contacts               GET|PUT|DELETE /contacts/{id}
    GET|POST        /invoices               GET|PUT|DELETE /invoices/{id}
    GET             /invoices/{id}/payments POST           /invoices/{id}/send
    GET|POST        /payments               GET|PUT|DELETE /payments/{id}
    GET             /currencies  /taxes  /payment-modes  /countries

Control-API resource names: ``customers``, ``contacts``, ``invoices``, ``payments``.
``archive`` sets ``active`` to "0" on customers and contacts (Perfex has no other archive).

Shapes follow the Perfex tables (``userid`` is the customer key; every scalar is a string or
null), wrapped the way the v1 module does: ``{"status": "success", "data": ...}``, lists add
``"total"`` and are paged with ``page`` + ``limit`` (alias ``per_page``). Perfex keeps no change
timestamps, so there is nothing to bump on a change: ``datecreated`` is the only stamp.
Behaviour the vendor reference marks as unverified is chosen in :class:`PerfexQuirks`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from aiohttp import web

from syncd.sandbox.base import (
    Clock,
    RateDecision,
    RateWindow,
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    VendorEmulator,
    VendorSeed,
)
from syncd.sandbox.perfex.lookups import (
    COUNTRIES,
    COUNTRY_ID_BY_ISO2,
    COUNTRY_IDS,
    DEFAULT_CURRENCIES,
    DEFAULT_PAYMENT_MODES,
    DEFAULT_TAXES,
)
from syncd.sandbox.perfex.values import (
    Invalid,
    LineAmounts,
    compute_totals,
    date_value,
    dec,
    decimal_value,
    email_ok,
    flag_value,
    int_value,
    money,
    php_serialize_strings,
    split_invoice_number,
    text_value,
    xss_clean,
)

Row = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Source = Literal["api", "ui"]


STATUS_UNPAID, STATUS_PAID, STATUS_PARTIAL, STATUS_OVERDUE, STATUS_CANCELLED, STATUS_DRAFT = range(
    1, 7
)
DRAFT_NUMBER = 1_000_000_000  # Perfex's placeholder number for drafts
INVOICE_DUE_AFTER_DAYS = 30  # Perfex option invoice_due_after
RESOURCES = ("customers", "contacts", "invoices", "payments")

_SEED_STATUS = {
    "draft": STATUS_DRAFT,
    "open": STATUS_UNPAID,
    "sent": STATUS_UNPAID,
    "partially_paid": STATUS_PARTIAL,
    "paid": STATUS_PAID,
    "overdue": STATUS_OVERDUE,
    "cancelled": STATUS_CANCELLED,
}

_CUSTOMER_TEXT = (
    "company",
    "vat",
    "phonenumber",
    "city",
    "zip",
    "state",
    "address",
    "website",
    "billing_street",
    "billing_city",
    "billing_state",
    "billing_zip",
    "shipping_street",
    "shipping_city",
    "shipping_state",
    "shipping_zip",
    "default_language",
    "longitude",
    "latitude",
)
_CUSTOMER_COUNTRY = ("country", "billing_country", "shipping_country")
_CUSTOMER_FLAGS = ("active", "show_primary_contact", "registration_confirmed")
_CONTACT_TEXT = ("firstname", "lastname", "email", "phonenumber", "title", "direction")
_CONTACT_MAIL_FLAGS = (
    "invoice_emails",
    "estimate_emails",
    "credit_note_emails",
    "contract_emails",
    "task_emails",
    "project_emails",
    "ticket_emails",
)
_CONTACT_AUTH_COLUMNS = (
    "password",
    "new_pass_key",
    "new_pass_key_requested",
    "email_verified_at",
    "email_verification_key",
    "email_verification_sent_at",
    "last_ip",
    "last_login",
    "last_password_change",
)
_CONTACT_IGNORED = ("donotsendwelcomeemail", "send_set_password_email", "permissions")
_INVOICE_TEXT = (
    "clientnote",
    "adminnote",
    "terms",
    "billing_street",
    "billing_city",
    "billing_state",
    "billing_zip",
    "shipping_street",
    "shipping_city",
    "shipping_state",
    "shipping_zip",
)
_INVOICE_COUNTRY = ("billing_country", "shipping_country")
_INVOICE_FLAGS = ("include_shipping", "show_shipping_on_invoice")
_INVOICE_TOTALS = ("subtotal", "total_tax", "total")
_PAYMENT_TEXT = ("paymentmode", "paymentmethod", "note", "transactionid")

# Path templates this emulator serves, to tell "wrong method" from "no such endpoint".
_KNOWN_PATHS = tuple(
    re.compile(pattern)
    for pattern in (
        r"/(customers|contacts|invoices|payments)",
        r"/(customers|contacts|invoices|payments)/[^/]+",
        r"/customers/[^/]+/(contacts|invoices)",
        r"/invoices/[^/]+/(payments|send)",
        r"/(currencies|taxes|payment-modes|countries)",
    )
)


@dataclass(frozen=True, slots=True)
class PerfexQuirks:
    """Behaviour the vendor reference leaves open; defaults are the most plausible choice.

    Most of the v1 module is known only from its own reference page (seeds/002) and a client
    written against it; where that is silent, the Themesic module's confirmed behaviour
    (perfex.md §2-§9) is the fallback, and the flags switch to it.
    """

    # "v1": 401 {"status":"error","message":...} (the v1 reference lists 401 for bad auth);
    # "themesic": 404 {"status":false,"message":"Token is not found"}.
    auth_style: Literal["v1", "themesic"] = "v1"
    default_page_size: int = 25  # inferred: the v1 reference gives none; Themesic uses 25
    max_page_size: int = 100  # larger limits are cut to this, silently
    # Themesic answers a page beyond the last with the last page again; v1 (inferred) with [].
    clamp_page_beyond_last: bool = False
    # Themesic answers an empty collection with 404 "No data were found"; v1 (inferred) with [].
    empty_list_404: bool = False
    invoice_list_items: bool = False  # list rows carry no items; GET /invoices/{id} does
    # Themesic joins payment modes so a row's "id" is the mode id and "paymentid" the payment.
    payment_mode_join: bool = False
    # v1 reference: a contact e-mail is unique per customer; Themesic: across all contacts.
    contact_email_unique: Literal["customer", "global"] = "customer"
    # The v1 reference (seeds/002) creates a customer with {"company": ..., "email": ...};
    # customers have no e-mail column, so the address becomes the customer's primary
    # contact. False: dropped like any unknown key, as Themesic's module does.
    customer_email_creates_contact: bool = True
    delete_only_last_invoice: bool = True  # Perfex option delete_only_on_last_invoice (default 1)
    # Deleting a customer keeps its invoices with clientid "0" (confirmed in Themesic source);
    # "refuse" is the Perfex admin behaviour for customers with transactions.
    customer_delete_with_invoices: Literal["orphan", "refuse"] = "orphan"
    xss_clean: bool = True  # CodeIgniter's XSS filter alters HTML-ish text written by the API
    overdue_cron: bool = True  # unpaid invoices past their due date turn overdue (status 4)
    expose_contact_auth_columns: bool = True  # contact rows include password hash etc.
    timezone: str = "Europe/Amsterdam"  # datetimes are stored and returned in local time
    burst_limit: bool = False  # Themesic's extra 100 requests / 60 s window


@dataclass(frozen=True, slots=True)
class _ItemInput:
    item_id: int | None
    description: str
    long_description: str | None
    qty: Decimal
    rate: Decimal
    unit: str | None
    order: int
    taxes: tuple[tuple[str, Decimal], ...]


def _no_refresh() -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Kind:
    """What the HTTP handlers and the control hooks need to know about one record type."""

    resource: str  # "customers": the path, the table and the control-API name
    label: str  # "Customer": in 404 and success messages
    view: Callable[[Row], Row]  # the row as a single-record response shows it
    new: Callable[[Row, Source], Row]
    update: Callable[[int, Row, Source], Row]
    remove: Callable[[int], str | None]  # a refusal message, or None once deleted
    created: str = "created"  # the verb of the create message ("Payment recorded ...")
    refresh: Callable[[], None] = _no_refresh  # runs before a single-record read


class _Reply(Exception):
    """Stop handling and send this response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _error(status: int, message: str, errors: dict[str, str] | None = None) -> web.Response:
    body: Row = {"status": "error", "message": message}
    if errors:
        body["errors"] = errors
    return _json(body, status)


def _invalid(errors: dict[str, str]) -> web.Response:
    return _error(400, "Validation failed", errors)


def _lenient_int(raw: str | None, default: int) -> int:
    """PHP ``(int)`` on a query value: leading digits count, anything else is 0."""
    if raw is None:
        return default
    match = re.match(r"\s*(-?\d+)", raw)
    return int(match.group(1)) if match else 0


class PerfexEmulator(VendorEmulator):
    """In-memory Perfex CRM with the v1 API module installed."""

    name = "perfex"
    default_rate_windows: tuple[RateWindow, ...] = (RateWindow(1000, 3600.0),)

    def __init__(
        self, options: SandboxOptions, clock: Clock, quirks: PerfexQuirks | None = None
    ) -> None:
        super().__init__(options, clock)
        self.quirks = quirks or PerfexQuirks()
        self._tz = ZoneInfo(self.quirks.timezone)
        if self.quirks.burst_limit:
            self.default_rate_windows = (RateWindow(1000, 3600.0), RateWindow(100, 60.0))
        self._clear()
        kinds = (
            _Kind(
                "customers",
                "Customer",
                self._customer_view,
                self._new_customer,
                self._update_customer_row,
                self._delete_customer_row,
            ),
            _Kind(
                "contacts",
                "Contact",
                self._contact_view,
                self._new_contact,
                self._update_contact_row,
                self._delete_contact_row,
            ),
            _Kind(
                "invoices",
                "Invoice",
                self._invoice_detail_view,
                self._new_invoice,
                self._update_invoice_row,
                self._delete_invoice_row,
                refresh=self._run_cron,
            ),
            _Kind(
                "payments",
                "Payment",
                self._payment_view,
                self._new_payment,
                self._update_payment_row,
                self._delete_payment_row,
                created="recorded",
            ),
        )
        self._kinds = {kind.resource: kind for kind in kinds}

    # ------------------------------------------------------------------ state

    def _clear(self) -> None:
        self._customers: dict[int, Row] = {}
        self._contacts: dict[int, Row] = {}
        self._invoices: dict[int, Row] = {}
        self._items: dict[int, Row] = {}
        self._payments: dict[int, Row] = {}
        self._currencies: dict[int, Row] = {int(c["id"]): dict(c) for c in DEFAULT_CURRENCIES}
        self._payment_modes: dict[str, Row] = {m["id"]: dict(m) for m in DEFAULT_PAYMENT_MODES}
        self._auto_increment: dict[str, int] = dict.fromkeys(
            ("customers", "contacts", "invoices", "items", "payments"), 1
        )
        self._invoice_prefix = "INV-"
        self._number_padding = 6
        self._next_invoice_number = 1

    def _take_id(self, table: str) -> int:
        # Like MySQL AUTO_INCREMENT: ids are never reused after a delete.
        value = self._auto_increment[table]
        self._auto_increment[table] = value + 1
        return value

    def _now_local(self) -> str:
        return self._local(self.clock())

    def _local(self, moment: dt.datetime) -> str:
        return moment.astimezone(self._tz).strftime("%Y-%m-%d %H:%M:%S")

    def _today(self) -> dt.date:
        return self.clock().astimezone(self._tz).date()

    def _digest(self, *parts: object) -> str:
        text = ":".join(str(part) for part in ("perfex", self.options.seed, *parts))
        return hashlib.sha256(text.encode()).hexdigest()

    def _fake_password_hash(self, contact_id: int, revision: int) -> str:
        return "$2a$08$" + self._digest("password", contact_id, revision)[:53]

    # ------------------------------------------------------------------ serving

    def build_routes(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/customers", self._list_customers),
            ("POST", "/customers", self._create_customer),
            *self._record_routes("customers"),
            ("GET", "/customers/{id}/contacts", self._list_customer_contacts),
            ("GET", "/customers/{id}/invoices", self._list_customer_invoices),
            ("GET", "/contacts", self._list_contacts),
            ("POST", "/contacts", self._create_handler("contacts")),
            *self._record_routes("contacts"),
            ("GET", "/invoices", self._list_invoices),
            ("POST", "/invoices", self._create_handler("invoices")),
            *self._record_routes("invoices"),
            ("GET", "/invoices/{id}/payments", self._list_invoice_payments),
            ("POST", "/invoices/{id}/send", self._send_invoice),
            ("GET", "/payments", self._list_payments),
            ("POST", "/payments", self._create_handler("payments")),
            *self._record_routes("payments"),
            ("GET", "/currencies", self._list_currencies),
            ("GET", "/taxes", self._list_taxes),
            ("GET", "/payment-modes", self._list_payment_modes),
            ("GET", "/countries", self._list_countries),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, self._guarded(handler))
        app.router.add_route("*", "/{tail:.*}", self._fallback)

    def _guarded(self, handler: Handler) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _Reply as reply:
                return reply.response
            except Invalid as problem:
                return _invalid(problem.errors)

        return run

    async def _fallback(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info.get("tail", "")
        if any(pattern.fullmatch(path) for pattern in _KNOWN_PATHS):
            return _error(405, "Method not allowed")
        return _error(404, "Endpoint not found")

    def check_auth(self, request: web.Request) -> web.Response | None:
        api_key = request.headers.get("X-API-KEY")
        authorization = request.headers.get("Authorization")
        if api_key is not None:
            if _same(api_key, self.credential("api_key")):
                return None
            return self._auth_failure("Invalid API key")
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() == "bearer" and _same(token.strip(), self.credential("jwt")):
                return None
            return self._auth_failure("Invalid or expired token")
        return self._auth_failure("API key is missing")

    def _auth_failure(self, message: str) -> web.Response:
        if self.quirks.auth_style == "themesic":
            return _json({"status": False, "message": "Token is not found"}, 404)
        return _error(401, message)

    def server_error_response(self, status: int) -> web.Response:
        if status == 500:
            # The v1 reference lists 500 as a JSON error like every other; 503 comes from the
            # web server in front of PHP, so the framework's nginx page stays.
            return _error(500, "Internal server error")
        return super().server_error_response(status)

    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        retry_after = max(1, math.ceil(decision.reset_seconds))
        reset_at = math.ceil(self.clock().timestamp() + decision.reset_seconds)
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(decision.limit),
            "X-RateLimit-Remaining": str(max(0, decision.remaining)),
            "X-RateLimit-Reset": str(reset_at),
        }
        body = {"status": "error", "message": "Rate limit exceeded", "retry_after": retry_after}
        return _json(body, 429, headers)

    # ------------------------------------------------------------------ request helpers

    @staticmethod
    def _path_id(request: web.Request, what: str) -> int:
        raw = request.match_info.get("id", "")
        if re.fullmatch(r"[0-9]{1,18}", raw) is None:
            raise _Reply(_error(404, f"{what} not found"))
        return int(raw)

    @staticmethod
    async def _body(request: web.Request) -> Row:
        if request.content_type != "application/json":
            raise _Reply(_error(400, "Content-Type must be application/json"))
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise _Reply(_error(400, "Invalid JSON payload")) from None
        if not isinstance(data, dict):
            raise _Reply(_error(400, "Invalid JSON payload"))
        return data

    def _page(
        self, request: web.Request, rows: list[Row], view: Callable[[Row], Row]
    ) -> web.Response:
        query = request.query
        default = self.quirks.default_page_size
        page = max(1, _lenient_int(query.get("page"), 1))
        limit = _lenient_int(query.get("limit", query.get("per_page")), default)
        limit = min(limit if limit >= 1 else default, self.quirks.max_page_size)
        total = len(rows)
        if total == 0 and self.quirks.empty_list_404:
            return _error(404, "No data were found")
        if self.quirks.clamp_page_beyond_last:
            page = min(page, max(1, math.ceil(total / limit)))
        chunk = rows[(page - 1) * limit : page * limit]
        return _json({"status": "success", "data": [view(row) for row in chunk], "total": total})

    @staticmethod
    def _filter_flag(request: web.Request, name: str, errors: dict[str, str]) -> str | None:
        raw = request.query.get(name)
        if raw is None:
            return None
        if raw not in ("0", "1"):
            errors[name] = f"The {name} filter must be 0 or 1."
            return None
        return raw

    @staticmethod
    def _filter_id(
        request: web.Request, names: tuple[str, ...], errors: dict[str, str]
    ) -> str | None:
        for name in names:
            raw = request.query.get(name)
            if raw is None:
                continue
            if re.fullmatch(r"[0-9]+", raw) is None:
                errors[name] = f"The {name} filter must be an integer."
                return None
            return str(int(raw))
        return None

    @staticmethod
    def _filter_date(request: web.Request, name: str, errors: dict[str, str]) -> dt.date | None:
        raw = request.query.get(name)
        return None if raw is None else date_value(raw, name, errors)

    # ------------------------------------------------------------------ views

    def _customer_view(self, row: Row) -> Row:
        return dict(row)

    def _contact_view(self, row: Row) -> Row:
        view = dict(row)
        if not self.quirks.expose_contact_auth_columns:
            for column in _CONTACT_AUTH_COLUMNS:
                view.pop(column, None)
        return view

    def _invoice_items(self, invoice_id: int) -> list[Row]:
        items = [item for item in self._items.values() if item["rel_id"] == str(invoice_id)]
        items.sort(key=lambda item: (int(item["item_order"]), int(item["id"])))
        return items

    def _invoice_payments(self, invoice_id: int) -> list[Row]:
        return [p for p in self._payments.values() if p["invoiceid"] == str(invoice_id)]

    def _invoice_view(self, row: Row, *, detail: bool) -> Row:
        view = dict(row)
        currency = self._currencies.get(int(row["currency"]))
        if currency is not None:
            # The list query joins tblcurrencies: its columns ride along on every row.
            view.update(
                {
                    "symbol": currency["symbol"],
                    "name": currency["name"],
                    "decimal_separator": currency["decimal_separator"],
                    "thousand_separator": currency["thousand_separator"],
                    "placement": currency["placement"],
                    "isdefault": currency["isdefault"],
                    "currencyid": currency["id"],
                    "currency_name": currency["name"],
                }
            )
        invoice_id = int(row["id"])
        if detail or self.quirks.invoice_list_items:
            view["items"] = [dict(item) for item in self._invoice_items(invoice_id)]
        if detail:
            paid = sum((dec(p["amount"]) for p in self._invoice_payments(invoice_id)), Decimal(0))
            client = self._customers.get(int(row["clientid"]))
            view["total_left_to_pay"] = money(max(Decimal(0), dec(row["total"]) - paid))
            view["attachments"] = []
            view["client"] = None if client is None else self._customer_view(client)
            view["payments"] = [self._payment_view(p) for p in self._invoice_payments(invoice_id)]
            view["scheduled_email"] = None
        return view

    def _payment_view(self, row: Row) -> Row:
        if not self.quirks.payment_mode_join:
            return dict(row)
        mode = self._payment_modes.get(row["paymentmode"] or "")
        view = dict(row)
        view["id"] = None if mode is None else mode["id"]
        view["paymentid"] = row["id"]
        view["name"] = None if mode is None else mode["name"]
        return view

    def _invoice_list_view(self, row: Row) -> Row:
        return self._invoice_view(row, detail=False)

    def _invoice_detail_view(self, row: Row) -> Row:
        return self._invoice_view(row, detail=True)

    # ------------------------------------------------------------------ lookups

    def _path_row(self, request: web.Request, resource: str) -> tuple[int, Row]:
        """The id in the path and its row, or a 404 in the record type's words."""
        kind = self._kinds[resource]
        key = self._path_id(request, kind.label)
        row = self._table(resource).get(key)
        if row is None:
            raise _Reply(_error(404, f"{kind.label} not found"))
        return key, row

    # ------------------------------------------------------------------ one record (HTTP)

    def _record_routes(self, resource: str) -> list[tuple[str, str, Handler]]:
        """GET, PUT and DELETE on /{resource}/{id}: the same for every record type."""
        kind = self._kinds[resource]

        async def get(request: web.Request) -> web.StreamResponse:
            kind.refresh()
            _, row = self._path_row(request, resource)
            return _json({"status": "success", "data": kind.view(row)})

        async def update(request: web.Request) -> web.StreamResponse:
            key, _ = self._path_row(request, resource)
            body = await self._body(request)
            row = kind.update(key, body, "api")
            self.counters.writes += 1
            return _json(
                {
                    "status": "success",
                    "message": f"{kind.label} updated successfully",
                    "data": kind.view(row),
                }
            )

        async def delete(request: web.Request) -> web.StreamResponse:
            key, _ = self._path_row(request, resource)
            refusal = kind.remove(key)
            if refusal is not None:
                return _error(400, refusal)
            self.counters.writes += 1
            return _json({"status": "success", "message": f"{kind.label} deleted successfully"})

        item = f"/{resource}/{{id}}"
        return [("GET", item, get), ("PUT", item, update), ("DELETE", item, delete)]

    def _create_handler(self, resource: str) -> Handler:
        async def create(request: web.Request) -> web.StreamResponse:
            body = await self._body(request)
            return self._created(resource, self._kinds[resource].new(body, "api"))

        return create

    def _created(self, resource: str, row: Row) -> web.Response:
        kind = self._kinds[resource]
        self.counters.writes += 1
        return _json(
            {
                "status": "success",
                "message": f"{kind.label} {kind.created} successfully",
                "data": kind.view(row),
            },
            201,
        )

    # ------------------------------------------------------------------ customers (HTTP)

    async def _list_customers(self, request: web.Request) -> web.StreamResponse:
        errors: dict[str, str] = {}
        active = self._filter_flag(request, "active", errors)
        if errors:
            return _invalid(errors)
        search = (request.query.get("search") or "").strip().lower()
        rows = []
        for row in sorted(self._customers.values(), key=lambda r: int(r["userid"])):
            if active is not None and row["active"] != active:
                continue
            if search and not _matches(
                row, search, ("company", "vat", "phonenumber", "city", "zip", "address", "website")
            ):
                continue
            rows.append(row)
        return self._page(request, rows, self._customer_view)

    async def _create_customer(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        email = body.pop("email", None) if self.quirks.customer_email_creates_contact else None
        if email is not None:
            errors: dict[str, str] = {}
            email_text = text_value(email, "email", errors) or ""
            if errors or not email_ok(email_text):
                return _invalid({"email": "The email field must contain a valid email address."})
        row = self._new_customer(body, "api")
        if email is not None:
            self._new_contact(
                {
                    "userid": row["userid"],
                    "firstname": body.get("firstname") or row["company"],
                    "lastname": body.get("lastname") or "",
                    "email": email,
                    "is_primary": "1",
                },
                "api",
                require_names=False,
            )
        return self._created("customers", row)

    async def _list_customer_contacts(self, request: web.Request) -> web.StreamResponse:
        customer_id, _ = self._path_row(request, "customers")
        return self._contacts_page(request, str(customer_id))

    async def _list_customer_invoices(self, request: web.Request) -> web.StreamResponse:
        customer_id, _ = self._path_row(request, "customers")
        return self._invoices_page(request, str(customer_id))

    # ------------------------------------------------------------------ contacts (HTTP)

    async def _list_contacts(self, request: web.Request) -> web.StreamResponse:
        return self._contacts_page(request, None)

    def _contacts_page(self, request: web.Request, customer_id: str | None) -> web.Response:
        errors: dict[str, str] = {}
        if customer_id is None:
            customer_id = self._filter_id(request, ("customer_id", "userid"), errors)
        active = self._filter_flag(request, "active", errors)
        primary = self._filter_flag(request, "is_primary", errors)
        if errors:
            return _invalid(errors)
        search = (request.query.get("search") or "").strip().lower()
        rows = []
        for row in sorted(self._contacts.values(), key=lambda r: int(r["id"])):
            if customer_id is not None and row["userid"] != customer_id:
                continue
            if active is not None and row["active"] != active:
                continue
            if primary is not None and row["is_primary"] != primary:
                continue
            if search and not _matches(
                row, search, ("firstname", "lastname", "email", "phonenumber", "title")
            ):
                continue
            rows.append(row)
        return self._page(request, rows, self._contact_view)

    # ------------------------------------------------------------------ invoices (HTTP)

    async def _list_invoices(self, request: web.Request) -> web.StreamResponse:
        return self._invoices_page(request, None)

    def _invoices_page(self, request: web.Request, customer_id: str | None) -> web.Response:
        self._run_cron()
        errors: dict[str, str] = {}
        if customer_id is None:
            customer_id = self._filter_id(request, ("clientid", "customer_id"), errors)
        status: str | None = None
        raw_status = request.query.get("status")
        if raw_status is not None:
            if raw_status not in {"1", "2", "3", "4", "5", "6"}:
                errors["status"] = "The status filter must be one of 1, 2, 3, 4, 5, 6."
            status = raw_status
        if errors:
            return _invalid(errors)
        rows = [
            row
            for row in sorted(self._invoices.values(), key=lambda r: int(r["id"]))
            if (customer_id is None or row["clientid"] == customer_id)
            and (status is None or row["status"] == status)
        ]
        return self._page(request, rows, self._invoice_list_view)

    async def _list_invoice_payments(self, request: web.Request) -> web.StreamResponse:
        invoice_id, _ = self._path_row(request, "invoices")
        rows = sorted(self._invoice_payments(invoice_id), key=lambda r: int(r["id"]))
        return self._page(request, rows, self._payment_view)

    async def _send_invoice(self, request: web.Request) -> web.StreamResponse:
        _, row = self._path_row(request, "invoices")
        if int(row["status"]) == STATUS_CANCELLED:
            return _error(400, "A cancelled invoice cannot be sent")
        recipients = [
            c
            for c in self._contacts.values()
            if c["userid"] == row["clientid"] and c["active"] == "1" and c["email"]
        ]
        if not recipients:
            return _error(400, "The customer has no contact with an e-mail address")
        if int(row["status"]) == STATUS_DRAFT:
            self._finalise_draft(row, None)
        row["sent"] = "1"
        row["datesend"] = self._now_local()
        self.counters.writes += 1
        return _json({"status": "success", "message": "Invoice sent successfully"})

    # ------------------------------------------------------------------ payments (HTTP)

    async def _list_payments(self, request: web.Request) -> web.StreamResponse:
        errors: dict[str, str] = {}
        invoice_id = self._filter_id(request, ("invoice_id", "invoiceid"), errors)
        customer_id = self._filter_id(request, ("customer_id",), errors)
        date_from = self._filter_date(request, "date_from", errors)
        date_to = self._filter_date(request, "date_to", errors)
        mode = request.query.get("payment_mode")
        if errors:
            return _invalid(errors)
        rows = []
        for row in sorted(self._payments.values(), key=lambda r: int(r["id"])):
            if invoice_id is not None and row["invoiceid"] != invoice_id:
                continue
            if customer_id is not None:
                invoice = self._invoices.get(int(row["invoiceid"]))
                if invoice is None or invoice["clientid"] != customer_id:
                    continue
            day = dt.date.fromisoformat(row["date"])
            if (date_from is not None and day < date_from) or (
                date_to is not None and day > date_to
            ):
                continue
            if mode is not None and row["paymentmode"] != mode:
                continue
            rows.append(row)
        return self._page(request, rows, self._payment_view)

    # ------------------------------------------------------------------ lookups (HTTP)

    async def _list_currencies(self, request: web.Request) -> web.StreamResponse:
        rows = [dict(self._currencies[key]) for key in sorted(self._currencies)]
        return _json({"status": "success", "data": rows, "total": len(rows)})

    async def _list_taxes(self, request: web.Request) -> web.StreamResponse:
        rows = [
            {"id": str(index), "name": name, "taxrate": money(rate)}
            for index, (name, rate) in enumerate(DEFAULT_TAXES, start=1)
        ]
        return _json({"status": "success", "data": rows, "total": len(rows)})

    async def _list_payment_modes(self, request: web.Request) -> web.StreamResponse:
        rows = [dict(mode) for mode in self._payment_modes.values()]
        return _json({"status": "success", "data": rows, "total": len(rows)})

    async def _list_countries(self, request: web.Request) -> web.StreamResponse:
        rows = [dict(row) for row in COUNTRIES]
        return _json({"status": "success", "data": rows, "total": len(rows)})

    # ------------------------------------------------------------------ customers (model)

    def _clean(self, text: str | None, source: Source) -> str | None:
        if text is None or source != "api" or not self.quirks.xss_clean:
            return text
        return xss_clean(text)

    def _country(self, value: Any, field: str, errors: dict[str, str]) -> str | None:
        if value is None or value == "":
            return "0"
        country_id = int_value(value, field, errors)
        if country_id is None:
            return None
        if country_id != 0 and country_id not in COUNTRY_IDS:
            errors[field] = f"The {field} field must be a valid country id."
            return None
        return str(country_id)

    def _currency(
        self, value: Any, field: str, errors: dict[str, str], *, allow_zero: bool
    ) -> str | None:
        currency_id = int_value(value, field, errors)
        if currency_id is None:
            return None
        if not ((allow_zero and currency_id == 0) or currency_id in self._currencies):
            errors[field] = f"The {field} field must be a valid currency id."
            return None
        return str(currency_id)

    def _customer_changes(
        self, fields: Row, source: Source, *, creating: bool
    ) -> dict[str, str | None]:
        errors: dict[str, str] = {}
        changes: dict[str, str | None] = {}
        for key, value in fields.items():
            if key in _CUSTOMER_TEXT:
                if key not in errors:
                    changes[key] = self._clean(text_value(value, key, errors), source)
            elif key in _CUSTOMER_COUNTRY:
                changes[key] = self._country(value, key, errors)
            elif key == "default_currency":
                changes[key] = self._currency(value, key, errors, allow_zero=True)
            elif key in _CUSTOMER_FLAGS:
                changes[key] = flag_value(value, key, errors)
            elif source == "ui":
                errors[key] = f"Perfex customers have no field {key!r}."
            # The API silently drops keys that are not tblclients columns.
        needs_company = (creating or "company" in fields) and "company" not in errors
        if needs_company and not (changes.get("company") or "").strip():
            errors["company"] = "The company field is required."
        if errors:
            raise Invalid(errors)
        return changes

    def _customer_row(self, customer_id: int, source: Source, created: str) -> Row:
        """A tblclients row with every column at the value a blank form stores."""
        # Records typed into the admin UI store "" for empty inputs; API inserts leave NULL.
        empty = "" if source == "ui" else None
        return {
            "userid": str(customer_id),
            "company": "",
            "vat": empty,
            "phonenumber": empty,
            "country": "0",
            "city": empty,
            "zip": empty,
            "state": empty,
            "address": empty,
            "website": empty,
            "datecreated": created,
            "active": "1",
            "leadid": None,
            "billing_street": empty,
            "billing_city": empty,
            "billing_state": empty,
            "billing_zip": empty,
            "billing_country": "0",
            "shipping_street": empty,
            "shipping_city": empty,
            "shipping_state": empty,
            "shipping_zip": empty,
            "shipping_country": "0",
            "longitude": None,
            "latitude": None,
            "default_language": empty,
            "default_currency": "0",
            "show_primary_contact": "0",
            "stripe_id": None,
            "registration_confirmed": "1",
            "addedfrom": "1" if source == "ui" else "0",
        }

    def _new_customer(self, fields: Row, source: Source) -> Row:
        changes = self._customer_changes(fields, source, creating=True)
        customer_id = self._take_id("customers")
        row = self._customer_row(customer_id, source, self._now_local())
        row.update(changes)
        self._customers[customer_id] = row
        return row

    def _update_customer_row(self, customer_id: int, fields: Row, source: Source) -> Row:
        changes = self._customer_changes(fields, source, creating=False)
        row = self._customers[customer_id]
        row.update(changes)
        return row

    def _delete_customer_row(self, customer_id: int) -> str | None:
        """Delete a customer and its contacts; returns the vendor's refusal, if any."""
        key = str(customer_id)
        invoices = [row for row in self._invoices.values() if row["clientid"] == key]
        if invoices and self.quirks.customer_delete_with_invoices == "refuse":
            return "The customer has transactions (invoices) and cannot be deleted"
        company = self._customers[customer_id]["company"]
        del self._customers[customer_id]
        for contact_id in [cid for cid, c in self._contacts.items() if c["userid"] == key]:
            del self._contacts[contact_id]
        for invoice in invoices:
            invoice["clientid"] = "0"
            invoice["deleted_customer_name"] = company
        return None

    # ------------------------------------------------------------------ contacts (model)

    def _contact_changes(
        self, fields: Row, source: Source, *, creating: bool, contact_id: int | None
    ) -> tuple[dict[str, str | None], str | None]:
        errors: dict[str, str] = {}
        changes: dict[str, str | None] = {}
        primary: str | None = None
        for key, value in fields.items():
            if key in ("userid", "customer_id"):
                if not creating:
                    if source == "ui":
                        errors[key] = "A contact cannot move to another customer."
                    continue
                customer_id = int_value(value, "userid", errors)
                if customer_id is not None and customer_id not in self._customers:
                    errors["userid"] = "The userid field must refer to an existing customer."
                elif customer_id is not None:
                    changes["userid"] = str(customer_id)
            elif key in _CONTACT_TEXT:
                changes[key] = self._clean(text_value(value, key, errors), source)
            elif key in _CONTACT_MAIL_FLAGS or key == "active":
                changes[key] = flag_value(value, key, errors)
            elif key == "is_primary":
                primary = flag_value(value, key, errors)
            elif key == "password":
                text_value(value, key, errors)
                changes["password"] = ""  # marker: a new hash is stored below
            elif key in _CONTACT_IGNORED:
                continue
            elif source == "ui":
                errors[key] = f"Perfex contacts have no field {key!r}."
        # Creating needs all four; an update may not blank a name or the e-mail.
        names = ("firstname", "lastname", "email")
        checked = ("userid", *names) if creating else tuple(k for k in names if k in fields)
        for key in checked:
            if key not in errors and not (changes.get(key) or "").strip():
                errors[key] = f"The {key} field is required."
        email = (changes.get("email") or "").strip()
        if email and "email" not in errors:
            if not email_ok(email):
                errors["email"] = "The email field must contain a valid email address."
            else:
                owner = changes.get("userid")
                if owner is None and contact_id is not None:
                    owner = self._contacts[contact_id]["userid"]
                if self._email_taken(email, owner, contact_id):
                    errors["email"] = "This email is already in use by another contact."
        if errors:
            raise Invalid(errors)
        return changes, primary

    def _email_taken(self, email: str, customer_id: str | None, contact_id: int | None) -> bool:
        wanted = email.lower()
        for other_id, other in self._contacts.items():
            if other_id == contact_id or (other["email"] or "").lower() != wanted:
                continue
            if self.quirks.contact_email_unique == "global" or other["userid"] == customer_id:
                return True
        return False

    def _new_contact(self, fields: Row, source: Source, *, require_names: bool = True) -> Row:
        if not require_names:
            fields = {**fields, "lastname": fields.get("lastname") or "-"}
        changes, primary = self._contact_changes(fields, source, creating=True, contact_id=None)
        contact_id = self._take_id("contacts")
        customer_key = changes["userid"]
        has_primary = any(
            c["userid"] == customer_key and c["is_primary"] == "1" for c in self._contacts.values()
        )
        row = self._contact_row(contact_id, customer_key, source, self._now_local())
        changes.pop("password", None)
        row.update(changes)
        self._contacts[contact_id] = row
        # A customer's first contact is always its primary one.
        if primary == "1" or not has_primary:
            self._make_primary(contact_id)
        return row

    def _contact_row(
        self, contact_id: int, customer_key: str | None, source: Source, created: str
    ) -> Row:
        """A tblcontacts row with every column at the value a blank form stores."""
        empty = "" if source == "ui" else None
        row: Row = {
            "id": str(contact_id),
            "userid": customer_key,
            "is_primary": "0",
            "firstname": "",
            "lastname": "",
            "email": "",
            "phonenumber": empty,
            "title": empty,
            "datecreated": created,
            "password": self._fake_password_hash(contact_id, 0),
            "new_pass_key": None,
            "new_pass_key_requested": None,
            "email_verified_at": created,
            "email_verification_key": None,
            "email_verification_sent_at": None,
            "last_ip": None,
            "last_login": None,
            "last_password_change": None,
            "active": "1",
            "profile_image": None,
            "direction": empty,
        }
        row.update(dict.fromkeys(_CONTACT_MAIL_FLAGS, "1"))
        return row

    def _make_primary(self, contact_id: int) -> None:
        owner = self._contacts[contact_id]["userid"]
        for other_id, other in self._contacts.items():
            if other["userid"] == owner:
                other["is_primary"] = "1" if other_id == contact_id else "0"

    def _update_contact_row(self, contact_id: int, fields: Row, source: Source) -> Row:
        changes, primary = self._contact_changes(
            fields, source, creating=False, contact_id=contact_id
        )
        row = self._contacts[contact_id]
        if "password" in changes:
            changes.pop("password")
            revision = int(self._digest("rev", contact_id, row["password"])[:8], 16)
            row["password"] = self._fake_password_hash(contact_id, revision)
            row["last_password_change"] = self._now_local()
        row.update(changes)
        # There is always exactly one primary contact: "0" on the primary one is ignored.
        if primary == "1":
            self._make_primary(contact_id)
        return row

    def _delete_contact_row(self, contact_id: int) -> str | None:
        if self._contacts[contact_id]["is_primary"] == "1":
            return "Primary contact cannot be deleted"
        del self._contacts[contact_id]
        return None

    # ------------------------------------------------------------------ invoices (model)

    def _parse_taxes(
        self, raw: Row, where: str, errors: dict[str, str]
    ) -> tuple[tuple[str, Decimal], ...]:
        taxes: list[tuple[str, Decimal]] = []
        if "taxes" in raw:
            entries = raw["taxes"]
            if not isinstance(entries, list):
                errors[f"{where}.taxes"] = "The taxes field must be an array."
                return ()
            for entry in entries:
                if not isinstance(entry, dict):
                    errors[f"{where}.taxes"] = "Each tax must be an object with name and rate."
                    return ()
                name = text_value(entry.get("name"), f"{where}.taxes.name", errors) or ""
                rate = decimal_value(entry.get("rate"), f"{where}.taxes.rate", errors)
                if rate is not None:
                    taxes.append((name.strip() or "VAT", rate))
        elif "taxname" in raw:
            # The form-style "NAME|RATE" strings, as the Perfex invoice editor posts them.
            entries = raw["taxname"]
            entries = [entries] if isinstance(entries, str) else entries
            if not isinstance(entries, list):
                errors[f"{where}.taxname"] = "The taxname field must be an array."
                return ()
            for entry in entries:
                name, bar, rate_text = str(entry).partition("|")
                rate = decimal_value(rate_text, f"{where}.taxname", errors) if bar else None
                if not bar:
                    errors[f"{where}.taxname"] = "Each tax must be written as NAME|RATE."
                if rate is not None:
                    taxes.append((name.strip() or "VAT", rate))
        for _, rate in taxes:
            if not Decimal(0) <= rate <= Decimal(100):
                errors[f"{where}.taxes"] = "A tax rate must be between 0 and 100."
        return tuple(taxes)

    def _parse_items(
        self, value: Any, source: Source, errors: dict[str, str], invoice_id: int | None
    ) -> list[_ItemInput]:
        if not isinstance(value, list):
            errors["items"] = "The items field must be an array."
            return []
        known: set[int] = set()
        if invoice_id is not None:
            known = {int(item["id"]) for item in self._invoice_items(invoice_id)}
        parsed: list[_ItemInput] = []
        for index, raw in enumerate(value):
            where = f"items.{index}"
            if not isinstance(raw, dict):
                errors[where] = "Each item must be an object."
                continue
            item_id: int | None = None
            raw_id = raw.get("id", raw.get("itemid"))
            if raw_id is not None:
                item_id = int_value(raw_id, f"{where}.id", errors)
                if item_id is not None and item_id not in known:
                    errors[f"{where}.id"] = "The item does not belong to this invoice."
            description = text_value(raw.get("description"), f"{where}.description", errors)
            if not (description or "").strip():
                errors.setdefault(f"{where}.description", "The description field is required.")
            long_description = text_value(
                raw.get("long_description"), f"{where}.long_description", errors
            )
            qty = decimal_value(raw.get("qty", 1), f"{where}.qty", errors)
            if "rate" not in raw:
                errors[f"{where}.rate"] = "The rate field is required."
                rate = None
            else:
                rate = decimal_value(raw["rate"], f"{where}.rate", errors)
            unit = text_value(raw.get("unit"), f"{where}.unit", errors)
            order = int_value(raw.get("order", index + 1), f"{where}.order", errors)
            taxes = self._parse_taxes(raw, where, errors)
            if qty is None or rate is None or order is None or description is None:
                continue
            parsed.append(
                _ItemInput(
                    item_id=item_id,
                    description=self._clean(description, source) or "",
                    long_description=self._clean(long_description, source),
                    qty=qty,
                    rate=rate,
                    unit=unit,
                    order=order,
                    taxes=taxes,
                )
            )
        if not value:
            errors["items"] = "At least one item is required."
        return parsed

    def _invoice_changes(
        self, fields: Row, source: Source, invoice_id: int | None
    ) -> tuple[dict[str, str | None], list[_ItemInput] | None, int | None, dict[str, Decimal]]:
        errors: dict[str, str] = {}
        header: dict[str, str | None] = {}
        items: list[_ItemInput] | None = None
        status: int | None = None
        explicit: dict[str, Decimal] = {}
        for key, value in fields.items():
            if key in ("clientid", "customer_id"):
                customer_id = int_value(value, "clientid", errors)
                if customer_id is not None and customer_id not in self._customers:
                    errors["clientid"] = "The clientid field must refer to an existing customer."
                elif customer_id is not None:
                    header["clientid"] = str(customer_id)
            elif key == "number":
                number = int_value(value, key, errors)  # leading zeros are dropped, as in PHP
                if number is not None and number < 1:
                    errors[key] = "The number field must be a positive integer."
                elif number is not None:
                    header[key] = str(number)
            elif key in ("date", "duedate"):
                if value is None and key == "duedate":
                    header[key] = None
                    continue
                day = date_value(value, key, errors)
                if day is not None:
                    header[key] = day.isoformat()
            elif key == "currency":
                header[key] = self._currency(value, key, errors, allow_zero=False)
            elif key in _INVOICE_TEXT:
                header[key] = self._clean(text_value(value, key, errors), source)
            elif key in _INVOICE_COUNTRY:
                header[key] = self._country(value, key, errors)
            elif key in _INVOICE_FLAGS:
                header[key] = flag_value(value, key, errors)
            elif key == "show_quantity_as":
                shown = int_value(value, key, errors)
                if shown is not None and shown not in (1, 2, 3):
                    errors[key] = "The show_quantity_as field must be 1, 2 or 3."
                header[key] = None if shown is None else str(shown)
            elif key == "sale_agent":
                agent = int_value(value, key, errors)
                header[key] = None if agent is None else str(agent)
            elif key == "discount_percent":
                pct = decimal_value(value, key, errors)
                if pct is not None and not Decimal(0) <= pct <= Decimal(100):
                    errors[key] = "The discount_percent field must be between 0 and 100."
                elif pct is not None:
                    header[key] = money(pct)
            elif key == "discount_type":
                if value not in ("", "before_tax", "after_tax"):
                    errors[key] = "The discount_type field must be '', before_tax or after_tax."
                else:
                    header[key] = value
            elif key == "adjustment":
                adjustment = decimal_value(value, key, errors)
                if adjustment is not None:
                    header[key] = money(adjustment)
            elif key in _INVOICE_TOTALS:
                amount = decimal_value(value, key, errors)
                if amount is not None:
                    explicit[key] = amount
            elif key == "allowed_payment_modes":
                modes = value if isinstance(value, list) else None
                if modes is None or any(str(m) not in self._payment_modes for m in modes):
                    errors[key] = "The allowed_payment_modes field must list payment mode ids."
                else:
                    header[key] = php_serialize_strings(str(m) for m in modes)
            elif key == "items":
                items = self._parse_items(value, source, errors, invoice_id)
            elif key == "status":
                status = int_value(value, key, errors)
                if status is not None and status not in range(1, 7):
                    errors[key] = "The status field must be between 1 and 6."
            elif source == "ui":
                errors[key] = f"Perfex invoices have no field {key!r}."
        if errors:
            raise Invalid(errors)
        return header, items, status, explicit

    def _number_taken(self, number: str, day: str, invoice_id: int | None) -> bool:
        """Perfex keeps invoice numbers unique within the calendar year of the invoice date."""
        year = day[:4]
        return any(
            other_id != invoice_id
            and other["number"] == number
            and other["date"][:4] == year
            and int(other["status"]) != STATUS_DRAFT
            for other_id, other in self._invoices.items()
        )

    def _new_invoice(self, fields: Row, source: Source) -> Row:
        header, items, status, explicit = self._invoice_changes(fields, source, None)
        errors: dict[str, str] = {}
        if "clientid" not in header:
            errors["clientid"] = "The clientid field is required."
        if items is None:
            errors["items"] = "The items field is required."
        if status not in (None, STATUS_UNPAID, STATUS_DRAFT):
            errors["status"] = "A new invoice is either a draft (6) or unpaid (1)."
        if errors:
            raise Invalid(errors)
        assert items is not None
        customer = self._customers[int(header["clientid"] or 0)]
        day = header.get("date") or self._today().isoformat()
        draft = status == STATUS_DRAFT
        number = (
            str(DRAFT_NUMBER) if draft else header.get("number") or str(self._next_invoice_number)
        )
        if not draft and self._number_taken(number, day, None):
            raise Invalid({"number": "The invoice number is already in use."})
        currency = header.get("currency")
        if currency is None:
            default = customer["default_currency"]
            currency = default if default != "0" else self._system_currency()
        invoice_id = self._take_id("invoices")
        row = self._invoice_row(
            invoice_id,
            customer,
            source,
            self._now_local(),
            number=number,
            prefix=self._invoice_prefix,
            date=day,
            duedate=(
                dt.date.fromisoformat(day) + dt.timedelta(days=INVOICE_DUE_AFTER_DAYS)
            ).isoformat(),
            currency=currency,
            status=STATUS_DRAFT if draft else STATUS_UNPAID,
        )
        header.pop("number", None)
        row.update(header)
        self._invoices[invoice_id] = row
        self._replace_items(invoice_id, items)
        self._apply_totals(row, explicit)
        if not draft:
            # Perfex bumps next_invoice_number on every finalised invoice, whatever number it got.
            self._next_invoice_number += 1
        self._recompute_status(row)
        return row

    def _invoice_row(
        self,
        invoice_id: int,
        customer: Row | None,
        source: Source,
        created: str,
        *,
        number: str,
        prefix: str,
        date: str,
        duedate: str,
        currency: str,
        status: int,
    ) -> Row:
        """A tblinvoices row, unsent, with no totals yet, addressed as the customer is."""
        empty = "" if source == "ui" else None

        def from_customer(column: str, blank: str) -> Any:
            return blank if customer is None else customer[column]

        return {
            "id": str(invoice_id),
            "sent": "0",
            "datesend": None,
            "clientid": from_customer("userid", "0"),
            "deleted_customer_name": None,
            "number": number,
            "prefix": prefix,
            "number_format": "1",
            "datecreated": created,
            "date": date,
            "duedate": duedate,
            "currency": currency,
            "subtotal": "0.00",
            "total_tax": "0.00",
            "total": "0.00",
            "adjustment": "0.00",
            "addedfrom": "1" if source == "ui" else "0",
            "hash": self._digest("invoice-hash", invoice_id)[:32],
            "status": str(status),
            "clientnote": empty,
            "adminnote": empty,
            "last_overdue_reminder": None,
            "last_due_reminder": None,
            "cancel_overdue_reminders": "0",
            "allowed_payment_modes": php_serialize_strings(self._payment_modes),
            "token": None,
            "discount_percent": "0.00",
            "discount_total": "0.00",
            "discount_type": "",
            "recurring": "0",
            "recurring_type": None,
            "custom_recurring": "0",
            "cycles": "0",
            "total_cycles": "0",
            "is_recurring_from": None,
            "last_recurring_date": None,
            "terms": empty,
            "sale_agent": "0",
            **{
                f"{kind}_{part}": from_customer(f"{kind}_{part}", "0" if part == "country" else "")
                for kind in ("billing", "shipping")
                for part in ("street", "city", "state", "zip", "country")
            },
            "include_shipping": "0",
            "show_shipping_on_invoice": "1",
            "show_quantity_as": "1",
            "project_id": "0",
            "subscription_id": "0",
            "short_link": None,
        }

    def _system_currency(self) -> str:
        for currency_id, currency in sorted(self._currencies.items()):
            if currency["isdefault"] == "1":
                return str(currency_id)
        return "1"

    def _replace_items(self, invoice_id: int, items: list[_ItemInput]) -> None:
        keep = {item.item_id for item in items if item.item_id is not None}
        for item_id in [i for i, row in self._items.items() if row["rel_id"] == str(invoice_id)]:
            if item_id not in keep:
                del self._items[item_id]
        for item in items:
            item_id = item.item_id if item.item_id is not None else self._take_id("items")
            self._items[item_id] = {
                "id": str(item_id),
                "rel_id": str(invoice_id),
                "rel_type": "invoice",
                "description": item.description,
                "long_description": item.long_description,
                "qty": money(item.qty),
                "rate": money(item.rate),
                "unit": item.unit,
                "item_order": str(item.order),
                "taxname": [name for name, _ in item.taxes],
                "taxrate": [money(rate) for _, rate in item.taxes],
            }

    def _apply_totals(self, row: Row, explicit: dict[str, Decimal]) -> None:
        lines = [
            LineAmounts(
                qty=dec(item["qty"]),
                rate=dec(item["rate"]),
                taxes=tuple(
                    zip(item["taxname"], (Decimal(r) for r in item["taxrate"]), strict=True)
                ),
            )
            for item in self._invoice_items(int(row["id"]))
        ]
        totals = compute_totals(
            lines, dec(row["discount_percent"]), row["discount_type"] or "", dec(row["adjustment"])
        )
        # Totals sent by the client are stored as given; only missing ones are computed.
        row["subtotal"] = money(explicit.get("subtotal", totals.subtotal))
        row["total_tax"] = money(explicit.get("total_tax", totals.total_tax))
        row["discount_total"] = money(totals.discount_total)
        row["total"] = money(explicit.get("total", totals.total))

    def _finalise_draft(self, row: Row, number: str | None) -> None:
        chosen = number or str(self._next_invoice_number)
        if self._number_taken(chosen, row["date"], int(row["id"])):
            raise Invalid({"number": "The invoice number is already in use."})
        row["number"] = chosen
        row["status"] = str(STATUS_UNPAID)
        self._next_invoice_number += 1
        self._recompute_status(row)

    def _update_invoice_row(self, invoice_id: int, fields: Row, source: Source) -> Row:
        header, items, status, explicit = self._invoice_changes(fields, source, invoice_id)
        row = self._invoices[invoice_id]
        current = int(row["status"])
        if status in (STATUS_PAID, STATUS_PARTIAL, STATUS_OVERDUE) and status != current:
            raise Invalid({"status": "Paid, partially paid and overdue follow from payments."})
        if status == STATUS_DRAFT and current != STATUS_DRAFT:
            raise Invalid({"status": "An invoice cannot become a draft again."})
        number = header.pop("number", None)
        day = header.get("date") or row["date"]
        finalising = current == STATUS_DRAFT and status == STATUS_UNPAID
        if finalising:
            wanted = number or str(self._next_invoice_number)
            if self._number_taken(wanted, day, invoice_id):
                raise Invalid({"number": "The invoice number is already in use."})
        elif (
            current != STATUS_DRAFT
            and (number is not None or "date" in header)
            and self._number_taken(number or row["number"], day, invoice_id)
        ):
            raise Invalid({"number": "The invoice number is already in use."})
        # Everything is validated: apply. A draft keeps its placeholder number until finalised.
        row.update(header)
        if number is not None and current != STATUS_DRAFT:
            row["number"] = number
        if items is not None:
            self._replace_items(invoice_id, items)
        totals_inputs = {"discount_percent", "discount_type", "adjustment"}
        if items is not None or explicit or totals_inputs & set(header):
            self._apply_totals(row, explicit)
        if status == STATUS_CANCELLED:
            row["status"] = str(STATUS_CANCELLED)
        elif finalising:
            self._finalise_draft(row, number)
        elif status == STATUS_UNPAID and current == STATUS_CANCELLED:
            row["status"] = str(STATUS_UNPAID)
        self._recompute_status(row)
        return row

    def _delete_invoice_row(self, invoice_id: int) -> str | None:
        if self.quirks.delete_only_last_invoice and invoice_id != max(self._invoices):
            return "Only the last invoice can be deleted"
        del self._invoices[invoice_id]
        for item_id in [i for i, row in self._items.items() if row["rel_id"] == str(invoice_id)]:
            del self._items[item_id]
        for payment_id in [
            p for p, row in self._payments.items() if row["invoiceid"] == str(invoice_id)
        ]:
            del self._payments[payment_id]
        return None

    def _is_overdue(self, row: Row) -> bool:
        due = row["duedate"]
        return bool(self.quirks.overdue_cron and due and dt.date.fromisoformat(due) < self._today())

    def _recompute_status(self, row: Row) -> None:
        """What Perfex does after every payment or edit (cancelled and drafts are left alone)."""
        current = int(row["status"])
        if current in (STATUS_CANCELLED, STATUS_DRAFT):
            return
        paid = sum((dec(p["amount"]) for p in self._invoice_payments(int(row["id"]))), Decimal(0))
        total = dec(row["total"])
        if paid > 0 and paid >= total:
            status = STATUS_PAID
        elif paid > 0:
            status = STATUS_PARTIAL  # inferred: a partly paid invoice past due stays 3
        elif self._is_overdue(row):
            status = STATUS_OVERDUE
        else:
            status = STATUS_UNPAID
        row["status"] = str(status)

    def _run_cron(self) -> None:
        """The Perfex cron job: unpaid invoices past their due date become overdue."""
        if not self.quirks.overdue_cron:
            return
        for row in self._invoices.values():
            if row["status"] == str(STATUS_UNPAID) and self._is_overdue(row):
                row["status"] = str(STATUS_OVERDUE)

    # ------------------------------------------------------------------ payments (model)

    def _payment_changes(
        self, fields: Row, source: Source, *, creating: bool
    ) -> dict[str, str | None]:
        errors: dict[str, str] = {}
        changes: dict[str, str | None] = {}
        for key, value in fields.items():
            if key in ("invoiceid", "invoice_id"):
                if not creating:
                    if source == "ui":
                        errors[key] = "A payment cannot move to another invoice."
                    continue
                invoice_id = int_value(value, "invoiceid", errors)
                if invoice_id is not None and invoice_id not in self._invoices:
                    errors["invoiceid"] = "The invoiceid field must refer to an existing invoice."
                elif invoice_id is not None:
                    changes["invoiceid"] = str(invoice_id)
            elif key == "amount":
                amount = decimal_value(value, key, errors)
                if amount is not None and amount <= 0:
                    errors[key] = "The amount field must be greater than 0."
                elif amount is not None:
                    changes[key] = money(amount)
            elif key == "date":
                day = date_value(value, key, errors)
                if day is not None:
                    changes[key] = day.isoformat()
            elif key in _PAYMENT_TEXT:
                changes[key] = self._clean(text_value(value, key, errors), source)
            elif source == "ui":
                errors[key] = f"Perfex payments have no field {key!r}."
        if creating:
            for key in ("invoiceid", "amount", "date"):
                if key not in changes and key not in errors:
                    errors[key] = f"The {key} field is required."
        if errors:
            raise Invalid(errors)
        return changes

    def _new_payment(self, fields: Row, source: Source) -> Row:
        changes = self._payment_changes(fields, source, creating=True)
        payment_id = self._take_id("payments")
        row: Row = {
            "id": str(payment_id),
            "invoiceid": "",
            "amount": "0.00",
            "paymentmode": "1",
            "paymentmethod": "",
            "date": "",
            "daterecorded": self._now_local(),
            "note": "",
            "transactionid": None,
        }
        row.update(changes)
        if not row["paymentmode"]:
            row["paymentmode"] = "1"
        self._payments[payment_id] = row
        self._recompute_status(self._invoices[int(row["invoiceid"])])
        return row

    def _update_payment_row(self, payment_id: int, fields: Row, source: Source) -> Row:
        changes = self._payment_changes(fields, source, creating=False)
        row = self._payments[payment_id]
        row.update(changes)
        self._recompute_status(self._invoices[int(row["invoiceid"])])
        return row

    def _delete_payment_row(self, payment_id: int) -> None:
        row = self._payments.pop(payment_id)
        invoice = self._invoices.get(int(row["invoiceid"]))
        if invoice is not None:
            self._recompute_status(invoice)

    # ------------------------------------------------------------------ seeding

    def load_seed(self, seed: VendorSeed) -> None:
        self._clear()
        numbered = [
            (inv, parts)
            for inv in seed.invoices
            if inv.number and (parts := split_invoice_number(inv.number)) is not None
        ]
        if numbered:
            # Company settings a user would have chosen to match their numbering.
            paddings = Counter(parts[2] for _, parts in numbered)
            self._number_padding = max(paddings.items(), key=lambda kv: (kv[1], kv[0]))[0]
            latest = max(numbered, key=lambda pair: (pair[0].issue_date, pair[1][1]))
            self._invoice_prefix = latest[1][0]
        customer_ids: dict[str, int] = {}
        for contact in seed.contacts:
            customer_ids[contact.key] = self._seed_contact(contact)
        for invoice in seed.invoices:
            self._seed_invoice(invoice, customer_ids)
        # next_invoice_number follows the numbering in use: the latest prefix (the seeded
        # company restarts its numbers every year, with the year in the prefix).
        current = [
            int(row["number"])
            for row in self._invoices.values()
            if row["prefix"] == self._invoice_prefix and int(row["number"]) != DRAFT_NUMBER
        ]
        self._next_invoice_number = max(current, default=0) + 1

    def _seed_contact(self, contact: SeedContact) -> int:
        country = str(COUNTRY_ID_BY_ISO2.get(contact.country, 0))
        customer_id = self._take_id("customers")
        created = self._local(contact.created_at)
        # Seeded records were typed into the admin UI.
        customer = self._customer_row(customer_id, "ui", created)
        customer.update(
            {
                "company": contact.name,
                "vat": contact.vat_number or "",
                "phonenumber": contact.phone or "",
                "country": country,
                "city": contact.city or "",
                "zip": contact.postal_code or "",
                "address": contact.address or "",
                "website": contact.website or "",
                "billing_street": contact.address or "",
                "billing_city": contact.city or "",
                "billing_zip": contact.postal_code or "",
                "billing_country": country,
            }
        )
        self._customers[customer_id] = customer
        first, last = contact.first_name, contact.last_name
        if not (first or last) and contact.kind == "person":
            first, _, last = contact.name.partition(" ")
        if not (first or last) and contact.email:
            # Nobody named: the admin files the shared mailbox under the company's name.
            first, last = contact.email.split("@", 1)[0].capitalize(), contact.name
        if first or last or contact.email:
            contact_id = self._take_id("contacts")
            row = self._contact_row(contact_id, str(customer_id), "ui", created)
            row.update(
                {
                    "is_primary": "1",
                    "firstname": first or "",
                    "lastname": last or "",
                    "email": contact.email or "",
                    "phonenumber": contact.phone or "",
                }
            )
            self._contacts[contact_id] = row
        return customer_id

    def _currency_id(self, code: str) -> str:
        for currency_id, currency in self._currencies.items():
            if currency["name"] == code.upper():
                return str(currency_id)
        currency_id = max(self._currencies) + 1
        self._currencies[currency_id] = {
            "id": str(currency_id),
            "symbol": code.upper(),
            "name": code.upper(),
            "decimal_separator": ",",
            "thousand_separator": ".",
            "placement": "before",
            "isdefault": "0",
        }
        return str(currency_id)

    def _seed_invoice(self, invoice: SeedInvoice, customer_ids: dict[str, int]) -> None:
        status = _SEED_STATUS[invoice.status]
        parts = split_invoice_number(invoice.number) if invoice.number else None
        if parts is None:
            prefix, number = self._invoice_prefix, DRAFT_NUMBER
        else:
            prefix, number = parts[0], parts[1]
        customer_id = customer_ids.get(invoice.contact_key)
        customer = self._customers.get(customer_id) if customer_id is not None else None
        invoice_id = self._take_id("invoices")
        created = self._local(invoice.created_at)
        sent = invoice.status not in ("draft", "open")
        row = self._invoice_row(
            invoice_id,
            customer,
            "ui",
            created,
            number=str(number),
            prefix=prefix,
            date=invoice.issue_date.isoformat(),
            duedate=invoice.due_date.isoformat(),
            currency=self._currency_id(invoice.currency),
            status=status,
        )
        if sent:
            row.update({"sent": "1", "datesend": created})
        self._invoices[invoice_id] = row
        self._replace_items(
            invoice_id,
            [
                _ItemInput(
                    item_id=None,
                    description=line.description,
                    long_description="",
                    qty=line.quantity,
                    rate=line.unit_price,
                    unit="",
                    order=index,
                    # A 0 % line is entered as "No Tax" in Perfex.
                    taxes=(("VAT", line.vat_rate),) if line.vat_rate else (),
                )
                for index, line in enumerate(invoice.lines, start=1)
            ],
        )
        self._apply_totals(row, {})
        for payment in invoice.payments:
            payment_id = self._take_id("payments")
            self._payments[payment_id] = {
                "id": str(payment_id),
                "invoiceid": str(invoice_id),
                "amount": money(payment.amount),
                "paymentmode": "1",
                "paymentmethod": "",
                "date": payment.date.isoformat(),
                "daterecorded": f"{payment.date.isoformat()} 12:00:00",
                "note": "",
                "transactionid": None,
            }

    # ------------------------------------------------------------------ control hooks

    def dump(self) -> dict[str, Any]:
        self._run_cron()
        return {
            "customers": [self._customer_view(self._customers[k]) for k in sorted(self._customers)],
            "contacts": [self._contact_view(self._contacts[k]) for k in sorted(self._contacts)],
            "invoices": [
                {**self._invoices[k], "items": [dict(i) for i in self._invoice_items(k)]}
                for k in sorted(self._invoices)
            ],
            "payments": [dict(self._payments[k]) for k in sorted(self._payments)],
            "settings": {
                "invoice_prefix": self._invoice_prefix,
                "number_padding": self._number_padding,
                "next_invoice_number": self._next_invoice_number,
                "timezone": self.quirks.timezone,
            },
        }

    @staticmethod
    def _record_id(record_id: str, table: dict[int, Row]) -> int:
        if re.fullmatch(r"[0-9]{1,18}", str(record_id)) is None or int(record_id) not in table:
            raise KeyError(record_id)
        return int(record_id)

    def _table(self, resource: str) -> dict[int, Row]:
        tables = {
            "customers": self._customers,
            "contacts": self._contacts,
            "invoices": self._invoices,
            "payments": self._payments,
        }
        if resource not in tables:
            raise ValueError(f"perfex has no resource {resource!r}; use one of {RESOURCES}")
        return tables[resource]

    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        key = self._record_id(record_id, self._table(resource))
        kind = self._kinds[resource]
        try:
            row = kind.update(key, fields, "ui")
        except Invalid as problem:
            raise ValueError(str(problem)) from None
        return kind.view(row)

    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        self._table(resource)
        kind = self._kinds[resource]
        try:
            row = kind.new(fields, "ui")
        except Invalid as problem:
            raise ValueError(str(problem)) from None
        return kind.view(row)

    def delete(self, resource: str, record_id: str) -> None:
        key = self._record_id(record_id, self._table(resource))
        refusal = self._kinds[resource].remove(key)
        if refusal is not None:
            raise ValueError(refusal)

    def archive(self, resource: str, record_id: str) -> dict[str, Any]:
        if resource not in ("customers", "contacts"):
            self._table(resource)
            raise ValueError(f"perfex cannot archive {resource}; only customers and contacts")
        return self.mutate(resource, record_id, {"active": "0"})

    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        key = self._record_id(invoice_id, self._invoices)
        try:
            row = self._new_payment(
                {"invoiceid": key, "amount": amount, "date": date.isoformat(), "paymentmode": "1"},
                "ui",
            )
        except Invalid as problem:
            raise ValueError(str(problem)) from None
        return self._payment_view(row)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _matches(row: Row, needle: str, columns: tuple[str, ...]) -> bool:
    return any(needle in (row.get(column) or "").lower() for column in columns)
