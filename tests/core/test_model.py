"""Tests for the canonical model: normalisation rules, totals, fields and fingerprints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.core.model import (
    CALLING_CODES,
    CONTACT_FIELDS,
    INVOICE_FIELDS,
    INVOICE_OWNER_FIELDS,
    INVOICE_STATUSES,
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    canonical_json,
    clean_text,
    compute_totals,
    contact_as_kind,
    contact_from_fields,
    fingerprint,
    from_fields,
    invoice_from_fields,
    money,
    normalise,
    normalise_code,
    normalise_contact,
    normalise_country,
    normalise_email,
    normalise_invoice,
    normalise_line,
    normalise_payment,
    normalise_phone,
    normalise_postal_code,
    normalise_website,
    payment_from_fields,
    person_name,
    quantity,
    to_fields,
    totals_match,
    vat_rate,
    with_computed_totals,
)

D = Decimal


# ----------------------------------------------------------------------------- field names


def test_contact_fields_are_the_contact_dataclass_fields_in_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(Contact)) == CONTACT_FIELDS


def test_invoice_fields_are_the_invoice_dataclass_fields() -> None:
    assert tuple(f.name for f in dataclasses.fields(Invoice)) == INVOICE_FIELDS
    assert "lines" in INVOICE_FIELDS and "payments" not in INVOICE_FIELDS


def test_invoice_owner_fields_are_invoice_fields_plus_payments() -> None:
    assert set(INVOICE_OWNER_FIELDS) - set(INVOICE_FIELDS) == {"payments"}


# ----------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    "build",
    [
        lambda: InvoiceLine("x", 1.5, D("1"), D("21")),  # type: ignore[arg-type]
        lambda: InvoiceLine("x", D("1"), 9.99, D("21")),  # type: ignore[arg-type]
        lambda: InvoiceLine("x", D("1"), D("1"), 21.0),  # type: ignore[arg-type]
        lambda: InvoiceLine("x", D("1"), D("1"), D("21"), 1.0),  # type: ignore[arg-type]
        lambda: Payment(None, dt.date(2024, 1, 1), 10.0),  # type: ignore[arg-type]
        lambda: Invoice(None, None, None, None, subtotal=1.0),  # type: ignore[arg-type]
        lambda: Invoice(None, None, None, None, total=0.1),  # type: ignore[arg-type]
        lambda: Invoice(None, None, None, None, amount_paid=2.5),  # type: ignore[arg-type]
    ],
)
def test_a_float_in_a_numeric_field_is_a_type_error(build: Any) -> None:
    with pytest.raises(TypeError, match="float"):
        build()


def test_an_int_in_a_numeric_field_is_a_type_error_too() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        InvoiceLine("x", 1, D("1"), D("21"))  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [D("NaN"), D("Infinity"), D("-Infinity")])
def test_non_finite_decimals_are_rejected(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="finite"):
        Payment(None, dt.date(2024, 1, 1), bad)


def test_a_datetime_in_a_date_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="date"):
        Payment(None, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), D("1"))
    with pytest.raises(TypeError, match="issue_date"):
        Invoice(None, None, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), None)


def test_unknown_status_and_kind_are_rejected() -> None:
    with pytest.raises(ValueError, match="status"):
        Invoice(None, None, None, None, status="unpaid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Contact("company", "Acme")  # type: ignore[arg-type]


def test_lines_must_be_a_tuple_of_invoice_lines() -> None:
    line = InvoiceLine("x", D("1"), D("1"), D("21"))
    with pytest.raises(TypeError, match="tuple"):
        Invoice(None, None, None, None, lines=[line])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="InvoiceLine"):
        Invoice(None, None, None, None, lines=({"description": "x"},))  # type: ignore[arg-type]


def test_non_text_in_a_text_field_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="customer_number"):
        Contact("organization", "Acme", customer_number=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="archived"):
        Contact("organization", "Acme", archived=1)  # type: ignore[arg-type]


def test_values_are_frozen_and_hashable() -> None:
    contact = Contact("person", "Jane")
    with pytest.raises(dataclasses.FrozenInstanceError):
        contact.name = "John"  # type: ignore[misc]
    invoice = Invoice("1", None, None, None, lines=(InvoiceLine("x", D("1"), D("1"), D("0")),))
    assert hash(invoice) == hash(dataclasses.replace(invoice))


# ----------------------------------------------------------------------------- text rules


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Acme   B.V. ", "Acme B.V."),
        ("line\none\t two", "line one two"),
        ("\u00a0Keskväljak\u2009 1\u00a0", "Keskväljak 1"),
        ("e\u0301", "\u00e9"),  # decomposed é becomes the composed form
        ("", None),
        ("   \n\t ", None),
        (None, None),
    ],
)
def test_clean_text_trims_collapses_and_empties_to_none(
    raw: str | None, expected: str | None
) -> None:
    assert clean_text(raw) == expected


def test_required_text_stays_a_string_when_empty() -> None:
    assert normalise_contact(Contact("organization", "   ")).name == ""
    assert normalise_line(InvoiceLine("  ", D("1"), D("1"), D("0"))).description == ""


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Info@ACME.nl ", "info@acme.nl"),
        ("mailto:Jane@Example.COM", "jane@example.com"),
        ("MAILTO: jane@example.com", "jane@example.com"),
        ("jane @ example.com", "jane@example.com"),
        ("  ", None),
    ],
)
def test_email_is_lower_case_without_spaces(raw: str, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTPS://WWW.Acme.NL/", "https://www.acme.nl"),
        ("https://Acme.nl/Contact/Form", "https://acme.nl/Contact/Form"),
        ("WWW.ACME.NL", "www.acme.nl"),
        ("Acme.nl/Over-Ons", "acme.nl/Over-Ons"),
        ("https://User:PW@Host.EE/", "https://User:PW@host.ee"),
        ("https://acme.nl/?Q=1", "https://acme.nl/?Q=1"),
        (" ", None),
        # A space left before a dropped slash goes too (normalising twice changes nothing).
        ("acme.nl /", "acme.nl"),
        ("0 /", "0"),
    ],
)
def test_website_lower_cases_scheme_and_host_only(raw: str, expected: str | None) -> None:
    assert normalise_website(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nl 8888.77.666 b01", "NL888877666B01"),
        ("NL91 ABNA 0417 1643 00", "NL91ABNA0417164300"),
        ("ee-1009-87654", "EE100987654"),
        ("abnanl2a", "ABNANL2A"),
        (" - . ", None),
    ],
)
def test_vat_iban_and_bic_are_upper_case_without_separators(raw: str, expected: str | None) -> None:
    assert normalise_code(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("nl", "NL"),
        (" NL ", "NL"),
        ("Nederland", "NL"),
        ("The Netherlands", "NL"),
        ("netherlands", "NL"),
        ("NLD", "NL"),
        ("Estonia", "EE"),
        ("Eesti", "EE"),
        ("België", "BE"),
        ("Deutschland", "DE"),
        ("Österreich", "AT"),
        ("United  Kingdom", "GB"),
        ("uk", "GB"),
        ("Atlantis", "ATLANTIS"),  # unknown names are kept, upper-cased
        ("xk", "XK"),
        ("", None),
    ],
)
def test_country_becomes_iso_alpha2_and_unknown_names_are_kept_upper_cased(
    raw: str, expected: str | None
) -> None:
    assert normalise_country(raw) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("1234ab", "NL", "1234 AB"),
        ("1234 ab", "NL", "1234 AB"),
        ("1234-AB", "NL", "1234 AB"),
        (" 1234  AB ", "NL", "1234 AB"),
        ("12345", "NL", "12345"),  # not a Dutch form: only trimmed/upper-cased
        ("1234ab", None, "1234AB"),
        ("10115", "EE", "10115"),
        ("sw1a 1aa", "GB", "SW1A 1AA"),
        ("  ", "NL", None),
    ],
)
def test_postal_code_rules(raw: str, country: str | None, expected: str | None) -> None:
    assert normalise_postal_code(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("06-12345678", "NL", "+31612345678"),
        ("0031 6 1234 5678", "NL", "+31612345678"),
        ("0031 6 1234 5678", "BE", "+31612345678"),
        ("+31 (0)6 1234 5678", "NL", "+31612345678"),
        ("+31 (0)20 123 4567", None, "+31201234567"),
        ("(020) 123 45 67", "NL", "+31201234567"),
        ("+32 2 123 45 67", "NL", "+3221234567"),  # an explicit + keeps its country
        ("02 123 45 67", "BE", "+3221234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("5123 4567", "EE", "+37251234567"),
        ("00372 5123 4567", "EE", "+37251234567"),
        ("06 1234 5678", "IT", "+390612345678"),  # Italian landlines keep their 0
        ("612345678", "NL", "612345678"),  # missing trunk 0: not guessed
        ("06-12345678", None, "0612345678"),  # unknown country: digits only
        ("06-12345678", "ATLANTIS", "0612345678"),
        ("0031 6 1234 5678", None, "0031612345678"),
        ("n/a", "NL", None),
        ("00", "NL", None),
        ("+", None, None),
    ],
)
def test_phone_becomes_e164_where_the_country_is_known(
    raw: str, country: str | None, expected: str | None
) -> None:
    assert normalise_phone(raw, country) == expected


def test_at_least_the_four_home_countries_have_calling_codes() -> None:
    assert {"NL", "EE", "BE", "DE"} <= set(CALLING_CODES)


def test_contact_normalisation_uses_the_normalised_country_for_phone_and_postcode() -> None:
    contact = Contact(
        "organization",
        "  Acme   BV ",
        email=" Info@ACME.nl ",
        phone="06-12345678",
        website="HTTPS://WWW.Acme.NL/",
        postal_code="1234ab",
        country="Nederland",
        vat_number="nl 8888.77.666 b01",
        iban="nl91 abna 0417 1643 00",
        bic="abnanl2a",
        coc_number=" 12345678 ",
        customer_number="",
        archived=True,
    )
    assert normalise_contact(contact) == Contact(
        "organization",
        "Acme BV",
        email="info@acme.nl",
        phone="+31612345678",
        website="https://www.acme.nl",
        postal_code="1234 AB",
        country="NL",
        vat_number="NL888877666B01",
        iban="NL91ABNA0417164300",
        bic="ABNANL2A",
        coc_number="12345678",
        customer_number=None,
        archived=True,
    )


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.005", "1.01"),
        ("1.004999", "1.00"),
        ("-1.005", "-1.01"),  # half-up rounds away from zero
        ("2.5", "2.50"),
        ("-0.001", "0.00"),  # no negative zero
        ("1E+3", "1000.00"),
    ],
)
def test_money_is_quantised_to_cents_half_up(raw: str, expected: str) -> None:
    assert str(money(D(raw))) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.50", "1.5"),
        ("1.5", "1.5"),
        ("2.00000", "2"),
        ("0.33333", "0.3333"),
        ("0.00005", "0.0001"),
        ("1E+2", "100"),
        ("-0.00001", "0"),
    ],
)
def test_quantity_has_at_most_four_decimals_without_trailing_zeros(raw: str, expected: str) -> None:
    assert str(quantity(D(raw))) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("21.00", "21"), ("9", "9"), ("5.5", "5.5"), ("20.125", "20.13"), ("0.0", "0")],
)
def test_vat_rate_has_at_most_two_decimals_without_trailing_zeros(raw: str, expected: str) -> None:
    assert str(vat_rate(D(raw))) == expected


def test_line_total_is_computed_when_missing_and_quantised_when_given() -> None:
    computed = normalise_line(InvoiceLine(" Hours ", D("1.5"), D("80.005"), D("21.00")))
    assert computed == InvoiceLine("Hours", D("1.5"), D("80.01"), D("21"), D("120.02"))
    assert str(computed.line_total) == "120.02"
    given_total = normalise_line(InvoiceLine("x", D("3"), D("0.33"), D("9"), D("0.999")))
    assert str(given_total.line_total) == "1.00"


def test_invoice_normalisation_quantises_amounts_and_keeps_stated_totals() -> None:
    invoice = Invoice(
        number="  INV- 1 ",
        contact="",
        issue_date=dt.date(2024, 3, 1),
        due_date=dt.date(2024, 3, 31),
        currency=" eur ",
        status="sent",
        lines=(InvoiceLine("a", D("2"), D("10"), D("21")),),
        subtotal=D("20"),
        tax_total=D("4.2"),
        total=D("999"),  # wrong, but what the vendor says: kept
        amount_paid=D("0"),
        reference="  ref  1 ",
    )
    result = normalise_invoice(invoice)
    assert result.number == "INV- 1"
    assert result.contact is None
    assert result.currency == "EUR"
    assert [str(x) for x in (result.subtotal, result.tax_total, result.total)] == [
        "20.00",
        "4.20",
        "999.00",
    ]
    assert str(result.amount_paid) == "0.00"
    assert result.reference == "ref 1"
    assert result.lines[0].line_total == D("20.00")


def test_empty_currency_defaults_to_eur() -> None:
    assert normalise_invoice(Invoice(None, None, None, None, currency=" ")).currency == "EUR"


def test_payment_normalisation() -> None:
    payment = Payment("", dt.date(2024, 5, 1), D("10.005"), method="  bank ", reference="")
    assert normalise_payment(payment) == Payment(None, dt.date(2024, 5, 1), D("10.01"), "bank")


def test_generic_normalise_dispatches_and_rejects_other_types() -> None:
    assert normalise(Contact("person", " Jane ")).name == "Jane"
    with pytest.raises(TypeError):
        normalise("not a model")  # type: ignore[call-overload]


# ----------------------------------------------------------------------------- totals


def test_tax_is_rounded_once_per_vat_group_not_per_line() -> None:
    # Each line's VAT is 0.0042, which rounds to 0.00 per line; the group's 0.021 -> 0.02.
    lines = tuple(InvoiceLine("x", D("1"), D("0.02"), D("21")) for _ in range(5))
    assert compute_totals(lines) == (D("0.10"), D("0.02"), D("0.12"))


def test_totals_sum_separate_vat_groups() -> None:
    lines = (
        InvoiceLine("a", D("1.5"), D("10"), D("21")),
        InvoiceLine("b", D("3"), D("0.33"), D("9")),
        InvoiceLine("c", D("1"), D("100"), D("0")),
        InvoiceLine("d", D("1"), D("5.00"), D("21.00")),  # same group as "a"
    )
    # 21 %: 20.00 net -> 4.20; 9 %: 0.99 net -> 0.0891 -> 0.09; 0 %: 100.00 -> 0.
    assert compute_totals(lines) == (D("120.99"), D("4.29"), D("125.28"))


def test_totals_of_no_lines_are_zero() -> None:
    assert compute_totals(()) == (D("0.00"), D("0.00"), D("0.00"))


def test_totals_match_within_tolerance() -> None:
    lines = (InvoiceLine("a", D("2"), D("10"), D("21")),)
    good = Invoice(
        None, None, None, None, lines=lines, subtotal=D("20"), tax_total=D("4.20"), total=D("24.20")
    )
    assert totals_match(good)
    off_by_cent = dataclasses.replace(good, tax_total=D("4.21"), total=D("24.21"))
    assert totals_match(off_by_cent)
    assert not totals_match(off_by_cent, tolerance=D("0"))
    assert not totals_match(dataclasses.replace(good, total=D("25.00")))


def test_with_computed_totals_fills_totals_from_lines() -> None:
    lines = (InvoiceLine("a", D("2"), D("10"), D("21")),)
    invoice = with_computed_totals(Invoice(None, None, None, None, lines=lines))
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (D("20"), D("4.2"), D("24.2"))
    assert totals_match(invoice, tolerance=D("0"))


# ----------------------------------------------------------------------------- fields


def test_to_fields_is_json_able_with_decimal_strings_and_iso_dates() -> None:
    invoice = Invoice(
        "1",
        "c",
        dt.date(2024, 1, 2),
        None,
        lines=(InvoiceLine("a", D("1.50"), D("2"), D("21")),),
        total=D("3.63"),
    )
    fields = to_fields(invoice)
    assert fields["issue_date"] == "2024-01-02"
    assert fields["total"] == "3.63"
    assert fields["lines"] == [
        {
            "description": "a",
            "quantity": "1.50",
            "unit_price": "2",
            "vat_rate": "21",
            "line_total": None,
        }
    ]
    assert json.loads(json.dumps(fields)) == fields


def test_from_fields_rejects_unknown_keys_and_wrong_storage_types() -> None:
    with pytest.raises(ValueError, match="colour"):
        contact_from_fields({"kind": "person", "name": "J", "colour": "red"})
    with pytest.raises(TypeError, match="string"):
        invoice_from_fields(
            {"number": None, "contact": None, "issue_date": None, "due_date": None, "total": 1.5}
        )
    with pytest.raises(ValueError, match="decimal"):
        payment_from_fields({"invoice": None, "date": "2024-01-01", "amount": "ten"})
    with pytest.raises(ValueError, match="ISO"):
        payment_from_fields({"invoice": None, "date": "yesterday", "amount": "1"})


def test_from_fields_uses_defaults_for_absent_fields() -> None:
    contact = contact_from_fields({"kind": "person", "name": "Jane"})
    assert contact == Contact("person", "Jane")
    assert from_fields(Contact, to_fields(contact)) == contact


# ----------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_hex_sha256_and_stable_across_releases() -> None:
    contact = Contact("organization", "Acme BV", email="info@acme.nl", country="NL")
    # Pinned: a change here re-fingerprints every stored link (a full re-sync of snapshots).
    assert fingerprint(contact) == fingerprint(normalise(contact))
    assert canonical_json(contact).startswith('{"fields":{"address_line1":null,')
    assert fingerprint(contact) == (
        "ee73fe4777470353d1ac6d0740e330c7739e57ba205c6ed552d6b65b6340b4b6"
    )
    messy = Contact("organization", " Acme  BV", email="INFO@acme.nl ", country="Nederland")
    assert fingerprint(messy) == fingerprint(contact)


def test_fingerprint_ignores_decimal_formatting_after_quantising() -> None:
    a = InvoiceLine("x", D("1.50"), D("2.5"), D("21.00"))
    b = InvoiceLine("x", D("1.5"), D("2.50"), D("21"))
    inv = Invoice("1", None, None, None)
    assert fingerprint(dataclasses.replace(inv, lines=(a,))) == fingerprint(
        dataclasses.replace(inv, lines=(b,))
    )


def test_fingerprint_differs_between_resource_types_with_the_same_fields() -> None:
    payment = Payment(None, dt.date(2024, 1, 1), D("1"))
    assert canonical_json(payment).startswith('{"fields":')
    assert '"type":"payment"' in canonical_json(payment)


# ============================================================================= properties

# No per-example deadline: a loaded 2-core CI machine must not turn slowness into failure.
relaxed = settings(deadline=None)

_messy_chars = st.characters(codec="utf-8", exclude_categories=("Cs",))
messy_text = st.text(_messy_chars, max_size=20)


realistic_names = st.sampled_from(
    ["Acme B.V.", " Jänes OÜ ", "De  Vries\tBouw", "Müller GmbH", "Café   Noir", ""]
)
optional_text = st.one_of(st.none(), realistic_names, messy_text)
countries = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "NL",
            "nl",
            "Nederland",
            "Netherlands",
            "EE",
            "Eesti",
            "Estonia",
            "be",
            "België",
            "DE",
            "Deutschland",
            "Atlantis",
            "xk",
            "IT",
            "uk",
            "NLD",
        ]
    ),
    messy_text,
)
phones = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "06-12345678",
            "0031 6 1234 5678",
            "+31 (0)6 1234 5678",
            "5123 4567",
            "+372 5123 4567",
            "(020) 123 45 67",
            "00",
            "+",
            "n/a",
            "612345678",
        ]
    ),
    st.text(st.sampled_from("0123456789 +-()/."), max_size=16),
    messy_text,
)
codes = st.one_of(
    st.none(),
    st.sampled_from(["nl 8888.77.666 b01", "NL91 ABNA 0417 1643 00", "abnanl2a", "ee-100 987654"]),
    messy_text,
)
emails = st.one_of(
    st.none(),
    st.sampled_from([" Info@ACME.nl ", "mailto:Jane@X.ee", "mailto:mailto:a@b"]),
    messy_text,
)
websites = st.one_of(
    st.none(), st.sampled_from(["HTTPS://WWW.Acme.NL/", "acme.nl/", "http://U@H.ee/P"]), messy_text
)
postcodes = st.one_of(
    st.none(), st.sampled_from(["1234ab", "1234 AB", "1234-ab", "10115"]), messy_text
)

contacts = st.builds(
    Contact,
    kind=st.sampled_from(["organization", "person"]),
    name=st.one_of(realistic_names, messy_text),
    first_name=optional_text,
    last_name=optional_text,
    email=emails,
    phone=phones,
    website=websites,
    address_line1=optional_text,
    address_line2=optional_text,
    postal_code=postcodes,
    city=optional_text,
    region=optional_text,
    country=countries,
    vat_number=codes,
    coc_number=optional_text,
    iban=codes,
    bic=codes,
    customer_number=optional_text,
    archived=st.booleans(),
)

decimals = st.decimals(
    min_value=D("-1000000"), max_value=D("1000000"), allow_nan=False, allow_infinity=False
)
dates = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 12, 31))
lines = st.builds(
    InvoiceLine,
    description=st.one_of(realistic_names, messy_text),
    quantity=decimals,
    unit_price=decimals,
    vat_rate=st.one_of(st.sampled_from([D("0"), D("9"), D("21.00"), D("22"), D("5.5")]), decimals),
    line_total=st.one_of(st.none(), decimals),
)
ids = st.one_of(st.none(), st.just(""), st.sampled_from(["organization:abc", "42", "c-1"]))
invoices = st.builds(
    Invoice,
    number=optional_text,
    contact=ids,
    issue_date=st.one_of(st.none(), dates),
    due_date=st.one_of(st.none(), dates),
    currency=st.sampled_from(["EUR", "eur", " usd ", "", "GBP"]),
    status=st.sampled_from(INVOICE_STATUSES),
    lines=st.lists(lines, max_size=4).map(tuple),
    subtotal=decimals,
    tax_total=decimals,
    total=decimals,
    amount_paid=decimals,
    reference=optional_text,
)
payments = st.builds(
    Payment,
    invoice=ids,
    date=dates,
    amount=decimals,
    method=optional_text,
    reference=optional_text,
)
models = st.one_of(contacts, invoices, payments)


@relaxed
@given(contacts)
def test_contact_normalisation_is_idempotent(contact: Contact) -> None:
    once = normalise_contact(contact)
    assert normalise_contact(once) == once


@relaxed
@given(invoices)
def test_invoice_normalisation_is_idempotent(invoice: Invoice) -> None:
    once = normalise_invoice(invoice)
    assert normalise_invoice(once) == once
    assert to_fields(normalise_invoice(once)) == to_fields(once)  # same Decimal exponents too


@relaxed
@given(payments)
def test_payment_normalisation_is_idempotent(payment: Payment) -> None:
    once = normalise_payment(payment)
    assert normalise_payment(once) == once
    assert to_fields(normalise_payment(once)) == to_fields(once)


@relaxed
@given(models)
def test_fields_round_trip_exactly_through_json(value: Contact | Invoice | Payment) -> None:
    fields = json.loads(json.dumps(to_fields(value)))
    rebuilt = from_fields(type(value), fields)
    assert rebuilt == value
    assert to_fields(rebuilt) == to_fields(value)  # exponents preserved, not just equal values


@relaxed
@given(models, models)
def test_fingerprints_are_equal_exactly_when_normalised_values_are(
    a: Contact | Invoice | Payment, b: Contact | Invoice | Payment
) -> None:
    same_content = type(a) is type(b) and normalise(a) == normalise(b)  # type: ignore[arg-type]
    assert (fingerprint(a) == fingerprint(b)) == same_content


def _noisy_text(value: str | None, pad: str) -> str | None:
    """Same text after normalisation: padding and doubled spaces."""
    if value is None:
        return pad if pad.strip() == "" and pad else None
    return pad + value.replace(" ", "  ") + pad


def _noisy_code(value: str | None) -> str | None:
    if value is None:
        return None
    spaced = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return spaced.lower().replace(" ", " . ", 1)


def _shout_host(url: str) -> str:
    """Upper-case scheme and host (not the path) and add a trailing slash when pathless."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme.upper()}://{host.upper()}{slash}{path}" + ("" if slash else "/")


