"""Pure SimplBooks JSON <-> canonical mapping: clients, invoices with rows, receipts, VAT types.

No I/O and no clock here (``today`` is passed in). Every ``*_to_canonical`` function is
total: data it cannot map raises ``errors.SkipRecord`` with a reason, never another
exception. Every ``*_from_canonical`` function returns the body SimplBooks takes on write.
Values coming out are normalised (``syncd.core.model.normalise``), so for every field the
vendor can hold ``to_canonical(echo(from_canonical(x))) == normalise(x)``.

Mapping table (SimplBooks field -> canonical field):

Clients (``Client``; ``clients/list`` rows carry every mapped field)
    ``id`` -> external id · ``name`` -> ``name`` (required) · ``reg_no`` -> ``coc_number`` ·
    ``vat_no`` -> ``vat_number`` · ``address_street`` -> ``address_line1`` ·
    ``address_postal_code`` -> ``postal_code`` · ``address_city`` -> ``city`` ·
    ``address_county`` -> ``region`` · ``address_country`` -> ``country`` ·
    ``webpage`` -> ``website`` · ``e_mail`` -> ``email`` · ``phone`` -> ``phone`` ·
    ``account_no`` -> ``iban`` · ``swift_code`` -> ``bic``.
    Not held: ``kind`` (a client is always read as ``organization``: SimplBooks has one
    ``name`` for companies and people), ``first_name``, ``last_name``,
    ``address_line2``, ``customer_number``, ``archived`` (no archive). Ignored vendor
    fields: ``fax``, ``bank`` (a bank name), the ``client_settings_*`` defaults.
Invoices (``invoices/get``: ``{"Invoice": {...}, "Task": [row, ...]}``)
    ``id`` -> external id · ``number`` -> ``number`` · ``client_id`` -> ``contact`` ·
    ``created`` -> ``issue_date`` · ``due`` -> ``due_date`` · ``currency_name`` ->
    ``currency`` · ``additional_info`` -> ``reference`` (the one free-text field the
    create call documents; ``reference`` at SimplBooks is the payment reference number it
    generates, not ours) · ``sum`` / ``vat`` / ``total_sum`` -> ``subtotal`` /
    ``tax_total`` / ``total`` · ``total_sum - remnant`` -> ``amount_paid`` · status
    derived (there is no status field): ``paid`` date -> paid; something paid ->
    partially_paid; positive total past ``due`` -> overdue; ``sent`` date -> sent; else
    open. ``0000-00-00`` means "no date".
    Rows (``Task``): ``name`` -> ``description`` · ``amount`` -> ``quantity`` ·
    ``price_per_unit`` -> ``unit_price`` · ``vat`` -> ``vat_rate`` ·
    ``amount * price_per_unit * (1 - discount/100)`` -> ``line_total``. With
    ``row_sum_with_vat`` the row prices include VAT and are converted to net.
    On write: ``Tasks: [{"Task": {...}}]`` with the vendor's ``vat_type_id`` per rate,
    ``discount`` only where a line total is less than quantity x unit price, and
    ``row_sum_with_vat: false``.
Receipts (``Incoming``), bound to an invoice, are payments
    external id ``"<receipt id>@<invoice id>"`` · the bound invoice id -> ``invoice`` ·
    ``income_date`` -> ``date`` · ``income_sum`` -> ``amount`` · ``description`` ->
    ``reference``. Not held: ``method``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Final

from syncd.adapters.base import storable_value
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    money,
    normalise,
    vat_rate,
)
from syncd.errors import SkipRecord

NO_DATE: Final = "0000-00-00"
_CTX: Final = Context(prec=60, rounding=ROUND_HALF_UP)
_DATE_RE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_ID_RE: Final = re.compile(r"[0-9]{1,18}")  # SimplBooks ids are integers; no more digits
_MAX_TEXT: Final = 80  # how much of a bad value a skip reason quotes

# Canonical contact field -> SimplBooks Client field (every field a client can hold).
CONTACT_TO_CLIENT: Final[Mapping[str, str]] = {
    "name": "name",
    "coc_number": "reg_no",
    "vat_number": "vat_no",
    "address_line1": "address_street",
    "postal_code": "address_postal_code",
    "city": "address_city",
    "region": "address_county",
    "country": "address_country",
    "website": "webpage",
    "email": "e_mail",
    "phone": "phone",
    "iban": "account_no",
    "bic": "swift_code",
}
CONTACT_WRITABLE: Final = frozenset(CONTACT_TO_CLIENT)

INVOICE_WRITABLE: Final = frozenset(
    {"number", "contact", "issue_date", "due_date", "currency", "lines", "reference"}
)
PAYMENT_WRITABLE: Final = frozenset({"invoice", "date", "amount", "reference"})

# Canonical statuses that mean "the customer has seen it": written as a ``sent`` date.
SENT_STATUSES: Final = frozenset({"sent", "overdue", "partially_paid", "paid"})


# --------------------------------------------------------------------------- values


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


def _unwrap(payload: object, key: str, what: str) -> Mapping[str, Any]:
    """The record inside its model-name wrapper (``{"Client": {...}}``), or the bare record."""
    if not isinstance(payload, Mapping):
        raise SkipRecord(f"{what} is not a JSON object but {type(payload).__name__}")
    inner = payload.get(key, payload)
    if not isinstance(inner, Mapping):
        raise SkipRecord(f"{what}: {key} is not a JSON object but {type(inner).__name__}")
    return inner


def record_id(value: object, what: str) -> str:
    """A positive SimplBooks id (int or digit string) as a string; SkipRecord otherwise."""
    if isinstance(value, bool):
        raise SkipRecord(f"{what} is not an id: {_quote(value)}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        number = int(value)
    elif isinstance(value, str) and _ID_RE.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise SkipRecord(f"{what} is not an id: {_quote(value)}")
    if not 0 < number < 10**18:
        raise SkipRecord(f"{what} is not an id: {_quote(value)}")
    return str(number)


def _text(record: Mapping[str, Any], key: str, what: str) -> str | None:
    """Optional text; numbers are taken as their digits (the spec shows ``reg_no: 12213296``)."""
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise SkipRecord(f"{what}: {key} is not text: {_quote(value)}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal) and value.is_finite():
        return format(value, "f")
    raise SkipRecord(f"{what}: {key} is not text: {_quote(value)}")


def _decimal(
    record: Mapping[str, Any], key: str, what: str, *, default: Decimal | None = None
) -> Decimal:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        raise SkipRecord(f"{what}: {key} is missing")
    if isinstance(value, bool):
        raise SkipRecord(f"{what}: {key} is not a number: {_quote(value)}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # never arrives through http.py; kept total anyway
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise SkipRecord(f"{what}: {key} is not a number: {_quote(value)}") from None
    else:
        raise SkipRecord(f"{what}: {key} is not a number: {_quote(value)}")
    if not number.is_finite():
        raise SkipRecord(f"{what}: {key} is not a number: {_quote(value)}")
    return number


def parse_date(value: object, what: str) -> dt.date | None:
    """``yyyy-MM-dd``; ``0000-00-00``, ``""`` and null mean no date; anything else: SkipRecord."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SkipRecord(f"{what} is not a date: {_quote(value)}")
    text = value.strip()
    if text in ("", NO_DATE):
        return None
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise SkipRecord(f"{what} is not a yyyy-MM-dd date: {_quote(value)}")
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise SkipRecord(f"{what} is not a valid date: {_quote(value)}") from None


