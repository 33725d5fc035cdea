"""Moneybird mapping: recorded vendor JSON to golden canonical values, every row of the
reference's mapping table, bad data as SkipRecord, and the write/read round trip."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.adapters.moneybird import mapping
from syncd.adapters.moneybird.mapping import TaxRate
from syncd.core.model import (
    CONTACT_KINDS,
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    normalise,
    to_fields,
    with_computed_totals,
)
from syncd.errors import SkipRecord

FIXTURES = Path(__file__).parent / "fixtures" / "moneybird"
VENDOR_FILES = sorted(
    p.stem for p in (FIXTURES / "vendor").glob("*.json") if p.stem.split("_")[0] != "tax"
)
RATE_21 = "496081347565061258"
RATE_9 = "496081347576595595"
RATE_0 = "496081347578692748"
RATE_22_EE = "496081347599999999"


def vendor(name: str) -> Any:
    """A recorded vendor body, parsed the way http.py parses it (fractions as Decimal)."""
    return json.loads((FIXTURES / "vendor" / f"{name}.json").read_text(), parse_float=Decimal)


def golden(name: str) -> Any:
    return json.loads((FIXTURES / "golden" / f"{name}.json").read_text())


def spec_rates() -> dict[str, TaxRate]:
    return mapping.tax_rates_from_vendor(vendor("tax_rates") + vendor("tax_rates_derived"))


def all_rates() -> dict[str, TaxRate]:
    """The spec's rates plus a 22 % Estonian sales rate (as the sandbox administration has)."""
    rates = spec_rates()
    rates[RATE_22_EE] = TaxRate(RATE_22_EE, Decimal("22.0"), "sales_invoice", True, True, "EE")
    return rates


def to_canonical(name: str, data: Any) -> Contact | Invoice | Payment:
    if name.startswith("contact"):
        return mapping.contact_to_canonical(data)
    if name.startswith("invoice"):
        return mapping.invoice_to_canonical(data, spec_rates())
    assert name.startswith("payment"), name
    return mapping.payment_to_canonical(data)


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("name", VENDOR_FILES)
def test_recorded_vendor_json_maps_to_its_golden_canonical_value(name: str) -> None:
    assert to_fields(to_canonical(name, vendor(name))) == golden(name)


@pytest.mark.parametrize("name", VENDOR_FILES)
def test_every_golden_value_is_already_normalised(name: str) -> None:
    value = to_canonical(name, vendor(name))
    assert value == normalise(value)


def test_every_fixture_has_a_golden_file_and_back() -> None:
    goldens = sorted(p.stem for p in (FIXTURES / "golden").glob("*.json"))
    assert goldens == VENDOR_FILES


# --------------------------------------------------------------------------- contact rows


def test_a_company_name_makes_an_organization_named_so() -> None:
    value = mapping.contact_to_canonical(vendor("contact_company_with_person_names"))
    assert (value.kind, value.name) == ("organization", "Moneybird B.V.")
    assert (value.first_name, value.last_name) == ("Money", "Bird")


def test_without_a_company_name_the_contact_is_a_person_named_first_and_last() -> None:
    data = vendor("contact_company")
    data.update(company_name="", firstname="Jan", lastname="Janssen")
    value = mapping.contact_to_canonical(data)
    assert (value.kind, value.name) == ("person", "Jan Janssen")


def test_a_person_with_only_a_last_name_is_named_by_it() -> None:
    data = vendor("contact_company")
    data.update(company_name=None, firstname=None, lastname="Appleseed")
    assert mapping.contact_to_canonical(data).name == "Appleseed"


def test_a_contact_without_any_name_is_skipped_with_a_reason() -> None:
    data = vendor("contact_company")
    data.update(company_name=" ", firstname=None, lastname="")
    with pytest.raises(SkipRecord, match="neither a company name nor"):
        mapping.contact_to_canonical(data)


def test_email_reads_the_first_invoice_address_then_falls_back_to_email() -> None:
    data = vendor("contact_company")
    data.update(send_invoices_to_email="Billing@Acme.example; info@acme.example", email="x@y.nl")
    assert mapping.contact_to_canonical(data).email == "billing@acme.example"
    data.update(send_invoices_to_email="")
    assert mapping.contact_to_canonical(data).email == "x@y.nl"


