"""The SimplBooks emulator behaves like the vendor: shapes, paging, filters, errors, limits."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from syncd.sandbox.base import (
    Clock,
    RateDecision,
    RateWindow,
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    SeedLine,
    SeedPayment,
    VendorName,
    VendorSeed,
)
from syncd.sandbox.common import VendorRuntime, vendor_middleware
from syncd.sandbox.seed import generate_world, invoice_totals
from syncd.sandbox.simplbooks import (
    CLIENT_BASIC_FIELDS,
    CLIENT_FIELDS,
    INCOMING_FIELDS,
    INVOICE_FIELDS,
    INVOICE_LIST_FIELDS,
    TASK_FIELDS,
    SimplbooksEmulator,
    parse_bracket_pairs,
)
from syncd.sandbox.testing import SandboxHandle

PREFIX = "/simplbooks/demo/api"
TOKEN = "sandbox-simplbooks-token"
AUTH = {"X-Simplbooks-Token": TOKEN}
JSON_IN = {**AUTH, "X-Input-Format": "json"}
START = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def contact(
    key: str,
    name: str,
    *,
    country: str = "EE",
    city: str | None = "Tallinn",
    email: str | None = None,
    vat: str | None = None,
    coc: str | None = None,
    street: str | None = "Sõpruse pst 151",
    postal: str | None = "13417",
) -> SeedContact:
    return SeedContact(
        key=key,
        kind="organization",
        name=name,
        first_name=None,
        last_name=None,
        email=email,
        phone="+372 5555 0000",
        website=None,
        address=street,
        postal_code=postal,
        city=city,
        country=country,
        vat_number=vat,
        coc_number=coc,
        iban="EE382200221020145685",
        bic="HABAEE2X",
        customer_number=None,
        created_at=START - dt.timedelta(days=400 - int(key[1:])),
        updated_at=START - dt.timedelta(days=10),
    )


def invoice(
    key: str,
    contact_key: str,
    number: str | None,
    issue: dt.date,
    status: Any,
    lines: tuple[SeedLine, ...],
    payments: tuple[SeedPayment, ...] = (),
) -> SeedInvoice:
    created = dt.datetime.combine(issue, dt.time(10), dt.UTC)
    return SeedInvoice(
        key=key,
        contact_key=contact_key,
        number=number,
        issue_date=issue,
        due_date=issue + dt.timedelta(days=14),
        currency="EUR",
        status=status,
        lines=lines,
        payments=payments,
        created_at=created,
        updated_at=created,
    )


LINE_22 = SeedLine("Konsultatsioon", Decimal(10), Decimal("50.00"), Decimal(22))
LINE_9 = SeedLine("Raamat", Decimal(3), Decimal("12.35"), Decimal(9))
LINE_NL = SeedLine("Advies", Decimal(2), Decimal("100.00"), Decimal(21))

SMALL_SEED = VendorSeed(
    contacts=(
        contact("c001", "Alfa OÜ", email="info@alfa.ee", vat="EE101555357", coc="12213296"),
        contact("c002", "Beeta AS", city="Tartu", email="arved@beeta.ee", postal="50090"),
        contact("c003", "Gamma B.V.", country="NL", city="Utrecht", email="post@gamma.nl"),
    ),
    invoices=(
        invoice("i001", "c001", "2026-0001", dt.date(2026, 9, 1), "paid", (LINE_22,),
                (SeedPayment(dt.date(2026, 9, 10), Decimal("610.00")),)),
        invoice("i002", "c001", "2026-0002", dt.date(2026, 10, 1), "partially_paid",
                (LINE_22, LINE_9), (SeedPayment(dt.date(2026, 10, 5), Decimal("100.00")),)),
        invoice("i003", "c002", "2026-0003", dt.date(2026, 10, 15), "open", (LINE_9,)),
        invoice("i004", "c003", "2026-0004", dt.date(2026, 10, 20), "overdue", (LINE_NL,)),
        invoice("i005", "c002", None, dt.date(2026, 10, 30), "draft", (LINE_22,)),
    ),
)  # fmt: skip


@dataclass
class Stack:
    emulator: SimplbooksEmulator
    client: TestClient[web.Request, web.Application]
    clock: FakeClock

    async def call(
        self,
        path: str,
        *,
        method: str = "GET",
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> tuple[int, dict[str, Any]]:
        """One API call with a JSON body (X-Input-Format: json) unless told otherwise."""
        if body is not None:
            kwargs["data"] = json.dumps(body)
        response = await self.client.request(
            method, f"{PREFIX}/{path}", headers=JSON_IN if headers is None else headers, **kwargs
        )
        payload = json.loads(await response.text(), parse_float=Decimal)
        assert payload["status"] == response.status  # status mirrors the HTTP status
        return response.status, payload

    async def data(self, path: str, **kwargs: Any) -> Any:
        status, payload = await self.call(path, **kwargs)
        assert status == 200, payload
        return payload["data"]

    async def write(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, payload = await self.call(path, method="POST", body=body)
        assert status == 200, payload
        return payload


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack() -> AsyncIterator[StackFactory]:
    """Build emulator + framework middleware + test client; the vendor mounted at PREFIX."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def build(
        seed: VendorSeed | None = SMALL_SEED,
        options: SandboxOptions | None = None,
        **flags: Any,
    ) -> Stack:
        clock = FakeClock()
        emulator = SimplbooksEmulator(options or SandboxOptions(), clock, **flags)
        if seed is not None:
            emulator.load_seed(seed)
        sub = web.Application(middlewares=[vendor_middleware(VendorRuntime.for_emulator(emulator))])
        emulator.build_routes(sub)
        app = web.Application()
        app.add_subapp(PREFIX, sub)
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return Stack(emulator, client, clock)

    yield build
    for client in clients:
        await client.close()


@pytest.fixture
async def stack(make_stack: StackFactory) -> Stack:
    return await make_stack()


def ids(rows: list[dict[str, Any]], wrapper: str) -> list[int]:
    return [row[wrapper]["id"] for row in rows]


# ---------------------------------------------------------------- auth and routing


async def test_missing_token_is_401_with_vendor_envelope(stack: Stack) -> None:
    status, payload = await stack.call("clients/list", headers={})
    assert status == 401
    assert payload == {
        "status": 401,
        "duration": payload["duration"],
        "inserted_id": 0,
        "errors": ["API token in HTTP header is missing."],
    }
    assert stack.emulator.counters.auth_failures == 1


async def test_wrong_token_is_403_and_never_echoes_the_token(stack: Stack) -> None:
    status, payload = await stack.call(
        "clients/list", headers={"X-Simplbooks-Token": "not-the-token"}
    )
    assert status == 403
    assert payload["errors"] == ["Used API token is expired or wrong."]
    assert "not-the-token" not in json.dumps(payload, default=str)


