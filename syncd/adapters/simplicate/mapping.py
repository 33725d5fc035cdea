"""Pure mapping between Simplicate API v2 JSON and syncd's canonical values.

Reads (``*_to_canonical``) are total: anything a value cannot be built from raises
``SkipRecord`` with a reason, never another exception. Writes (``*_from_canonical``) build
the vendor's POST/PUT bodies; given ``fields`` they hold only what those canonical fields
need (a partial PUT). Reading back what was written gives the normalised value again for
every field Simplicate can hold (see ``tests/adapters/test_simplicate_mapping.py``).

External ids are Simplicate's own ids, which already name their type:
``organization:<hex>`` and ``person:<hex>`` for contacts, ``invoice:<hex>``,
``payment:<hex>``. Timestamps are zone-less Europe/Amsterdam wall-clock text
(``"2026-11-23 10:15:00"``); they become UTC here, at the edge.

Contacts
    ``name`` of an organization is its ``name``; a person's is ``first_name``,
    ``family_name_prefix`` and ``family_name`` joined (its ``last_name`` is prefix and
    family name together). The address is the organization's ``visiting_address``, or its
    ``postal_address`` when it has a different postal address (the billing address), and a
    person's ``address`` (an object, or a list of which the first is taken).
Invoices
    Simplicate has no currency (EUR) and no due date: the due date is ``date`` plus the
    payment term's days. Totals are as Simplicate states them (it rounds VAT per line).
    ``amount_paid`` is ``total_including_vat - total_outstanding``.
Payments
    ``description`` carries the canonical ``reference``; Simplicate has no method field.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo

from syncd.adapters.base import MAX_EXTERNAL_ID_LENGTH, refuse_long_id, storable_value
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    clean_text,
    money,
    normalise,
    normalise_contact,
    normalise_invoice,
    normalise_payment,
    quantity,
    vat_rate,
)
from syncd.errors import SkipRecord

__all__ = [
    "ADDRESS_FIELDS",
    "LOCAL_ZONE",
    "InvoiceLookups",
    "PaymentTerm",
    "VatClass",
    "contact_from_canonical",
    "contact_to_canonical",
    "format_local",
    "from_canonical",
    "id_kind",
    "invoice_from_canonical",
    "invoice_lookups",
    "invoice_to_canonical",
    "join_name",
    "local_lower_bound",
    "parse_local_timestamp",
    "payment_from_canonical",
    "payment_to_canonical",
    "split_family_name",
    "to_canonical",
]

LOCAL_ZONE: Final = ZoneInfo("Europe/Amsterdam")
_LOCAL_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
_TIMESTAMP_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")
_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_ZERO_DATE: Final = "0000-00-00"
_ID_RE: Final = re.compile(r"([a-z]+):([0-9A-Za-z]+)")

# Canonical contact fields that live in the vendor's address object.
ADDRESS_FIELDS: Final = frozenset(
    {"address_line1", "address_line2", "postal_code", "city", "region", "country"}
)
_NAME_FIELDS: Final = frozenset({"name", "first_name", "last_name"})

# Dutch family-name prefixes ("tussenvoegsels"), longest first so "van der" beats "van".
_NAME_PREFIXES: Final = (
    "van der",
    "van den",
    "van de",
    "van 't",
    "in 't",
    "in de",
    "in het",
    "op de",
    "op den",
    "uit de",
    "uit den",
    "van",
    "den",
    "der",
    "de",
    "het",
    "ter",
    "ten",
    "te",
    "'t",
)

# Status names are tenant data; the standard set is Concept, Sent, Overdue, Paid. Dutch
# names are accepted too, since tenants see the application in Dutch.
_STATUS_SEMANTICS: Final[Mapping[str, str]] = {
    "concept": "concept",
    "draft": "concept",
    "sent": "sent",
    "verzonden": "sent",
    "verstuurd": "sent",
    "open": "sent",
    "overdue": "overdue",
    "vervallen": "overdue",
    "verlopen": "overdue",
    "paid": "paid",
    "betaald": "paid",
}
_VENDOR_STATUS_FOR: Final[Mapping[InvoiceStatus, str]] = {
    "draft": "concept",
    "open": "sent",
    "sent": "sent",
    "partially_paid": "sent",
    "overdue": "overdue",
    "paid": "paid",
}
_EUR: Final = "EUR"

_T = TypeVar("_T")


# --------------------------------------------------------------------------- ids, time


def id_kind(external_id: object) -> str | None:
    """The type part of a Simplicate id (``"organization"`` for ``organization:ab12``)."""
    if not isinstance(external_id, str):
        return None
    match = _ID_RE.fullmatch(external_id)
    return match[1] if match else None


def parse_local_timestamp(value: object) -> dt.datetime | None:
    """A vendor timestamp as UTC; None when missing, zero or unreadable.

    An ambiguous wall-clock time (the repeated hour when summer time ends) is read as the
    earlier instant, which keeps a cursor built from it on the safe, early side.
    """
    if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value.strip()):
        return None
    try:
        naive = dt.datetime.strptime(value.strip().replace("T", " "), _LOCAL_FORMAT)  # noqa: DTZ007 - zone-less vendor text
    except ValueError:
        return None
    return naive.replace(tzinfo=LOCAL_ZONE, fold=0).astimezone(dt.UTC)


def format_local(moment: dt.datetime) -> str:
    """A UTC-aware instant as the vendor's zone-less Amsterdam wall-clock text."""
    if moment.tzinfo is None:
        raise ValueError("format_local needs a timezone-aware datetime")
    return moment.astimezone(LOCAL_ZONE).strftime(_LOCAL_FORMAT)


