"""Perfex mapping: recorded vendor JSON against golden canonical JSON, the mapping table row by
row, bad data, write bodies, and the round trip through a simulated Perfex.

The official spec (specs/perfex) carries no response examples (its bodies are "<object>"), so
the recorded fixtures follow the column lists of vendors/perfex.md §7 and the ``/api/v1``
envelope of §11, with the values Perfex renders (every scalar a string).
"""

from __future__ import annotations

import datetime as dt
import json
import string
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from syncd.adapters.perfex import mapping as m
from syncd.adapters.perfex.client import created_id, list_page, record
from syncd.core.model import (
    Contact,
    ContactKind,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    clean_text,
    normalise,
    normalise_line,
    to_fields,
    with_computed_totals,
)
from syncd.errors import SkipRecord, VendorUnavailable

FIXTURES = Path(__file__).parent / "fixtures" / "perfex"


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


_LOOKUPS = load("lookups.json")
COUNTRIES = m.Countries.from_rows(list_page(_LOOKUPS["countries"], "country").rows)
CURRENCIES = m.Currencies.from_rows(list_page(_LOOKUPS["currencies"], "currency").rows)
TAXES = m.Taxes.from_rows(list_page(_LOOKUPS["taxes"], "tax").rows)
MODES = m.PaymentModes.from_rows(list_page(_LOOKUPS["payment_modes"], "mode").rows)


def contact_fixture(name: str) -> tuple[dict[str, Any], Any]:
    data = load(f"{name}.json")
    customer = record(data["customer"], "customer")
    primary = m.primary_contact(list_page(data["contacts"], "contact").rows, customer["userid"])
    return customer, primary


def base_customer(**overrides: Any) -> dict[str, Any]:
    customer, _ = contact_fixture("customer_mailbox")
    customer.update(overrides)
    return customer


def base_primary(**overrides: Any) -> dict[str, Any]:
    row = {
        "id": "5",
        "userid": "2",
        "is_primary": "1",
        "firstname": "Piret",
        "lastname": "Kask",
        "email": "piret@kadrioruenergia.ee",
        "phonenumber": "",
    }
    row.update(overrides)
    return row


def base_invoice(**overrides: Any) -> dict[str, Any]:
    row = record(load("invoice_partially_paid.json"), "invoice")
    row.update(overrides)
    return row


def base_payment(**overrides: Any) -> dict[str, Any]:
    row = record(load("payment.json"), "payment")
    row.update(overrides)
    return row


def golden(name: str) -> dict[str, Any]:
    data: dict[str, Any] = load(f"{name}.canonical.json")
    return data


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize(
    "name",
    [
        "customer_organization",
        "customer_person",
        "customer_mailbox",
        "customer_archived_no_contact",
    ],
)
def test_recorded_customers_map_to_their_golden_contacts(name: str) -> None:
    customer, primary = contact_fixture(name)
    value = m.contact_to_canonical(customer, primary, COUNTRIES)
    assert {"external_id": m.customer_id(customer), "fields": to_fields(value)} == golden(name)
    assert value == normalise(value)


@pytest.mark.parametrize("name", ["invoice_partially_paid", "invoice_draft", "invoice_year_format"])
def test_recorded_invoices_map_to_their_golden_invoices(name: str) -> None:
    row = record(load(f"{name}.json"), "invoice")
    value = m.invoice_to_canonical(row, CURRENCIES)
    assert {"external_id": m.invoice_id(row), "fields": to_fields(value)} == golden(name)
    assert value == normalise(value)


@pytest.mark.parametrize("name", ["payment", "payment_mode_joined"])
def test_recorded_payments_map_to_their_golden_payments(name: str) -> None:
    row = record(load(f"{name}.json"), "payment")
    value = m.payment_to_canonical(row, MODES)
    assert {"external_id": m.payment_id(row), "fields": to_fields(value)} == golden(name)


# --------------------------------------------------------------------------- the mapping table


def contact(customer: dict[str, Any] | None = None, primary: Any = None) -> Contact:
    return m.contact_to_canonical(customer or base_customer(), primary, COUNTRIES)