def _noisy_postcode(value: str | None, country: str | None) -> str | None:
    if value is None:
        return None
    return value.replace(" ", "").lower() if country == "NL" else value.lower()


def _reformat_contact(c: Contact, pad: str) -> Contact:
    return dataclasses.replace(
        c,
        name=_noisy_text(c.name, pad) or "",
        first_name=_noisy_text(c.first_name, pad),
        city=_noisy_text(c.city, pad),
        email=None if c.email is None else pad + c.email.upper() + pad,
        website=None if c.website is None else _shout_host(c.website),
        vat_number=_noisy_code(c.vat_number),
        iban=_noisy_code(c.iban),
        bic=_noisy_code(c.bic),
        country=None if c.country is None else pad + c.country.lower() + pad,
        postal_code=_noisy_postcode(c.postal_code, c.country),
    )


ascii_words = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 "), max_size=12)
clean_contacts = st.builds(
    Contact,
    kind=st.sampled_from(["organization", "person"]),
    name=ascii_words,
    first_name=st.one_of(st.none(), ascii_words),
    city=st.one_of(st.none(), ascii_words),
    email=st.one_of(
        st.none(), st.from_regex(r"[a-z0-9.]{1,8}@[a-z]{1,8}\.(nl|ee|com)", fullmatch=True)
    ),
    website=st.one_of(
        st.none(), st.from_regex(r"https://[a-z]{1,8}\.nl/[A-Za-z]{1,5}", fullmatch=True)
    ),
    vat_number=st.one_of(st.none(), st.from_regex(r"NL[0-9]{9}B[0-9]{2}", fullmatch=True)),
    iban=st.one_of(st.none(), st.from_regex(r"NL[0-9]{2}[A-Z]{4}[0-9]{10}", fullmatch=True)),
    bic=st.one_of(st.none(), st.from_regex(r"[A-Z]{6}[0-9A-Z]{2}", fullmatch=True)),
    country=st.sampled_from([None, "NL"]),
    postal_code=st.one_of(st.none(), st.from_regex(r"[1-9][0-9]{3} [A-Z]{2}", fullmatch=True)),
    phone=st.one_of(st.none(), st.from_regex(r"\+31[1-9][0-9]{8}", fullmatch=True)),
).map(normalise_contact)