def test_email_is_written_to_send_invoices_to_email_not_the_read_only_email() -> None:
    body = mapping.contact_body(mapping.contact_to_canonical(vendor("contact_company")))
    assert body["contact"]["send_invoices_to_email"] == "info@example.com"
    assert "email" not in body["contact"]


# canonical field, Moneybird attribute, a vendor value, its canonical (normalised) form
CONTACT_ROWS = [
    ("phone", "phone", "020-1234567", "+31201234567"),
    ("address_line1", "address1", "Keizersgracht  12", "Keizersgracht 12"),
    ("address_line2", "address2", "2e etage", "2e etage"),
    ("postal_code", "zipcode", "1015cj", "1015 CJ"),
    ("city", "city", "Amsterdam", "Amsterdam"),
    ("country", "country", "ee", "EE"),
    ("vat_number", "tax_number", "NL 8123.45678.B01", "NL812345678B01"),
    ("coc_number", "chamber_of_commerce", "34567890", "34567890"),
    ("iban", "bank_account", "nl91 abna 0417 1643 00", "NL91ABNA0417164300"),
    ("customer_number", "customer_id", "K-17", "K-17"),
]


@pytest.mark.parametrize(("field", "key", "raw", "canonical"), CONTACT_ROWS)
def test_each_contact_row_is_read_from_its_moneybird_attribute(
    field: str, key: str, raw: str, canonical: str
) -> None:
    data = vendor("contact_company")
    data[key] = raw
    assert getattr(mapping.contact_to_canonical(data), field) == canonical


@pytest.mark.parametrize(("field", "key", "raw", "canonical"), CONTACT_ROWS)
def test_each_contact_row_is_written_to_its_moneybird_attribute_alone(
    field: str, key: str, raw: str, canonical: str
) -> None:
    data = vendor("contact_company")
    data[key] = raw
    value = mapping.contact_to_canonical(data)
    assert mapping.contact_body(value, fields=frozenset({field})) == {"contact": {key: canonical}}


def test_the_iban_is_bank_account_not_the_direct_debit_sepa_iban() -> None:
    data = vendor("contact_company")
    data.update(bank_account="", sepa_iban="NL50TEST0166567191")
    assert mapping.contact_to_canonical(data).iban is None


def test_archived_is_read_from_the_contact() -> None:
    assert mapping.contact_to_canonical(vendor("contact_person_archived_derived")).archived


def test_website_region_and_bic_are_never_held_by_moneybird() -> None:
    data = vendor("contact_company")
    data.update(sepa_bic="ABNANL2A", website="https://x.example")
    value = mapping.contact_to_canonical(data)
    assert (value.website, value.region, value.bic) == (None, None, None)


def test_the_client_token_is_the_customer_id_only_without_a_customer_number() -> None:
    value = normalise(Contact(kind="organization", name="Acme", country="NL"))
    assert mapping.contact_body(value, customer_id="tok-1")["contact"]["customer_id"] == "tok-1"
    numbered = normalise(Contact(kind="organization", name="Acme", customer_number="C-9"))
    assert mapping.contact_body(numbered, customer_id="tok-1")["contact"]["customer_id"] == "C-9"


def test_an_emptied_field_is_sent_as_an_empty_string_which_moneybird_clears() -> None:
    value = normalise(Contact(kind="organization", name="Acme", city=None))
    assert mapping.contact_body(value, fields=frozenset({"city"})) == {"contact": {"city": ""}}


def test_a_missing_country_or_customer_number_is_left_out_rather_than_cleared() -> None:
    value = normalise(Contact(kind="organization", name="Acme"))
    fields = frozenset({"country", "customer_number"})
    assert mapping.contact_body(value, fields=fields) == {"contact": {}}


def test_a_country_that_is_no_iso_code_is_refused_before_writing() -> None:
    value = normalise(Contact(kind="organization", name="Acme", country="Atlantis"))
    with pytest.raises(SkipRecord, match="alpha-2"):
        mapping.contact_body(value)


