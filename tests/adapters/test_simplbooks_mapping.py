"""SimplBooks mapping: recorded vendor JSON -> golden canonical values, every mapping-table row,
bad data -> SkipRecord, round trips through a simulated vendor echo, and error classification."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.adapters.http import HttpResponse
from syncd.adapters.simplbooks.client import (
    PageTooLarge,
    SimplbooksClient,
    classify,
    make_classifier,
)
from syncd.adapters.simplbooks.mapping import (
    CONTACT_TO_CLIENT,
    NO_DATE,
    VatType,
    choose_vat_type,
    contact_from_canonical,
    contact_to_canonical,
    invoice_from_canonical,
    invoice_list_id,
    invoice_to_canonical,
    parse_payment_id,
    payment_external_id,
    payment_from_canonical,
    payment_to_canonical,
    row_ids_of,
    vat_types_from_list,
)
from syncd.core.model import (
    CONTACT_FIELDS,
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    contact_from_fields,
    invoice_from_fields,
    normalise,
    payment_from_fields,
    to_fields,
    with_computed_totals,
)
from syncd.errors import (
    AuthFailed,
    Fatal,
    NotFound,
    RateLimited,
    SkipRecord,
    Uncertain,
    VendorUnavailable,
)

FIXTURES = Path(__file__).parent / "fixtures" / "simplbooks"
TODAY = dt.date(2026, 11, 2)
CENT = Decimal("0.01")


def load(name: str) -> Any:
    """A recorded answer, parsed as http.py parses it (fractions as Decimal)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"), parse_float=Decimal)


