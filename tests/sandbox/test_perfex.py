"""The Perfex /api/v1 emulator, served by the sandbox framework and driven by plain aiohttp."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from syncd.sandbox.base import Clock, RateWindow, SandboxOptions
from syncd.sandbox.perfex import PerfexEmulator, PerfexQuirks
from syncd.sandbox.perfex.values import LineAmounts, compute_totals, split_invoice_number
from syncd.sandbox.seed import generate_world, world_epoch
from syncd.sandbox.testing import SandboxHandle, running_sandbox

KEY = {"X-API-KEY": "sandbox-perfex-key"}
NOW = world_epoch(1)


class MutableClock:
    """A frozen clock the test moves by hand."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


@dataclass
class Api:
    session: aiohttp.ClientSession
    handle: SandboxHandle
    clock: MutableClock
    base: str = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.handle.base_urls["perfex"]

    @property
    def emulator(self) -> PerfexEmulator:
        emulator = self.handle.emulators["perfex"]
        assert isinstance(emulator, PerfexEmulator)
        return emulator

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        data: Any = None,
    ) -> Reply:
        async with self.session.request(
            method,
            self.base + path,
            json=json,
            params=params,
            headers=KEY if headers is None else headers,
            data=data,
        ) as response:
            body = await response.json(content_type=None)
            return Reply(response.status, body, response.headers)

    async def get(self, path: str, **params: str) -> Reply:
        return await self.call("GET", path, params=params or None)

    async def control(self, method: str, path: str, json: Any = None) -> Reply:
        async with self.session.request(
            method, f"{self.handle.url}/_sandbox/perfex{path}", json=json
        ) as response:
            return Reply(response.status, await response.json(), response.headers)


def _with_quirks(quirks: PerfexQuirks) -> type[PerfexEmulator]:
    class QuirkyPerfex(PerfexEmulator):
        def __init__(self, options: SandboxOptions, clock: Clock) -> None:
            super().__init__(options, clock, quirks)

    return QuirkyPerfex


@asynccontextmanager
async def perfex_api(
    options: SandboxOptions | None = None,
    quirks: PerfexQuirks | None = None,
    clock: MutableClock | None = None,
) -> AsyncIterator[Api]:
    clock = clock or MutableClock(NOW)
    options = options or SandboxOptions(seed=1, rate_limits=False, control=True)
    classes = None if quirks is None else {"perfex": _with_quirks(quirks)}
    async with (
        running_sandbox(options, vendors=["perfex"], clock=clock, emulator_classes=classes) as h,
        aiohttp.ClientSession() as session,
    ):
        yield Api(session, h, clock)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with perfex_api() as opened:
        yield opened


def _new_customer(api: Api, company: str = "Testbedrijf BV", **fields: Any) -> str:
    return str(api.emulator.create("customers", {"company": company, **fields})["userid"])


def _new_invoice(api: Api, clientid: str, **fields: Any) -> dict[str, Any]:
    body = {
        "clientid": clientid,
        "date": "2026-10-20",
        "items": [{"description": "Advies", "qty": 2, "rate": "100.00", "taxname": ["VAT|21.00"]}],
        **fields,
    }
    return api.emulator.create("invoices", body)