@relaxed
@given(clean_contacts, st.sampled_from([" ", "\t", "\u00a0", "  \n"]))
def test_contacts_differing_only_in_formatting_fingerprint_equal(
    contact: Contact, pad: str
) -> None:
    noisy = _reformat_contact(contact, pad)
    assert noisy != contact or pad == ""
    assert normalise_contact(noisy) == contact
    assert fingerprint(noisy) == fingerprint(contact)


_contact_text_fields = [f for f in CONTACT_FIELDS if f not in ("kind", "archived", "name")]


@relaxed
@given(
    clean_contacts,
    st.sampled_from(_contact_text_fields),
    st.text("QRSTUVW", min_size=1, max_size=6),
)
def test_contacts_differing_in_content_fingerprint_differently(
    contact: Contact, field: str, extra: str
) -> None:
    old = getattr(contact, field)
    if field == "phone":
        extra = extra.translate(str.maketrans("QRSTUVW", "1234567"))
    changed = dataclasses.replace(contact, **{field: (old or "") + extra})
    assert normalise_contact(changed) != contact
    assert fingerprint(changed) != fingerprint(contact)
    flipped = dataclasses.replace(contact, archived=not contact.archived)
    assert fingerprint(flipped) != fingerprint(contact)


def _respell(value: Decimal) -> Decimal:
    """The same number with two extra trailing zeros (1.5 -> 1.500)."""
    return value.quantize(Decimal(1).scaleb(value.as_tuple().exponent - 2))  # type: ignore[operator]