def golden(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data


# --------------------------------------------------------------------------- golden files


@pytest.mark.parametrize("name", ["clients_get_spec", "clients_list_spec"])
def test_recorded_clients_map_to_their_golden_contacts(name: str) -> None:
    data = load(f"{name}.json")["data"]
    rows = data if isinstance(data, list) else [data]
    mapped = [contact_to_canonical(row) for row in rows]
    expected = golden(f"{name}.golden.json")
    assert [{"external_id": e, "value": to_fields(v)} for e, v in mapped] == expected
    for (_, value), entry in zip(mapped, expected, strict=True):
        assert value == contact_from_fields(entry["value"])


@pytest.mark.parametrize(
    "name",
    [
        "invoices_get_spec",
        "invoices_get_partly_paid",
        "invoices_get_paid",
        "invoices_get_gross_rows",
        "invoices_get_credit",
    ],
)
def test_recorded_invoices_map_to_their_golden_invoices(name: str) -> None:
    external_id, value = invoice_to_canonical(load(f"{name}.json")["data"], today=TODAY)
    [expected] = golden(f"{name}.golden.json")
    assert {"external_id": external_id, "value": to_fields(value)} == expected
    assert value == invoice_from_fields(expected["value"])
    assert value == normalise(value)


def test_a_recorded_receipt_maps_to_its_golden_payment() -> None:
    external_id, value = payment_to_canonical(load("incomings_get_spec.json")["data"], 5)
    [expected] = golden("incomings_get_spec.golden.json")
    assert {"external_id": external_id, "value": to_fields(value)} == expected
    assert value == payment_from_fields(expected["value"])


def test_the_invoice_list_row_carries_the_id_under_lowercase_invoices() -> None:
    [row] = load("invoices_list_spec.json")["data"]
    assert invoice_list_id(row) == "7"
    with pytest.raises(SkipRecord):
        invoice_list_id({"Invoice": row["invoices"]})  # the detail wrapper is not a list row


def test_a_contact_is_written_like_the_references_create_example() -> None:
    example = load("clients_create_reference.json")
    contact = Contact(
        kind="organization",
        name="Acme OÜ",
        coc_number="12345678",
        email="info@acme.ee",
        country="EE",
    )
    body = {"Client": contact_from_canonical(contact)}
    assert {k: v for k, v in body["Client"].items() if v} == example["Client"]
    assert set(body["Client"]) == set(CONTACT_TO_CLIENT.values()), "empty fields are cleared"


def test_an_invoice_is_written_with_the_references_wrappers_and_row_fields() -> None:
    example = load("invoices_create_reference.json")
    value = Invoice(
        number="24001",
        contact="42",
        issue_date=dt.date(2024, 1, 31),
        due_date=dt.date(2024, 2, 14),
        lines=(InvoiceLine("Consulting", Decimal(10), Decimal(50), Decimal(22)),),
        reference="...",
    )
    body = invoice_from_canonical(value, vat_type_ids={Decimal(22): 5})
    assert set(body) == {"Invoice", "Tasks"}
    shared = ("client_id", "number", "created", "transaction_date", "due", "currency_name")
    assert {k: body["Invoice"][k] for k in shared} == {k: example["Invoice"][k] for k in shared}
    assert body["Invoice"]["row_sum_with_vat"] is False
    assert body["Invoice"]["additional_info"] == "..."
    [task] = body["Tasks"]
    assert set(task) == {"Task"}
    for key in ("name", "amount", "price_per_unit", "vat", "vat_type_id", "discount"):
        assert task["Task"][key] == example["Tasks"][0]["Task"][key], key


# --------------------------------------------------------------------------- the mapping table


def _client(**fields: Any) -> dict[str, Any]:
    return {"Client": {"id": 42, "name": "Row Test OÜ", **fields}}


@pytest.mark.parametrize(
    ("vendor_field", "vendor_value", "field", "canonical"),
    [
        ("name", "  Acme   OÜ ", "name", "Acme OÜ"),
        ("reg_no", "12345678", "coc_number", "12345678"),
        ("vat_no", "ee 1015.06652", "vat_number", "EE101506652"),
        ("address_street", "Sõpruse pst 151a", "address_line1", "Sõpruse pst 151a"),
        ("address_postal_code", "13417", "postal_code", "13417"),
        ("address_city", "Tallinn", "city", "Tallinn"),
        ("address_county", "Harjumaa", "region", "Harjumaa"),
        ("address_country", "Eesti", "country", "EE"),
        ("webpage", "HTTPS://WWW.Simplbooks.EE/", "website", "https://www.simplbooks.ee"),
        ("e_mail", "Info@SimplBooks.ee", "email", "info@simplbooks.ee"),
        ("phone", "+372 5224 658", "phone", "+3725224658"),
        ("account_no", "ee77 2200 2210 6059 1752", "iban", "EE772200221060591752"),
        ("swift_code", "habaee2x", "bic", "HABAEE2X"),
    ],
)
def test_each_client_field_maps_to_its_canonical_field(
    vendor_field: str, vendor_value: str, field: str, canonical: str
) -> None:
    assert CONTACT_TO_CLIENT[field] == vendor_field
    _, contact = contact_to_canonical(_client(**{vendor_field: vendor_value}))
    assert getattr(contact, field) == canonical
    body = contact_from_canonical(contact, {field})
    assert body == {vendor_field: canonical}


def test_client_fields_without_a_canonical_home_are_ignored_and_kind_is_organization() -> None:
    _, contact = contact_to_canonical(
        _client(fax="5224658", bank="Swedbank", client_settings_language="et_EE")
    )
    assert contact == normalise(Contact(kind="organization", name="Row Test OÜ"))
    unmapped = set(CONTACT_FIELDS) - set(CONTACT_TO_CLIENT)
    assert unmapped == {
        "kind", "first_name", "last_name", "address_line2", "customer_number", "archived"
    }  # fmt: skip


def _detail(header: dict[str, Any] | None = None, rows: list[Any] | None = None) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 5001,
        "client_id": 4,
        "number": "1001",
        "created": "2026-10-01",
        "due": "2026-12-01",
        "currency_name": "EUR",
        "sum": Decimal("100.00"),
        "vat": Decimal("22.00"),
        "total_sum": Decimal("122.00"),
        "remnant": Decimal("122.00"),
        "row_sum_with_vat": False,
        "sent": NO_DATE,
        "paid": NO_DATE,
        "additional_info": "",
    }
    task = {"id": 1, "name": "Work", "amount": 1, "price_per_unit": 100, "vat": 22, "discount": 0}
    return {"Invoice": {**base, **(header or {})}, "Task": rows if rows is not None else [task]}


