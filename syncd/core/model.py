"""Canonical contact and invoice model shared by every vendor adapter.

Every adapter maps vendor JSON to these frozen values and back; the engine compares,
merges and stores only these. The module is pure: standard library only, no clock.

Normalisation (``normalise_contact``, ``normalise_invoice``, ``normalise_payment`` and the
generic ``normalise``) puts a value in the one form in which two records that mean the
same thing compare equal. It is idempotent: ``normalise(normalise(x)) == normalise(x)``.
The rules:

Text
    Unicode NFC, trimmed, inner whitespace (any Unicode space, tabs, newlines) collapsed
    to one space; an empty optional field becomes ``None``. Required text (``name``, a
    line's ``description``) stays ``""`` when empty.
E-mail
    Text rule, then a leading ``mailto:`` dropped, all whitespace removed, lower-cased.
Website
    Text rule, then scheme and host lower-cased (the path keeps its case) and a bare
    trailing ``/`` dropped. No scheme is added: ``acme.nl`` stays ``acme.nl``.
VAT number, IBAN, BIC
    Upper-cased, with spaces, dots and dashes removed.
Country
    ISO-3166 alpha-2, upper-case. Common English, Dutch, Estonian, German and French
    names and alpha-3 codes of the countries syncd's users trade with map to their code
    (``"Nederland"``, ``"Netherlands"``, ``"NLD"`` -> ``"NL"``; ``"Eesti"`` -> ``"EE"``;
    ``"UK"`` -> ``"GB"``). Any other value is kept, upper-cased, rather than dropped or
    rejected: a contact must still sync when a vendor holds a name we do not know, and
    the upper-cased form maps to itself, which keeps normalisation idempotent. Adapters
    that need a strict code check ``len(country) == 2``.
Postal code
    Netherlands: ``"1234 AB"`` (``"1234ab"``, ``"1234-AB"`` accepted). Elsewhere: text
    rule, upper-cased.
Phone
    E.164 (``+`` and digits) where the contact's country is one of ``CALLING_CODES``:
    ``"06-12345678"`` with NL -> ``"+31612345678"``; ``"0031 6 1234 5678"`` ->
    ``"+31612345678"``; ``"+31 (0)6 ..."`` drops the ``(0)``; for countries without a
    trunk prefix (EE, LV, IT...) a national number gets the calling code put in front.
    A number that already starts with ``+`` keeps its digits. Where the country is
    unknown, or a national number lacks the trunk ``0`` its country requires, only the
    digits (and a leading ``+``) are kept: guessing would invent a different number.
    A value without digits becomes ``None``.
Money
    ``unit_price``, ``line_total``, ``subtotal``, ``tax_total``, ``total``,
    ``amount_paid`` and a payment's ``amount`` are quantised to cents, ROUND_HALF_UP.
    Unit prices with more than two decimals are rounded too: every vendor syncd talks
    to stores at least cents, and Perfex stores no more.
Quantity, VAT rate
    Rounded (ROUND_HALF_UP) to at most 4 and 2 decimals respectively, trailing zeros
    dropped, so ``Decimal("1.50")`` and ``Decimal("1.5")`` normalise to the same value.
Negative zero
    Becomes zero, so it fingerprints as zero.
Line total
    When ``None`` it becomes ``quantity * unit_price`` (after normalising both), in cents.

Numbers are always ``decimal.Decimal``: the constructors raise ``TypeError`` for a
float (or any other type) in a numeric field and ``ValueError`` for NaN or infinity.

Storage limits (``storable``, ``storage_problems``): a value a vendor can hold is not
always one the store can. The identity keys and the invoice number are indexed, and a
PostgreSQL btree entry holds at most 2704 bytes, so they are capped at what such a value
can be (``TEXT_LIMITS``: an e-mail address has at most 254 characters by RFC 5321, an IBAN
34 by ISO 13616...); other text is not capped. Amounts, quantities and VAT rates must fit
the store's exact numeric columns on every backend (``NUMBER_LIMITS``). ``storable``
normalises a value and raises ``UnstorableValue`` (a ``ValueError``) naming every field
beyond its limit, so an adapter can quarantine that one record instead of failing a page.

Totals (``compute_totals``): lines are grouped by VAT rate; each group's VAT is its
rate applied to the group's net subtotal, rounded to cents ROUND_HALF_UP once per group
(not per line), which is how the EU VAT rules let an invoice round and how Moneybird and
SimplBooks present their VAT totals. A vendor that rounds per line can differ by up to
half a cent per line; ``totals_match`` takes a ``tolerance`` for that.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal
from typing import Any, Final, Literal, TypeAlias, TypeVar, get_args, overload

CONTACT_FIELDS: tuple[str, ...] = (
    "kind",
    "name",
    "first_name",
    "last_name",
    "email",
    "phone",
    "website",
    "address_line1",
    "address_line2",
    "postal_code",
    "city",
    "region",
    "country",
    "vat_number",
    "coc_number",
    "iban",
    "bic",
    "customer_number",
    "archived",
)

# The invoice fields a flow may give an owner account (``owner = {lines = ...}``).
# ``payments`` is not an Invoice field: it names the payments resource of the invoice.
INVOICE_OWNER_FIELDS: tuple[str, ...] = (
    "lines",
    "status",
    "payments",
    "number",
    "contact",
    "issue_date",
    "due_date",
    "reference",
    "currency",
)

ContactKind: TypeAlias = Literal["organization", "person"]
CONTACT_KINDS: tuple[ContactKind, ...] = get_args(ContactKind)

InvoiceStatus: TypeAlias = Literal[
    "draft",
    "open",
    "sent",
    "partially_paid",
    "paid",
    "overdue",
    "cancelled",
    "uncollectible",
]
INVOICE_STATUSES: tuple[InvoiceStatus, ...] = get_args(InvoiceStatus)

# Plenty of precision for any invoice; our own context so callers' decimal settings
# (or a thread's) never change a result.
_CTX: Final = Context(prec=60, rounding=ROUND_HALF_UP)
_CENT: Final = Decimal("0.01")
_QTY_STEP: Final = Decimal("0.0001")
_RATE_STEP: Final = Decimal("0.01")
ZERO: Final = Decimal("0.00")


# --------------------------------------------------------------------------- values


def _check_decimal(owner: str, name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, Decimal):
        raise TypeError(
            f"{owner}.{name} must be a decimal.Decimal, not {type(value).__name__}"
            + (
                " (floats are never used for money or quantities)"
                if isinstance(value, float)
                else ""
            )
        )
    if not value.is_finite():
        raise ValueError(f"{owner}.{name} must be a finite number")


def _check_text(owner: str, name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{owner}.{name} must be a str, not {type(value).__name__}")


def _check_date(owner: str, name: str, value: object, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    # A datetime is a date subclass; it would carry a time (and a zone) into a date field.
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise TypeError(f"{owner}.{name} must be a datetime.date, not {type(value).__name__}")


_CONTACT_TEXT_FIELDS: Final = tuple(f for f in CONTACT_FIELDS if f not in ("kind", "archived"))


@dataclass(frozen=True, slots=True)
class Contact:
    """A customer: an organization or a person, with address, tax and bank details."""

    kind: ContactKind
    name: str
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    website: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    region: str | None = None
    country: str | None = None  # ISO-3166 alpha-2 once normalised
    vat_number: str | None = None
    coc_number: str | None = None  # chamber of commerce / registry code
    iban: str | None = None
    bic: str | None = None
    customer_number: str | None = None
    archived: bool = False

    def __post_init__(self) -> None:
        if self.kind not in CONTACT_KINDS:
            raise ValueError(f"Contact.kind must be one of {CONTACT_KINDS}")
        for name in _CONTACT_TEXT_FIELDS:
            _check_text("Contact", name, getattr(self, name), optional=name != "name")
        if not isinstance(self.archived, bool):
            raise TypeError(f"Contact.archived must be a bool, not {type(self.archived).__name__}")


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One invoice line; amounts exclude VAT, ``vat_rate`` is a percentage (21 = 21 %)."""

    description: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    line_total: Decimal | None = None  # excl. VAT; computed by normalisation when None

    def __post_init__(self) -> None:
        _check_text("InvoiceLine", "description", self.description, optional=False)
        _check_decimal("InvoiceLine", "quantity", self.quantity)
        _check_decimal("InvoiceLine", "unit_price", self.unit_price)
        _check_decimal("InvoiceLine", "vat_rate", self.vat_rate)
        _check_decimal("InvoiceLine", "line_total", self.line_total, optional=True)


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment received against an invoice (``invoice`` is that invoice's id)."""

    invoice: str | None
    date: dt.date
    amount: Decimal
    method: str | None = None
    reference: str | None = None

    def __post_init__(self) -> None:
        _check_text("Payment", "invoice", self.invoice)
        _check_date("Payment", "date", self.date, optional=False)
        _check_decimal("Payment", "amount", self.amount)
        _check_text("Payment", "method", self.method)
        _check_text("Payment", "reference", self.reference)


@dataclass(frozen=True, slots=True)
class Invoice:
    """A sales invoice.

    ``contact`` is the contact's id where the record lives: a vendor external id when it
    comes out of an adapter, a canonical id inside the store. Totals are as the vendor
    states them; ``compute_totals`` / ``totals_match`` check them against the lines.
    """

    number: str | None
    contact: str | None
    issue_date: dt.date | None
    due_date: dt.date | None
    currency: str = "EUR"  # ISO-4217
    status: InvoiceStatus = "draft"
    lines: tuple[InvoiceLine, ...] = ()
    subtotal: Decimal = ZERO  # excl. VAT
    tax_total: Decimal = ZERO
    total: Decimal = ZERO  # incl. VAT
    amount_paid: Decimal = ZERO
    reference: str | None = None

    def __post_init__(self) -> None:
        _check_text("Invoice", "number", self.number)
        _check_text("Invoice", "contact", self.contact)
        _check_date("Invoice", "issue_date", self.issue_date)
        _check_date("Invoice", "due_date", self.due_date)
        _check_text("Invoice", "currency", self.currency, optional=False)
        if self.status not in INVOICE_STATUSES:
            raise ValueError(f"Invoice.status must be one of {INVOICE_STATUSES}")
        if not isinstance(self.lines, tuple):
            raise TypeError(f"Invoice.lines must be a tuple, not {type(self.lines).__name__}")
        for line in self.lines:
            if not isinstance(line, InvoiceLine):
                raise TypeError(f"Invoice.lines holds a {type(line).__name__}, not InvoiceLine")
        for name in ("subtotal", "tax_total", "total", "amount_paid"):
            _check_decimal("Invoice", name, getattr(self, name))
        _check_text("Invoice", "reference", self.reference)


INVOICE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Invoice))
INVOICE_LINE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(InvoiceLine))
PAYMENT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Payment))