def test_a_country_name_is_written_as_its_code() -> None:
    value = Contact(kind="organization", name="Acme", country="Nederland")
    assert mapping.contact_body(value)["contact"]["country"] == "NL"


def test_renaming_a_person_writes_first_and_last_name_and_clears_no_company() -> None:
    value = normalise(
        Contact(kind="person", name="Jan Jansen", first_name="Jan", last_name="Jansen")
    )
    body = mapping.contact_body(value, fields=frozenset({"name"}))
    assert body == {"contact": {"firstname": "Jan", "lastname": "Jansen"}}


def test_a_person_known_only_by_a_display_name_is_written_as_last_name() -> None:
    value = normalise(Contact(kind="person", name="Prince"))
    attrs = mapping.contact_body(value)["contact"]
    assert (attrs["company_name"], attrs["firstname"], attrs["lastname"]) == ("", "", "Prince")


def test_changing_kind_rewrites_company_and_person_names_together() -> None:
    value = normalise(Contact(kind="organization", name="Acme B.V.", first_name="Ann"))
    attrs = mapping.contact_body(value, fields=frozenset({"kind"}))["contact"]
    assert attrs == {"company_name": "Acme B.V.", "firstname": "Ann", "lastname": ""}


# --------------------------------------------------------------------------- invoice rows


def test_a_draft_has_no_number_and_a_sent_invoice_has_invoice_id_as_number() -> None:
    assert mapping.invoice_to_canonical(vendor("invoice_draft"), spec_rates()).number is None
    assert mapping.invoice_to_canonical(vendor("invoice_open"), spec_rates()).number == "2026-0001"


def test_lines_take_quantity_from_amount_decimal_and_vat_from_the_tax_rate() -> None:
    data = vendor("invoice_open")
    data["details"][0].update(amount="3 uur", amount_decimal="2.5", tax_rate_id=RATE_9)
    line = mapping.invoice_to_canonical(data, spec_rates()).lines[0]
    assert (line.quantity, line.vat_rate) == (Decimal("2.5"), Decimal(9))


def test_a_line_without_amount_decimal_reads_the_leading_number_of_amount() -> None:
    data = vendor("invoice_open")
    data["details"][0].update(amount="3,5 x", amount_decimal=None)
    assert mapping.invoice_to_canonical(data, spec_rates()).lines[0].quantity == Decimal("3.5")


def test_a_no_vat_rate_with_a_null_percentage_reads_as_zero() -> None:
    data = vendor("invoice_open")
    data["details"][0]["tax_rate_id"] = "496081347600000001"
    assert mapping.invoice_to_canonical(data, spec_rates()).lines[0].vat_rate == 0


def test_prices_incl_vat_become_unit_prices_excl_vat() -> None:
    value = mapping.invoice_to_canonical(vendor("invoice_prices_incl_tax_derived"), spec_rates())
    assert value.lines[0].unit_price == Decimal("300.00")


def test_tax_total_is_the_sum_of_tax_totals() -> None:
    data = vendor("invoice_open")
    data["tax_totals"].append({"tax_rate_id": RATE_9, "tax_amount": "4.5"})
    assert mapping.invoice_to_canonical(data, spec_rates()).tax_total == Decimal("67.50")


def test_paid_and_outstanding_come_from_total_paid() -> None:
    value = mapping.invoice_to_canonical(vendor("invoice_late_partly_paid_derived"), spec_rates())
    assert (value.amount_paid, value.total) == (Decimal("100.00"), Decimal("363.00"))


@pytest.mark.parametrize(
    ("state", "paid", "unpaid", "status"),
    [
        ("draft", "0", "100", "draft"),
        ("scheduled", "0", "100", "open"),
        ("open", "0", "100", "open"),
        ("pending_payment", "0", "100", "open"),
        ("open", "40", "60", "partially_paid"),
        ("late", "0", "100", "overdue"),
        ("reminded", "0", "100", "overdue"),
        ("late", "40", "60", "partially_paid"),
        ("paid", "100", "0", "paid"),
        ("paid", "-363", "0", "paid"),
        ("uncollectible", "0", "100", "uncollectible"),
    ],
)
def test_each_moneybird_state_has_one_canonical_status(
    state: str, paid: str, unpaid: str, status: str
) -> None:
    assert mapping.invoice_status(state, Decimal(paid), Decimal(unpaid)) == status