@pytest.mark.parametrize(
    ("customer", "primary", "field", "expected"),
    [
        ({"company": " ACME  Corp "}, None, "name", "ACME Corp"),
        ({"vat": "nl-8234.56.789.b01"}, None, "vat_number", "NL823456789B01"),
        ({"phonenumber": "020 624 1234", "country": "155"}, None, "phone", "+31206241234"),
        # The customer's own number wins; the primary contact's stands in when it has none.
        ({}, base_primary(phonenumber="+372 5555 1234"), "phone", "+3726123456"),
        ({"phonenumber": ""}, base_primary(phonenumber="+372 5555 1234"), "phone", "+37255551234"),
        ({}, base_primary(phonenumber=""), "phone", "+3726123456"),
        ({"website": "HTTPS://Acme.EE/"}, None, "website", "https://acme.ee"),
        ({"country": "22"}, None, "country", "BE"),
        ({"country": "0"}, None, "country", None),
        ({"country": "999"}, None, "country", None),
        ({"address": "Tallinna mnt 5\nKorpus B"}, None, "address_line2", "Korpus B"),
        ({"zip": "93808"}, None, "postal_code", "93808"),
        ({"state": "Saaremaa"}, None, "region", "Saaremaa"),
        (
            {"billing_street": "Postbus 9", "billing_country": "155"},
            None,
            "address_line1",
            "Postbus 9",
        ),
        ({"billing_city": "Tartu"}, None, "city", "Tartu"),
        ({"billing_city": "Tartu"}, None, "address_line1", None),
        ({"billing_zip": "1015cj", "billing_country": "155"}, None, "postal_code", "1015 CJ"),
        ({"billing_city": "Tartu", "billing_country": "0"}, None, "country", "EE"),
        ({}, base_primary(email=" Piret@Kadrioru.EE"), "email", "piret@kadrioru.ee"),
        ({}, None, "email", None),
        ({}, base_primary(), "first_name", "Piret"),
        ({}, base_primary(), "last_name", "Kask"),
        ({}, base_primary(lastname="kadrioru energia oü"), "first_name", None),
        ({}, base_primary(), "kind", "organization"),
        ({"company": "Piret Kask"}, base_primary(), "kind", "person"),
        ({"company": ""}, base_primary(), "name", "Piret Kask"),
        ({"company": ""}, base_primary(), "kind", "person"),
        ({"active": "0"}, None, "archived", True),
        ({"active": "1"}, None, "archived", False),
    ],
)
def test_each_customer_column_maps_to_its_canonical_field(
    customer: dict[str, Any], primary: Any, field: str, expected: Any
) -> None:
    value = contact(base_customer(**customer), primary)
    assert getattr(value, field) == expected


def invoice(**overrides: Any) -> Invoice:
    return m.invoice_to_canonical(base_invoice(**overrides), CURRENCIES)


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"prefix": "INV-", "number": "12", "number_format": "1"}, "number", "INV-000012"),
        ({"prefix": "", "number": "0012", "number_format": "1"}, "number", "000012"),
        ({"prefix": "F-", "number": "7", "number_format": "2"}, "number", "F-2026/000007"),
        ({"prefix": "F-", "number": "7", "number_format": "3"}, "number", "F-000007-26"),
        ({"prefix": "F-", "number": "7", "number_format": "4"}, "number", "F-000007-03-2026"),
        ({"number": "1000000000", "status": "1"}, "number", None),
        ({"status": "6"}, "number", None),
        ({"clientid": "17"}, "contact", "17"),
        ({"clientid": "0"}, "contact", None),
        ({"date": "2026-02-28"}, "issue_date", dt.date(2026, 2, 28)),
        ({"duedate": "2026-04-30"}, "due_date", dt.date(2026, 4, 30)),
        ({"duedate": None}, "due_date", None),
        ({"currency_name": None, "currency": "1"}, "currency", "USD"),
        ({"currency_name": "EUR", "currency": "1"}, "currency", "EUR"),
        ({"subtotal": "607.48"}, "subtotal", Decimal("607.48")),
        ({"total_tax": "72.08"}, "tax_total", Decimal("72.08")),
        ({"total": "679.56"}, "total", Decimal("679.56")),
        ({"status": "1", "sent": "0"}, "status", "open"),
        ({"status": "1", "sent": "1"}, "status", "sent"),
        ({"status": "2"}, "status", "paid"),
        ({"status": "3"}, "status", "partially_paid"),
        ({"status": "4"}, "status", "overdue"),
        ({"status": "5"}, "status", "cancelled"),
        ({"status": "6"}, "status", "draft"),
        ({}, "amount_paid", Decimal("300.00")),
        ({"payments": None, "total_left_to_pay": "79.56"}, "amount_paid", Decimal("600.00")),
        ({"payments": None, "total_left_to_pay": None}, "amount_paid", Decimal("0.00")),
        ({"adminnote": "syncd:inv-7f3a"}, "reference", None),
    ],
)
def test_each_invoice_column_maps_to_its_canonical_field(
    overrides: dict[str, Any], field: str, expected: Any
) -> None:
    assert getattr(invoice(**overrides), field) == expected