@relaxed
@given(invoices)
def test_invoices_differing_only_in_decimal_spelling_fingerprint_equal(invoice: Invoice) -> None:
    base = normalise_invoice(invoice)
    respelled = dataclasses.replace(
        base,
        lines=tuple(
            dataclasses.replace(
                line,
                quantity=_respell(line.quantity),
                unit_price=_respell(line.unit_price),
                vat_rate=_respell(line.vat_rate),
                description=" " + line.description + " ",
            )
            for line in base.lines
        ),
        subtotal=_respell(base.subtotal),
        total=_respell(base.total),
        currency=base.currency.lower(),
    )
    assert to_fields(respelled) != to_fields(base) or not base.lines
    assert fingerprint(respelled) == fingerprint(base)


@relaxed
@given(invoices, st.sampled_from(["subtotal", "tax_total", "total", "amount_paid"]))
def test_invoices_differing_by_a_cent_fingerprint_differently(invoice: Invoice, field: str) -> None:
    base = normalise_invoice(invoice)
    changed = dataclasses.replace(base, **{field: getattr(base, field) + D("0.01")})
    assert fingerprint(changed) != fingerprint(base)


@relaxed
@given(payments, st.integers(min_value=1, max_value=3650))
def test_payments_on_different_dates_fingerprint_differently(payment: Payment, days: int) -> None:
    moved = dataclasses.replace(payment, date=payment.date + dt.timedelta(days=days))
    assert fingerprint(moved) != fingerprint(payment)


