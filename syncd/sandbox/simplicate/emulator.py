"""The Simplicate API v2 emulator: CRM relations, their links, invoices and payments.

Routes (relative to the vendor prefix ``/simplicate/api/v2``; every collection also answers
with a ``.json`` suffix, and an item id may carry one too)::

    GET    /crm/organization            POST /crm/organization
    GET    /crm/organization/{id}       PUT  /crm/organization/{id}    DELETE same
    GET    /crm/person                  POST /crm/person
    GET    /crm/person/{id}             PUT  /crm/person/{id}          DELETE same
    GET    /crm/contactperson           GET  /crm/contactperson/{id}   DELETE same
    GET    /crm/myorganizationprofile   GET  /crm/myorganizationprofile/{id}
    GET    /invoices/invoice            POST /invoices/invoice
    GET    /invoices/invoice/{id}       PUT  /invoices/invoice/{id}    DELETE same
    GET    /invoices/payment            POST /invoices/payment
    GET    /invoices/payment/{id}       PUT  /invoices/payment/{id}    (no DELETE: 405)
    GET    /invoices/invoicestatus(/{id})  /invoices/vatclass(/{id})  /invoices/paymentterm(/{id})

Control-API resource names (the vendor's own): ``organization``, ``person``,
``contactperson`` (an organization<->person link), ``invoice``, ``payment``. ``archive``
sets ``is_active`` false on an organization, person or contact person. ``mutate`` takes
the same field names as the API bodies; on an invoice it also takes ``status`` (a status
name such as ``"Sent"``) or ``status_id``, ``invoice_lines`` (Concept only) and
``payment_term_id``, as a user could change them in the web app. The hooks return records
in full (null fields kept); the API drops null and empty fields (see ``SimplicateQuirks``).

Seeding: organizations and persons become ``crm/organization`` / ``crm/person`` records
(about two in three persons are linked to an organization as a contact person);
invoices keep their lines and payments, ``due_date`` becomes a payment term of
``due_date - issue_date`` days. A seeded ``cancelled`` invoice is not loaded: Simplicate
has no cancelled status (it credits instead). Currency is dropped (Simplicate has none).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import hmac
import json
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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
from syncd.sandbox.simplicate.query import (
    QueryError,
    dumps,
    matches,
    omit_empty,
    parse_list_query,
    select_fields,
    sort_records,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
CENT = Decimal("0.01")
RESOURCES: tuple[str, ...] = ("organization", "person", "contactperson", "invoice", "payment")

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class SimplicateQuirks:
    """Behaviour the vendor reference marks as inferred; each one can be switched off."""

    # Null and empty fields are left out of responses (the API's "cleanup"; MetaData
    # even documents a ``nocleanup`` flag). Clients must treat a missing key as empty.
    omit_empty_fields: bool = True
    # The swagger types person.address as an array; clients read one object. Default: object.
    person_address_as_list: bool = False
    default_limit: int = 100  # the swagger claims 5; clients observe 100
    max_limit: int = 100  # larger limits are capped, not refused
    # The vendor's database collation compares text case-insensitively.
    case_insensitive_filters: bool = True
    # PUT invoices/invoice/{id} only knows the header fields: status_id and invoice_lines
    # (and payment_term_id) in a PUT body are silently ignored.
    invoice_put_ignores_lines_and_status: bool = True
    # A sent (non-Concept) invoice cannot be changed through PUT (400).
    lock_sent_invoices: bool = True
    # DELETE invoices/invoice/{id} works on Concept invoices only (400 otherwise).
    delete_only_concept_invoices: bool = True
    # An organization or person that is the debtor of an invoice cannot be deleted (400).
    block_delete_with_invoices: bool = True
    # Records created through the API have no updated_at until their first change.
    new_records_lack_updated_at: bool = False
    # A person without a date of birth shows "0000-00-00".
    zero_dates: bool = True
    # No rate-limit headers are documented; a Retry-After can be added for experiments.
    retry_after_header: bool = False
    # "API-level" errors (401, 429) as text/plain instead of the JSON envelope.
    plain_text_api_errors: bool = False


class _ApiError(Exception):
    """A request the vendor refuses, with the status it answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ---------------------------------------------------------------- records


@dataclass(slots=True)
class _Relation:
    kind: Literal["organization", "person"]
    id: str
    fields: dict[str, Any]
    addresses: dict[str, dict[str, Any] | None]
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass(slots=True)
class _Link:
    id: str
    organization_id: str
    person_id: str
    fields: dict[str, Any]  # is_active, work_function, work_email, work_phone, work_mobile
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass(slots=True)
class _Line:
    id: str
    description: str | None
    amount: Decimal
    price: Decimal
    vat_class_id: str
    revenue_group_id: str | None
    date: dt.date | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(slots=True)
class _Invoice:
    id: str
    invoice_number: str | None
    status_id: str
    payment_term_id: str
    my_organization_profile_id: str
    organization_id: str | None
    person_id: str | None
    date: dt.date
    fields: dict[str, Any]  # subject, reference, comments, project_id
    lines: list[_Line]
    created_at: dt.datetime
    updated_at: dt.datetime | None


@dataclass(slots=True)
class _Payment:
    id: str
    invoice_id: str
    date: dt.date
    amount: Decimal
    description: str | None


@dataclass(slots=True)
class _Index:
    version: int
    links_by_relation: dict[str, list[_Link]] = field(default_factory=dict)
    paid: dict[str, Decimal] = field(default_factory=dict)


@dataclass(slots=True)
class _Lookups:
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    vat_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_terms: dict[str, dict[str, Any]] = field(default_factory=dict)
    revenue_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


# ---------------------------------------------------------------- field tables

_ORG_STRINGS = (
    "name",
    "coc_code",
    "vat_number",
    "email",
    "phone",
    "url",
    "note",
    "linkedin_url",
    "invoice_receiver",
    "bank_account",
    "bank_bic",
    "relation_number",
)
_ORG_BOOLS = ("is_active", "has_different_postal_address", "allow_autocollect")
_PERSON_STRINGS = (
    "gender_id",
    "initials",
    "first_name",
    "family_name_prefix",
    "family_name",
    "date_of_birth",
    "note",
    "email",
    "phone",
    "website_url",
    "twitter_url",
    "linkedin_url",
    "facebook_url",
    "relation_number",
    "bank_account",
    "bank_bic",
    "invoice_receiver",
    "mailing_list_email",
)
_PERSON_BOOLS = ("is_active",)
_GENDERS = ("Male", "Female", "Unknown")
_ADDRESS_STRINGS = ("type", "line_1", "line_2", "postal_code", "province", "locality")
_LINK_STRINGS = ("work_function", "work_email", "work_phone", "work_mobile")
_INVOICE_HEADER = (
    "my_organization_profile_id",
    "organization_id",
    "person_id",
    "date",
    "subject",
    "reference",
    "project_id",
    "comments",
)
_INVOICE_STRINGS = ("subject", "reference", "project_id", "comments")
_COUNTRY_NAMES = {
    "NL": "Nederland",
    "BE": "België",
    "DE": "Duitsland",
    "EE": "Estland",
    "FR": "Frankrijk",
    "GB": "Verenigd Koninkrijk",
    "LU": "Luxemburg",
    "US": "Verenigde Staten",
}
_STATUSES = (
    ("Concept", "#9e9e9e"),
    ("Sent", "#2196f3"),
    ("Overdue", "#f44336"),
    ("Paid", "#4caf50"),
)
_SEED_STATUS = {
    "draft": "Concept",
    "open": "Sent",
    "sent": "Sent",
    "partially_paid": "Sent",
    "overdue": "Overdue",
    "paid": "Paid",
}
_NAME_PREFIXES = (
    "van der",
    "van den",
    "van de",
    "van 't",
    "in 't",
    "van",
    "den",
    "der",
    "de",
    "ter",
    "ten",
    "te",
    "'t",
)
_ID_SHAPE = re.compile(r"^[a-z]+:[0-9A-Za-z]+$")


