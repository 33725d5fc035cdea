"""Simplicate mapping: recorded JSON against golden canonical values, every row of the
reference's mapping table, bad data, wall-clock time, and round-trip properties."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.adapters.simplicate.mapping import (
    InvoiceLookups,
    PaymentTerm,
    VatClass,
    contact_from_canonical,
    contact_to_canonical,
    format_local,
    from_canonical,
    id_kind,
    invoice_from_canonical,
    invoice_lookups,
    invoice_to_canonical,
    join_name,
    local_lower_bound,
    parse_local_timestamp,
    payment_from_canonical,
    payment_to_canonical,
    split_family_name,
    to_canonical,
)
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    clean_text,
    from_fields,
    normalise,
    to_fields,
)
from syncd.errors import SkipRecord

FIXTURES = Path(__file__).parent / "fixtures" / "simplicate"
CENT = Decimal("0.01")


def load(name: str) -> Any:
    """A recorded response, numbers parsed as Decimal the way http.py parses them."""
    return json.loads((FIXTURES / f"{name}.json").read_text("utf-8"), parse_float=Decimal)


def data(name: str) -> Any:
    return load(name)["data"]


# ---------------------------------------------------------------- recorded JSON vs golden


GOLDEN = [
    ("organization", Contact),
    ("organization_postal", Contact),
    ("person", Contact),
    ("person_address_list", Contact),
    ("invoice_sent", Invoice),
    ("invoice_concept_person", Invoice),
    ("invoice_paid_status_string", Invoice),
    ("payment", Payment),
]


@pytest.mark.parametrize(("name", "kind"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_recorded_json_maps_to_its_golden_canonical_value(name: str, kind: type[Any]) -> None:
    value = to_canonical(data(name))
    assert isinstance(value, kind)
    golden = json.loads((FIXTURES / f"{name}.golden.json").read_text("utf-8"))
    assert to_fields(value) == golden
    assert value == normalise(from_fields(kind, golden)), "golden values are normalised"


def test_every_row_of_a_list_response_maps_or_is_skipped_with_its_id() -> None:
    rows = load("organization_list")["data"]
    assert load("organization_list")["metadata"]["count"] == len(rows)
    first = contact_to_canonical(rows[0])
    assert (first.name, first.postal_code, first.city) == (
        "Noord Software B.V.",
        "9711 LA",
        "Groningen",
    )
    with pytest.raises(SkipRecord) as caught:
        contact_to_canonical(rows[1])
    assert caught.value.reason == "organization without a name"
    assert caught.value.external_id == rows[1]["id"]


# ---------------------------------------------------------------- the mapping table, row by row


def org(**fields: Any) -> dict[str, Any]:
    return {"id": "organization:abc123", "name": "Acme B.V.", **fields}


def person(**fields: Any) -> dict[str, Any]:
    return {"id": "person:def456", "first_name": "Eva", "family_name": "Smit", **fields}


ADDRESS = {
    "line_1": "Damrak 1",
    "line_2": "Unit 4",
    "postal_code": "1012lg",
    "locality": "Amsterdam",
    "province": "Noord-Holland",
    "country": "Nederland",
    "country_code": "NL",
}
ADDRESS_CANONICAL = {
    "address_line1": "Damrak 1",
    "address_line2": "Unit 4",
    "postal_code": "1012 LG",
    "city": "Amsterdam",
    "region": "Noord-Holland",
    "country": "NL",
}

CONTACT_ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("org name", org(name="Acme  B.V."), {"name": "Acme B.V.", "kind": "organization"}),
    ("org visiting address", org(visiting_address=ADDRESS), ADDRESS_CANONICAL),
    (
        "org billing = postal address when different",
        org(
            has_different_postal_address=True,
            visiting_address={"line_1": "Elders 1", "country_code": "NL"},
            postal_address=ADDRESS,
        ),
        ADDRESS_CANONICAL,
    ),
    (
        "org postal address ignored when not different",
        org(visiting_address=ADDRESS, postal_address={"line_1": "Postbus 1"}),
        ADDRESS_CANONICAL,
    ),
    (
        "country name when there is no code",
        org(visiting_address={"line_1": "Rue 1", "country": "België"}),
        {"country": "BE"},
    ),
    ("org email", org(email="INFO@Acme.nl"), {"email": "info@acme.nl"}),
    (
        "org phone",
        org(phone="020 123 4567", visiting_address={"country_code": "NL"}),
        {"phone": "+31201234567"},
    ),
    ("org VAT number", org(vat_number="nl8123.45.678.b01"), {"vat_number": "NL812345678B01"}),
    ("org chamber of commerce", org(coc_code=" 34123456 "), {"coc_number": "34123456"}),
    (
        "org IBAN and BIC",
        org(bank_account="nl91 abna 0417 1643 00", bank_bic="abnanl2a"),
        {"iban": "NL91ABNA0417164300", "bic": "ABNANL2A"},
    ),
    ("org customer number", org(relation_number="R-1"), {"customer_number": "R-1"}),
    ("org active", org(is_active=True), {"archived": False}),
    ("org archived", org(is_active=False), {"archived": True}),
    ("org active when not stated", org(), {"archived": False}),
    ("org website", org(url="Acme.NL/Shop"), {"website": "acme.nl/Shop"}),
    (
        "org contact people are not contacts",
        org(linked_persons_contacts=[{"person_id": "person:1"}]),
        {"first_name": None, "last_name": None},
    ),
    (
        "person name from its parts",
        person(first_name="Jan", family_name_prefix="van der", family_name="Berg"),
        {"name": "Jan van der Berg", "first_name": "Jan", "last_name": "van der Berg"},
    ),
    (
        "person full_name only when the parts are missing",
        {"id": "person:x1", "full_name": "Mart Kask"},
        {"name": "Mart Kask", "first_name": None, "last_name": None},
    ),
    ("person address object", person(address=ADDRESS), ADDRESS_CANONICAL),
    ("person address list", person(address=[ADDRESS]), ADDRESS_CANONICAL),
    ("person empty address list", person(address=[]), {"address_line1": None}),
    ("person email", person(email="Eva@Smit.nl"), {"email": "eva@smit.nl"}),
    ("person phone", person(phone="+31 (0)6 1234 5678"), {"phone": "+31612345678"}),
    (
        "person IBAN and BIC",
        person(bank_account="NL02RABO0123456789", bank_bic="RABONL2U"),
        {"iban": "NL02RABO0123456789", "bic": "RABONL2U"},
    ),
    ("person customer number", person(relation_number="P-9"), {"customer_number": "P-9"}),
    ("person archived", person(is_active=False), {"archived": True}),
    ("person has no VAT or CoC", person(vat_number="NL1", coc_code="1"), {"vat_number": None}),
    ("person website", person(website_url="https://Eva.nl/"), {"website": "https://eva.nl"}),
    ("empty fields are absent", org(email="", phone=None), {"email": None, "phone": None}),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [r[1:] for r in CONTACT_ROWS], ids=[r[0] for r in CONTACT_ROWS]
)
def test_contact_mapping_table(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    value = contact_to_canonical(raw)
    assert {k: getattr(value, k) for k in expected} == expected


def invoice(**fields: Any) -> dict[str, Any]:
    return {
        "id": "invoice:abc",
        "status": {"id": "invoicestatus:2", "name": "Sent"},
        "organization_id": "organization:abc123",
        "date": "2026-11-02",
        "invoice_number": "20260001",
        "total_excluding_vat": Decimal("100.00"),
        "total_vat": Decimal("21.00"),
        "total_including_vat": Decimal("121.00"),
        "total_outstanding": Decimal("121.00"),
        "invoice_lines": [
            {
                "description": "Advies",
                "amount": Decimal("1.0"),
                "price": Decimal("100.0"),
                "vat_class": {"id": "vatclass:21", "percentage": Decimal("21.0")},
            }
        ],
        **fields,
    }


INVOICE_ROWS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("number", invoice(), {"number": "20260001"}),
    (
        "number empty while Concept",
        invoice(invoice_number="", status={"name": "Concept"}),
        {"number": None, "status": "draft"},
    ),
    ("issue date", invoice(), {"issue_date": dt.date(2026, 11, 2)}),
    (
        "due date = date + payment term days",
        invoice(payment_term={"name": "14 dagen", "days": 14}),
        {"due_date": dt.date(2026, 11, 16)},
    ),
    ("no payment term, no due date", invoice(), {"due_date": None}),
    ("currency is always EUR", invoice(), {"currency": "EUR"}),
    (
        "totals excl / VAT / incl / open",
        invoice(total_outstanding=Decimal("21.00")),
        {
            "subtotal": Decimal("100.00"),
            "tax_total": Decimal("21.00"),
            "total": Decimal("121.00"),
            "amount_paid": Decimal("100.00"),
        },
    ),
    ("status Sent, nothing paid", invoice(), {"status": "sent"}),
    (
        "status Sent, partly paid",
        invoice(total_outstanding=Decimal("21.00")),
        {"status": "partially_paid"},
    ),
    ("status Overdue", invoice(status={"name": "Overdue"}), {"status": "overdue"}),
    ("status Paid", invoice(status={"name": "Paid"}), {"status": "paid"}),
    ("status as a plain string (swagger)", invoice(status="Concept"), {"status": "draft"}),
    ("Dutch status name", invoice(status={"name": "Betaald"}), {"status": "paid"}),
    ("customer organization", invoice(), {"contact": "organization:abc123"}),
    (
        "customer person",
        invoice(organization_id=None, person_id="person:def456"),
        {"contact": "person:def456"},
    ),
    (
        "customer from the nested object",
        invoice(organization_id=None, organization={"id": "organization:n1"}),
        {"contact": "organization:n1"},
    ),
    ("reference", invoice(reference=" PO-1 "), {"reference": "PO-1"}),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [r[1:] for r in INVOICE_ROWS], ids=[r[0] for r in INVOICE_ROWS]
)
def test_invoice_mapping_table(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    value = invoice_to_canonical(raw)
    assert {k: getattr(value, k) for k in expected} == expected


def test_invoice_lines_map_description_quantity_price_and_vat_percentage() -> None:
    raw = invoice(
        invoice_lines=[
            {
                "description": " Uren ",
                "amount": Decimal("2.50"),
                "price": 80,
                "vat_class": {"id": "vatclass:9", "percentage": Decimal("9.0")},
                "total_vat": Decimal("18.0"),
            },
            {"amount": "1", "price": "-5.5", "vat_class": {"percentage": 0}},
        ]
    )
    lines = invoice_to_canonical(raw).lines
    assert lines == (
        InvoiceLine("Uren", Decimal("2.5"), Decimal("80.00"), Decimal("9"), Decimal("200.00")),
        InvoiceLine("", Decimal("1"), Decimal("-5.50"), Decimal("0"), Decimal("-5.50")),
    )


def test_payment_maps_invoice_date_amount_and_description() -> None:
    value = payment_to_canonical(
        {
            "id": "payment:1",
            "invoice_id": "invoice:abc",
            "date": "2026-11-10",
            "amount": Decimal("60.5"),
            "description": "Bank",
        }
    )
    assert value == Payment("invoice:abc", dt.date(2026, 11, 10), Decimal("60.50"), None, "Bank")


# ---------------------------------------------------------------- write bodies


def test_organization_create_body_holds_every_field_it_can() -> None:
    value = to_canonical(data("organization"))
    assert isinstance(value, Contact)
    assert contact_from_canonical(value) == {
        "name": "Bakkerij De Gouden Korenaar B.V.",
        "url": "https://www.goudenkorenaar.nl",
        "vat_number": "NL812345678B01",
        "coc_code": "34123456",
        "email": "info@goudenkorenaar.nl",
        "phone": "+31206231234",
        "bank_account": "NL91ABNA0417164300",
        "bank_bic": "ABNANL2A",
        "relation_number": "R-1042",
        "is_active": True,
        "visiting_address": {
            "line_1": "Prinsengracht 263",
            "line_2": "2e verdieping",
            "postal_code": "1016 GV",
            "locality": "Amsterdam",
            "province": "Noord-Holland",
            "country_code": "NL",
        },
    }


def test_person_body_splits_the_family_name_prefix() -> None:
    value = to_canonical(data("person"))
    assert isinstance(value, Contact)
    body = contact_from_canonical(value)
    assert (body["first_name"], body["family_name_prefix"], body["family_name"]) == (
        "Jan",
        "van der",
        "Berg",
    )
    assert body["address"]["country_code"] == "NL" and "vat_number" not in body
    assert body["website_url"] == "janvdberg.nl"


@pytest.mark.parametrize(
    ("first", "last", "name", "expected"),
    [
        (None, None, "Jan de Vries", ("Jan", "de", "Vries")),
        ("Jan", None, "Jan de Vries", ("Jan", "de", "Vries")),
        ("Jan", None, "Jan", (None, None, "Jan")),
        (None, None, "Cher", (None, None, "Cher")),
        ("Anne", "Van 't Hof", "ignored", ("Anne", "Van 't", "Hof")),
    ],
)
def test_person_names_from_whatever_parts_the_contact_has(
    first: str | None, last: str | None, name: str, expected: tuple[str | None, ...]
) -> None:
    value = Contact("person", name, first_name=first, last_name=last)
    body = contact_from_canonical(value)
    assert (body.get("first_name"), body.get("family_name_prefix"), body["family_name"]) == expected


def test_a_partial_update_holds_only_the_asked_fields_and_clears_with_empty_text() -> None:
    value = Contact("organization", "Acme", email=None, city="Utrecht", country="NL")
    assert contact_from_canonical(value, {"email"}) == {"email": ""}
    assert contact_from_canonical(value, {"archived"}) == {"is_active": True}
    body = contact_from_canonical(value, {"city"}, address_key="postal_address")
    assert body == {
        "postal_address": {
            "line_1": "",
            "line_2": "",
            "postal_code": "",
            "locality": "Utrecht",
            "province": "",
            "country_code": "NL",
        }
    }
    assert contact_from_canonical(value, {"first_name"}) == {}, "organizations have no first name"


def test_a_country_that_is_not_a_code_is_not_written() -> None:
    value = Contact("organization", "Acme", city="Atlantis", country="Atlantis")
    assert "country_code" not in contact_from_canonical(value)["visiting_address"]


LOOKUPS = invoice_lookups(
    load("vatclass_list")["data"],
    load("invoicestatus_list")["data"],
    load("paymentterm_list")["data"],
    load("myorganizationprofile_list")["data"],
)


def test_lookups_come_from_the_vendor_lists_and_skip_unusable_rows() -> None:
    assert [v.id for v in LOOKUPS.vat_classes] == [
        "vatclass:21",
        "vatclass:9",
        "vatclass:0",
        "vatclass:0-verlegd",
    ]
    assert LOOKUPS.vat_class_id(Decimal("0.00")) == "vatclass:0", "the first class of a rate"
    assert LOOKUPS.vat_class_id(Decimal("22")) is None
    assert LOOKUPS.statuses is not None and set(LOOKUPS.statuses) == {
        "concept",
        "sent",
        "overdue",
        "paid",
    }
    assert LOOKUPS.profile_id == "myorganizationprofile:aa11bb22"
    assert LOOKUPS.payment_term(14) == PaymentTerm("paymentterm:14", 14)
    assert LOOKUPS.payment_term(20) == PaymentTerm("paymentterm:14", 14), "the closest term"
    assert LOOKUPS.payment_term(22) == PaymentTerm("paymentterm:14", 14), "the shorter on a tie"
    assert InvoiceLookups().payment_term(14) is None


def test_invoice_create_body_uses_the_tenants_ids() -> None:
    value = to_canonical(data("invoice_sent"))
    assert isinstance(value, Invoice)
    body = invoice_from_canonical(value, LOOKUPS)
    assert body == {
        "organization_id": "organization:7c3a1d9e20b4f5a68e1c2d3b4a5f6e70",
        "date": "2026-11-02",
        "reference": "PO-8841",
        "status_id": "invoicestatus:b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7",
        "payment_term_id": "paymentterm:30",
        "my_organization_profile_id": "myorganizationprofile:aa11bb22",
        "invoice_lines": [
            {
                "description": "Advies (3,5 uur)",
                "amount": Decimal("3.5"),
                "price": Decimal("95.00"),
                "vat_class_id": "vatclass:21",
            },
            {
                "description": "Vakliteratuur",
                "amount": Decimal("2"),
                "price": Decimal("12.49"),
                "vat_class_id": "vatclass:9",
            },
            {
                "description": "Korting",
                "amount": Decimal("1"),
                "price": Decimal("0.00"),
                "vat_class_id": "vatclass:0",
            },
        ],
    }


def test_invoice_update_body_is_header_only() -> None:
    value = to_canonical(data("invoice_concept_person"))
    assert isinstance(value, Invoice)
    body = invoice_from_canonical(value, InvoiceLookups(), {"contact", "reference", "lines"})
    assert body == {
        "person_id": "person:2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f70",
        "organization_id": None,
        "reference": "",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"currency": "USD"}, "EUR only"),
        ({"status": "cancelled"}, "no invoice status for 'cancelled'"),
        ({"contact": "42"}, "not a Simplicate organization or person id"),
        (
            {"lines": (InvoiceLine("x", Decimal(1), Decimal(1), Decimal(22)),)},
            "no VAT class for 22 %",
        ),
    ],
)
def test_an_invoice_simplicate_cannot_hold_is_skipped_with_a_reason(
    change: dict[str, Any], reason: str
) -> None:
    sent = to_canonical(data("invoice_sent"))
    assert isinstance(sent, Invoice)
    value = dataclasses.replace(sent, **change)
    with pytest.raises(SkipRecord, match=reason):
        invoice_from_canonical(value, LOOKUPS)


def test_a_tenant_without_a_status_is_a_skip() -> None:
    value = to_canonical(data("invoice_sent"))
    assert isinstance(value, Invoice)
    with pytest.raises(SkipRecord, match="no 'sent' invoice status"):
        invoice_from_canonical(value, dataclasses.replace(LOOKUPS, statuses={}))


def test_payment_bodies() -> None:
    value = Payment("invoice:abc", dt.date(2026, 11, 10), Decimal("12.5"), "bank", None)
    assert payment_from_canonical(value) == {
        "invoice_id": "invoice:abc",
        "date": "2026-11-10",
        "amount": Decimal("12.50"),
    }
    assert payment_from_canonical(value, {"reference"}) == {"description": ""}
    with pytest.raises(SkipRecord, match="not a Simplicate invoice id"):
        payment_from_canonical(dataclasses.replace(value, invoice=None))
    assert from_canonical(value) == payment_from_canonical(value)


# ---------------------------------------------------------------- bad vendor data

BAD: list[tuple[str, object]] = [
    ("not an object", ["organization:1"]),
    ("no id", {"name": "Acme"}),
    ("id of another type", {"id": "project:1", "name": "Acme"}),
    ("id not text", {"id": 7, "name": "Acme"}),
    ("organization without a name", {"id": "organization:1", "name": "  "}),
    ("name not text", {"id": "organization:1", "name": ["Acme"]}),
    ("person without a name", {"id": "person:1", "email": "x@y.z"}),
    ("is_active not a flag", org(is_active="yes")),
    ("email not text", org(email=12)),
    ("address not an object", org(visiting_address="Damrak 1")),
    ("address field not text", org(visiting_address={"locality": 5})),
    ("person address not an object", person(address=5)),
    ("invoice without a debtor", invoice(organization_id=None)),
    ("debtor id of another type", invoice(organization_id="person:1")),
    ("invalid date", invoice(date="2026-13-45")),
    ("date not text", invoice(date=20261102)),
    ("date in another format", invoice(date="02-11-2026")),
    ("lines not a list", invoice(invoice_lines={"a": 1})),
    ("line not an object", invoice(invoice_lines=["Advies"])),
    ("line without amount", invoice(invoice_lines=[{"price": 1, "vat_class": {"percentage": 0}}])),
    ("line without price", invoice(invoice_lines=[{"amount": 1, "vat_class": {"percentage": 0}}])),
    ("line without VAT class", invoice(invoice_lines=[{"amount": 1, "price": 1}])),
    (
        "garbage money",
        invoice(
            invoice_lines=[{"amount": 1, "price": "12,50 EUR", "vat_class": {"percentage": 0}}]
        ),
    ),
    ("money not finite", invoice(total_vat="NaN")),
    ("money infinite", invoice(total_excluding_vat=Decimal("Infinity"))),
    ("money as a flag", invoice(total_including_vat=True)),
    (
        "description not text",
        invoice(
            invoice_lines=[
                {"description": 1, "amount": 1, "price": 1, "vat_class": {"percentage": 0}}
            ]
        ),
    ),
    ("unknown status", invoice(status={"name": "Gecrediteerd"})),
    ("no status", invoice(status=None)),
    ("payment term days not whole", invoice(payment_term={"days": "1.5"})),
    ("payment term days negative", invoice(payment_term={"days": -3})),
    ("payment term days garbage", invoice(payment_term={"days": "dertig"})),
    (
        "payment without amount",
        {"id": "payment:1", "invoice_id": "invoice:1", "date": "2026-01-01"},
    ),
    ("payment without date", {"id": "payment:1", "invoice_id": "invoice:1", "amount": 1}),
    (
        "payment zero date",
        {"id": "payment:1", "invoice_id": "invoice:1", "date": "0000-00-00", "amount": 1},
    ),
    (
        "payment invoice id wrong",
        {"id": "payment:1", "invoice_id": "organization:1", "date": "2026-01-01", "amount": 1},
    ),
    (
        "payment amount garbage",
        {"id": "payment:1", "invoice_id": "invoice:1", "date": "2026-01-01", "amount": "lots"},
    ),
]


@pytest.mark.parametrize("raw", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_vendor_data_is_a_skip_with_a_reason(raw: object) -> None:
    with pytest.raises(SkipRecord) as caught:
        to_canonical(raw)
    assert caught.value.reason and len(caught.value.reason) < 200
    if isinstance(raw, dict) and isinstance(raw.get("id"), str):
        assert caught.value.external_id == raw["id"]


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.text(max_size=12)
    | st.decimals(allow_nan=True, places=2)
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = st.sampled_from(
    [
        "name",
        "first_name",
        "family_name",
        "family_name_prefix",
        "full_name",
        "email",
        "phone",
        "is_active",
        "visiting_address",
        "postal_address",
        "has_different_postal_address",
        "address",
        "status",
        "date",
        "invoice_lines",
        "organization_id",
        "person_id",
        "organization",
        "payment_term",
        "total_excluding_vat",
        "total_vat",
        "total_including_vat",
        "total_outstanding",
        "invoice_id",
        "amount",
        "description",
        "invoice_number",
        "reference",
        "bank_account",
        "url",
        "country_code",
    ]
)
IDS = st.sampled_from(["organization:1", "person:1", "invoice:1", "payment:1", "x:1", "", "1"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, JSON, max_size=10), IDS)
def test_to_canonical_never_raises_anything_but_skip_record(raw: dict[str, Any], rid: str) -> None:
    raw["id"] = rid
    try:
        value = to_canonical(raw)
    except SkipRecord as exc:
        assert exc.reason
    else:
        assert value == normalise(value)


# ---------------------------------------------------------------- wall-clock time


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-23 10:15:00", dt.datetime(2026, 11, 23, 9, 15, tzinfo=dt.UTC)),  # CET
        ("2026-07-01 12:00:00", dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC)),  # CEST
        # The repeated hour when summer time ends: the earlier instant.
        ("2026-10-25 02:30:00", dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC)),
        ("2026-10-25 03:00:00", dt.datetime(2026, 10, 25, 2, 0, tzinfo=dt.UTC)),
        ("2026-03-29 03:30:00", dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)),
    ],
)
def test_vendor_timestamps_are_amsterdam_wall_clock_turned_utc(text: str, utc: dt.datetime) -> None:
    assert parse_local_timestamp(text) == utc


@pytest.mark.parametrize(
    "text", [None, "", "0000-00-00 00:00:00", "2026-02-30 10:00:00", "yesterday", 5]
)
def test_missing_or_unreadable_timestamps_are_none(text: object) -> None:
    assert parse_local_timestamp(text) is None


def test_format_local_writes_zone_less_text() -> None:
    assert format_local(dt.datetime(2026, 1, 5, 23, 30, tzinfo=dt.UTC)) == "2026-01-06 00:30:00"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_local(dt.datetime(2026, 1, 5))


@pytest.mark.parametrize(
    ("moment", "bound"),
    [
        (dt.datetime(2026, 11, 23, 9, 15, tzinfo=dt.UTC), "2026-11-23 10:15:00"),
        (dt.datetime(2026, 7, 1, 10, 0, tzinfo=dt.UTC), "2026-07-01 12:00:00"),
        # 02:30 CEST, half an hour before clocks go back: 01:30 UTC shows as 02:30 CET, and
        # 01:00 UTC as 02:00: the bound must be at or below every later wall-clock time.
        (dt.datetime(2026, 10, 25, 0, 30, tzinfo=dt.UTC), "2026-10-25 01:30:00"),
        (dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC), "2026-03-29 01:30:00"),
    ],
)
def test_cursor_bounds_are_safe_across_daylight_saving(moment: dt.datetime, bound: str) -> None:
    assert local_lower_bound(moment) == bound


@given(
    st.datetimes(
        min_value=dt.datetime(2025, 1, 1),
        max_value=dt.datetime(2028, 12, 31),
        timezones=st.just(dt.UTC),
    ),
    st.integers(min_value=0, max_value=4 * 3600),
)
def test_no_later_change_shows_an_earlier_wall_clock_than_the_bound(
    moment: dt.datetime, later: int
) -> None:
    bound = local_lower_bound(moment)
    shown = format_local(moment + dt.timedelta(seconds=later))
    assert shown >= bound


# ---------------------------------------------------------------- names and ids


def test_family_name_prefixes_split_and_join_back() -> None:
    assert split_family_name("van der Berg") == ("van der", "Berg")
    assert split_family_name("de Vries") == ("de", "Vries")
    assert split_family_name("Devries") == (None, "Devries")
    assert split_family_name("van") == (None, "van")
    assert join_name("Jan", None, " van der ", "Berg") == "Jan van der Berg"
    assert id_kind("organization:ab12") == "organization"
    assert id_kind("organization") is None and id_kind(None) is None


# ---------------------------------------------------------------- round trips

# What the sandbox-like tenant holds: the lookups an echo resolves ids with.
ECHO_LOOKUPS = InvoiceLookups(
    vat_classes=(
        VatClass("vatclass:21", Decimal("21.0")),
        VatClass("vatclass:9", Decimal("9.0")),
        VatClass("vatclass:0", Decimal("0.0")),
    ),
    statuses={
        "concept": "invoicestatus:c",
        "sent": "invoicestatus:s",
        "overdue": "invoicestatus:o",
        "paid": "invoicestatus:p",
    },
    payment_terms=(
        PaymentTerm("paymentterm:0", 0),
        PaymentTerm("paymentterm:14", 14),
        PaymentTerm("paymentterm:30", 30),
    ),
    profile_id="myorganizationprofile:1",
)
_STATUS_NAMES = {
    "invoicestatus:c": "Concept",
    "invoicestatus:s": "Sent",
    "invoicestatus:o": "Overdue",
    "invoicestatus:p": "Paid",
}
_COUNTRY_NAMES = {"NL": "Nederland", "EE": "Estland", "DE": "Duitsland", "BE": "België"}


def _cleanup(value: Any) -> Any:
    """The vendor leaves null and empty-text fields out of its answers."""
    if isinstance(value, dict):
        return {k: _cleanup(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_cleanup(v) for v in value]
    return value


def echo_contact(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """What a GET shows after a POST of ``body``."""
    out: dict[str, Any] = {"id": f"{kind}:0a1b2c", "is_active": True, **body}
    for key in ("visiting_address", "address"):
        if isinstance(out.get(key), dict):
            code = out[key].get("country_code")
            out[key] = {**out[key], "id": "address:1", "country": _COUNTRY_NAMES.get(code, code)}
    if kind == "person":
        out["full_name"] = join_name(
            body.get("first_name"), body.get("family_name_prefix"), body.get("family_name")
        )
    out["created_at"] = out["updated_at"] = "2026-11-23 10:15:00"
    cleaned: dict[str, Any] = _cleanup(out)
    return cleaned


def vendor_totals(lines: tuple[InvoiceLine, ...]) -> tuple[Decimal, Decimal]:
    """(excl, VAT) as Simplicate computes them: VAT rounded per line."""
    excl = vat = Decimal(0)
    for line in lines:
        net = (line.quantity * line.unit_price).quantize(CENT, ROUND_HALF_UP)
        excl += net
        vat += (net * line.vat_rate / 100).quantize(CENT, ROUND_HALF_UP)
    return excl, vat


def echo_invoice(body: dict[str, Any], number: str | None, paid: Decimal) -> dict[str, Any]:
    """What a GET shows after a POST of ``body`` (vendor-assigned number, payments booked)."""
    vat = {v.id: v for v in ECHO_LOOKUPS.vat_classes}
    days = {t.id: t.days for t in ECHO_LOOKUPS.payment_terms}
    lines = [
        {
            "id": f"invoiceline:{n}",
            "description": line["description"],
            "amount": line["amount"],
            "price": line["price"],
            "vat_class": {
                "id": line["vat_class_id"],
                "percentage": vat[line["vat_class_id"]].percentage,
            },
        }
        for n, line in enumerate(body["invoice_lines"])
    ]
    excl = vat_total = Decimal(0)
    for line in lines:
        net = (line["amount"] * line["price"]).quantize(CENT, ROUND_HALF_UP)
        excl += net
        vat_total += (net * line["vat_class"]["percentage"] / 100).quantize(CENT, ROUND_HALF_UP)
    status = _STATUS_NAMES[body["status_id"]]
    out = {
        "id": "invoice:0a1b2c",
        "invoice_number": None if status == "Concept" else number,
        "status": {"id": body["status_id"], "name": status},
        "date": body["date"],
        "reference": body.get("reference"),
        "organization_id": body.get("organization_id"),
        "person_id": body.get("person_id"),
        "payment_term": {"days": days[body["payment_term_id"]]},
        "total_excluding_vat": excl,
        "total_vat": vat_total,
        "total_including_vat": excl + vat_total,
        "total_outstanding": excl + vat_total - paid,
        "invoice_lines": lines,
    }
    cleaned: dict[str, Any] = _cleanup(out)
    return cleaned


TEXT = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs", "Pd", "Po")), max_size=24
)
OPTIONAL = st.none() | TEXT
NAME = TEXT.filter(lambda s: clean_text(s) is not None)
PREFIXED = st.builds(
    lambda prefix, rest: f"{prefix} {rest}",
    st.sampled_from(["van der", "de", "van 't", "Van", "ter"]),
    NAME,
)
COUNTRY = st.sampled_from([None, "NL", "EE", "DE", "BE"])


@st.composite
def contacts(draw: st.DrawFn) -> Contact:
    kind = draw(st.sampled_from(["organization", "person"]))
    common: dict[str, Any] = {
        "email": draw(OPTIONAL),
        "phone": draw(st.none() | st.from_regex(r"\+?[0-9 ()-]{4,16}", fullmatch=True)),
        "website": draw(OPTIONAL),
        "address_line1": draw(OPTIONAL),
        "address_line2": draw(OPTIONAL),
        "postal_code": draw(OPTIONAL),
        "city": draw(OPTIONAL),
        "region": draw(OPTIONAL),
        "country": draw(COUNTRY),
        "iban": draw(OPTIONAL),
        "bic": draw(OPTIONAL),
        "customer_number": draw(OPTIONAL),
        "archived": draw(st.booleans()),
    }
    if kind == "organization":
        return Contact(
            kind="organization",
            name=draw(NAME),
            vat_number=draw(OPTIONAL),
            coc_number=draw(OPTIONAL),
            **common,
        )
    first = draw(st.none() | NAME)
    last = draw(NAME | PREFIXED)
    # A person's name is its parts: that is all Simplicate holds.
    return Contact(
        kind="person", name=join_name(first, last), first_name=first, last_name=last, **common
    )


@settings(max_examples=300, deadline=None)
@given(contacts())
def test_contacts_round_trip_through_a_write_and_the_vendors_echo(value: Contact) -> None:
    body = contact_from_canonical(value)
    back = contact_to_canonical(echo_contact(body, value.kind))
    assert back == normalise(value)


PLAIN_FIELDS = (
    "email",
    "website",
    "vat_number",
    "coc_number",
    "iban",
    "bic",
    "customer_number",
    "archived",
)


@settings(max_examples=100, deadline=None)
@given(contacts(), contacts(), st.sets(st.sampled_from(PLAIN_FIELDS)))
def test_a_partial_update_changes_the_asked_fields_and_leaves_the_rest(
    old: Contact, new: Contact, fields: set[str]
) -> None:
    new = dataclasses.replace(new, kind=old.kind)
    stored = echo_contact(contact_from_canonical(old), old.kind)
    stored.update(contact_from_canonical(new, fields))
    after, wanted, before = contact_to_canonical(_cleanup(stored)), normalise(new), normalise(old)
    for field in PLAIN_FIELDS:
        if old.kind == "person" and field in ("vat_number", "coc_number"):
            assert getattr(after, field) is None, "persons hold no VAT or CoC number"
        elif field in fields:
            assert getattr(after, field) == getattr(wanted, field), field
        else:
            assert getattr(after, field) == getattr(before, field), field
    assert (after.name, after.city, after.phone) == (before.name, before.city, before.phone)


PRICE = st.integers(min_value=-100_000, max_value=10_000_000).map(lambda c: Decimal(c) / 100)
QTY = st.builds(
    lambda n, places: Decimal(n).scaleb(-places),
    st.integers(min_value=-1000, max_value=100_000),
    st.integers(min_value=0, max_value=4),
)
LINE = st.builds(
    InvoiceLine,
    description=TEXT,
    quantity=QTY,
    unit_price=PRICE,
    vat_rate=st.sampled_from([Decimal(0), Decimal(9), Decimal(21)]),
)
_VENDOR_STATUSES: tuple[InvoiceStatus, ...] = ("draft", "sent", "partially_paid", "paid", "overdue")


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    lines = tuple(draw(st.lists(LINE, min_size=0, max_size=20)))
    lines = tuple(normalise(Invoice(None, None, None, None, lines=lines)).lines)
    excl, vat = vendor_totals(lines)
    total = excl + vat
    status = draw(st.sampled_from(_VENDOR_STATUSES))
    paid = Decimal(0)
    if status == "paid":
        paid = total
    elif status == "partially_paid":
        if total < Decimal("0.02"):
            status = "sent"
        else:
            cents = draw(st.integers(min_value=1, max_value=int(total * 100) - 1))
            paid = Decimal(cents) / 100
    issue = draw(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31)))
    kind = draw(st.sampled_from(["organization", "person"]))
    return Invoice(
        number=None if status == "draft" else draw(st.from_regex(r"20[0-9]{6}", fullmatch=True)),
        contact=f"{kind}:{draw(st.from_regex(r'[0-9a-f]{32}', fullmatch=True))}",
        issue_date=issue,
        due_date=issue + dt.timedelta(days=draw(st.sampled_from([0, 14, 30]))),
        currency="EUR",
        status=status,
        lines=lines,
        subtotal=excl,
        tax_total=vat,
        total=total,
        amount_paid=paid,
        reference=draw(OPTIONAL),
    )


@settings(max_examples=200, deadline=None)
@given(invoices())
def test_invoices_round_trip_through_a_write_and_the_vendors_echo(value: Invoice) -> None:
    body = invoice_from_canonical(value, ECHO_LOOKUPS)
    back = invoice_to_canonical(echo_invoice(body, value.number, value.amount_paid))
    assert back == normalise(value)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Payment,
        invoice=st.from_regex(r"invoice:[0-9a-f]{8}", fullmatch=True),
        date=st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 1, 1)),
        amount=PRICE,
        method=st.none(),
        reference=OPTIONAL,
    )
)
def test_payments_round_trip_through_a_write_and_the_vendors_echo(value: Payment) -> None:
    echo = _cleanup({"id": "payment:1", **payment_from_canonical(value)})
    assert payment_to_canonical(echo) == normalise(value)