def one_item(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": "1",
        "description": "Support",
        "long_description": "",
        "qty": "2.00",
        "rate": "40.00",
        "item_order": "1",
        "taxname": ["VAT"],
        "taxrate": ["21.00"],
    }
    item.update(overrides)
    return item


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({}, InvoiceLine("Support", Decimal(2), Decimal("40.00"), Decimal(21), Decimal("80.00"))),
        (
            {"long_description": "<b>May</b>\nremote"},
            InvoiceLine("Support <b>May</b> remote", Decimal(2), Decimal("40"), Decimal(21)),
        ),
        (
            {"taxname": [], "taxrate": []},
            InvoiceLine("Support", Decimal(2), Decimal(40), Decimal(0)),
        ),
        (
            {"taxname": ["VAT", "EXTRA"], "taxrate": ["9.00", "2.50"]},
            InvoiceLine("Support", Decimal(2), Decimal(40), Decimal("11.5")),
        ),
        (
            {"taxname": ["VAT|9.00"], "taxrate": None},
            InvoiceLine("Support", Decimal(2), Decimal(40), Decimal(9)),
        ),
        ({"qty": None}, InvoiceLine("Support", Decimal(1), Decimal(40), Decimal(21))),
        ({"qty": "-1.00"}, InvoiceLine("Support", Decimal(-1), Decimal(40), Decimal(21))),
    ],
)
def test_an_item_maps_to_one_canonical_line(item: dict[str, Any], expected: InvoiceLine) -> None:
    value = invoice(items=[one_item(**item)], payments=[])
    assert value.lines == (normalise_line(expected),)


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        ({"invoiceid": "1042"}, "invoice", "1042"),
        ({"amount": "12.5"}, "amount", Decimal("12.50")),
        ({"date": "2026-03-11"}, "date", dt.date(2026, 3, 11)),
        ({"paymentmode": "2"}, "method", "Cash"),
        ({"paymentmode": "stripe"}, "method", "stripe"),
        ({"paymentmode": None}, "method", None),
        ({"transactionid": " TX 9 "}, "reference", "TX 9"),
    ],
)
def test_each_payment_column_maps_to_its_canonical_field(
    overrides: dict[str, Any], field: str, expected: Any
) -> None:
    value = m.payment_to_canonical(base_payment(**overrides), MODES)
    assert getattr(value, field) == expected


def test_a_primary_contact_is_picked_by_flag_and_owner() -> None:
    rows = [
        base_primary(id="1", is_primary="0"),
        base_primary(id="2", userid="99"),
        "not a row",
        base_primary(id="3"),
    ]
    chosen = m.primary_contact(rows, "2")
    assert chosen is not None and chosen["id"] == "3"
    assert m.primary_contact(rows[:3], "2") is None


def test_lookup_tables_read_the_vendor_lists_and_ignore_broken_rows() -> None:
    assert COUNTRIES.by_iso["NL"] == "155" and COUNTRIES.by_id["70"] == "EE"
    assert CURRENCIES.by_iso == {"USD": "1", "EUR": "2"}
    assert TAXES.by_rate == {Decimal(21): "VAT", Decimal(9): "VAT", Decimal(22): "KM"}
    assert MODES.default_id == "1" and MODES.id_for("cash") == "2" and MODES.id_for(None) == "1"
    broken = m.Taxes.from_rows([{"name": "X", "taxrate": "abc"}, "row", {"taxrate": "5"}])
    assert broken.by_rate == {}


# --------------------------------------------------------------------------- bad vendor data


def _customer_with(**overrides: Any) -> Any:
    return base_customer(**overrides)


BAD_CUSTOMERS: list[tuple[str, Any, Any]] = [
    ("not an object", ["userid", "2"], None),
    ("no userid", _customer_with(userid=None), None),
    ("userid not numeric", _customer_with(userid="two"), None),
    ("company is a list", _customer_with(company=["ACME"]), None),
    ("no name at all", _customer_with(company=""), None),
    ("active is not a flag", _customer_with(active="yes"), None),
    ("country is not an id", _customer_with(country="NL"), None),
    ("website is an object", _customer_with(website={"url": "x"}), None),
    ("primary is a string", _customer_with(), "contact 5"),
    ("primary e-mail is a list", _customer_with(), base_primary(email=["a@b.c"])),
]