def _local(ts: dt.datetime | None) -> str | None:
    """The vendor's zone-less local timestamp text."""
    return None if ts is None else _local_text(ts)


@functools.lru_cache(maxsize=65536)
def _local_text(ts: dt.datetime) -> str:
    # Cached: rendering a large list formats the same few thousand instants over and over.
    return ts.astimezone(AMSTERDAM).strftime("%Y-%m-%d %H:%M:%S")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _split_family_name(last_name: str) -> tuple[str | None, str]:
    lowered = last_name.lower()
    for prefix in _NAME_PREFIXES:
        if lowered.startswith(prefix + " ") and len(last_name) > len(prefix) + 1:
            return last_name[: len(prefix)], last_name[len(prefix) + 1 :]
    return None, last_name


class SimplicateEmulator(VendorEmulator):
    """Simplicate API v2 in memory; see the module docstring for routes and resources."""

    name = "simplicate"
    default_rate_windows = (RateWindow(requests=60, per_seconds=60.0),)

    def __init__(
        self, options: SandboxOptions, clock: Clock, *, quirks: SimplicateQuirks | None = None
    ) -> None:
        super().__init__(options, clock)
        self.quirks = quirks or SimplicateQuirks()
        self._relations: dict[str, _Relation] = {}
        self._links: dict[str, _Link] = {}
        self._invoices: dict[str, _Invoice] = {}
        self._payments: dict[str, _Payment] = {}
        self._lookups = _Lookups()
        self._serial = 0
        self._version = 0
        self._cache: dict[str, tuple[int, SimplicateQuirks, list[dict[str, Any]]]] = {}
        self._indexed: _Index | None = None
        self.load_seed(VendorSeed(contacts=(), invoices=()))

    # ================================================================ serving

    def build_routes(self, app: web.Application) -> None:
        """Add every route syncd uses, with and without the old ``.json`` suffix."""
        collections: tuple[tuple[str, str, bool, bool, bool], ...] = (
            # path, resource, POST, PUT, DELETE
            ("/crm/organization", "organization", True, True, True),
            ("/crm/person", "person", True, True, True),
            ("/crm/contactperson", "contactperson", False, False, True),
            ("/crm/myorganizationprofile", "myorganizationprofile", False, False, False),
            ("/invoices/invoice", "invoice", True, True, True),
            ("/invoices/payment", "payment", True, True, False),
            ("/invoices/invoicestatus", "invoicestatus", False, False, False),
            ("/invoices/vatclass", "vatclass", False, False, False),
            ("/invoices/paymentterm", "paymentterm", False, False, False),
        )
        for path, resource, can_post, can_put, can_delete in collections:
            for suffix in ("", ".json"):
                app.router.add_get(path + suffix, self._list_handler(resource))
                if can_post:
                    app.router.add_post(path + suffix, self._create_handler(resource))
            item = path + "/{id}"
            app.router.add_get(item, self._get_handler(resource))
            if can_put:
                app.router.add_put(item, self._update_handler(resource))
            if can_delete:
                app.router.add_delete(item, self._delete_handler(resource))

    def check_auth(self, request: web.Request) -> web.Response | None:
        """Both Authentication-Key and Authentication-Secret must match (401 otherwise)."""
        key = request.headers.get("Authentication-Key", "")
        secret = request.headers.get("Authentication-Secret", "")
        key_ok = hmac.compare_digest(key.encode(), self.credential("key").encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.credential("secret").encode())
        if key and secret and key_ok and secret_ok:
            return None
        return self._api_level_error(401, "Invalid or missing API key and secret")

    def rate_limited_response(self, decision: RateDecision) -> web.Response:
        """429 Too Many Requests; no rate-limit headers are documented for Simplicate."""
        response = self._api_level_error(429, "Too Many Requests")
        if self.quirks.retry_after_header:
            response.headers["Retry-After"] = str(max(1, math.ceil(decision.reset_seconds)))
        return response

    def server_error_response(self, status: int) -> web.Response:
        """500 in the JSON envelope; 503 (maintenance) keeps the framework's HTML page."""
        if status == 503:
            return super().server_error_response(status)
        return self._error(status, "An internal error occurred")

    # ---------------------------------------------------------------- responses

    def _payload(self, payload: dict[str, Any], status: int = 200) -> web.Response:
        return web.Response(status=status, text=dumps(payload), content_type="application/json")

    def _ok(self, data: Any, metadata: dict[str, Any] | None = None) -> web.Response:
        if self.quirks.omit_empty_fields:
            data = omit_empty(data)
        payload: dict[str, Any] = {"data": data, "errors": None, "debug": None}
        if metadata is not None:
            payload["metadata"] = metadata
        return self._payload(payload)

    def _error(self, status: int, message: str) -> web.Response:
        return self._payload({"data": None, "errors": [message], "debug": None}, status)

    def _api_level_error(self, status: int, message: str) -> web.Response:
        if self.quirks.plain_text_api_errors:
            return web.Response(status=status, text=message, content_type="text/plain")
        return self._error(status, message)

    # ---------------------------------------------------------------- handlers

    def _list_handler(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                query = parse_list_query(
                    request.query,
                    default_limit=self.quirks.default_limit,
                    max_limit=self.quirks.max_limit,
                )
                ci = self.quirks.case_insensitive_filters
                rows = [r for r in self._rendered(resource) if matches(r, query.terms, ci=ci)]
                if query.sort:
                    rows = sort_records(rows, query.sort, ci=ci)
            except QueryError as exc:
                return self._error(400, str(exc))
            page = rows[query.offset : query.offset + query.limit]
            if query.select:
                page = [select_fields(r, query.select) for r in page]
            metadata: dict[str, Any] | None = None
            if query.metadata:
                known = {"count": len(rows), "offset": query.offset, "limit": query.limit}
                metadata = {k: known[k] for k in query.metadata if k in known}
            return self._ok(page, metadata)

        return handle

    def _get_handler(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            record_id = self._path_id(request)
            if not self._well_formed(resource, record_id):
                return self._error(422, "Invalid id given")
            try:
                record = self._render(resource, record_id)
            except KeyError:
                return self._error(404, "Entity not found")
            select = request.query.get("select")
            if select:
                record = select_fields(record, [s.strip() for s in select.split(",") if s])
            return self._ok(record)

        return handle

    def _create_handler(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            try:
                body = await self._body(request)
                new_id = self._create(resource, body, strict=False)
            except _ApiError as exc:
                return self._error(exc.status, exc.message)
            self.counters.writes += 1
            return self._payload({"data": {"id": new_id}, "errors": None, "debug": None})

        return handle

    def _update_handler(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            record_id = self._path_id(request)
            try:
                self._require(resource, record_id)
                body = await self._body(request)
                self._update(resource, record_id, body, strict=False)
            except _ApiError as exc:
                return self._error(exc.status, exc.message)
            self.counters.writes += 1
            return self._payload({"data": {"id": record_id}, "errors": None, "debug": None})

        return handle

    def _delete_handler(self, resource: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            record_id = self._path_id(request)
            try:
                self._require(resource, record_id)
                self._delete(resource, record_id, via_api=True)
            except _ApiError as exc:
                return self._error(exc.status, exc.message)
            self.counters.writes += 1
            return self._payload({"data": None, "errors": None, "debug": None})

        return handle

    @staticmethod
    def _path_id(request: web.Request) -> str:
        record_id = request.match_info["id"]
        return record_id.removesuffix(".json")

    @staticmethod
    def _well_formed(resource: str, record_id: str) -> bool:
        return record_id.startswith(resource + ":") and bool(_ID_SHAPE.match(record_id))

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8"), parse_float=Decimal) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _ApiError(400, "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _ApiError(400, "No data given: the request body must be a JSON object")
        return body

    def _require(self, resource: str, record_id: str) -> None:
        """Raise the vendor's 404 unless the record exists."""
        stores: dict[str, dict[str, Any]] = {
            "organization": self._relations,
            "person": self._relations,
            "contactperson": self._links,
            "invoice": self._invoices,
            "payment": self._payments,
        }
        found = stores.get(resource, {}).get(record_id)
        if found is None or (isinstance(found, _Relation) and found.kind != resource):
            raise _ApiError(404, "Entity not found")

    # ================================================================ state helpers

    def _now(self) -> dt.datetime:
        return self.clock().astimezone(dt.UTC).replace(microsecond=0)

    def _today(self) -> dt.date:
        return self.clock().astimezone(AMSTERDAM).date()

    def _changed(self) -> None:
        self._version += 1

    def _hex(self, *parts: str) -> str:
        text = ":".join(("simplicate", str(self.options.seed), *parts))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _new_id(self, kind: str) -> str:
        self._serial += 1
        return f"{kind}:{self._hex('new', kind, str(self._serial))}"

    def _relation(self, kind: str, record_id: str) -> _Relation:
        found = self._relations.get(record_id)
        if found is None or found.kind != kind:
            raise KeyError(record_id)
        return found

    # ---------------------------------------------------------------- value checks

    @staticmethod
    def _string(body: dict[str, Any], key: str, where: str = "") -> str | None:
        value = body[key]
        if value is None or isinstance(value, str):
            return value
        raise _ApiError(400, f"Invalid value given for the {key} property{where}")

    @staticmethod
    def _bool(body: dict[str, Any], key: str) -> bool:
        value = body[key]
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise _ApiError(400, f"Invalid value given for the {key} property")

    @staticmethod
    def _number(value: Any, key: str, where: str = "") -> Decimal:
        if isinstance(value, bool) or value is None:
            raise _ApiError(400, f"Invalid value given for the {key} property{where}")
        if isinstance(value, int | Decimal):
            return Decimal(value)
        if isinstance(value, float) and math.isfinite(value):
            # Only control-API bodies hold floats (API bodies parse to Decimal); repr() is the
            # shortest text that reads back as this float, i.e. what the caller wrote.
            return Decimal(repr(value))
        if isinstance(value, str):
            # Numeric strings pass, as the vendor's PHP backend coerces them.
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                number = Decimal("NaN")
            if number.is_finite():
                return number
        raise _ApiError(400, f"Invalid value given for the {key} property{where}")

    @staticmethod
    def _date(value: Any, key: str, *, allow_zero: bool = False) -> dt.date | None:
        if value is None or value == "" or (allow_zero and value == "0000-00-00"):
            return None
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            try:
                return dt.date.fromisoformat(value)
            except ValueError:
                pass
        raise _ApiError(400, f"Invalid date given for the {key} property")

    @staticmethod
    def _unknown(body: dict[str, Any], allowed: set[str], strict: bool) -> None:
        # The API ignores properties it does not know; the control API refuses them so
        # that a typo in a test does not pass silently.
        if strict:
            extra = sorted(set(body) - allowed)
            if extra:
                raise _ApiError(400, f"Unknown field(s): {', '.join(extra)}")

    # ================================================================ relations

    def _apply_relation(self, rel: _Relation, body: dict[str, Any], *, strict: bool) -> bool:
        """Validate and apply a POST/PUT body; return whether anything changed."""
        organization = rel.kind == "organization"
        strings = _ORG_STRINGS if organization else _PERSON_STRINGS
        bools = _ORG_BOOLS if organization else _PERSON_BOOLS
        addresses = ("visiting_address", "postal_address") if organization else ("address",)
        links_key = (
            "linked_persons_contacts" if organization else "linked_as_contact_to_organization"
        )
        allowed = {*strings, *bools, *addresses, links_key, *(() if organization else ("gender",))}
        self._unknown(body, allowed, strict)
        updates: dict[str, Any] = {}
        for key in strings:
            if key in body:
                value = self._string(body, key)
                if key == "date_of_birth":
                    self._date(value, key, allow_zero=True)
                updates[key] = value
        for key in bools:
            if key in body:
                updates[key] = self._bool(body, key)
        if not organization and "gender" in body:
            gender = body["gender"]
            if gender not in _GENDERS:
                raise _ApiError(400, "Invalid value given for the gender property")
            updates["gender"] = gender
        required = "name" if organization else "family_name"
        merged = {**rel.fields, **updates}
        if not merged.get(required):
            raise _ApiError(400, f"No {required} given for the {rel.kind}")
        new_addresses = {k: self._address(rel, k, body[k]) for k in addresses if k in body}
        link_specs = self._link_specs(rel, body.get(links_key), links_key)
        changed = any(rel.fields.get(k) != v for k, v in updates.items())
        changed = changed or any(rel.addresses.get(k) != v for k, v in new_addresses.items())
        rel.fields.update(updates)
        rel.addresses.update(new_addresses)
        if self._apply_links(rel, link_specs):
            changed = True
        return changed

    def _address(self, rel: _Relation, prop: str, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _ApiError(400, f"Invalid value given for the {prop} property")
        current = rel.addresses.get(prop) or {}
        merged: dict[str, Any] = {k: current.get(k) for k in (*_ADDRESS_STRINGS, "country_code")}
        for key in _ADDRESS_STRINGS:
            if key in value:
                merged[key] = self._string(value, key, f" in the {prop} property")
        code = value.get("country_code")
        country_id = value.get("country_id")
        if code is not None:
            if not isinstance(code, str) or not re.fullmatch(r"[A-Za-z]{2}", code):
                raise _ApiError(400, f"Invalid country code given in the {prop} property")
            merged["country_code"] = code.upper()
        elif country_id is not None:
            known = {self._country_id(c): c for c in _COUNTRY_NAMES}
            if country_id not in known:
                raise _ApiError(400, f"Invalid country_id given in the {prop} property")
            merged["country_code"] = known[country_id]
        if not merged.get("country_code"):
            raise _ApiError(400, f"No country code given in the {prop} property")
        merged["id"] = current.get("id") or f"address:{self._hex('address', rel.id, prop)}"
        return merged

    def _country_id(self, code: str) -> str:
        return f"country:{hashlib.sha256(('country:' + code).encode()).hexdigest()[:32]}"

    def _link_specs(
        self, rel: _Relation, value: Any, prop: str
    ) -> list[tuple[str, dict[str, Any]]]:
        """(other side's id, link fields) for every element of a links property."""
        if value is None:
            return []
        if not isinstance(value, list):
            raise _ApiError(400, f"Invalid value given for the {prop} property")
        other_key, other_kind = (
            ("person_id", "person")
            if rel.kind == "organization"
            else ("organization_id", "organization")
        )
        specs: list[tuple[str, dict[str, Any]]] = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get(other_key), str):
                raise _ApiError(400, f"No {other_key} given in the {prop} property")
            other = self._relations.get(item[other_key])
            if other is None or other.kind != other_kind:
                raise _ApiError(400, f"Invalid {other_key} given in the {prop} property")
            fields: dict[str, Any] = {
                k: self._string(item, k, f" in the {prop} property")
                for k in _LINK_STRINGS
                if k in item
            }
            if "is_active" in item:
                fields["is_active"] = self._bool(item, "is_active")
            specs.append((item[other_key], fields))
        return specs

    def _apply_links(self, rel: _Relation, specs: list[tuple[str, dict[str, Any]]]) -> bool:
        # Inferred: links in a body are added or updated per (organization, person) pair;
        # removing one is a DELETE on crm/contactperson.
        changed = False
        now = self._now()
        for other_id, fields in specs:
            org_id, person_id = (
                (rel.id, other_id) if rel.kind == "organization" else (other_id, rel.id)
            )
            link = next(
                (
                    x
                    for x in self._links.values()
                    if x.organization_id == org_id and x.person_id == person_id
                ),
                None,
            )
            if link is None:
                link_fields: dict[str, Any] = dict.fromkeys(_LINK_STRINGS)
                link_fields["is_active"] = True
                link_fields.update(fields)
                link = _Link(
                    self._new_id("contactperson"), org_id, person_id, link_fields, now, now
                )
                self._links[link.id] = link
            elif any(link.fields.get(k) != v for k, v in fields.items()):
                link.fields.update(fields)
                link.updated_at = now
            else:
                continue
            changed = True
            self._touch(self._relations[other_id])
        return changed

    def _touch(self, record: _Relation | _Link | _Invoice) -> None:
        record.updated_at = self._now()
        self._changed()

    def _create_relation(
        self, kind: Literal["organization", "person"], body: dict[str, Any], *, strict: bool
    ) -> str:
        now = self._now()
        strings = _ORG_STRINGS if kind == "organization" else _PERSON_STRINGS
        fields: dict[str, Any] = dict.fromkeys(strings)
        fields["is_active"] = True
        if kind == "organization":
            fields.update(has_different_postal_address=False, allow_autocollect=False)
        else:
            fields["gender"] = "Unknown"
        updated = None if self.quirks.new_records_lack_updated_at and not strict else now
        addresses: dict[str, dict[str, Any] | None] = (
            {"visiting_address": None, "postal_address": None}
            if kind == "organization"
            else {"address": None}
        )
        rel = _Relation(kind, self._new_id(kind), fields, addresses, now, updated)
        # Every check runs before anything is applied, so a refused body leaves no trace.
        self._apply_relation(rel, body, strict=strict)
        self._relations[rel.id] = rel
        self._changed()
        return rel.id

    # ================================================================ invoices

    def _status_by_name(self, name: str) -> str:
        for status_id, status in self._lookups.statuses.items():
            if status["name"] == name:
                return status_id
        raise KeyError(name)

    def _status_name(self, inv: _Invoice) -> str:
        return str(self._lookups.statuses[inv.status_id]["name"])

    def _payment_term_for(self, days: int) -> str:
        for term_id, term in self._lookups.payment_terms.items():
            if term["days"] == days:
                return term_id
        term_id = f"paymentterm:{self._hex('paymentterm', str(days))}"
        name = "Direct" if days == 0 else f"{days} dagen"
        self._lookups.payment_terms[term_id] = {
            "id": term_id,
            "name": name,
            "days": days,
            "method": "Bank Transfer",
        }
        return term_id

    def _vat_class_for(self, rate: Decimal) -> str:
        for class_id, vat in self._lookups.vat_classes.items():
            if vat["percentage"] == rate:
                return class_id
        text = format(rate.normalize(), "f")
        class_id = f"vatclass:{self._hex('vatclass', text)}"
        label = "Geen btw" if rate == 0 else f"{text}% btw"
        self._lookups.vat_classes[class_id] = {
            "id": class_id,
            "code": text,
            "label": label,
            "percentage": rate,
        }
        return class_id

    def _next_invoice_number(self, date: dt.date) -> str:
        taken = {i.invoice_number for i in self._invoices.values() if i.invoice_number}
        best: tuple[int, str, int] | None = None  # (value, prefix, width)
        for number in taken:
            match = re.fullmatch(r"(.*?)(\d+)", number)
            if match and (best is None or int(match.group(2)) > best[0]):
                best = (int(match.group(2)), match.group(1), len(match.group(2)))
        value, prefix, width = best if best else (date.year * 10000, "", 8)
        while True:
            value += 1
            candidate = f"{prefix}{value:0{width}d}"
            if candidate not in taken:
                return candidate

    def _lines(self, value: Any, now: dt.datetime) -> list[_Line]:
        if not isinstance(value, list):
            raise _ApiError(400, "Invalid value given for the invoice_lines property")
        lines: list[_Line] = []
        for index, item in enumerate(value, start=1):
            where = f" of invoice line {index}"
            if not isinstance(item, dict):
                raise _ApiError(400, f"Invalid value given for invoice line {index}")
            for key in ("amount", "price"):
                if key not in item:
                    raise _ApiError(400, f"No {key} given for invoice line {index}")
            vat_id = item.get("vat_class_id")
            if vat_id is None and isinstance(item.get("vat_class"), dict):
                vat_id = item["vat_class"].get("id")
            if vat_id is None:
                raise _ApiError(400, f"No vat_class_id given for invoice line {index}")
            if vat_id not in self._lookups.vat_classes:
                raise _ApiError(404, f"No VAT class found for invoice line {index}")
            group = item.get("revenue_group_id")
            if group is not None and group not in self._lookups.revenue_groups:
                raise _ApiError(404, f"No revenue group found for invoice line {index}")
            description = (
                self._string(item, "description", where) if "description" in item else None
            )
            lines.append(
                _Line(
                    id=self._new_id("invoiceline"),
                    description=description,
                    amount=self._number(item["amount"], "amount", where),
                    price=self._number(item["price"], "price", where),
                    vat_class_id=vat_id,
                    revenue_group_id=group or next(iter(self._lookups.revenue_groups)),
                    date=self._date(item.get("date"), "date"),
                    created_at=now,
                    updated_at=now,
                )
            )
        return lines

    def _debtor(self, body: dict[str, Any], inv: _Invoice | None) -> tuple[str | None, str | None]:
        org_id = inv.organization_id if inv else None
        person_id = inv.person_id if inv else None
        given_org = "organization_id" in body and body["organization_id"]
        given_person = "person_id" in body and body["person_id"]
        if given_org and given_person:
            raise _ApiError(400, "Give either organization_id or person_id, not both")
        if given_org:
            org_id, person_id = self._string(body, "organization_id"), None
            if org_id not in self._relations or self._relations[org_id].kind != "organization":
                raise _ApiError(404, "No organization found for the organization_id property")
        elif given_person:
            org_id, person_id = None, self._string(body, "person_id")
            if person_id not in self._relations or self._relations[person_id].kind != "person":
                raise _ApiError(404, "No person found for the person_id property")
        if not org_id and not person_id:
            raise _ApiError(400, "No organization_id or person_id given")
        return org_id, person_id

    def _lookup_id(
        self, body: dict[str, Any], key: str, table: dict[str, Any], what: str
    ) -> str | None:
        if key not in body or body[key] is None:
            return None
        value = self._string(body, key)
        if value not in table:
            raise _ApiError(404, f"No {what} found for the {key} property")
        return value

    def _create_invoice(self, body: dict[str, Any], *, strict: bool) -> str:
        allowed = {*_INVOICE_HEADER, "status_id", "payment_term_id", "invoice_lines"}
        if strict:
            allowed |= {"status"}
        self._unknown(body, allowed, strict)
        now = self._now()
        org_id, person_id = self._debtor(body, None)
        status_id = self._lookup_id(body, "status_id", self._lookups.statuses, "invoice status")
        if strict and "status" in body:
            status_id = self._status_from_name(body["status"])
        term_id = self._lookup_id(
            body, "payment_term_id", self._lookups.payment_terms, "payment term"
        )
        profile_id = self._lookup_id(
            body, "my_organization_profile_id", self._lookups.profiles, "organization profile"
        )
        date = self._date(body.get("date"), "date") or self._today()
        fields = {k: self._string(body, k) if k in body else None for k in _INVOICE_STRINGS}
        lines = self._lines(body.get("invoice_lines") or [], now)
        updated = None if self.quirks.new_records_lack_updated_at and not strict else now
        inv = _Invoice(
            id=self._new_id("invoice"),
            invoice_number=None,
            status_id=status_id or self._status_by_name("Concept"),
            payment_term_id=term_id or self._payment_term_for(14),
            my_organization_profile_id=profile_id or next(iter(self._lookups.profiles)),
            organization_id=org_id,
            person_id=person_id,
            date=date,
            fields=fields,
            lines=lines,
            created_at=now,
            updated_at=updated,
        )
        if self._status_name(inv) != "Concept":
            inv.invoice_number = self._next_invoice_number(date)
        self._invoices[inv.id] = inv
        self._changed()
        return inv.id

    def _status_from_name(self, value: Any) -> str:
        try:
            return self._status_by_name(str(value))
        except KeyError:
            raise _ApiError(400, f"Unknown invoice status: {value}") from None

    def _update_invoice(self, inv: _Invoice, body: dict[str, Any], *, strict: bool) -> bool:
        header = set(_INVOICE_HEADER)
        extra = {"status_id", "payment_term_id", "invoice_lines"}
        if strict:
            self._unknown(body, header | extra | {"status"}, strict)
        concept = self._status_name(inv) == "Concept"
        if not strict and self.quirks.lock_sent_invoices and not concept:
            raise _ApiError(400, "This invoice has been sent and can no longer be changed")
        take_extra = strict or not self.quirks.invoice_put_ignores_lines_and_status
        changed = False
        if {"organization_id", "person_id"} & set(body):
            debtor = self._debtor(body, inv)
            if debtor != (inv.organization_id, inv.person_id):
                inv.organization_id, inv.person_id = debtor
                changed = True
        profile = self._lookup_id(
            body, "my_organization_profile_id", self._lookups.profiles, "organization profile"
        )
        if profile and profile != inv.my_organization_profile_id:
            inv.my_organization_profile_id = profile
            changed = True
        if "date" in body:
            date = self._date(body["date"], "date")
            if date is None:
                raise _ApiError(400, "No date given")
            if date != inv.date:
                inv.date = date
                changed = True
        for key in _INVOICE_STRINGS:
            if key in body:
                value = self._string(body, key)
                if inv.fields.get(key) != value:
                    inv.fields[key] = value
                    changed = True
        if take_extra:
            changed = self._update_invoice_extra(inv, body, concept=concept) or changed
        if changed:
            self._touch(inv)
        return changed

    def _update_invoice_extra(self, inv: _Invoice, body: dict[str, Any], *, concept: bool) -> bool:
        changed = False
        term = self._lookup_id(body, "payment_term_id", self._lookups.payment_terms, "payment term")
        if term and term != inv.payment_term_id:
            inv.payment_term_id = term
            changed = True
        if "invoice_lines" in body:
            if not concept:
                raise _ApiError(400, "The lines of a sent invoice can no longer be changed")
            inv.lines = self._lines(body["invoice_lines"], self._now())
            changed = True
        status_id = self._lookup_id(body, "status_id", self._lookups.statuses, "invoice status")
        if "status" in body:
            status_id = self._status_from_name(body["status"])
        if status_id and status_id != inv.status_id:
            if self._lookups.statuses[status_id]["name"] == "Concept":
                raise _ApiError(400, "A sent invoice cannot become a concept again")
            inv.status_id = status_id
            if inv.invoice_number is None:
                inv.invoice_number = self._next_invoice_number(inv.date)
            changed = True
        return changed

    def _totals(self, inv: _Invoice) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        # Inferred: VAT is rounded per line; excl = amount x price.
        excl = Decimal(0)
        vat = Decimal(0)
        for line in inv.lines:
            line_excl = _money(line.amount * line.price)
            excl += line_excl
            vat += self._line_vat(line, line_excl)
        paid = self._index().paid.get(inv.id, Decimal(0))
        incl = excl + vat
        return _money(excl), _money(vat), _money(incl), _money(incl - paid)

    def _line_vat(self, line: _Line, line_excl: Decimal) -> Decimal:
        rate = Decimal(self._lookups.vat_classes[line.vat_class_id]["percentage"])
        return _money(line_excl * rate / 100)

    def _settle(self, inv: _Invoice) -> None:
        """Move the status between Sent/Overdue and Paid as payments come and go."""
        self._changed()  # a payment was just added/changed/removed: the paid index is stale
        outstanding = self._totals(inv)[3]
        name = self._status_name(inv)
        if outstanding <= 0 and name in {"Sent", "Overdue"}:
            inv.status_id = self._status_by_name("Paid")
        elif outstanding > 0 and name == "Paid":
            inv.status_id = self._status_by_name("Sent")
        self._touch(inv)

    # ================================================================ payments

    def _create_payment(self, body: dict[str, Any], *, strict: bool) -> str:
        self._unknown(body, {"invoice_id", "date", "amount", "description"}, strict)
        invoice_id = body.get("invoice_id")
        if not invoice_id:
            raise _ApiError(400, "No invoice_id given")
        if not isinstance(invoice_id, str):
            raise _ApiError(400, "Invalid value given for the invoice_id property")
        inv = self._invoices.get(invoice_id)
        if inv is None:
            raise _ApiError(404, "No invoice found for the invoice_id property")
        if "amount" not in body:
            raise _ApiError(400, "No amount given")
        amount = self._number(body["amount"], "amount")
        date = self._date(body.get("date"), "date") or self._today()
        description = self._string(body, "description") if "description" in body else None
        # Inferred: a Concept invoice cannot be paid (it has no number and is not sent).
        if self._status_name(inv) == "Concept":
            raise _ApiError(400, "Payments can only be added to sent invoices")
        payment = _Payment(self._new_id("payment"), inv.id, date, amount, description)
        self._payments[payment.id] = payment
        self._settle(inv)
        return payment.id

    def _update_payment(self, payment: _Payment, body: dict[str, Any], *, strict: bool) -> bool:
        self._unknown(body, {"invoice_id", "date", "amount", "description"}, strict)
        if "invoice_id" in body and body["invoice_id"] != payment.invoice_id:
            raise _ApiError(400, "A payment cannot be moved to another invoice")
        amount = self._number(body["amount"], "amount") if "amount" in body else payment.amount
        date = payment.date
        if "date" in body:
            given = self._date(body["date"], "date")
            if given is None:
                raise _ApiError(400, "No date given")
            date = given
        description = payment.description
        if "description" in body:
            description = self._string(body, "description")
        if (amount, date, description) == (payment.amount, payment.date, payment.description):
            return False
        payment.amount, payment.date, payment.description = amount, date, description
        self._settle(self._invoices[payment.invoice_id])
        return True

    # ================================================================ generic operations

    def _create(self, resource: str, body: dict[str, Any], *, strict: bool) -> str:
        if resource in ("organization", "person"):
            kind: Literal["organization", "person"] = (
                "organization" if resource == "organization" else "person"
            )
            return self._create_relation(kind, body, strict=strict)
        if resource == "invoice":
            return self._create_invoice(body, strict=strict)
        if resource == "payment":
            return self._create_payment(body, strict=strict)
        if resource == "contactperson" and strict:
            return self._create_link(body)
        raise _ApiError(400, f"Cannot create {resource}")

    def _create_link(self, body: dict[str, Any]) -> str:
        self._unknown(body, {"organization_id", "person_id", "is_active", *_LINK_STRINGS}, True)
        org = self._relations.get(str(body.get("organization_id")))
        if org is None or org.kind != "organization":
            raise _ApiError(400, "Invalid organization_id given")
        spec = {k: v for k, v in body.items() if k != "organization_id"}
        self._apply_relation(org, {"linked_persons_contacts": [spec]}, strict=True)
        self._touch(org)
        person_id = body["person_id"]
        return next(
            x.id
            for x in self._links.values()
            if x.organization_id == org.id and x.person_id == person_id
        )

    def _update(self, resource: str, record_id: str, body: dict[str, Any], *, strict: bool) -> bool:
        if resource in ("organization", "person"):
            rel = self._relations[record_id]
            changed = self._apply_relation(rel, body, strict=strict)
            if changed:
                self._touch(rel)
            return changed
        if resource == "invoice":
            # Fields are checked while they are applied: work on a copy so that a refused
            # body changes nothing, as the vendor's transaction would.
            draft = copy.deepcopy(self._invoices[record_id])
            changed = self._update_invoice(draft, body, strict=strict)
            self._invoices[record_id] = draft
            self._changed()
            return changed
        if resource == "payment":
            return self._update_payment(self._payments[record_id], body, strict=strict)
        if resource == "contactperson":
            link = self._links[record_id]
            self._unknown(body, {"is_active", *_LINK_STRINGS}, strict)
            org = self._relations[link.organization_id]
            spec = {"person_id": link.person_id, **body}
            changed = self._apply_relation(org, {"linked_persons_contacts": [spec]}, strict=strict)
            if changed:
                self._touch(org)
            return changed
        raise _ApiError(400, f"Cannot change {resource}")

    def _delete(self, resource: str, record_id: str, *, via_api: bool) -> None:
        if resource in ("organization", "person"):
            key = "organization_id" if resource == "organization" else "person_id"
            if self.quirks.block_delete_with_invoices and any(
                getattr(i, key) == record_id for i in self._invoices.values()
            ):
                raise _ApiError(400, f"This {resource} has invoices and cannot be deleted")
            for link in [
                x for x in self._links.values() if record_id in (x.organization_id, x.person_id)
            ]:
                self._drop_link(link)
            del self._relations[record_id]
        elif resource == "contactperson":
            self._drop_link(self._links[record_id])
        elif resource == "invoice":
            inv = self._invoices[record_id]
            if self.quirks.delete_only_concept_invoices and self._status_name(inv) != "Concept":
                raise _ApiError(400, "Only concept invoices can be deleted")
            for payment_id in [p.id for p in self._payments.values() if p.invoice_id == record_id]:
                del self._payments[payment_id]
            del self._invoices[record_id]
        elif resource == "payment" and not via_api:
            payment = self._payments.pop(record_id)
            self._settle(self._invoices[payment.invoice_id])
        else:
            raise _ApiError(400, f"Cannot delete {resource}")
        self._changed()

    def _drop_link(self, link: _Link) -> None:
        del self._links[link.id]
        for side in (link.organization_id, link.person_id):
            rel = self._relations.get(side)
            if rel is not None:
                self._touch(rel)

    # ================================================================ rendering

    def _index(self) -> _Index:
        """Links per relation and paid sums per invoice, rebuilt once per state version."""
        if self._indexed is not None and self._indexed.version == self._version:
            return self._indexed
        index = _Index(self._version)
        for link in self._links.values():
            index.links_by_relation.setdefault(link.organization_id, []).append(link)
            index.links_by_relation.setdefault(link.person_id, []).append(link)
        for payment in self._payments.values():
            index.paid[payment.invoice_id] = index.paid.get(payment.invoice_id, 0) + payment.amount
        self._indexed = index
        return index

    def _render(self, resource: str, record_id: str) -> dict[str, Any]:
        """One record as a GET by id shows it (null fields kept). KeyError when absent."""
        if resource in ("organization", "person"):
            return self._render_relation(self._relation(resource, record_id))
        if resource == "contactperson":
            return self._render_link(self._links[record_id])
        if resource == "invoice":
            return self._render_invoice(self._invoices[record_id])
        if resource == "payment":
            return self._render_payment(self._payments[record_id])
        table = {
            "invoicestatus": self._lookups.statuses,
            "vatclass": self._lookups.vat_classes,
            "paymentterm": self._lookups.payment_terms,
            "myorganizationprofile": self._lookups.profiles,
        }[resource]
        return dict(table[record_id])

    def _rendered(self, resource: str) -> list[dict[str, Any]]:
        """Every record of a resource, rendered, cached until the next change."""
        cached = self._cache.get(resource)
        if cached is not None and cached[0] == self._version and cached[1] == self.quirks:
            return cached[2]
        if resource in ("organization", "person"):
            ids = [r.id for r in self._relations.values() if r.kind == resource]
        else:
            tables: dict[str, dict[str, Any]] = {
                "contactperson": self._links,
                "invoice": self._invoices,
                "payment": self._payments,
                "invoicestatus": self._lookups.statuses,
                "vatclass": self._lookups.vat_classes,
                "paymentterm": self._lookups.payment_terms,
                "myorganizationprofile": self._lookups.profiles,
            }
            ids = list(tables[resource])
        rows = [self._render(resource, i) for i in ids]
        self._cache[resource] = (self._version, self.quirks, rows)
        return rows

    def _address_out(self, address: dict[str, Any] | None) -> dict[str, Any] | None:
        if address is None:
            return None
        code = address.get("country_code")
        return {
            "id": address["id"],
            "type": address.get("type"),
            "line_1": address.get("line_1"),
            "line_2": address.get("line_2"),
            "postal_code": address.get("postal_code"),
            "locality": address.get("locality"),
            "province": address.get("province"),
            "country": _COUNTRY_NAMES.get(code, code) if code else None,
            "country_code": code,
            "country_id": self._country_id(code) if code else None,
        }

    def _full_name(self, rel: _Relation) -> str:
        parts = (rel.fields.get(k) for k in ("first_name", "family_name_prefix", "family_name"))
        return " ".join(p for p in parts if p)

    def _render_relation(self, rel: _Relation) -> dict[str, Any]:
        hex_id = rel.id.partition(":")[2]
        if rel.kind == "organization":
            links = self._index().links_by_relation.get(rel.id, [])
            out: dict[str, Any] = {"id": rel.id}
            out.update({k: rel.fields.get(k) for k in ("name", "is_active", *_ORG_STRINGS[1:])})
            out.update({k: rel.fields.get(k) for k in _ORG_BOOLS[1:]})
            out["visiting_address"] = self._address_out(rel.addresses.get("visiting_address"))
            out["postal_address"] = self._address_out(rel.addresses.get("postal_address"))
            out["linked_persons_contacts"] = [
                {
                    "person_id": x.person_id,
                    **{k: x.fields.get(k) for k in ("is_active", *_LINK_STRINGS)},
                }
                for x in links
            ]
            url = f"https://sandbox.simplicate.nl/crm/organizations/{hex_id}"
        else:
            links = self._index().links_by_relation.get(rel.id, [])
            out = {
                "id": rel.id,
                "is_active": rel.fields.get("is_active"),
                "gender": rel.fields.get("gender"),
            }
            out.update({k: rel.fields.get(k) for k in _PERSON_STRINGS})
            out["full_name"] = self._full_name(rel)
            if out["date_of_birth"] is None and self.quirks.zero_dates:
                out["date_of_birth"] = "0000-00-00"
            address = self._address_out(rel.addresses.get("address"))
            if self.quirks.person_address_as_list:
                out["address"] = [address] if address else []
            else:
                out["address"] = address
            out["linked_as_contact_to_organization"] = [
                {
                    "id": x.id,
                    "organization_id": x.organization_id,
                    "name": self._relations[x.organization_id].fields.get("name"),
                    **{k: x.fields.get(k) for k in ("is_active", *_LINK_STRINGS)},
                }
                for x in links
            ]
            url = f"https://sandbox.simplicate.nl/crm/persons/{hex_id}"
        out["created_at"] = _local(rel.created_at)
        out["updated_at"] = _local(rel.updated_at)
        out["simplicate_url"] = url
        return out

    def _org_simple(self, org_id: str | None) -> dict[str, Any] | None:
        org = self._relations.get(org_id) if org_id else None
        if org is None:
            return None
        return {
            "id": org.id,
            "name": org.fields.get("name"),
            "relation_number": org.fields.get("relation_number"),
        }

    def _person_simple(self, person_id: str | None) -> dict[str, Any] | None:
        person = self._relations.get(person_id) if person_id else None
        if person is None:
            return None
        return {
            "id": person.id,
            "full_name": self._full_name(person),
            "relation_number": person.fields.get("relation_number"),
        }

    def _render_link(self, link: _Link) -> dict[str, Any]:
        return {
            "id": link.id,
            "organization": self._org_simple(link.organization_id),
            "person": self._person_simple(link.person_id),
            "person_id": link.person_id,
            **{k: link.fields.get(k) for k in ("is_active", *_LINK_STRINGS)},
            "created_at": _local(link.created_at),
            "updated_at": _local(link.updated_at),
        }

    def _render_invoice(self, inv: _Invoice) -> dict[str, Any]:
        excl, vat, incl, outstanding = self._totals(inv)
        status = self._lookups.statuses[inv.status_id]
        term = self._lookups.payment_terms[inv.payment_term_id]
        profile = self._lookups.profiles[inv.my_organization_profile_id]
        lines = []
        for line in inv.lines:
            vat_class = self._lookups.vat_classes[line.vat_class_id]
            group = self._lookups.revenue_groups.get(line.revenue_group_id or "")
            lines.append(
                {
                    "id": line.id,
                    "description": line.description,
                    "amount": line.amount,
                    "price": line.price,
                    "total_vat": self._line_vat(line, _money(line.amount * line.price)),
                    "vat_class": dict(vat_class),
                    "revenue_group": dict(group) if group else None,
                    "date": line.date.isoformat() if line.date else None,
                    "created_at": _local(line.created_at),
                    "updated_at": _local(line.updated_at),
                }
            )
        return {
            "id": inv.id,
            "invoice_number": inv.invoice_number,
            "status": {"id": status["id"], "name": status["name"]},
            "date": inv.date.isoformat(),
            "subject": inv.fields.get("subject"),
            "reference": inv.fields.get("reference"),
            "comments": inv.fields.get("comments"),
            "project_id": inv.fields.get("project_id"),
            "organization_id": inv.organization_id,
            "person_id": inv.person_id,
            "organization": self._org_simple(inv.organization_id),
            "person": self._person_simple(inv.person_id),
            "my_organization_profile_id": inv.my_organization_profile_id,
            "my_organization_profile": {
                "id": profile["id"],
                "organization": {"id": profile["organization_id"], "name": profile["name"]},
            },
            "payment_term": {"name": term["name"], "days": term["days"], "method": term["method"]},
            "total_excluding_vat": excl,
            "total_vat": vat,
            "total_including_vat": incl,
            "total_outstanding": outstanding,
            "invoice_lines": lines,
            "sending_method": "email",
            "composition_type": "lines",
            "simplicate_url": f"https://sandbox.simplicate.nl/invoicing/invoices/{inv.id.partition(':')[2]}",
            "created_at": _local(inv.created_at),
            "updated_at": _local(inv.updated_at),
        }

    @staticmethod
    def _render_payment(payment: _Payment) -> dict[str, Any]:
        return {
            "id": payment.id,
            "invoice_id": payment.invoice_id,
            "date": payment.date.isoformat(),
            "amount": payment.amount,
            "description": payment.description,
        }

    # ================================================================ control hooks

    def load_seed(self, seed: VendorSeed) -> None:
        """Replace everything with the seeded world, in Simplicate's shapes and ids."""
        self._relations = {}
        self._links = {}
        self._invoices = {}
        self._payments = {}
        self._serial = 0
        self._lookups = _Lookups()
        self._changed()
        for name, color in _STATUSES:
            status_id = f"invoicestatus:{self._hex('invoicestatus', name)}"
            self._lookups.statuses[status_id] = {"id": status_id, "name": name, "color": color}
        for rate in (Decimal(21), Decimal(9), Decimal(0)):
            self._vat_class_for(rate)
        for days in (14, 30):
            self._payment_term_for(days)
        group_id = f"revenuegroup:{self._hex('revenuegroup', 'default')}"
        self._lookups.revenue_groups[group_id] = {"id": group_id, "label": "Omzet"}
        profile_id = f"myorganizationprofile:{self._hex('profile')}"
        self._lookups.profiles[profile_id] = {
            "id": profile_id,
            "organization_id": f"organization:{self._hex('own-organization')}",
            "name": "Sandbox B.V.",
            "coc_code": "12345678",
            "vat_number": "NL001234567B01",
            "bank_account": "NL91ABNA0417164300",
            "blocked": False,
        }
        by_key: dict[str, _Relation] = {}
        for contact in seed.contacts:
            by_key[contact.key] = self._seed_relation(contact)
        self._seed_links(seed)
        for invoice in seed.invoices:
            debtor = by_key.get(invoice.contact_key)
            if debtor is not None and invoice.status in _SEED_STATUS:
                self._seed_invoice(invoice, debtor)
        self._changed()

    def _seed_relation(self, contact: SeedContact) -> _Relation:
        created = contact.created_at.astimezone(dt.UTC).replace(microsecond=0)
        updated = contact.updated_at.astimezone(dt.UTC).replace(microsecond=0)
        rel_id = f"{contact.kind}:{self._hex(contact.kind, contact.key)}"
        common = {
            "email": contact.email,
            "phone": contact.phone,
            "bank_account": contact.iban,
            "bank_bic": contact.bic,
            "relation_number": contact.customer_number,
            "is_active": True,
        }
        address: dict[str, Any] | None = None
        if contact.address or contact.postal_code or contact.city:
            address = {
                "id": f"address:{self._hex('address', rel_id, 'main')}",
                "type": None,
                "line_1": contact.address,
                "line_2": None,
                "postal_code": contact.postal_code,
                "province": None,
                "locality": contact.city,
                "country_code": contact.country,
            }
        if contact.kind == "organization":
            fields: dict[str, Any] = dict.fromkeys(_ORG_STRINGS)
            fields.update(common)
            fields.update(
                name=contact.name,
                url=contact.website,
                coc_code=contact.coc_number,
                vat_number=contact.vat_number,
                has_different_postal_address=False,
                allow_autocollect=False,
            )
            addresses = {"visiting_address": address, "postal_address": None}
        else:
            fields = dict.fromkeys(_PERSON_STRINGS)
            fields.update(common)
            first = contact.first_name
            last = contact.last_name
            if first is None and last is None:
                first, _, last = contact.name.rpartition(" ")
            prefix, family = _split_family_name(last or contact.name)
            fields.update(
                gender="Unknown",
                first_name=first or None,
                family_name_prefix=prefix,
                family_name=family,
                initials=f"{first[0]}." if first else None,
                website_url=contact.website,
            )
            addresses = {"address": address}
        rel = _Relation(contact.kind, rel_id, fields, addresses, created, updated)
        self._relations[rel.id] = rel
        return rel

    def _seed_links(self, seed: VendorSeed) -> None:
        orgs = [c for c in seed.contacts if c.kind == "organization"]
        if not orgs:
            return
        for contact in seed.contacts:
            if contact.kind != "person":
                continue
            pick = int(self._hex("link", contact.key)[:8], 16)
            if pick % 3 == 0:
                continue
            org = orgs[pick % len(orgs)]
            org_id = f"organization:{self._hex('organization', org.key)}"
            person_id = f"person:{self._hex('person', contact.key)}"
            stamp = max(self._relations[org_id].created_at, self._relations[person_id].created_at)
            link_id = f"contactperson:{self._hex('contactperson', org.key, contact.key)}"
            fields: dict[str, Any] = dict.fromkeys(_LINK_STRINGS)
            fields.update(is_active=True, work_function="Contactpersoon", work_email=contact.email)
            self._links[link_id] = _Link(link_id, org_id, person_id, fields, stamp, stamp)

    def _seed_invoice(self, invoice: SeedInvoice, debtor: _Relation) -> None:
        created = invoice.created_at.astimezone(dt.UTC).replace(microsecond=0)
        updated = invoice.updated_at.astimezone(dt.UTC).replace(microsecond=0)
        inv_id = f"invoice:{self._hex('invoice', invoice.key)}"
        group = next(iter(self._lookups.revenue_groups))
        lines = [
            _Line(
                id=f"invoiceline:{self._hex('invoiceline', invoice.key, str(n))}",
                description=line.description,
                amount=line.quantity,
                price=line.unit_price,
                vat_class_id=self._vat_class_for(line.vat_rate),
                revenue_group_id=group,
                date=invoice.issue_date,
                created_at=created,
                updated_at=created,
            )
            for n, line in enumerate(invoice.lines)
        ]
        status_name = _SEED_STATUS[invoice.status]
        days = max(0, (invoice.due_date - invoice.issue_date).days)
        inv = _Invoice(
            id=inv_id,
            invoice_number=None,
            status_id=self._status_by_name(status_name),
            payment_term_id=self._payment_term_for(days),
            my_organization_profile_id=next(iter(self._lookups.profiles)),
            organization_id=debtor.id if debtor.kind == "organization" else None,
            person_id=debtor.id if debtor.kind == "person" else None,
            date=invoice.issue_date,
            fields={
                "subject": invoice.lines[0].description if invoice.lines else None,
                "reference": None,
                "comments": None,
                "project_id": None,
            },
            lines=lines,
            created_at=created,
            updated_at=updated,
        )
        if status_name != "Concept":
            inv.invoice_number = invoice.number or self._next_invoice_number(invoice.issue_date)
        self._invoices[inv.id] = inv
        for n, paid in enumerate(invoice.payments):
            pay_id = f"payment:{self._hex('payment', invoice.key, str(n))}"
            self._payments[pay_id] = _Payment(pay_id, inv_id, paid.date, paid.amount, "Betaling")

    def dump(self) -> dict[str, Any]:
        """Every record by resource, as the API renders it but with null fields kept."""
        return {
            resource: [dict(r) for r in self._rendered(resource)]
            for resource in (
                *RESOURCES,
                "invoicestatus",
                "vatclass",
                "paymentterm",
                "myorganizationprofile",
            )
        }

    def _control(self, resource: str, record_id: str | None = None) -> None:
        if resource not in RESOURCES:
            raise ValueError(f"simplicate has no resource {resource!r}; use one of {RESOURCES}")
        if record_id is not None:
            try:
                self._require(resource, record_id)
            except _ApiError:
                raise KeyError(record_id) from None

    def mutate(self, resource: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Change a record as a user in the web app would; updated_at moves on any change."""
        self._control(resource, record_id)
        try:
            changed = self._update(resource, record_id, dict(fields), strict=True)
        except _ApiError as exc:
            raise ValueError(exc.message) from None
        if not changed and resource != "payment":
            # A save in the web app stamps the record even when nothing differs.
            self._touch_resource(resource, record_id)
        return self._render(resource, record_id)

    def _touch_resource(self, resource: str, record_id: str) -> None:
        if resource in ("organization", "person"):
            self._touch(self._relations[record_id])
        elif resource == "contactperson":
            self._touch(self._links[record_id])
        elif resource == "invoice":
            self._touch(self._invoices[record_id])

    def create(self, resource: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create a record as a user in the web app would; returns it with its new id."""
        self._control(resource)
        try:
            new_id = self._create(resource, dict(fields), strict=True)
        except _ApiError as exc:
            raise ValueError(exc.message) from None
        return self._render(resource, new_id)

    def delete(self, resource: str, record_id: str) -> None:
        """Delete a record as a user would (payments too, which the API cannot)."""
        self._control(resource, record_id)
        try:
            self._delete(resource, record_id, via_api=False)
        except _ApiError as exc:
            raise ValueError(exc.message) from None

    def archive(self, resource: str, record_id: str) -> dict[str, Any]:
        """Simplicate archives by ``is_active = false`` (organizations, persons, links)."""
        if resource not in ("organization", "person", "contactperson"):
            raise ValueError(f"simplicate has no archive for {resource}")
        return self.mutate(resource, record_id, {"is_active": False})

    def register_payment(self, invoice_id: str, amount: Decimal, date: dt.date) -> dict[str, Any]:
        """Book a payment on a sent invoice; outstanding and status follow."""
        self._control("invoice", invoice_id)
        body = {"invoice_id": invoice_id, "amount": amount, "date": date.isoformat()}
        try:
            payment_id = self._create_payment(body, strict=True)
        except _ApiError as exc:
            raise ValueError(exc.message) from None
        return self._render("payment", payment_id)