def local_lower_bound(moment: dt.datetime) -> str:
    """Wall-clock text ``S`` such that every instant at or after ``moment`` shows as >= ``S``.

    The vendor compares zone-less local text. Within the hour before summer time ends the
    clock jumps back, so a record changed later may show an earlier wall-clock time than
    ``moment``; taking the smaller of "now" and "an hour later, minus an hour" covers it.
    """
    here = moment.astimezone(LOCAL_ZONE).replace(tzinfo=None)
    later = (moment + dt.timedelta(hours=1)).astimezone(LOCAL_ZONE).replace(tzinfo=None)
    bound = min(here, later - dt.timedelta(hours=1))
    return bound.strftime(_LOCAL_FORMAT)


# --------------------------------------------------------------------------- field readers


def _usable_id(raw: Mapping[str, Any] | None) -> str | None:
    external_id = raw.get("id") if raw is not None else None
    if isinstance(external_id, str) and 0 < len(external_id) <= MAX_EXTERNAL_ID_LENGTH:
        return external_id
    return None


def _skip(reason: str, raw: Mapping[str, Any] | None = None) -> SkipRecord:
    return SkipRecord(reason, external_id=_usable_id(raw))


def _text(raw: Mapping[str, Any], key: str, what: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _skip(f"{what} {key} is a {type(value).__name__}, not text", raw)
    return value


def _object(raw: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any] | None:
    value = raw.get(key)
    if value is None or value == "" or value == []:
        return None
    if not isinstance(value, Mapping):
        raise _skip(f"{what} {key} is a {type(value).__name__}, not an object", raw)
    return value


def _flag(raw: Mapping[str, Any], key: str, what: str, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value in ("0", "1"):
        return value == "1"
    raise _skip(f"{what} {key} is {value!r}, not true or false", raw)


def _number(value: object, where: str, raw: Mapping[str, Any]) -> Decimal:
    """A vendor number (JSON number, or numeric text) as a finite Decimal."""
    number: Decimal | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, Decimal | int):
        number = Decimal(value)
    elif isinstance(value, float):
        # http.py parses fractions as Decimal; a float only comes from other callers, and
        # repr() is the shortest text that reads back as the number the vendor wrote.
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
        raise _skip(f"{where} is {shown}, not a number", raw)
    return number


def _date(value: object, where: str, raw: Mapping[str, Any]) -> dt.date | None:
    if value is None or value == "" or value == _ZERO_DATE:
        return None
    if isinstance(value, str) and _DATE_RE.fullmatch(value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:40] + "..."
    raise _skip(f"{where} is {shown}, not a date (YYYY-MM-DD)", raw)


def _guarded(what: str, raw: object, build: Callable[[Mapping[str, Any]], _T]) -> _T:
    """Run ``build`` on ``raw``; any failure becomes a SkipRecord with a reason."""
    if not isinstance(raw, Mapping):
        raise SkipRecord(f"{what} is a {type(raw).__name__}, not an object")
    try:
        return build(raw)
    except SkipRecord as exc:
        external_id = _usable_id(raw)
        if exc.external_id is None and external_id is not None:
            # Raised over a nested object (an address, a line): name the record itself.
            raise SkipRecord(exc.reason, external_id=external_id) from None
        raise
    except (KeyError, ValueError, TypeError, ArithmeticError, AttributeError) as exc:
        raise _skip(f"{what} cannot be mapped: {type(exc).__name__}: {exc}", raw) from None


def _required_id(raw: Mapping[str, Any], kinds: Collection[str], what: str) -> str:
    external_id = raw.get("id")
    if not isinstance(external_id, str) or not external_id:
        raise SkipRecord(f"{what} without an id")
    refuse_long_id(external_id, what)
    if id_kind(external_id) not in kinds:
        raise _skip(f"{what} id {external_id!r} is not a {' or '.join(sorted(kinds))} id", raw)
    return external_id


# --------------------------------------------------------------------------- names


def split_family_name(last_name: str) -> tuple[str | None, str]:
    """``"van der Berg"`` -> ``("van der", "Berg")``; no known prefix -> ``(None, last_name)``."""
    lowered = last_name.lower()
    for prefix in _NAME_PREFIXES:
        if lowered.startswith(prefix + " ") and len(last_name) > len(prefix) + 1:
            return last_name[: len(prefix)], last_name[len(prefix) + 1 :]
    return None, last_name


def join_name(*parts: str | None) -> str:
    """Non-empty parts joined by one space."""
    return " ".join(p for p in (clean_text(part) for part in parts) if p)


def _person_names(value: Contact) -> tuple[str | None, str | None, str]:
    """(first name, family-name prefix, family name) to write for a person."""
    first = clean_text(value.first_name)
    last = clean_text(value.last_name)
    if last is None:
        # Only a full name: everything after the first name is the family name.
        name = clean_text(value.name) or ""
        if first and name.casefold().startswith(first.casefold() + " "):
            last = name[len(first) + 1 :]
        elif first and name.casefold() == first.casefold():
            first, last = None, name
        elif first is None and " " in name:
            first, _, last = name.partition(" ")
        else:
            last = name
    prefix, family = split_family_name(last)
    return first, prefix, family


# --------------------------------------------------------------------------- contacts


def _address_of(raw: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    if kind == "organization":
        visiting = _object(raw, "visiting_address", "organization")
        if _flag(raw, "has_different_postal_address", "organization", False):
            postal = _object(raw, "postal_address", "organization")
            if postal is not None:
                return postal
        return visiting
    value = raw.get("address")
    if isinstance(value, list):
        # The swagger types a person's address as a list; take the first one there is.
        value = next((item for item in value if item), None)
    if value is None or value == "":
        return None
    if not isinstance(value, Mapping):
        raise _skip(f"person address is a {type(value).__name__}, not an object", raw)
    return value


def contact_to_canonical(raw: object) -> Contact:
    """An organization or person (GET shape) as a normalised canonical Contact."""
    return _guarded("Simplicate contact", raw, _contact)


def _contact(raw: Mapping[str, Any]) -> Contact:
    external_id = _required_id(raw, ("organization", "person"), "Simplicate contact")
    kind = "organization" if id_kind(external_id) == "organization" else "person"
    what = kind
    address = _address_of(raw, kind)
    addr: dict[str, str | None] = dict.fromkeys(
        ("line_1", "line_2", "postal_code", "locality", "province", "country")
    )
    if address is not None:
        for key in ("line_1", "line_2", "postal_code", "locality", "province"):
            addr[key] = _text(address, key, f"{what} address")
        addr["country"] = _text(address, "country_code", f"{what} address") or _text(
            address, "country", f"{what} address"
        )
    common: dict[str, Any] = {
        "email": _text(raw, "email", what),
        "phone": _text(raw, "phone", what),
        "address_line1": addr["line_1"],
        "address_line2": addr["line_2"],
        "postal_code": addr["postal_code"],
        "city": addr["locality"],
        "region": addr["province"],
        "country": addr["country"],
        "iban": _text(raw, "bank_account", what),
        "bic": _text(raw, "bank_bic", what),
        "customer_number": _text(raw, "relation_number", what),
        "archived": not _flag(raw, "is_active", what, True),
    }
    if kind == "organization":
        name = clean_text(_text(raw, "name", what))
        if not name:
            raise _skip("organization without a name", raw)
        contact = Contact(
            kind="organization",
            name=name,
            website=_text(raw, "url", what),
            vat_number=_text(raw, "vat_number", what),
            coc_number=_text(raw, "coc_code", what),
            **common,
        )
    else:
        first = _text(raw, "first_name", what)
        last = join_name(_text(raw, "family_name_prefix", what), _text(raw, "family_name", what))
        name = join_name(first, last) or clean_text(_text(raw, "full_name", what)) or ""
        if not name:
            raise _skip("person without a name", raw)
        contact = Contact(
            kind="person",
            name=name,
            first_name=first,
            last_name=last or None,
            website=_text(raw, "website_url", what),
            **common,
        )
    return storable_value(contact, external_id)


def _put_text(body: dict[str, Any], key: str, value: str | None, partial: bool) -> None:
    # A partial update clears a field with "" (the vendor leaves out what is not sent);
    # a create leaves empty fields out.
    if value is not None:
        body[key] = value
    elif partial:
        body[key] = ""


def contact_from_canonical(
    value: Contact,
    fields: Collection[str] | None = None,
    *,
    address_key: str | None = None,
) -> dict[str, Any]:
    """The POST body (``fields`` None) or partial PUT body for a contact.

    ``address_key`` names the address object to write: by default ``visiting_address`` for
    an organization and ``address`` for a person; pass ``postal_address`` for an
    organization whose listed address is its different postal address.
    """
    value = normalise_contact(value)
    wanted = frozenset(fields) if fields is not None else None
    partial = wanted is not None

    def asked(*names: str) -> bool:
        return wanted is None or any(n in wanted for n in names)

    body: dict[str, Any] = {}
    if value.kind == "organization":
        if asked("name"):
            body["name"] = value.name
        for key, field in (
            ("url", "website"),
            ("vat_number", "vat_number"),
            ("coc_code", "coc_number"),
        ):
            if asked(field):
                _put_text(body, key, getattr(value, field), partial)
    else:
        if asked(*_NAME_FIELDS):
            first, prefix, family = _person_names(value)
            _put_text(body, "first_name", first, partial)
            _put_text(body, "family_name_prefix", prefix, partial)
            body["family_name"] = family
        if asked("website"):
            _put_text(body, "website_url", value.website, partial)
    for key, field in (
        ("email", "email"),
        ("phone", "phone"),
        ("bank_account", "iban"),
        ("bank_bic", "bic"),
        ("relation_number", "customer_number"),
    ):
        if asked(field):
            _put_text(body, key, getattr(value, field), partial)
    if asked("archived"):
        body["is_active"] = not value.archived
    if asked(*ADDRESS_FIELDS):
        address = _address_body(value, partial)
        if address is not None:
            default_key = "visiting_address" if value.kind == "organization" else "address"
            body[address_key or default_key] = address
    return body


def _address_body(value: Contact, partial: bool) -> dict[str, Any] | None:
    parts = {
        "line_1": value.address_line1,
        "line_2": value.address_line2,
        "postal_code": value.postal_code,
        "locality": value.city,
        "province": value.region,
    }
    country = value.country if value.country and re.fullmatch(r"[A-Z]{2}", value.country) else None
    if not partial and country is None and not any(parts.values()):
        return None
    address: dict[str, Any] = {}
    for key, text in parts.items():
        _put_text(address, key, text, True)
    if country is not None:
        address["country_code"] = country
    return address


# --------------------------------------------------------------------------- invoices


@dataclass(frozen=True, slots=True)
class VatClass:
    """One of the tenant's VAT classes."""

    id: str
    percentage: Decimal
    label: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentTerm:
    """One of the tenant's payment terms."""

    id: str
    days: int


@dataclass(frozen=True, slots=True)
class InvoiceLookups:
    """The tenant data an invoice body refers to by id (fetched once per adapter)."""

    vat_classes: tuple[VatClass, ...] = ()
    statuses: Mapping[str, str] | None = None  # semantic ("concept", "sent", ...) -> status id
    payment_terms: tuple[PaymentTerm, ...] = ()
    profile_id: str | None = None  # my_organization_profile_id

    def vat_class_id(self, rate: Decimal) -> str | None:
        """The first VAT class with exactly this percentage."""
        wanted = vat_rate(rate)
        for vat in self.vat_classes:
            if vat_rate(vat.percentage) == wanted:
                return vat.id
        return None

    def payment_term(self, days: int) -> PaymentTerm | None:
        """The term of exactly ``days`` days, else the closest one (the shorter on a tie)."""
        if not self.payment_terms:
            return None
        return min(self.payment_terms, key=lambda t: (abs(t.days - days), t.days))


def invoice_lookups(
    vat_classes: Iterable[object],
    statuses: Iterable[object],
    payment_terms: Iterable[object],
    profiles: Iterable[object],
) -> InvoiceLookups:
    """Lookups from the vendor's list endpoints; unusable rows are left out."""
    vats: list[VatClass] = []
    for row in vat_classes:
        if isinstance(row, Mapping) and isinstance(row.get("id"), str):
            try:
                percentage = _number(row.get("percentage"), "VAT class percentage", row)
            except SkipRecord:
                continue
            label = row.get("label")
            vats.append(VatClass(row["id"], percentage, label if isinstance(label, str) else None))
    status_ids: dict[str, str] = {}
    for row in statuses:
        if isinstance(row, Mapping) and isinstance(row.get("id"), str):
            name = row.get("name")
            semantic = (
                _STATUS_SEMANTICS.get(name.strip().casefold()) if isinstance(name, str) else None
            )
            if semantic is not None:
                status_ids.setdefault(semantic, row["id"])
    terms: list[PaymentTerm] = []
    for row in payment_terms:
        if isinstance(row, Mapping) and isinstance(row.get("id"), str):
            days = row.get("days")
            if isinstance(days, int) and not isinstance(days, bool) and days >= 0:
                terms.append(PaymentTerm(row["id"], days))
    profile_id = next(
        (
            row["id"]
            for row in profiles
            if isinstance(row, Mapping)
            and isinstance(row.get("id"), str)
            and not row.get("blocked")
        ),
        None,
    )
    return InvoiceLookups(tuple(vats), status_ids, tuple(terms), profile_id)


def _status(raw: Mapping[str, Any], outstanding: Decimal, total: Decimal) -> InvoiceStatus:
    value = raw.get("status")
    name = value.get("name") if isinstance(value, Mapping) else value
    if not isinstance(name, str) or not name.strip():
        raise _skip("invoice without a status name", raw)
    semantic = _STATUS_SEMANTICS.get(name.strip().casefold())
    if semantic is None:
        raise _skip(f"invoice status {name!r} is not one syncd knows", raw)
    if semantic == "concept":
        return "draft"
    if semantic == "overdue":
        return "overdue"
    if semantic == "paid":
        return "paid"
    if total > 0 and 0 < outstanding < total:
        return "partially_paid"
    return "sent"


def _line(raw: Mapping[str, Any], item: object, n: int) -> InvoiceLine:
    where = f"invoice line {n}"
    if not isinstance(item, Mapping):
        raise _skip(f"{where} is a {type(item).__name__}, not an object", raw)
    if item.get("amount") is None:
        raise _skip(f"{where} has no amount (quantity)", raw)
    if item.get("price") is None:
        raise _skip(f"{where} has no price", raw)
    vat = item.get("vat_class")
    if not isinstance(vat, Mapping) or vat.get("percentage") is None:
        raise _skip(f"{where} has no VAT class percentage", raw)
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        raise _skip(f"{where} description is a {type(description).__name__}, not text", raw)
    return InvoiceLine(
        description=description or "",
        quantity=_number(item["amount"], f"{where} amount", raw),
        unit_price=_number(item["price"], f"{where} price", raw),
        vat_rate=_number(vat["percentage"], f"{where} VAT percentage", raw),
    )


def _debtor(raw: Mapping[str, Any]) -> str | None:
    for key, nested, kind in (
        ("organization_id", "organization", "organization"),
        ("person_id", "person", "person"),
    ):
        value = raw.get(key)
        if not value:
            inner = raw.get(nested)
            value = inner.get("id") if isinstance(inner, Mapping) else None
        if value:
            if not isinstance(value, str) or id_kind(value) != kind:
                raise _skip(f"invoice {key} {value!r} is not a {kind} id", raw)
            return value
    return None


def invoice_to_canonical(raw: object) -> Invoice:
    """An invoice (GET shape) as a normalised canonical Invoice."""
    return _guarded("Simplicate invoice", raw, _invoice)


def _invoice(raw: Mapping[str, Any]) -> Invoice:
    _required_id(raw, ("invoice",), "Simplicate invoice")
    contact = _debtor(raw)
    if contact is None:
        raise _skip("invoice without an organization or person", raw)
    issue = _date(raw.get("date"), "invoice date", raw)
    due: dt.date | None = None
    term = _object(raw, "payment_term", "invoice")
    if issue is not None and term is not None and term.get("days") is not None:
        days = _number(term["days"], "invoice payment term days", raw)
        if days != days.to_integral_value() or not 0 <= days <= 3650:
            raise _skip(f"invoice payment term days {term['days']!r} is not a whole day count", raw)
        due = issue + dt.timedelta(days=int(days))
    lines_raw = raw.get("invoice_lines")
    if lines_raw is None:
        lines_raw = []
    if not isinstance(lines_raw, list):
        raise _skip(f"invoice_lines is a {type(lines_raw).__name__}, not a list", raw)
    lines = tuple(_line(raw, item, n) for n, item in enumerate(lines_raw, start=1))

    def amount(key: str) -> Decimal:
        value = raw.get(key)
        return Decimal(0) if value is None else _number(value, f"invoice {key}", raw)

    subtotal = amount("total_excluding_vat")
    tax_total = amount("total_vat")
    total = raw.get("total_including_vat")
    total_incl = subtotal + tax_total if total is None else amount("total_including_vat")
    outstanding_raw = raw.get("total_outstanding")
    outstanding = total_incl if outstanding_raw is None else amount("total_outstanding")
    number = _text(raw, "invoice_number", "invoice")
    status = _status(raw, outstanding, total_incl)
    # Amounts are rounded to cents by normalisation, after their range is checked.
    return storable_value(
        Invoice(
            number=number,
            contact=contact,
            issue_date=issue,
            due_date=due,
            currency=_EUR,
            status=status,
            lines=lines,
            subtotal=subtotal,
            tax_total=tax_total,
            total=total_incl,
            amount_paid=total_incl - outstanding,
            reference=_text(raw, "reference", "invoice"),
        )
    )


# Canonical invoice fields a PUT can change (the swagger's Invoice schema: header only).
INVOICE_UPDATABLE: Final = frozenset({"contact", "issue_date", "reference"})


def invoice_from_canonical(
    value: Invoice, lookups: InvoiceLookups, fields: Collection[str] | None = None
) -> dict[str, Any]:
    """The POST body (``fields`` None) or the header-only PUT body for an invoice."""
    value = normalise_invoice(value)
    if value.currency != _EUR:
        raise SkipRecord(f"Simplicate invoices are in EUR only; this one is in {value.currency}")
    wanted = frozenset(fields) if fields is not None else None

    def asked(name: str) -> bool:
        return wanted is None or name in wanted

    body: dict[str, Any] = {}
    if asked("contact"):
        kind = id_kind(value.contact)
        if kind not in ("organization", "person"):
            raise SkipRecord(
                f"invoice contact {value.contact!r} is not a Simplicate organization or person id"
            )
        body["organization_id" if kind == "organization" else "person_id"] = value.contact
        if wanted is not None:
            body["person_id" if kind == "organization" else "organization_id"] = None
    if asked("issue_date") and value.issue_date is not None:
        body["date"] = value.issue_date.isoformat()
    if asked("reference"):
        _put_text(body, "reference", value.reference, wanted is not None)
    if wanted is not None:
        return body
    # Create only: status, payment term, profile and lines.
    statuses = lookups.statuses or {}
    semantic = _VENDOR_STATUS_FOR.get(value.status)
    if semantic is None:
        raise SkipRecord(f"Simplicate has no invoice status for {value.status!r}")
    status_id = statuses.get(semantic)
    if status_id is None:
        raise SkipRecord(f"Simplicate tenant has no {semantic!r} invoice status")
    body["status_id"] = status_id
    if value.issue_date is not None and value.due_date is not None:
        term = lookups.payment_term((value.due_date - value.issue_date).days)
        if term is not None:
            body["payment_term_id"] = term.id
    if lookups.profile_id is not None:
        body["my_organization_profile_id"] = lookups.profile_id
    lines: list[dict[str, Any]] = []
    for n, line in enumerate(value.lines, start=1):
        vat_id = lookups.vat_class_id(line.vat_rate)
        if vat_id is None:
            raise SkipRecord(f"invoice line {n}: Simplicate has no VAT class for {line.vat_rate} %")
        lines.append(
            {
                "description": line.description,
                "amount": quantity(line.quantity),
                "price": money(line.unit_price),
                "vat_class_id": vat_id,
            }
        )
    body["invoice_lines"] = lines
    return body


# --------------------------------------------------------------------------- payments


def payment_to_canonical(raw: object) -> Payment:
    """A payment (GET shape) as a normalised canonical Payment."""
    return _guarded("Simplicate payment", raw, _payment)


def _payment(raw: Mapping[str, Any]) -> Payment:
    _required_id(raw, ("payment",), "Simplicate payment")
    invoice = raw.get("invoice_id")
    if not isinstance(invoice, str) or id_kind(invoice) != "invoice":
        raise _skip(f"payment invoice_id {invoice!r} is not an invoice id", raw)
    date = _date(raw.get("date"), "payment date", raw)
    if date is None:
        raise _skip("payment without a date", raw)
    if raw.get("amount") is None:
        raise _skip("payment without an amount", raw)
    return storable_value(
        Payment(
            invoice=invoice,
            date=date,
            amount=_number(raw["amount"], "payment amount", raw),
            reference=_text(raw, "description", "payment"),
        )
    )


def payment_from_canonical(value: Payment, fields: Collection[str] | None = None) -> dict[str, Any]:
    """The POST body (``fields`` None) or partial PUT body for a payment."""
    value = normalise_payment(value)
    wanted = frozenset(fields) if fields is not None else None
    body: dict[str, Any] = {}
    if wanted is None or "invoice" in wanted:
        if id_kind(value.invoice) != "invoice":
            raise SkipRecord(f"payment invoice {value.invoice!r} is not a Simplicate invoice id")
        body["invoice_id"] = value.invoice
    if wanted is None or "date" in wanted:
        body["date"] = value.date.isoformat()
    if wanted is None or "amount" in wanted:
        body["amount"] = value.amount
    if wanted is None or "reference" in wanted:
        _put_text(body, "description", value.reference, wanted is not None)
    return body


# --------------------------------------------------------------------------- dispatch


def to_canonical(raw: object) -> Contact | Invoice | Payment:
    """Any mapped record, chosen by the type in its id."""
    kind = id_kind(raw.get("id")) if isinstance(raw, Mapping) else None
    if kind in ("organization", "person"):
        return contact_to_canonical(raw)
    if kind == "invoice":
        return invoice_to_canonical(raw)
    if kind == "payment":
        return payment_to_canonical(raw)
    if isinstance(raw, Mapping):
        external_id = raw.get("id")
        raise SkipRecord(
            f"Simplicate record id {external_id!r} is not a contact, invoice or payment id",
            external_id=external_id if isinstance(external_id, str) else None,
        )
    raise SkipRecord(f"Simplicate record is a {type(raw).__name__}, not an object")


def from_canonical(
    value: Contact | Invoice | Payment,
    *,
    lookups: InvoiceLookups | None = None,
    fields: Collection[str] | None = None,
) -> dict[str, Any]:
    """The write body for any canonical value (invoices need ``lookups``)."""
    value = normalise(value)
    if isinstance(value, Contact):
        return contact_from_canonical(value, fields)
    if isinstance(value, Invoice):
        return invoice_from_canonical(value, lookups or InvoiceLookups(), fields)
    return payment_from_canonical(value, fields)