Model: TypeAlias = Contact | Invoice | Payment
_M = TypeVar("_M", Contact, Invoice, Payment)


# --------------------------------------------------------------------------- numbers


def _no_negative_zero(value: Decimal) -> Decimal:
    return abs(value) if value.is_zero() else value


def money(value: Decimal) -> Decimal:
    """Quantise an amount to cents, ROUND_HALF_UP."""
    _check_decimal("money", "value", value)
    return _no_negative_zero(value.quantize(_CENT, context=_CTX))


def _at_most(value: Decimal, step: Decimal) -> Decimal:
    """Round to ``step`` (HALF_UP), then drop trailing zeros without going exponential."""
    rounded = _no_negative_zero(value.quantize(step, context=_CTX))
    if rounded == rounded.to_integral_value(context=_CTX):
        return rounded.quantize(Decimal(1), context=_CTX)
    return rounded.normalize(_CTX)


def quantity(value: Decimal) -> Decimal:
    """Round a quantity to at most 4 decimals, trailing zeros dropped."""
    _check_decimal("quantity", "value", value)
    return _at_most(value, _QTY_STEP)


def vat_rate(value: Decimal) -> Decimal:
    """Round a VAT percentage to at most 2 decimals, trailing zeros dropped."""
    _check_decimal("vat_rate", "value", value)
    return _at_most(value, _RATE_STEP)