@pytest.mark.parametrize(
    ("header", "field", "expected"),
    [
        ({"number": "A-77"}, "number", "A-77"),
        ({"client_id": "12"}, "contact", "12"),
        ({"created": "2026-10-05"}, "issue_date", dt.date(2026, 10, 5)),
        ({"due": "2026-12-24"}, "due_date", dt.date(2026, 12, 24)),
        ({"due": NO_DATE}, "due_date", None),
        ({"currency_name": "usd"}, "currency", "USD"),
        ({"currency_name": ""}, "currency", "EUR"),
        ({"additional_info": " PO  118 "}, "reference", "PO 118"),
        ({"reference": "50011"}, "reference", None),  # the payment reference number is not ours
        ({"sum": "99.999"}, "subtotal", Decimal("100.00")),
        ({"vat": 21.5}, "tax_total", Decimal("21.50")),
        ({"total_sum": "122", "remnant": "122"}, "total", Decimal("122.00")),
        ({"remnant": "22.00"}, "amount_paid", Decimal("100.00")),
        ({}, "status", "open"),
        ({"sent": "2026-10-01"}, "status", "sent"),
        ({"due": "2026-11-01"}, "status", "overdue"),
        ({"due": "2026-11-01", "total_sum": 0, "remnant": 0}, "status", "open"),
        ({"remnant": "100.00", "sent": "2026-10-01"}, "status", "partially_paid"),
        ({"remnant": 0, "paid": "2026-10-20", "due": "2026-11-01"}, "status", "paid"),
    ],
)
def test_each_invoice_field_maps_to_its_canonical_field(
    header: dict[str, Any], field: str, expected: Any
) -> None:
    _, invoice = invoice_to_canonical(_detail(header), today=TODAY)
    assert getattr(invoice, field) == expected


@pytest.mark.parametrize(
    ("row", "line"),
    [
        (
            {"name": "Work", "amount": "1.5", "price_per_unit": "3.5", "vat": 9},
            InvoiceLine("Work", Decimal("1.5"), Decimal("3.50"), Decimal(9), Decimal("5.25")),
        ),
        (
            {
                "name": "Discounted",
                "amount": 10,
                "price_per_unit": "3.5",
                "vat": 20,
                "discount": 15,
            },
            InvoiceLine("Discounted", Decimal(10), Decimal("3.50"), Decimal(20), Decimal("29.75")),
        ),
        (
            {"name": "Fine price", "amount": 3, "price_per_unit": "0.333", "vat": 22},
            InvoiceLine("Fine price", Decimal(3), Decimal("0.33"), Decimal(22), Decimal("1.00")),
        ),
        (
            {
                "name": " Row\n name ",
                "contents": "long text",
                "amount": 1,
                "price_per_unit": 1,
                "vat": 0,
            },
            InvoiceLine("Row name", Decimal(1), Decimal("1.00"), Decimal(0), Decimal("1.00")),
        ),
    ],
)
def test_each_row_field_maps_to_its_line_field(row: dict[str, Any], line: InvoiceLine) -> None:
    _, invoice = invoice_to_canonical(_detail(rows=[row]), today=TODAY)
    assert invoice.lines == (line,)


def test_rows_priced_with_vat_are_converted_to_net() -> None:
    row = {"name": "Gross", "amount": 2, "price_per_unit": "12.20", "vat": 22}
    _, invoice = invoice_to_canonical(_detail({"row_sum_with_vat": True}, [row]), today=TODAY)
    assert invoice.lines == (
        InvoiceLine("Gross", Decimal(2), Decimal("10.00"), Decimal(22), Decimal("20.00")),
    )


def test_rows_may_arrive_as_an_object_or_as_wrapped_tasks() -> None:
    row = {"name": "Work", "amount": 1, "price_per_unit": 100, "vat": 22}
    plain = invoice_to_canonical(_detail(rows=[row]), today=TODAY)
    keyed = invoice_to_canonical(_detail(rows={"0": row}), today=TODAY)  # type: ignore[arg-type]
    wrapped = invoice_to_canonical(_detail(rows=[{"Task": row}]), today=TODAY)
    assert plain == keyed == wrapped


@pytest.mark.parametrize(
    ("incoming", "field", "expected"),
    [
        ({"income_date": "2026-11-05"}, "date", dt.date(2026, 11, 5)),
        ({"income_sum": "12.345"}, "amount", Decimal("12.35")),
        ({"income_sum": -5}, "amount", Decimal("-5.00")),
        ({"description": " Arve   1003 "}, "reference", "Arve 1003"),
        ({"description": ""}, "reference", None),
        ({}, "method", None),
        ({}, "invoice", "5001"),
    ],
)
def test_each_receipt_field_maps_to_its_payment_field(
    incoming: dict[str, Any], field: str, expected: Any
) -> None:
    base = {"id": 9001, "income_sum": 10, "income_date": "2026-11-01", "description": "x"}
    external_id, payment = payment_to_canonical({"Incoming": {**base, **incoming}}, 5001)
    assert external_id == "9001@5001"
    assert getattr(payment, field) == expected