async def test_configured_token_replaces_the_default(make_stack: StackFactory) -> None:
    options = SandboxOptions(credentials={"simplbooks": {"token": "a" * 32}})
    stack = await make_stack(options=options)
    assert (await stack.call("clients/list", headers=AUTH))[0] == 403
    assert (await stack.call("clients/list", headers={"X-Simplbooks-Token": "a" * 32}))[0] == 200


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("clients", "Action of API call is missing."),
        ("clients/frobnicate", "Specified API call is not recognized."),
        ("nothing/list", "Specified API call is not recognized."),
        ("clients/list/extra/parts", "Specified API call is not recognized."),
    ],
)
async def test_unknown_calls_get_the_vendor_404(stack: Stack, path: str, message: str) -> None:
    status, payload = await stack.call(path)
    assert status == 404
    assert payload["errors"] == [message]


async def test_verbs_are_not_enforced_by_default(stack: Stack) -> None:
    via_post = await stack.data("clients/list", method="POST", body={"per_page": 2})
    via_get = await stack.data("clients/list", method="GET", body={"per_page": 2})
    assert via_post == via_get
    assert len(via_get) == 2


async def test_enforced_verbs_refuse_a_write_sent_as_get(make_stack: StackFactory) -> None:
    stack = await make_stack(enforce_verbs=True)
    status, payload = await stack.call("clients/create", body={"Client": {"name": "X"}})
    assert status == 404
    assert payload["errors"] == ["Specified API call is not recognized."]
    assert stack.emulator.counters.writes == 0


async def test_writes_are_classified_by_action_not_by_verb(stack: Stack) -> None:
    seen: list[bool] = []
    original = stack.emulator.is_write

    def spy(request: web.Request) -> bool:
        seen.append(original(request))
        return seen[-1]

    stack.emulator.is_write = spy  # type: ignore[method-assign]
    await stack.call("clients/list", method="POST", body={})
    await stack.call("clients/create", method="POST", body={"Client": {"name": "Uus OÜ"}})
    await stack.call("invoices/sent/5001", method="POST")
    assert seen == [False, True, True]


async def test_write_only_faults_hit_creates_but_not_lists_sent_as_post(
    make_stack: StackFactory,
) -> None:
    options = SandboxOptions(fault_rate=1.0, fault_kinds=("lost_response",))
    stack = await make_stack(options=options)
    assert len(await stack.data("clients/list", method="POST", body={})) == 3
    with pytest.raises(aiohttp.ClientError):
        await stack.call("clients/create", method="POST", body={"Client": {"name": "Kadunud"}})
    # The write was committed even though its answer never arrived.
    assert stack.emulator.dump()["clients"][-1]["Client"]["name"] == "Kadunud"
    assert stack.emulator.counters.writes == 1


# ---------------------------------------------------------------- envelope and shapes


async def test_read_envelope_has_status_duration_inserted_id_and_data(stack: Stack) -> None:
    status, payload = await stack.call("clients/get/1")
    assert status == 200
    assert list(payload) == ["status", "duration", "inserted_id", "data"]
    assert isinstance(payload["duration"], Decimal)  # a JSON number, not a string
    assert payload["inserted_id"] == 0


async def test_client_list_rows_carry_basic_data_and_get_carries_settings(stack: Stack) -> None:
    rows = await stack.data("clients/list")
    assert list(rows[0]) == ["Client"]
    assert list(rows[0]["Client"]) == ["id", *CLIENT_BASIC_FIELDS]
    detail = await stack.data("clients/get/1")
    assert list(detail) == ["Client"]
    assert list(detail["Client"]) == list(CLIENT_FIELDS)
    alfa = detail["Client"]
    assert alfa["id"] == 1
    assert alfa["name"] == "Alfa OÜ"
    assert alfa["reg_no"] == "12213296"
    assert alfa["vat_no"] == "EE101555357"
    assert alfa["address_country"] == "EE"
    assert alfa["account_no"] == "EE382200221020145685"
    assert alfa["bank"] == "Swedbank"
    assert alfa["client_settings_due_days"] == 0
    assert alfa["client_settings_language"] == "et_EE"


async def test_invoice_list_uses_lowercase_wrapper_and_has_no_remnant(stack: Stack) -> None:
    rows = await stack.data("invoices/list")
    assert all(list(row) == ["invoices"] for row in rows)
    assert list(rows[0]["invoices"]) == list(INVOICE_LIST_FIELDS)
    assert "remnant" not in rows[0]["invoices"]


async def test_invoice_get_returns_header_and_task_rows_with_numbers(stack: Stack) -> None:
    detail = await stack.data("invoices/get/5002")
    assert list(detail) == ["Invoice", "Task"]
    header = detail["Invoice"]
    assert list(header) == list(INVOICE_FIELDS)
    assert header["number"] == "2026-0002"
    assert header["created"] == "2026-10-01"
    assert header["due"] == "2026-10-15"
    # 10 x 50.00 at 22 % + 3 x 12.35 at 9 %
    assert header["sum"] == Decimal("537.05")
    assert header["vat"] == Decimal("113.33")
    assert header["total_sum"] == Decimal("650.38")
    assert header["remnant"] == Decimal("550.38")
    assert header["paid"] == "0000-00-00"
    assert header["row_sum_with_vat"] is False
    assert header["currency_name"] == "EUR"
    assert isinstance(header["reference"], str)
    rows = detail["Task"]
    assert [list(r) for r in rows] == [list(TASK_FIELDS)] * 2
    assert [(r["name"], r["amount"], r["price_per_unit"], r["vat"]) for r in rows] == [
        ("Konsultatsioon", 10, 50, 22),
        ("Raamat", 3, Decimal("12.35"), 9),
    ]
    assert all(isinstance(r["id"], int) and isinstance(r["vat_type_id"], int) for r in rows)


async def test_unsent_and_unpaid_dates_are_zero_sentinels(stack: Stack) -> None:
    headers = {r["invoices"]["number"]: r["invoices"] for r in await stack.data("invoices/list")}
    assert headers["2026-0003"]["sent"] == "0000-00-00"  # "open": issued, not sent
    assert headers["2026-0003"]["paid"] == "0000-00-00"
    assert headers["2026-0004"]["sent"] == "2026-10-20"
    assert headers["2026-0001"]["paid"] == "2026-09-10"


async def test_vat_types_list_is_wrapped_and_not_paged(stack: Stack) -> None:
    rows = await stack.data("vat_types/list", body={"per_page": 2})
    assert len(rows) > 2
    assert all(list(r) == ["VatType"] for r in rows)
    first = rows[0]["VatType"]
    assert list(first) == ["id", "name", "vat_percent", "is_sales", "is_purchase", "active"]
    assert isinstance(first["is_sales"], bool)
    assert {r["VatType"]["vat_percent"] for r in rows} >= {0, 9, 21, 22, 24}


async def test_income_accounts_list_names_the_bank_and_cash_accounts(stack: Stack) -> None:
    rows = await stack.data("income_accounts/list")
    assert [r["IncomeAccount"]["id"] for r in rows] == [1, 2, 3]


# ---------------------------------------------------------------- paging


async def test_default_page_size_is_ten(make_stack: StackFactory) -> None:
    stack = await make_stack()
    for n in range(12):
        stack.emulator.create("clients", {"name": f"Klient {n}"})
    assert len(await stack.data("clients/list")) == 10