def test_an_unknown_state_is_skipped() -> None:
    with pytest.raises(SkipRecord, match="state"):
        mapping.invoice_status("archived", Decimal(0), Decimal(0))


def test_an_invoice_body_carries_lines_with_amounts_prices_and_tax_rate_ids() -> None:
    value = normalise(
        Invoice(
            number=None,
            contact="42",
            issue_date=dt.date(2026, 11, 2),
            due_date=dt.date(2026, 11, 16),
            lines=(
                InvoiceLine("Advies", Decimal("3.50"), Decimal("95"), Decimal("21")),
                InvoiceLine("Boek", Decimal("2"), Decimal("12.49"), Decimal("9")),
                InvoiceLine("Export", Decimal("1"), Decimal("250"), Decimal("0")),
                InvoiceLine("Tallinn", Decimal("1"), Decimal("10"), Decimal("22")),
            ),
        )
    )
    body = mapping.invoice_body(value, all_rates().values(), reference="ref-1")
    attrs = body["sales_invoice"]
    assert attrs["contact_id"] == "42"
    assert (attrs["invoice_date"], attrs["first_due_interval"]) == ("2026-11-02", 14)
    assert (attrs["reference"], attrs["currency"], attrs["prices_are_incl_tax"]) == (
        "ref-1",
        "EUR",
        False,
    )
    assert [(d["amount"], d["price"], d["tax_rate_id"]) for d in attrs["details_attributes"]] == [
        ("3.5", "95.00", RATE_21),
        ("2", "12.49", RATE_9),
        ("1", "250.00", RATE_0),
        ("1", "10.00", RATE_22_EE),
    ]
    assert "invoice_id" not in attrs and "state" not in attrs


def test_new_lines_update_the_present_ones_by_position_and_destroy_the_rest() -> None:
    current = vendor("invoice_credit_draft")["details"]
    value = normalise(
        Invoice(
            None, "1", None, None, lines=(InvoiceLine("Only", Decimal(1), Decimal(5), Decimal(9)),)
        )
    )
    body = mapping.invoice_body(
        value, spec_rates().values(), fields=frozenset({"lines"}), current_details=current
    )
    details = body["sales_invoice"]["details_attributes"]
    assert details[0]["id"] == current[0]["id"] and details[0]["description"] == "Only"
    assert details[1] == {"id": current[1]["id"], "_destroy": True}


def test_more_lines_than_present_adds_the_new_ones_without_an_id() -> None:
    current = vendor("invoice_open")["details"]
    lines = tuple(InvoiceLine(f"L{i}", Decimal(1), Decimal(1), Decimal(21)) for i in range(3))
    body = mapping.invoice_body(
        normalise(Invoice(None, "1", None, None, lines=lines)),
        spec_rates().values(),
        fields=frozenset({"lines"}),
        current_details=current,
    )
    details = body["sales_invoice"]["details_attributes"]
    assert ["id" in d for d in details] == [True, False, False]
    assert [d["row_order"] for d in details] == [0, 1, 2]


def test_a_rate_moneybird_lacks_is_a_skip_with_a_clear_reason() -> None:
    value = Invoice(
        None, "1", None, None, lines=(InvoiceLine("X", Decimal(1), Decimal(1), Decimal(13)),)
    )
    with pytest.raises(SkipRecord, match=r"no active sales tax rate of 13%"):
        mapping.invoice_body(value, spec_rates().values())


def test_a_due_date_before_the_invoice_date_cannot_be_held() -> None:
    value = Invoice(None, "1", dt.date(2026, 5, 2), dt.date(2026, 5, 1))
    with pytest.raises(SkipRecord, match="before the invoice date"):
        mapping.invoice_body(value, spec_rates().values())