def test_payment_ids_carry_receipt_and_invoice() -> None:
    assert payment_external_id(9001, 5001) == "9001@5001"
    assert parse_payment_id("9001@5001") == (9001, 5001)
    for bad in ("9001", "@5001", "9001@", "a@1", "0@5", "1@2@3", "９@1"):
        assert parse_payment_id(bad) is None, bad


def test_payment_write_body_takes_the_token_only_without_a_reference() -> None:
    payment = Payment(invoice="5001", date=dt.date(2026, 11, 5), amount=Decimal("10"))
    assert payment_from_canonical(payment, client_token="tok") == {
        "income_date": "2026-11-05",
        "income_sum": Decimal("10.00"),
        "description": "tok",
    }
    with_ref = Payment(invoice="5001", date=dt.date(2026, 11, 5), amount=Decimal(1), reference="r")
    assert payment_from_canonical(with_ref, client_token="tok")["description"] == "r"
    assert payment_from_canonical(payment, fields={"amount"}) == {"income_sum": Decimal("10.00")}


def test_invoice_update_bodies_hold_only_the_asked_fields_and_reuse_row_ids() -> None:
    value = Invoice(
        number=None,
        contact="4",
        issue_date=dt.date(2026, 11, 1),
        due_date=dt.date(2026, 11, 15),
        lines=(
            InvoiceLine("A", Decimal(1), Decimal(10), Decimal(22)),
            InvoiceLine("B", Decimal(1), Decimal(5), Decimal(9)),
        ),
    )
    ids = {Decimal(22): 2, Decimal(9): 4}
    assert invoice_from_canonical(value, vat_type_ids=ids, fields={"due_date"}) == {
        "Invoice": {"due": "2026-11-15"}
    }
    body = invoice_from_canonical(value, vat_type_ids=ids, fields={"lines"}, row_ids=[700])
    assert [t["Task"].get("id") for t in body["Tasks"]] == [700, None]
    assert body["Invoice"] == {"row_sum_with_vat": False}
    assert invoice_from_canonical(value, vat_type_ids=ids, fields={"number"}) == {"Invoice": {}}
    assert row_ids_of(_detail(rows=[{"id": 3}, {"id": "4"}])) == [3, 4]


def test_an_invoice_that_was_sent_is_created_with_a_sent_date() -> None:
    line = InvoiceLine("A", Decimal(1), Decimal(10), Decimal(22))
    for status, sent in (
        ("draft", None),
        ("open", None),
        ("sent", "2026-11-01"),
        ("paid", "2026-11-01"),
    ):
        value = Invoice(
            number=None, contact="4", issue_date=dt.date(2026, 11, 1), due_date=None,
            status=status, lines=(line,),  # type: ignore[arg-type]
        )  # fmt: skip
        header = invoice_from_canonical(value, vat_type_ids={Decimal(22): 2})["Invoice"]
        assert header.get("sent") == sent, status
        assert "number" not in header and "due" not in header


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (Invoice(number=None, contact="4", issue_date=None, due_date=None), "at least one"),
        (
            Invoice(number=None, contact="C-4", issue_date=None, due_date=None),
            "not a SimplBooks client id",
        ),
        (
            Invoice(
                number=None, contact="4", issue_date=None, due_date=None,
                lines=(InvoiceLine("", Decimal(1), Decimal(1), Decimal(22)),),
            ),
            "no description",
        ),
        (
            Invoice(
                number=None, contact="4", issue_date=None, due_date=None,
                lines=(InvoiceLine("A", Decimal(1), Decimal(1), Decimal(23)),),
            ),
            "23",
        ),
        (
            Invoice(
                number=None, contact="4", issue_date=None, due_date=None,
                lines=(InvoiceLine("A", Decimal(1), Decimal(10), Decimal(22), Decimal(11)),),
            ),
            "only take a discount",
        ),
        (
            Invoice(
                number=None, contact="4", issue_date=None, due_date=None,
                lines=(InvoiceLine("A", Decimal(1), Decimal(0), Decimal(22), Decimal(1)),),
            ),
            "zero price",
        ),
    ],
    ids=["no-lines", "foreign-contact", "empty-description", "unknown-rate", "surcharge", "zero-price"],
)  # fmt: skip
def test_invoices_the_vendor_cannot_hold_are_skipped_with_a_reason(
    value: Invoice, reason: str
) -> None:
    with pytest.raises(SkipRecord) as caught:
        invoice_from_canonical(value, vat_type_ids={Decimal(22): 2})
    assert reason in caught.value.reason