async def test_paging_with_body_parameters_reaches_every_record_once(
    make_stack: StackFactory,
) -> None:
    world = generate_world(SandboxOptions(seed=5, contacts=120, invoices=40))["simplbooks"]
    stack = await make_stack(seed=world)
    seen: list[int] = []
    page = 1
    while True:
        rows = await stack.data("clients/list", body={"page": page, "per_page": 7})
        seen.extend(ids(rows, "Client"))
        if len(rows) < 7:  # a short page is the only end-of-list signal
            break
        page += 1
    assert seen == sorted(seen)  # id ascending
    assert len(seen) == len(set(seen)) == len(world.contacts)


async def test_page_past_the_end_is_empty(stack: Stack) -> None:
    assert await stack.data("clients/list", body={"page": 99, "per_page": 10}) == []


async def test_paging_through_the_query_string(stack: Stack) -> None:
    rows = await stack.data("invoices/list?page=2&per_page=2", headers=AUTH)
    assert ids(rows, "invoices") == [5003, 5004]


async def test_paging_through_form_data_on_post(stack: Stack) -> None:
    response = await stack.client.post(
        f"{PREFIX}/invoices/list", headers=AUTH, data={"page": "3", "per_page": "2"}
    )
    payload = await response.json()
    assert ids(payload["data"], "invoices") == [5005]


async def test_per_page_of_1000_is_allowed_and_1001_is_too_big(stack: Stack) -> None:
    assert len(await stack.data("clients/list", body={"per_page": 1000})) == 3
    status, payload = await stack.call("clients/list", body={"per_page": 1001})
    assert status == 400
    assert payload["errors"] == ["The number of requested entries is too big."]
    assert payload["inserted_id"] == 0


@pytest.mark.parametrize("bad", [{"per_page": 0}, {"page": 0}, {"per_page": "ten"}])
async def test_nonsense_paging_is_a_validation_error(stack: Stack, bad: dict[str, Any]) -> None:
    status, payload = await stack.call("clients/list", body=bad)
    assert status == 400
    assert len(payload["errors"]) == 1


async def test_json_body_without_input_format_header_is_not_read(make_stack: StackFactory) -> None:
    stack = await make_stack()
    for n in range(12):
        stack.emulator.create("clients", {"name": f"Klient {n}"})
    # Sent as JSON but without X-Input-Format: the server expects form data, sees nothing.
    rows = await stack.data("clients/list", body={"per_page": 3}, headers=AUTH)
    assert len(rows) == 10
    lenient = await make_stack(strict_input_format=False)
    response = await lenient.client.get(
        f"{PREFIX}/clients/list", headers=AUTH, json={"per_page": 2}
    )
    assert len((await response.json())["data"]) == 2


async def test_malformed_json_body_is_a_400(stack: Stack) -> None:
    response = await stack.client.post(f"{PREFIX}/clients/list", headers=JSON_IN, data="{nope")
    assert response.status == 400
    assert (await response.json())["errors"] == ["Validation error from SimplBooks system."]


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"id": 2}, [2]),
        ({"id": 0}, [1, 2, 3]),  # 0 is no filter
        ({"name": "oü"}, [1]),  # substring, case-insensitive
        ({"reg_no": "2213"}, [1]),
        ({"vat_no": "EE1015"}, [1]),
        ({"e_mail": "@BEETA"}, [2]),
        ({"address_street": "sõpruse"}, [1, 2, 3]),
        ({"address_city": "tart"}, [2]),
        ({"address_postal_code": "500"}, [2]),
        ({"address_county": "harju"}, [1]),
        ({"address_country": "NL"}, [3]),
        ({"address_country": "EE", "address_city": "Tallinn"}, [1]),
        ({"name": "nobody"}, []),
    ],
)
async def test_client_filters(stack: Stack, filters: dict[str, Any], expected: list[int]) -> None:
    assert ids(await stack.data("clients/list", body=filters), "Client") == expected


async def test_client_filter_in_the_query_string(stack: Stack) -> None:
    assert ids(await stack.data("clients/list?name=beeta", headers=AUTH), "Client") == [2]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"id": 5003}, [5003]),
        ({"client_id": 1}, [5001, 5002]),
        ({"invoice_number": "-000"}, [5001, 5002, 5003, 5004]),
        ({"invoice_number": "0004"}, [5004]),
        ({"client_name": "gamma"}, [5004]),
        ({"client_reg_no": "1221"}, [5001, 5002]),
        ({"created_from": "15-10-2026"}, [5003, 5004, 5005]),  # dd-mm-yyyy, inclusive
        ({"created_from": "2026-10-15", "created_until": "2026-10-20"}, [5003, 5004]),
        ({"created_until": "01-10-2026"}, [5001, 5002]),
    ],
)
async def test_invoice_filters(stack: Stack, filters: dict[str, Any], expected: list[int]) -> None:
    assert ids(await stack.data("invoices/list", body=filters), "invoices") == expected


async def test_invalid_invoice_date_filter_is_a_400(stack: Stack) -> None:
    status, payload = await stack.call("invoices/list", body={"created_from": "2026/10/01"})
    assert status == 400
    assert payload["errors"] == ["Field 'created_from' must be a date (dd-mm-yyyy)."]


async def test_fields_limit_invoice_list_columns(stack: Stack) -> None:
    rows = await stack.data("invoices/list", body={"fields": ["id", "number", "bogus"]})
    assert rows[0] == {"invoices": {"id": 5001, "number": "2026-0001"}}
    response = await stack.client.post(
        f"{PREFIX}/invoices/list",
        headers=AUTH,
        data=[("fields[]", "number"), ("fields[]", "total_sum"), ("per_page", "1")],
    )
    assert (await response.json())["data"] == [
        {"invoices": {"number": "2026-0001", "total_sum": 610}}
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"id": 9002}, [9002]),
        ({"income_date": "2026-10-05"}, [9002]),
        ({"income_date": "05-10-2026"}, [9002]),
        ({"description": "invoice no. 2026-0001"}, [9001]),
        ({"income_account_id": 1}, [9001, 9002]),
        ({"income_account_id": 2}, []),
    ],
)
async def test_incoming_filters(stack: Stack, filters: dict[str, Any], expected: list[int]) -> None:
    assert ids(await stack.data("incomings/list", body=filters), "Incoming") == expected


async def test_fields_limit_incoming_list_columns(stack: Stack) -> None:
    rows = await stack.data("incomings/list", body={"fields": ["income_sum"]})
    assert rows == [{"Incoming": {"income_sum": 610}}, {"Incoming": {"income_sum": 100}}]


# ---------------------------------------------------------------- clients: writes


async def test_client_create_returns_inserted_id_and_saves_fields(stack: Stack) -> None:
    payload = await stack.write(
        "clients/create",
        {"Client": {"name": "Acme OÜ", "reg_no": "12345678", "e_mail": "info@acme.ee",
                    "address_country": "EE", "client_settings_due_days": 21}},
    )  # fmt: skip
    assert payload == {
        "status": 200,
        "duration": payload["duration"],
        "inserted_id": 4,
        "response": "New entry saved.",
    }
    saved = (await stack.data("clients/get/4"))["Client"]
    assert (saved["name"], saved["reg_no"], saved["e_mail"]) == (
        "Acme OÜ",
        "12345678",
        "info@acme.ee",
    )
    assert saved["client_settings_due_days"] == 21
    assert stack.emulator.counters.writes == 1