@pytest.mark.parametrize(
    ("label", "customer", "primary"), BAD_CUSTOMERS, ids=[b[0] for b in BAD_CUSTOMERS]
)
def test_bad_customer_data_is_skipped_with_a_reason(
    label: str, customer: Any, primary: Any
) -> None:
    with pytest.raises(SkipRecord) as caught:
        m.contact_to_canonical(customer, primary, COUNTRIES)
    assert caught.value.reason


BAD_INVOICES: list[tuple[str, dict[str, Any]]] = [
    ("no id", {"id": None}),
    ("no status", {"status": None}),
    ("unknown status", {"status": "9"}),
    ("impossible date", {"date": "2026-13-01"}),
    ("no date", {"date": ""}),
    ("date is a number", {"date": 20260301}),
    ("due date garbage", {"duedate": "next week"}),
    ("items missing (a list row)", {"items": None}),
    ("item not an object", {"items": ["Support"]}),
    ("item without description", {"items": [one_item(description="", long_description=None)]}),
    ("qty garbage", {"items": [one_item(qty="three")]}),
    ("rate with comma", {"items": [one_item(rate="12,50")]}),
    ("rate missing", {"items": [one_item(rate=None)]}),
    ("taxrate garbage", {"items": [one_item(taxrate=["x"])]}),
    ("taxrate an object", {"items": [one_item(taxrate={"VAT": "21"})]}),
    ("total not a number", {"total": "NaN"}),
    ("total infinite", {"total": "Infinity"}),
    ("total out of range", {"total": "1E+40"}),
    ("subtotal a boolean", {"subtotal": True}),
    ("unknown currency", {"currency_name": None, "currency": "7"}),
    ("number not numeric", {"number": "12a"}),
    ("invoice-level discount", {"discount_total": "5.00"}),
    ("adjustment", {"adjustment": "-0.01"}),
    ("payment amount garbage", {"payments": [{"amount": "abc"}]}),
    ("payment not an object", {"payments": ["300.00"]}),
    ("sent flag garbage", {"status": "1", "sent": "maybe"}),
]


@pytest.mark.parametrize(("label", "overrides"), BAD_INVOICES, ids=[b[0] for b in BAD_INVOICES])
def test_bad_invoice_data_is_skipped_with_a_reason(label: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(SkipRecord) as caught:
        invoice(**overrides)
    assert caught.value.reason
    if overrides.get("id", "1042") is not None:
        assert caught.value.external_id == "1042"


BAD_PAYMENTS: list[tuple[str, Any]] = [
    ("not an object", "30"),
    ("no amount", base_payment(amount="")),
    ("garbage amount", base_payment(amount="1.2.3")),
    ("european date", base_payment(date="10-03-2026")),
    ("no invoice", base_payment(invoiceid=None)),
    ("no ids", base_payment(id=None, paymentid=None)),
]


@pytest.mark.parametrize(("label", "row"), BAD_PAYMENTS, ids=[b[0] for b in BAD_PAYMENTS])
def test_bad_payment_data_is_skipped_with_a_reason(label: str, row: Any) -> None:
    with pytest.raises(SkipRecord) as caught:
        m.payment_to_canonical(row, MODES)
    assert caught.value.reason


_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(base_invoice())),
    value=JSON_VALUES,
    item_key=st.sampled_from(sorted(one_item())),
)
def test_any_garbage_in_an_invoice_is_a_skip_never_a_crash(
    key: str, value: Any, item_key: str
) -> None:
    for row in (base_invoice(**{key: value}), base_invoice(items=[one_item(**{item_key: value})])):
        try:
            result = m.invoice_to_canonical(row, CURRENCIES)
        except SkipRecord as exc:
            assert exc.reason
        else:
            assert result == normalise(result)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(sorted(base_customer())),
    primary_key=st.sampled_from(sorted(base_primary())),
    value=JSON_VALUES,
)
def test_any_garbage_in_a_customer_is_a_skip_never_a_crash(
    key: str, primary_key: str, value: Any
) -> None:
    for customer, primary in (
        (base_customer(**{key: value}), base_primary()),
        (base_customer(), base_primary(**{primary_key: value})),
    ):
        try:
            result = m.contact_to_canonical(customer, primary, COUNTRIES)
        except SkipRecord as exc:
            assert exc.reason
        else:
            assert result == normalise(result)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(base_payment())), value=JSON_VALUES)