def _bool(record: Mapping[str, Any], key: str, what: str) -> bool:
    value = record.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    # Only exact ints and strings are compared: a Decimal (sNaN included) or a
    # float never counts as a flag, and comparing one must not raise.
    if type(value) is int and value in (0, 1):
        return value == 1
    if isinstance(value, str) and value.strip() in ("", "0", "false", "1", "true"):
        return value.strip() in ("1", "true")
    raise SkipRecord(f"{what}: {key} is not a boolean: {_quote(value)}")


def _no_client(value: object) -> bool:
    """True for the ways SimplBooks says an invoice has no client (null, 0, "0", "")."""
    if value is None:
        return True
    if type(value) is int:
        return value == 0
    return isinstance(value, str) and value.strip() in ("", "0")


# --------------------------------------------------------------------------- clients


def contact_to_canonical(payload: object) -> tuple[str, Contact]:
    """``{"Client": {...}}`` (list row or ``get`` data) -> (client id, normalised Contact)."""
    client = _unwrap(payload, "Client", "client")
    external_id = record_id(client.get("id"), "client id")
    what = f"client {external_id}"
    name = _text(client, "name", what)
    if name is None or not name.strip():
        raise SkipRecord(f"{what} has no name", external_id=external_id)
    try:
        values: dict[str, Any] = {
            field: _text(client, key, what) or None for field, key in CONTACT_TO_CLIENT.items()
        }
    except SkipRecord as exc:
        raise SkipRecord(exc.reason, external_id=external_id) from None
    return external_id, storable_value(Contact(kind="organization", **values), external_id)