def test_an_invoice_without_contact_is_refused_before_writing() -> None:
    with pytest.raises(SkipRecord, match="needs a contact"):
        mapping.invoice_body(Invoice(None, None, None, None), spec_rates().values())


def test_an_update_of_only_the_reference_sends_only_the_reference() -> None:
    value = Invoice(None, "1", None, None, reference="PO-7")
    body = mapping.invoice_body(value, (), fields=frozenset({"reference"}))
    assert body == {"sales_invoice": {"reference": "PO-7"}}


# --------------------------------------------------------------------------- tax rates


def test_the_domestic_rate_that_shows_vat_wins_among_equal_percentages() -> None:
    rates = [
        TaxRate("30", Decimal(0), "sales_invoice", True, False, None),  # reverse charge
        TaxRate("20", Decimal(9), "sales_invoice", True, True, "EE"),
        TaxRate("10", Decimal(9), "sales_invoice", True, True, None),
        TaxRate("40", Decimal(0), "sales_invoice", True, True, None),
        TaxRate("5", Decimal(9), "purchase_invoice", True, True, None),
        TaxRate("6", Decimal(9), "sales_invoice", False, True, None),
    ]
    assert mapping.choose_tax_rate(rates, Decimal("9.00")) == "10"
    assert mapping.choose_tax_rate(rates, Decimal(0)) == "40"


def test_a_foreign_rate_is_used_when_it_is_the_only_one_of_its_percentage() -> None:
    assert mapping.choose_tax_rate(all_rates().values(), Decimal(22)) == RATE_22_EE


def test_a_null_percentage_rate_is_never_chosen_for_zero_percent() -> None:
    rates = [TaxRate("1", None, "sales_invoice", True, True, None)]
    with pytest.raises(SkipRecord):
        mapping.choose_tax_rate(rates, Decimal(0))


def test_unreadable_tax_rates_are_left_out_of_the_table() -> None:
    rates = mapping.tax_rates_from_vendor([{"id": "x"}, "junk", vendor("tax_rates")[0]])
    assert list(rates) == [RATE_21]


# --------------------------------------------------------------------------- payments


def test_a_payment_maps_invoice_date_amount_and_transaction_reference() -> None:
    raw = vendor("invoice_late_partly_paid_derived")["payments"][0]
    value = mapping.payment_to_canonical(raw)
    assert value == Payment(
        invoice="496081540407625500",
        date=dt.date(2026, 9, 10),
        amount=Decimal("100.00"),
        reference="BANK-2026-0917",
    )


def test_a_payment_of_a_purchase_document_is_not_a_sales_payment() -> None:
    raw = vendor("payment_single")
    raw["invoice_type"] = "Document"
    with pytest.raises(SkipRecord, match="not a sales invoice"):
        mapping.payment_to_canonical(raw)


def test_a_payment_body_sends_date_price_and_reference() -> None:
    value = Payment("9", dt.date(2026, 8, 21), Decimal("363"), reference="T-1")
    assert mapping.payment_body(value) == {
        "payment": {
            "payment_date": "2026-08-21",
            "price": "363.00",
            "transaction_identifier": "T-1",
        }
    }


# --------------------------------------------------------------------------- times and versions