# --------------------------------------------------------------------------- text


def clean_text(value: str | None) -> str | None:
    """NFC, trim, collapse inner whitespace; ``""`` becomes ``None``."""
    if value is None:
        return None
    text = " ".join(unicodedata.normalize("NFC", value).split())
    # Collapsing can expose a new composition (a combining mark after a removed space).
    text = unicodedata.normalize("NFC", text)
    return text or None


def _clean_required(value: str) -> str:
    return clean_text(value) or ""


def _nfc_upper(value: str) -> str:
    # Upper-casing can decompose (e.g. "ǰ" -> "J̌"); NFC again to make it a fixed point.
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).upper())


def normalise_email(value: str | None) -> str | None:
    """Lower-case e-mail without whitespace or ``mailto:``."""
    text = clean_text(value)
    if text is None:
        return None
    while text[:7].casefold() == "mailto:":
        text = text[7:].lstrip()
    text = unicodedata.normalize("NFC", "".join(text.split()).lower())
    return text or None


_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)?(?P<authority>[^/?#]*)(?P<rest>.*)", re.S
)


def normalise_website(value: str | None) -> str | None:
    """Lower-case the scheme and host of a URL; drop a bare trailing slash."""
    text = clean_text(value)
    if text is None:
        return None
    match = _URL.fullmatch(text)
    assert match is not None  # the pattern matches any string
    scheme = (match["scheme"] or "").lower()
    userinfo, at, host = match["authority"].rpartition("@")
    rest = match["rest"]
    if rest == "/":
        rest = ""
    url = unicodedata.normalize("NFC", f"{scheme}{userinfo}{at}{host.lower()}{rest}")
    # Dropping the slash can leave a space the text rule would trim on the next pass.
    return clean_text(url)


_CODE_SEPARATORS: Final = str.maketrans("", "", ".-")


def normalise_code(value: str | None) -> str | None:
    """Upper-case identifier without whitespace, dots or dashes (VAT, IBAN, BIC)."""
    text = clean_text(value)
    if text is None:
        return None
    text = _nfc_upper("".join(text.split()).translate(_CODE_SEPARATORS))
    return text or None


# --------------------------------------------------------------------------- country

# Names (any case, accents ignored) and alpha-3 codes -> ISO-3166 alpha-2.
_COUNTRY_NAMES: Final[dict[str, str]] = {
    "NL": "netherlands|the netherlands|nederland|holland|niederlande|pays-bas|madalmaad|nld",
    "BE": "belgium|belgie|belgique|belgien|belgia|bel",
    "DE": "germany|duitsland|deutschland|allemagne|saksamaa|deu",
    "EE": "estonia|eesti|estland|estonie|est",
    "FR": "france|frankrijk|frankreich|prantsusmaa|fra",
    "LU": "luxembourg|luxemburg|luksemburg|lux",
    "GB": "united kingdom|great britain|verenigd koninkrijk|groot-brittannie|england|engeland"
    "|suurbritannia|uk|gbr",
    "IE": "ireland|ierland|iirimaa|irl",
    "FI": "finland|suomi|soome|finnland|fin",
    "LV": "latvia|letland|lati|latvija|lettland|lva",
    "LT": "lithuania|litouwen|leedu|lietuva|litauen|ltu",
    "SE": "sweden|zweden|rootsi|sverige|schweden|swe",
    "DK": "denmark|denemarken|taani|danmark|danemark|dnk",
    "NO": "norway|noorwegen|norra|norge|norwegen|nor",
    "PL": "poland|polen|poola|polska|pol",
    "ES": "spain|spanje|hispaania|espana|spanien|esp",
    "PT": "portugal|prt",
    "IT": "italy|italie|itaalia|italia|italien|ita",
    "AT": "austria|oostenrijk|osterreich|autriche|aut",
    "CH": "switzerland|zwitserland|sveits|schweiz|suisse|che",
    "US": "united states|united states of america|usa|verenigde staten|ameerika uhendriigid"
    "|vereinigte staaten|etats-unis",
    "RU": "russia|rusland|venemaa|russland|rus",
    "UA": "ukraine|oekraine|ukraina|ukr",
}
_COUNTRY_LOOKUP: Final[dict[str, str]] = {
    name: code for code, names in _COUNTRY_NAMES.items() for name in names.split("|")
}


def _country_key(text: str) -> str:
    # Keyed on the upper-cased form: it is what an unknown name is stored as, so an
    # unknown name looks up the same key on every pass (idempotency).
    decomposed = unicodedata.normalize("NFKD", _nfc_upper(text))
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(plain.casefold().split())


def normalise_country(value: str | None) -> str | None:
    """ISO alpha-2 for codes and known names; anything else kept, upper-cased."""
    text = clean_text(value)
    if text is None:
        return None
    code = _COUNTRY_LOOKUP.get(_country_key(text))
    return code if code is not None else _nfc_upper(text)


# --------------------------------------------------------------------------- postal code

_NL_POSTCODE: Final = re.compile(r"([0-9]{4}) ?-? ?([A-Za-z]{2})")


def normalise_postal_code(value: str | None, country: str | None) -> str | None:
    """Dutch ``1234 AB`` form for NL; elsewhere trimmed and upper-cased."""
    text = clean_text(value)
    if text is None:
        return None
    if country == "NL":
        match = _NL_POSTCODE.fullmatch(text)
        if match is not None:
            return f"{match[1]} {match[2].upper()}"
    return _nfc_upper(text)


# --------------------------------------------------------------------------- phone


@dataclass(frozen=True, slots=True)
class _Dialling:
    calling_code: str
    trunk_prefix: str  # "" where national numbers have none
    international_prefix: str = "00"


CALLING_CODES: Final[Mapping[str, _Dialling]] = {
    "NL": _Dialling("31", "0"),
    "BE": _Dialling("32", "0"),
    "DE": _Dialling("49", "0"),
    "EE": _Dialling("372", ""),
    "FR": _Dialling("33", "0"),
    "LU": _Dialling("352", ""),
    "GB": _Dialling("44", "0"),
    "IE": _Dialling("353", "0"),
    "FI": _Dialling("358", "0"),
    "LV": _Dialling("371", ""),
    "SE": _Dialling("46", "0"),
    "DK": _Dialling("45", ""),
    "NO": _Dialling("47", ""),
    "PL": _Dialling("48", ""),
    "ES": _Dialling("34", ""),
    "PT": _Dialling("351", ""),
    "IT": _Dialling("39", ""),  # the leading 0 of Italian landlines is part of the number
    "AT": _Dialling("43", "0"),
    "CH": _Dialling("41", "0"),
}

_DIGITS: Final = frozenset("0123456789")


def normalise_phone(value: str | None, country: str | None) -> str | None:
    """E.164 where ``country`` (alpha-2) is in ``CALLING_CODES``; else digits and ``+``."""
    text = clean_text(value)
    if text is None:
        return None
    # "(+372) 6123456": the international prefix written in brackets.
    text = re.sub(r"^\(\s*(\+|00)\s*(\d{1,3})\s*\)", r"\1\2 ", text)
    international = text.startswith("+")
    if international or text.startswith("00"):
        # "+31 (0)20 ..." writes the national trunk prefix in brackets: not dialled.
        text = text.replace("(0)", "")
    digits = "".join(ch for ch in text if ch in _DIGITS)
    if not digits:
        return None
    if international:
        return "+" + digits
    plan = CALLING_CODES.get(country or "")
    if plan is None:
        return digits
    if digits.startswith(plan.international_prefix):
        rest = digits[len(plan.international_prefix) :]
        return "+" + rest if rest else None
    if plan.trunk_prefix:
        if digits.startswith(plan.trunk_prefix):
            return "+" + plan.calling_code + digits[len(plan.trunk_prefix) :]
        return digits  # no trunk prefix where one is required: not safe to guess
    return "+" + plan.calling_code + digits


# --------------------------------------------------------------------------- records


def normalise_contact(contact: Contact) -> Contact:
    """Return ``contact`` in canonical form (see the module docstring for the rules)."""
    country = normalise_country(contact.country)
    return Contact(
        kind=contact.kind,
        name=_clean_required(contact.name),
        first_name=clean_text(contact.first_name),
        last_name=clean_text(contact.last_name),
        email=normalise_email(contact.email),
        phone=normalise_phone(contact.phone, country),
        website=normalise_website(contact.website),
        address_line1=clean_text(contact.address_line1),
        address_line2=clean_text(contact.address_line2),
        postal_code=normalise_postal_code(contact.postal_code, country),
        city=clean_text(contact.city),
        region=clean_text(contact.region),
        country=country,
        vat_number=normalise_code(contact.vat_number),
        coc_number=clean_text(contact.coc_number),
        iban=normalise_code(contact.iban),
        bic=normalise_code(contact.bic),
        customer_number=clean_text(contact.customer_number),
        archived=contact.archived,
    )


# Fields only one kind of contact has where a vendor files persons and organizations as
# different records (Simplicate): a person there has no VAT or chamber of commerce number,
# an organization no first and last name of its own.
KIND_ONLY_FIELDS: Mapping[ContactKind, frozenset[str]] = {
    "person": frozenset({"first_name", "last_name"}),
    "organization": frozenset({"vat_number", "coc_number"}),
}


def person_name(first_name: str | None, last_name: str | None) -> str | None:
    """A person's display name: first and last name joined by a space (None: neither)."""
    parts = (clean_text(first_name), clean_text(last_name))
    return " ".join(part for part in parts if part) or None


def contact_as_kind(
    fields: Mapping[str, Any], kind: ContactKind, held: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Canonical contact ``fields`` as a copy filed under ``kind`` holds them.

    One real-world contact may be filed as a person in one vendor and as an organization
    in another (a sole trader: the owner in the CRM, the business in the books). The
    fields mean the same in both filings except the kind and the name: a person's name is
    its first and last name, an organization's is the business's own name. So a copy of
    another kind than ``fields`` gets:

    - a person copy: the kind ``person`` and the name made of the first and last name
      (the organization's contact person); without either, the copy keeps its own name
      (``held``), since the business's name is no person's name;
    - an organization copy: the kind ``organization`` and its own business name
      (``held``): the person's name is not the business's; without a copy yet, the
      person's name.

    Every other field is taken as it is. A copy of the same kind is ``fields`` unchanged.
    """
    if fields.get("kind") == kind:
        return dict(fields)
    own = (held or {}).get("name")
    if kind == "person":
        name = person_name(fields.get("first_name"), fields.get("last_name")) or own
    else:
        name = own
    return {**fields, "kind": kind, "name": fields.get("name") if name is None else name}


def _line_total(line: InvoiceLine) -> Decimal:
    if line.line_total is not None:
        return money(line.line_total)
    return money(_CTX.multiply(quantity(line.quantity), money(line.unit_price)))


def normalise_line(line: InvoiceLine) -> InvoiceLine:
    """Return ``line`` in canonical form, with ``line_total`` filled in."""
    return InvoiceLine(
        description=_clean_required(line.description),
        quantity=quantity(line.quantity),
        unit_price=money(line.unit_price),
        vat_rate=vat_rate(line.vat_rate),
        line_total=_line_total(line),
    )


def _optional_id(value: str | None) -> str | None:
    # Ids are opaque: never rewritten, but an empty one means "none".
    return value if value else None


def normalise_invoice(invoice: Invoice) -> Invoice:
    """Return ``invoice`` in canonical form; stated totals are kept (only quantised)."""
    return Invoice(
        number=clean_text(invoice.number),
        contact=_optional_id(invoice.contact),
        issue_date=invoice.issue_date,
        due_date=invoice.due_date,
        currency=normalise_code(invoice.currency) or "EUR",
        status=invoice.status,
        lines=tuple(normalise_line(line) for line in invoice.lines),
        subtotal=money(invoice.subtotal),
        tax_total=money(invoice.tax_total),
        total=money(invoice.total),
        amount_paid=money(invoice.amount_paid),
        reference=clean_text(invoice.reference),
    )


def normalise_payment(payment: Payment) -> Payment:
    """Return ``payment`` in canonical form."""
    return Payment(
        invoice=_optional_id(payment.invoice),
        date=payment.date,
        amount=money(payment.amount),
        method=clean_text(payment.method),
        reference=clean_text(payment.reference),
    )


@overload
def normalise(value: Contact) -> Contact: ...
@overload
def normalise(value: Invoice) -> Invoice: ...
@overload
def normalise(value: Payment) -> Payment: ...
def normalise(value: Model) -> Model:
    """Normalise a Contact, Invoice or Payment."""
    if isinstance(value, Contact):
        return normalise_contact(value)
    if isinstance(value, Invoice):
        return normalise_invoice(value)
    if isinstance(value, Payment):
        return normalise_payment(value)
    raise TypeError(f"cannot normalise a {type(value).__name__}")


# --------------------------------------------------------------------------- storage limits

# Text fields the store indexes, with the most characters syncd keeps in each. Every cap
# is far inside a PostgreSQL btree entry (2704 bytes: 676 characters at 4 bytes each).
TEXT_LIMITS: Final[Mapping[tuple[type, str], int]] = {
    (Contact, "email"): 254,  # RFC 5321: a forward path holds at most 254 characters
    (Contact, "iban"): 34,  # ISO 13616
    (Contact, "vat_number"): 32,  # the longest VAT numbers in use have 15 or so
    (Contact, "coc_number"): 32,  # registry codes: KvK 8, Estonian registry 8...
    (Contact, "postal_code"): 32,  # the longest postal codes in use have 10
    (Invoice, "number"): 255,
}

# Numbers must stay below these magnitudes. The store keeps amounts in NUMERIC(18, 2),
# quantities in NUMERIC(18, 4) and VAT rates in NUMERIC(5, 2), and on SQLite only 15
# significant digits are exact: 13 integer digits with cents, 11 with 4 decimals.
MONEY_LIMIT: Final = Decimal("1E13")
QUANTITY_LIMIT: Final = Decimal("1E11")
VAT_RATE_LIMIT: Final = Decimal("1E3")
NUMBER_LIMITS: Final[Mapping[str, Decimal]] = {
    "subtotal": MONEY_LIMIT,
    "tax_total": MONEY_LIMIT,
    "total": MONEY_LIMIT,
    "amount_paid": MONEY_LIMIT,
    "amount": MONEY_LIMIT,
    "unit_price": MONEY_LIMIT,
    "line_total": MONEY_LIMIT,
    "quantity": QUANTITY_LIMIT,
    "vat_rate": VAT_RATE_LIMIT,
}


class UnstorableValue(ValueError):
    """A value holds fields no store syncd supports can keep; ``fields`` names them."""

    def __init__(self, problems: Iterable[tuple[str, str]]) -> None:
        listed = tuple(problems)
        self.fields: tuple[str, ...] = tuple(name for name, _ in listed)
        self.problems: tuple[str, ...] = tuple(problem for _, problem in listed)
        super().__init__("; ".join(self.problems))


def _shown_number(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 30 else f"{value:.6E}"


def _number_problems(value: Model) -> list[tuple[str, str]]:
    items: list[tuple[str, str, object]] = [
        (f.name, f.name, getattr(value, f.name)) for f in dataclasses.fields(value)
    ]
    if isinstance(value, Invoice):
        for n, line in enumerate(value.lines, start=1):
            items += [
                (f.name, f"line {n} {f.name}", getattr(line, f.name))
                for f in dataclasses.fields(line)
            ]
    problems: list[tuple[str, str]] = []
    for name, where, number in items:
        limit = NUMBER_LIMITS.get(name)
        if limit is None or not isinstance(number, Decimal) or not number.is_finite():
            continue
        if abs(number) >= limit:
            step = {"quantity": _QTY_STEP, "vat_rate": _RATE_STEP}.get(name, _CENT)
            largest = _CTX.subtract(limit, step)
            problems.append(
                (
                    where,
                    f"{where} {_shown_number(number)} is out of range: syncd stores "
                    f"-{largest} to {largest}",
                )
            )
    return problems


def _text_problems(value: Model) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for (kind, name), limit in TEXT_LIMITS.items():
        if not isinstance(value, kind):
            continue
        text = getattr(value, name)
        if isinstance(text, str) and len(text) > limit:
            problems.append(
                (name, f"{name} is {len(text)} characters long; syncd stores at most {limit}")
            )
    return problems


def storage_problems(value: Model) -> list[str]:
    """Why ``value`` (normalised) cannot be stored, one reason per field; empty if it can."""
    return [problem for _, problem in _text_problems(value) + _number_problems(value)]


def storable(value: _M) -> _M:
    """``normalise(value)``, or ``UnstorableValue`` naming every field the store cannot hold.

    Numbers are checked before normalising too: rounding one of any size is not safe.
    """
    early = _number_problems(value)
    if early:
        raise UnstorableValue(early)
    normal = normalise(value)
    problems = _text_problems(normal) + _number_problems(normal)
    if problems:
        raise UnstorableValue(problems)
    return normal


# --------------------------------------------------------------------------- totals


def compute_totals(lines: Iterable[InvoiceLine]) -> tuple[Decimal, Decimal, Decimal]:
    """``(subtotal, tax_total, total)`` in cents; VAT rounded once per VAT-rate group."""
    groups: dict[Decimal, Decimal] = {}
    for line in lines:
        rate = vat_rate(line.vat_rate)
        groups[rate] = _CTX.add(groups.get(rate, ZERO), _line_total(line))
    subtotal = ZERO
    tax_total = ZERO
    for rate, net in groups.items():
        subtotal = _CTX.add(subtotal, net)
        tax_total = _CTX.add(tax_total, money(_CTX.divide(_CTX.multiply(net, rate), 100)))
    subtotal, tax_total = money(subtotal), money(tax_total)
    return subtotal, tax_total, money(_CTX.add(subtotal, tax_total))


def totals_match(invoice: Invoice, tolerance: Decimal = Decimal("0.01")) -> bool:
    """Whether the invoice's stated totals agree with its lines within ``tolerance``."""
    _check_decimal("totals_match", "tolerance", tolerance)
    computed = compute_totals(invoice.lines)
    stated = (invoice.subtotal, invoice.tax_total, invoice.total)
    return all(abs(_CTX.subtract(a, b)) <= tolerance for a, b in zip(computed, stated, strict=True))


def with_computed_totals(invoice: Invoice) -> Invoice:
    """``invoice`` with subtotal, tax and total replaced by those computed from its lines."""
    subtotal, tax_total, total = compute_totals(invoice.lines)
    return dataclasses.replace(invoice, subtotal=subtotal, tax_total=tax_total, total=total)


# --------------------------------------------------------------------------- fields (JSON)


def _json_value(value: object) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, InvoiceLine):
        return {f: _json_value(getattr(value, f)) for f in INVOICE_LINE_FIELDS}
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def to_fields(value: Model) -> dict[str, Any]:
    """A JSON-able dict of every field: Decimals as strings, dates ISO, lines as dicts.

    No normalisation happens here: ``*_from_fields(to_fields(x)) == x`` for any ``x``.
    """
    return {f.name: _json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}


_INVOICE_DECIMALS: Final = frozenset({"subtotal", "tax_total", "total", "amount_paid"})
_INVOICE_DATES: Final = frozenset({"issue_date", "due_date"})
_LINE_DECIMALS: Final = frozenset({"quantity", "unit_price", "vat_rate", "line_total"})


def _decimal_from(owner: str, name: str, raw: object) -> Decimal | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            number = Decimal(raw)
        except ArithmeticError:
            raise ValueError(f"{owner}.{name} is not a decimal number") from None
        return number
    raise TypeError(f"{owner}.{name} must be stored as a string, not {type(raw).__name__}")


def _date_from(owner: str, name: str, raw: object) -> dt.date | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{owner}.{name} is not an ISO date") from None
    raise TypeError(f"{owner}.{name} must be stored as an ISO string, not {type(raw).__name__}")


def _check_keys(owner: str, data: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"{owner}: unknown field(s) {', '.join(unknown)}")


def contact_from_fields(data: Mapping[str, Any]) -> Contact:
    """Rebuild a Contact from ``to_fields`` output; absent fields take their defaults."""
    _check_keys("Contact", data, CONTACT_FIELDS)
    return Contact(**dict(data))


def _line_from_fields(data: object) -> InvoiceLine:
    if not isinstance(data, Mapping):
        raise TypeError(f"InvoiceLine must be stored as an object, not {type(data).__name__}")
    _check_keys("InvoiceLine", data, INVOICE_LINE_FIELDS)
    values: dict[str, Any] = {
        k: _decimal_from("InvoiceLine", k, v) if k in _LINE_DECIMALS else v for k, v in data.items()
    }
    return InvoiceLine(**values)


def invoice_from_fields(data: Mapping[str, Any]) -> Invoice:
    """Rebuild an Invoice from ``to_fields`` output; absent fields take their defaults."""
    _check_keys("Invoice", data, INVOICE_FIELDS)
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key in _INVOICE_DECIMALS:
            values[key] = _decimal_from("Invoice", key, raw)
        elif key in _INVOICE_DATES:
            values[key] = _date_from("Invoice", key, raw)
        elif key == "lines":
            if not isinstance(raw, list | tuple):
                raise TypeError(f"Invoice.lines must be stored as a list, not {type(raw).__name__}")
            values[key] = tuple(_line_from_fields(line) for line in raw)
        else:
            values[key] = raw
    return Invoice(**values)


def payment_from_fields(data: Mapping[str, Any]) -> Payment:
    """Rebuild a Payment from ``to_fields`` output."""
    _check_keys("Payment", data, PAYMENT_FIELDS)
    values: dict[str, Any] = dict(data)
    if "date" in values:
        values["date"] = _date_from("Payment", "date", values["date"])
    if "amount" in values:
        values["amount"] = _decimal_from("Payment", "amount", values["amount"])
    return Payment(**values)


def from_fields(kind: type[_M], data: Mapping[str, Any]) -> _M:
    """Rebuild a value of class ``kind`` from ``to_fields`` output."""
    if kind is Contact:
        return contact_from_fields(data)
    if kind is Invoice:
        return invoice_from_fields(data)
    if kind is Payment:
        return payment_from_fields(data)
    raise TypeError(f"no field conversion for {kind!r}")


# --------------------------------------------------------------------------- fingerprint

_FINGERPRINT_TAGS: Final[Mapping[type, str]] = {
    Contact: "contact",
    Invoice: "invoice",
    Payment: "payment",
}


def canonical_json(value: Model) -> str:
    """The normalised value as compact JSON with sorted keys (what ``fingerprint`` hashes)."""
    payload = {
        "type": _FINGERPRINT_TAGS[type(value)],
        "fields": to_fields(normalise(value)),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(value: Model) -> str:
    """Hex SHA-256 of the normalised content; equal exactly when the normalised values are."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
