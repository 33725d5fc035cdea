"""The Simplicate emulator behaves like Simplicate API v2, quirks included.

Every HTTP test runs the full sandbox stack (``running_sandbox``: framework middleware for
auth, rate limits and faults, plus the control API) with a plain aiohttp client.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from syncd.sandbox.base import RateDecision, SandboxOptions, SeedContact, VendorSeed
from syncd.sandbox.seed import generate_world
from syncd.sandbox.simplicate import SimplicateEmulator, SimplicateQuirks
from syncd.sandbox.testing import running_sandbox

AUTH = {
    "Authentication-Key": "sandbox-simplicate-key",
    "Authentication-Secret": "sandbox-simplicate-secret",
}
START = dt.datetime(2026, 11, 20, 12, 0, 0, tzinfo=dt.UTC)  # 13:00:00 in Amsterdam (CET)


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def seed_for(options: SandboxOptions) -> VendorSeed:
    return generate_world(options)["simplicate"]


def make_emulator(
    options: SandboxOptions | None = None,
    clock: FakeClock | None = None,
    quirks: SimplicateQuirks | None = None,
) -> SimplicateEmulator:
    """An emulator outside any server, seeded like the sandbox seeds it."""
    options = options or SandboxOptions(rate_limits=False)
    emulator = SimplicateEmulator(options, clock or FakeClock(START), quirks=quirks)
    emulator.load_seed(seed_for(options))
    return emulator


@dataclass(frozen=True, slots=True)
class Raw:
    status: int
    text: str
    headers: CIMultiDictProxy[str]
    content_type: str

    def json(self) -> Any:
        return json.loads(self.text)


class Api:
    """A plain aiohttp client for the emulated Simplicate API (no syncd adapter code)."""

    def __init__(self, session: aiohttp.ClientSession, root: str, base_url: str) -> None:
        self.session = session
        self.root = root
        self.base_url = base_url

    async def raw(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Raw:
        async with self.session.request(
            method,
            self.base_url + path,
            json=body,
            data=data,
            params=params,
            headers=AUTH if headers is None else headers,
        ) as response:
            return Raw(
                response.status, await response.text(), response.headers, response.content_type
            )

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        raw = await self.raw(method, path, body=body, params=params, headers=headers)
        return raw.status, json.loads(raw.text, parse_float=Decimal)

    async def get_data(self, path: str, **params: Any) -> Any:
        status, payload = await self.call("GET", path, params=params or None)
        assert status == 200, payload
        return payload["data"]

    async def all_ids(self, path: str, **params: Any) -> list[str]:
        """Page to the end the way the docs say: offset/limit until a short page."""
        ids: list[str] = []
        offset = 0
        while True:
            page = await self.get_data(path, offset=offset, limit=100, **params)
            ids.extend(row["id"] for row in page)
            if len(page) < 100:
                return ids
            offset += 100

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.root + path, json=body) as response:
            return response.status, await response.json()


@asynccontextmanager
async def served(
    clock: FakeClock,
    options: SandboxOptions | None = None,
    quirks: SimplicateQuirks | None = None,
) -> AsyncIterator[tuple[SimplicateEmulator, Api]]:
    """The sandbox serving Simplicate only, and a client for it."""
    options = options or SandboxOptions(rate_limits=False, control=True)
    async with running_sandbox(options, vendors=("simplicate",), clock=clock) as handle:
        emulator = handle.emulators["simplicate"]
        assert isinstance(emulator, SimplicateEmulator)
        if quirks is not None:
            emulator.quirks = quirks
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            yield emulator, Api(session, handle.url, handle.base_urls["simplicate"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def stack(clock: FakeClock) -> AsyncIterator[tuple[SimplicateEmulator, Api]]:
    async with served(clock) as pair:
        yield pair


@pytest.fixture
def emulator(stack: tuple[SimplicateEmulator, Api]) -> SimplicateEmulator:
    return stack[0]


@pytest.fixture
def api(stack: tuple[SimplicateEmulator, Api]) -> Api:
    return stack[1]


def first_org(emulator: SimplicateEmulator) -> dict[str, Any]:
    orgs: list[dict[str, Any]] = emulator.dump()["organization"]
    return orgs[0]


def org_without_invoices(emulator: SimplicateEmulator) -> dict[str, Any]:
    debtors = {i["organization_id"] for i in emulator.dump()["invoice"]}
    return next(o for o in emulator.dump()["organization"] if o["id"] not in debtors)


def vat_class_id(emulator: SimplicateEmulator, percentage: int) -> str:
    return str(next(v["id"] for v in emulator.dump()["vatclass"] if v["percentage"] == percentage))


def status_id(emulator: SimplicateEmulator, name: str) -> str:
    return str(next(s["id"] for s in emulator.dump()["invoicestatus"] if s["name"] == name))


def new_invoice_body(emulator: SimplicateEmulator, org_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "date": "2026-11-20",
        "subject": "Consultancy",
        "invoice_lines": [
            {
                "description": "Advies",
                "amount": 2,
                "price": 100.5,
                "vat_class_id": vat_class_id(emulator, 21),
            },
            {
                "description": "Boek",
                "amount": 1,
                "price": "10.00",
                "vat_class_id": vat_class_id(emulator, 9),
            },
        ],
        **extra,
    }


# ---------------------------------------------------------------- auth


async def test_missing_or_wrong_credentials_get_401_in_the_envelope(
    api: Api, emulator: SimplicateEmulator
) -> None:
    cases: list[dict[str, str]] = [
        {},
        {"Authentication-Key": AUTH["Authentication-Key"]},
        {**AUTH, "Authentication-Secret": "wrong"},
        {**AUTH, "Authentication-Key": "wrong"},
    ]
    for headers in cases:
        response = await api.raw("GET", "/crm/organization", headers=headers)
        assert response.status == 401
        assert response.content_type == "application/json"
        body = response.json()
        assert body["data"] is None and body["debug"] is None
        assert isinstance(body["errors"], list) and body["errors"]
        assert "sandbox-simplicate" not in response.text
    assert emulator.counters.auth_failures == len(cases)


async def test_credentials_come_from_options_when_configured(clock: FakeClock) -> None:
    options = SandboxOptions(
        rate_limits=False, credentials={"simplicate": {"key": "k1", "secret": "s1"}}
    )
    async with served(clock, options) as (_, api):
        ok = await api.raw(
            "GET",
            "/crm/person",
            headers={"Authentication-Key": "k1", "Authentication-Secret": "s1"},
        )
        assert ok.status == 200
        default = await api.raw("GET", "/crm/person")
        assert default.status == 401


async def test_api_level_errors_can_be_plain_text(clock: FakeClock) -> None:
    quirks = SimplicateQuirks(plain_text_api_errors=True)
    async with served(clock, quirks=quirks) as (_, api):
        response = await api.raw("GET", "/crm/person", headers={})
        assert response.status == 401
        assert response.content_type == "text/plain"


# ---------------------------------------------------------------- envelope and paging


async def test_list_envelope_has_null_errors_and_debug_and_metadata_only_on_request(
    api: Api,
) -> None:
    status, payload = await api.call("GET", "/crm/organization")
    assert status == 200
    assert set(payload) == {"data", "errors", "debug"}
    assert payload["errors"] is None and payload["debug"] is None
    status, payload = await api.call(
        "GET", "/crm/organization", params={"metadata": "count,offset,limit"}
    )
    assert payload["metadata"] == {"count": len(payload["data"]), "offset": 0, "limit": 100}


async def test_paging_to_the_end_with_offset_and_limit_and_a_capped_maximum(
    api: Api, emulator: SimplicateEmulator
) -> None:
    seeded = len(emulator.dump()["organization"])
    for n in range(250 - seeded):
        emulator.create("organization", {"name": f"Extra {n:03d} B.V."})
    ids = await api.all_ids("/crm/organization")
    assert len(ids) == 250 == len(set(ids))

    default_page = await api.get_data("/crm/organization")
    assert len(default_page) == 100  # the default page is 100, not the swagger's 5
    capped = await api.get_data("/crm/organization", limit=500)
    assert len(capped) == 100
    _, payload = await api.call(
        "GET",
        "/crm/organization",
        params={"offset": 200, "limit": 100, "metadata": "count,limit,offset"},
    )
    assert len(payload["data"]) == 50
    assert payload["metadata"] == {"count": 250, "offset": 200, "limit": 100}
    past_end = await api.get_data("/crm/organization", offset=250)
    assert past_end == []
    small = await api.get_data("/crm/organization", limit=7, offset=3)
    assert [r["id"] for r in small] == ids[3:10]


async def test_bad_paging_parameters_get_400(api: Api) -> None:
    for params in ({"limit": "abc"}, {"offset": "-1"}):
        status, payload = await api.call("GET", "/crm/organization", params=params)
        assert status == 400
        assert payload["data"] is None and payload["errors"]


async def test_json_suffix_is_accepted_on_collections_and_items(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = first_org(emulator)
    listed = await api.get_data("/crm/organization.json")
    assert org["id"] in [r["id"] for r in listed]
    item = await api.get_data(f"/crm/organization/{org['id']}.json")
    assert item["id"] == org["id"]


# ---------------------------------------------------------------- filters, sort, select


async def test_exact_filter_is_case_insensitive_and_wildcards_match(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = first_org(emulator)
    exact = await api.get_data("/crm/organization", **{"q[name]": org["name"].upper()})
    assert [r["id"] for r in exact] == [org["id"]]
    word = org["name"].split()[0]
    wild = await api.get_data("/crm/organization", **{"q[name]": f"*{word[1:].lower()}*"})
    assert org["id"] in [r["id"] for r in wild]
    assert all(word[1:].lower() in r["name"].lower() for r in wild)
    suffix = await api.get_data("/crm/organization", **{"q[email]": "*" + org["email"][-6:]})
    assert org["id"] in [r["id"] for r in suffix]


async def test_case_sensitive_filters_when_the_quirk_is_off(
    api: Api, emulator: SimplicateEmulator
) -> None:
    emulator.quirks = SimplicateQuirks(case_insensitive_filters=False)
    org = first_org(emulator)
    upper = await api.get_data("/crm/organization", **{"q[name]": org["name"].upper()})
    assert upper == []
    exact = await api.get_data("/crm/organization", **{"q[name]": org["name"]})
    assert [r["id"] for r in exact] == [org["id"]]


async def test_null_and_not_null_filters(api: Api, emulator: SimplicateEmulator) -> None:
    orgs = emulator.dump()["organization"]
    without_iban = {o["id"] for o in orgs if not o["bank_account"]}
    with_iban = {o["id"] for o in orgs if o["bank_account"]}
    assert without_iban and with_iban
    nulls = await api.get_data("/crm/organization", **{"q[bank_account]": "null"})
    assert {r["id"] for r in nulls} == without_iban
    present = await api.get_data("/crm/organization", **{"q[bank_account]": "*"})
    assert {r["id"] for r in present} == with_iban


async def test_or_lists_on_one_field_and_q_or_across_fields(
    api: Api, emulator: SimplicateEmulator
) -> None:
    a, b, c = emulator.dump()["organization"][:3]
    params = [("q[name][]", a["name"]), ("q[name][]", b["name"])]
    status, payload = await api.call("GET", "/crm/organization", params=params)
    assert status == 200
    assert {r["id"] for r in payload["data"]} == {a["id"], b["id"]}
    # Different fields are AND-ed ...
    status, payload = await api.call(
        "GET",
        "/crm/organization",
        params=[("q[name]", a["name"]), ("q[relation_number]", b["relation_number"])],
    )
    assert status == 200 and payload["data"] == []
    # ... unless one of them is q[or][...].
    _, payload = await api.call(
        "GET",
        "/crm/organization",
        params=[("q[name]", a["name"]), ("q[or][relation_number]", c["relation_number"])],
    )
    assert {r["id"] for r in payload["data"]} == {a["id"], c["id"]}


async def test_updated_at_filters_compare_zone_less_amsterdam_time(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    org = first_org(emulator)
    emulator.mutate("organization", org["id"], {"note": "called"})
    changed = await api.get_data(f"/crm/organization/{org['id']}")
    assert changed["updated_at"] == "2026-11-20 13:00:00"  # 12:00 UTC is 13:00 in Amsterdam
    hits = await api.get_data("/crm/organization", **{"q[updated_at][ge]": "2026-11-20 13:00:00"})
    assert [r["id"] for r in hits] == [org["id"]]
    utc_text = await api.get_data(
        "/crm/organization", **{"q[updated_at][ge]": "2026-11-20 12:30:00"}
    )
    assert [r["id"] for r in utc_text] == [org["id"]]  # a UTC cursor overlaps by an hour here
    assert (
        await api.get_data("/crm/organization", **{"q[updated_at][gt]": "2026-11-20 13:00:00"})
        == []
    )
    older = await api.get_data("/crm/organization", **{"q[updated_at][lt]": "2026-11-20 13:00:00"})
    assert org["id"] not in [r["id"] for r in older]
    upto = await api.get_data("/crm/organization", **{"q[updated_at][le]": "2026-11-20 13:00:00"})
    assert len(upto) == len(emulator.dump()["organization"])


async def test_a_range_needs_both_bounds_and_dates_without_time_are_midnight(
    api: Api, emulator: SimplicateEmulator
) -> None:
    invoices = emulator.dump()["invoice"]
    dates = sorted(i["date"] for i in invoices)
    low, high = dates[1], dates[-2]
    _, payload = await api.call(
        "GET",
        "/invoices/invoice",
        params=[("q[date][ge]", low), ("q[date][lt]", high)],
    )
    expected = {i["id"] for i in invoices if low <= i["date"] < high}
    assert {r["id"] for r in payload["data"]} == expected


async def test_unparseable_timestamp_filter_gets_400(api: Api) -> None:
    status, payload = await api.call(
        "GET", "/crm/organization", params={"q[updated_at][ge]": "yesterday"}
    )
    assert status == 400 and payload["errors"]


async def test_nested_and_list_filters(api: Api, emulator: SimplicateEmulator) -> None:
    dump = emulator.dump()
    invoice = dump["invoice"][0]
    org_name = invoice["organization"]["name"]
    by_org = await api.get_data("/invoices/invoice", **{"q[organization.name]": org_name})
    assert invoice["id"] in [r["id"] for r in by_org]
    assert all(r["organization"]["name"] == org_name for r in by_org)
    link = dump["contactperson"][0]
    linked = await api.get_data(
        "/crm/organization", **{"q[linked_persons_contacts.person_id]": link["person_id"]}
    )
    assert [r["id"] for r in linked] == [link["organization"]["id"]]
    by_status = await api.get_data("/invoices/invoice", **{"q[status.name]": "Paid"})
    assert {r["id"] for r in by_status} == {
        i["id"] for i in dump["invoice"] if i["status"]["name"] == "Paid"
    }


async def test_number_and_boolean_filters(api: Api, emulator: SimplicateEmulator) -> None:
    dump = emulator.dump()
    open_ids = {i["id"] for i in dump["invoice"] if i["total_outstanding"] > 0}
    outstanding = await api.get_data("/invoices/invoice", **{"q[total_outstanding][gt]": "0"})
    assert {r["id"] for r in outstanding} == open_ids
    org = first_org(emulator)
    emulator.archive("organization", org["id"])
    inactive = await api.get_data("/crm/organization", **{"q[is_active]": "false"})
    assert [r["id"] for r in inactive] == [org["id"]]
    also = await api.get_data("/crm/organization", **{"q[is_active]": "0"})
    assert [r["id"] for r in also] == [org["id"]]


async def test_natural_key_lookups_used_after_an_uncertain_create(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = first_org(emulator)
    found = await api.get_data(
        "/crm/organization", **{"q[relation_number]": org["relation_number"]}
    )
    assert [r["id"] for r in found] == [org["id"]]
    body = new_invoice_body(emulator, org["id"], reference="syncd-token-1")
    _, payload = await api.call("POST", "/invoices/invoice", body=body)
    by_ref = await api.get_data("/invoices/invoice", **{"q[reference]": "syncd-token-1"})
    assert [r["id"] for r in by_ref] == [payload["data"]["id"]]


async def test_sort_ascending_and_descending(api: Api, emulator: SimplicateEmulator) -> None:
    names = [o["name"] for o in emulator.dump()["organization"]]
    ascending = await api.get_data("/crm/organization", sort="name")
    assert [r["name"] for r in ascending] == sorted(names, key=str.casefold)
    newest_first = await api.get_data("/crm/organization", sort="-updated_at")
    stamps = [r["updated_at"] for r in newest_first]
    assert stamps == sorted(stamps, reverse=True)


async def test_select_returns_chosen_fields_and_nested_objects_with_a_dot(
    api: Api, emulator: SimplicateEmulator
) -> None:
    rows = await api.get_data("/crm/organization", select="name,visiting_address.")
    with_address = next(r for r in rows if "visiting_address" in r)
    assert set(with_address) == {"id", "name", "visiting_address"}
    assert with_address["visiting_address"]["country_code"]
    bare = await api.get_data("/crm/organization", select="name,visiting_address")
    assert all(set(r) <= {"id", "name"} for r in bare)
    child = await api.get_data("/crm/organization", select="visiting_address.locality")
    assert all(set(r.get("visiting_address", {})) <= {"locality"} for r in child)


# ---------------------------------------------------------------- shapes


async def test_empty_fields_are_left_out_unless_the_quirk_is_off(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = first_org(emulator)
    record = await api.get_data(f"/crm/organization/{org['id']}")
    assert org["note"] is None and "note" not in record
    emulator.quirks = SimplicateQuirks(omit_empty_fields=False)
    raw = await api.get_data(f"/crm/organization/{org['id']}")
    assert "note" in raw and raw["note"] is None


async def test_invoice_shape_status_object_payment_term_and_float_totals(
    api: Api, emulator: SimplicateEmulator
) -> None:
    invoice = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Sent")
    response = await api.raw("GET", f"/invoices/invoice/{invoice['id']}")
    raw = response.json()  # plain floats, as a naive client sees them
    data = raw["data"]
    assert set(data["status"]) == {"id", "name"} and data["status"]["id"].startswith(
        "invoicestatus:"
    )
    assert set(data["payment_term"]) == {"name", "days", "method"}
    assert "due_date" not in data and "currency" not in data
    assert isinstance(data["total_including_vat"], float)
    assert isinstance(data["invoice_lines"][0]["price"], float)
    assert data["invoice_lines"][0]["vat_class"]["percentage"] in (21.0, 22.0, 9.0, 0.0)
    assert data["created_at"][10] == " " and len(data["updated_at"]) == 19


async def test_person_address_is_an_object_or_a_list_by_quirk(
    api: Api, emulator: SimplicateEmulator
) -> None:
    person = next(p for p in emulator.dump()["person"] if p["address"])
    for as_list in (False, True):
        emulator.quirks = SimplicateQuirks(person_address_as_list=as_list)
        data = await api.get_data(f"/crm/person/{person['id']}")
        assert isinstance(data["address"], list) is as_list
        assert data["date_of_birth"] == "0000-00-00"
        names = (data.get("first_name"), data.get("family_name_prefix"), data["family_name"])
        assert data["full_name"] == " ".join(p for p in names if p)


async def test_unknown_id_gets_404_and_a_malformed_one_422(api: Api) -> None:
    status, payload = await api.call("GET", "/crm/organization/organization:" + "0" * 32)
    assert status == 404
    assert payload == {"data": None, "errors": ["Entity not found"], "debug": None}
    status, payload = await api.call("GET", "/crm/organization/person:abc")
    assert status == 422 and payload["errors"]
    for method in ("PUT", "DELETE"):
        status, payload = await api.call(
            method, "/crm/person/person:" + "0" * 32, body={"email": "x@example.nl"}
        )
        assert status == 404 and payload["errors"] == ["Entity not found"]


# ---------------------------------------------------------------- CRM writes


async def test_create_organization_returns_only_the_id_and_counts_a_write(
    api: Api, emulator: SimplicateEmulator
) -> None:
    body = {
        "name": "Nieuw B.V.",
        "email": "info@nieuw.nl",
        "coc_code": "12345678",
        "visiting_address": {
            "line_1": "Kerkstraat 1",
            "postal_code": "1011 AA",
            "locality": "Amsterdam",
            "country_code": "nl",
        },
        "website": "ignored: the field is called url",
    }
    status, payload = await api.call("POST", "/crm/organization", body=body)
    assert status == 200
    assert set(payload) == {"data", "errors", "debug"}
    assert set(payload["data"]) == {"id"} and payload["data"]["id"].startswith("organization:")
    assert emulator.counters.writes == 1
    record = await api.get_data(f"/crm/organization/{payload['data']['id']}")
    assert record["name"] == "Nieuw B.V." and record["is_active"] is True
    assert record["visiting_address"]["country_code"] == "NL"
    assert record["visiting_address"]["country"] == "Nederland"
    assert "url" not in record and "website" not in record
    assert record["created_at"] == record["updated_at"] == "2026-11-20 13:00:00"


async def test_create_validation_errors_use_the_vendor_envelope(
    api: Api, emulator: SimplicateEmulator
) -> None:
    cases: list[tuple[str, Any, str | None]] = [
        ("/crm/organization", {"email": "x@y.nl"}, None),
        ("/crm/organization", {"name": ["not", "a", "string"]}, None),
        ("/crm/organization", {"name": "X", "is_active": "yes"}, None),
        (
            "/crm/organization",
            {"name": "X", "visiting_address": {"line_1": "Dam 1"}},
            "No country code given in the visiting_address property",
        ),
        ("/crm/person", {"first_name": "Jan"}, None),
        ("/crm/person", {"family_name": "Jansen", "gender": "Robot"}, None),
        ("/crm/organization", [1, 2], None),
    ]
    for path, body, message in cases:
        status, payload = await api.call("POST", path, body=body)
        assert status == 400, (path, body)
        assert payload["data"] is None and payload["debug"] is None
        assert len(payload["errors"]) == 1 and isinstance(payload["errors"][0], str)
        if message:
            assert payload["errors"] == [message]
    response = await api.raw("POST", "/crm/organization", data=b"{nope")
    assert response.status == 400
    assert emulator.counters.writes == 0
    assert len(emulator.dump()["organization"]) == len(make_emulator().dump()["organization"])


async def test_put_is_a_partial_update_that_bumps_updated_at_only_on_change(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    org = first_org(emulator)
    clock.advance(3600)
    status, payload = await api.call(
        "PUT", f"/crm/organization/{org['id']}", body={"email": "new@example.nl"}
    )
    assert status == 200 and payload["data"] == {"id": org["id"]}
    record = await api.get_data(f"/crm/organization/{org['id']}")
    assert record["email"] == "new@example.nl" and record["name"] == org["name"]
    assert record["updated_at"] == "2026-11-20 14:00:00"
    clock.advance(60)
    await api.call("PUT", f"/crm/organization/{org['id']}", body={"email": "new@example.nl"})
    again = await api.get_data(f"/crm/organization/{org['id']}")
    assert again["updated_at"] == "2026-11-20 14:00:00"
    assert emulator.counters.writes == 2


async def test_address_put_merges_into_the_existing_address(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = next(o for o in emulator.dump()["organization"] if o["visiting_address"])
    await api.call(
        "PUT",
        f"/crm/organization/{org['id']}",
        body={"visiting_address": {"locality": "Utrecht"}},
    )
    record = await api.get_data(f"/crm/organization/{org['id']}")
    assert record["visiting_address"]["locality"] == "Utrecht"
    assert record["visiting_address"]["line_1"] == org["visiting_address"]["line_1"]
    assert record["visiting_address"]["id"] == org["visiting_address"]["id"]


async def test_archiving_is_is_active_false_through_put(
    api: Api, emulator: SimplicateEmulator
) -> None:
    person = emulator.dump()["person"][0]
    status, _ = await api.call("PUT", f"/crm/person/{person['id']}", body={"is_active": False})
    assert status == 200
    record = await api.get_data(f"/crm/person/{person['id']}")
    assert record["is_active"] is False


async def test_delete_organization_leaves_no_trace_and_refuses_debtors(
    api: Api, emulator: SimplicateEmulator
) -> None:
    free = org_without_invoices(emulator)
    status, payload = await api.call("DELETE", f"/crm/organization/{free['id']}")
    assert status == 200 and payload == {"data": None, "errors": None, "debug": None}
    status, _ = await api.call("GET", f"/crm/organization/{free['id']}")
    assert status == 404
    assert free["id"] not in await api.all_ids("/crm/organization")
    status, _ = await api.call("DELETE", f"/crm/organization/{free['id']}")
    assert status == 404
    debtor = emulator.dump()["invoice"][0]["organization_id"]
    debtor = debtor or next(
        i["organization_id"] for i in emulator.dump()["invoice"] if i["organization_id"]
    )
    status, payload = await api.call("DELETE", f"/crm/organization/{debtor}")
    assert status == 400 and payload["errors"]
    assert emulator.counters.writes == 1


async def test_person_links_create_contact_persons_and_delete_removes_them(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    org = org_without_invoices(emulator)
    clock.advance(10)
    body = {
        "first_name": "Jan",
        "family_name_prefix": "van der",
        "family_name": "Berg",
        "email": "jan@example.nl",
        "address": {"line_1": "Dorpsstraat 2", "country_code": "NL"},
        "linked_as_contact_to_organization": [
            {"organization_id": org["id"], "work_function": "Inkoper", "work_email": "jan@org.nl"}
        ],
    }
    status, payload = await api.call("POST", "/crm/person", body=body)
    assert status == 200
    person_id = payload["data"]["id"]
    person = await api.get_data(f"/crm/person/{person_id}")
    assert person["full_name"] == "Jan van der Berg"
    (link,) = person["linked_as_contact_to_organization"]
    assert link["organization_id"] == org["id"] and link["work_function"] == "Inkoper"
    organization = await api.get_data(f"/crm/organization/{org['id']}")
    assert {
        "person_id": person_id,
        "is_active": True,
        "work_function": "Inkoper",
        "work_email": "jan@org.nl",
    } in organization["linked_persons_contacts"]
    assert organization["updated_at"] == "2026-11-20 13:00:10"
    contacts = await api.get_data("/crm/contactperson", **{"q[person_id]": person_id})
    assert [c["id"] for c in contacts] == [link["id"]]
    assert contacts[0]["organization"]["id"] == org["id"]
    assert contacts[0]["person"]["full_name"] == "Jan van der Berg"
    status, _ = await api.call("DELETE", f"/crm/contactperson/{link['id']}")
    assert status == 200
    person = await api.get_data(f"/crm/person/{person_id}")
    assert person["linked_as_contact_to_organization"] == []
    status, payload = await api.call(
        "POST",
        "/crm/person",
        body={
            "family_name": "X",
            "linked_as_contact_to_organization": [{"organization_id": "organization:nope"}],
        },
    )
    assert status == 400


async def test_contact_persons_cannot_be_created_or_changed_through_the_api(
    api: Api, emulator: SimplicateEmulator
) -> None:
    link = emulator.dump()["contactperson"][0]
    response = await api.raw("POST", "/crm/contactperson", body={})
    assert response.status == 405
    response = await api.raw("PUT", f"/crm/contactperson/{link['id']}", body={})
    assert response.status == 405


# ---------------------------------------------------------------- invoices


async def test_create_concept_invoice_has_no_number_and_computed_totals(
    api: Api, emulator: SimplicateEmulator
) -> None:
    org = first_org(emulator)
    status, payload = await api.call(
        "POST", "/invoices/invoice", body=new_invoice_body(emulator, org["id"])
    )
    assert status == 200 and set(payload["data"]) == {"id"}
    invoice = await api.get_data(f"/invoices/invoice/{payload['data']['id']}")
    assert invoice["status"]["name"] == "Concept"
    assert "invoice_number" not in invoice
    assert invoice["total_excluding_vat"] == Decimal("211.0")
    assert invoice["total_vat"] == Decimal("43.11")  # 201.00 x 21% + 10.00 x 9%
    assert invoice["total_including_vat"] == Decimal("254.11")
    assert invoice["total_outstanding"] == Decimal("254.11")
    assert invoice["payment_term"]["days"] == 14
    assert invoice["organization"]["name"] == org["name"]
    assert [line["amount"] for line in invoice["invoice_lines"]] == [Decimal("2.0"), Decimal("1.0")]


async def test_invoice_created_as_sent_gets_the_next_number(
    api: Api, emulator: SimplicateEmulator
) -> None:
    numbers = sorted(i["invoice_number"] for i in emulator.dump()["invoice"] if i["invoice_number"])
    body = new_invoice_body(
        emulator, first_org(emulator)["id"], status_id=status_id(emulator, "Sent")
    )
    _, payload = await api.call("POST", "/invoices/invoice", body=body)
    invoice = await api.get_data(f"/invoices/invoice/{payload['data']['id']}")
    prefix, _, last = numbers[-1].rpartition("-")
    assert invoice["invoice_number"] == f"{prefix}-{int(last) + 1:0{len(last)}d}"
    assert invoice["status"]["name"] == "Sent"


async def test_invoice_create_errors(api: Api, emulator: SimplicateEmulator) -> None:
    org_id = first_org(emulator)["id"]
    good = new_invoice_body(emulator, org_id)
    no_vat = json.loads(json.dumps(good))
    del no_vat["invoice_lines"][0]["vat_class_id"]
    bad_amount = json.loads(json.dumps(good))
    bad_amount["invoice_lines"][0]["amount"] = "two"
    cases: list[tuple[dict[str, Any], int]] = [
        ({**good, "organization_id": "organization:" + "f" * 32}, 404),
        ({k: v for k, v in good.items() if k != "organization_id"}, 400),
        ({**good, "person_id": emulator.dump()["person"][0]["id"]}, 400),
        ({**good, "status_id": "invoicestatus:nope"}, 404),
        (no_vat, 400),
        (bad_amount, 400),
        ({**good, "date": "20-11-2026"}, 400),
    ]
    for body, expected in cases:
        status, payload = await api.call("POST", "/invoices/invoice", body=body)
        assert status == expected, body
        assert payload["data"] is None and payload["errors"]
    assert emulator.counters.writes == 0


async def test_invoice_put_changes_header_fields_and_ignores_lines_and_status(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    status, payload = await api.call(
        "POST",
        "/invoices/invoice",
        body=new_invoice_body(emulator, first_org(emulator)["id"]),
    )
    invoice_id = payload["data"]["id"]
    clock.advance(5)
    body = {
        "subject": "Nieuw onderwerp",
        "reference": "PO-1",
        "status_id": status_id(emulator, "Sent"),
        "invoice_lines": [],
    }
    status, payload = await api.call("PUT", f"/invoices/invoice/{invoice_id}", body=body)
    assert status == 200 and payload["data"] == {"id": invoice_id}
    invoice = await api.get_data(f"/invoices/invoice/{invoice_id}")
    assert invoice["subject"] == "Nieuw onderwerp" and invoice["reference"] == "PO-1"
    assert invoice["status"]["name"] == "Concept" and len(invoice["invoice_lines"]) == 2
    assert invoice["updated_at"] == "2026-11-20 13:00:05"


async def test_invoice_put_applies_lines_and_status_when_the_quirk_is_off(
    api: Api, emulator: SimplicateEmulator
) -> None:
    emulator.quirks = SimplicateQuirks(invoice_put_ignores_lines_and_status=False)
    body = new_invoice_body(emulator, first_org(emulator)["id"])
    _, payload = await api.call("POST", "/invoices/invoice", body=body)
    invoice_id = payload["data"]["id"]
    update = {"status_id": status_id(emulator, "Sent"), "invoice_lines": body["invoice_lines"][:1]}
    status, _ = await api.call("PUT", f"/invoices/invoice/{invoice_id}", body=update)
    invoice = await api.get_data(f"/invoices/invoice/{invoice_id}")
    assert status == 200
    assert invoice["status"]["name"] == "Sent" and len(invoice["invoice_lines"]) == 1
    assert invoice["invoice_number"]


async def test_sent_invoices_cannot_be_changed_or_deleted_but_concepts_can_be_deleted(
    api: Api, emulator: SimplicateEmulator
) -> None:
    sent = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Sent")
    status, payload = await api.call(
        "PUT", f"/invoices/invoice/{sent['id']}", body={"subject": "x"}
    )
    assert status == 400 and payload["errors"]
    status, payload = await api.call("DELETE", f"/invoices/invoice/{sent['id']}")
    assert status == 400 and payload["errors"]
    concept = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Concept")
    status, payload = await api.call("DELETE", f"/invoices/invoice/{concept['id']}")
    assert status == 200 and payload["data"] is None
    assert concept["id"] not in await api.all_ids("/invoices/invoice")


# ---------------------------------------------------------------- payments


async def test_payments_reduce_outstanding_and_a_full_payment_marks_paid(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    sent = next(
        i
        for i in emulator.dump()["invoice"]
        if i["status"]["name"] == "Sent" and i["total_outstanding"] > 10
    )
    clock.advance(30)
    body = {"invoice_id": sent["id"], "amount": 10.0, "date": "2026-11-20", "description": "Deel"}
    status, payload = await api.call("POST", "/invoices/payment", body=body)
    assert status == 200 and payload["data"]["id"].startswith("payment:")
    first_payment = payload["data"]["id"]
    invoice = await api.get_data(f"/invoices/invoice/{sent['id']}")
    assert invoice["total_outstanding"] == sent["total_outstanding"] - 10
    assert invoice["status"]["name"] == "Sent"
    assert invoice["updated_at"] == "2026-11-20 13:00:30"
    rest = str(invoice["total_outstanding"])
    await api.call(
        "POST",
        "/invoices/payment",
        body={"invoice_id": sent["id"], "amount": rest, "date": "2026-11-21"},
    )
    invoice = await api.get_data(f"/invoices/invoice/{sent['id']}")
    assert invoice["status"]["name"] == "Paid"
    assert "total_outstanding" in invoice and invoice["total_outstanding"] == 0
    payments = await api.get_data("/invoices/payment", **{"q[invoice_id]": sent["id"]})
    assert first_payment in [p["id"] for p in payments]
    assert set(payments[-1]) == {"id", "invoice_id", "date", "amount"}
    # Lowering a payment re-opens the invoice; payments have no DELETE.
    status, _ = await api.call("PUT", f"/invoices/payment/{first_payment}", body={"amount": 5})
    assert status == 200
    invoice = await api.get_data(f"/invoices/invoice/{sent['id']}")
    assert invoice["status"]["name"] == "Sent" and invoice["total_outstanding"] == 5
    response = await api.raw("DELETE", f"/invoices/payment/{first_payment}")
    assert response.status == 405
    assert emulator.counters.writes == 3


async def test_payment_errors(api: Api, emulator: SimplicateEmulator) -> None:
    concept = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Concept")
    sent = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Sent")
    cases: list[tuple[dict[str, Any], int]] = [
        ({"amount": 1}, 400),
        ({"invoice_id": "invoice:" + "a" * 32, "amount": 1}, 404),
        ({"invoice_id": sent["id"]}, 400),
        ({"invoice_id": sent["id"], "amount": True}, 400),
        ({"invoice_id": concept["id"], "amount": 1}, 400),
    ]
    for body, expected in cases:
        status, payload = await api.call("POST", "/invoices/payment", body=body)
        assert status == expected, body
        assert payload["errors"]


async def test_lookup_endpoints_list_statuses_vat_classes_terms_and_profiles(
    api: Api,
) -> None:
    statuses = await api.get_data("/invoices/invoicestatus")
    assert [s["name"] for s in statuses] == ["Concept", "Sent", "Overdue", "Paid"]
    assert all(set(s) == {"id", "name", "color"} for s in statuses)
    vat = await api.get_data("/invoices/vatclass")
    assert {Decimal(21), Decimal(9), Decimal(0)} <= {v["percentage"] for v in vat}
    one = await api.get_data(f"/invoices/vatclass/{vat[0]['id']}")
    assert one == vat[0]
    terms = await api.get_data("/invoices/paymentterm")
    assert all(set(t) == {"id", "name", "days", "method"} for t in terms)
    profiles = await api.get_data("/crm/myorganizationprofile")
    assert len(profiles) == 1 and profiles[0]["id"].startswith("myorganizationprofile:")


# ---------------------------------------------------------------- quirks around new records


async def test_new_records_can_lack_updated_at_so_created_at_must_be_queried(
    api: Api, emulator: SimplicateEmulator
) -> None:
    emulator.quirks = SimplicateQuirks(new_records_lack_updated_at=True)
    _, payload = await api.call("POST", "/crm/organization", body={"name": "Stil B.V."})
    new_id = payload["data"]["id"]
    record = await api.get_data(f"/crm/organization/{new_id}")
    assert "updated_at" not in record
    since = "2026-11-20 00:00:00"
    by_updated = await api.get_data("/crm/organization", **{"q[updated_at][ge]": since})
    assert new_id not in [r["id"] for r in by_updated]
    by_created = await api.get_data("/crm/organization", **{"q[created_at][ge]": since})
    assert [r["id"] for r in by_created] == [new_id]


# ---------------------------------------------------------------- rate limit and errors


async def test_the_61st_request_in_a_minute_gets_simplicates_429(clock: FakeClock) -> None:
    # A scaled window: 60 requests per second instead of per minute.
    options = SandboxOptions(rate_limits=True, rate_scale=60.0, control=True)
    async with served(clock, options) as (emulator, api):
        for _ in range(60):
            response = await api.raw("GET", "/invoices/invoicestatus")
            assert response.status == 200
        limited = await api.raw("GET", "/invoices/invoicestatus")
        assert limited.status == 429
        assert limited.json() == {"data": None, "errors": ["Too Many Requests"], "debug": None}
        assert "Retry-After" not in limited.headers  # none documented
        assert emulator.counters.rate_limited == 1
        clock.advance(1.0)
        again = await api.raw("GET", "/invoices/invoicestatus")
        assert again.status == 200
        emulator.quirks = SimplicateQuirks(retry_after_header=True)
        for _ in range(60):
            await api.raw("GET", "/invoices/invoicestatus")
        with_header = await api.raw("GET", "/invoices/invoicestatus")
        assert with_header.status == 429 and with_header.headers["Retry-After"] == "1"


def test_rate_window_is_60_per_minute_and_retry_after_is_optional(
    emulator: SimplicateEmulator,
) -> None:
    windows = emulator.default_rate_windows
    assert [(w.requests, w.per_seconds) for w in windows] == [(60, 60.0)]
    decision = RateDecision(
        allowed=False, limit=60, remaining=0, reset_seconds=12.2, window_seconds=60.0
    )
    assert "Retry-After" not in emulator.rate_limited_response(decision).headers
    emulator.quirks = dataclasses.replace(emulator.quirks, retry_after_header=True)
    assert emulator.rate_limited_response(decision).headers["Retry-After"] == "13"


def test_server_errors_use_the_envelope_and_maintenance_is_a_503_page(
    emulator: SimplicateEmulator,
) -> None:
    error = emulator.server_error_response(500)
    assert error.status == 500 and error.text is not None
    assert json.loads(error.text)["errors"] and json.loads(error.text)["data"] is None
    assert emulator.server_error_response(503).status == 503


# ---------------------------------------------------------------- determinism and control hooks


def test_the_same_seed_gives_the_same_dump_and_another_seed_other_ids() -> None:
    one = make_emulator(SandboxOptions(seed=7, rate_limits=False))
    two = make_emulator(SandboxOptions(seed=7, rate_limits=False))
    assert one.dump() == two.dump()
    one.create("organization", {"name": "A"})
    two.create("organization", {"name": "A"})
    assert one.dump() == two.dump()
    other = make_emulator(SandboxOptions(seed=8, rate_limits=False))
    assert {o["id"] for o in other.dump()["organization"]}.isdisjoint(
        {o["id"] for o in one.dump()["organization"]}
    )


def test_seed_is_converted_to_simplicate_shapes(emulator: SimplicateEmulator) -> None:
    seed = seed_for(SandboxOptions(rate_limits=False))
    dump = emulator.dump()
    orgs = [c for c in seed.contacts if c.kind == "organization"]
    assert len(dump["organization"]) == len(orgs)
    assert len(dump["person"]) == len(seed.contacts) - len(orgs)
    assert len(dump["invoice"]) == len([i for i in seed.invoices if i.status != "cancelled"])
    source = orgs[0]
    org = next(o for o in dump["organization"] if o["name"] == source.name)
    assert org["coc_code"] == source.coc_number and org["relation_number"] == source.customer_number
    seeded_invoice = next(i for i in seed.invoices if i.number and i.status == "sent")
    invoice = next(i for i in dump["invoice"] if i["invoice_number"] == seeded_invoice.number)
    assert (
        invoice["payment_term"]["days"]
        == (seeded_invoice.due_date - seeded_invoice.issue_date).days
    )
    assert all(
        i["id"].count(":") == 1 and len(i["id"].split(":")[1]) == 32 for i in dump["invoice"]
    )


def test_seeded_utc_times_show_as_amsterdam_wall_clock_time() -> None:
    def contact(key: str, created: dt.datetime, updated: dt.datetime) -> SeedContact:
        return SeedContact(
            key=key,
            kind="organization",
            name=f"Org {key}",
            first_name=None,
            last_name=None,
            email=None,
            phone=None,
            website=None,
            address=None,
            postal_code=None,
            city=None,
            country="NL",
            vat_number=None,
            coc_number=None,
            iban=None,
            bic=None,
            customer_number=None,
            created_at=created,
            updated_at=updated,
        )

    utc = dt.UTC
    seed = VendorSeed(
        contacts=(
            contact(
                "w",
                dt.datetime(2026, 1, 15, 10, 0, tzinfo=utc),
                dt.datetime(2026, 7, 1, 10, 0, 0, 900, tzinfo=utc),
            ),
            # The autumn change: two UTC instants an hour apart read the same local time.
            contact(
                "a",
                dt.datetime(2026, 10, 25, 0, 30, tzinfo=utc),
                dt.datetime(2026, 10, 25, 0, 30, tzinfo=utc),
            ),
            contact(
                "b",
                dt.datetime(2026, 10, 25, 1, 30, tzinfo=utc),
                dt.datetime(2026, 10, 25, 1, 30, tzinfo=utc),
            ),
        ),
        invoices=(),
    )
    emulator = SimplicateEmulator(SandboxOptions(), FakeClock(START))
    emulator.load_seed(seed)
    winter, first, second = emulator.dump()["organization"]
    assert winter["created_at"] == "2026-01-15 11:00:00"
    assert winter["updated_at"] == "2026-07-01 12:00:00"
    assert first["updated_at"] == second["updated_at"] == "2026-10-25 02:30:00"


def test_mutate_changes_a_record_and_moves_updated_at(
    emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    org = first_org(emulator)
    clock.advance(120)
    changed = emulator.mutate("organization", org["id"], {"name": "Hernoemd B.V."})
    assert changed["name"] == "Hernoemd B.V."
    assert changed["updated_at"] == "2026-11-20 13:02:00"
    clock.advance(60)
    same = emulator.mutate("organization", org["id"], {"name": "Hernoemd B.V."})
    assert same["updated_at"] == "2026-11-20 13:03:00"  # a save in the web app stamps anyway
    assert emulator.counters.writes == 0
    with pytest.raises(KeyError):
        emulator.mutate("organization", "organization:" + "0" * 32, {"name": "x"})
    with pytest.raises(ValueError):
        emulator.mutate("organization", org["id"], {"nmae": "typo"})
    with pytest.raises(ValueError):
        emulator.mutate("organization", org["id"], {"name": ""})
    with pytest.raises(ValueError):
        emulator.mutate("order", org["id"], {})


def test_mutate_invoice_status_and_lines_as_a_user_would(emulator: SimplicateEmulator) -> None:
    concept = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Concept")
    lines = [
        {
            "description": "Nieuw",
            "amount": 1,
            "price": 50,
            "vat_class_id": vat_class_id(emulator, 21),
        }
    ]
    changed = emulator.mutate("invoice", concept["id"], {"invoice_lines": lines})
    assert changed["total_including_vat"] == Decimal("60.50")
    sent = emulator.mutate("invoice", concept["id"], {"status": "Sent"})
    assert sent["status"]["name"] == "Sent" and sent["invoice_number"]
    with pytest.raises(ValueError):
        emulator.mutate("invoice", concept["id"], {"invoice_lines": lines})
    with pytest.raises(ValueError):
        emulator.mutate("invoice", concept["id"], {"status": "Concept"})


def test_create_and_delete_hooks(emulator: SimplicateEmulator) -> None:
    org = emulator.create("organization", {"name": "Hook B.V.", "email": "a@b.nl"})
    assert org["id"].startswith("organization:") and org["email"] == "a@b.nl"
    person = emulator.create("person", {"family_name": "Jansen"})
    link = emulator.create(
        "contactperson", {"organization_id": org["id"], "person_id": person["id"]}
    )
    assert link["organization"]["id"] == org["id"]
    invoice = emulator.create(
        "invoice", {"organization_id": org["id"], "status": "Sent", "invoice_lines": []}
    )
    assert invoice["invoice_number"]
    with pytest.raises(ValueError):
        emulator.create("organization", {"email": "no name"})
    with pytest.raises(ValueError):
        emulator.delete("organization", org["id"])  # it has an invoice
    emulator.delete("contactperson", link["id"])
    emulator.delete("person", person["id"])
    with pytest.raises(KeyError):
        emulator.delete("person", person["id"])
    assert person["id"] not in {p["id"] for p in emulator.dump()["person"]}
    assert emulator.counters.writes == 0


def test_archive_hook(emulator: SimplicateEmulator) -> None:
    person = emulator.dump()["person"][0]
    archived = emulator.archive("person", person["id"])
    assert archived["is_active"] is False
    invoice = emulator.dump()["invoice"][0]
    with pytest.raises(ValueError):
        emulator.archive("invoice", invoice["id"])
    with pytest.raises(KeyError):
        emulator.archive("person", "person:" + "1" * 32)


def test_register_payment_hook_updates_outstanding_and_status(emulator: SimplicateEmulator) -> None:
    sent = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] in {"Sent", "Overdue"})
    payment = emulator.register_payment(
        sent["id"], sent["total_outstanding"], dt.date(2026, 11, 19)
    )
    assert payment["invoice_id"] == sent["id"] and payment["date"] == "2026-11-19"
    assert payment["amount"] == sent["total_outstanding"]
    after = next(i for i in emulator.dump()["invoice"] if i["id"] == sent["id"])
    assert after["status"]["name"] == "Paid" and after["total_outstanding"] == 0
    concept = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Concept")
    with pytest.raises(ValueError):
        emulator.register_payment(concept["id"], Decimal("1.00"), dt.date(2026, 11, 19))
    with pytest.raises(KeyError):
        emulator.register_payment("invoice:" + "2" * 32, Decimal("1.00"), dt.date(2026, 11, 19))
    emulator.delete("payment", payment["id"])  # a bookkeeper may undo it in the web app
    reopened = next(i for i in emulator.dump()["invoice"] if i["id"] == sent["id"])
    assert reopened["status"]["name"] == "Sent"


def test_reset_forgets_records_and_counters(emulator: SimplicateEmulator) -> None:
    emulator.counters.writes = 3
    emulator.reset()
    dump = emulator.dump()
    assert dump["organization"] == dump["person"] == dump["invoice"] == []
    assert len(dump["invoicestatus"]) == 4
    assert emulator.counters.writes == 0


def test_dump_is_json_serialisable_with_exact_numbers(emulator: SimplicateEmulator) -> None:
    from syncd.sandbox.simplicate.query import dumps

    text = dumps(emulator.dump())
    again = json.loads(text, parse_float=Decimal)
    assert (
        again["invoice"][0]["total_including_vat"]
        == emulator.dump()["invoice"][0]["total_including_vat"]
    )


async def test_control_api_reaches_every_hook_over_http(
    api: Api, emulator: SimplicateEmulator, clock: FakeClock
) -> None:
    base = "/_sandbox/simplicate"
    status, created = await api.control("POST", f"{base}/organization", {"name": "Via control"})
    assert status == 201 and created["id"].startswith("organization:")
    clock.advance(61)
    status, changed = await api.control(
        "PATCH", f"{base}/organization/{created['id']}", {"email": "c@control.nl"}
    )
    assert status == 200 and changed["email"] == "c@control.nl"
    assert changed["updated_at"] == "2026-11-20 13:01:01"
    seen = await api.get_data(f"/crm/organization/{created['id']}")
    assert seen["email"] == "c@control.nl"
    concept = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Concept")
    line = {"amount": 3, "price": 50.1, "vat_class_id": vat_class_id(emulator, 21)}
    status, invoice = await api.control(
        "PATCH", f"{base}/invoice/{concept['id']}", {"invoice_lines": [line], "status": "Sent"}
    )
    assert status == 200 and invoice["total_excluding_vat"] == "150.30"
    status, payment = await api.control(
        "POST", f"{base}/invoice/{concept['id']}/payments", {"amount": "100.00"}
    )
    assert status == 201 and payment["invoice_id"] == concept["id"]
    listed = await api.get_data("/invoices/invoice", **{"q[id]": concept["id"]})
    assert listed[0]["total_outstanding"] == Decimal("81.86")  # 181.86 incl. VAT - 100
    status, error = await api.control("POST", f"{base}/invoice/{concept['id']}/archive")
    assert status == 400 and "archive" in error["error"]
    status, archived = await api.control("POST", f"{base}/organization/{created['id']}/archive")
    assert status == 200 and archived["is_active"] is False
    status, _ = await api.control("DELETE", f"{base}/organization/{created['id']}")
    assert status == 200
    status, _ = await api.control("DELETE", f"{base}/organization/{created['id']}")
    assert status == 404
    status, state = await api.control("GET", f"{base}/state")
    assert status == 200 and set(state) >= {"organization", "person", "invoice", "payment"}
    assert emulator.counters.writes == 0  # the control API is not the vendor API


async def test_a_refused_update_changes_nothing(api: Api, emulator: SimplicateEmulator) -> None:
    _, payload = await api.call(
        "POST", "/invoices/invoice", body=new_invoice_body(emulator, first_org(emulator)["id"])
    )
    invoice_id = payload["data"]["id"]
    before = await api.get_data(f"/invoices/invoice/{invoice_id}")
    other = org_without_invoices(emulator)["id"]
    status, _ = await api.call(
        "PUT",
        f"/invoices/invoice/{invoice_id}",
        body={"organization_id": other, "subject": "changed", "date": "tomorrow"},
    )
    assert status == 400
    assert await api.get_data(f"/invoices/invoice/{invoice_id}") == before
    sent = next(i for i in emulator.dump()["invoice"] if i["status"]["name"] == "Sent")
    _, payload = await api.call(
        "POST", "/invoices/payment", body={"invoice_id": sent["id"], "amount": 1}
    )
    payment_id = payload["data"]["id"]
    status, _ = await api.call(
        "PUT", f"/invoices/payment/{payment_id}", body={"amount": 2, "date": "31-12-2026"}
    )
    assert status == 400
    payment = await api.get_data(f"/invoices/payment/{payment_id}")
    assert payment["amount"] == Decimal("1.0")


async def test_in_and_nin_filters_and_multi_key_sort(
    api: Api, emulator: SimplicateEmulator
) -> None:
    orgs = emulator.dump()["organization"]
    numbers = [o["relation_number"] for o in orgs[:2]]
    picked = await api.get_data(
        "/crm/organization", **{"q[relation_number][in]": ",".join(numbers)}
    )
    assert {r["id"] for r in picked} == {o["id"] for o in orgs[:2]}
    rest = await api.get_data("/crm/organization", **{"q[relation_number][nin]": ",".join(numbers)})
    assert {r["id"] for r in rest} == {o["id"] for o in orgs[2:]}
    invoices = await api.get_data("/invoices/invoice", sort="status.name,-date")
    keys = [(r["status"]["name"].casefold(), r["date"]) for r in invoices]
    expected = sorted(keys, key=lambda k: k[1], reverse=True)
    expected.sort(key=lambda k: k[0])  # stable: status ascending, newest date first within
    assert keys == expected and len({k[0] for k in keys}) > 1