def test_filter_times_use_the_documented_utc_form_floored_to_the_second() -> None:
    moment = dt.datetime(2026, 8, 21, 15, 50, 12, 900000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert mapping.filter_time(moment) == "2026-08-21 13:50:12 UTC"


def test_updated_at_is_utc_aware_and_version_is_text() -> None:
    data = vendor("contact_company")
    assert mapping.record_updated_at(data, "contact") == dt.datetime(
        2026, 8, 21, 13, 48, 43, 27000, tzinfo=dt.UTC
    )
    assert mapping.record_version(data) == "1787320123"


# --------------------------------------------------------------------------- bad vendor data


def _set(path: tuple[str | int, ...], value: Any) -> Any:
    def change(data: Any) -> Any:
        data = copy.deepcopy(data)
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return data

    return change


_DELETE = object()

BAD_DATA = [
    ("contact_company", _set(("id",), _DELETE), "no valid id"),
    ("contact_company", _set(("id",), 1.5), "no valid id"),
    ("contact_company", _set(("id",), "abc"), "no valid id"),
    ("contact_company", _set(("company_name",), 12), "company_name is not text"),
    ("contact_company", _set(("city",), ["Amsterdam"]), "city is not text"),
    ("contact_company", _set(("archived",), "yes"), "archived is not true/false"),
    ("contact_company", lambda d: [d], "not a JSON object"),
    ("contact_company", lambda d: None, "not a JSON object"),
    ("invoice_open", _set(("invoice_date",), "2026-13-45"), "invoice_date is not a date"),
    ("invoice_open", _set(("due_date",), 20260904), "due_date is not a date"),
    ("invoice_open", _set(("total_price_incl_tax",), "12,3.4"), "not an amount"),
    ("invoice_open", _set(("total_price_excl_tax",), _DELETE), "not an amount"),
    ("invoice_open", _set(("total_paid",), "NaN"), "not an amount"),
    ("invoice_open", _set(("total_paid",), True), "not an amount"),
    ("invoice_open", _set(("contact_id",), None), "contact_id"),
    ("invoice_open", _set(("state",), "vanished"), "state"),
    ("invoice_open", _set(("state",), None), "state"),
    ("invoice_open", _set(("details",), {"0": {}}), "details is not a list"),
    ("invoice_open", _set(("details", 0), "line"), "not a JSON object"),
    ("invoice_open", _set(("details", 0, "price"), "1e"), "price is not an amount"),
    ("invoice_open", _set(("details", 0, "price"), "Infinity"), "price is not an amount"),
    ("invoice_open", _set(("details", 0, "tax_rate_id"), "123"), "unknown tax rate 123"),
    ("invoice_open", _set(("details", 0, "tax_rate_id"), None), "tax_rate_id"),
    ("invoice_open", _set(("details", 0, "amount_decimal"), "x"), "quantity"),
    ("invoice_open", _set(("details", 0, "description"), 7), "description is not text"),
    ("invoice_open", _set(("tax_totals",), "63"), "tax_totals is not a list"),
    ("invoice_open", _set(("tax_totals", 0, "tax_amount"), "lots"), "tax_amount"),
    ("invoice_open", _set(("prices_are_incl_tax",), "no"), "prices_are_incl_tax"),
    ("payment_single", _set(("payment_date",), _DELETE), "payment_date"),
    ("payment_single", _set(("payment_date",), "yesterday"), "payment_date is not a date"),
    ("payment_single", _set(("price",), "€ 363"), "price is not an amount"),
    ("payment_single", _set(("invoice_id",), None), "invoice_id"),
]


@pytest.mark.parametrize(("name", "change", "reason"), BAD_DATA)
def test_bad_vendor_data_is_a_skip_with_a_reason_never_another_error(
    name: str, change: Any, reason: str
) -> None:
    with pytest.raises(SkipRecord) as caught:
        to_canonical(name, change(vendor(name)))
    assert reason in caught.value.reason


def test_a_skip_names_the_record_it_came_from() -> None:
    data = vendor("invoice_open")
    data["invoice_date"] = "never"
    with pytest.raises(SkipRecord) as caught:
        mapping.invoice_to_canonical(data, spec_rates())
    assert caught.value.external_id == data["id"]


def test_an_unreadable_updated_at_is_a_skip() -> None:
    data = vendor("contact_company")
    data["updated_at"] = "last tuesday"
    with pytest.raises(SkipRecord, match="updated_at"):
        mapping.record_updated_at(data, "contact")


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(-(10**20), 10**20)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["2026-08-21", "2026-02-30", "1.5", "", RATE_21, "draft", "late"])
)
JSON = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(VENDOR_FILES),
    changes=st.lists(st.tuples(st.integers(0, 10**6), st.booleans(), JSON), max_size=3),
)
def test_any_corruption_of_a_record_maps_or_skips_and_nothing_else(
    name: str, changes: list[tuple[int, bool, Any]]
) -> None:
    data = vendor(name)
    for index, in_line, value in changes:
        target = data
        details = data.get("details") if isinstance(data, dict) else None
        if in_line and isinstance(details, list) and details and isinstance(details[0], dict):
            target = details[0]
        if not isinstance(target, dict) or not target:
            continue
        keys = sorted(target)
        target[keys[index % len(keys)]] = value
    try:
        value = to_canonical(name, data)
    except SkipRecord as exc:
        assert exc.reason
    else:
        assert value == normalise(value)