async def test_client_create_from_cakephp_form_data(stack: Stack) -> None:
    response = await stack.client.post(
        f"{PREFIX}/clients/create",
        headers=AUTH,
        data={"Client[name]": "Vorm OÜ", "Client[address_street]": "Test 1"},
    )
    payload = await response.json()
    assert payload["inserted_id"] == 4
    saved = (await stack.data("clients/get/4"))["Client"]
    assert (saved["name"], saved["address_street"]) == ("Vorm OÜ", "Test 1")


async def test_client_create_without_name_is_a_validation_error(stack: Stack) -> None:
    status, payload = await stack.call(
        "clients/create", method="POST", body={"Client": {"e_mail": "x@y.ee"}}
    )
    assert status == 400
    assert payload == {
        "status": 400,
        "duration": payload["duration"],
        "inserted_id": 0,
        "errors": ["Field 'name' is required."],
    }
    assert stack.emulator.counters.writes == 0
    assert len(await stack.data("clients/list")) == 3


async def test_client_create_with_wrong_types_lists_every_problem(stack: Stack) -> None:
    status, payload = await stack.call(
        "clients/create",
        method="POST",
        body={"Client": {"name": "X", "client_settings_due_days": "soon",
                         "client_settings_discount": "lots"}},
    )  # fmt: skip
    assert status == 400
    assert payload["errors"] == [
        "Field 'client_settings_due_days' must be an integer.",
        "Field 'client_settings_discount' must be a number.",
    ]


async def test_client_update_is_partial(stack: Stack) -> None:
    before = (await stack.data("clients/get/1"))["Client"]
    payload = await stack.write("clients/update", {"Client": {"id": 1, "phone": "+372 5555 5555"}})
    assert (payload["inserted_id"], payload["response"]) == (1, "Entry successfully changed.")
    after = (await stack.data("clients/get/1"))["Client"]
    assert after == {**before, "phone": "+372 5555 5555"}


@pytest.mark.parametrize("body", [{"Client": {"id": 77, "phone": "1"}}, {"Client": {"phone": "1"}}])
async def test_client_update_of_unknown_or_missing_id_is_400(
    stack: Stack, body: dict[str, Any]
) -> None:
    status, payload = await stack.call("clients/update", method="POST", body=body)
    assert status == 400
    assert payload["errors"] == ["Object with given ID does not exist."]


@pytest.mark.parametrize("path", ["clients/get/77", "clients/get", "clients/get/abc"])
async def test_get_of_unknown_or_missing_client_is_400_not_404(stack: Stack, path: str) -> None:
    status, payload = await stack.call(path)
    assert status == 400
    assert payload["errors"] == ["Object with given ID does not exist."]


async def test_client_delete_answers_without_response_text(stack: Stack) -> None:
    created = await stack.write("clients/create", {"Client": {"name": "Ajutine OÜ"}})
    status, payload = await stack.call(f"clients/delete/{created['inserted_id']}", method="POST")
    assert status == 200
    assert list(payload) == ["status", "duration", "inserted_id"]
    assert payload["inserted_id"] == created["inserted_id"]
    assert (await stack.call(f"clients/get/{created['inserted_id']}"))[0] == 400


async def test_client_with_documents_cannot_be_deleted(stack: Stack) -> None:
    status, payload = await stack.call("clients/delete/1", method="POST")
    assert status == 400
    assert payload["errors"] == ["Client has related documents and cannot be deleted."]
    assert (await stack.call("clients/get/1"))[0] == 200


async def test_client_documents_lists(stack: Stack) -> None:
    invoices = await stack.data("clients/invoices/1")
    assert ids(invoices, "Invoice") == [5001, 5002]
    incomings = await stack.data("clients/incomings/1")
    assert ids(incomings, "Incoming") == [9001, 9002]
    assert (await stack.call("clients/invoices/77"))[0] == 400


# ---------------------------------------------------------------- invoices: writes


async def test_invoice_create_computes_totals_and_snapshots_the_client(stack: Stack) -> None:
    payload = await stack.write(
        "invoices/create",
        {
            "Invoice": {"client_id": 1, "number": "X-1", "created": "2026-11-01",
                        "due": "2026-11-15", "currency_name": "EUR", "additional_info": "Tere"},
            "Tasks": [
                {"Task": {"name": "Töö", "contents": "november", "unit": "h", "amount": 3,
                          "price_per_unit": 33.33, "vat": 24}, "Projects": [{"code": "P1"}]},
                {"Task": {"name": "Allahindlusega", "amount": "1", "price_per_unit": "100",
                          "discount": 15, "vat_type_id": 4}},
            ],
        },
    )  # fmt: skip
    assert payload["response"] == "New entry saved."
    new_id = payload["inserted_id"]
    assert new_id == 5006
    detail = await stack.data(f"invoices/get/{new_id}")
    header = detail["Invoice"]
    assert header["number"] == "X-1"
    assert header["transaction_date"] == "2026-11-01"  # defaults to the invoice date
    assert header["client_name"] == "Alfa OÜ"
    assert header["client_vat_no"] == "EE101555357"
    assert header["sum"] == Decimal("184.99")  # 99.99 + 85.00
    assert header["vat"] == Decimal("31.65")  # 24.00 + 7.65
    assert header["total_sum"] == Decimal("216.64")
    assert header["remnant"] == Decimal("216.64")
    assert header["sent"] == header["paid"] == "0000-00-00"
    rows = detail["Task"]
    assert (rows[0]["vat_type_id"], rows[1]["vat"]) == (3, 9)  # rate -> type, type -> rate
    assert rows[1]["discount"] == 15


async def test_invoice_create_defaults_number_dates_and_due_days(stack: Stack) -> None:
    payload = await stack.write(
        "invoices/create",
        {"Invoice": {"client_id": 2}, "Tasks": [{"Task": {"name": "A", "price_per_unit": 1}}]},
    )
    header = (await stack.data(f"invoices/get/{payload['inserted_id']}"))["Invoice"]
    assert header["created"] == START.date().isoformat()
    assert header["due"] == (START.date() + dt.timedelta(days=14)).isoformat()
    assert header["number"].isdigit()
    assert header["number"] not in {"2026-0001", "2026-0002"}


async def test_invoice_rows_with_vat_included_are_split_back(stack: Stack) -> None:
    payload = await stack.write(
        "invoices/create",
        {"Invoice": {"client_id": 1, "row_sum_with_vat": True},
         "Tasks": [{"Task": {"name": "Bruto", "amount": 1, "price_per_unit": 124, "vat": 24}}]},
    )  # fmt: skip
    header = (await stack.data(f"invoices/get/{payload['inserted_id']}"))["Invoice"]
    assert (header["sum"], header["vat"], header["total_sum"]) == (100, 24, 124)


