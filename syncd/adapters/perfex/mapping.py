"""Perfex CRM ``/api/v1`` JSON <-> canonical values (pure: no I/O, no clock).

Perfex sends every scalar as a string (``"1"``, ``"12.50"``, ``"2026-03-01"``) or null. The
``*_to_canonical`` functions turn a vendor row into a normalised canonical value and raise
``SkipRecord`` for anything they cannot map; the ``*_from_canonical`` functions build the JSON
write bodies. Reading what a write body stored gives back ``normalise(value)`` for every
field Perfex can hold.

How the canonical contact is spread over Perfex:

- A canonical contact is a Perfex *customer* (``tblclients``) plus its *primary contact*
  (``tblcontacts`` with ``is_primary = "1"``), which carries the e-mail address and the names.
  Customers have no e-mail column of their own.
- The phone number is the customer's ``phonenumber`` (the company's line, the vendor
  reference's mapping); the primary contact's number stands in only when the customer has
  none. A new primary contact gets the number too; updates write the customer's only, so a
  person's own number on the contact is never overwritten.
- A primary contact needs a first name, a last name and an e-mail address. A contact that has
  an e-mail address but no person's name is filed the way Perfex admins file a shared mailbox:
  first name = the mailbox name (``info@`` -> ``Info``), last name = the company name. Reading
  a primary contact whose last name equals the company name therefore yields no names.
- ``kind`` is ``person`` when the company name is the primary contact's "first last" (or when
  the customer has no company name at all), ``organization`` otherwise.
- The address is read from the billing address when any billing field is filled in (it is what
  Perfex prints on invoices), else from the customer address; writes fill in both. Street lines
  are one text field: ``address_line2`` follows ``address_line1`` after a newline.
- ``archived`` is ``active = "0"``. Chamber-of-commerce number, IBAN, BIC and customer number
  have no Perfex column and are not held.

Invoices: the display number is ``prefix`` + the number zero-padded to the company's padding
(a setting the API does not expose, so the adapter is told it), in the layout of
``number_format``; drafts carry a placeholder number and map to ``None``. Status codes
``1 unpaid (sent -> "sent", else "open"), 2 paid, 3 partially paid, 4 overdue, 5 cancelled,
6 draft``. Lines carry ``qty``, ``rate`` and their taxes (``taxname``/``taxrate``); several
taxes on one line add up to one VAT rate. Invoice-level discounts and adjustments have no
canonical equivalent: such invoices are skipped with a reason rather than mis-stated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from syncd.adapters.base import storable_value
from syncd.core.model import (
    ZERO,
    Contact,
    ContactKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    clean_text,
    normalise,
    vat_rate,
)
from syncd.errors import SkipRecord

__all__ = [
    "CUSTOMER_KEYS_BY_FIELD",
    "DRAFT_NUMBER",
    "PRIMARY_KEYS_BY_FIELD",
    "TOKEN_PREFIX",
    "ContactWrite",
    "Countries",
    "Currencies",
    "PaymentModes",
    "Taxes",
    "UnknownLookup",
    "contact_from_canonical",
    "contact_to_canonical",
    "customer_id",
    "format_invoice_number",
    "invoice_from_canonical",
    "invoice_has_token",
    "invoice_id",
    "invoice_item_ids",
    "invoice_number_value",
    "invoice_to_canonical",
    "invoice_update_body",
    "payment_from_canonical",
    "payment_has_token",
    "payment_id",
    "payment_to_canonical",
    "primary_contact",
    "token_note",
    "wants_cancel",
]

DRAFT_NUMBER: Final = "1000000000"  # Perfex's placeholder number for drafts
TOKEN_PREFIX: Final = "syncd:"  # noqa: S105 - marks a client token in a note field
DEFAULT_NUMBER_PADDING: Final = 6

_STATUS_READ: Final[Mapping[str, InvoiceStatus]] = {
    "1": "open",
    "2": "paid",
    "3": "partially_paid",
    "4": "overdue",
    "5": "cancelled",
    "6": "draft",
}
STATUS_UNPAID, STATUS_CANCELLED, STATUS_DRAFT = "1", "5", "6"
_DIGIT_RUN: Final = re.compile(r"[0-9]+")
_ID: Final = re.compile(r"[0-9]{1,18}")
_DIGITS: Final = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes "²"
_LIMIT: Final = Decimal(10) ** 15  # DECIMAL(15,2) columns hold less than this
_QTY_PLACES: Final = 2  # tblitemable.qty is DECIMAL(15,2)


class UnknownLookup(SkipRecord):
    """A value needs a Perfex setting (tax, currency) this install does not have."""


# --------------------------------------------------------------------------- scalars


def _skip(reason: str, external_id: str | None = None) -> SkipRecord:
    return SkipRecord(reason, external_id=external_id)


def _text(row: Mapping[str, Any], key: str) -> str | None:
    """A text column: strings as they are, numbers as digits, null as None."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _skip(f"{key} is a boolean, not text")
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    raise _skip(f"{key} is a {type(value).__name__}, not text")


