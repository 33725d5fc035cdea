"""SimplBooks API emulator: clients, sales invoices with rows, receipts, VAT types.

Routes (relative to the vendor prefix ``/simplbooks/{company_id}/api``; every call accepts
GET and POST, as the real server does not enforce the documented verb):

    clients/list            clients/get/{id}        clients/create
    clients/update          clients/delete/{id}     clients/invoices/{id}
    clients/incomings/{id}
    invoices/list           invoices/get/{id}       invoices/create
    invoices/update         invoices/delete/{id}    invoices/sent/{id}
    invoices/get_bound_receipts/{id}
    incomings/list          incomings/get/{id}      incomings/create
    incomings/update        incomings/delete/{id}   incomings/invoice_paid
    vat_types/list          income_accounts/list

Any other path answers the vendor's 404 envelope ("Category of API call is missing." /
"Action of API call is missing." / "Specified API call is not recognized.").

Resource names for the control hooks: ``clients``, ``invoices``, ``incomings`` (receipts,
i.e. customer payments bound to invoices). ``dump`` also lists ``vat_types``,
``income_accounts`` and ``bound_receipts`` (invoice id -> receipt ids). SimplBooks has no
archiving (``archive`` raises ValueError) and no change timestamps or versions on any of
these records, so nothing visible is bumped on a change: clients must hash content.

Quirks emulated: the ``{status, duration, inserted_id, data|response|errors}`` envelope
with ``status`` mirroring the HTTP status; model-name wrappers (``Client``, lowercase
``invoices`` on the invoice list, ``Incoming``, ``VatType``); write rows as
``Tasks: [{Task: {...}}]`` but read rows as ``Task: [...]``; ``"0000-00-00"`` for unsent /
unpaid dates; 400 (never 404) for an unknown or missing id; 400 "The number of requested
entries is too big." past ``per_page`` 1000; default page size 10 and no totals (a short
page ends the list); filters read from the query string, a form body or a JSON body
(``X-Input-Format: json``), also on GET; CakePHP bracket names in form data
(``Client[name]``, ``Tasks[0][Task][name]``, ``fields[]``); ``dd-mm-yyyy`` or
``yyyy-mm-dd`` for ``created_from``/``created_until``; invoices keep a snapshot of the
client's name and address taken when the client was set; 60 requests a minute with
rejected requests still counted, halved while more than 10 000 requests were seen in 24 h.
"""

from __future__ import annotations

import collections
import datetime as dt
import hmac
import json
import math
import re
from collections.abc import Awaitable, Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from syncd.sandbox.base import (
    Clock,
    RateDecision,
    RateWindow,
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    VendorSeed,
)
from syncd.sandbox.base import VendorEmulator as _VendorEmulator
from syncd.sandbox.common import exact_json, plain_decimal

TOKEN_HEADER: Final = "X-Simplbooks-Token"  # noqa: S105 - a header name, not a secret
INPUT_FORMAT_HEADER: Final = "X-Input-Format"

NO_DATE: Final = "0000-00-00"
DEFAULT_PER_PAGE: Final = 10
MAX_PER_PAGE: Final = 1000  # undocumented maximum [inferred]; larger -> 400
DAILY_THRESHOLD: Final = 10_000
DAY_SECONDS: Final = 86_400.0

# A fixed duration keeps every response byte-for-byte reproducible.
DURATION: Final = Decimal("0.0213")

MSG_TOKEN_MISSING: Final = "API token in HTTP header is missing."  # noqa: S105 - a message
MSG_TOKEN_WRONG: Final = "Used API token is expired or wrong."  # noqa: S105 - a message
MSG_NO_CATEGORY: Final = "Category of API call is missing."
MSG_NO_ACTION: Final = "Action of API call is missing."
MSG_NOT_RECOGNISED: Final = "Specified API call is not recognized."
MSG_NO_OBJECT: Final = "Object with given ID does not exist."
MSG_NO_INVOICE: Final = "Invoice with given ID does not exist."
MSG_TOO_MANY: Final = "The number of requested entries is too big."
MSG_VALIDATION: Final = "Validation error from SimplBooks system."
MSG_CREATED: Final = "New entry saved."
MSG_CHANGED: Final = "Entry successfully changed."

CENT: Final = Decimal("0.01")
ZERO: Final = Decimal("0.00")

FIRST_CLIENT_ID: Final = 1
# Separate id ranges make a client that mixes up id spaces fail loudly in tests.
FIRST_INVOICE_ID: Final = 5001
FIRST_INCOMING_ID: Final = 9001
FIRST_TASK_ID: Final = 20001

CLIENT_BASIC_FIELDS: Final = (
    "name",
    "reg_no",
    "vat_no",
    "address_street",
    "address_city",
    "address_postal_code",
    "address_county",
    "address_country",
    "webpage",
    "e_mail",
    "phone",
    "fax",
    "account_no",
    "bank",
    "swift_code",
)
CLIENT_INT_SETTINGS: Final = (
    "client_settings_due_days",
    "client_settings_purchase_due_days",
    "client_settings_supply_days",
    "client_settings_price_offer_due_days",
    "client_settings_sales_vat_type_id",
    "client_settings_purchase_vat_type_id",
    "invoice_document_template_id",
    "price_offer_document_template_id",
    "sales_order_document_template_id",
)
CLIENT_DECIMAL_SETTINGS: Final = ("client_settings_discount", "client_settings_overdue_percent")
CLIENT_STR_SETTINGS: Final = (
    "client_settings_language",
    "edi_identifier",
    "intermediator_identifier",
)
CLIENT_FIELDS: Final = (
    "id",
    *CLIENT_BASIC_FIELDS,
    "client_settings_discount",
    "client_settings_due_days",
    "client_settings_purchase_due_days",
    "client_settings_supply_days",
    "client_settings_price_offer_due_days",
    "client_settings_overdue_percent",
    "client_settings_sales_vat_type_id",
    "client_settings_purchase_vat_type_id",
    "client_settings_language",
    "invoice_document_template_id",
    "price_offer_document_template_id",
    "sales_order_document_template_id",
    "edi_identifier",
    "intermediator_identifier",
)
CLIENT_FILTERS: Final = (
    "name",
    "reg_no",
    "vat_no",
    "e_mail",
    "address_street",
    "address_city",
    "address_postal_code",
    "address_county",
    "address_country",
)

INVOICE_FIELDS: Final = (
    "id",
    "client_id",
    "client_name",
    "client_reg_no",
    "client_vat_no",
    "client_address_street",
    "client_address_city",
    "client_address_postal_code",
    "client_address_county",
    "client_address_country",
    "contact_reference",
    "client_location_id",
    "created",
    "transaction_date",
    "due",
    "number",
    "reference",
    "sum",
    "vat",
    "rounding",
    "total_sum",
    "row_sum_with_vat",
    "currency_name",
    "currency_rate",
    "overdue_charge_percent",
    "overdue_charge_period",
    "assembler_name",
    "sent",
    "paid",
    "remnant",
    "additional_info",
    "credit_invoice_for",
    "proforma",
    "proforma_percent",
    "language",
    "document_template_id",
    "period_start",
    "period_end",
)
INVOICE_LIST_FIELDS: Final = (
    "id",
    "client_id",
    "client_name",
    "client_reg_no",
    "client_vat_no",
    "created",
    "transaction_date",
    "due",
    "number",
    "sum",
    "vat",
    "rounding",
    "total_sum",
    "row_sum_with_vat",
    "currency_name",
    "currency_rate",
    "sent",
    "paid",
    "proforma",
    "proforma_percent",
    "credit_invoice_for",
)
# Computed or system-kept: ignored on API writes, refused by `mutate`.
INVOICE_READ_ONLY: Final = frozenset(
    {"id", "sum", "vat", "total_sum", "paid", "remnant", "assembler_name"}
    | {
        f
        for f in INVOICE_FIELDS
        if f.startswith("client_") and f not in {"client_id", "client_location_id"}
    }
)
TASK_FIELDS: Final = (
    "id",
    "warehouse_id",
    "article_id",
    "code",
    "name",
    "contents",
    "unit",
    "amount",
    "price_per_unit",
    "worker",
    "vat",
    "vat_type_id",
    "discount",
    "income_account_id",
)
INCOMING_FIELDS: Final = (
    "id",
    "income_account_id",
    "income_sum",
    "income_date",
    "description",
    "currency_name",
    "currency_rate",
    "client_id",
)