def test_any_garbage_in_a_payment_is_a_skip_never_a_crash(key: str, value: Any) -> None:
    try:
        m.payment_to_canonical(base_payment(**{key: value}), MODES)
    except SkipRecord as exc:
        assert exc.reason


# --------------------------------------------------------------------------- write bodies


def test_a_contact_writes_both_addresses_and_a_named_primary_contact() -> None:
    value = normalise(
        Contact(
            kind="organization",
            name="Acme B.V.",
            first_name="Jan",
            last_name="Smit",
            email="jan@acme.nl",
            phone="020-1234567",
            address_line1="Damrak 1",
            address_line2="3e etage",
            postal_code="1012lg",
            city="Amsterdam",
            country="NL",
            vat_number="NL001234567B01",
        )
    )
    write = m.contact_from_canonical(value, COUNTRIES)
    assert write.customer["company"] == "Acme B.V."
    assert write.customer["address"] == write.customer["billing_street"] == "Damrak 1\n3e etage"
    assert write.customer["country"] == write.customer["billing_country"] == "155"
    assert write.customer["zip"] == "1012 LG" and write.customer["active"] == "1"
    assert write.primary == {
        "firstname": "Jan",
        "lastname": "Smit",
        "email": "jan@acme.nl",
        "phonenumber": "+31201234567",
    }


def test_a_mailbox_without_names_is_filed_under_the_company() -> None:
    value = Contact(kind="organization", name="Acme B.V.", email="info@acme.nl")
    write = m.contact_from_canonical(value, COUNTRIES)
    assert write.primary is not None
    assert (write.primary["firstname"], write.primary["lastname"]) == ("Info", "Acme B.V.")
    assert m.contact_from_canonical(Contact("organization", "No Mail"), COUNTRIES).primary is None


def test_a_country_perfex_does_not_list_is_written_as_none() -> None:
    write = m.contact_from_canonical(Contact("organization", "X", country="Atlantis"), COUNTRIES)
    assert write.customer["country"] == "0"


def _draft(**overrides: Any) -> Invoice:
    values: dict[str, Any] = {
        "number": None,
        "contact": "17",
        "issue_date": dt.date(2026, 5, 1),
        "due_date": dt.date(2026, 5, 31),
        "currency": "EUR",
        "status": "draft",
        "lines": (
            InvoiceLine("Work", Decimal("1.5"), Decimal("80.00"), Decimal(21)),
            InvoiceLine("Export", Decimal(1), Decimal("10.00"), Decimal(0)),
            InvoiceLine("Levy", Decimal(1), Decimal("5.00"), Decimal(22)),
        ),
    }
    values.update(overrides)
    return normalise(with_computed_totals(Invoice(**values)))


def test_an_invoice_writes_lines_with_perfex_tax_names_and_our_token() -> None:
    body = m.invoice_from_canonical(
        _draft(status="open", number="INV-000042"), CURRENCIES, TAXES, client_token="tok-1"
    )
    assert body["clientid"] == 17 and body["currency"] == 2 and body["status"] == 1
    assert body["number"] == 42 and body["adminnote"] == "syncd:tok-1"
    assert body["date"] == "2026-05-01" and body["duedate"] == "2026-05-31"
    assert [(i["qty"], i["rate"], i["taxname"]) for i in body["items"]] == [
        (Decimal("1.5"), Decimal("80.00"), ["VAT|21.00"]),
        (Decimal(1), Decimal("10.00"), []),
        (Decimal(1), Decimal("5.00"), ["KM|22.00"]),
    ]
    assert (body["subtotal"], body["total_tax"], body["total"]) == (
        Decimal("135.00"),
        Decimal("26.30"),
        Decimal("161.30"),
    )


def test_a_draft_is_written_without_a_number() -> None:
    body = m.invoice_from_canonical(_draft(number="INV-000042"), CURRENCIES, TAXES)
    assert body["status"] == 6 and "number" not in body and "adminnote" not in body