async def test_invoice_create_from_cakephp_form_data(stack: Stack) -> None:
    response = await stack.client.post(
        f"{PREFIX}/invoices/create",
        headers=AUTH,
        data={
            "Invoice[client_id]": "2",
            "Invoice[row_sum_with_vat]": "0",
            "Tasks[0][Task][name]": "Üks",
            "Tasks[0][Task][amount]": "2",
            "Tasks[0][Task][price_per_unit]": "10.50",
            "Tasks[0][Task][vat]": "9",
            "Tasks[1][Task][name]": "Kaks",
            "Tasks[1][Task][price_per_unit]": "1",
            "Tasks[1][Projects][0][code]": "P",
        },
    )
    payload = await response.json()
    assert response.status == 200, payload
    detail = await stack.data(f"invoices/get/{payload['inserted_id']}")
    assert [t["name"] for t in detail["Task"]] == ["Üks", "Kaks"]
    assert detail["Invoice"]["sum"] == 22


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"Invoice": {"client_id": 1}}, ["Invoice must have at least one row."]),
        ({"Invoice": {}, "Tasks": [{"Task": {"name": "A"}}]}, ["Field 'client_id' is required."]),
        ({"Invoice": {"client_id": 99}, "Tasks": [{"Task": {"name": "A"}}]},
         ["Client with given ID does not exist."]),
        ({"Invoice": {"client_id": 1, "number": "2026-0001"}, "Tasks": [{"Task": {"name": "A"}}]},
         ["Invoice with this number already exists."]),
        ({"Invoice": {"client_id": 1, "created": "31.01.2026"}, "Tasks": [{"Task": {"name": "A"}}]},
         ["Field 'created' must be a date (yyyy-MM-dd)."]),
        ({"Invoice": {"client_id": 1}, "Tasks": [{"name": "unwrapped"}]},
         ['Row 1: each row must be given as {"Task": {...}}.']),
        ({"Invoice": {"client_id": 1}, "Tasks": [{"Task": {"amount": "x"}}]},
         ["Row 1: Field 'amount' must be a number.", "Row 1: Field 'name' is required."]),
        ({"Invoice": {"client_id": 1}, "Tasks": [{"Task": {"name": "A", "vat": 17}}]},
         ["Row 1: No VAT type with the given rate exists."]),
    ],
)  # fmt: skip
async def test_invoice_create_validation_errors(
    stack: Stack, body: dict[str, Any], errors: list[str]
) -> None:
    status, payload = await stack.call("invoices/create", method="POST", body=body)
    assert status == 400
    assert payload["errors"] == errors
    assert payload["inserted_id"] == 0
    assert stack.emulator.counters.writes == 0
    assert len(await stack.data("invoices/list")) == 5


async def test_invoice_update_replaces_the_row_set_when_tasks_are_sent(stack: Stack) -> None:
    before = await stack.data("invoices/get/5002")
    kept, dropped = before["Task"]
    payload = await stack.write(
        "invoices/update",
        {
            "Invoice": {"id": 5002, "additional_info": "Parandatud"},
            "Tasks": [
                {"Task": {"id": kept["id"], "amount": 1}},
                {"Task": {"name": "Uus rida", "price_per_unit": 10, "vat": 22}},
            ],
        },
    )
    assert (payload["inserted_id"], payload["response"]) == (5002, "Entry successfully changed.")
    after = await stack.data("invoices/get/5002")
    row_ids = [t["id"] for t in after["Task"]]
    assert row_ids[0] == kept["id"]
    assert dropped["id"] not in row_ids
    assert after["Task"][0] == {**kept, "amount": 1}
    assert after["Invoice"]["additional_info"] == "Parandatud"
    assert after["Invoice"]["sum"] == 60  # 50 + 10
    assert after["Invoice"]["total_sum"] == Decimal("73.20")
    # The 100.00 receipt already bound now covers the smaller invoice.
    assert (after["Invoice"]["remnant"], after["Invoice"]["paid"]) == (0, "2026-10-05")


async def test_invoice_update_without_tasks_keeps_rows(stack: Stack) -> None:
    before = await stack.data("invoices/get/5002")
    await stack.write("invoices/update", {"Invoice": {"id": 5002, "due": "2026-12-31"}})
    after = await stack.data("invoices/get/5002")
    assert after["Task"] == before["Task"]
    assert after["Invoice"] == {**before["Invoice"], "due": "2026-12-31"}


async def test_invoice_update_of_unknown_id_is_400(stack: Stack) -> None:
    status, payload = await stack.call(
        "invoices/update", method="POST", body={"Invoice": {"id": 1, "due": "2026-12-31"}}
    )
    assert status == 400
    assert payload["errors"] == ["Invoice with given ID does not exist."]


async def test_invoice_keeps_its_client_snapshot_when_the_client_changes(stack: Stack) -> None:
    await stack.write("clients/update", {"Client": {"id": 1, "name": "Alfa Uus OÜ"}})
    assert (await stack.data("invoices/get/5001"))["Invoice"]["client_name"] == "Alfa OÜ"
    await stack.write("invoices/update", {"Invoice": {"id": 5001, "client_id": 1}})
    assert (await stack.data("invoices/get/5001"))["Invoice"]["client_name"] == "Alfa Uus OÜ"


async def test_marking_an_invoice_sent_sets_todays_date(stack: Stack) -> None:
    payload = await stack.write("invoices/sent/5003", {})
    assert (payload["inserted_id"], payload["response"]) == (5003, "OK")
    assert (await stack.data("invoices/get/5003"))["Invoice"]["sent"] == "2026-11-02"


async def test_invoice_delete_and_get_after_it(stack: Stack) -> None:
    status, payload = await stack.call("invoices/delete/5003", method="POST")
    assert (status, list(payload)) == (200, ["status", "duration", "inserted_id"])
    status, payload = await stack.call("invoices/get/5003")
    assert status == 400
    assert payload["errors"] == ["Invoice with given ID does not exist."]
    assert (await stack.call("invoices/delete/5003", method="POST"))[0] == 400


# ---------------------------------------------------------------- receipts


async def test_receipt_bound_on_create_reduces_the_remnant(stack: Stack) -> None:
    payload = await stack.write(
        "incomings/create",
        {"Incoming": {"income_sum": "50.38", "income_date": "2026-11-01"}, "invoice_id": 5002},
    )
    assert payload["response"] == "New entry saved."
    receipt = await stack.data(f"incomings/get/{payload['inserted_id']}")
    assert list(receipt) == ["Incoming", "Projects"]
    assert list(receipt["Incoming"]) == list(INCOMING_FIELDS)
    assert receipt["Incoming"]["client_id"] == 1  # taken from the invoice
    assert receipt["Incoming"]["income_account_id"] == 1
    header = (await stack.data("invoices/get/5002"))["Invoice"]
    assert header["remnant"] == 500
    assert header["paid"] == "0000-00-00"
    assert await stack.data("invoices/get_bound_receipts/5002") == [9002, payload["inserted_id"]]