def _half_up(x: Fraction) -> int:
    """Round a rational to the nearest integer, ties away from zero."""
    sign = -1 if x < 0 else 1
    return sign * math.floor(abs(x) + Fraction(1, 2))


exact_lines = st.builds(
    InvoiceLine,
    description=st.just("x"),
    quantity=st.decimals(min_value=D("-1000"), max_value=D("1000"), places=4),
    unit_price=st.decimals(min_value=D("-100000"), max_value=D("100000"), places=2),
    vat_rate=st.sampled_from([D("0"), D("9"), D("21"), D("22")]),
)


@relaxed
@given(st.lists(exact_lines, min_size=1, max_size=20))
def test_totals_are_exact_to_the_cent(lines_: list[InvoiceLine]) -> None:
    # Reference computation in integer cents with exact rationals.
    groups: dict[Decimal, int] = {}
    for line in lines_:
        cents = _half_up(Fraction(line.quantity) * Fraction(line.unit_price) * 100)
        groups[line.vat_rate] = groups.get(line.vat_rate, 0) + cents
    subtotal = sum(groups.values())
    tax = sum(_half_up(Fraction(net) * Fraction(rate) / 100) for rate, net in groups.items())

    got = compute_totals(lines_)
    expected = tuple(Decimal(c).scaleb(-2) for c in (subtotal, tax, subtotal + tax))
    assert got == expected
    assert all(v.as_tuple().exponent == -2 for v in got)