@pytest.mark.parametrize(
    ("invoice_value", "reason"),
    [
        (_draft(lines=(InvoiceLine("X", Decimal(1), Decimal(1), Decimal(7)),)), "7"),
        (_draft(currency="GBP"), "GBP"),
        (_draft(contact=None), "contact"),
        (_draft(contact="acme"), "contact"),
        (_draft(lines=(InvoiceLine("X", Decimal("1.125"), Decimal(1), Decimal(0)),)), "decimals"),
    ],
)
def test_an_invoice_perfex_cannot_hold_is_skipped_before_writing(
    invoice_value: Invoice, reason: str
) -> None:
    with pytest.raises(SkipRecord, match=reason):
        m.invoice_from_canonical(invoice_value, CURRENCIES, TAXES)


def test_an_unknown_rate_or_currency_asks_for_fresh_lookups() -> None:
    with pytest.raises(m.UnknownLookup):
        m.invoice_from_canonical(_draft(currency="GBP"), CURRENCIES, TAXES)


def test_an_update_body_holds_only_changed_fields_and_keeps_item_ids() -> None:
    current = _draft(status="open", number="INV-000042")
    wanted = with_computed_totals(
        Invoice(
            **{
                **{f: getattr(current, f) for f in ("number", "contact", "issue_date", "currency")},
                "due_date": dt.date(2026, 6, 30),
                "status": "cancelled",
                "lines": current.lines[:2],
            }
        )
    )
    fields = {"due_date", "status", "lines", "number", "contact"}
    body = m.invoice_update_body(current, wanted, fields, CURRENCIES, TAXES, ["7", "8", "9"])
    assert body["duedate"] == "2026-06-30" and body["status"] == 5
    assert [item.get("id") for item in body["items"]] == ["7", "8"]
    assert body["total"] == Decimal("155.20")  # 120.00 + 21 % VAT + 10.00
    assert "clientid" not in body and "number" not in body and "currency" not in body


@pytest.mark.parametrize(
    ("current", "wanted", "sent"),
    [
        ("draft", "open", 1),
        ("draft", "sent", 1),
        ("cancelled", "open", 1),
        ("open", "cancelled", 5),
        ("paid", "cancelled", 5),
        ("open", "draft", None),
        ("open", "paid", None),
        ("overdue", "open", None),
    ],
)
def test_status_changes_follow_what_perfex_allows(
    current: str, wanted: str, sent: int | None
) -> None:
    before = _draft(status=current, number=None if current == "draft" else "INV-000001")
    after = Invoice(**{**{f: getattr(before, f) for f in to_fields(before)}, "status": wanted})
    body = m.invoice_update_body(before, after, {"status"}, CURRENCIES, TAXES, [])
    assert body.get("status") == sent


def test_finalising_a_draft_sends_its_number() -> None:
    draft = _draft()
    final = Invoice(
        **{
            **{f: getattr(draft, f) for f in to_fields(draft)},
            "status": "open",
            "number": "2026-0017",
        }
    )
    body = m.invoice_update_body(draft, final, {"status", "number"}, CURRENCIES, TAXES, [])
    assert body == {"status": 1, "number": 17}


@pytest.mark.parametrize(("wanted", "sent"), [("2026-0017", None), ("2026-0018", 18)])
def test_a_number_perfex_already_holds_the_digits_of_is_not_written_again(
    wanted: str, sent: int | None
) -> None:
    # A bookkeeping number under another prefix: Perfex can only hold its digits.
    current = _draft(status="open", number="INV-000017")
    after = Invoice(**{**{f: getattr(current, f) for f in to_fields(current)}, "number": wanted})
    body = m.invoice_update_body(current, after, {"number"}, CURRENCIES, TAXES, [])
    assert body.get("number") == sent


def test_a_payment_writes_its_mode_id_and_token() -> None:
    value = Payment("1042", dt.date(2026, 3, 10), Decimal("300"), method="cash", reference="TX")
    body = m.payment_from_canonical(value, MODES, client_token="p-1")
    assert body == {
        "invoiceid": 1042,
        "amount": Decimal("300.00"),
        "date": "2026-03-10",
        "transactionid": "TX",
        "paymentmode": "2",
        "note": "syncd:p-1",
    }
    with pytest.raises(SkipRecord):
        m.payment_from_canonical(Payment(None, dt.date(2026, 1, 1), Decimal(1)), MODES)
    with pytest.raises(SkipRecord):
        m.payment_from_canonical(Payment("1", dt.date(2026, 1, 1), Decimal(0)), MODES)


def test_tokens_are_recognised_inside_the_note_fields() -> None:
    assert m.invoice_has_token({"adminnote": "checked\nsyncd:abc"}, "abc")
    assert not m.invoice_has_token({"adminnote": None}, "abc")
    assert m.payment_has_token({"note": "syncd:p-1"}, "p-1")
    assert not m.payment_has_token({"note": "syncd:p-10"}, "p-2")