# --------------------------------------------------------------------------- VAT types


def test_vat_types_parse_leniently_and_drop_broken_entries() -> None:
    types = vat_types_from_list(load("vat_types_list_spec.json")["data"])
    assert [t.id for t in types] == [1, 2, 4, 6, 9, 12]
    assert types[2] == VatType(4, "Kaup Eesti 9%", Decimal(9), is_sales=True, active=True)
    assert vat_types_from_list(None) == []


def test_a_vat_type_is_an_active_sales_type_preferring_the_clients_default() -> None:
    types = vat_types_from_list(load("vat_types_list_spec.json")["data"])
    assert choose_vat_type(types, Decimal("22.00")) == 2  # 12 is purchase-only
    assert choose_vat_type(types, Decimal(0)) == 6
    assert choose_vat_type(types, Decimal(0), preferred=9) == 9
    assert choose_vat_type(types, Decimal(0), preferred=2) == 6  # 2 is not a 0 % type
    with pytest.raises(SkipRecord, match="20"):
        choose_vat_type(types, Decimal(20))  # inactive


# --------------------------------------------------------------------------- bad vendor data

BAD_CLIENTS: list[Any] = [
    None,
    [],
    "client",
    {"Client": "x"},
    {"Client": {"name": "No id"}},
    {"Client": {"id": 0, "name": "Zero id"}},
    {"Client": {"id": True, "name": "Bool id"}},
    {"Client": {"id": "7a", "name": "Bad id"}},
    {"Client": {"id": 7}},
    {"Client": {"id": 7, "name": "   "}},
    {"Client": {"id": 7, "name": ["list"]}},
    {"Client": {"id": 7, "name": "A", "e_mail": {"x": 1}}},
    {"Client": {"id": 7, "name": "A", "phone": True}},
]


@pytest.mark.parametrize("payload", BAD_CLIENTS)
def test_bad_clients_are_skipped_with_a_reason(payload: Any) -> None:
    with pytest.raises(SkipRecord) as caught:
        contact_to_canonical(payload)
    assert caught.value.reason


BAD_INVOICES: list[tuple[dict[str, Any] | None, list[Any] | None]] = [
    ({"id": None}, None),
    ({"id": "x"}, None),
    ({"client_id": "abc"}, None),
    ({"created": "2024-02-30"}, None),
    ({"created": "31-12-2024"}, None),
    ({"due": 20241231}, None),
    ({"paid": "yesterday"}, None),
    ({"total_sum": "12,50"}, None),
    ({"total_sum": None}, None),
    ({"sum": "abc"}, None),
    ({"vat": True}, None),
    ({"remnant": "NaN"}, None),
    ({"row_sum_with_vat": "maybe"}, None),
    ({"number": {"n": 1}}, None),
    ({"additional_info": [1]}, None),
    (None, [{"name": "No amount", "price_per_unit": 1, "vat": 22}]),
    (None, [{"name": "Bad price", "amount": 1, "price_per_unit": "1.2.3", "vat": 22}]),
    (None, [{"name": "No vat", "amount": 1, "price_per_unit": 1}]),
    (None, [{"name": "Inf", "amount": "Infinity", "price_per_unit": 1, "vat": 22}]),
    (None, [{"name": "Bad discount", "amount": 1, "price_per_unit": 1, "vat": 0, "discount": "x"}]),
    (
        {"row_sum_with_vat": True},
        [{"name": "Gross", "amount": 1, "price_per_unit": 1, "vat": -100}],
    ),
    (None, ["row"]),
]


@pytest.mark.parametrize(("header", "rows"), BAD_INVOICES)
def test_bad_invoices_are_skipped_with_a_reason(
    header: dict[str, Any] | None, rows: list[Any] | None
) -> None:
    with pytest.raises(SkipRecord) as caught:
        invoice_to_canonical(_detail(header, rows), today=TODAY)
    assert caught.value.reason