def test_phone_with_the_international_prefix_in_brackets() -> None:
    from syncd.core.model import normalise_phone

    assert normalise_phone("(+372) 6123456", "EE") == "+3726123456"
    assert normalise_phone("(00372) 6123456", "EE") == "+3726123456"
    assert normalise_phone("(020) 1234567", "NL") == "+31201234567"


# ----------------------------------------------------------------------------- storage limits


def _org(**fields: Any) -> Contact:
    return Contact(**{"kind": "organization", "name": "Acme", **fields})


def _invoice_with(line: InvoiceLine, **fields: Any) -> Invoice:
    return Invoice(
        number="1", contact="c1", issue_date=None, due_date=None, lines=(line,), **fields
    )


def _line(**fields: Any) -> InvoiceLine:
    values: dict[str, Any] = {
        "description": "work",
        "quantity": D("1"),
        "unit_price": D("10"),
        "vat_rate": D("21"),
    }
    values.update(fields)
    return InvoiceLine(**values)


def test_storable_returns_the_normalised_value() -> None:
    from syncd.core.model import storable

    contact = _org(email=" Info@Acme.NL ", iban="nl91 abna 0417 1643 00")
    assert storable(contact) == normalise(contact)
    payment = Payment(invoice="i1", date=dt.date(2026, 1, 2), amount=D("9999999999999.99"))
    assert storable(payment) == normalise(payment)