DEFAULT_INCOME_ACCOUNT_ID: Final = 1  # the company's main bank account
DEFAULT_ROW_INCOME_ACCOUNT_ID: Final = 35  # sales revenue ledger account (spec example)
DEFAULT_DUE_DAYS: Final = 14
DEFAULT_SALES_VAT_TYPE_ID: Final = 3  # "Kaup Eesti 24%"
ASSEMBLER_NAME: Final = "API kasutaja"

# (id, name, percent, is_sales, is_purchase, active). Ids are stable across seeds.
VAT_TYPES: Final = (
    (1, "Kaup Eesti 20%", "20", True, True, False),
    (2, "Kaup Eesti 22%", "22", True, True, True),
    (3, "Kaup Eesti 24%", "24", True, True, True),
    (4, "Kaup Eesti 9%", "9", True, True, True),
    (5, "Kaup Eesti 13%", "13", True, True, True),
    (6, "Maksuvaba käive", "0", True, True, True),
    (7, "Ühendusesisene kaup 0%", "0", True, True, True),
    (8, "Ühendusesisene teenus 0%", "0", True, True, True),
    (9, "Eksport 0%", "0", True, False, True),
    (10, "OSS Madalmaad 21%", "21", True, False, True),
    (11, "OSS Madalmaad 9%", "9", True, False, True),
)
# A foreign (EU) customer's rate maps to these before the Estonian types.
FOREIGN_VAT_TYPE_BY_RATE: Final = {Decimal(0): 8, Decimal(21): 10, Decimal(9): 11}

# (id, name, account_no, currency) — bank accounts and cash registers; shape inferred.
INCOME_ACCOUNTS: Final = (
    (1, "Swedbank arvelduskonto", "EE382200221020145685", "EUR"),
    (2, "LHV arvelduskonto", "EE717700771001735865", "EUR"),
    (3, "Kassa", "", "EUR"),
)

BANK_BY_BIC_PREFIX: Final = {
    "HABA": "Swedbank",
    "EEUH": "SEB Pank",
    "LHVB": "LHV Pank",
    "RIKO": "Luminor Bank",
    "INGB": "ING Bank",
    "RABO": "Rabobank",
    "ABNA": "ABN AMRO",
    "TRIO": "Triodos Bank",
    "BUNQ": "bunq",
    "SNSB": "SNS Bank",
    "KNAB": "Knab",
    "ASNB": "ASN Bank",
    "NDEA": "Nordea",
    "EKRD": "Coop Pank",
}

_DATE_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_DATE_DMY = re.compile(r"^(\d{2})-(\d{2})-(\d{4})$")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_BRACKETS = re.compile(r"\[([^\]]*)\]")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Action = Callable[[dict[str, Any], str | None], web.Response]


class ApiError(Exception):
    """A vendor error answer: HTTP status plus the ``errors`` list."""

    def __init__(self, status: int, *messages: str) -> None:
        super().__init__(messages[0] if messages else str(status))
        self.status = status
        self.messages = list(messages)


def _invalid(*messages: str) -> ApiError:
    return ApiError(400, *messages)


# ---------------------------------------------------------------- JSON rendering


def _decimal_literal(value: Decimal) -> str:
    """A JSON number for a Decimal, as PHP's json_encode prints a float (13.70 -> 13.7)."""
    text = plain_decimal(value)
    return "0" if text in {"", "-0"} else text


def render_json(value: Any) -> str:
    """Serialise to JSON text with Decimals as exact JSON numbers (never through float)."""
    return exact_json(value, _decimal_literal)


def _jsonable(value: Any) -> Any:
    """Deep copy with Decimals as exact strings (for dump and the control hooks)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _jsonable_dict(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in value.items()}


def envelope(
    status: int,
    *,
    inserted_id: int = 0,
    data: Any = None,
    response: str | None = None,
    errors: list[str] | None = None,
    has_data: bool = False,
) -> web.Response:
    """The vendor's unified response: ``status`` mirrors the HTTP status."""
    body: dict[str, Any] = {"status": status, "duration": DURATION, "inserted_id": inserted_id}
    if has_data:
        body["data"] = data
    if response is not None:
        body["response"] = response
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status, text=render_json(body), content_type="application/json", charset="utf-8"
    )


def error_response(status: int, *messages: str) -> web.Response:
    return envelope(status, errors=list(messages))


# ---------------------------------------------------------------- request parsing


def _bracket_path(key: str) -> list[str]:
    """``Tasks[0][Task][name]`` -> ``["Tasks", "0", "Task", "name"]``; ``fields[]`` -> ``["fields", ""]``."""
    head, _, rest = key.partition("[")
    if not rest:
        return [key]
    return [head, *_BRACKETS.findall("[" + rest)]


def _listify(node: Any) -> Any:
    """Turn dicts whose keys are all integers into lists, ordered by key, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(_INT_TEXT.match(k) for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def parse_bracket_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """CakePHP form names (``Client[name]=x``) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = _bracket_path(key)
        node = root
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    result = _listify(root)
    return result if isinstance(result, dict) else {}


# ---------------------------------------------------------------- value coercion


def _as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise _invalid(f"Field '{field}' must be an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and _INT_TEXT.match(value.strip()):
        return int(value.strip())
    raise _invalid(f"Field '{field}' must be an integer.")


def _as_decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool):
        raise _invalid(f"Field '{field}' must be a number.")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise _invalid(f"Field '{field}' must be a number.") from None
    else:
        raise _invalid(f"Field '{field}' must be a number.")
    if not number.is_finite():
        raise _invalid(f"Field '{field}' must be a number.")
    return number