@pytest.mark.parametrize(
    "payload",
    [None, "x", {}, {"Invoice": None}, {"Invoice": {"id": 1}, "Task": "rows"}, {"Task": []}],
)
def test_invoice_payloads_of_the_wrong_shape_are_skipped(payload: Any) -> None:
    with pytest.raises(SkipRecord):
        invoice_to_canonical(payload, today=TODAY)


def test_a_skipped_invoice_names_its_id() -> None:
    with pytest.raises(SkipRecord) as caught:
        invoice_to_canonical(_detail({"created": "2024-13-01"}), today=TODAY)
    assert caught.value.external_id == "5001"
    assert "2024-13-01" in caught.value.reason


@pytest.mark.parametrize(
    "incoming",
    [
        {"id": 1, "income_sum": 1},
        {"id": 1, "income_sum": 1, "income_date": NO_DATE},
        {"id": 1, "income_sum": "1,00", "income_date": "2026-01-01"},
        {"id": 1, "income_date": "2026-01-01"},
        {"income_sum": 1, "income_date": "2026-01-01"},
        {"id": 1, "income_sum": 1, "income_date": "2026-01-01", "description": 5.5j},
    ],
)
def test_bad_receipts_are_skipped_with_a_reason(incoming: dict[str, Any]) -> None:
    with pytest.raises(SkipRecord):
        payment_to_canonical({"Incoming": incoming}, 5001)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["0000-00-00", "2026-02-29", "2024-02-29", "1.5", "-0", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
INVOICE_KEYS = [*list(_detail()["Invoice"]), "Task"]
ROW_KEYS = ["name", "amount", "price_per_unit", "vat", "discount", "id"]


@settings(max_examples=300, deadline=None)
@given(
    client_key=st.sampled_from(["id", *CONTACT_TO_CLIENT.values()]),
    invoice_key=st.sampled_from(INVOICE_KEYS),
    row_key=st.sampled_from(ROW_KEYS),
    receipt_key=st.sampled_from(["id", "income_sum", "income_date", "description"]),
    value=JSON_VALUES,
)
def test_any_garbage_in_any_field_is_mapped_or_skipped_never_a_crash(
    client_key: str, invoice_key: str, row_key: str, receipt_key: str, value: Any
) -> None:
    detail = (
        _detail({invoice_key: value}) if invoice_key != "Task" else {**_detail(), "Task": value}
    )
    attempts: list[Callable[[], tuple[str, Contact | Invoice | Payment]]] = [
        lambda: contact_to_canonical(_client(**{client_key: value})),
        lambda: invoice_to_canonical(detail, today=TODAY),
        lambda: invoice_to_canonical(
            _detail(
                rows=[{"name": "R", "amount": 1, "price_per_unit": 1, "vat": 9, row_key: value}]
            ),
            today=TODAY,
        ),
        lambda: payment_to_canonical(
            {
                "Incoming": {
                    "id": 1,
                    "income_sum": 1,
                    "income_date": "2026-01-01",
                    receipt_key: value,
                }
            },
            3,
        ),
    ]
    for attempt in attempts:
        try:
            _external_id, mapped = attempt()
        except SkipRecord as exc:
            assert exc.reason
        else:
            assert mapped == normalise(mapped)


# --------------------------------------------------------------------------- round trips


def _echo_client(body: dict[str, Any]) -> dict[str, Any]:
    """What clients/get answers after clients/create with ``body`` (vendor trims text)."""
    blank = dict.fromkeys(CONTACT_TO_CLIENT.values(), "")
    return {
        "Client": {
            "id": 42,
            **blank,
            "fax": "",
            "bank": "",
            **{k: v.strip() for k, v in body.items()},
        }
    }


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _echo_invoice(body: dict[str, Any], rates: dict[int, Decimal]) -> dict[str, Any]:
    """What invoices/get answers after invoices/create with ``body``: the vendor keeps the
    header, numbers the rows, takes each row's rate from its VAT type and computes the
    totals per VAT rate (``row_sum_with_vat`` false)."""
    header = body["Invoice"]
    rows = []
    by_rate: dict[Decimal, Decimal] = {}
    for n, wrapped in enumerate(body["Tasks"], 1):
        task = dict(wrapped["Task"])
        task["vat"] = rates[task["vat_type_id"]]
        factor = 1 - Decimal(task["discount"]) / 100
        line = _money(Decimal(task["amount"]) * task["price_per_unit"] * factor)
        by_rate[task["vat"]] = by_rate.get(task["vat"], Decimal(0)) + line
        rows.append({"id": 20000 + n, "contents": "", "unit": "", **task})
    net = sum(by_rate.values(), Decimal(0))
    vat = sum((_money(amount * rate / 100) for rate, amount in by_rate.items()), Decimal(0))
    total = _money(net + vat)
    return {
        "Invoice": {
            "id": 5001,
            "client_id": header["client_id"],
            "number": header["number"],
            "created": header["created"],
            "transaction_date": header["transaction_date"],
            "due": header["due"],
            "currency_name": header["currency_name"],
            "row_sum_with_vat": header["row_sum_with_vat"],
            "additional_info": header["additional_info"],
            "reference": "50011",
            "sum": _money(net),
            "vat": _money(vat),
            "rounding": Decimal(0),
            "total_sum": total,
            "remnant": total,
            "sent": header.get("sent", NO_DATE),
            "paid": NO_DATE,
        },
        "Task": rows,
    }


TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\u0085")
    | st.sampled_from(" \t\n"),
    max_size=30,
)
OPTIONAL_TEXT = st.none() | TEXT