async def test_receipt_covering_the_rest_marks_the_invoice_paid(stack: Stack) -> None:
    await stack.write(
        "incomings/create",
        {"Incoming": {"income_sum": 550.38, "income_date": "2026-11-01"}, "invoice_id": 5002},
    )
    header = (await stack.data("invoices/get/5002"))["Invoice"]
    assert (header["remnant"], header["paid"]) == (0, "2026-11-01")
    row = (await stack.data("invoices/list", body={"id": 5002}))[0]["invoices"]
    assert row["paid"] == "2026-11-01"


async def test_binding_with_full_cover_settles_a_short_payment(stack: Stack) -> None:
    created = await stack.write(
        "incomings/create",
        {"Incoming": {"income_sum": 70, "income_date": "2026-11-01", "client_id": 2}},
    )
    receipt_id = created["inserted_id"]
    payload = await stack.write(
        "incomings/invoice_paid",
        {"incoming_id": receipt_id, "invoice_id": 5003, "full_cover": True},
    )
    assert (payload["response"], payload["inserted_id"]) == ("OK", receipt_id)
    header = (await stack.data("invoices/get/5003"))["Invoice"]
    assert (header["remnant"], header["paid"]) == (0, "2026-11-01")


async def test_changing_and_deleting_a_receipt_resettles_the_invoice(stack: Stack) -> None:
    await stack.write("incomings/update", {"Incoming": {"id": 9001, "income_sum": 600}})
    header = (await stack.data("invoices/get/5001"))["Invoice"]
    assert (header["remnant"], header["paid"]) == (10, "0000-00-00")
    status, payload = await stack.call("incomings/delete/9001", method="POST")
    assert (status, payload["inserted_id"]) == (200, 9001)
    header = (await stack.data("invoices/get/5001"))["Invoice"]
    assert header["remnant"] == 610
    assert await stack.data("invoices/get_bound_receipts/5001") == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"Incoming": {"income_date": "2026-11-01"}}, ["Field 'income_sum' is required."]),
        ({"Incoming": {"income_sum": "x", "income_date": "2026-11-01"}},
         ["Field 'income_sum' must be a number."]),
        ({"Incoming": {"income_sum": 1, "income_date": "2026-11-01"}, "invoice_id": 42},
         ["Invoice with given ID does not exist."]),
        ({"Incoming": {"income_sum": 1, "income_date": "2026-11-01", "income_account_id": 99}},
         ["Field 'income_account_id' refers to an unknown bank or cash account."]),
    ],
)  # fmt: skip
async def test_receipt_validation_errors(
    stack: Stack, body: dict[str, Any], errors: list[str]
) -> None:
    status, payload = await stack.call("incomings/create", method="POST", body=body)
    assert status == 400
    assert payload["errors"] == errors


async def test_get_of_unknown_receipt_is_400(stack: Stack) -> None:
    status, payload = await stack.call("incomings/get/1")
    assert (status, payload["errors"]) == (400, ["Object with given ID does not exist."])


async def test_writes_counter_counts_committed_api_writes_only(stack: Stack) -> None:
    await stack.data("clients/list")
    await stack.call("clients/create", method="POST", body={"Client": {}})
    stack.emulator.create("clients", {"name": "Käsitsi OÜ"})
    assert stack.emulator.counters.writes == 0
    await stack.write("clients/create", {"Client": {"name": "API OÜ"}})
    await stack.write("invoices/sent/5003", {})
    await stack.call("incomings/delete/9001", method="POST")
    assert stack.emulator.counters.writes == 3


# ---------------------------------------------------------------- rate limits


async def test_sixty_a_minute_then_the_vendor_429_without_headers(
    make_stack: StackFactory,
) -> None:
    stack = await make_stack(options=SandboxOptions(rate_scale=60.0))  # one minute -> 1 s
    for _ in range(60):
        assert (await stack.call("vat_types/list"))[0] == 200
    response = await stack.client.get(f"{PREFIX}/vat_types/list", headers=AUTH)
    assert response.status == 429
    assert await response.json() == {
        "status": 429,
        "duration": 0.0213,
        "inserted_id": 0,
        "errors": ["Inquiry failed! Number of permitted inquiries per minute: 60"],
    }
    assert "Retry-After" not in response.headers
    assert stack.emulator.counters.rate_limited == 1


async def test_rejected_requests_still_use_up_the_window(make_stack: StackFactory) -> None:
    stack = await make_stack(options=SandboxOptions(rate_scale=60.0))
    for _ in range(60):
        await stack.call("vat_types/list")
    stack.clock.advance(0.5)
    for _ in range(5):
        assert (await stack.call("vat_types/list"))[0] == 429
    stack.clock.advance(0.6)  # the first 60 left the window; the 5 refusals did not
    statuses = [(await stack.call("vat_types/list"))[0] for _ in range(56)]
    assert statuses == [200] * 55 + [429]


async def test_retry_after_header_can_be_switched_on(make_stack: StackFactory) -> None:
    stack = await make_stack(retry_after_header=True)
    decision = RateDecision(
        allowed=False, limit=60, remaining=0, reset_seconds=12.2, window_seconds=60
    )
    response = stack.emulator.rate_limited_response(decision)
    assert (response.status, response.headers["Retry-After"]) == (429, "13")


async def test_limits_halve_after_a_busy_day_and_recover(make_stack: StackFactory) -> None:
    stack = await make_stack(options=SandboxOptions(rate_scale=60.0), daily_threshold=20)
    emulator = stack.emulator
    assert emulator.current_rate_windows() == (RateWindow(60, 60.0),)
    for _ in range(21):
        assert (await stack.call("vat_types/list"))[0] == 200
    assert emulator.current_rate_windows() == (RateWindow(30, 60.0),)
    statuses = [(await stack.call("vat_types/list"))[0] for _ in range(10)]
    assert statuses == [200] * 9 + [429]
    status, payload = await stack.call("vat_types/list")
    assert status == 429
    assert payload["errors"] == ["Inquiry failed! Number of permitted inquiries per minute: 30"]
    stack.clock.advance(86_400 / 60 + 1)  # a (scaled) day later the count is back to normal
    assert emulator.requests_last_day() == 0
    assert emulator.current_rate_windows() == (RateWindow(60, 60.0),)
    assert (await stack.call("vat_types/list"))[0] == 200


async def test_halving_can_be_switched_off(make_stack: StackFactory) -> None:
    stack = await make_stack(daily_threshold=1, halve_after_busy_day=False)
    for _ in range(3):
        await stack.call("vat_types/list")
    assert stack.emulator.current_rate_windows() == (RateWindow(60, 60.0),)


async def test_unauthenticated_requests_do_not_count_towards_the_day(stack: Stack) -> None:
    await stack.call("vat_types/list", headers={})
    await stack.call("vat_types/list")
    assert stack.emulator.requests_last_day() == 1


async def test_server_error_uses_the_vendor_envelope(stack: Stack) -> None:
    response = stack.emulator.server_error_response(500)
    assert response.status == 500
    assert json.loads(response.text or "")["errors"] == ["Internal server error."]


# ---------------------------------------------------------------- seeding and dump