def _as_bool(value: Any, field: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {"0", "1", "true", "false", ""}:
        return value.strip().lower() in {"1", "true"}
    raise _invalid(f"Field '{field}' must be a boolean.")


def _as_str(value: Any, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise _invalid(f"Field '{field}' must be a string.")


def _parse_date(text: str, *, allow_dmy: bool) -> dt.date | None:
    match = _DATE_ISO.match(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
    else:
        match = _DATE_DMY.match(text) if allow_dmy else None
        if not match:
            return None
        day, month, year = (int(g) for g in match.groups())
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _as_date(value: Any, field: str, *, allow_sentinel: bool = False) -> str:
    """A ``yyyy-MM-dd`` string, validated (``0000-00-00`` where the field allows it)."""
    text = _as_str(value, field)
    if allow_sentinel and text in {NO_DATE, ""}:
        return NO_DATE
    if _parse_date(text, allow_dmy=False) is None:
        raise _invalid(f"Field '{field}' must be a date (yyyy-MM-dd).")
    return text


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _reference_number(base: int) -> str:
    """An Estonian payment reference: the base digits plus a 7-3-1 check digit."""
    digits = str(base)
    weights = (7, 3, 1)
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(reversed(digits)))
    return digits + str((10 - total % 10) % 10)


# ---------------------------------------------------------------- the emulator


class SimplbooksEmulator(_VendorEmulator):
    """In-memory SimplBooks company: clients, invoices + rows, receipts, VAT types."""

    name = "simplbooks"
    default_rate_windows = (RateWindow(requests=60, per_seconds=60.0),)

    def __init__(
        self,
        options: SandboxOptions,
        clock: Clock,
        *,
        daily_threshold: int = DAILY_THRESHOLD,
        halve_after_busy_day: bool = True,
        strict_input_format: bool = True,
        enforce_verbs: bool = False,
        refuse_client_delete_with_documents: bool = True,
        retry_after_header: bool = False,
    ) -> None:
        """Flags switch the behaviours the vendor reference marks as inferred.

        - ``daily_threshold`` / ``halve_after_busy_day``: older vendor prose: after more than
          10 000 requests in 24 h the limits halve until the 24 h count is back within it.
        - ``strict_input_format``: a JSON body is read only with ``X-Input-Format: json``
          (without it the server expects form data and sees no fields); False also reads a
          body sent as ``Content-Type: application/json``.
        - ``enforce_verbs``: the real server seems to accept any verb (an old plugin lists
          with POST); True answers 404 for a write sent as GET.
        - ``refuse_client_delete_with_documents``: deleting a client that has invoices or
          receipts fails with a 400 validation error.
        - ``retry_after_header``: no rate-limit headers are documented; True adds one.
        """
        super().__init__(options, clock)
        self.daily_threshold = daily_threshold
        self.halve_after_busy_day = halve_after_busy_day
        self.strict_input_format = strict_input_format
        self.enforce_verbs = enforce_verbs
        self.refuse_client_delete_with_documents = refuse_client_delete_with_documents
        self.retry_after_header = retry_after_header
        self._recent: collections.deque[float] = collections.deque()
        self._write_handlers: set[Handler] = set()
        self._clients: dict[int, dict[str, Any]] = {}
        self._invoices: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, list[dict[str, Any]]] = {}
        self._incomings: dict[int, dict[str, Any]] = {}
        self._projects: dict[int, list[dict[str, Any]]] = {}
        self._bindings: dict[int, int] = {}  # incoming id -> invoice id
        self._full_cover: set[int] = set()  # incomings bound with full_cover
        self._next_client_id = FIRST_CLIENT_ID
        self._next_invoice_id = FIRST_INVOICE_ID
        self._next_incoming_id = FIRST_INCOMING_ID
        self._next_task_id = FIRST_TASK_ID
        self._reserved_numbers: set[str] = set()  # seeded numbers, while seeding

    # ------------------------------------------------------------ auth and rate limits

    def check_auth(self, request: web.Request) -> web.Response | None:
        token = request.headers.get(TOKEN_HEADER, "").strip()
        if not token:
            return error_response(401, MSG_TOKEN_MISSING)
        if not hmac.compare_digest(token.encode(), self.credential("token").encode()):
            return error_response(403, MSG_TOKEN_WRONG)
        company = request.match_info.get("company_id")
        if company is not None and company != self.options.simplbooks_company_id:
            # A token belongs to one company's API user [inferred: same 403 as a bad token].
            return error_response(403, MSG_TOKEN_WRONG)
        return None

    def counts_rejected_requests(self) -> bool:
        return True

    def on_request(self, request: web.Request) -> None:
        """Keep the 24 h request log that decides whether the limits are halved."""
        now = self.clock().timestamp()
        self._recent.append(now)
        self._prune_recent(now)

    def _prune_recent(self, now: float) -> None:
        horizon = now - DAY_SECONDS / self.options.rate_scale
        while self._recent and self._recent[0] <= horizon:
            self._recent.popleft()

    def requests_last_day(self) -> int:
        """Authenticated requests seen in the last (scaled) 24 h."""
        self._prune_recent(self.clock().timestamp())
        return len(self._recent)

    def current_rate_windows(self) -> tuple[RateWindow, ...]:
        # "Until the average is within limits again" is read as: until the rolling 24 h
        # count is back at or under the threshold [inferred].
        if self.halve_after_busy_day and self.requests_last_day() > self.daily_threshold:
            return tuple(
                RateWindow(max(1, w.requests // 2), w.per_seconds)
                for w in self.default_rate_windows
            )
        return self.default_rate_windows

    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        limit = decision.limit or self.current_rate_windows()[0].requests
        response = error_response(
            429, f"Inquiry failed! Number of permitted inquiries per minute: {limit}"
        )
        if self.retry_after_header:
            response.headers["Retry-After"] = str(max(1, math.ceil(decision.reset_seconds)))
        return response

    def server_error_response(self, status: int) -> web.Response:
        if status == 500:
            # 5XX are documented as temporary; the envelope shape is inferred.
            return error_response(500, "Internal server error.")
        return super().server_error_response(status)

    def is_write(self, request: web.Request) -> bool:
        return request.match_info.handler in self._write_handlers

    def reset(self) -> None:
        super().reset()
        self._recent.clear()

    # ------------------------------------------------------------ routing

    def build_routes(self, app: web.Application) -> None:
        reads: dict[str, Action] = {
            "/clients/list": self._clients_list,
            "/clients/get": self._clients_get,
            "/clients/invoices": self._clients_invoices,
            "/clients/incomings": self._clients_incomings,
            "/invoices/list": self._invoices_list,
            "/invoices/get": self._invoices_get,
            "/invoices/get_bound_receipts": self._invoices_bound_receipts,
            "/incomings/list": self._incomings_list,
            "/incomings/get": self._incomings_get,
            "/vat_types/list": self._vat_types_list,
            "/income_accounts/list": self._income_accounts_list,
        }
        writes: dict[str, Action] = {
            "/clients/create": self._clients_create,
            "/clients/update": self._clients_update,
            "/clients/delete": self._clients_delete,
            "/invoices/create": self._invoices_create,
            "/invoices/update": self._invoices_update,
            "/invoices/delete": self._invoices_delete,
            "/invoices/sent": self._invoices_sent,
            "/incomings/create": self._incomings_create,
            "/incomings/update": self._incomings_update,
            "/incomings/delete": self._incomings_delete,
            "/incomings/invoice_paid": self._incomings_invoice_paid,
        }
        with_id = {
            "/clients/get",
            "/clients/invoices",
            "/clients/incomings",
            "/clients/delete",
            "/invoices/get",
            "/invoices/get_bound_receipts",
            "/invoices/delete",
            "/invoices/sent",
            "/incomings/get",
            "/incomings/delete",
        }
        self._write_handlers.clear()
        for table, is_write in ((reads, False), (writes, True)):
            for path, action in table.items():
                handler = self._endpoint(action, is_write=is_write)
                if is_write:
                    self._write_handlers.add(handler)
                app.router.add_route("*", path, handler)
                if path in with_id:
                    # Without an id the call still runs and finds nothing: 400, not 404.
                    app.router.add_route("*", path + "/{id}", handler)
        app.router.add_route("*", "/", self._missing_category)
        app.router.add_route("*", "/{category}", self._missing_action)
        app.router.add_route("*", "/{category}/", self._missing_action)
        app.router.add_route("*", "/{category}/{action}", self._not_recognised)
        app.router.add_route("*", "/{category}/{action}/{tail:.*}", self._not_recognised)

    async def _missing_category(self, request: web.Request) -> web.Response:
        return error_response(404, MSG_NO_CATEGORY)

    async def _missing_action(self, request: web.Request) -> web.Response:
        return error_response(404, MSG_NO_ACTION)

    async def _not_recognised(self, request: web.Request) -> web.Response:
        return error_response(404, MSG_NOT_RECOGNISED)

    def _endpoint(self, action: Action, *, is_write: bool) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if self.enforce_verbs and request.method != ("POST" if is_write else "GET"):
                return error_response(404, MSG_NOT_RECOGNISED)
            try:
                params = await self._read_params(request)
                return action(params, request.match_info.get("id"))
            except ApiError as exc:
                return error_response(exc.status, *exc.messages)

        return handler

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        """Query string, then the body (JSON, form or multipart), merged; body wins."""
        params = parse_bracket_pairs(request.query.items())
        if not request.body_exists:
            return params
        input_format = request.headers.get(INPUT_FORMAT_HEADER, "FormData").strip().lower()
        wants_json = input_format == "json" or (
            not self.strict_input_format and request.content_type == "application/json"
        )
        if wants_json:
            text = await request.text()
            if text.strip():
                try:
                    body = json.loads(text, parse_float=Decimal)
                except ValueError:
                    raise _invalid(MSG_VALIDATION) from None
                if not isinstance(body, dict):
                    raise _invalid(MSG_VALIDATION)
                params.update(body)
            return params
        if input_format == "raw":
            return params  # raw bodies (e-invoice XML) carry no fields for these calls
        if request.content_type == "application/x-www-form-urlencoded":
            text = await request.text()
            params.update(parse_bracket_pairs(parse_qsl(text, keep_blank_values=True)))
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            pairs = [(k, v) for k, v in form.items() if isinstance(v, str)]
            params.update(parse_bracket_pairs(pairs))
        # Any other body (JSON without X-Input-Format: json) is not form data: no fields.
        return params

    # ------------------------------------------------------------ shared helpers

    @staticmethod
    def _record_id(raw: Any, message: str = MSG_NO_OBJECT) -> int:
        if raw is None or isinstance(raw, bool):
            raise _invalid(message)
        if isinstance(raw, int):
            return raw
        if isinstance(raw, str) and raw.strip().isdigit():
            return int(raw.strip())
        if isinstance(raw, Decimal) and raw == raw.to_integral_value():
            return int(raw)
        raise _invalid(message)

    @staticmethod
    def _model(params: dict[str, Any], key: str) -> dict[str, Any]:
        body = params.get(key)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise _invalid(f"Field '{key}' must be an object.")
        return body

    @staticmethod
    def _page(params: dict[str, Any], rows: list[Any]) -> list[Any]:
        page = 1 if _is_blank(params.get("page")) else _as_int(params.get("page"), "page")
        per_page = (
            DEFAULT_PER_PAGE
            if _is_blank(params.get("per_page"))
            else _as_int(params.get("per_page"), "per_page")
        )
        if per_page > MAX_PER_PAGE:
            raise _invalid(MSG_TOO_MANY)
        if per_page < 1:
            raise _invalid("Field 'per_page' must be a positive integer.")
        if page < 1:
            raise _invalid("Field 'page' must be a positive integer.")
        start = (page - 1) * per_page
        return rows[start : start + per_page]

    @staticmethod
    def _fields(params: dict[str, Any]) -> list[str] | None:
        raw = params.get("fields")
        if _is_blank(raw):
            return None
        if isinstance(raw, str):
            return [raw]
        if isinstance(raw, list) and all(isinstance(f, str) for f in raw):
            return [f for f in raw if f]
        raise _invalid("Field 'fields' must be a list of field names.")

    @staticmethod
    def _select(row: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if fields is None:
            return row
        return {k: row[k] for k in fields if k in row}

    @staticmethod
    def _contains(haystack: Any, needle: Any) -> bool:
        """Substring match, case-insensitive like the vendor's SQL LIKE."""
        return str(needle).strip().casefold() in str(haystack).casefold()

    def _id_filter(self, params: dict[str, Any], key: str) -> int | None:
        raw = params.get(key)
        if _is_blank(raw):
            return None
        value = _as_int(raw, key)
        return value or None  # 0 means "no filter": the filter matches a nonzero id

    @staticmethod
    def _date_filter(params: dict[str, Any], key: str) -> dt.date | None:
        raw = params.get(key)
        if _is_blank(raw):
            return None
        # Real clients send both dd-mm-yyyy (the documented example) and yyyy-mm-dd.
        parsed = _parse_date(_as_str(raw, key), allow_dmy=True)
        if parsed is None:
            raise _invalid(f"Field '{key}' must be a date (dd-mm-yyyy).")
        return parsed

    def _write_ok(self, inserted_id: int, message: str | None) -> web.Response:
        self.counters.writes += 1
        return envelope(200, inserted_id=inserted_id, response=message)

    def _today(self) -> dt.date:
        return self.clock().astimezone(dt.UTC).date()

    # ------------------------------------------------------------ VAT types

    def _vat_type(self, type_id: int) -> tuple[int, str, str, bool, bool, bool] | None:
        for entry in VAT_TYPES:
            if entry[0] == type_id:
                return entry
        return None

    def _vat_type_for_rate(self, rate: Decimal, *, foreign: bool = False) -> int | None:
        if foreign and rate in FOREIGN_VAT_TYPE_BY_RATE:
            return FOREIGN_VAT_TYPE_BY_RATE[rate]
        for type_id, _name, percent, is_sales, _purchase, active in VAT_TYPES:
            if is_sales and active and Decimal(percent) == rate:
                return type_id
        return None

    # ------------------------------------------------------------ clients

    def _blank_client(self, client_id: int) -> dict[str, Any]:
        record: dict[str, Any] = {"id": client_id}
        for field in CLIENT_FIELDS[1:]:
            if field in CLIENT_INT_SETTINGS:
                record[field] = 0
            elif field in CLIENT_DECIMAL_SETTINGS:
                record[field] = Decimal(0)
            else:
                record[field] = ""
        record["client_settings_language"] = "et_EE"
        return record

    def _apply_client_fields(
        self, record: dict[str, Any], body: dict[str, Any], *, strict: bool
    ) -> None:
        """Validate and copy known Client fields; unknown fields are ignored (or refused)."""
        errors: list[str] = []
        staged: dict[str, Any] = {}
        for key, value in body.items():
            try:
                if key in CLIENT_BASIC_FIELDS or key in CLIENT_STR_SETTINGS:
                    staged[key] = _as_str(value, key)
                elif key in CLIENT_INT_SETTINGS:
                    staged[key] = 0 if _is_blank(value) else _as_int(value, key)
                elif key in CLIENT_DECIMAL_SETTINGS:
                    staged[key] = Decimal(0) if _is_blank(value) else _as_decimal(value, key)
                elif strict and key != "id":
                    errors.append(f"Field '{key}' cannot be changed.")
            except ApiError as exc:
                errors.extend(exc.messages)
        name = staged.get("name", record.get("name", ""))
        if not name:
            errors.append("Field 'name' is required.")
        vat_type = staged.get("client_settings_sales_vat_type_id", 0)
        if vat_type and self._vat_type(vat_type) is None:
            errors.append(
                "Field 'client_settings_sales_vat_type_id' refers to an unknown VAT type."
            )
        if errors:
            raise _invalid(*errors)
        record.update(staged)

    def _client_row(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: record[k] for k in ("id", *CLIENT_BASIC_FIELDS)}

    def _client_by_param(self, raw: Any) -> dict[str, Any]:
        record = self._clients.get(self._record_id(raw))
        if record is None:
            raise _invalid(MSG_NO_OBJECT)
        return record

    def _clients_list(self, params: dict[str, Any], _id: str | None) -> web.Response:
        wanted_id = self._id_filter(params, "id")
        rows = []
        for client_id in sorted(self._clients):
            record = self._clients[client_id]
            if wanted_id is not None and client_id != wanted_id:
                continue
            if any(
                not _is_blank(params.get(f)) and not self._contains(record[f], params[f])
                for f in CLIENT_FILTERS
            ):
                continue
            rows.append({"Client": self._client_row(record)})
        return envelope(200, data=self._page(params, rows), has_data=True)

    def _clients_get(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._client_by_param(raw_id)
        return envelope(200, data={"Client": dict(record)}, has_data=True)

    def _clients_invoices(self, params: dict[str, Any], raw_id: str | None) -> web.Response:
        # Response untyped in the spec; the model-wrapped list row is inferred.
        client = self._client_by_param(raw_id)
        rows = [
            {"Invoice": self._invoice_row(inv)}
            for _, inv in sorted(self._invoices.items())
            if inv["client_id"] == client["id"]
        ]
        return envelope(200, data=rows, has_data=True)

    def _clients_incomings(self, params: dict[str, Any], raw_id: str | None) -> web.Response:
        # Response untyped in the spec; the model-wrapped list row is inferred.
        client = self._client_by_param(raw_id)
        rows = [
            {"Incoming": dict(inc)}
            for _, inc in sorted(self._incomings.items())
            if inc["client_id"] == client["id"]
        ]
        return envelope(200, data=rows, has_data=True)

    def _create_client(self, body: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
        record = self._blank_client(self._next_client_id)
        self._apply_client_fields(record, body, strict=strict)
        self._clients[record["id"]] = record
        self._next_client_id += 1
        return record

    def _clients_create(self, params: dict[str, Any], _id: str | None) -> web.Response:
        record = self._create_client(self._model(params, "Client"))
        return self._write_ok(record["id"], MSG_CREATED)

    def _clients_update(self, params: dict[str, Any], _id: str | None) -> web.Response:
        body = self._model(params, "Client")
        record = self._client_by_param(body.get("id"))
        # Partial update: only the fields sent change [inferred].
        self._apply_client_fields(record, body, strict=False)
        return self._write_ok(record["id"], MSG_CHANGED)

    def _delete_client(self, client_id: int) -> None:
        if self.refuse_client_delete_with_documents and (
            any(inv["client_id"] == client_id for inv in self._invoices.values())
            or any(inc["client_id"] == client_id for inc in self._incomings.values())
        ):
            raise _invalid("Client has related documents and cannot be deleted.")
        del self._clients[client_id]

    def _clients_delete(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._client_by_param(raw_id)
        self._delete_client(record["id"])
        self.counters.writes += 1
        return envelope(200, inserted_id=record["id"])

    # ------------------------------------------------------------ invoices

    def _invoice_by_param(self, raw: Any) -> dict[str, Any]:
        record = self._invoices.get(self._record_id(raw, MSG_NO_INVOICE))
        if record is None:
            raise _invalid(MSG_NO_INVOICE)
        return record

    def _invoice_row(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: record[k] for k in INVOICE_LIST_FIELDS}

    def _invoice_detail(self, invoice_id: int) -> dict[str, Any]:
        return {
            "Invoice": dict(self._invoices[invoice_id]),
            "Task": [dict(t) for t in self._tasks[invoice_id]],
        }

    def _snapshot_client(self, record: dict[str, Any], client: dict[str, Any]) -> None:
        record["client_id"] = client["id"]
        record["client_name"] = client["name"]
        record["client_reg_no"] = client["reg_no"]
        record["client_vat_no"] = client["vat_no"]
        for part in ("street", "city", "postal_code", "county", "country"):
            record[f"client_address_{part}"] = client[f"address_{part}"]

    def _blank_invoice(self, invoice_id: int) -> dict[str, Any]:
        record: dict[str, Any] = dict.fromkeys(INVOICE_FIELDS, "")
        record.update(
            id=invoice_id,
            client_id=0,
            client_location_id=0,
            reference=_reference_number(invoice_id),
            sum=ZERO,
            vat=ZERO,
            rounding=ZERO,
            total_sum=ZERO,
            row_sum_with_vat=False,
            currency_name="EUR",
            currency_rate=Decimal(1),
            overdue_charge_percent=Decimal("0.1"),
            overdue_charge_period="day",
            assembler_name=ASSEMBLER_NAME,
            sent=NO_DATE,
            paid=NO_DATE,
            remnant=ZERO,
            credit_invoice_for=0,
            proforma=False,
            proforma_percent=Decimal(0),
            language="et_EE",
            document_template_id=1,
            period_start=NO_DATE,
            period_end=NO_DATE,
        )
        return record

    def _next_number(self) -> str:
        """Automatic numbering: one past the largest all-digit number in use."""
        numbers = [inv["number"] for inv in self._invoices.values()]
        numeric = [int(n) for n in [*numbers, *self._reserved_numbers] if n.isdigit()]
        candidate = max(numeric, default=1000) + 1
        taken = {inv["number"] for inv in self._invoices.values()} | self._reserved_numbers
        while str(candidate) in taken:
            candidate += 1
        return str(candidate)

    def _stage_invoice(
        self, record: dict[str, Any], body: dict[str, Any], *, creating: bool, strict: bool
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Validate header fields; return (changes, new client or None). Nothing is applied."""
        errors: list[str] = []
        staged: dict[str, Any] = {}
        client: dict[str, Any] | None = None
        converters: dict[str, Callable[[Any, str], Any]] = {
            "number": _as_str,
            "currency_name": _as_str,
            "reference": _as_str,
            "language": _as_str,
            "additional_info": _as_str,
            "contact_reference": _as_str,
            "overdue_charge_period": _as_str,
            "currency_rate": _as_decimal,
            "overdue_charge_percent": _as_decimal,
            "rounding": _as_decimal,
            "proforma_percent": _as_decimal,
            "client_location_id": _as_int,
            "credit_invoice_for": _as_int,
            "document_template_id": _as_int,
            "row_sum_with_vat": _as_bool,
            "proforma": _as_bool,
            "created": _as_date,
            "transaction_date": _as_date,
            "due": _as_date,
            "sent": lambda v, f: _as_date(v, f, allow_sentinel=True),
            "period_start": lambda v, f: _as_date(v, f, allow_sentinel=True),
            "period_end": lambda v, f: _as_date(v, f, allow_sentinel=True),
        }
        for key, value in body.items():
            if key == "client_id" or key == "id":
                continue
            convert = converters.get(key)
            if convert is None:
                if strict and key not in {"Task", "Tasks"}:
                    errors.append(f"Field '{key}' cannot be changed.")
                continue
            if _is_blank(value) and key not in {"number", "additional_info", "contact_reference"}:
                continue
            try:
                staged[key] = convert(value, key)
            except ApiError as exc:
                errors.extend(exc.messages)
        if "client_id" in body or creating:
            raw_client = body.get("client_id")
            if _is_blank(raw_client):
                errors.append("Field 'client_id' is required.")
            else:
                try:
                    client = self._clients.get(_as_int(raw_client, "client_id"))
                except ApiError as exc:
                    errors.extend(exc.messages)
                else:
                    if client is None:
                        errors.append("Client with given ID does not exist.")
        if "rounding" in staged:
            staged["rounding"] = _money(staged["rounding"])
        currency = staged.get("currency_name")
        if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
            errors.append("Field 'currency_name' must be an ISO 4217 code.")
        number = staged.get("number")
        if number is not None:
            if not number:
                if not creating:
                    errors.append("Field 'number' is required.")
                staged.pop("number")
            elif any(
                inv["number"] == number and inv_id != record["id"]
                for inv_id, inv in self._invoices.items()
            ):
                errors.append("Invoice with this number already exists.")
        credited = staged.get("credit_invoice_for")
        if credited and credited not in self._invoices:
            errors.append("Field 'credit_invoice_for' refers to an invoice that does not exist.")
        if errors:
            raise _invalid(*errors)
        return staged, client

    def _stage_tasks(
        self, invoice_id: int, raw_rows: Any, client: dict[str, Any], *, wrapped: bool
    ) -> list[dict[str, Any]]:
        """Validate the new row set (``Tasks: [{Task: {...}}]`` or ``Task: [...]``)."""
        if isinstance(raw_rows, dict):
            raw_rows = list(raw_rows.values())
        if not isinstance(raw_rows, list):
            raise _invalid("Field 'Tasks' must be a list of rows.")
        existing = {t["id"]: t for t in self._tasks.get(invoice_id, [])}
        foreign = client["address_country"] not in {"", "EE"}
        errors: list[str] = []
        rows: list[dict[str, Any]] = []
        for index, entry in enumerate(raw_rows):
            body = entry.get("Task") if wrapped and isinstance(entry, dict) else entry
            if not isinstance(body, dict):
                errors.append(f'Row {index + 1}: each row must be given as {{"Task": {{...}}}}.')
                continue
            try:
                rows.append(self._stage_task(body, existing, client, foreign=foreign))
            except ApiError as exc:
                errors.extend(f"Row {index + 1}: {m}" for m in exc.messages)
        if errors:
            raise _invalid(*errors)
        return rows

    def _stage_task(
        self,
        body: dict[str, Any],
        existing: dict[int, dict[str, Any]],
        client: dict[str, Any],
        *,
        foreign: bool,
    ) -> dict[str, Any]:
        errors: list[str] = []
        row: dict[str, Any]
        if not _is_blank(body.get("id")):
            old = existing.get(_as_int(body["id"], "id"))
            if old is None:
                raise _invalid(MSG_NO_OBJECT)
            row = dict(old)
        else:
            row = {
                "id": 0,
                "warehouse_id": 0,
                "article_id": 0,
                "code": "",
                "name": "",
                "contents": "",
                "unit": "",
                "amount": Decimal(1),
                "price_per_unit": Decimal(0),
                "worker": "",
                "vat": None,
                "vat_type_id": 0,
                "discount": Decimal(0),
                "income_account_id": DEFAULT_ROW_INCOME_ACCOUNT_ID,
            }
        converters: dict[str, Callable[[Any, str], Any]] = {
            "warehouse_id": _as_int,
            "article_id": _as_int,
            "income_account_id": _as_int,
            "vat_type_id": _as_int,
            "code": _as_str,
            "name": _as_str,
            "contents": _as_str,
            "unit": _as_str,
            "worker": _as_str,
            "amount": _as_decimal,
            "price_per_unit": _as_decimal,
            "vat": _as_decimal,
            "discount": _as_decimal,
        }
        given_vat_type = False
        given_vat = False
        for key, convert in converters.items():
            if key not in body or (_is_blank(body[key]) and key not in {"contents", "unit"}):
                continue
            try:
                row[key] = convert(body[key], key)
            except ApiError as exc:
                errors.extend(exc.messages)
                continue
            given_vat_type |= key == "vat_type_id"
            given_vat |= key == "vat"
        if not row["name"]:
            errors.append("Field 'name' is required.")
        if errors:
            raise _invalid(*errors)
        # The VAT type decides the rate; a bare rate picks the first active sales type.
        if given_vat_type and row["vat_type_id"]:
            vat_type = self._vat_type(row["vat_type_id"])
            if vat_type is None:
                raise _invalid("Field 'vat_type_id' refers to an unknown VAT type.")
            row["vat"] = Decimal(vat_type[2])
        elif given_vat or row["vat"] is None or not row["vat_type_id"]:
            if row["vat"] is None:
                default_type = (
                    client["client_settings_sales_vat_type_id"] or DEFAULT_SALES_VAT_TYPE_ID
                )
                found = self._vat_type(default_type)
                row["vat"] = Decimal(found[2]) if found else Decimal(24)
            type_id = self._vat_type_for_rate(row["vat"], foreign=foreign)
            if type_id is None:
                raise _invalid("No VAT type with the given rate exists.")
            row["vat_type_id"] = type_id
        return {k: row[k] for k in TASK_FIELDS}

    def _compute_totals(self, record: dict[str, Any], rows: list[dict[str, Any]]) -> None:
        """Net, VAT and gross from the rows, VAT rounded per rate (row_sum_with_vat aware)."""
        by_rate: dict[Decimal, Decimal] = {}
        for row in rows:
            factor = 1 - row["discount"] / 100
            line = _money(row["amount"] * row["price_per_unit"] * factor)
            by_rate[row["vat"]] = by_rate.get(row["vat"], ZERO) + line
        net = ZERO
        vat = ZERO
        for rate, amount in by_rate.items():
            if record["row_sum_with_vat"]:
                rate_vat = _money(amount * rate / (100 + rate))
                net += amount - rate_vat
            else:
                rate_vat = _money(amount * rate / 100)
                net += amount
            vat += rate_vat
        record["sum"] = _money(net)
        record["vat"] = _money(vat)
        record["total_sum"] = _money(net + vat + record["rounding"])

    def _settle(self, invoice_id: int) -> None:
        """Recompute remnant and paid date from the receipts bound to the invoice."""
        record = self._invoices.get(invoice_id)
        if record is not None:
            self._settle_record(record)

    def _settle_record(self, record: dict[str, Any]) -> None:
        invoice_id = record["id"]
        bound = [inc_id for inc_id, inv_id in self._bindings.items() if inv_id == invoice_id]
        received = sum((self._incomings[i]["income_sum"] for i in bound), ZERO)
        total = record["total_sum"]
        if any(i in self._full_cover for i in bound):
            remnant = ZERO
        elif total >= 0:
            remnant = max(total - received, ZERO)
        else:
            remnant = min(total - received, ZERO)
        record["remnant"] = _money(remnant)
        if bound and remnant == 0 and total != 0:
            record["paid"] = max(self._incomings[i]["income_date"] for i in bound)
        else:
            record["paid"] = NO_DATE

    def _write_invoice(
        self,
        record: dict[str, Any],
        body: dict[str, Any],
        raw_rows: Any,
        *,
        creating: bool,
        strict: bool,
        wrapped: bool,
    ) -> None:
        """Validate everything first, then apply: a refused write changes nothing."""
        staged, client = self._stage_invoice(record, body, creating=creating, strict=strict)
        effective_client = client or self._clients.get(record["client_id"])
        if effective_client is None:
            raise _invalid("Client with given ID does not exist.")
        rows: list[dict[str, Any]] | None = None
        if raw_rows is not None and raw_rows != [] and raw_rows != {}:
            rows = self._stage_tasks(record["id"], raw_rows, effective_client, wrapped=wrapped)
        elif creating:
            raise _invalid("Invoice must have at least one row.")
        if creating:
            today = self._today()
            created = staged.get("created", today.isoformat())
            staged.setdefault("created", created)
            staged.setdefault("transaction_date", created)
            due_days = effective_client["client_settings_due_days"] or DEFAULT_DUE_DAYS
            staged.setdefault(
                "due", (dt.date.fromisoformat(created) + dt.timedelta(days=due_days)).isoformat()
            )
            staged.setdefault("number", self._next_number())
            staged.setdefault("language", effective_client["client_settings_language"] or "et_EE")
        record.update(staged)
        if client is not None:
            self._snapshot_client(record, client)
        if rows is not None:
            for row in rows:
                if not row["id"]:
                    row["id"] = self._next_task_id
                    self._next_task_id += 1
            self._tasks[record["id"]] = rows
        self._compute_totals(record, self._tasks.get(record["id"], []))
        self._settle_record(record)

    def _create_invoice(
        self, body: dict[str, Any], raw_rows: Any, *, strict: bool, wrapped: bool
    ) -> dict[str, Any]:
        record = self._blank_invoice(self._next_invoice_id)
        self._write_invoice(record, body, raw_rows, creating=True, strict=strict, wrapped=wrapped)
        self._invoices[record["id"]] = record
        self._tasks.setdefault(record["id"], [])
        self._next_invoice_id += 1
        return record

    def _invoices_list(self, params: dict[str, Any], _id: str | None) -> web.Response:
        wanted_id = self._id_filter(params, "id")
        client_id = self._id_filter(params, "client_id")
        created_from = self._date_filter(params, "created_from")
        created_until = self._date_filter(params, "created_until")
        fields = self._fields(params)
        text_filters = {
            "invoice_number": "number",
            "client_name": "client_name",
            "client_reg_no": "client_reg_no",
        }
        rows = []
        for inv_id in sorted(self._invoices):
            record = self._invoices[inv_id]
            if wanted_id is not None and inv_id != wanted_id:
                continue
            if client_id is not None and record["client_id"] != client_id:
                continue
            created = dt.date.fromisoformat(record["created"])
            if created_from is not None and created < created_from:
                continue
            if created_until is not None and created > created_until:
                continue
            if any(
                not _is_blank(params.get(p)) and not self._contains(record[f], params[p])
                for p, f in text_filters.items()
            ):
                continue
            rows.append({"invoices": self._select(self._invoice_row(record), fields)})
        return envelope(200, data=self._page(params, rows), has_data=True)

    def _invoices_get(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._invoice_by_param(raw_id)
        return envelope(200, data=self._invoice_detail(record["id"]), has_data=True)

    def _invoices_bound_receipts(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._invoice_by_param(raw_id)
        return envelope(200, data=self._bound_to(record["id"]), has_data=True)

    def _bound_to(self, invoice_id: int) -> list[int]:
        return sorted(i for i, inv in self._bindings.items() if inv == invoice_id)

    def _invoices_create(self, params: dict[str, Any], _id: str | None) -> web.Response:
        record = self._create_invoice(
            self._model(params, "Invoice"), params.get("Tasks"), strict=False, wrapped=True
        )
        return self._write_ok(record["id"], MSG_CREATED)

    def _invoices_update(self, params: dict[str, Any], _id: str | None) -> web.Response:
        body = self._model(params, "Invoice")
        record = self._invoice_by_param(body.get("id"))
        # Rows: when Tasks is sent it replaces the row set (rows with an id are updated,
        # rows without are added, rows left out are deleted); absent, rows stay [inferred].
        self._write_invoice(
            record, body, params.get("Tasks"), creating=False, strict=False, wrapped=True
        )
        return self._write_ok(record["id"], MSG_CHANGED)

    def _delete_invoice(self, invoice_id: int) -> None:
        del self._invoices[invoice_id]
        self._tasks.pop(invoice_id, None)
        # Receipts stay as money received; they are only unbound [inferred].
        for inc_id in self._bound_to(invoice_id):
            del self._bindings[inc_id]
            self._full_cover.discard(inc_id)

    def _invoices_delete(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._invoice_by_param(raw_id)
        self._delete_invoice(record["id"])
        self.counters.writes += 1
        return envelope(200, inserted_id=record["id"])

    def _invoices_sent(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._invoice_by_param(raw_id)
        if record["sent"] == NO_DATE:
            record["sent"] = self._today().isoformat()
        return self._write_ok(record["id"], "OK")

    # ------------------------------------------------------------ receipts (incomings)

    def _incoming_by_param(self, raw: Any) -> dict[str, Any]:
        record = self._incomings.get(self._record_id(raw))
        if record is None:
            raise _invalid(MSG_NO_OBJECT)
        return record

    def _incoming_detail(self, incoming_id: int) -> dict[str, Any]:
        return {
            "Incoming": dict(self._incomings[incoming_id]),
            "Projects": [dict(p) for p in self._projects.get(incoming_id, [])],
        }

    def _stage_incoming(
        self,
        record: dict[str, Any],
        body: dict[str, Any],
        invoice: dict[str, Any] | None,
        *,
        creating: bool,
        strict: bool,
    ) -> dict[str, Any]:
        errors: list[str] = []
        staged: dict[str, Any] = {}
        converters: dict[str, Callable[[Any, str], Any]] = {
            "income_account_id": _as_int,
            "income_sum": _as_decimal,
            "income_date": _as_date,
            "description": _as_str,
            "currency_name": _as_str,
            "currency_rate": _as_decimal,
            "client_id": _as_int,
        }
        for key, value in body.items():
            convert = converters.get(key)
            if convert is None:
                if strict and key != "id":
                    errors.append(f"Field '{key}' cannot be changed.")
                continue
            if _is_blank(value) and key != "description":
                continue
            try:
                staged[key] = convert(value, key)
            except ApiError as exc:
                errors.extend(exc.messages)
        if creating:
            for required in ("income_sum", "income_date"):
                if required not in staged and not any(required in m for m in errors):
                    errors.append(f"Field '{required}' is required.")
        if "income_sum" in staged:
            staged["income_sum"] = _money(staged["income_sum"])
        account = staged.get("income_account_id")
        if account is not None and all(a[0] != account for a in INCOME_ACCOUNTS):
            errors.append("Field 'income_account_id' refers to an unknown bank or cash account.")
        client_id = staged.get("client_id")
        if client_id and client_id not in self._clients:
            errors.append("Client with given ID does not exist.")
        if errors:
            raise _invalid(*errors)
        if creating and invoice is not None:
            staged.setdefault("client_id", invoice["client_id"])
            staged.setdefault("currency_name", invoice["currency_name"])
            staged.setdefault("currency_rate", invoice["currency_rate"])
            staged.setdefault("description", f"Invoice no. {invoice['number']}")
        return staged

    def _blank_incoming(self, incoming_id: int) -> dict[str, Any]:
        return {
            "id": incoming_id,
            "income_account_id": DEFAULT_INCOME_ACCOUNT_ID,
            "income_sum": ZERO,
            "income_date": self._today().isoformat(),
            "description": "",
            "currency_name": "EUR",
            "currency_rate": Decimal(1),
            "client_id": 0,
        }

    def _projects_of(self, params: dict[str, Any]) -> list[dict[str, Any]] | None:
        raw = params.get("Projects")
        if raw is None:
            return None
        if isinstance(raw, dict):
            raw = list(raw.values())
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise _invalid("Field 'Projects' must be a list of {code} objects.")
        return [{"code": _as_str(p.get("code"), "code")} for p in raw]

    def _bind(self, incoming_id: int, invoice_id: int | None, *, full_cover: bool) -> None:
        previous = self._bindings.pop(incoming_id, None)
        self._full_cover.discard(incoming_id)
        if invoice_id is not None:
            self._bindings[incoming_id] = invoice_id
            if full_cover:
                self._full_cover.add(incoming_id)
        for touched in {previous, invoice_id}:
            if touched is not None:
                self._settle(touched)

    def _write_incoming(
        self, record: dict[str, Any], params: dict[str, Any], *, creating: bool, strict: bool
    ) -> None:
        invoice: dict[str, Any] | None = None
        if not _is_blank(params.get("invoice_id")):
            invoice = self._invoice_by_param(params.get("invoice_id"))
        body = self._model(params, "Incoming")
        staged = self._stage_incoming(record, body, invoice, creating=creating, strict=strict)
        projects = self._projects_of(params)
        record.update(staged)
        self._incomings[record["id"]] = record
        if projects is not None:
            self._projects[record["id"]] = projects
        if invoice is not None:
            self._bind(record["id"], invoice["id"], full_cover=False)
        elif record["id"] in self._bindings:
            self._settle(self._bindings[record["id"]])

    def _create_incoming(self, params: dict[str, Any], *, strict: bool) -> dict[str, Any]:
        record = self._blank_incoming(self._next_incoming_id)
        self._write_incoming(record, params, creating=True, strict=strict)
        self._next_incoming_id += 1
        return record

    def _incomings_list(self, params: dict[str, Any], _id: str | None) -> web.Response:
        wanted_id = self._id_filter(params, "id")
        account = self._id_filter(params, "income_account_id")
        on_date = self._date_filter(params, "income_date")
        fields = self._fields(params)
        description = params.get("description")
        rows = []
        for inc_id in sorted(self._incomings):
            record = self._incomings[inc_id]
            if wanted_id is not None and inc_id != wanted_id:
                continue
            if account is not None and record["income_account_id"] != account:
                continue
            if on_date is not None and record["income_date"] != on_date.isoformat():
                continue
            if not _is_blank(description) and not self._contains(
                record["description"], description
            ):
                continue
            rows.append({"Incoming": self._select(dict(record), fields)})
        return envelope(200, data=self._page(params, rows), has_data=True)

    def _incomings_get(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._incoming_by_param(raw_id)
        return envelope(200, data=self._incoming_detail(record["id"]), has_data=True)

    def _incomings_create(self, params: dict[str, Any], _id: str | None) -> web.Response:
        record = self._create_incoming(params, strict=False)
        return self._write_ok(record["id"], MSG_CREATED)

    def _incomings_update(self, params: dict[str, Any], _id: str | None) -> web.Response:
        body = self._model(params, "Incoming")
        record = self._incoming_by_param(body.get("id"))
        self._write_incoming(record, params, creating=False, strict=False)
        return self._write_ok(record["id"], MSG_CHANGED)

    def _delete_incoming(self, incoming_id: int) -> None:
        del self._incomings[incoming_id]
        self._projects.pop(incoming_id, None)
        self._bind(incoming_id, None, full_cover=False)

    def _incomings_delete(self, _params: dict[str, Any], raw_id: str | None) -> web.Response:
        record = self._incoming_by_param(raw_id)
        self._delete_incoming(record["id"])
        self.counters.writes += 1
        return envelope(200, inserted_id=record["id"])

    def _incomings_invoice_paid(self, params: dict[str, Any], _id: str | None) -> web.Response:
        incoming = self._incoming_by_param(params.get("incoming_id"))
        invoice = self._invoice_by_param(params.get("invoice_id"))
        raw_cover = params.get("full_cover")
        full_cover = False if _is_blank(raw_cover) else _as_bool(raw_cover, "full_cover")
        self._bind(incoming["id"], invoice["id"], full_cover=full_cover)
        return self._write_ok(incoming["id"], "OK")

    # ------------------------------------------------------------ reference lists

    @staticmethod
    def _vat_type_rows() -> list[dict[str, Any]]:
        return [
            {
                "VatType": {
                    "id": type_id,
                    "name": name,
                    "vat_percent": Decimal(percent),
                    "is_sales": is_sales,
                    "is_purchase": is_purchase,
                    "active": active,
                }
            }
            for type_id, name, percent, is_sales, is_purchase, active in VAT_TYPES
        ]

    @staticmethod
    def _income_account_rows() -> list[dict[str, Any]]:
        # The income_accounts schema was not copied from the spec: this shape is inferred.
        return [
            {
                "IncomeAccount": {
                    "id": acc_id,
                    "name": name,
                    "account_no": account_no,
                    "currency_name": currency,
                    "active": True,
                }
            }
            for acc_id, name, account_no, currency in INCOME_ACCOUNTS
        ]

    def _vat_types_list(self, _params: dict[str, Any], _id: str | None) -> web.Response:
        return envelope(200, data=self._vat_type_rows(), has_data=True)  # no paging

    def _income_accounts_list(self, _params: dict[str, Any], _id: str | None) -> web.Response:
        return envelope(200, data=self._income_account_rows(), has_data=True)

    # ------------------------------------------------------------ seeding

    def _clear(self) -> None:
        self._clients.clear()
        self._invoices.clear()
        self._tasks.clear()
        self._incomings.clear()
        self._projects.clear()
        self._bindings.clear()
        self._full_cover.clear()
        self._next_client_id = FIRST_CLIENT_ID
        self._next_invoice_id = FIRST_INVOICE_ID
        self._next_incoming_id = FIRST_INCOMING_ID
        self._next_task_id = FIRST_TASK_ID

    def load_seed(self, seed: VendorSeed) -> None:
        """Replace everything with the seeded world, ids assigned in creation order."""
        self._clear()
        # Drafts and credit invoices get automatic numbers that must not take a number a
        # later seeded invoice carries.
        self._reserved_numbers = {i.number for i in seed.invoices if i.number}
        by_key: dict[str, dict[str, Any]] = {}
        for contact in sorted(seed.contacts, key=lambda c: (c.created_at, c.key)):
            by_key[contact.key] = self._seed_client(contact)
        for invoice in sorted(seed.invoices, key=lambda i: (i.created_at, i.key)):
            client = by_key.get(invoice.contact_key)
            if client is not None:  # an invoice of a contact this vendor lacks is skipped
                self._seed_invoice(invoice, client)
        self._reserved_numbers = set()

    def _seed_client(self, contact: SeedContact) -> dict[str, Any]:
        bic = contact.bic or ""
        body: dict[str, Any] = {
            "name": contact.name,
            "reg_no": contact.coc_number or "",
            "vat_no": contact.vat_number or "",
            "address_street": contact.address or "",
            "address_city": contact.city or "",
            "address_postal_code": contact.postal_code or "",
            "address_county": "Harjumaa" if contact.city == "Tallinn" else "",
            "address_country": contact.country,
            "webpage": contact.website or "",
            "e_mail": contact.email or "",
            "phone": contact.phone or "",
            "account_no": contact.iban or "",
            "bank": BANK_BY_BIC_PREFIX.get(bic[:4].upper(), ""),
            "swift_code": bic,
            "client_settings_language": "et_EE" if contact.country == "EE" else "en_GB",
        }
        return self._create_client(body)

    def _seed_invoice(self, invoice: SeedInvoice, client: dict[str, Any]) -> None:
        rows: list[dict[str, Any]] = [
            {
                "name": line.description,
                "amount": line.quantity,
                "price_per_unit": line.unit_price,
                "vat": line.vat_rate,
            }
            for line in invoice.lines
        ] or [{"name": "—", "amount": Decimal(0), "price_per_unit": ZERO, "vat": Decimal(0)}]
        # No drafts in SimplBooks: a seeded draft is an unsent invoice with an automatic
        # number. "open" means issued but not sent yet; the rest were sent on issue.
        unsent = invoice.status in {"draft", "open"}
        body: dict[str, Any] = {
            "client_id": client["id"],
            "created": invoice.issue_date.isoformat(),
            "transaction_date": invoice.issue_date.isoformat(),
            "due": invoice.due_date.isoformat(),
            "currency_name": invoice.currency,
            "sent": NO_DATE if unsent else invoice.issue_date.isoformat(),
        }
        if invoice.number:
            body["number"] = invoice.number
        record = self._create_invoice(body, rows, strict=False, wrapped=False)
        paid_dates: list[dt.date] = []
        for payment in invoice.payments:
            self._seed_receipt(record, payment.amount, payment.date)
            paid_dates.append(payment.date)
        if invoice.status == "paid" and record["remnant"] > 0:
            last = max([invoice.issue_date, *paid_dates])
            self._seed_receipt(record, record["remnant"], last)
        if invoice.status == "cancelled":
            # Cancelling is done with a credit invoice that negates every row [inferred].
            credit_rows = [dict(r, amount=-r["amount"]) for r in rows]
            self._create_invoice(
                {
                    "client_id": client["id"],
                    "created": invoice.issue_date.isoformat(),
                    "due": invoice.issue_date.isoformat(),
                    "currency_name": invoice.currency,
                    "credit_invoice_for": record["id"],
                    "sent": invoice.issue_date.isoformat(),
                },
                credit_rows,
                strict=False,
                wrapped=False,
            )

    def _seed_receipt(self, invoice: dict[str, Any], amount: Decimal, date: dt.date) -> None:
        self._create_incoming(
            {
                "Incoming": {"income_sum": amount, "income_date": date.isoformat()},
                "invoice_id": invoice["id"],
            },
            strict=False,
        )

    # ------------------------------------------------------------ control hooks

    def dump(self) -> dict[str, Any]:
        """Every record in its ``get`` shape; money as exact decimal strings."""
        return _jsonable_dict(
            {
                "clients": [{"Client": dict(self._clients[i])} for i in sorted(self._clients)],
                "invoices": [self._invoice_detail(i) for i in sorted(self._invoices)],
                "incomings": [self._incoming_detail(i) for i in sorted(self._incomings)],
                "bound_receipts": {
                    str(i): self._bound_to(i) for i in sorted(self._invoices) if self._bound_to(i)
                },
                "vat_types": self._vat_type_rows(),
                "income_accounts": self._income_account_rows(),
            }
        )

    @staticmethod
    def _control_id(record_id: str) -> int:
        text = str(record_id).strip()
        if not text.isdigit():
            raise KeyError(record_id)
        return int(text)

    @staticmethod
    def _as_value_error(exc: ApiError) -> ValueError:
        return ValueError("; ".join(exc.messages))

    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Edit as a user in the SimplBooks UI would; unknown or computed fields -> ValueError.

        ``invoices`` also take ``Task``: the full new row list (read shape; rows with an
        ``id`` keep it). Nothing visible is bumped: SimplBooks keeps no change timestamps.
        """
        key = self._control_id(record_id)
        try:
            if resource == "clients":
                record = self._clients[key]
                self._apply_client_fields(record, fields, strict=True)
                return _jsonable_dict({"Client": dict(record)})
            if resource == "invoices":
                record = self._invoices[key]
                refused = sorted(set(fields) & INVOICE_READ_ONLY)
                if refused:
                    raise ValueError(f"not editable: {', '.join(refused)}")
                header = {k: v for k, v in fields.items() if k != "Task"}
                self._write_invoice(
                    record, header, fields.get("Task"), creating=False, strict=True, wrapped=False
                )
                return _jsonable_dict(self._invoice_detail(key))
            if resource == "incomings":
                record = self._incomings[key]
                self._write_incoming(record, {"Incoming": fields}, creating=False, strict=True)
                return _jsonable_dict(self._incoming_detail(key))
        except ApiError as exc:
            raise self._as_value_error(exc) from None
        raise ValueError(f"unknown simplbooks resource {resource!r}")

    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create as a user would: clients take Client fields; invoices Invoice fields plus
        ``Task`` (list of rows); incomings Incoming fields plus optional ``invoice_id``."""
        try:
            if resource == "clients":
                client = self._create_client(fields, strict=True)
                return _jsonable_dict({"Client": dict(client)})
            if resource == "invoices":
                header = {k: v for k, v in fields.items() if k != "Task"}
                invoice = self._create_invoice(
                    header, fields.get("Task"), strict=True, wrapped=False
                )
                return _jsonable_dict(self._invoice_detail(invoice["id"]))
            if resource == "incomings":
                body = {k: v for k, v in fields.items() if k != "invoice_id"}
                params: dict[str, Any] = {"Incoming": body}
                if "invoice_id" in fields:
                    params["invoice_id"] = fields["invoice_id"]
                incoming = self._create_incoming(params, strict=True)
                return _jsonable_dict(self._incoming_detail(incoming["id"]))
        except ApiError as exc:
            raise self._as_value_error(exc) from None
        raise ValueError(f"unknown simplbooks resource {resource!r}")

    def delete(self, resource: str, record_id: str) -> None:
        """Delete as a user would (a client with documents is refused: ValueError)."""
        key = self._control_id(record_id)
        try:
            if resource == "clients":
                if key not in self._clients:
                    raise KeyError(record_id)
                self._delete_client(key)
                return
            if resource == "invoices":
                if key not in self._invoices:
                    raise KeyError(record_id)
                self._delete_invoice(key)
                return
            if resource == "incomings":
                if key not in self._incomings:
                    raise KeyError(record_id)
                self._delete_incoming(key)
                return
        except ApiError as exc:
            raise self._as_value_error(exc) from None
        raise ValueError(f"unknown simplbooks resource {resource!r}")

    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        """A bookkeeper books a receipt into the bank account and binds it to the invoice."""
        key = self._control_id(invoice_id)
        if key not in self._invoices:
            raise KeyError(invoice_id)
        try:
            incoming = self._create_incoming(
                {
                    "Incoming": {"income_sum": amount, "income_date": date.isoformat()},
                    "invoice_id": key,
                },
                strict=True,
            )
        except ApiError as exc:
            raise self._as_value_error(exc) from None
        return _jsonable_dict(self._incoming_detail(incoming["id"]))