@st.composite
def holdable_contacts(draw: st.DrawFn) -> Contact:
    """Contacts restricted to what a SimplBooks client holds."""
    name = draw(TEXT.filter(lambda t: bool(t.split())))
    values: dict[str, Any] = {
        field: draw(OPTIONAL_TEXT) for field in CONTACT_TO_CLIENT if field != "name"
    }
    values["country"] = draw(st.none() | st.sampled_from(["EE", "NL", "FI", "Eesti", "nl", "DE"]))
    values["phone"] = draw(
        st.none() | st.sampled_from(["5224 658", "+31 20 123 4567", "040-1234567"]) | TEXT
    )
    return Contact(kind="organization", name=name, **values)


@settings(max_examples=200, deadline=None)
@given(contact=holdable_contacts())
def test_contacts_round_trip_through_the_vendor(contact: Contact) -> None:
    _, back = contact_to_canonical(_echo_client(contact_from_canonical(contact)))
    assert back == normalise(contact)


RATES = {2: Decimal(22), 4: Decimal(9), 6: Decimal(0), 10: Decimal(21), 3: Decimal(24)}
IDS = {rate: type_id for type_id, rate in RATES.items()}


@st.composite
def holdable_lines(draw: st.DrawFn) -> InvoiceLine:
    description = draw(TEXT.filter(lambda t: bool(t.split())))
    quantity = draw(st.decimals(min_value=-500, max_value=500, places=4))
    price = draw(st.decimals(min_value=-5000, max_value=5000, places=2))
    rate = draw(st.sampled_from(sorted(RATES.values())))
    total: Decimal | None = None
    gross = _money(quantity * price)
    if gross > 0 and draw(st.booleans()):
        # A discounted line: any total between nothing and the full price.
        total = draw(st.decimals(min_value=0, max_value=gross, places=2))
    return InvoiceLine(description, quantity, price, rate, total)


@st.composite
def holdable_invoices(draw: st.DrawFn) -> Invoice:
    """Invoices restricted to what SimplBooks holds and does not derive itself."""
    issue = draw(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31)))
    return with_computed_totals(
        Invoice(
            number=draw(TEXT.filter(lambda t: bool(t.split()))),
            contact=str(draw(st.integers(1, 10**9))),
            issue_date=issue,
            due_date=draw(st.dates(min_value=TODAY, max_value=dt.date(2031, 12, 31))),
            currency=draw(st.sampled_from(["EUR", "usd", "SEK"])),
            status=draw(st.sampled_from(["open", "sent"])),
            lines=tuple(draw(st.lists(holdable_lines(), min_size=1, max_size=20))),
            reference=draw(OPTIONAL_TEXT),
        )
    )


@settings(max_examples=200, deadline=None)
@given(invoice=holdable_invoices())
def test_invoices_round_trip_through_the_vendor(invoice: Invoice) -> None:
    body = invoice_from_canonical(invoice, vat_type_ids=IDS)
    _, back = invoice_to_canonical(_echo_invoice(body, RATES), today=TODAY)
    assert back == normalise(invoice)