@pytest.mark.parametrize(
    ("field", "limit"),
    [("email", 254), ("iban", 34), ("vat_number", 32), ("coc_number", 32), ("postal_code", 32)],
)
def test_an_indexed_contact_field_is_capped(field: str, limit: int) -> None:
    from syncd.core.model import UnstorableValue, storable

    fits = "A" * (limit - 3) + "@x1"  # normalisation keeps this length for every field
    assert len(getattr(storable(_org(**{field: fits})), field)) == limit
    with pytest.raises(UnstorableValue) as refused:
        storable(_org(**{field: fits + "Z"}))
    assert refused.value.fields == (field,)
    assert str(refused.value) == (
        f"{field} is {limit + 1} characters long; syncd stores at most {limit}"
    )


def test_the_cap_applies_to_the_normalised_text() -> None:
    from syncd.core.model import storable

    padded = "  " + "a" * 240 + "@example.nl" + " " * 50  # 303 characters, 251 once trimmed
    assert storable(_org(email=padded)).email == "a" * 240 + "@example.nl"


def test_names_and_addresses_are_not_capped() -> None:
    from syncd.core.model import storable

    huge = "X" * 100_000
    assert storable(_org(name=huge, address_line1=huge)).name == huge


def test_every_unstorable_field_is_named_at_once() -> None:
    from syncd.core.model import UnstorableValue, storable

    with pytest.raises(UnstorableValue) as refused:
        storable(_org(email="e" * 300, iban="NL" * 20))
    assert refused.value.fields == ("email", "iban")


def test_an_invoice_number_is_capped() -> None:
    from syncd.core.model import UnstorableValue, storable

    with pytest.raises(UnstorableValue, match="number is 256 characters long"):
        storable(dataclasses.replace(_invoice_with(_line()), number="7" * 256))


