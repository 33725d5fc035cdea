"""Moneybird JSON <-> canonical values: pure functions, no I/O, no clock.

Reading (``*_to_canonical``) is total: anything the mapping cannot make sense of (a
missing id, a wrong type, an invalid date, garbage money, an unknown tax rate) raises
``errors.SkipRecord`` with a reason, never another exception, and the result is
normalised. Writing (``*_body``) returns the vendor's request body, wrapped in its root
key (``{"contact": {...}}``), for every field or only for the canonical fields asked.

Field mapping (vendor reference, moneybird.md §5 and §6):

=========================  ===========================================================
canonical                  Moneybird
=========================  ===========================================================
contact kind / name        ``company_name`` non-blank: organization named so; else a
                           person named ``firstname lastname``
first_name / last_name     ``firstname`` / ``lastname``
email                      read ``send_invoices_to_email`` (first address of the list),
                           else ``email``; write ``send_invoices_to_email`` (``email``
                           is read-only)
phone                      ``phone``
address_line1 / _line2     ``address1`` / ``address2``
postal_code / city         ``zipcode`` / ``city``
country                    ``country`` (ISO alpha-2; Moneybird always holds one)
vat_number / coc_number    ``tax_number`` / ``chamber_of_commerce``
iban                       ``bank_account`` (``sepa_iban`` is the direct-debit mandate)
customer_number            ``customer_id`` (also the contacts' client token)
archived                   ``archived`` (written through the archive endpoint only)
website, region, bic       not held by Moneybird: always None
invoice number             ``invoice_id`` (None while draft)
contact                    ``contact_id``
issue_date / due_date      ``invoice_date`` / ``due_date``; written as ``invoice_date``
                           plus ``first_due_interval`` = due - issue in days
currency / reference       ``currency`` / ``reference`` (also the invoices' client token)
line                       ``description``, ``amount_decimal`` (write ``amount``),
                           ``price``, ``tax_rate_id`` -> ``tax_rates[].percentage``,
                           line total ``total_price_excl_tax_with_discount``
subtotal / total           ``total_price_excl_tax`` / ``total_price_incl_tax``
tax_total                  sum of ``tax_totals[].tax_amount``
amount_paid                ``total_paid``
status                     ``state`` (+ ``total_paid``/``total_unpaid``), see
                           :func:`invoice_status`
payment                    ``invoice_id``, ``payment_date``, ``price``,
                           ``transaction_identifier`` -> reference
=========================  ===========================================================

Prices on an invoice with ``prices_are_incl_tax`` are converted to excl. VAT unit prices;
written invoices always say ``prices_are_incl_tax: false``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from syncd.adapters.base import storable_value
from syncd.core.model import (
    Contact,
    ContactKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    money,
    normalise_country,
    quantity,
    vat_rate,
)
from syncd.errors import SkipRecord

__all__ = [
    "ALL_PERIODS",
    "CONTACT_FIELD_KEYS",
    "TaxRate",
    "choose_tax_rate",
    "contact_body",
    "contact_to_canonical",
    "external_id",
    "filter_time",
    "id_text",
    "invoice_body",
    "invoice_status",
    "invoice_to_canonical",
    "parse_timestamp",
    "payment_body",
    "payment_to_canonical",
    "record_updated_at",
    "record_version",
    "tax_rate_from_vendor",
    "tax_rates_from_vendor",
]

# Sales-invoice lists default to ``period:this_year`` and any filter replaces the
# defaults; this explicit period keeps every invoice in view (vendor reference §6).
ALL_PERIODS: Final = "20000101..20991231"

# Canonical contact field -> the Moneybird attributes that hold it (names handled apart).
CONTACT_FIELD_KEYS: Final[Mapping[str, str]] = {
    "email": "send_invoices_to_email",
    "phone": "phone",
    "address_line1": "address1",
    "address_line2": "address2",
    "postal_code": "zipcode",
    "city": "city",
    "vat_number": "tax_number",
    "coc_number": "chamber_of_commerce",
    "iban": "bank_account",
}
_NAME_FIELDS: Final = frozenset({"kind", "name", "first_name", "last_name"})
_ALPHA2 = re.compile(r"[A-Z]{2}")
_ID = re.compile(r"\d{1,20}")
_LEADING_NUMBER = re.compile(r"\s*(-?\d+(?:[.,]\d+)?)")
_UNPAID_STATES: Final = frozenset({"open", "pending_payment", "late", "reminded"})
_KNOWN_STATES: Final = _UNPAID_STATES | {"draft", "scheduled", "paid", "uncollectible"}
_HUNDRED: Final = Decimal(100)


# --------------------------------------------------------------------------- primitives


def _object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise SkipRecord(f"moneybird {what} is not a JSON object but {type(data).__name__}")
    return data


def id_text(value: Any) -> str | None:
    """An id as a digit string (ids arrive as strings; numbers are tolerated)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if isinstance(value, str) and _ID.fullmatch(value.strip()):
        return value.strip()
    return None