# --------------------------------------------------------------------------- response shapes


@pytest.mark.parametrize(
    ("body", "rows", "total", "has_more"),
    [
        ({"status": "success", "data": [{"id": "1"}], "total": 41}, 1, 41, None),
        ({"data": [{"id": "1"}], "meta": {"total": 3, "has_more": False}}, 1, 3, False),
        ([{"id": "1"}, {"id": "2"}], 2, None, None),
    ],
)
def test_list_answers_are_read_in_every_module_shape(
    body: Any, rows: int, total: int | None, has_more: bool | None
) -> None:
    page = list_page(body, "customer")
    assert (len(page.rows), page.total, page.has_more) == (rows, total, has_more)


def test_an_unexpected_list_shape_is_a_vendor_failure_not_data() -> None:
    with pytest.raises(VendorUnavailable):
        list_page({"status": "success", "data": {"id": "1"}}, "customer")
    with pytest.raises(VendorUnavailable):
        record({"status": "success", "message": "ok"}, "customer")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "success", "data": {"userid": "17", "company": "x"}}, "17"),
        ({"status": True, "message": "Client add successful.", "record_id": 18}, "18"),
        ({"status": "success"}, None),
    ],
)
def test_a_create_answer_yields_the_new_id(body: Any, expected: str | None) -> None:
    assert created_id(body, "userid") == expected


# --------------------------------------------------------------------------- round trip


def echo_contact(write: m.ContactWrite) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What Perfex stores for a contact write and reads back (every value as a string)."""
    customer = {"userid": "5", **{k: str(v) for k, v in write.customer.items()}}
    primary = None
    if write.primary is not None:
        primary = {"id": "9", "userid": "5", "is_primary": "1", **write.primary}
    return customer, primary


def echo_invoice(body: dict[str, Any], next_number: int = 77) -> dict[str, Any]:
    """What Perfex stores for an invoice create body (cancelled: created, then cancelled)."""
    draft = body["status"] == 6
    items = []
    for index, item in enumerate(body["items"]):
        names = [entry.partition("|")[0] for entry in item["taxname"]]
        rates = [entry.partition("|")[2] for entry in item["taxname"]]
        items.append(
            {
                "id": str(100 + index),
                "description": item["description"],
                "long_description": item["long_description"],
                "qty": f"{item['qty']:.2f}",
                "rate": f"{item['rate']:.2f}",
                "item_order": str(item["order"]),
                "taxname": names,
                "taxrate": rates,
            }
        )
    return {
        "id": "1",
        "sent": "0",
        "clientid": str(body["clientid"]),
        "number": m.DRAFT_NUMBER if draft else str(body.get("number", next_number)),
        "prefix": "INV-",
        "number_format": "1",
        "date": body["date"],
        "duedate": body["duedate"],
        "currency": str(body["currency"]),
        "subtotal": f"{body['subtotal']:.2f}",
        "total_tax": f"{body['total_tax']:.2f}",
        "total": f"{body['total']:.2f}",
        "adjustment": "0.00",
        "discount_total": "0.00",
        "status": str(body["status"]),
        "adminnote": body.get("adminnote"),
        "items": items,
        "payments": [],
    }


def _text(min_size: int = 1) -> st.SearchStrategy[str]:
    alphabet = string.ascii_letters + string.digits + "äöüõÅé .,&'-"
    return st.text(alphabet, min_size=min_size, max_size=24).filter(
        lambda t: clean_text(t) is not None
    )


_optional = st.none() | _text()
_emails = st.builds(
    lambda local, domain: f"{local}@{domain}.example",
    st.from_regex(r"[a-z][a-z0-9.]{0,8}", fullmatch=True),
    st.from_regex(r"[a-z]{1,10}", fullmatch=True),
)


@st.composite
def perfex_contacts(draw: st.DrawFn) -> Contact:
    """Canonical contacts restricted to what Perfex holds (see the mapping docstring)."""
    kind: ContactKind = draw(st.sampled_from(("organization", "person")))
    email = draw(_emails) if kind == "person" else draw(st.none() | _emails)
    first = last = None
    if kind == "person":
        first, last = draw(_text()), draw(_text())
        name = f"{first} {last}"
    else:
        name = draw(_text())
        if email is not None and draw(st.booleans()):
            first, last = draw(_text()), draw(_text())
            assume(clean_text(last).casefold() != clean_text(name).casefold())  # type: ignore[union-attr]
            assume(
                clean_text(f"{first} {last}").casefold() != clean_text(name).casefold()  # type: ignore[union-attr]
            )
    return Contact(
        kind=kind,
        name=name,
        first_name=first,
        last_name=last,
        email=email,
        phone=draw(st.none() | st.from_regex(r"\+?[0-9][0-9 ()-]{5,14}", fullmatch=True)),
        website=draw(
            st.none()
            | st.from_regex(r"https?://[a-z]{1,10}\.(nl|ee)(/[a-zA-Z]{1,5})?", fullmatch=True)
        ),
        address_line1=draw(_optional),
        address_line2=draw(_optional),
        postal_code=draw(_optional),
        city=draw(_optional),
        region=draw(_optional),
        country=draw(st.sampled_from((None, "NL", "EE", "BE", "DE", "US"))),
        vat_number=draw(st.none() | st.from_regex(r"[A-Z]{2}[0-9]{8,10}", fullmatch=True)),
        archived=draw(st.booleans()),
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(value=perfex_contacts())
def test_a_contact_survives_a_trip_through_perfex(value: Contact) -> None:
    customer, primary = echo_contact(m.contact_from_canonical(value, COUNTRIES))
    assert m.contact_to_canonical(customer, primary, COUNTRIES) == normalise(value)


_cents = st.integers(min_value=-50_000_00, max_value=50_000_00).map(lambda c: Decimal(c) / 100)
_quantities = st.integers(min_value=1, max_value=100_000).map(lambda c: Decimal(c) / 100)
_lines = st.builds(
    InvoiceLine,
    description=_text(),
    quantity=_quantities,
    unit_price=_cents,
    vat_rate=st.sampled_from((Decimal(0), Decimal(9), Decimal(21), Decimal(22))),
)


@st.composite
def perfex_invoices(draw: st.DrawFn) -> Invoice:
    """Canonical invoices restricted to what Perfex holds: its statuses that can be written,
    numbers in the company's prefix and padding, quantities in hundredths."""
    status: InvoiceStatus = draw(st.sampled_from(("draft", "open", "cancelled")))
    number = None
    if status != "draft":
        number = f"INV-{draw(st.integers(min_value=1, max_value=999_999)):06d}"
    issue = draw(st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)))
    due = draw(st.none() | st.dates(dt.date(2020, 1, 1), dt.date(2031, 12, 31)))
    value = Invoice(
        number=number,
        contact=str(draw(st.integers(min_value=1, max_value=99_999))),
        issue_date=issue,
        due_date=due,
        currency=draw(st.sampled_from(("EUR", "USD"))),
        status=status,
        lines=tuple(draw(st.lists(_lines, min_size=1, max_size=20))),
    )
    return with_computed_totals(value)