# --------------------------------------------------------------------------- round trip


def _echo_contact(body: dict[str, Any], customer_default: str = "7") -> dict[str, Any]:
    """What Moneybird answers after creating a contact from ``body``."""
    attrs = body["contact"]
    keys = ["company_name", "firstname", "lastname", "phone", "address1", "address2", "zipcode"]
    keys += ["city", "tax_number", "chamber_of_commerce", "bank_account", "send_invoices_to_email"]
    out: dict[str, Any] = {key: attrs.get(key, "") for key in keys}
    out.update(
        id="496081410950432183",
        country=attrs.get("country", "NL"),
        customer_id=attrs.get("customer_id") or customer_default,
        email=attrs.get("send_invoices_to_email", ""),  # the read-only mirror
        archived=False,
        updated_at="2026-08-21T13:48:42.191Z",
        version=1787320122,
    )
    return out


def _cents(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _echo_invoice(body: dict[str, Any], rates: dict[str, TaxRate]) -> dict[str, Any]:
    """What Moneybird answers after creating a draft from ``body`` (totals per tax rate)."""
    attrs = body["sales_invoice"]
    details: list[dict[str, Any]] = []
    taxable: dict[str, Decimal] = {}
    for index, item in enumerate(attrs["details_attributes"]):
        qty, price = Decimal(item["amount"]), Decimal(item["price"])
        excl = _cents(qty * price)
        taxable[item["tax_rate_id"]] = taxable.get(item["tax_rate_id"], Decimal(0)) + excl
        details.append(
            {
                "id": str(900 + index),
                "tax_rate_id": item["tax_rate_id"],
                "amount": item["amount"],
                "amount_decimal": str(qty),
                "description": item["description"],
                "price": str(price),
                "row_order": item["row_order"],
                "total_price_excl_tax_with_discount": str(excl),
            }
        )
    tax = {rid: _cents(amount * rates[rid].rate / 100) for rid, amount in taxable.items()}
    excl_total = sum(taxable.values(), Decimal(0))
    incl_total = excl_total + sum(tax.values(), Decimal(0))
    issue = attrs.get("invoice_date") or None
    due = None
    if issue:
        due = (
            dt.date.fromisoformat(issue) + dt.timedelta(days=attrs["first_due_interval"])
        ).isoformat()
    return {
        "id": "496081523992167770",
        "contact_id": attrs["contact_id"],
        "invoice_id": None,
        "state": "draft",
        "invoice_date": issue,
        "due_date": due,
        "reference": attrs.get("reference"),
        "currency": attrs["currency"],
        "prices_are_incl_tax": attrs["prices_are_incl_tax"],
        "details": details,
        "payments": [],
        "tax_totals": [{"tax_rate_id": r, "tax_amount": str(t)} for r, t in tax.items()],
        "total_price_excl_tax": str(excl_total),
        "total_price_incl_tax": str(incl_total),
        "total_paid": "0.0",
        "total_unpaid": str(incl_total),
    }


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=20)
CONTENT = TEXT.filter(lambda t: bool(t.strip()))
OPTIONAL = st.none() | TEXT
EMAIL = st.builds(
    lambda local, domain: f"{local}@{domain}.example",
    st.from_regex(r"[A-Za-z0-9._%+-]{1,12}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9-]{1,12}", fullmatch=True),
)