@settings(max_examples=100, deadline=None)
@given(
    payment=st.builds(
        Payment,
        invoice=st.integers(1, 10**9).map(str),
        date=st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2100, 1, 1)),
        amount=st.decimals(min_value=-(10**7), max_value=10**7, places=3),
        method=st.none(),
        reference=OPTIONAL_TEXT,
    )
)
def test_payments_round_trip_through_the_vendor(payment: Payment) -> None:
    body = payment_from_canonical(payment)
    echo = {"Incoming": {"id": 9001, "client_id": 4, "currency_name": "EUR", **body}}
    external_id, back = payment_to_canonical(echo, payment.invoice or "")
    assert back == normalise(payment)
    assert external_id == f"9001@{payment.invoice}"


# --------------------------------------------------------------------------- classification


def _classify(name: str, status: int | None = None) -> Any:
    body = load(name)
    return classify(status or body["status"], {}, body, (FIXTURES / name).read_text())


def test_a_missing_record_is_not_found_not_a_skip() -> None:
    for name in ("error_400_missing_invoice.json", "error_400_missing_object.json"):
        assert isinstance(_classify(name), NotFound)


def test_an_over_large_page_is_its_own_error_and_other_400s_use_the_generic_rule() -> None:
    assert isinstance(_classify("error_400_too_big.json"), PageTooLarge)
    assert _classify("error_400_validation.json") is None  # http.py: SkipRecord


def test_an_unrecognised_call_is_fatal_pointing_at_the_base_url() -> None:
    verdict = _classify("error_404.json")
    assert isinstance(verdict, Fatal) and "base_url" in str(verdict)
    assert isinstance(classify(404, {}, None, "404: Not Found"), Fatal)


def test_auth_and_rate_limit_answers_use_the_generic_rules() -> None:
    for name in ("error_401.json", "error_403.json", "error_429.json"):
        assert _classify(name) is None


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("error_401.json", AuthFailed),
        ("error_403.json", AuthFailed),
        ("error_429.json", RateLimited),
        ("error_400_validation.json", SkipRecord),
    ],
)
def test_an_error_envelope_inside_a_200_is_still_an_error(name: str, kind: type) -> None:
    assert isinstance(_classify(name, status=200), kind)


def test_a_5xx_envelope_inside_a_200_is_vendor_unavailable() -> None:
    body = {"status": 500, "errors": ["Internal server error."]}
    assert isinstance(classify(200, {}, body, ""), VendorUnavailable)


def test_successful_answers_are_left_to_the_generic_rules() -> None:
    assert classify(200, {}, load("create_ok.json"), "") is None
    assert classify(200, {}, load("invoices_get_spec.json"), "") is None


def test_the_scrubbing_classifier_hides_the_token_in_vendor_text() -> None:
    body = {"status": 400, "errors": ["Token s3cr3t-token-value with given ID does not exist."]}
    verdict = make_classifier(["s3cr3t-token-value"])(400, {}, body, "")
    assert isinstance(verdict, NotFound)
    assert "s3cr3t-token-value" not in str(verdict) and "***" in str(verdict)


# --------------------------------------------------------------------------- envelopes (client)


class _RecordedHttp:
    """Answers every call with one recorded envelope."""

    calls = 0

    def __init__(self, body: Any) -> None:
        self.body = body

    async def _answer(self, path: str, **_: Any) -> HttpResponse:
        return HttpResponse(status=200, headers={}, body=self.body, text="")

    get = post = _answer


def _client_for(body: Any) -> SimplbooksClient:
    return SimplbooksClient(_RecordedHttp(body))  # type: ignore[arg-type]


async def test_bound_receipt_ids_are_read_from_the_envelope() -> None:
    client = _client_for(load("invoices_get_bound_receipts_spec.json"))
    assert await client.bound_receipts(5) == [2, 3, 4]


async def test_a_create_returns_the_inserted_id_even_as_a_string() -> None:
    assert await _client_for(load("create_ok.json")).create("invoices", {}) == 1


async def test_a_create_confirmed_without_an_inserted_id_is_uncertain() -> None:
    with pytest.raises(Uncertain):
        await _client_for({"status": 200, "inserted_id": 0, "response": "OK"}).create("clients", {})


async def test_a_read_without_data_is_vendor_unavailable_never_an_empty_list() -> None:
    with pytest.raises(VendorUnavailable):
        await _client_for({"status": 200}).list_page("clients", page=1, per_page=5)
    assert (
        await _client_for({"status": 200, "data": None}).list_page("clients", page=1, per_page=5)
        == []
    )