@settings(max_examples=200, deadline=None)
@given(
    value=perfex_invoices(), token=st.none() | st.text(string.ascii_letters, min_size=1, max_size=8)
)
def test_an_invoice_survives_a_trip_through_perfex(value: Invoice, token: str | None) -> None:
    body = m.invoice_from_canonical(value, CURRENCIES, TAXES, client_token=token)
    stored = echo_invoice(body)
    if m.wants_cancel(value):
        stored["status"] = "5"
    assert m.invoice_to_canonical(stored, CURRENCIES) == normalise(value)
    if token is not None:
        assert m.invoice_has_token(stored, token)


@settings(max_examples=100, deadline=None)
@given(
    invoice_id=st.integers(min_value=1, max_value=10**6).map(str),
    day=st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
    amount=st.integers(min_value=1, max_value=10**8).map(lambda c: Decimal(c) / 100),
    method=st.sampled_from(("Bank", "Cash", "bank")),
    reference=_optional,
)
def test_a_payment_survives_a_trip_through_perfex(
    invoice_id: str, day: dt.date, amount: Decimal, method: str, reference: str | None
) -> None:
    value = Payment(invoice_id, day, amount, method=method, reference=reference)
    body = m.payment_from_canonical(value, MODES)
    stored = {"id": "3", **{k: str(v) for k, v in body.items()}}
    echoed = m.payment_to_canonical(stored, MODES)
    assert echoed == normalise(
        Payment(invoice_id, day, amount, MODES.by_id[body["paymentmode"]], reference)
    )
    assert echoed.method is not None and echoed.method.casefold() == method.casefold()