async def _all_pages(api: Api, path: str, limit: int) -> tuple[list[dict[str, Any]], int, int]:
    """Every row of a list, paging until a short page; returns rows, total, pages fetched."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        reply = await api.get(path, page=str(page), limit=str(limit))
        assert reply.status == 200
        rows.extend(reply.body["data"])
        if len(reply.body["data"]) < limit:
            return rows, reply.body["total"], page
        page += 1


def _all_strings(record: dict[str, Any]) -> bool:
    return all(value is None or isinstance(value, str) for value in record.values())


# ---------------------------------------------------------------- auth


async def test_request_without_credentials_gets_401_with_v1_error_body(api: Api) -> None:
    reply = await api.call("GET", "/customers", headers={})

    assert reply.status == 401
    assert reply.body == {"status": "error", "message": "API key is missing"}
    assert api.emulator.counters.auth_failures == 1


async def test_wrong_api_key_is_refused_even_with_a_valid_bearer_token(api: Api) -> None:
    headers = {"X-API-KEY": "pk_wrong", "Authorization": "Bearer sandbox-perfex-jwt"}
    reply = await api.call("GET", "/customers", headers=headers)

    assert reply.status == 401
    assert reply.body == {"status": "error", "message": "Invalid API key"}
    assert "pk_wrong" not in str(reply.body)


async def test_bearer_jwt_is_accepted_and_a_wrong_jwt_is_refused(api: Api) -> None:
    good = await api.call(
        "GET", "/customers", headers={"Authorization": "Bearer sandbox-perfex-jwt"}
    )
    bad = await api.call("GET", "/customers", headers={"Authorization": "Bearer nope"})
    basic = await api.call("GET", "/customers", headers={"Authorization": "Basic c2FuZGJveA=="})

    assert good.status == 200
    assert (bad.status, bad.body["message"]) == (401, "Invalid or expired token")
    assert basic.status == 401


async def test_configured_credentials_replace_the_defaults() -> None:
    options = SandboxOptions(seed=1, rate_limits=False, credentials={"perfex": {"api_key": "pk_1"}})
    async with perfex_api(options) as api:
        default = await api.call("GET", "/customers", headers=KEY)
        configured = await api.call("GET", "/customers", headers={"X-API-KEY": "pk_1"})
        jwt = await api.call(
            "GET", "/customers", headers={"Authorization": "Bearer sandbox-perfex-jwt"}
        )

    assert default.status == 401
    assert configured.status == 200
    assert jwt.status == 200  # only the api_key was overridden


async def test_themesic_auth_style_answers_404_token_not_found() -> None:
    async with perfex_api(quirks=PerfexQuirks(auth_style="themesic")) as api:
        reply = await api.call("GET", "/invoices", headers={"X-API-KEY": "bad"})

    assert reply.status == 404
    assert reply.body == {"status": False, "message": "Token is not found"}


# ---------------------------------------------------------------- pagination


async def test_paging_with_page_and_limit_reaches_every_customer_once(api: Api) -> None:
    expected = len(api.emulator.dump()["customers"])

    rows, total, pages = await _all_pages(api, "/customers", limit=3)

    ids = [int(row["userid"]) for row in rows]
    assert total == expected == len(ids)
    assert ids == sorted(set(ids))
    assert pages == expected // 3 + 1


async def test_default_page_size_is_25_and_limit_is_capped_at_100(api: Api) -> None:
    for n in range(120):
        _new_customer(api, f"Bulk {n:03d} BV")
    total = len(api.emulator.dump()["customers"])

    default = await api.get("/customers")
    capped = await api.get("/customers", page="1", limit="500")
    second = await api.get("/customers", page="2", limit="500")

    assert default.body["total"] == total
    assert len(default.body["data"]) == 25
    assert len(capped.body["data"]) == 100
    assert len(second.body["data"]) == total - 100
    assert capped.body["data"][-1]["userid"] != second.body["data"][0]["userid"]


async def test_per_page_is_an_alias_of_limit(api: Api) -> None:
    reply = await api.get("/contacts", page="2", per_page="2")

    assert [row["id"] for row in reply.body["data"]] == ["3", "4"]


async def test_page_beyond_the_last_returns_no_rows_but_the_total(api: Api) -> None:
    reply = await api.get("/invoices", page="99", limit="5")

    assert reply.status == 200
    assert reply.body["data"] == []
    assert reply.body["total"] == len(api.emulator.dump()["invoices"])
    assert set(reply.body) == {"status", "data", "total"}


async def test_empty_collection_is_an_empty_list() -> None:
    async with perfex_api() as api:
        api.emulator.reset()
        reply = await api.get("/customers")

    assert (reply.status, reply.body) == (200, {"status": "success", "data": [], "total": 0})


async def test_themesic_paging_quirks_clamp_pages_and_404_on_empty() -> None:
    quirks = PerfexQuirks(clamp_page_beyond_last=True, empty_list_404=True)
    async with perfex_api(quirks=quirks) as api:
        last = await api.get("/customers", page="1", limit="100")
        clamped = await api.get("/customers", page="50", limit="4")
        api.emulator.reset()
        empty = await api.get("/customers")

    assert clamped.body["data"] == last.body["data"][-len(clamped.body["data"]) :]
    assert empty.status == 404
    assert empty.body == {"status": "error", "message": "No data were found"}


# ---------------------------------------------------------------- shapes


async def test_customer_rows_are_all_strings_keyed_by_userid(api: Api) -> None:
    reply = await api.get("/customers/1")

    row = reply.body["data"]
    assert reply.body["status"] == "success"
    assert "id" not in row
    assert row["userid"] == "1"
    assert row["active"] == "1"
    assert _all_strings(row)


async def test_invoice_list_rows_lack_items_and_detail_has_items_taxes_payments(api: Api) -> None:
    listed = await api.get("/invoices", limit="100")
    paid = next(row for row in listed.body["data"] if row["status"] == "2")

    detail = await api.get(f"/invoices/{paid['id']}")

    assert "items" not in paid
    assert paid["currency_name"] == "EUR"
    assert paid["currencyid"] == "2"
    assert _all_strings(paid)
    data = detail.body["data"]
    assert data["items"], "detail carries the line items"
    item = data["items"][0]
    assert set(item) >= {"description", "long_description", "qty", "rate", "unit", "taxname"}
    assert item["rel_type"] == "invoice"
    assert all(isinstance(rate, str) for rate in item["taxrate"])
    assert sum(Decimal(p["amount"]) for p in data["payments"]) >= Decimal(data["total"])
    assert data["total_left_to_pay"] == "0.00"
    assert data["client"]["userid"] == data["clientid"]


async def test_contact_rows_include_auth_columns_unless_switched_off(api: Api) -> None:
    shown = (await api.get("/contacts/1")).body["data"]
    async with perfex_api(quirks=PerfexQuirks(expose_contact_auth_columns=False)) as other:
        hidden = (await other.get("/contacts/1")).body["data"]

    assert shown["password"].startswith("$2a$08$")
    assert "password" not in hidden
    assert "last_login" not in hidden
    assert hidden["email"] == shown["email"]


async def test_lookup_endpoints_list_currencies_countries_taxes_and_payment_modes(
    api: Api,
) -> None:
    currencies = await api.get("/currencies")
    countries = await api.get("/countries")
    taxes = await api.get("/taxes")
    modes = await api.get("/payment-modes")

    assert {c["name"]: c["id"] for c in currencies.body["data"]} == {"USD": "1", "EUR": "2"}
    by_iso = {c["iso2"]: c["country_id"] for c in countries.body["data"]}
    assert (by_iso["NL"], by_iso["EE"], by_iso["DE"]) == ("155", "70", "83")
    assert countries.body["total"] == 250
    assert {t["taxrate"] for t in taxes.body["data"]} == {"21.00", "9.00", "22.00"}
    assert modes.body["data"][0]["id"] == "1"


# ---------------------------------------------------------------- filters


async def test_customer_filters_active_and_search(api: Api) -> None:
    gone = _new_customer(api, "Slapend Archief BV")
    api.emulator.archive("customers", gone)

    inactive = await api.get("/customers", active="0")
    active = await api.get("/customers", active="1", limit="100")
    found = await api.get("/customers", search="slapend archief")

    assert [row["userid"] for row in inactive.body["data"]] == [gone]
    assert gone not in [row["userid"] for row in active.body["data"]]
    assert [row["userid"] for row in found.body["data"]] == [gone]


async def test_contact_filters_customer_active_primary_and_search(api: Api) -> None:
    customer = _new_customer(api)
    first = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "Ada", "lastname": "Kok", "email": "a@k.nl"}
    )
    second = api.emulator.create(
        "contacts",
        {"userid": customer, "firstname": "Bob", "lastname": "Kok", "email": "b@k.nl", "active": 0},
    )

    of_customer = await api.get("/contacts", customer_id=customer)
    primary = await api.get("/contacts", customer_id=customer, is_primary="1")
    inactive = await api.get("/contacts", customer_id=customer, active="0")
    searched = await api.get("/contacts", search="b@k.nl")

    assert [c["id"] for c in of_customer.body["data"]] == [first["id"], second["id"]]
    assert [c["id"] for c in primary.body["data"]] == [first["id"]]
    assert [c["id"] for c in inactive.body["data"]] == [second["id"]]
    assert [c["id"] for c in searched.body["data"]] == [second["id"]]


async def test_invoice_filters_clientid_and_status(api: Api) -> None:
    customer = _new_customer(api)
    invoice = _new_invoice(api, customer)

    by_client = await api.get("/invoices", clientid=customer)
    by_alias = await api.get("/invoices", customer_id=customer)
    paid = await api.get("/invoices", status="2", limit="100")

    assert [row["id"] for row in by_client.body["data"]] == [invoice["id"]]
    assert by_alias.body["data"] == by_client.body["data"]
    assert paid.body["total"] > 0
    assert {row["status"] for row in paid.body["data"]} == {"2"}


async def test_payment_filters_invoice_customer_dates_and_mode(api: Api) -> None:
    customer = _new_customer(api)
    invoice = _new_invoice(api, customer)
    early = api.emulator.register_payment(invoice["id"], Decimal("10.00"), dt.date(2026, 10, 21))
    late = api.emulator.mutate(
        "payments",
        api.emulator.register_payment(invoice["id"], Decimal("5.00"), dt.date(2026, 10, 25))["id"],
        {"paymentmode": "stripe"},
    )

    by_invoice = await api.get("/payments", invoice_id=invoice["id"])
    by_customer = await api.get("/payments", customer_id=customer)
    window = await api.get("/payments", date_from="2026-10-22", date_to="2026-10-31")
    by_mode = await api.get("/payments", payment_mode="stripe")
    nested = await api.get(f"/invoices/{invoice['id']}/payments")

    ids = [early["id"], late["id"]]
    assert [p["id"] for p in by_invoice.body["data"]] == ids
    assert [p["id"] for p in by_customer.body["data"]] == ids
    assert [p["id"] for p in window.body["data"]] == [late["id"]]
    assert [p["id"] for p in by_mode.body["data"]] == [late["id"]]
    assert [p["id"] for p in nested.body["data"]] == ids


async def test_bad_filter_values_are_400_validation_errors(api: Api) -> None:
    status = await api.get("/invoices", status="paid")
    active = await api.get("/customers", active="yes")
    date = await api.get("/payments", date_from="31-10-2026")

    assert status.status == active.status == date.status == 400
    assert status.body["status"] == "error"
    assert set(status.body["errors"]) == {"status"}
    assert set(active.body["errors"]) == {"active"}
    assert set(date.body["errors"]) == {"date_from"}


async def test_nested_lists_of_a_customer_and_404_for_unknown_customer(api: Api) -> None:
    customer = _new_customer(api)
    contact = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "C", "lastname": "D", "email": "c@d.nl"}
    )
    invoice = _new_invoice(api, customer)

    contacts = await api.get(f"/customers/{customer}/contacts")
    invoices = await api.get(f"/customers/{customer}/invoices")
    missing = await api.get("/customers/99999/contacts")

    assert [c["id"] for c in contacts.body["data"]] == [contact["id"]]
    assert [i["id"] for i in invoices.body["data"]] == [invoice["id"]]
    assert (missing.status, missing.body["message"]) == (404, "Customer not found")


# ---------------------------------------------------------------- customers


async def test_create_customer_returns_201_with_the_stored_record(api: Api) -> None:
    body = {"company": "Nieuw BV", "vat": "NL001234567B01", "country": 155, "city": "Delft"}
    reply = await api.call("POST", "/customers", json=body)

    data = reply.body["data"]
    assert reply.status == 201
    assert reply.body["status"] == "success"
    assert (data["company"], data["country"], data["city"]) == ("Nieuw BV", "155", "Delft")
    assert data["zip"] is None  # API inserts leave omitted columns NULL
    assert data["datecreated"] == "2026-10-31 13:00:00"  # Europe/Amsterdam local time
    assert api.emulator.counters.writes == 1
    fetched = await api.get(f"/customers/{data['userid']}")
    assert fetched.body["data"] == data


async def test_create_customer_without_company_is_a_validation_error(api: Api) -> None:
    reply = await api.call("POST", "/customers", json={"city": "Delft"})

    assert reply.status == 400
    assert reply.body == {
        "status": "error",
        "message": "Validation failed",
        "errors": {"company": "The company field is required."},
    }
    assert api.emulator.counters.writes == 0


async def test_customer_fields_of_the_wrong_type_are_rejected(api: Api) -> None:
    listed = await api.call("POST", "/customers", json={"company": ["A", "B"]})
    country = await api.call("POST", "/customers", json={"company": "A", "country": "Holland"})
    unknown_country = await api.call("POST", "/customers", json={"company": "A", "country": 999})

    assert listed.status == country.status == unknown_country.status == 400
    assert "company" in listed.body["errors"]
    assert "country" in country.body["errors"]
    assert "country" in unknown_country.body["errors"]


async def test_a_customer_created_with_an_email_gets_it_as_its_primary_contact(
    api: Api,
) -> None:
    # seeds/002: POST /customers {"company": "ACME Corp", "email": "contact@acme.com"}.
    body = {"company": "ACME Corp", "email": "contact@acme.com", "colour": "blue"}
    reply = await api.call("POST", "/customers", json=body)

    customer = reply.body["data"]["userid"]
    assert reply.status == 201
    assert "email" not in reply.body["data"]  # customers have no e-mail column
    assert "colour" not in reply.body["data"]  # unknown keys are dropped
    contacts = await api.get("/contacts", customer_id=customer)
    assert [(c["email"], c["is_primary"]) for c in contacts.body["data"]] == [
        ("contact@acme.com", "1")
    ]
    assert api.emulator.counters.writes == 1


async def test_customer_email_quirk_off_drops_the_email_like_any_unknown_key() -> None:
    quirks = PerfexQuirks(customer_email_creates_contact=False)
    async with perfex_api(quirks=quirks) as api:
        reply = await api.call(
            "POST", "/customers", json={"company": "ACME", "email": "c@acme.com"}
        )
        contacts = await api.get("/contacts", customer_id=reply.body["data"]["userid"])

    assert reply.status == 201
    assert contacts.body["total"] == 0


async def test_update_customer_is_partial_and_unknown_ids_are_404(api: Api) -> None:
    before = (await api.get("/customers/1")).body["data"]

    reply = await api.call("PUT", "/customers/1", json={"city": "Tartu", "phonenumber": 5551234})
    missing = await api.call("PUT", "/customers/99999", json={"city": "X"})
    not_numeric = await api.get("/customers/abc")
    blank = await api.call("PUT", "/customers/1", json={"company": "  "})

    assert reply.status == 200
    assert reply.body["data"] == {**before, "city": "Tartu", "phonenumber": "5551234"}
    assert (missing.status, missing.body) == (
        404,
        {"status": "error", "message": "Customer not found"},
    )
    assert not_numeric.status == 404
    assert blank.status == 400
    assert api.emulator.counters.writes == 1


async def test_deleting_a_customer_removes_its_contacts_and_orphans_its_invoices(api: Api) -> None:
    invoice = next(i for i in api.emulator.dump()["invoices"] if i["clientid"] != "0")
    customer = invoice["clientid"]
    company = (await api.get(f"/customers/{customer}")).body["data"]["company"]

    reply = await api.call("DELETE", f"/customers/{customer}")

    assert reply.body == {"status": "success", "message": "Customer deleted successfully"}
    assert (await api.get(f"/customers/{customer}")).status == 404
    assert (await api.get("/contacts", customer_id=customer)).body["total"] == 0
    kept = (await api.get(f"/invoices/{invoice['id']}")).body["data"]
    assert (kept["clientid"], kept["deleted_customer_name"]) == ("0", company)


async def test_refuse_quirk_keeps_customers_that_have_invoices() -> None:
    async with perfex_api(quirks=PerfexQuirks(customer_delete_with_invoices="refuse")) as api:
        customer = next(i for i in api.emulator.dump()["invoices"])["clientid"]
        reply = await api.call("DELETE", f"/customers/{customer}")
        still = await api.get(f"/customers/{customer}")

    assert reply.status == 400
    assert still.status == 200


# ---------------------------------------------------------------- request format, routing


async def test_form_bodies_and_broken_json_are_refused(api: Api) -> None:
    form = await api.call("POST", "/customers", data={"company": "Form BV"})
    broken = await api.call(
        "POST",
        "/customers",
        data=b'{"company": ',
        headers={**KEY, "Content-Type": "application/json"},
    )
    array = await api.call("POST", "/customers", json=["company"])

    assert (form.status, form.body["message"]) == (400, "Content-Type must be application/json")
    assert (broken.status, broken.body["message"]) == (400, "Invalid JSON payload")
    assert array.status == 400
    assert api.emulator.counters.writes == 0


async def test_unknown_endpoint_is_404_and_wrong_method_is_405(api: Api) -> None:
    unknown = await api.get("/widgets")
    wrong = await api.call("PATCH", "/customers/1", json={})

    assert unknown.body == {"status": "error", "message": "Endpoint not found"}
    assert unknown.status == 404
    assert wrong.status == 405


# ---------------------------------------------------------------- contacts


async def test_first_contact_of_a_customer_becomes_primary(api: Api) -> None:
    customer = _new_customer(api)
    body = {"customer_id": customer, "firstname": "Jan", "lastname": "Bakker", "email": "j@b.nl"}

    first = await api.call("POST", "/contacts", json=body)
    second = await api.call(
        "POST", "/contacts", json={**body, "firstname": "Piet", "email": "p@b.nl"}
    )

    assert first.status == second.status == 201
    assert first.body["data"]["is_primary"] == "1"
    assert second.body["data"]["is_primary"] == "0"
    assert first.body["data"]["userid"] == customer
    assert _all_strings(first.body["data"])


async def test_contact_create_requires_customer_names_and_a_valid_email(api: Api) -> None:
    missing = await api.call("POST", "/contacts", json={"firstname": "X"})
    bad_email = await api.call(
        "POST",
        "/contacts",
        json={"userid": 1, "firstname": "X", "lastname": "Y", "email": "not-an-email"},
    )
    no_customer = await api.call(
        "POST",
        "/contacts",
        json={"userid": 99999, "firstname": "X", "lastname": "Y", "email": "x@y.nl"},
    )

    assert missing.status == 400
    assert set(missing.body["errors"]) == {"userid", "lastname", "email"}
    assert set(bad_email.body["errors"]) == {"email"}
    assert set(no_customer.body["errors"]) == {"userid"}


async def test_contact_email_is_unique_per_customer_only(api: Api) -> None:
    one, two = _new_customer(api, "Een BV"), _new_customer(api, "Twee BV")
    body = {"firstname": "A", "lastname": "B", "email": "shared@x.nl"}

    first = await api.call("POST", "/contacts", json={**body, "userid": one})
    same_customer = await api.call(
        "POST", "/contacts", json={**body, "userid": one, "email": "SHARED@x.nl"}
    )
    other_customer = await api.call("POST", "/contacts", json={**body, "userid": two})

    assert first.status == 201
    assert same_customer.status == 400
    assert set(same_customer.body["errors"]) == {"email"}
    assert other_customer.status == 201


async def test_global_email_uniqueness_quirk_refuses_reuse_anywhere() -> None:
    async with perfex_api(quirks=PerfexQuirks(contact_email_unique="global")) as api:
        taken = api.emulator.dump()["contacts"][0]["email"]
        customer = _new_customer(api)
        reply = await api.call(
            "POST",
            "/contacts",
            json={"userid": customer, "firstname": "A", "lastname": "B", "email": taken},
        )

    assert reply.status == 400
    assert set(reply.body["errors"]) == {"email"}


async def test_promoting_a_contact_demotes_the_previous_primary(api: Api) -> None:
    customer = _new_customer(api)
    first = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "A", "lastname": "B", "email": "a@b.nl"}
    )
    second = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "C", "lastname": "D", "email": "c@d.nl"}
    )

    reply = await api.call("PUT", f"/contacts/{second['id']}", json={"is_primary": True})
    demoted = await api.get(f"/contacts/{first['id']}")

    assert reply.body["data"]["is_primary"] == "1"
    assert demoted.body["data"]["is_primary"] == "0"


async def test_primary_contact_cannot_be_deleted_but_others_can(api: Api) -> None:
    customer = _new_customer(api)
    primary = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "A", "lastname": "B", "email": "a@b.nl"}
    )
    other = api.emulator.create(
        "contacts", {"userid": customer, "firstname": "C", "lastname": "D", "email": "c@d.nl"}
    )

    refused = await api.call("DELETE", f"/contacts/{primary['id']}")
    deleted = await api.call("DELETE", f"/contacts/{other['id']}")
    gone = await api.get(f"/contacts/{other['id']}")

    assert (refused.status, refused.body["message"]) == (400, "Primary contact cannot be deleted")
    assert deleted.body == {"status": "success", "message": "Contact deleted successfully"}
    assert (gone.status, gone.body["message"]) == (404, "Contact not found")
    assert api.emulator.counters.writes == 1


async def test_contact_update_may_not_blank_the_email(api: Api) -> None:
    reply = await api.call("PUT", "/contacts/1", json={"email": ""})

    assert reply.status == 400
    assert set(reply.body["errors"]) == {"email"}


# ---------------------------------------------------------------- invoices


async def test_create_invoice_computes_totals_and_takes_the_next_number(api: Api) -> None:
    customer = _new_customer(api)
    next_number = api.emulator.dump()["settings"]["next_invoice_number"]
    body = {
        "clientid": int(customer),
        "date": "2026-10-30",
        "items": [
            {
                "description": "Uren",
                "qty": "1.5",
                "rate": 95.62,
                "taxes": [{"name": "BTW", "rate": 21}],
            },
            {"description": "Boek", "qty": 3, "rate": "10.00", "taxname": ["BTW|9.00"]},
            {"description": "Vrijgesteld", "qty": 1, "rate": "50.00"},
        ],
    }

    reply = await api.call("POST", "/invoices", json=body)

    data = reply.body["data"]
    assert reply.status == 201
    assert (data["prefix"], data["number"], data["status"]) == ("2026-", str(next_number), "1")
    assert (data["subtotal"], data["total_tax"], data["total"]) == ("223.43", "32.82", "256.25")
    assert data["currency"] == "1"  # the customer has no default: the system default, USD
    assert data["duedate"] == "2026-11-29"
    assert [item["taxname"] for item in data["items"]] == [["BTW"], ["BTW"], []]
    assert data["items"][0]["qty"] == "1.50"
    assert _all_strings(
        {k: v for k, v in data.items() if k not in ("items", "payments", "attachments", "client")}
    )
    settings = api.emulator.dump()["settings"]
    assert settings["next_invoice_number"] == next_number + 1


async def test_totals_sent_by_the_client_are_stored_as_given(api: Api) -> None:
    customer = _new_customer(api)
    reply = await api.call(
        "POST",
        "/invoices",
        json={
            "clientid": customer,
            "currency": 2,
            "total": 1500.00,
            "items": [{"description": "Werk", "qty": 1, "rate": "100.00"}],
        },
    )

    assert (reply.body["data"]["subtotal"], reply.body["data"]["total"]) == ("100.00", "1500.00")
    assert reply.body["data"]["currency_name"] == "EUR"


async def test_invoice_number_must_be_unique_within_its_year(api: Api) -> None:
    customer = _new_customer(api)
    item = [{"description": "Werk", "rate": "10.00"}]
    taken = await api.call(
        "POST",
        "/invoices",
        json={"clientid": customer, "number": "0002", "date": "2026-05-01", "items": item},
    )
    other_year = await api.call(
        "POST",
        "/invoices",
        json={"clientid": customer, "number": 2, "date": "2024-05-01", "items": item},
    )

    assert taken.status == 400
    assert taken.body["errors"] == {"number": "The invoice number is already in use."}
    assert other_year.status == 201
    assert other_year.body["data"]["number"] == "2"


async def test_invoice_create_validation_errors_name_each_field(api: Api) -> None:
    empty = await api.call("POST", "/invoices", json={})
    bad_items = await api.call(
        "POST",
        "/invoices",
        json={"clientid": 1, "items": [{"qty": "x"}, "nope"], "date": "yesterday"},
    )
    no_items = await api.call("POST", "/invoices", json={"clientid": 1, "items": []})

    assert set(empty.body["errors"]) == {"clientid", "items"}
    assert set(bad_items.body["errors"]) == {
        "date",
        "items.0.description",
        "items.0.qty",
        "items.0.rate",
        "items.1",
    }
    assert no_items.body["errors"] == {"items": "At least one item is required."}
    assert api.emulator.counters.writes == 0


async def test_updating_items_keeps_listed_ids_drops_the_rest_and_recomputes(api: Api) -> None:
    customer = _new_customer(api)
    invoice = _new_invoice(
        api,
        customer,
        items=[
            {"description": "A", "qty": 1, "rate": "10.00"},
            {"description": "B", "qty": 1, "rate": "20.00"},
        ],
    )
    keep = invoice["items"][0]["id"]

    reply = await api.call(
        "PUT",
        f"/invoices/{invoice['id']}",
        json={
            "clientnote": "Dank u",
            "items": [
                {"id": keep, "description": "A2", "qty": 2, "rate": "10.00"},
                {"description": "C", "qty": 1, "rate": "5.00", "taxname": ["VAT|21.00"]},
            ],
        },
    )

    data = reply.body["data"]
    assert reply.status == 200
    assert [item["description"] for item in data["items"]] == ["A2", "C"]
    assert data["items"][0]["id"] == keep
    assert data["items"][1]["id"] not in {i["id"] for i in invoice["items"]}
    assert (data["subtotal"], data["total_tax"], data["total"]) == ("25.00", "1.05", "26.05")
    assert data["clientnote"] == "Dank u"


async def test_an_item_id_from_another_invoice_is_refused(api: Api) -> None:
    customer = _new_customer(api)
    first, second = _new_invoice(api, customer), _new_invoice(api, customer)
    foreign = first["items"][0]["id"]

    reply = await api.call(
        "PUT",
        f"/invoices/{second['id']}",
        json={"items": [{"id": foreign, "description": "X", "rate": "1.00"}]},
    )

    assert reply.status == 400
    assert set(reply.body["errors"]) == {"items.0.id"}


async def test_cancelling_and_reopening_an_invoice_and_derived_statuses_are_refused(
    api: Api,
) -> None:
    invoice = _new_invoice(api, _new_customer(api))
    path = f"/invoices/{invoice['id']}"

    cancelled = await api.call("PUT", path, json={"status": 5})
    paid = await api.call("PUT", path, json={"status": 2})
    reopened = await api.call("PUT", path, json={"status": "1"})

    assert cancelled.body["data"]["status"] == "5"
    assert paid.status == 400
    assert reopened.body["data"]["status"] == "1"


async def test_draft_keeps_the_placeholder_number_until_it_is_sent(api: Api) -> None:
    customer = _new_customer(api)
    api.emulator.create(
        "contacts", {"userid": customer, "firstname": "A", "lastname": "B", "email": "a@b.nl"}
    )
    next_number = api.emulator.dump()["settings"]["next_invoice_number"]
    draft = _new_invoice(api, customer, status=6)

    sent = await api.call("POST", f"/invoices/{draft['id']}/send")
    after = (await api.get(f"/invoices/{draft['id']}")).body["data"]

    assert (draft["number"], draft["status"], draft["sent"]) == ("1000000000", "6", "0")
    assert sent.body == {"status": "success", "message": "Invoice sent successfully"}
    assert (after["number"], after["status"], after["sent"]) == (str(next_number), "1", "1")
    assert after["datesend"] == "2026-10-31 13:00:00"


async def test_sending_needs_a_contact_with_an_email(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))

    reply = await api.call("POST", f"/invoices/{invoice['id']}/send")

    assert reply.status == 400
    assert api.emulator.counters.writes == 0


async def test_only_the_last_invoice_can_be_deleted(api: Api) -> None:
    customer = _new_customer(api)
    older, last = _new_invoice(api, customer), _new_invoice(api, customer)
    api.emulator.register_payment(last["id"], Decimal("1.00"), dt.date(2026, 10, 30))

    refused = await api.call("DELETE", f"/invoices/{older['id']}")
    deleted = await api.call("DELETE", f"/invoices/{last['id']}")

    assert (refused.status, refused.body["message"]) == (
        400,
        "Only the last invoice can be deleted",
    )
    assert deleted.body == {"status": "success", "message": "Invoice deleted successfully"}
    assert (await api.get(f"/invoices/{last['id']}")).status == 404
    assert (await api.get("/payments", invoice_id=last["id"])).body["total"] == 0


async def test_any_invoice_can_be_deleted_when_the_option_is_off() -> None:
    async with perfex_api(quirks=PerfexQuirks(delete_only_last_invoice=False)) as api:
        reply = await api.call("DELETE", "/invoices/1")

    assert reply.status == 200


async def test_an_unpaid_invoice_turns_overdue_once_its_due_date_passes(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api), date="2026-10-31", duedate="2026-11-02")

    before = (await api.get(f"/invoices/{invoice['id']}")).body["data"]["status"]
    api.clock.advance(days=3)
    after = (await api.get(f"/invoices/{invoice['id']}")).body["data"]["status"]
    listed = await api.get("/invoices", status="4", limit="100")

    assert (before, after) == ("1", "4")
    assert invoice["id"] in [row["id"] for row in listed.body["data"]]


async def test_script_text_is_altered_by_the_xss_filter_on_write(api: Api) -> None:
    reply = await api.call(
        "POST", "/customers", json={"company": "Evil <script>alert(1)</script> BV"}
    )
    async with perfex_api(quirks=PerfexQuirks(xss_clean=False)) as raw_api:
        raw = await raw_api.call("POST", "/customers", json={"company": "Evil <script>x</script>"})

    assert reply.body["data"]["company"] == "Evil [removed]alert(1)[removed] BV"
    assert raw.body["data"]["company"] == "Evil <script>x</script>"


# ---------------------------------------------------------------- payments


async def test_payments_move_the_invoice_from_unpaid_to_partial_to_paid(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))  # total 242.00
    path = f"/invoices/{invoice['id']}"

    partial = await api.call(
        "POST",
        "/payments",
        json={
            "invoiceid": invoice["id"],
            "amount": 42,
            "date": "2026-10-29",
            "paymentmode": "bank_transfer",
        },
    )
    middle = (await api.get(path)).body["data"]
    await api.call(
        "POST",
        "/payments",
        json={"invoiceid": invoice["id"], "amount": "200.00", "date": "2026-10-30"},
    )
    done = (await api.get(path)).body["data"]

    assert partial.status == 201
    assert partial.body["data"]["date"] == "2026-10-29"  # the given date, not today
    assert partial.body["data"]["amount"] == "42.00"
    assert partial.body["data"]["paymentmode"] == "bank_transfer"
    assert (middle["status"], middle["total_left_to_pay"]) == ("3", "200.00")
    assert (done["status"], done["total_left_to_pay"]) == ("2", "0.00")
    assert api.emulator.counters.writes == 2


async def test_payment_create_requires_invoice_amount_and_date(api: Api) -> None:
    empty = await api.call("POST", "/payments", json={})
    negative = await api.call(
        "POST", "/payments", json={"invoiceid": 1, "amount": -5, "date": "2026-10-01"}
    )
    unknown = await api.call(
        "POST", "/payments", json={"invoiceid": 99999, "amount": 5, "date": "2026-10-01"}
    )

    assert set(empty.body["errors"]) == {"invoiceid", "amount", "date"}
    assert set(negative.body["errors"]) == {"amount"}
    assert set(unknown.body["errors"]) == {"invoiceid"}


async def test_changing_or_deleting_a_payment_recomputes_the_invoice_status(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))
    payment = api.emulator.register_payment(invoice["id"], Decimal("242.00"), dt.date(2026, 10, 30))
    path = f"/invoices/{invoice['id']}"

    lowered = await api.call("PUT", f"/payments/{payment['id']}", json={"amount": "100.00"})
    partial = (await api.get(path)).body["data"]["status"]
    deleted = await api.call("DELETE", f"/payments/{payment['id']}")
    unpaid = (await api.get(path)).body["data"]["status"]
    missing = await api.get(f"/payments/{payment['id']}")

    assert lowered.body["data"]["amount"] == "100.00"
    assert partial == "3"
    assert deleted.body == {"status": "success", "message": "Payment deleted successfully"}
    assert unpaid == "1"
    assert (missing.status, missing.body["message"]) == (404, "Payment not found")


async def test_payment_mode_join_quirk_moves_the_payment_id_to_paymentid() -> None:
    async with perfex_api(quirks=PerfexQuirks(payment_mode_join=True)) as api:
        row = (await api.get("/payments/1")).body["data"]

    assert row["paymentid"] == "1"
    assert row["id"] == "1"  # the payment mode's id, Bank
    assert row["name"] == "Bank"


# ---------------------------------------------------------------- rate limits


async def test_documented_limit_is_1000_requests_per_hour() -> None:
    emulator = PerfexEmulator(SandboxOptions(), lambda: NOW)
    burst = PerfexEmulator(SandboxOptions(), lambda: NOW, PerfexQuirks(burst_limit=True))

    assert emulator.current_rate_windows() == (RateWindow(1000, 3600.0),)
    assert RateWindow(100, 60.0) in burst.current_rate_windows()


async def test_the_1001st_request_in_a_scaled_hour_gets_the_vendor_429() -> None:
    clock = MutableClock(NOW)
    options = SandboxOptions(seed=1, rate_scale=3600.0)  # the hour becomes one second
    async with perfex_api(options, clock=clock) as api:

        async def one() -> int:
            async with api.session.get(api.base + "/taxes", headers=KEY) as response:
                await response.read()
                return response.status

        statuses = await asyncio.gather(*(one() for _ in range(1000)))
        limited = await api.get("/taxes")
        clock.advance(seconds=1.01)
        again = await api.get("/taxes")

    assert set(statuses) == {200}
    assert limited.status == 429
    assert limited.body == {"status": "error", "message": "Rate limit exceeded", "retry_after": 1}
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Limit"] == "1000"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) == int(NOW.timestamp()) + 1
    assert again.status == 200
    assert api.emulator.counters.rate_limited == 1


# ---------------------------------------------------------------- seeding and determinism


async def test_same_seed_gives_the_same_dump_and_another_seed_does_not() -> None:
    def dump(seed: int) -> dict[str, Any]:
        options = SandboxOptions(seed=seed)
        emulator = PerfexEmulator(options, lambda: NOW)
        emulator.load_seed(generate_world(options)["perfex"])
        return emulator.dump()

    assert dump(3) == dump(3)
    assert dump(3) != dump(4)


async def test_seeded_world_is_converted_to_perfex_shapes() -> None:
    options = SandboxOptions(seed=5)
    seed = generate_world(options)["perfex"]
    emulator = PerfexEmulator(options, lambda: world_epoch(5))
    emulator.load_seed(seed)
    state = emulator.dump()

    assert len(state["customers"]) == len(seed.contacts)
    for contact, customer in zip(seed.contacts, state["customers"], strict=True):
        assert customer["company"] == contact.name
        assert customer["country"] == {"NL": "155", "EE": "70"}[contact.country]
        assert customer["vat"] == (contact.vat_number or "")
    emails = {c["email"] for c in state["contacts"] if c["is_primary"] == "1"}
    assert {c.email for c in seed.contacts if c.email} <= emails
    for invoice, row in zip(seed.invoices, state["invoices"], strict=True):
        if invoice.number is None:
            assert (row["number"], row["status"]) == ("1000000000", "6")
            continue
        parts = split_invoice_number(invoice.number)
        assert parts is not None
        padding = state["settings"]["number_padding"]
        assert row["prefix"] + row["number"].zfill(padding) == invoice.number
        assert row["date"] == invoice.issue_date.isoformat()
        paid = sum((p.amount for p in invoice.payments), Decimal(0))
        assert (
            sum(Decimal(p["amount"]) for p in state["payments"] if p["invoiceid"] == row["id"])
            == paid
        )


def test_totals_round_each_line_and_each_tax_group() -> None:
    lines = [
        LineAmounts(Decimal("1.5"), Decimal("0.33"), (("VAT", Decimal(21)),)),
        LineAmounts(Decimal("1"), Decimal("0.33"), (("VAT", Decimal(21)),)),
    ]

    plain = compute_totals(lines, Decimal(0), "", Decimal(0))
    before = compute_totals(lines, Decimal(10), "before_tax", Decimal("0.01"))

    # 0.495 -> 0.50 per line, then 21 % of 0.83 = 0.1743 -> 0.17
    assert (plain.subtotal, plain.total_tax, plain.total) == (
        Decimal("0.83"),
        Decimal("0.17"),
        Decimal("1.00"),
    )
    assert (before.discount_total, before.total_tax, before.total) == (
        Decimal("0.08"),
        Decimal("0.16"),
        Decimal("0.92"),
    )


# ---------------------------------------------------------------- control hooks


async def test_mutate_changes_what_a_user_can_change_and_rejects_the_rest(api: Api) -> None:
    changed = api.emulator.mutate("customers", "1", {"company": "Hernoemd BV", "country": 83})

    assert (changed["company"], changed["country"]) == ("Hernoemd BV", "83")
    assert (await api.get("/customers/1")).body["data"]["company"] == "Hernoemd BV"
    with pytest.raises(ValueError, match="email"):
        api.emulator.mutate("customers", "1", {"email": "x@y.nl"})
    with pytest.raises(KeyError):
        api.emulator.mutate("customers", "99999", {"company": "X"})
    with pytest.raises(ValueError, match="resource"):
        api.emulator.mutate("organizations", "1", {"company": "X"})
    assert api.emulator.counters.writes == 0  # a human in the UI is not an API write


async def test_mutate_invoice_lines_recomputes_totals(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))

    changed = api.emulator.mutate(
        "invoices", invoice["id"], {"items": [{"description": "Nieuw", "qty": 1, "rate": "50.00"}]}
    )

    assert (changed["total"], len(changed["items"])) == ("50.00", 1)


async def test_create_hook_stores_empty_strings_like_the_admin_ui(api: Api) -> None:
    customer = api.emulator.create("customers", {"company": "UI BV"})

    assert customer["zip"] == ""
    assert customer["addedfrom"] == "1"
    with pytest.raises(ValueError, match="company"):
        api.emulator.create("customers", {"city": "Delft"})


async def test_delete_hook_applies_the_vendor_rules(api: Api) -> None:
    customer = _new_customer(api)
    older, last = _new_invoice(api, customer), _new_invoice(api, customer)

    with pytest.raises(ValueError, match="last invoice"):
        api.emulator.delete("invoices", older["id"])
    api.emulator.delete("invoices", last["id"])
    with pytest.raises(KeyError):
        api.emulator.delete("invoices", last["id"])
    assert (await api.get(f"/invoices/{last['id']}")).status == 404


async def test_archive_deactivates_customers_and_contacts_only(api: Api) -> None:
    archived = api.emulator.archive("customers", "1")
    contact = api.emulator.archive("contacts", "1")

    assert archived["active"] == "0"
    assert contact["active"] == "0"
    with pytest.raises(ValueError, match="archive"):
        api.emulator.archive("invoices", "1")


async def test_register_payment_records_a_bank_payment_and_settles_the_invoice(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))

    payment = api.emulator.register_payment(invoice["id"], Decimal("242.00"), dt.date(2026, 10, 30))

    assert (payment["amount"], payment["date"], payment["paymentmode"]) == (
        "242.00",
        "2026-10-30",
        "1",
    )
    assert (await api.get(f"/invoices/{invoice['id']}")).body["data"]["status"] == "2"
    with pytest.raises(ValueError, match="amount"):
        api.emulator.register_payment(invoice["id"], Decimal("0"), dt.date(2026, 10, 30))
    with pytest.raises(KeyError):
        api.emulator.register_payment("99999", Decimal("1"), dt.date(2026, 10, 30))


async def test_reset_forgets_all_records_and_restarts_ids(api: Api) -> None:
    api.emulator.reset()
    customer = api.emulator.create("customers", {"company": "Eerste BV"})

    assert customer["userid"] == "1"
    assert api.emulator.dump()["invoices"] == []


async def test_control_api_drives_the_hooks_over_http(api: Api) -> None:
    invoice = _new_invoice(api, _new_customer(api))

    mutated = await api.control("PATCH", "/customers/1", {"city": "Assen"})
    paid = await api.control(
        "POST", f"/invoices/{invoice['id']}/payments", {"amount": "242.00", "date": "2026-10-30"}
    )
    archived = await api.control("POST", "/contacts/1/archive")
    refused = await api.control("POST", "/invoices/1/archive")
    state = await api.control("GET", "/state")

    assert mutated.body["city"] == "Assen"
    assert paid.status == 201
    assert archived.body["active"] == "0"
    assert refused.status == 400
    assert set(state.body) >= {"customers", "contacts", "invoices", "payments"}