def test_same_seed_gives_the_same_dump_and_another_seed_does_not() -> None:
    def dump_for(seed: int) -> dict[str, Any]:
        options = SandboxOptions(seed=seed, contacts=60, invoices=60)
        emulator = SimplbooksEmulator(options, FakeClock())
        emulator.load_seed(generate_world(options)["simplbooks"])
        return emulator.dump()

    first = dump_for(7)
    assert first == dump_for(7)
    assert json.dumps(first, sort_keys=True) == json.dumps(dump_for(7), sort_keys=True)
    assert first != dump_for(8)
    assert first["clients"] and first["invoices"]


def test_seeded_invoices_match_the_world_totals_and_payments() -> None:
    options = SandboxOptions(seed=11, contacts=80, invoices=80)
    world = generate_world(options)["simplbooks"]
    emulator = SimplbooksEmulator(options, FakeClock())
    emulator.load_seed(world)
    dumped = {inv["Invoice"]["number"]: inv["Invoice"] for inv in emulator.dump()["invoices"]}
    numbered = [i for i in world.invoices if i.number]
    assert numbered
    for seeded in numbered:
        header = dumped[seeded.number or ""]
        total = invoice_totals(seeded.lines)[2]
        paid = sum((p.amount for p in seeded.payments), Decimal(0))
        assert Decimal(header["total_sum"]) == total
        assert Decimal(header["remnant"]) == max(total - paid, Decimal(0))
        assert (header["paid"] != "0000-00-00") == (seeded.status == "paid")


def test_seeded_draft_becomes_an_unsent_invoice_with_an_automatic_number() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    draft = emulator.dump()["invoices"][4]["Invoice"]
    assert draft["sent"] == "0000-00-00"
    assert draft["number"] == "1001"


def test_seeded_foreign_customer_rows_use_oss_and_intra_eu_vat_types() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    nl_invoice = emulator.dump()["invoices"][3]
    assert nl_invoice["Invoice"]["client_address_country"] == "NL"
    assert nl_invoice["Task"][0]["vat_type_id"] == 10  # "OSS Madalmaad 21%"


def test_dump_is_json_with_money_as_exact_strings() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    dumped = emulator.dump()
    json.dumps(dumped)  # no Decimal, no date left
    assert dumped["invoices"][1]["Invoice"]["total_sum"] == "650.38"
    assert dumped["bound_receipts"] == {"5001": [9001], "5002": [9002]}
    assert set(dumped) == {
        "clients", "invoices", "incomings", "bound_receipts", "vat_types", "income_accounts"
    }  # fmt: skip


# ---------------------------------------------------------------- control hooks


async def test_mutate_client_is_visible_through_the_api(stack: Stack) -> None:
    changed = stack.emulator.mutate("clients", "2", {"e_mail": "uus@beeta.ee"})
    assert changed["Client"]["e_mail"] == "uus@beeta.ee"
    assert (await stack.data("clients/get/2"))["Client"]["e_mail"] == "uus@beeta.ee"


def test_mutate_refuses_unknown_records_and_fields() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    with pytest.raises(KeyError):
        emulator.mutate("clients", "99", {"name": "X"})
    with pytest.raises(ValueError, match="cannot be changed"):
        emulator.mutate("clients", "1", {"colour": "blue"})
    with pytest.raises(ValueError, match="required"):
        emulator.mutate("clients", "1", {"name": ""})
    with pytest.raises(ValueError, match="not editable"):
        emulator.mutate("invoices", "5001", {"total_sum": "1.00"})
    with pytest.raises(ValueError, match="unknown simplbooks resource"):
        emulator.mutate("contacts", "1", {})


def test_mutate_invoice_rows_recomputes_totals_and_settlement() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    changed = emulator.mutate(
        "invoices",
        "5001",
        {
            "due": "2026-09-30",
            "Task": [{"name": "Väiksem", "amount": 1, "price_per_unit": "100", "vat": 22}],
        },
    )
    assert changed["Invoice"]["due"] == "2026-09-30"
    assert changed["Invoice"]["total_sum"] == "122.00"
    assert changed["Invoice"]["paid"] == "2026-09-10"  # the 610.00 receipt still covers it
    assert [t["name"] for t in changed["Task"]] == ["Väiksem"]


def test_mutate_invoice_client_takes_a_new_snapshot_but_not_a_typed_name() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    moved = emulator.mutate("invoices", "5003", {"client_id": 3})
    assert (moved["Invoice"]["client_name"], moved["Invoice"]["client_address_country"]) == (
        "Gamma B.V.",
        "NL",
    )
    with pytest.raises(ValueError, match="client_name"):
        emulator.mutate("invoices", "5003", {"client_name": "Typed"})


def test_mutate_receipt_changes_the_invoice_it_pays() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    emulator.mutate("incomings", "9002", {"income_sum": "650.38"})
    header = emulator.dump()["invoices"][1]["Invoice"]
    assert (header["remnant"], header["paid"]) == ("0.00", "2026-10-05")


async def test_create_hook_makes_records_the_api_lists(stack: Stack) -> None:
    client = stack.emulator.create("clients", {"name": "Loodud OÜ", "address_country": "EE"})
    client_id = client["Client"]["id"]
    made = stack.emulator.create(
        "invoices",
        {"client_id": client_id, "number": "K-1", "created": "2026-11-01",
         "Task": [{"name": "Rida", "amount": 2, "price_per_unit": "5.00", "vat": 24}]},
    )  # fmt: skip
    assert made["Invoice"]["total_sum"] == "12.40"
    receipt = stack.emulator.create(
        "incomings",
        {"income_sum": "12.40", "income_date": "2026-11-02", "invoice_id": made["Invoice"]["id"]},
    )
    assert receipt["Incoming"]["client_id"] == client_id
    rows = await stack.data("invoices/list", body={"invoice_number": "K-1"})
    assert rows[0]["invoices"]["paid"] == "2026-11-02"
    with pytest.raises(ValueError, match="name"):
        stack.emulator.create("clients", {"reg_no": "1"})


def test_delete_hook_removes_records_and_guards_clients_with_documents() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    with pytest.raises(ValueError, match="related documents"):
        emulator.delete("clients", "2")
    emulator.delete("invoices", "5003")
    emulator.delete("invoices", "5005")
    emulator.delete("clients", "2")
    emulator.delete("incomings", "9001")
    dumped = emulator.dump()
    assert [c["Client"]["id"] for c in dumped["clients"]] == [1, 3]
    assert dumped["invoices"][0]["Invoice"]["paid"] == "0000-00-00"
    with pytest.raises(KeyError):
        emulator.delete("invoices", "5003")
    with pytest.raises(KeyError):
        emulator.delete("incomings", "not-a-number")


def test_simplbooks_has_no_archive() -> None:
    emulator = SimplbooksEmulator(SandboxOptions(), FakeClock())
    emulator.load_seed(SMALL_SEED)
    with pytest.raises(ValueError, match="no archive"):
        emulator.archive("clients", "1")