def external_id(data: Any, what: str = "record") -> str:
    """The record's ``id`` as a string; SkipRecord when it has none."""
    obj = _object(data, what)
    found = id_text(obj.get("id"))
    if found is None:
        raise SkipRecord(f"moneybird {what} has no valid id ({obj.get('id')!r})")
    return found


def _required_id(obj: Mapping[str, Any], key: str, what: str, rid: str | None) -> str:
    found = id_text(obj.get(key))
    if found is None:
        raise SkipRecord(f"moneybird {what} has no valid {key} ({obj.get(key)!r})", external_id=rid)
    return found


def _text(obj: Mapping[str, Any], key: str, what: str, rid: str | None) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise SkipRecord(
        f"moneybird {what}.{key} is not text but {type(value).__name__}", external_id=rid
    )


def _bool(obj: Mapping[str, Any], key: str, what: str, rid: str | None, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    raise SkipRecord(f"moneybird {what}.{key} is not true/false: {value!r}", external_id=rid)


def _decimal(value: Any) -> Decimal | None:
    """A decimal from a money string ("129.95") or a JSON number; None when not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return number if number.is_finite() else None


def _amount(
    obj: Mapping[str, Any], key: str, what: str, rid: str | None, default: Decimal | None = None
) -> Decimal:
    value = obj.get(key)
    if value is None and default is not None:
        return default
    number = _decimal(value)
    if number is None:
        raise SkipRecord(f"moneybird {what}.{key} is not an amount: {value!r}", external_id=rid)
    return number


def _date(obj: Mapping[str, Any], key: str, what: str, rid: str | None) -> dt.date | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SkipRecord(f"moneybird {what}.{key} is not a date: {value!r}", external_id=rid)


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An ISO 8601 time as UTC-aware datetime (naive = UTC); None when not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def record_updated_at(data: Mapping[str, Any], what: str) -> dt.datetime | None:
    """The record's ``updated_at``; None when absent, SkipRecord when unreadable."""
    raw = data.get("updated_at")
    if raw is None:
        return None
    moment = parse_timestamp(raw)
    if moment is None:
        raise SkipRecord(
            f"moneybird {what}.updated_at is not a time: {raw!r}",
            external_id=id_text(data.get("id")),
        )
    return moment


def record_version(data: Mapping[str, Any]) -> str | None:
    """The record's ``version`` as text (opaque, monotonic), when it has one."""
    raw = data.get("version")
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | str):
        return str(raw)
    return None