@st.composite
def holdable_contacts(draw: st.DrawFn) -> Contact:
    """Contacts restricted to what Moneybird can hold (see the module docstring of mapping)."""
    kind = draw(st.sampled_from(CONTACT_KINDS))
    first, last = draw(OPTIONAL), draw(OPTIONAL)
    if kind == "organization":
        name = draw(CONTENT)
    else:
        last = draw(CONTENT) if not (first or "").strip() else last
        name = " ".join(p for p in (first, last) if p is not None)
    return Contact(
        kind=kind,
        name=name,
        first_name=first,
        last_name=last,
        email=draw(st.none() | EMAIL),
        phone=draw(st.none() | st.from_regex(r"\+?[0-9 ()-]{0,14}", fullmatch=True)),
        address_line1=draw(OPTIONAL),
        address_line2=draw(OPTIONAL),
        postal_code=draw(OPTIONAL),
        city=draw(OPTIONAL),
        country=draw(st.sampled_from(["NL", "EE", "be", "Deutschland", "GB", "US", "FR"])),
        vat_number=draw(OPTIONAL),
        coc_number=draw(OPTIONAL),
        iban=draw(OPTIONAL),
        customer_number=draw(CONTENT),
    )


@settings(max_examples=200, deadline=None)
@given(holdable_contacts())
def test_contacts_survive_a_write_and_read_back(value: Contact) -> None:
    echoed = _echo_contact(mapping.contact_body(value, customer_id="token-ignored"))
    assert mapping.contact_to_canonical(echoed) == normalise(value)


@settings(max_examples=100, deadline=None)
@given(holdable_contacts())
def test_a_contact_without_customer_number_reads_back_its_client_token(value: Contact) -> None:
    value = Contact(
        **{**{f: getattr(value, f) for f in value.__dataclass_fields__}, "customer_number": None}
    )
    echoed = _echo_contact(mapping.contact_body(value, customer_id="syncd-123"))
    assert mapping.contact_to_canonical(echoed).customer_number == "syncd-123"


LINES = st.builds(
    InvoiceLine,
    description=TEXT,
    quantity=st.decimals(min_value=-500, max_value=500, places=4, allow_nan=False),
    unit_price=st.decimals(min_value=-10000, max_value=100000, places=2, allow_nan=False),
    vat_rate=st.sampled_from([Decimal(0), Decimal(9), Decimal("21.0"), Decimal(22)]),
)


@st.composite
def holdable_invoices(draw: st.DrawFn) -> Invoice:
    """Drafts as Moneybird holds them: dated, due on or after that, totals from the lines."""
    issue = draw(st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1)))
    invoice = Invoice(
        number=None,
        contact=draw(st.from_regex(r"[1-9][0-9]{0,17}", fullmatch=True)),
        issue_date=issue,
        due_date=issue + dt.timedelta(days=draw(st.integers(0, 120))),
        currency=draw(st.sampled_from(["EUR", "usd", "GBP"])),
        status="draft",
        lines=tuple(draw(st.lists(LINES, max_size=20))),
        reference=draw(OPTIONAL),
    )
    return with_computed_totals(normalise(invoice))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(holdable_invoices())
def test_invoices_survive_a_write_and_read_back_to_the_cent(value: Invoice) -> None:
    rates = all_rates()
    echoed = _echo_invoice(mapping.invoice_body(value, rates.values()), rates)
    assert mapping.invoice_to_canonical(echoed, rates) == normalise(value)


@settings(max_examples=100, deadline=None)
@given(
    st.builds(
        Payment,
        invoice=st.from_regex(r"[1-9][0-9]{0,17}", fullmatch=True),
        date=st.dates(dt.date(2000, 1, 1), dt.date(2099, 1, 1)),
        amount=st.decimals(min_value=-(10**6), max_value=10**6, places=2, allow_nan=False),
        reference=OPTIONAL,
    )
)
def test_payments_survive_a_write_and_read_back(value: Payment) -> None:
    attrs = mapping.payment_body(value)["payment"]
    echoed = {
        "id": "496081536082249007",
        "invoice_type": "SalesInvoice",
        "invoice_id": value.invoice,
        "price": attrs["price"],
        "payment_date": attrs["payment_date"],
        "transaction_identifier": attrs.get("transaction_identifier"),
    }
    assert mapping.payment_to_canonical(echoed) == normalise(value)