async def test_register_payment_books_a_bound_receipt(stack: Stack) -> None:
    payment = stack.emulator.register_payment("5003", Decimal("40.38"), dt.date(2026, 11, 1))
    assert payment["Incoming"]["income_sum"] == "40.38"
    assert payment["Incoming"]["description"] == "Invoice no. 2026-0003"
    header = (await stack.data("invoices/get/5003"))["Invoice"]
    assert (header["remnant"], header["paid"]) == (0, "2026-11-01")
    assert await stack.data("invoices/get_bound_receipts/5003") == [payment["Incoming"]["id"]]
    with pytest.raises(KeyError):
        stack.emulator.register_payment("4242", Decimal(1), dt.date(2026, 11, 1))


async def test_reset_forgets_records_counters_and_the_day_log(stack: Stack) -> None:
    await stack.write("clients/create", {"Client": {"name": "X"}})
    stack.emulator.reset()
    assert stack.emulator.counters.writes == 0
    assert stack.emulator.requests_last_day() == 0
    assert stack.emulator.dump()["clients"] == []
    assert await stack.data("clients/list") == []
    created = await stack.write("clients/create", {"Client": {"name": "Esimene"}})
    assert created["inserted_id"] == 1


# ---------------------------------------------------------------- form parsing


def test_cakephp_bracket_names_become_nested_data() -> None:
    parsed = parse_bracket_pairs(
        [
            ("Invoice[client_id]", "4"),
            ("Tasks[1][Task][name]", "second"),
            ("Tasks[0][Task][name]", "first"),
            ("Tasks[0][Projects][0][code]", "P"),
            ("fields[]", "a"),
            ("fields[]", "b"),
            ("page", "2"),
        ]
    )
    assert parsed == {
        "Invoice": {"client_id": "4"},
        "Tasks": [
            {"Task": {"name": "first"}, "Projects": [{"code": "P"}]},
            {"Task": {"name": "second"}},
        ],
        "fields": ["a", "b"],
        "page": "2",
    }


# ---------------------------------------------------------------- through the full sandbox


@pytest.fixture
def sandbox_vendors() -> tuple[VendorName, ...]:
    return ("simplbooks",)


@pytest.fixture
def frozen_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox_clock(frozen_clock: FakeClock) -> Clock:
    return frozen_clock


def _sandbox_auth(sandbox: SandboxHandle) -> dict[str, str]:
    return {"X-Simplbooks-Token": sandbox.credentials["simplbooks"]["token"]}


async def test_full_sandbox_serves_the_seeded_clients_at_the_base_url(
    sandbox: SandboxHandle, sandbox_http: aiohttp.ClientSession
) -> None:
    base = sandbox.base_urls["simplbooks"]
    assert base.endswith("/simplbooks/demo/api")
    headers = {**_sandbox_auth(sandbox), "X-Input-Format": "json"}
    seen: list[int] = []
    page = 1
    while True:
        async with sandbox_http.get(
            f"{base}/clients/list", headers=headers, json={"page": page, "per_page": 2}
        ) as response:
            rows = (await response.json())["data"]
        seen.extend(ids(rows, "Client"))
        if len(rows) < 2:
            break
        page += 1
    state = sandbox.emulators["simplbooks"].dump()
    assert seen == [c["Client"]["id"] for c in state["clients"]]
    assert seen
    async with sandbox_http.get(f"{base}/clients/list") as response:
        assert response.status == 401
    assert sandbox.counters("simplbooks").auth_failures == 1


async def test_full_sandbox_answers_the_vendor_429_at_a_scaled_window(
    sandbox: SandboxHandle, sandbox_http: aiohttp.ClientSession, frozen_clock: FakeClock
) -> None:
    async with sandbox_http.put(
        f"{sandbox.url}/_sandbox/settings", json={"rate_scale": 60}
    ) as response:
        assert response.status == 200
    url = f"{sandbox.base_urls['simplbooks']}/vat_types/list"
    statuses = []
    for _ in range(61):
        async with sandbox_http.get(url, headers=_sandbox_auth(sandbox)) as response:
            statuses.append(response.status)
            body = await response.json()
    assert statuses == [200] * 60 + [429]
    assert body["errors"] == ["Inquiry failed! Number of permitted inquiries per minute: 60"]
    assert "Retry-After" not in response.headers
    frozen_clock.advance(1.01)  # one scaled minute later
    async with sandbox_http.get(url, headers=_sandbox_auth(sandbox)) as response:
        assert response.status == 200
    async with sandbox_http.get(f"{sandbox.url}/_sandbox/simplbooks/counters") as response:
        counters = await response.json()
    assert counters["rate_limited"] == 1


async def test_control_api_drives_the_simplbooks_hooks(
    sandbox: SandboxHandle, sandbox_http: aiohttp.ClientSession
) -> None:
    control = f"{sandbox.url}/_sandbox/simplbooks"
    base = sandbox.base_urls["simplbooks"]
    headers = _sandbox_auth(sandbox)
    async with sandbox_http.post(f"{control}/clients", json={"name": "Kontroll OÜ"}) as response:
        assert response.status == 201
        client_id = (await response.json())["Client"]["id"]
    async with sandbox_http.patch(
        f"{control}/clients/{client_id}", json={"phone": "+372 600 0000"}
    ) as response:
        assert response.status == 200
    async with sandbox_http.get(f"{base}/clients/get/{client_id}", headers=headers) as response:
        assert (await response.json())["data"]["Client"]["phone"] == "+372 600 0000"
    async with sandbox_http.post(
        f"{control}/invoices",
        json={"client_id": client_id, "Task": [{"name": "Rida", "price_per_unit": "80.00"}]},
    ) as response:
        assert response.status == 201
        invoice_id = (await response.json())["Invoice"]["id"]
    async with sandbox_http.post(
        f"{control}/invoices/{invoice_id}/payments", json={"amount": "99.20", "date": "2026-11-02"}
    ) as response:
        assert response.status == 201
        receipt = (await response.json())["Incoming"]
    async with sandbox_http.get(
        f"{base}/invoices/get_bound_receipts/{invoice_id}", headers=headers
    ) as response:
        assert (await response.json())["data"] == [receipt["id"]]
    async with sandbox_http.get(f"{base}/invoices/get/{invoice_id}", headers=headers) as response:
        header = (await response.json())["data"]["Invoice"]
    assert (header["total_sum"], header["paid"]) == (99.2, "2026-11-02")  # 80.00 + 24 %
    async with sandbox_http.post(f"{control}/clients/{client_id}/archive") as response:
        assert response.status == 400
    async with sandbox_http.delete(f"{control}/incomings/{receipt['id']}") as response:
        assert response.status == 200
    async with sandbox_http.delete(f"{control}/incomings/{receipt['id']}") as response:
        assert response.status == 404
    assert sandbox.counters("simplbooks").writes == 0  # control writes are not API writes


async def test_reseeding_through_control_gives_the_same_state(
    sandbox: SandboxHandle, sandbox_http: aiohttp.ClientSession
) -> None:
    states = []
    for _ in range(2):
        async with sandbox_http.post(f"{sandbox.url}/_sandbox/seed", json={"seed": 21}) as response:
            assert response.status == 200
        async with sandbox_http.get(f"{sandbox.url}/_sandbox/simplbooks/state") as response:
            states.append(await response.json())
    assert states[0] == states[1]
    assert states[0]["clients"]