@pytest.mark.parametrize(
    ("value", "where", "message"),
    [
        (
            Payment(invoice="i1", date=dt.date(2026, 1, 2), amount=D("1E+20")),
            "amount",
            "amount 1E+20 is out of range: syncd stores -9999999999999.99 to 9999999999999.99",
        ),
        (
            Payment(invoice="i1", date=dt.date(2026, 1, 2), amount=D("-1E+13")),
            "amount",
            "amount -1E+13 is out of range",
        ),
        (
            # Rounds up to 10 000 000 000 000.00: refused after normalising too.
            Payment(invoice="i1", date=dt.date(2026, 1, 2), amount=D("9999999999999.995")),
            "amount",
            "amount 10000000000000.00 is out of range",
        ),
        (_invoice_with(_line(), total=D("1E+13")), "total", "total 1E+13 is out of range"),
        (_invoice_with(_line(), amount_paid=D("1E+999999")), "amount_paid", "1E+999999"),
        (
            _invoice_with(_line(quantity=D("1E+11"))),
            "line 1 quantity",
            "line 1 quantity 1E+11 is out of range: syncd stores -99999999999.9999 to "
            "99999999999.9999",
        ),
        (
            _invoice_with(_line(unit_price=D("-1E+14"))),
            "line 1 unit_price",
            "line 1 unit_price -1E+14 is out of range",
        ),
        (
            _invoice_with(_line(vat_rate=D("1000"))),
            "line 1 vat_rate",
            "line 1 vat_rate 1000 is out of range: syncd stores -999.99 to 999.99",
        ),
        (
            # Each factor fits; the line total they make does not.
            _invoice_with(_line(quantity=D("99999999999"), unit_price=D("1000"))),
            "line 1 line_total",
            "line 1 line_total 99999999999000.00 is out of range",
        ),
    ],
)
def test_a_number_beyond_the_store_is_refused(value: Any, where: str, message: str) -> None:
    from syncd.core.model import UnstorableValue, storable

    with pytest.raises(UnstorableValue) as refused:
        storable(value)
    assert refused.value.fields == (where,)
    assert message in str(refused.value)
    assert isinstance(refused.value, ValueError)


def test_a_number_with_too_many_digits_to_show_is_shortened() -> None:
    from syncd.core.model import UnstorableValue, storable

    long_number = D("1" * 40)
    with pytest.raises(UnstorableValue) as refused:
        storable(Payment(invoice="i1", date=dt.date(2026, 1, 2), amount=long_number))
    assert "amount 1.111111E+39 is out of range" in str(refused.value)


def test_storage_problems_of_a_storable_value_is_empty() -> None:
    from syncd.core.model import storage_problems

    assert storage_problems(normalise(_invoice_with(_line()))) == []
    assert storage_problems(_org(email="x" * 255)) == [
        "email is 255 characters long; syncd stores at most 254"
    ]


# --------------------------------------------------------------------------- contact kinds

BUSINESS: dict[str, Any] = {
    "kind": "organization",
    "name": "Jansen Advies",
    "first_name": "Jan",
    "last_name": "de Vries",
    "email": "jan@jansenadvies.nl",
    "vat_number": "NL123456782B01",
}


def test_a_person_name_joins_first_and_last_name() -> None:
    assert person_name("Jan", "de Vries") == "Jan de Vries"
    assert person_name(" Jan ", None) == "Jan"
    assert person_name(None, "") is None


def test_a_copy_of_the_same_kind_holds_the_fields_unchanged() -> None:
    assert contact_as_kind(BUSINESS, "organization", {"name": "Old name"}) == BUSINESS


def test_a_person_copy_of_an_organization_is_named_after_its_contact_person() -> None:
    held = contact_as_kind(BUSINESS, "person", {"kind": "person", "name": "J. de Vries"})
    assert held == {**BUSINESS, "kind": "person", "name": "Jan de Vries"}


def test_a_person_copy_keeps_its_own_name_when_the_organization_names_no_person() -> None:
    fields = {**BUSINESS, "first_name": None, "last_name": None}
    held = contact_as_kind(fields, "person", {"kind": "person", "name": "Jan de Vries"})
    assert (held["kind"], held["name"]) == ("person", "Jan de Vries")


def test_an_organization_copy_of_a_person_keeps_its_business_name() -> None:
    owner = {**BUSINESS, "kind": "person", "name": "Jan de Vries"}
    held = contact_as_kind(owner, "organization", {"kind": "organization", "name": "Jansen Advies"})
    assert held == {**owner, "kind": "organization", "name": "Jansen Advies"}
    # No copy yet: the person's name is the best name there is.
    assert contact_as_kind(owner, "organization")["name"] == "Jan de Vries"


def test_a_kind_copy_is_a_valid_contact() -> None:
    fields = to_fields(Contact(**BUSINESS))
    held = contact_from_fields(contact_as_kind(fields, "person", None))
    assert held == Contact(**{**BUSINESS, "kind": "person", "name": "Jan de Vries"})