def _id(row: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    """A numeric id column as a string; "0", "" and null are "none"."""
    value = row.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None or value in ("", "0"):
        if required:
            raise _skip(f"{key} is missing")
        return None
    if not isinstance(value, str) or _ID.fullmatch(value.strip()) is None:
        raise _skip(f"{key} {value!r} is not a numeric id")
    return str(int(value))


def _decimal(row: Mapping[str, Any], key: str, *, default: Decimal | None = None) -> Decimal:
    value = row.get(key)
    if value is None or value == "":
        if default is not None:
            return default
        raise _skip(f"{key} is missing")
    return _number(value, key)


def _number(value: object, what: str) -> Decimal:
    if isinstance(value, bool):
        raise _skip(f"{what} is a boolean, not a number")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise _skip(f"{what} {value[:40]!r} is not a number") from None
    else:
        raise _skip(f"{what} is a {type(value).__name__}, not a number")
    if not number.is_finite():
        raise _skip(f"{what} {value!r} is not a finite number")
    exponent = number.as_tuple().exponent
    if abs(number) >= _LIMIT or (isinstance(exponent, int) and exponent < -8):
        raise _skip(f"{what} {value!r} is out of the range Perfex stores")
    return number


def _date(row: Mapping[str, Any], key: str, *, required: bool) -> dt.date | None:
    value = row.get(key)
    if value is None or value in ("", "0000-00-00"):
        if required:
            raise _skip(f"{key} is missing")
        return None
    if not isinstance(value, str):
        raise _skip(f"{key} is a {type(value).__name__}, not a date")
    text = value.strip()
    # A DATETIME column rendered where a DATE was expected keeps its date part.
    if len(text) > 10 and text[10] in " T":
        text = text[:10]
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _skip(f"{key} {value[:40]!r} is not a date (YYYY-MM-DD)") from None


def _required_date(row: Mapping[str, Any], key: str) -> dt.date:
    value = _date(row, key, required=True)
    assert value is not None  # required=True raises instead of returning None
    return value


def _one_of(value: object, *wanted: object) -> bool:
    """``value in wanted``, where a NaN (a signalling one raises on comparison) is nothing."""
    if isinstance(value, Decimal) and value.is_nan():
        return False
    return value in wanted


def _flag(row: Mapping[str, Any], key: str, *, default: bool) -> bool:
    value = row.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if _one_of(value, "1", 1):
        return True
    if _one_of(value, "0", 0):
        return False
    raise _skip(f"{key} {value!r} is not 0 or 1")


def _same(a: str | None, b: str | None) -> bool:
    """Equal as people read them: normalised whitespace, case-insensitive."""
    left, right = clean_text(a), clean_text(b)
    return left is not None and right is not None and left.casefold() == right.casefold()


def _row(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _skip(f"{what} is a {type(value).__name__}, not an object")
    return value


def _money_text(value: Decimal) -> str:
    return f"{value:.2f}"


def token_note(client_token: str) -> str:
    """The text written into a note field to carry ``client_token``."""
    return f"{TOKEN_PREFIX}{client_token}"


def _holds_token(note: object, client_token: str) -> bool:
    return isinstance(note, str) and token_note(client_token) in note


# --------------------------------------------------------------------------- lookups


@dataclass(frozen=True, slots=True)
class Countries:
    """Perfex country ids <-> ISO-3166 alpha-2 (``GET /countries``)."""

    by_id: Mapping[str, str] = field(default_factory=dict)

    @property
    def by_iso(self) -> dict[str, str]:
        return {iso: country_id for country_id, iso in self.by_id.items()}

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> Countries:
        by_id: dict[str, str] = {}
        for row in rows:
            if isinstance(row, Mapping):
                country_id, iso = row.get("country_id", row.get("id")), row.get("iso2")
                if isinstance(country_id, str | int) and isinstance(iso, str) and len(iso) == 2:
                    by_id[str(country_id)] = iso.upper()
        return cls(by_id)


@dataclass(frozen=True, slots=True)
class Currencies:
    """Perfex currency ids <-> ISO-4217 codes (``GET /currencies``; ``name`` is the code)."""

    by_id: Mapping[str, str] = field(default_factory=dict)

    @property
    def by_iso(self) -> dict[str, str]:
        return {code: currency_id for currency_id, code in self.by_id.items()}

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> Currencies:
        by_id: dict[str, str] = {}
        for row in rows:
            if isinstance(row, Mapping):
                currency_id, code = row.get("id"), row.get("name")
                if isinstance(currency_id, str | int) and isinstance(code, str) and code.strip():
                    by_id[str(currency_id)] = code.strip().upper()
        return cls(by_id)


@dataclass(frozen=True, slots=True)
class Taxes:
    """The taxes set up in Perfex (``GET /taxes``): a VAT rate -> the tax's name."""

    by_rate: Mapping[Decimal, str] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> Taxes:
        by_rate: dict[Decimal, str] = {}
        for row in rows:
            if not isinstance(row, Mapping):
                continue
            name, raw_rate = row.get("name"), row.get("taxrate", row.get("rate"))
            try:
                rate = _number(raw_rate, "taxrate")
            except SkipRecord:
                continue
            if isinstance(name, str) and name.strip():
                # The first tax with a rate wins, as it is listed first in Perfex's picker.
                by_rate.setdefault(vat_rate(rate), name.strip())
        return cls(by_rate)


@dataclass(frozen=True, slots=True)
class PaymentModes:
    """Perfex payment modes (``GET /payment-modes``): id -> name, and the default mode."""

    by_id: Mapping[str, str] = field(default_factory=dict)
    default_id: str | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[object]) -> PaymentModes:
        by_id: dict[str, str] = {}
        default_id: str | None = None
        for row in rows:
            if not isinstance(row, Mapping):
                continue
            mode_id, name = row.get("id"), row.get("name")
            if not isinstance(mode_id, str | int) or not isinstance(name, str):
                continue
            by_id[str(mode_id)] = name
            if default_id is None and _one_of(row.get("selected_by_default"), "1", 1):
                default_id = str(mode_id)
        if default_id is None and by_id:
            default_id = next(iter(by_id))
        return cls(by_id, default_id)

    def id_for(self, method: str | None) -> str | None:
        """The mode id for a canonical method (a mode name or id), else the default mode."""
        if method is not None:
            for mode_id, name in self.by_id.items():
                if _same(name, method) or method == mode_id:
                    return mode_id
        return self.default_id


# --------------------------------------------------------------------------- ids


def customer_id(row: object) -> str:
    """The external id of a customer row (``userid``)."""
    value = _id(_row(row, "customer"), "userid")
    assert value is not None
    return value


def invoice_id(row: object) -> str:
    """The external id of an invoice row."""
    value = _id(_row(row, "invoice"), "id")
    assert value is not None
    return value


def payment_id(row: object) -> str:
    """The external id of a payment row (``paymentid`` where modes are joined in, else ``id``)."""
    data = _row(row, "payment")
    value = _id(data, "paymentid" if data.get("paymentid") not in (None, "") else "id")
    assert value is not None
    return value


def primary_contact(rows: Iterable[object], customer: str) -> Mapping[str, Any] | None:
    """The primary contact of ``customer`` among contact rows (other rows are ignored)."""
    for row in rows:
        if (
            isinstance(row, Mapping)
            and str(row.get("userid")) == customer
            and _one_of(row.get("is_primary"), "1", 1, True)
        ):
            return row
    return None


# --------------------------------------------------------------------------- contacts


_BILLING: Final = ("billing_street", "billing_city", "billing_zip", "billing_state")
_PLAIN: Final = ("address", "city", "zip", "state")


def _split_street(street: str | None) -> tuple[str | None, str | None]:
    if street is None:
        return None, None
    first, _, rest = street.replace("\r\n", "\n").partition("\n")
    return clean_text(first), clean_text(rest)


def _placeholder_first_name(email: str) -> str:
    mailbox = email.partition("@")[0].strip()
    return mailbox[:1].upper() + mailbox[1:] if mailbox else "Contact"


def contact_to_canonical(customer: object, primary: object | None, countries: Countries) -> Contact:
    """A customer row and its primary contact row (or None) as a canonical Contact."""
    row = _row(customer, "customer")
    external_id = customer_id(row)
    try:
        contact_row = None if primary is None else _row(primary, "primary contact")
        company = clean_text(_text(row, "company"))
        email = first = last = contact_phone = None
        if contact_row is not None:
            email = clean_text(_text(contact_row, "email"))
            first = clean_text(_text(contact_row, "firstname"))
            last = clean_text(_text(contact_row, "lastname"))
            contact_phone = clean_text(_text(contact_row, "phonenumber"))
            if last is not None and _same(last, company):
                first = last = None  # a shared mailbox filed under the company's name
        named = first is not None and last is not None
        kind: ContactKind
        if company is None:
            if first is None and last is None:
                raise _skip("customer has neither a company name nor a named primary contact")
            name = " ".join(part for part in (first, last) if part)
            kind = "person"
        else:
            name = company
            kind = "person" if named and _same(f"{first} {last}", company) else "organization"
        billing = any(clean_text(_text(row, key)) for key in _BILLING)
        street_key, city_key, zip_key, state_key = _BILLING if billing else _PLAIN
        line1, line2 = _split_street(_text(row, street_key))
        country_id = _id(row, "billing_country" if billing else "country", required=False)
        if billing and country_id is None:
            country_id = _id(row, "country", required=False)
        value = Contact(
            kind=kind,
            name=name,
            first_name=first,
            last_name=last,
            email=email,
            # The customer's own number (the company's line, what the customer page shows
            # and the vendor reference maps); the primary contact's only when it has none.
            phone=clean_text(_text(row, "phonenumber")) or contact_phone,
            website=_text(row, "website"),
            address_line1=line1,
            address_line2=line2,
            postal_code=_text(row, zip_key),
            city=_text(row, city_key),
            region=_text(row, state_key),
            country=None if country_id is None else countries.by_id.get(country_id),
            vat_number=_text(row, "vat"),
            archived=not _flag(row, "active", default=True),
        )
        return storable_value(value, external_id)
    except SkipRecord as exc:
        raise _skip(f"customer {external_id}: {exc.reason}", external_id) from None


@dataclass(frozen=True, slots=True)
class ContactWrite:
    """What a canonical contact writes: the customer body and the primary contact's fields."""

    customer: dict[str, Any]
    # firstname, lastname, email, phonenumber; None when there is no e-mail address (a Perfex
    # contact cannot exist without one).
    primary: dict[str, str] | None


def _contact_names(contact: Contact) -> tuple[str, str]:
    assert contact.email is not None
    if contact.first_name and contact.last_name:
        return contact.first_name, contact.last_name
    if contact.kind == "person":
        first, _, last = contact.name.partition(" ")
        if first and last:
            return first, last
    return _placeholder_first_name(contact.email), contact.name


def contact_from_canonical(contact: Contact, countries: Countries) -> ContactWrite:
    """The Perfex write of a canonical contact (customer body + primary contact fields)."""
    value = normalise(contact)
    street = value.address_line1 or ""
    if value.address_line2:
        street = f"{street}\n{value.address_line2}"
    # A country Perfex does not list is left empty rather than refused: the contact still syncs.
    country_id = countries.by_iso.get(value.country or "", "0")
    customer: dict[str, Any] = {
        "company": value.name,
        "vat": value.vat_number or "",
        "phonenumber": value.phone or "",
        "website": value.website or "",
        "address": street,
        "city": value.city or "",
        "zip": value.postal_code or "",
        "state": value.region or "",
        "country": country_id,
        "billing_street": street,
        "billing_city": value.city or "",
        "billing_zip": value.postal_code or "",
        "billing_state": value.region or "",
        "billing_country": country_id,
        "active": "0" if value.archived else "1",
    }
    primary: dict[str, str] | None = None
    if value.email:
        first, last = _contact_names(value)
        primary = {
            "firstname": first,
            "lastname": last,
            "email": value.email,
            "phonenumber": value.phone or "",
        }
    return ContactWrite(customer=customer, primary=primary)


# Which vendor keys a canonical contact field writes (for field-by-field updates).
CUSTOMER_KEYS_BY_FIELD: Final[Mapping[str, tuple[str, ...]]] = {
    "name": ("company",),
    "vat_number": ("vat",),
    "phone": ("phonenumber",),
    "website": ("website",),
    "archived": ("active",),
    # The address is one group: writing part of it would make the billing address (read
    # first) disagree with the customer address.
    **dict.fromkeys(
        ("address_line1", "address_line2", "postal_code", "city", "region", "country"),
        ("address", "city", "zip", "state", "country", *_BILLING, "billing_country"),
    ),
}
PRIMARY_KEYS_BY_FIELD: Final[Mapping[str, tuple[str, ...]]] = {
    "email": ("firstname", "lastname", "email"),
    "first_name": ("firstname", "lastname"),
    "last_name": ("firstname", "lastname"),
    "name": ("firstname", "lastname"),  # a placeholder last name is the company name
    "kind": ("firstname", "lastname"),
    # Not "phone": it is the customer's number; a person's own number on the primary
    # contact is left alone once the contact exists.
}


# --------------------------------------------------------------------------- invoices


def format_invoice_number(
    prefix: str, number: str, number_format: str | None, issue_date: dt.date | None, padding: int
) -> str:
    """The number as Perfex prints it (``format_invoice_number``)."""
    padded = number.zfill(padding)
    if number_format == "2" and issue_date is not None:
        return f"{prefix}{issue_date.year}/{padded}"
    if number_format == "3" and issue_date is not None:
        return f"{prefix}{padded}-{issue_date:%y}"
    if number_format == "4" and issue_date is not None:
        return f"{prefix}{padded}-{issue_date:%m}-{issue_date.year}"
    return f"{prefix}{padded}"


def invoice_number_value(number: str | None) -> int | None:
    """The integer Perfex stores for a canonical number: its last run of digits."""
    if not number:
        return None
    runs = _DIGIT_RUN.findall(number)
    if not runs:
        return None
    value = int(runs[-1])
    return value if 0 < value < int(DRAFT_NUMBER) else None


def _item_taxes(item: Mapping[str, Any], where: str) -> Decimal:
    """The summed tax rate of one item (``taxrate`` list, else ``"NAME|RATE"`` in ``taxname``)."""
    rates = item.get("taxrate")
    names = item.get("taxname")
    total = Decimal(0)
    if isinstance(rates, str | int | Decimal) and not isinstance(rates, bool):
        rates = [rates]
    if isinstance(rates, list):
        for rate in rates:
            total += _number(rate, f"{where} taxrate")
        return total
    if rates not in (None, ""):
        raise _skip(f"{where} taxrate is a {type(rates).__name__}, not a list")
    if isinstance(names, str):
        names = [names]
    if isinstance(names, list):
        for entry in names:
            if isinstance(entry, str) and "|" in entry:
                total += _number(entry.rpartition("|")[2], f"{where} taxname")
    return total


def _line(item: object, index: int) -> tuple[tuple[int, int], InvoiceLine]:
    where = f"item {index + 1}"
    row = _row(item, where)
    description = clean_text(_text(row, "description"))
    long_description = clean_text(_text(row, "long_description"))
    text = "\n".join(part for part in (description, long_description) if part)
    if not text:
        raise _skip(f"{where} has no description")
    order_text = _text(row, "item_order") or _text(row, "order")
    order = int(order_text) if order_text and _DIGITS.fullmatch(order_text.strip()) else index + 1
    line = InvoiceLine(
        description=text,
        quantity=_decimal(row, "qty", default=Decimal(1)),
        unit_price=_decimal(row, "rate"),
        vat_rate=_item_taxes(row, where),
    )
    return (order, index), line


def invoice_item_ids(row: Mapping[str, Any]) -> list[str]:
    """The ids of a detail row's items, in the order of the canonical lines."""
    items = row.get("items")
    if not isinstance(items, list):
        return []
    ordered: list[tuple[tuple[int, int], str]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        item_ref = item.get("id")
        order_text = item.get("item_order", item.get("order"))
        order = int(order_text) if _DIGITS.fullmatch(str(order_text).strip()) else index + 1
        if isinstance(item_ref, str | int) and not isinstance(item_ref, bool):
            ordered.append(((order, index), str(item_ref)))
    return [ref for _, ref in sorted(ordered)]


def _amount_paid(row: Mapping[str, Any], total: Decimal) -> Decimal:
    payments = row.get("payments")
    if isinstance(payments, list):
        paid = Decimal(0)
        for index, payment in enumerate(payments):
            paid += _decimal(_row(payment, f"payment {index + 1}"), "amount")
        return paid
    if row.get("total_left_to_pay") not in (None, ""):
        return max(Decimal(0), total - _decimal(row, "total_left_to_pay"))
    return ZERO


def invoice_to_canonical(
    row: object, currencies: Currencies, *, number_padding: int = DEFAULT_NUMBER_PADDING
) -> Invoice:
    """An invoice *detail* row (with ``items``) as a canonical Invoice."""
    data = _row(row, "invoice")
    external_id = invoice_id(data)
    try:
        code = _text(data, "status")
        if code is None or code.strip() not in _STATUS_READ:
            raise _skip(f"status {code!r} is not a Perfex invoice status (1-6)")
        code = code.strip()
        status: InvoiceStatus = _STATUS_READ[code]
        if code == STATUS_UNPAID and _flag(data, "sent", default=False):
            status = "sent"
        issue_date = _required_date(data, "date")
        raw_number = _text(data, "number")
        number: str | None = None
        if code != STATUS_DRAFT and raw_number not in (None, "", DRAFT_NUMBER):
            assert raw_number is not None
            if not _DIGITS.fullmatch(raw_number.strip()):
                raise _skip(f"number {raw_number!r} is not a whole number")
            number = format_invoice_number(
                _text(data, "prefix") or "",
                str(int(raw_number)),
                _text(data, "number_format"),
                issue_date,
                number_padding,
            )
        currency = clean_text(_text(data, "currency_name"))
        if currency is None:
            currency_ref = _id(data, "currency")
            assert currency_ref is not None
            currency = currencies.by_id.get(currency_ref)
            if currency is None:
                raise _skip(f"currency id {currency_ref} is not a known Perfex currency")
        items = data.get("items")
        if not isinstance(items, list):
            raise _skip("invoice has no items list")
        ordered = sorted(_line(item, index) for index, item in enumerate(items))
        for name in ("discount_total", "adjustment"):
            if _decimal(data, name, default=Decimal(0)) != 0:
                raise _skip(
                    f"invoice has an invoice-level {name.replace('_', ' ')}, which syncd "
                    "cannot represent per line; settle it in Perfex (e.g. as a line)"
                )
        total = _decimal(data, "total")
        value = Invoice(
            number=number,
            contact=_id(data, "clientid", required=False),
            issue_date=issue_date,
            due_date=_date(data, "duedate", required=False),
            currency=currency,
            status=status,
            lines=tuple(line for _, line in ordered),
            subtotal=_decimal(data, "subtotal"),
            tax_total=_decimal(data, "total_tax", default=Decimal(0)),
            total=total,
            amount_paid=_amount_paid(data, total),
        )
        return storable_value(value, external_id)
    except SkipRecord as exc:
        raise _skip(f"invoice {external_id}: {exc.reason}", external_id) from None


def _items(invoice: Invoice, taxes: Taxes, item_ids: Sequence[str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for index, line in enumerate(invoice.lines):
        if line.quantity != line.quantity.quantize(Decimal(1).scaleb(-_QTY_PLACES)):
            raise _skip(
                f"line {index + 1}: quantity {line.quantity} has more than {_QTY_PLACES} "
                "decimals; Perfex would round it and change the amounts"
            )
        tax_names: list[str] = []
        if line.vat_rate != 0:
            name = taxes.by_rate.get(line.vat_rate)
            if name is None:
                raise UnknownLookup(
                    f"line {index + 1}: no Perfex tax with rate {line.vat_rate}% is set up "
                    "(Setup > Finance > Taxes)"
                )
            tax_names.append(f"{name}|{_money_text(line.vat_rate)}")
        item: dict[str, Any] = {
            "description": line.description,
            "long_description": "",
            "qty": line.quantity,
            "rate": line.unit_price,
            "unit": "",
            "order": index + 1,
            "taxname": tax_names,
        }
        if index < len(item_ids):
            item["id"] = item_ids[index]
        items.append(item)
    return items


def _client_ref(invoice: Invoice) -> int:
    if invoice.contact is None or _ID.fullmatch(invoice.contact) is None:
        raise _skip(f"invoice contact {invoice.contact!r} is not a Perfex customer id")
    return int(invoice.contact)


def _currency_ref(invoice: Invoice, currencies: Currencies) -> int:
    currency_id = currencies.by_iso.get(invoice.currency)
    if currency_id is None:
        raise UnknownLookup(f"currency {invoice.currency} is not set up in Perfex")
    return int(currency_id)


def invoice_from_canonical(
    invoice: Invoice,
    currencies: Currencies,
    taxes: Taxes,
    *,
    client_token: str | None = None,
) -> dict[str, Any]:
    """The ``POST /invoices`` body of a canonical invoice.

    A new Perfex invoice is a draft or unpaid; a cancelled one is created unpaid and then
    cancelled (``wants_cancel``). Paid, partially paid and overdue follow from payments and
    dates in Perfex, and "sent" from e-mailing it, which syncd never does on its own.
    """
    value = normalise(invoice)
    draft = value.status == "draft"
    body: dict[str, Any] = {
        "clientid": _client_ref(value),
        "currency": _currency_ref(value, currencies),
        "status": int(STATUS_DRAFT if draft else STATUS_UNPAID),
        "items": _items(value, taxes, ()),
        "subtotal": value.subtotal,
        "total_tax": value.tax_total,
        "total": value.total,
        "duedate": None if value.due_date is None else value.due_date.isoformat(),
    }
    if value.issue_date is not None:
        body["date"] = value.issue_date.isoformat()
    number = invoice_number_value(value.number)
    if number is not None and not draft:
        body["number"] = number
    if client_token:
        body["adminnote"] = token_note(client_token)
    return body


def wants_cancel(invoice: Invoice) -> bool:
    """Whether a created invoice must be cancelled afterwards (Perfex creates none cancelled)."""
    return invoice.status == "cancelled"


def _status_change(current: InvoiceStatus, wanted: InvoiceStatus) -> int | None:
    """The status code to send to move ``current`` towards ``wanted``, if Perfex allows it."""
    if wanted == current:
        return None
    if wanted == "cancelled":
        return int(STATUS_CANCELLED)
    if wanted == "draft":
        return None  # an invoice never becomes a draft again
    if current in ("draft", "cancelled") and wanted in ("open", "sent", "overdue"):
        return int(STATUS_UNPAID)
    return None  # paid, partially paid and overdue follow from payments and dates


def invoice_update_body(
    current: Invoice,
    wanted: Invoice,
    fields: Iterable[str],
    currencies: Currencies,
    taxes: Taxes,
    item_ids: Sequence[str],
) -> dict[str, Any]:
    """The ``PUT /invoices/{id}`` body that writes ``fields`` of ``wanted`` over ``current``.

    ``item_ids`` are the current line ids in order: lines are rewritten in place, surplus ones
    are dropped by omission and extra ones added. Unchanged fields are left out.
    """
    value = normalise(wanted)
    asked = set(fields)
    body: dict[str, Any] = {}
    if "contact" in asked and value.contact != current.contact:
        body["clientid"] = _client_ref(value)
    if "currency" in asked and value.currency != current.currency:
        body["currency"] = _currency_ref(value, currencies)
    if "issue_date" in asked and value.issue_date not in (None, current.issue_date):
        assert value.issue_date is not None
        body["date"] = value.issue_date.isoformat()
    if "due_date" in asked and value.due_date != current.due_date:
        body["duedate"] = None if value.due_date is None else value.due_date.isoformat()
    if "lines" in asked and value.lines != current.lines:
        body["items"] = _items(value, taxes, item_ids)
    if asked & {"lines", "subtotal", "tax_total", "total"} and (
        "items" in body
        or (value.subtotal, value.tax_total, value.total)
        != (current.subtotal, current.tax_total, current.total)
    ):
        body["subtotal"] = value.subtotal
        body["total_tax"] = value.tax_total
        body["total"] = value.total
    status = _status_change(current.status, value.status) if "status" in asked else None
    if status is not None:
        body["status"] = status
    finalising = current.status == "draft" and status == int(STATUS_UNPAID)
    if ("number" in asked and value.number != current.number) or finalising:
        number = invoice_number_value(value.number)
        # Perfex keeps only the digits under its own prefix ("2026-0017" is held as 17 and
        # printed "INV-000017"): when it already holds those digits there is nothing to
        # write, or every pass would send the same number again.
        held = invoice_number_value(current.number)
        if number is not None and number != held and (current.status != "draft" or finalising):
            body["number"] = number
    return body


def invoice_has_token(row: Mapping[str, Any], client_token: str) -> bool:
    """Whether an invoice row carries ``client_token`` in its admin note."""
    return _holds_token(row.get("adminnote"), client_token)


# --------------------------------------------------------------------------- payments


def payment_to_canonical(row: object, modes: PaymentModes) -> Payment:
    """A payment row as a canonical Payment."""
    data = _row(row, "payment")
    external_id = payment_id(data)
    try:
        mode = clean_text(_text(data, "paymentmode"))
        method = modes.by_id.get(mode, mode) if mode is not None else None
        value = Payment(
            invoice=_id(data, "invoiceid"),
            date=_required_date(data, "date"),
            amount=_decimal(data, "amount"),
            method=method,
            reference=_text(data, "transactionid"),
        )
        return storable_value(value, external_id)
    except SkipRecord as exc:
        raise _skip(f"payment {external_id}: {exc.reason}", external_id) from None


def payment_from_canonical(
    payment: Payment, modes: PaymentModes, *, client_token: str | None = None
) -> dict[str, Any]:
    """The ``POST /payments`` body of a canonical payment."""
    value = normalise(payment)
    if value.invoice is None or _ID.fullmatch(value.invoice) is None:
        raise _skip(f"payment invoice {value.invoice!r} is not a Perfex invoice id")
    if value.amount <= 0:
        raise _skip(f"payment amount {value.amount} is not positive; Perfex refuses it")
    body: dict[str, Any] = {
        "invoiceid": int(value.invoice),
        "amount": value.amount,
        "date": value.date.isoformat(),
        "transactionid": value.reference or "",
    }
    mode = modes.id_for(value.method)
    if mode is not None:
        body["paymentmode"] = mode
    if client_token:
        body["note"] = token_note(client_token)
    return body


def payment_has_token(row: Mapping[str, Any], client_token: str) -> bool:
    """Whether a payment row carries ``client_token`` in its note."""
    return _holds_token(row.get("note"), client_token)