def contact_from_canonical(contact: Contact, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The ``Client`` write body for ``fields`` (default: every field a client holds).

    Empty values are sent as ``""`` so that an update clears them.
    """
    value = normalise(contact)
    wanted = CONTACT_WRITABLE if fields is None else CONTACT_WRITABLE & frozenset(fields)
    return {
        key: getattr(value, field) or ""
        for field, key in CONTACT_TO_CLIENT.items()
        if field in wanted
    }


# --------------------------------------------------------------------------- VAT types


@dataclass(frozen=True, slots=True)
class VatType:
    """One entry of ``vat_types/list``."""

    id: int
    name: str
    rate: Decimal
    is_sales: bool
    active: bool


def vat_types_from_list(rows: object) -> list[VatType]:
    """Parse ``vat_types/list`` data; malformed entries are left out (they cannot be chosen)."""
    out: list[VatType] = []
    if not isinstance(rows, list):
        return out
    for row in rows:
        try:
            entry = _unwrap(row, "VatType", "VAT type")
            type_id = int(record_id(entry.get("id"), "VAT type id"))
            out.append(
                VatType(
                    id=type_id,
                    name=_text(entry, "name", "VAT type") or "",
                    rate=vat_rate(_decimal(entry, "vat_percent", "VAT type")),
                    is_sales=_bool(entry, "is_sales", "VAT type"),
                    active=_bool(entry, "active", "VAT type"),
                )
            )
        except SkipRecord:
            continue
    return out


def choose_vat_type(types: Iterable[VatType], rate: Decimal, preferred: int | None = None) -> int:
    """The id of an active sales VAT type with ``rate``: ``preferred`` (the client's default)
    when it has that rate, else the lowest id. SkipRecord when there is none."""
    wanted = vat_rate(rate)
    matches = sorted(
        (t for t in types if t.active and t.is_sales and t.rate == wanted), key=lambda t: t.id
    )
    if not matches:
        raise SkipRecord(
            f"SimplBooks has no active sales VAT type for {wanted} %; add one in the "
            "SimplBooks VAT settings (vat_types/list)"
        )
    for entry in matches:
        if entry.id == preferred:
            return entry.id
    return matches[0].id


# --------------------------------------------------------------------------- invoices


def _row_line(row: object, index: int, *, gross_prices: bool, what: str) -> InvoiceLine:
    task = _unwrap(row, "Task", f"{what} row {index}")
    where = f"{what} row {index}"
    description = _text(task, "name", where) or ""
    quantity = _decimal(task, "amount", where)
    price = _decimal(task, "price_per_unit", where)
    rate = _decimal(task, "vat", where)
    discount = _decimal(task, "discount", where, default=Decimal(0))
    total = _CTX.multiply(_CTX.multiply(quantity, price), _CTX.subtract(1, discount / 100))
    if gross_prices:
        # Row prices include VAT: the net price and total are the gross ones / (1 + rate).
        factor = _CTX.add(1, _CTX.divide(rate, 100))
        if factor == 0:
            raise SkipRecord(f"{where}: a VAT rate of {rate} % cannot be taken out of a price")
        price = _CTX.divide(price, factor)
        total = _CTX.divide(total, factor)
    return InvoiceLine(
        description=description,
        quantity=quantity,
        unit_price=price,
        vat_rate=rate,
        line_total=money(total),
    )


def _status(
    *,
    paid: dt.date | None,
    sent: dt.date | None,
    due: dt.date | None,
    total: Decimal,
    amount_paid: Decimal,
    today: dt.date,
) -> InvoiceStatus:
    if paid is not None:
        return "paid"
    if amount_paid != 0:
        return "partially_paid"
    if due is not None and due < today and total > 0:
        return "overdue"
    if sent is not None:
        return "sent"
    return "open"


def invoice_to_canonical(payload: object, *, today: dt.date) -> tuple[str, Invoice]:
    """``invoices/get`` data (``{"Invoice": {...}, "Task": [...]}``) -> (id, normalised Invoice).

    ``today`` (the vendor's local date) decides whether an unpaid invoice is overdue.
    """
    if not isinstance(payload, Mapping):
        raise SkipRecord(f"invoice is not a JSON object but {type(payload).__name__}")
    header = payload.get("Invoice")
    if not isinstance(header, Mapping):
        raise SkipRecord("invoice has no Invoice object")
    external_id = record_id(header.get("id"), "invoice id")
    what = f"invoice {external_id}"
    try:
        rows = payload.get("Task", [])
        if rows is None:
            rows = []
        if isinstance(rows, Mapping):  # PHP renders a list with gaps as an object
            rows = list(rows.values())
        if not isinstance(rows, list):
            raise SkipRecord(f"{what}: Task is not a list of rows")
        gross = _bool(header, "row_sum_with_vat", what)
        lines = tuple(
            _row_line(row, n, gross_prices=gross, what=what) for n, row in enumerate(rows, 1)
        )
        total = _decimal(header, "total_sum", what)
        remnant = _decimal(header, "remnant", what, default=total)
        due = parse_date(header.get("due"), f"{what}: due")
        paid = parse_date(header.get("paid"), f"{what}: paid")
        sent = parse_date(header.get("sent"), f"{what}: sent")
        amount_paid = money(_CTX.subtract(total, remnant))
        client = header.get("client_id")
        invoice = Invoice(
            number=_text(header, "number", what),
            contact=record_id(client, f"{what}: client_id") if not _no_client(client) else None,
            issue_date=parse_date(header.get("created"), f"{what}: created"),
            due_date=due,
            currency=_text(header, "currency_name", what) or "EUR",
            status=_status(
                paid=paid, sent=sent, due=due, total=total, amount_paid=amount_paid, today=today
            ),
            lines=lines,
            subtotal=_decimal(header, "sum", what),
            tax_total=_decimal(header, "vat", what),
            total=total,
            amount_paid=amount_paid,
            reference=_text(header, "additional_info", what),
        )
    except SkipRecord as exc:
        raise SkipRecord(exc.reason, external_id=external_id) from None
    except ArithmeticError as exc:  # amounts so large that even computing with them fails
        raise SkipRecord(
            f"{what}: amounts are out of any range ({type(exc).__name__})", external_id=external_id
        ) from None
    return external_id, storable_value(invoice, external_id)


def invoice_list_id(payload: object) -> str:
    """The id of an ``invoices/list`` row (``{"invoices": {...}}``, lowercase plural)."""
    row = _unwrap(payload, "invoices", "invoice list row")
    return record_id(row.get("id"), "invoice id")


def client_id_of(contact: str | None) -> int:
    """The SimplBooks client id an invoice's ``contact`` names; SkipRecord when it is none."""
    if contact is None or not _ID_RE.fullmatch(contact) or int(contact) <= 0:
        raise SkipRecord(
            f"invoice contact {contact!r} is not a SimplBooks client id; link the contact first"
        )
    return int(contact)


def _discount(line: InvoiceLine, where: str) -> Decimal:
    """The row discount % that makes SimplBooks compute ``line.line_total`` exactly."""
    gross = _CTX.multiply(line.quantity, line.unit_price)
    wanted = line.line_total if line.line_total is not None else money(gross)
    if money(gross) == wanted:
        return Decimal(0)
    if gross == 0:
        raise SkipRecord(f"{where}: a line total of {wanted} cannot come from a zero price")
    share = _CTX.divide(wanted, gross)
    if not 0 <= share <= 1:
        raise SkipRecord(
            f"{where}: line total {wanted} is more than quantity x unit price; SimplBooks "
            "rows only take a discount"
        )
    for places in (4, 6, 8, 10):
        discount = _CTX.multiply(_CTX.subtract(1, share), 100).quantize(
            Decimal(1).scaleb(-places), context=_CTX
        )
        factor = _CTX.subtract(1, _CTX.divide(discount, 100))
        if money(_CTX.multiply(gross, factor)) == wanted:
            return discount.normalize(_CTX) if discount != 0 else Decimal(0)
    raise SkipRecord(f"{where}: line total {wanted} cannot be written as a row discount")


def _number(value: Decimal) -> Decimal:
    """A Decimal without an exponent form (``1E+1`` -> ``10``) for a JSON body."""
    return value.quantize(Decimal(1), context=_CTX) if value == value.to_integral_value() else value


def invoice_rows(
    invoice: Invoice, vat_type_ids: Mapping[Decimal, int], row_ids: Iterable[int] = ()
) -> list[dict[str, Any]]:
    """``Tasks`` for ``invoice.lines``; ``row_ids`` (the current rows, in order) are reused."""
    value = normalise(invoice)
    if not value.lines:
        raise SkipRecord("SimplBooks needs at least one invoice row; the invoice has no lines")
    ids = list(row_ids)
    tasks: list[dict[str, Any]] = []
    for index, line in enumerate(value.lines, 1):
        where = f"invoice line {index}"
        if not line.description:
            raise SkipRecord(f"{where} has no description; SimplBooks requires a row name")
        type_id = vat_type_ids.get(line.vat_rate)
        if type_id is None:
            raise SkipRecord(f"{where}: no SimplBooks VAT type for {line.vat_rate} %")
        task: dict[str, Any] = {
            "name": line.description,
            "amount": _number(line.quantity),
            "price_per_unit": line.unit_price,
            "vat": _number(line.vat_rate),
            "vat_type_id": type_id,
            "discount": _number(_discount(line, where)),
        }
        if index <= len(ids):
            task = {"id": ids[index - 1], **task}
        tasks.append({"Task": task})
    return tasks


def invoice_from_canonical(
    invoice: Invoice,
    *,
    vat_type_ids: Mapping[Decimal, int],
    client_token: str | None = None,
    fields: Iterable[str] | None = None,
    row_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """The ``invoices/create`` body (``fields`` None) or the ``invoices/update`` body parts.

    ``vat_type_ids`` maps each line's VAT rate to the vendor's VAT type id (a missing rate
    is a SkipRecord). ``client_token`` goes into ``additional_info`` when the invoice has no
    reference of its own. On create, a status that means "sent" is written as a ``sent``
    date (the issue date); SimplBooks derives every other status itself.
    """
    value = normalise(invoice)
    creating = fields is None
    wanted = INVOICE_WRITABLE if fields is None else INVOICE_WRITABLE & frozenset(fields)
    header: dict[str, Any] = {}
    if "contact" in wanted:
        header["client_id"] = client_id_of(value.contact)
    if "number" in wanted and value.number is not None:
        header["number"] = value.number  # None: SimplBooks numbers the invoice itself
    if "issue_date" in wanted and value.issue_date is not None:
        header["created"] = value.issue_date.isoformat()
        header["transaction_date"] = value.issue_date.isoformat()
    if "due_date" in wanted and value.due_date is not None:
        header["due"] = value.due_date.isoformat()
    if "currency" in wanted:
        header["currency_name"] = value.currency
    if "reference" in wanted:
        header["additional_info"] = value.reference or (client_token if creating else None) or ""
    if creating:
        header["row_sum_with_vat"] = False
        if value.status in SENT_STATUSES and value.issue_date is not None:
            header["sent"] = value.issue_date.isoformat()
    body: dict[str, Any] = {"Invoice": header}
    if "lines" in wanted:
        header["row_sum_with_vat"] = False
        body["Tasks"] = invoice_rows(value, vat_type_ids, row_ids)
    return body


def row_ids_of(payload: object) -> list[int]:
    """The ids of an ``invoices/get`` answer's rows, in order (unusable ones end the list)."""
    rows = payload.get("Task") if isinstance(payload, Mapping) else None
    if isinstance(rows, Mapping):
        rows = list(rows.values())
    ids: list[int] = []
    for row in rows if isinstance(rows, list) else []:
        try:
            ids.append(int(record_id(_unwrap(row, "Task", "row").get("id"), "row id")))
        except SkipRecord:
            break
    return ids


def additional_info_of(payload: object) -> str | None:
    """An ``invoices/get`` answer's ``additional_info``, cleaned (None when absent)."""
    header = payload.get("Invoice") if isinstance(payload, Mapping) else None
    if not isinstance(header, Mapping):
        return None
    value = header.get("additional_info")
    return " ".join(value.split()) or None if isinstance(value, str) else None


# --------------------------------------------------------------------------- receipts


def payment_external_id(receipt_id: int | str, invoice_id: int | str) -> str:
    """``"<receipt id>@<invoice id>"``: a payment is a receipt bound to one invoice."""
    return f"{receipt_id}@{invoice_id}"


def parse_payment_id(external_id: str) -> tuple[int, int] | None:
    """(receipt id, invoice id) of a payment external id, or None when it is not one."""
    receipt, sep, invoice = external_id.partition("@")
    if not sep or not _ID_RE.fullmatch(receipt) or not _ID_RE.fullmatch(invoice):
        return None
    if int(receipt) <= 0 or int(invoice) <= 0:
        return None
    return int(receipt), int(invoice)


def receipt_id_of(payload: object) -> str:
    """The id of an ``incomings/get`` / ``incomings/list`` entry."""
    incoming = _unwrap(payload, "Incoming", "receipt")
    return record_id(incoming.get("id"), "receipt id")


def payment_to_canonical(payload: object, invoice_id: int | str) -> tuple[str, Payment]:
    """A receipt (``{"Incoming": {...}}``) bound to ``invoice_id`` -> (external id, Payment)."""
    incoming = _unwrap(payload, "Incoming", "receipt")
    receipt = record_id(incoming.get("id"), "receipt id")
    external_id = payment_external_id(receipt, invoice_id)
    what = f"receipt {receipt}"
    try:
        date = parse_date(incoming.get("income_date"), f"{what}: income_date")
        if date is None:
            raise SkipRecord(f"{what} has no income_date")
        payment = Payment(
            invoice=str(invoice_id),
            date=date,
            amount=_decimal(incoming, "income_sum", what),
            method=None,
            reference=_text(incoming, "description", what),
        )
    except SkipRecord as exc:
        raise SkipRecord(exc.reason, external_id=external_id) from None
    return external_id, storable_value(payment, external_id)


def payment_from_canonical(
    payment: Payment, *, client_token: str | None = None, fields: Iterable[str] | None = None
) -> dict[str, Any]:
    """The ``Incoming`` write body; ``client_token`` goes into ``description`` when the
    payment has no reference of its own (create only)."""
    value = normalise(payment)
    creating = fields is None
    wanted = PAYMENT_WRITABLE if fields is None else PAYMENT_WRITABLE & frozenset(fields)
    body: dict[str, Any] = {}
    if "date" in wanted:
        body["income_date"] = value.date.isoformat()
    if "amount" in wanted:
        body["income_sum"] = value.amount
    if "reference" in wanted:
        body["description"] = value.reference or (client_token if creating else None) or ""
    return body


def description_of(payload: object) -> str | None:
    """A receipt's ``description``, whitespace collapsed (None when empty)."""
    try:
        incoming = _unwrap(payload, "Incoming", "receipt")
    except SkipRecord:
        return None
    value = incoming.get("description")
    return " ".join(value.split()) or None if isinstance(value, str) else None


def client_id_of_receipt(payload: object) -> int | None:
    """The client a receipt belongs to, when it names one."""
    try:
        incoming = _unwrap(payload, "Incoming", "receipt")
        return int(record_id(incoming.get("client_id"), "client id"))
    except SkipRecord:
        return None