def filter_time(moment: dt.datetime) -> str:
    """A time for ``updated_after`` filters, in the spec's own form, floored to the second."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --------------------------------------------------------------------------- tax rates


@dataclass(frozen=True, slots=True)
class TaxRate:
    """One Moneybird tax rate; ``percentage`` None means "no VAT" (read as 0 %)."""

    id: str
    percentage: Decimal | None
    kind: str  # tax_rate_type: sales_invoice, purchase_invoice, ...
    active: bool
    show_tax: bool
    country: str | None

    @property
    def rate(self) -> Decimal:
        """The percentage as a canonical VAT rate (0 for "no VAT")."""
        return vat_rate(self.percentage if self.percentage is not None else Decimal(0))


def tax_rate_from_vendor(data: Any) -> TaxRate:
    """A tax rate from ``GET /tax_rates.json``; SkipRecord when unreadable."""
    obj = _object(data, "tax rate")
    rid = external_id(obj, "tax rate")
    raw = obj.get("percentage")
    percentage = None if raw is None else _amount(obj, "percentage", "tax rate", rid)
    return TaxRate(
        id=rid,
        percentage=percentage,
        kind=_text(obj, "tax_rate_type", "tax rate", rid) or "",
        active=_bool(obj, "active", "tax rate", rid, True),
        show_tax=_bool(obj, "show_tax", "tax rate", rid, True),
        country=_text(obj, "country", "tax rate", rid),
    )


def tax_rates_from_vendor(items: Iterable[Any]) -> dict[str, TaxRate]:
    """Every readable tax rate by id (unreadable ones are left out)."""
    rates: dict[str, TaxRate] = {}
    for item in items:
        try:
            rate = tax_rate_from_vendor(item)
        except SkipRecord:
            continue
        rates[rate.id] = rate
    return rates


def choose_tax_rate(rates: Iterable[TaxRate], percentage: Decimal) -> str:
    """The id of the active sales rate of ``percentage``: domestic and shown first.

    Several rates can share a percentage (9 % domestic and 9 % for an EU country, 0 %
    and reverse-charge 0 %): the domestic rate that prints its VAT wins, then any other
    active sales rate. SkipRecord when none has this percentage.
    """
    wanted = vat_rate(percentage)
    candidates = [
        r
        for r in rates
        if r.kind == "sales_invoice"
        and r.active
        and r.percentage is not None
        and vat_rate(r.percentage) == wanted
    ]
    if not candidates:
        raise SkipRecord(
            f"moneybird has no active sales tax rate of {wanted}%; add one in Moneybird "
            "(Settings > Tax rates) or change the invoice line"
        )
    best = min(candidates, key=lambda r: (r.country is not None, not r.show_tax, int(r.id)))
    return best.id


# --------------------------------------------------------------------------- contacts


def _first_address(value: str | None) -> str | None:
    """The first address of a comma/semicolon separated list."""
    if value is None:
        return None
    for part in re.split(r"[,;]", value):
        if part.strip():
            return part.strip()
    return None


def contact_to_canonical(data: Any) -> Contact:
    """A Moneybird contact as a normalised canonical Contact."""
    obj = _object(data, "contact")
    rid = external_id(obj, "contact")

    def text(key: str) -> str | None:
        return _text(obj, key, "contact", rid)

    company = (text("company_name") or "").strip()
    first, last = text("firstname"), text("lastname")
    kind: ContactKind
    if company:
        kind = "organization"
        name = company
    else:
        kind = "person"
        name = " ".join(p.strip() for p in (first, last) if p and p.strip())
        if not name:
            raise SkipRecord(
                "moneybird contact has neither a company name nor a first or last name",
                external_id=rid,
            )
    customer = obj.get("customer_id")
    customer_number = id_text(customer) if isinstance(customer, int) else text("customer_id")
    email = _first_address(text("send_invoices_to_email")) or _first_address(text("email"))
    try:
        contact = Contact(
            kind=kind,
            name=name,
            first_name=first,
            last_name=last,
            email=email,
            phone=text("phone"),
            address_line1=text("address1"),
            address_line2=text("address2"),
            postal_code=text("zipcode"),
            city=text("city"),
            country=text("country"),
            vat_number=text("tax_number"),
            coc_number=text("chamber_of_commerce"),
            iban=text("bank_account"),
            customer_number=customer_number,
            archived=_bool(obj, "archived", "contact", rid, False),
        )
    except (TypeError, ValueError) as exc:  # pragma: no cover - guarded above
        raise SkipRecord(f"moneybird contact is not mappable: {exc}", external_id=rid) from None
    return storable_value(contact, rid)


def _country_code(value: str | None) -> str | None:
    country = normalise_country(value)
    if country is not None and not _ALPHA2.fullmatch(country):
        raise SkipRecord(f"moneybird needs an ISO-3166 alpha-2 country code, not {value!r}")
    return country


def _name_attrs(value: Contact) -> dict[str, str]:
    if value.kind == "organization":
        if not (value.name or "").strip():
            raise SkipRecord("moneybird needs a company name for an organization")
        return {
            "company_name": value.name,
            "firstname": value.first_name or "",
            "lastname": value.last_name or "",
        }
    first, last = value.first_name or "", value.last_name or ""
    if not first.strip() and not last.strip():
        if not (value.name or "").strip():
            raise SkipRecord("moneybird needs a first or last name for a person")
        last = value.name  # the vendor has no separate display name for a person
    return {"company_name": "", "firstname": first, "lastname": last}


def _name_keys(value: Contact, fields: frozenset[str]) -> set[str]:
    keys: set[str] = set()
    if "kind" in fields:
        keys |= {"company_name", "firstname", "lastname"}
    if "name" in fields:
        keys |= {"company_name"} if value.kind == "organization" else {"firstname", "lastname"}
    if "first_name" in fields:
        keys.add("firstname")
    if "last_name" in fields:
        keys.add("lastname")
    return keys


def contact_body(
    value: Contact, *, fields: frozenset[str] | None = None, customer_id: str | None = None
) -> dict[str, Any]:
    """The ``{"contact": {...}}`` body for ``fields`` of ``value`` (all when None).

    ``customer_id`` (the client token) is written on create when the contact has no
    customer number of its own. An empty optional field is sent as "" (Moneybird clears
    it); a missing country or customer number is left out (Moneybird always holds one).
    """
    wanted = fields if fields is not None else frozenset(_NAME_FIELDS | set(CONTACT_FIELD_KEYS))
    wanted = wanted | ({"country", "customer_number"} if fields is None else frozenset())
    attrs: dict[str, Any] = {}
    if wanted & _NAME_FIELDS:
        names = _name_attrs(value)
        for key in sorted(_name_keys(value, wanted) if fields is not None else names):
            attrs[key] = names[key]
    for field, key in CONTACT_FIELD_KEYS.items():
        if field in wanted:
            attrs[key] = getattr(value, field) or ""
    if "country" in wanted:
        country = _country_code(value.country)
        if country is not None:
            attrs["country"] = country
    if "customer_number" in wanted:
        number = value.customer_number or (customer_id if fields is None else None)
        if number:
            attrs["customer_id"] = number
    return {"contact": attrs}


# --------------------------------------------------------------------------- invoices


def invoice_status(state: str, paid: Decimal, unpaid: Decimal) -> InvoiceStatus:
    """The canonical status of a Moneybird ``state`` and its paid/unpaid amounts.

    draft -> draft; scheduled (finalised, goes out on its date) -> open; open and
    pending_payment -> open; late and reminded -> overdue; any unpaid state with a part
    paid -> partially_paid; paid -> paid; uncollectible -> uncollectible.
    """
    if state == "draft":
        return "draft"
    if state == "scheduled":
        return "open"
    if state == "paid":
        return "paid"
    if state == "uncollectible":
        return "uncollectible"
    if state in _UNPAID_STATES:
        if paid != 0 and unpaid != 0:
            return "partially_paid"
        return "overdue" if state in ("late", "reminded") else "open"
    raise SkipRecord(f"moneybird invoice state {state!r} is unknown")


def _quantity(detail: Mapping[str, Any], rid: str | None) -> Decimal:
    if detail.get("amount_decimal") is not None:
        number = _decimal(detail.get("amount_decimal"))
        if number is not None:
            return number
        raise SkipRecord(
            f"moneybird invoice line quantity is not a number: {detail.get('amount_decimal')!r}",
            external_id=rid,
        )
    # Older records may lack amount_decimal; "amount" is free text such as "2 x".
    raw = detail.get("amount")
    match = _LEADING_NUMBER.match(raw) if isinstance(raw, str) else None
    if match is not None:
        return Decimal(match.group(1).replace(",", "."))
    if isinstance(raw, int) and not isinstance(raw, bool):
        return Decimal(raw)
    raise SkipRecord(
        f"moneybird invoice line has no readable quantity ({detail.get('amount_decimal')!r})",
        external_id=rid,
    )


def _line(
    detail: Any, rates: Mapping[str, TaxRate], incl_tax: bool, rid: str | None
) -> InvoiceLine:
    obj = _object(detail, "invoice line")
    rate_id = _required_id(obj, "tax_rate_id", "invoice line", rid)
    rate = rates.get(rate_id)
    if rate is None:
        raise SkipRecord(f"moneybird invoice line uses unknown tax rate {rate_id}", external_id=rid)
    pct = rate.rate
    qty = _quantity(obj, rid)
    price = _amount(obj, "price", "invoice line", rid)
    total_key = "total_price_excl_tax_with_discount"
    line_total = None
    if obj.get(total_key) is not None:
        line_total = _amount(obj, total_key, "invoice line", rid)
    if incl_tax:
        divisor = 1 + pct / _HUNDRED
        if line_total is None:
            line_total = money(qty * price / divisor)
        price = price / divisor
    return InvoiceLine(
        description=_text(obj, "description", "invoice line", rid) or "",
        quantity=qty,
        unit_price=price,
        vat_rate=pct,
        line_total=line_total,
    )


def invoice_to_canonical(data: Any, rates: Mapping[str, TaxRate]) -> Invoice:
    """A Moneybird sales invoice as a normalised canonical Invoice.

    ``rates`` maps tax-rate ids to rates (``GET /tax_rates.json``); a line whose rate is
    not among them is a SkipRecord.
    """
    obj = _object(data, "sales invoice")
    rid = external_id(obj, "sales invoice")
    try:
        return _sales_invoice(obj, rid, rates)
    except ArithmeticError as exc:  # amounts so large that even computing with them fails
        raise SkipRecord(
            f"moneybird sales invoice amounts are out of any range ({type(exc).__name__})",
            external_id=rid,
        ) from None


def _sales_invoice(obj: Mapping[str, Any], rid: str, rates: Mapping[str, TaxRate]) -> Invoice:
    what = "sales invoice"
    state = _text(obj, "state", what, rid)
    if state is None or state not in _KNOWN_STATES:
        raise SkipRecord(f"moneybird sales invoice state {state!r} is unknown", external_id=rid)
    details = obj.get("details", [])
    if details is None:
        details = []
    if not isinstance(details, list):
        raise SkipRecord("moneybird sales invoice details is not a list", external_id=rid)
    incl = _bool(obj, "prices_are_incl_tax", what, rid, False)
    lines = tuple(_line(d, rates, incl, rid) for d in details)
    subtotal = _amount(obj, "total_price_excl_tax", what, rid)
    total = _amount(obj, "total_price_incl_tax", what, rid)
    tax_totals = obj.get("tax_totals")
    if isinstance(tax_totals, list):
        tax_total = Decimal(0)
        for item in tax_totals:
            tax_total += _amount(_object(item, "tax total"), "tax_amount", "tax total", rid)
    elif tax_totals is None:
        tax_total = total - subtotal
    else:
        raise SkipRecord("moneybird sales invoice tax_totals is not a list", external_id=rid)
    paid = _amount(obj, "total_paid", what, rid, default=Decimal(0))
    unpaid = _amount(obj, "total_unpaid", what, rid, default=total - paid)
    number = _text(obj, "invoice_id", what, rid)
    invoice = Invoice(
        number=number,
        contact=_required_id(obj, "contact_id", what, rid),
        issue_date=_date(obj, "invoice_date", what, rid),
        due_date=_date(obj, "due_date", what, rid),
        currency=_text(obj, "currency", what, rid) or "EUR",
        status=invoice_status(state, paid, unpaid),
        lines=lines,
        subtotal=subtotal,
        tax_total=tax_total,
        total=total,
        amount_paid=paid,
        reference=_text(obj, "reference", what, rid),
    )
    return storable_value(invoice, rid)


def _detail_ids(current: Sequence[Any]) -> list[str]:
    ids: list[str] = []
    for detail in current:
        found = id_text(detail.get("id")) if isinstance(detail, Mapping) else None
        if found is None:
            raise SkipRecord("moneybird invoice line without an id; cannot update its lines")
        ids.append(found)
    return ids


def _details(
    lines: Sequence[InvoiceLine], rates: Iterable[TaxRate], current: Sequence[Any]
) -> list[dict[str, Any]]:
    """``details_attributes``: lines matched to the current ones by position."""
    rate_list = list(rates)
    existing = _detail_ids(current)
    out: list[dict[str, Any]] = []
    for index, line in enumerate(lines):
        item: dict[str, Any] = {}
        if index < len(existing):
            item["id"] = existing[index]
        item.update(
            {
                "description": line.description,
                "amount": format(quantity(line.quantity), "f"),
                "price": format(money(line.unit_price), "f"),
                "tax_rate_id": choose_tax_rate(rate_list, line.vat_rate),
                "row_order": index,
            }
        )
        out.append(item)
    out.extend({"id": extra, "_destroy": True} for extra in existing[len(lines) :])
    return out


def invoice_body(
    value: Invoice,
    rates: Iterable[TaxRate],
    *,
    fields: frozenset[str] | None = None,
    reference: str | None = None,
    current_details: Sequence[Any] = (),
) -> dict[str, Any]:
    """The ``{"sales_invoice": {...}}`` body for ``fields`` of ``value`` (all when None).

    ``reference`` (the client token) is written on create when the invoice has no
    reference of its own. ``current_details`` are the invoice's present lines: the new
    lines update them by position, extra ones are destroyed, missing ones added.
    The number, totals and status are not written here (Moneybird numbers and totals an
    invoice itself; states change through actions).
    """
    creating = fields is None
    wanted = (
        frozenset({"contact", "issue_date", "due_date", "currency", "reference", "lines"})
        if fields is None
        else fields
    )
    attrs: dict[str, Any] = {}
    if "contact" in wanted:
        if not value.contact:
            raise SkipRecord("moneybird needs a contact for a sales invoice")
        attrs["contact_id"] = value.contact
    if "issue_date" in wanted:
        attrs["invoice_date"] = value.issue_date.isoformat() if value.issue_date else ""
    # Moneybird derives the due date from the invoice date and a term in days; without
    # an invoice date (a draft) it counts from "today", so no exact due date can be held.
    due, issue = value.due_date, value.issue_date
    if wanted & {"issue_date", "due_date"} and due is not None and issue is not None:
        days = (due - issue).days
        if days < 0:
            raise SkipRecord(
                f"moneybird cannot hold a due date ({due}) before the invoice date ({issue})"
            )
        attrs["first_due_interval"] = days
    if "currency" in wanted:
        attrs["currency"] = value.currency
    if "reference" in wanted:
        ref = value.reference or (reference if creating else None)
        if ref or not creating:
            attrs["reference"] = ref or ""
    if "lines" in wanted:
        attrs["prices_are_incl_tax"] = False
        attrs["details_attributes"] = _details(value.lines, rates, current_details)
    return {"sales_invoice": attrs}


# --------------------------------------------------------------------------- payments


def payment_to_canonical(data: Any) -> Payment:
    """A Moneybird payment (of a sales invoice) as a normalised canonical Payment."""
    obj = _object(data, "payment")
    rid = external_id(obj, "payment")
    kind = obj.get("invoice_type")
    if kind is not None and kind != "SalesInvoice":
        raise SkipRecord(
            f"moneybird payment belongs to a {kind!r}, not a sales invoice", external_id=rid
        )
    day = _date(obj, "payment_date", "payment", rid)
    if day is None:
        raise SkipRecord("moneybird payment has no payment_date", external_id=rid)
    payment = Payment(
        invoice=_required_id(obj, "invoice_id", "payment", rid),
        date=day,
        amount=_amount(obj, "price", "payment", rid),
        method=None,
        reference=_text(obj, "transaction_identifier", "payment", rid),
    )
    return storable_value(payment, rid)


def payment_body(value: Payment) -> dict[str, Any]:
    """The ``{"payment": {...}}`` body that registers ``value`` on its invoice."""
    attrs: dict[str, Any] = {
        "payment_date": value.date.isoformat(),
        "price": format(money(value.amount), "f"),
    }
    if value.reference:
        attrs["transaction_identifier"] = value.reference
    return {"payment": attrs}
