"""The Moneybird emulator behaves like Moneybird API v2, served through the sandbox framework."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from syncd.sandbox.base import (
    RateDecision,
    RateWindow,
    SandboxOptions,
    SeedContact,
    SeedInvoice,
    SeedLine,
    SeedPayment,
    VendorSeed,
)
from syncd.sandbox.moneybird import MoneybirdEmulator, MoneybirdQuirks
from syncd.sandbox.testing import SandboxHandle, running_sandbox

T0 = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.UTC)
TOKEN = "sandbox-moneybird-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


@dataclass
class Api:
    """A plain aiohttp client on one running Moneybird emulator."""

    handle: SandboxHandle
    session: aiohttp.ClientSession
    clock: FakeClock
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))

    @property
    def base(self) -> str:
        return self.handle.base_urls["moneybird"]

    @property
    def emulator(self) -> MoneybirdEmulator:
        emulator = self.handle.emulators["moneybird"]
        assert isinstance(emulator, MoneybirdEmulator)
        return emulator

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> Reply:
        target = url or self.base + path
        data = None if body is None else json.dumps(body)
        sent = dict(self.headers if headers is None else headers)
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with self.session.request(method, target, data=data, headers=sent) as response:
            text = await response.text()
            parsed: Any = json.loads(text) if text else None
            return Reply(response.status, parsed, response.headers)

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PATCH", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)

    async def new_contact(self, **attrs: Any) -> dict[str, Any]:
        reply = await self.post("/contacts.json", {"contact": {"company_name": "Acme", **attrs}})
        assert reply.status == 201, reply.body
        return dict(reply.body)

    async def new_invoice(self, contact_id: str, **attrs: Any) -> dict[str, Any]:
        attrs.setdefault("details_attributes", [{"description": "Work", "price": "100"}])
        reply = await self.post(
            "/sales_invoices.json", {"sales_invoice": {"contact_id": contact_id, **attrs}}
        )
        assert reply.status == 201, reply.body
        return dict(reply.body)

    async def sent_invoice(self, contact_id: str, **attrs: Any) -> dict[str, Any]:
        draft = await self.new_invoice(contact_id, **attrs)
        reply = await self.patch(f"/sales_invoices/{draft['id']}/send_invoice.json", {})
        assert reply.status == 200, reply.body
        return dict(reply.body)


def _options(**overrides: Any) -> SandboxOptions:
    values: dict[str, Any] = {"seed": 3, "contacts": 0, "invoices": 0, "rate_limits": False}
    values.update(overrides)
    return SandboxOptions(**values)


async def _serve(
    options: SandboxOptions, clock: FakeClock, emulator: type[MoneybirdEmulator] | None = None
) -> AsyncIterator[Api]:
    classes = {"moneybird": emulator} if emulator is not None else None
    async with (
        running_sandbox(options, vendors=["moneybird"], clock=clock, emulator_classes=classes) as h,
        aiohttp.ClientSession() as session,
    ):
        yield Api(h, session, clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(clock: FakeClock) -> AsyncIterator[Api]:
    """An empty administration."""
    async for served in _serve(_options(control=True), clock):
        yield served


@pytest.fixture
async def seeded(clock: FakeClock) -> AsyncIterator[Api]:
    """An administration seeded from the shared world generator."""
    async for served in _serve(_options(contacts=40, invoices=60), clock):
        yield served


async def _all_pages(api: Api, path: str) -> tuple[list[dict[str, Any]], list[Reply]]:
    """Follow rel="next" Link headers to the end; return the records and each reply."""
    records: list[dict[str, Any]] = []
    replies: list[Reply] = []
    url: str | None = api.base + path
    while url is not None:
        reply = await api.get("", url=url)
        assert reply.status == 200, reply.body
        replies.append(reply)
        records.extend(reply.body)
        links = aiohttp.hdrs.LINK in reply.headers and reply.headers[aiohttp.hdrs.LINK]
        url = None
        for part in (links or "").split(","):
            if 'rel="next"' in part:
                url = part.split(";")[0].strip().strip("<>")
        assert len(replies) < 100, "pagination did not terminate"
    return records, replies


# ---------------------------------------------------------------- auth and paths


async def test_missing_token_is_401_with_vendor_body(api: Api) -> None:
    reply = await api.get("/contacts.json", headers={})
    assert reply.status == 401
    assert reply.body == {"error": "token is invalid", "symbolic": {"request": "invalid_grant"}}
    assert api.emulator.counters.auth_failures == 1


async def test_wrong_token_and_wrong_scheme_are_refused(api: Api) -> None:
    wrong = await api.get("/contacts.json", headers={"Authorization": "Bearer nope"})
    basic = await api.get("/contacts.json", headers={"Authorization": f"Basic {TOKEN}"})
    assert (wrong.status, basic.status) == (401, 401)
    assert wrong.body["symbolic"] == {"request": "invalid_grant"}


async def test_configured_token_replaces_the_default(clock: FakeClock) -> None:
    options = _options(credentials={"moneybird": {"token": "other-token"}})
    async for api in _serve(options, clock):
        default = await api.get("/contacts.json")
        configured = await api.get(
            "/contacts.json", headers={"Authorization": "Bearer other-token"}
        )
        assert (default.status, configured.status) == (401, 200)


async def test_token_without_sales_invoices_scope_reads_contacts_only(clock: FakeClock) -> None:
    options = _options(credentials={"moneybird": {"token": TOKEN, "scopes": "settings"}})
    async for api in _serve(options, clock):
        contacts = await api.get("/contacts.json")
        invoices = await api.get("/sales_invoices.json")
        assert contacts.status == 200
        assert invoices.status == 401
        assert invoices.body == {"error": "No access to sales_invoices"}


async def test_paths_need_the_json_suffix(api: Api) -> None:
    bare = await api.get("/contacts")
    xml = await api.get("/contacts.xml")
    assert (bare.status, xml.status) == (404, 404)
    assert bare.body == {"error": "Not Found"}


async def test_suffix_quirk_can_be_switched_off(clock: FakeClock) -> None:
    class Lenient(MoneybirdEmulator):
        def __init__(self, options: SandboxOptions, now: Any) -> None:
            super().__init__(options, now, MoneybirdQuirks(require_json_suffix=False))

    async for api in _serve(_options(), clock, Lenient):
        created = await api.post("/contacts", {"contact": {"company_name": "Bare"}})
        assert created.status == 201
        fetched = await api.get(f"/contacts/{created.body['id']}")
        assert fetched.body["company_name"] == "Bare"
        assert (await api.get("/contacts/filter")).status == 200


async def test_routes_work_on_a_plain_aiohttp_app(clock: FakeClock) -> None:
    emulator = MoneybirdEmulator(_options(), clock)
    app = web.Application()
    emulator.build_routes(app)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/contacts.json", json={"contact": {"firstname": "Ann"}})
        assert response.status == 201
        listed = await client.get("/contacts/filter.json", params={"filter": "first_name:ann"})
        assert [c["firstname"] for c in await listed.json()] == ["Ann"]


# ---------------------------------------------------------------- pagination


async def test_contacts_page_to_the_end_with_link_headers(seeded: Api) -> None:
    for n in range(23):
        seeded.emulator.create("contacts", {"company_name": f"Extra {n:02d}"})
    synced = await seeded.get("/contacts/synchronization.json")
    records, replies = await _all_pages(seeded, "/contacts.json?per_page=7")
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))
    assert ids == [entry["id"] for entry in synced.body]
    assert all(len(r.body) == 7 for r in replies[:-1]) and 1 <= len(replies[-1].body) <= 7
    assert 'rel="prev"' not in replies[0].headers.get("Link", "")
    assert 'rel="prev"' in replies[1].headers["Link"]
    assert "page=1" in replies[1].headers["Link"].split(",")[0]
    assert 'rel="next"' not in replies[-1].headers.get("Link", "")


async def test_default_page_size_is_50_and_maximum_100(api: Api) -> None:
    for n in range(120):
        api.emulator.create("contacts", {"company_name": f"C{n:03d}"})
    default = await api.get("/contacts.json")
    biggest = await api.get("/contacts.json?per_page=100")
    last = await api.get("/contacts.json?per_page=100&page=2")
    assert len(default.body) == 50
    assert len(biggest.body) == 100
    assert len(last.body) == 20 and 'rel="next"' not in last.headers.get("Link", "")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("per_page=101", "per_page does not have a valid value"),
        ("per_page=0", "per_page does not have a valid value"),
        ("per_page=ten", "per_page is invalid, per_page does not have a valid value"),
        ("page=0", "page does not have a valid value"),
    ],
)
async def test_bad_paging_parameters_are_400(api: Api, query: str, message: str) -> None:
    for path in ("/contacts.json", "/sales_invoices.json", "/tax_rates.json"):
        reply = await api.get(f"{path}?{query}")
        assert (reply.status, reply.body) == (400, {"error": message})


async def test_page_past_the_end_is_empty(api: Api) -> None:
    await api.new_contact()
    reply = await api.get("/contacts.json?page=5")
    assert (reply.status, reply.body) == (200, [])


async def test_sales_invoices_page_with_the_filter_kept_in_links(seeded: Api) -> None:
    path = "/sales_invoices.json?filter=state:all,period:20000101..20991231&per_page=4"
    records, replies = await _all_pages(seeded, path)
    assert len(replies) > 1
    assert "filter=state%3Aall%2Cperiod%3A20000101..20991231" in replies[0].headers["Link"]
    assert len(records) == len(seeded.emulator.store.invoices)


# ---------------------------------------------------------------- contacts


async def test_created_contact_has_the_vendor_shape(api: Api) -> None:
    reply = await api.post(
        "/contacts.json",
        {
            "contact": {
                "company_name": "Test B.V.",
                "send_invoices_to_email": "a@test.nl",
                "email": "ignored@test.nl",
                "attention": "ignored",
                "country": "nl",
                "chamber_of_commerce": 12345678,
            }
        },
    )
    assert reply.status == 201
    contact = reply.body
    assert isinstance(contact["id"], str) and int(contact["id"]) > 2**53
    assert contact["administration_id"] == 123456789
    assert contact["email"] == "a@test.nl"  # read-only: mirrors send_invoices_to_email
    assert contact["attention"] == ""
    assert contact["firstname"] == "" and contact["lastname"] == ""
    assert contact["country"] == "NL"
    assert contact["chamber_of_commerce"] == "12345678"
    assert contact["customer_id"] == "1"
    assert contact["archived"] is False and contact["contact_people"] == []
    assert contact["created_at"] == "2026-11-10T12:00:00.000Z"
    assert contact["version"] == int(T0.timestamp())
    assert contact["events"][0]["action"] == "contact_created"
    second = await api.new_contact(company_name="Next")
    assert second["customer_id"] == "2"


async def test_contact_create_errors_use_the_vendor_bodies(api: Api) -> None:
    no_root = await api.post("/contacts.json", {"company_name": "x"})
    no_name = await api.post("/contacts.json", {"contact": {"city": "Utrecht"}})
    wrong_type = await api.post("/contacts.json", {"contact": {"company_name": ["x"]}})
    bad_email = await api.post(
        "/contacts.json", {"contact": {"company_name": "x", "send_invoices_to_email": "nope"}}
    )
    custom = await api.post(
        "/contacts.json",
        {"contact": {"company_name": "x", "custom_fields_attributes": {"0": {"id": 1234}}}},
    )
    assert no_root.status == 400
    assert no_root.body == {"error": "Contact is required", "symbolic": {"contact": "required"}}
    assert no_name.status == 422
    assert no_name.body == {
        "error": {
            "firstname": ["is required"],
            "lastname": ["is required"],
            "company_name": ["is required"],
        },
        "details": {
            "firstname": [{"error": "is required"}],
            "lastname": [{"error": "is required"}],
            "company_name": [{"error": "is required"}],
        },
    }
    assert (wrong_type.status, wrong_type.body) == (
        400,
        {"error": "contact[company_name] is invalid"},
    )
    assert bad_email.status == 422
    assert bad_email.body["details"] == {"send_invoices_to_email": [{"error": "invalid"}]}
    assert custom.status == 404
    assert custom.body["symbolic"] == {"custom_fields_attributes": "not_found"}
    assert api.emulator.counters.writes == 0


async def test_customer_id_is_unique_and_looked_up(api: Api) -> None:
    first = await api.new_contact(customer_id="K-1")
    duplicate = await api.post(
        "/contacts.json", {"contact": {"firstname": "B", "customer_id": "K-1"}}
    )
    found = await api.get("/contacts/customer_id/K-1.json")
    missing = await api.get("/contacts/customer_id/K-9.json")
    assert duplicate.status == 422
    assert duplicate.body["error"] == {"customer_id": ["has already been taken"]}
    assert found.body["id"] == first["id"]
    assert missing.status == 404
    assert missing.body == {"error": "record not found", "symbolic": {"customer_id": "not_found"}}


async def test_patch_changes_only_sent_attributes_and_bumps_version(api: Api) -> None:
    contact = await api.new_contact(city="Utrecht", phone="030 1234567")
    api.clock.advance(seconds=5)
    reply = await api.patch(
        f"/contacts/{contact['id']}.json", {"contact": {"city": "Delft", "phone": ""}}
    )
    assert reply.status == 200
    assert reply.body["city"] == "Delft"
    assert reply.body["phone"] == ""  # an empty string clears
    assert reply.body["company_name"] == "Acme"
    assert reply.body["version"] == contact["version"] + 5
    assert reply.body["updated_at"] == "2026-11-10T12:00:05.000Z"
    assert reply.body["events"][-1]["data"] == {
        "changes": {"city": ["Utrecht", "Delft"], "phone": ["030 1234567", ""]}
    }


async def test_every_change_bumps_the_version_even_within_one_second(api: Api) -> None:
    contact = await api.new_contact()
    versions = [contact["version"]]
    for city in ("A", "B", "C"):
        reply = await api.patch(f"/contacts/{contact['id']}.json", {"contact": {"city": city}})
        versions.append(reply.body["version"])
    assert versions == sorted(set(versions))


async def test_epoch_version_quirk_repeats_versions_within_a_second(clock: FakeClock) -> None:
    class EpochVersions(MoneybirdEmulator):
        def __init__(self, options: SandboxOptions, now: Any) -> None:
            super().__init__(options, now, MoneybirdQuirks(version_mode="epoch"))

    async for api in _serve(_options(), clock, EpochVersions):
        contact = await api.new_contact()
        reply = await api.patch(f"/contacts/{contact['id']}.json", {"contact": {"city": "X"}})
        assert reply.body["version"] == contact["version"]
        assert reply.body["updated_at"] > contact["updated_at"]


async def test_patch_errors(api: Api) -> None:
    contact = await api.new_contact()
    trusted = await api.patch(f"/contacts/{contact['id']}.json", {"contact": {"is_trusted": True}})
    blank = await api.patch(f"/contacts/{contact['id']}.json", {"contact": {"company_name": ""}})
    missing = await api.patch("/contacts/1.json", {"contact": {"city": "x"}})
    assert trusted.status == 400 and trusted.body["symbolic"] == {"is_trusted": "permission"}
    assert blank.status == 422 and set(blank.body["error"]) == {
        "firstname",
        "lastname",
        "company_name",
    }
    assert missing.status == 404
    assert missing.body == {"error": "record not found", "symbolic": {"id": "not_found"}}


async def test_archive_hides_a_contact_until_asked_for(api: Api) -> None:
    contact = await api.new_contact()
    api.clock.advance(seconds=1)
    archived = await api.patch(f"/contacts/{contact['id']}/archive.json")
    again = await api.patch(f"/contacts/{contact['id']}/archive.json")
    hidden = await api.get(f"/contacts/{contact['id']}.json")
    shown = await api.get(f"/contacts/{contact['id']}.json?include_archived=true")
    listed = await api.get("/contacts.json")
    listed_all = await api.get("/contacts.json?include_archived=true")
    sync = await api.get("/contacts/synchronization.json")
    sync_all = await api.get("/contacts/synchronization.json?include_archived=true")
    assert (archived.status, archived.body) == (204, None)
    assert again.status == 400
    assert again.body == {
        "error": "Contact can not be archived",
        "symbolic": {"id": "can_not_be_archived"},
    }
    assert hidden.status == 404
    assert shown.body["archived"] is True and shown.body["version"] > contact["version"]
    assert listed.body == [] and len(listed_all.body) == 1
    assert sync.body == [] and sync_all.body == [
        {"id": contact["id"], "version": shown.body["version"]}
    ]


async def test_delete_removes_a_contact_without_invoices(api: Api) -> None:
    contact = await api.new_contact()
    deleted = await api.delete(f"/contacts/{contact['id']}.json")
    gone = await api.get(f"/contacts/{contact['id']}.json?include_archived=true")
    again = await api.delete(f"/contacts/{contact['id']}.json")
    assert (deleted.status, gone.status, again.status) == (204, 404, 404)


async def test_delete_of_a_contact_with_invoices_archives_it(api: Api) -> None:
    contact = await api.new_contact()
    await api.new_invoice(contact["id"])
    deleted = await api.delete(f"/contacts/{contact['id']}.json")
    still = await api.get(f"/contacts/{contact['id']}.json?include_archived=true")
    assert deleted.status == 204
    assert still.status == 200 and still.body["archived"] is True


async def test_contact_people_lifecycle(api: Api) -> None:
    contact = await api.new_contact()
    base = f"/contacts/{contact['id']}/contact_people"
    created = await api.post(
        f"{base}.json", {"contact_person": {"firstname": "John", "lastname": "Doe"}}
    )
    person = created.body
    blank = await api.post(f"{base}.json", {"contact_person": {"firstname": ""}})
    orphan = await api.post(
        "/contacts/1/contact_people.json", {"contact_person": {"firstname": "A", "lastname": "B"}}
    )
    patched = await api.patch(f"{base}/{person['id']}.json", {"contact_person": {"phone": "06"}})
    unknown = await api.patch(f"{base}/1.json", {"contact_person": {"phone": "06"}})
    embedded = await api.get(f"/contacts/{contact['id']}.json")
    deleted = await api.delete(f"{base}/{person['id']}.json")
    fetched = await api.get(f"{base}/{person['id']}.json")
    assert created.status == 201
    assert person["contact_id"] == contact["id"] and person["phone"] is None
    assert blank.status == 422
    assert blank.body["details"] == {
        "firstname": [{"error": "blank"}],
        "lastname": [{"error": "blank"}],
    }
    assert orphan.status == 422 and orphan.body["error"] == {"contact": ["must exist"]}
    assert patched.body["phone"] == "06"
    assert unknown.status == 404
    assert unknown.body == {
        "error": "contact person not found",
        "symbolic": {"contact_person_id": "not_found"},
    }
    assert [p["id"] for p in embedded.body["contact_people"]] == [person["id"]]
    assert (deleted.status, fetched.status) == (204, 404)


async def test_company_with_a_person_name_gets_a_contact_person(api: Api) -> None:
    contact = await api.new_contact(company_name="Moneybird B.V.")
    reply = await api.patch(
        f"/contacts/{contact['id']}.json", {"contact": {"firstname": "Money", "lastname": "Bird"}}
    )
    people = reply.body["contact_people"]
    assert [(p["firstname"], p["lastname"]) for p in people] == [("Money", "Bird")]


# ---------------------------------------------------------------- contact filters


async def test_contact_filters(api: Api) -> None:
    company = await api.new_contact(company_name="Jansen Bouw", city="Zwolle")
    api.clock.advance(minutes=1)
    person = await api.new_contact(company_name="", firstname="Piet", lastname="Jansen")
    api.clock.advance(minutes=1)
    await api.patch(f"/contacts/{company['id']}.json", {"contact": {"phone": "038"}})

    async def ids(flt: str) -> list[str]:
        reply = await api.get(f"/contacts/filter.json?filter={flt}")
        assert reply.status == 200, reply.body
        return [c["id"] for c in reply.body]

    assert await ids("first_name:PIET") == [person["id"]]
    assert await ids("last_name:jansen") == [person["id"]]
    assert await ids("contact_type:company") == [company["id"]]
    assert await ids("contact_type:private_individual") == [person["id"]]
    assert await ids(f"created_after:{person['created_at']}") == []  # exclusive
    assert await ids("created_after:2026-11-10 12:00:30 UTC") == [person["id"]]
    assert await ids("updated_after:2026-11-10T12:01:00Z") == [company["id"]]
    assert await ids("updated_after:2026-11-10T11:00:00Z,contact_type:company") == [company["id"]]
    assert await ids("unknown_key:1") == [company["id"], person["id"]]
    bad = await api.get("/contacts/filter.json?filter=contact_type:robot")
    assert bad.status == 400 and bad.body["symbolic"] == {"filter": "invalid"}
    searched = await api.get("/contacts/filter.json?query=zwolle")
    assert [c["id"] for c in searched.body] == [company["id"]]
    listed = await api.get("/contacts.json?query=piet jansen")
    assert [c["id"] for c in listed.body] == [person["id"]]


async def test_contacts_synchronization_get_and_post(api: Api) -> None:
    created = [await api.new_contact(company_name=f"S{n:03d}") for n in range(105)]
    listing = await api.get("/contacts/synchronization.json")
    filtered = await api.get("/contacts/synchronization.json?filter=first_name:nobody")
    fetched = await api.post(
        "/contacts/synchronization.json", {"ids": [int(c["id"]) for c in created] + [1]}
    )
    missing = await api.post("/contacts/synchronization.json", {})
    assert listing.body == [{"id": c["id"], "version": c["version"]} for c in created]
    assert filtered.body == []
    assert fetched.status == 200 and len(fetched.body) == 100
    assert fetched.body[0] == (await api.get(f"/contacts/{created[0]['id']}.json")).body
    assert missing.status == 400
    assert missing.body == {"error": "Ids is required", "symbolic": {"ids": "required"}}


# ---------------------------------------------------------------- sales invoices


async def test_created_invoice_is_a_draft_with_computed_totals(api: Api) -> None:
    contact = await api.new_contact()
    invoice = await api.new_invoice(
        contact["id"],
        reference="30052",
        details_attributes={"0": {"description": "Rocking Chair", "price": 129.95}},
    )
    assert invoice["state"] == "draft"
    assert invoice["invoice_id"] is None and invoice["draft_id"] == 1
    assert invoice["invoice_date"] is None
    assert invoice["due_date"] == "2026-11-24"  # today + 14 days
    assert invoice["contact"]["id"] == contact["id"] and "events" not in invoice["contact"]
    assert invoice["total_price_excl_tax"] == "129.95"
    assert invoice["total_price_incl_tax"] == "157.24"
    assert invoice["total_unpaid"] == "157.24" and invoice["total_paid"] == "0.0"
    assert invoice["discount"] == "0.0"
    detail = invoice["details"][0]
    assert detail["amount"] is None and detail["amount_decimal"] == "1.0"
    assert detail["price"] == "129.95" and detail["tax_report_reference"] == ["NL/1a"]
    assert invoice["tax_totals"] == [
        {
            "tax_rate_id": detail["tax_rate_id"],
            "taxable_amount": "129.95",
            "taxable_amount_base": "129.95",
            "tax_amount": "27.29",
            "tax_amount_base": "27.29",
        }
    ]


async def test_invoice_totals_with_tax_rates_quantities_and_discount(api: Api) -> None:
    contact = await api.new_contact()
    rates = (await api.get("/tax_rates.json?filter=tax_rate_type:sales_invoice")).body
    nine = next(r["id"] for r in rates if r["percentage"] == "9.0" and r["country"] is None)
    invoice = await api.new_invoice(
        contact["id"],
        discount="10",
        details_attributes=[
            {"description": "Hours", "amount": "2,5 uur", "price": "80"},
            {"description": "Book", "amount": 3, "price": "10.00", "tax_rate_id": nine},
        ],
    )
    hours, book = invoice["details"]
    assert (hours["amount"], hours["amount_decimal"]) == ("2,5 uur", "2.5")
    assert hours["total_price_excl_tax_with_discount"] == "180.0"
    assert book["total_price_excl_tax_with_discount"] == "27.0"
    assert invoice["total_price_excl_tax"] == "207.0"
    assert invoice["total_discount"] == "23.0"
    assert invoice["total_price_incl_tax"] == "247.23"  # 180 * 1.21 + 27 * 1.09


async def test_prices_including_tax_are_split_back(api: Api) -> None:
    contact = await api.new_contact()
    invoice = await api.new_invoice(
        contact["id"], prices_are_incl_tax=True, details_attributes=[{"price": "300"}]
    )
    assert invoice["details"][0]["total_price_excl_tax_with_discount"] == "247.93"
    assert invoice["total_price_incl_tax"] == "300.0"
    assert invoice["tax_totals"][0]["tax_amount"] == "52.07"


async def test_invoice_create_errors(api: Api) -> None:
    contact = await api.new_contact()
    no_root = await api.post("/sales_invoices.json", {"contact_id": contact["id"]})
    no_contact = await api.post("/sales_invoices.json", {"sales_invoice": {"reference": "x"}})
    bad_rate = await api.post(
        "/sales_invoices.json",
        {
            "sales_invoice": {
                "contact_id": contact["id"],
                "details_attributes": [{"price": "1", "tax_rate_id": "1"}],
            }
        },
    )
    bad_price = await api.post(
        "/sales_invoices.json",
        {
            "sales_invoice": {
                "contact_id": contact["id"],
                "details_attributes": [{"price": "1.2.3"}],
            }
        },
    )
    assert no_root.status == 400
    assert no_root.body == {
        "error": "Sales invoice is required",
        "symbolic": {"sales_invoice": "required"},
    }
    assert no_contact.status == 422
    assert no_contact.body == {
        "error": {"contact": ["must exist"]},
        "details": {"contact": [{"error": "blank"}]},
    }
    assert bad_rate.status == 422 and "details.tax_rate_id" in bad_rate.body["error"]
    assert bad_price.status == 400
    assert bad_price.body == {"error": "sales_invoice[details_attributes][0][price] is invalid"}
    assert api.emulator.store.invoices == {}


async def test_invoice_patch_adds_updates_and_destroys_details(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    invoice = await api.sent_invoice(contact["id"])
    old = invoice["details"][0]["id"]
    reply = await api.patch(
        f"/sales_invoices/{invoice['id']}.json",
        {
            "sales_invoice": {
                "reference": "30053",
                "details_attributes": [
                    {"description": "Sofa", "price": 199.99},
                    {"id": int(old), "_destroy": True},
                ],
            }
        },
    )
    unknown = await api.patch(
        f"/sales_invoices/{invoice['id']}.json",
        {"sales_invoice": {"details_attributes": [{"id": "1", "price": "5"}]}},
    )
    assert reply.status == 200
    assert [d["description"] for d in reply.body["details"]] == ["Sofa"]
    assert reply.body["reference"] == "30053"
    assert reply.body["total_price_incl_tax"] == "241.99"
    assert reply.body["tax_totals"][0]["tax_amount"] == "42.0"
    assert reply.body["state"] == "open" and reply.body["version"] > invoice["version"]
    assert unknown.status == 404 and unknown.body["symbolic"] == {"id": "not_found"}


async def test_sending_numbers_the_invoice(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    draft = await api.new_invoice(contact["id"], reference="R-1")
    not_yet = await api.get(f"/sales_invoices/find_by_invoice_id/{draft['id']}.json")
    sent = await api.patch(f"/sales_invoices/{draft['id']}/send_invoice.json")
    second = await api.sent_invoice(contact["id"])
    by_number = await api.get("/sales_invoices/find_by_invoice_id/2026-0001.json")
    unknown = await api.get("/sales_invoices/find_by_invoice_id/1337.json")
    invoice = sent.body
    assert not_yet.status == 404
    assert invoice["state"] == "open"
    assert invoice["invoice_id"] == "2026-0001" and invoice["draft_id"] is None
    assert invoice["invoice_date"] == "2026-11-10" and invoice["sent_at"] == "2026-11-10"
    assert invoice["due_date"] == "2026-11-24"
    assert invoice["payment_reference"].startswith("RF")
    assert invoice["short_payment_reference"][:4] == invoice["payment_reference"][:4]
    assert second["invoice_id"] == "2026-0002"
    assert by_number.body["id"] == draft["id"]
    assert unknown.body == {
        "error": "Sales invoice with invoice_id: 1337 was not found",
        "symbolic": {"invoice_id": "not_found"},
    }


async def test_send_errors(api: Api) -> None:
    no_mail = await api.new_contact(company_name="No Mail")
    empty = await api.new_invoice(no_mail["id"], details_attributes=[])
    full = await api.new_invoice(no_mail["id"])
    no_details = await api.patch(f"/sales_invoices/{empty['id']}/send_invoice.json", {})
    no_address = await api.patch(f"/sales_invoices/{full['id']}/send_invoice.json", {})
    manual = await api.patch(
        f"/sales_invoices/{full['id']}/send_invoice.json",
        {"sales_invoice_sending": {"delivery_method": "Manual"}},
    )
    assert no_details.status == 400
    assert no_details.body == {
        "error": "details cannot be empty",
        "symbolic": {"sales_invoice": "details_cannot_be_empty"},
    }
    assert no_address.status == 422
    assert no_address.body == {
        "error": {"email_address": ["can't be blank"]},
        "details": {"email_address": [{"error": "blank"}]},
    }
    assert manual.status == 200 and manual.body["state"] == "open"


async def test_scheduled_invoice_is_sent_on_its_date(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    draft = await api.new_invoice(contact["id"])
    scheduled = await api.patch(
        f"/sales_invoices/{draft['id']}/send_invoice.json",
        {"sales_invoice_sending": {"sending_scheduled": True, "invoice_date": "2026-11-12"}},
    )
    assert scheduled.body["state"] == "scheduled" and scheduled.body["invoice_id"] is None
    api.clock.advance(days=2)
    later = await api.get(f"/sales_invoices/{draft['id']}.json")
    assert later.body["state"] == "open"
    assert later.body["invoice_id"] == "2026-0001"
    assert later.body["version"] > scheduled.body["version"]


async def test_unpaid_invoice_turns_late_after_its_due_date(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    invoice = await api.sent_invoice(contact["id"], first_due_interval=7)
    api.clock.advance(days=7)
    still_open = await api.get(f"/sales_invoices/{invoice['id']}.json")
    api.clock.advance(days=1)
    late = await api.get(f"/sales_invoices/{invoice['id']}.json")
    only_late = await api.get("/sales_invoices.json?filter=state:late")
    assert still_open.body["state"] == "open"
    assert late.body["state"] == "late" and late.body["version"] > invoice["version"]
    assert [i["id"] for i in only_late.body] == [invoice["id"]]


async def test_find_by_reference_and_delete(api: Api) -> None:
    contact = await api.new_contact()
    invoice = await api.new_invoice(contact["id"], reference="ext-42")
    found = await api.get("/sales_invoices/find_by_reference/ext-42.json")
    missing = await api.get("/sales_invoices/find_by_reference/1337.json")
    deleted = await api.delete(f"/sales_invoices/{invoice['id']}.json")
    gone = await api.get(f"/sales_invoices/{invoice['id']}.json")
    assert found.body["id"] == invoice["id"]
    assert missing.status == 404
    assert missing.body == {
        "error": "Sales invoice with reference: 1337 was not found",
        "symbolic": {"reference": "not_found"},
    }
    assert (deleted.status, gone.status) == (204, 404)
    assert gone.body == {"error": "record not found", "symbolic": {"id": "not_found"}}


# ---------------------------------------------------------------- sales invoice filters


async def test_sales_invoice_list_defaults_to_this_year(seeded: Api) -> None:
    store = seeded.emulator.store
    this_year = {
        i for i, r in store.invoices.items() if (r["invoice_date"] or T0.date()).year == 2026
    }
    assert 0 < len(this_year) < len(store.invoices), "the seed should span two years"
    default = await seeded.get("/sales_invoices.json?per_page=100")
    everything = await seeded.get(
        "/sales_invoices.json?filter=state:all,period:20000101..20991231&per_page=100"
    )
    no_period = await seeded.get("/sales_invoices.json?filter=state:all&per_page=100")
    sync_default = await seeded.get("/sales_invoices/synchronization.json")
    sync_all = await seeded.get("/sales_invoices/synchronization.json?filter=state:all")
    assert {i["id"] for i in default.body} == this_year
    assert {i["id"] for i in sync_default.body} == this_year
    assert len(everything.body) == len(no_period.body) == len(store.invoices)
    assert len(sync_all.body) == len(store.invoices)


async def test_sales_invoice_filters(api: Api) -> None:
    one = await api.new_contact(company_name="One", send_invoices_to_email="a@one.nl")
    two = await api.new_contact(company_name="Two")
    old = await api.sent_invoice(one["id"], reference="A", invoice_date="2025-03-01")
    api.clock.advance(minutes=1)
    draft = await api.new_invoice(two["id"], reference="B")
    api.clock.advance(minutes=1)
    dated_draft = await api.new_invoice(two["id"], reference="C", invoice_date="2026-02-01")

    async def ids(flt: str) -> list[str]:
        reply = await api.get(f"/sales_invoices.json?filter={flt}")
        assert reply.status == 200, reply.body
        return [i["id"] for i in reply.body]

    assert await ids("state:draft") == [draft["id"], dated_draft["id"]]
    assert await ids("state:draft|late") == [old["id"], draft["id"], dated_draft["id"]]
    assert await ids("period:prev_year") == [old["id"]]
    assert await ids("period:202503..202503") == [old["id"]]
    # A draft without an invoice date only matches periods that contain today.
    assert await ids("period:this_month") == [draft["id"]]
    assert await ids("period:202602..202602") == [dated_draft["id"]]
    assert await ids("reference:A|C") == [old["id"], dated_draft["id"]]
    assert await ids(f"contact_id:{two['id']}") == [draft["id"], dated_draft["id"]]
    assert await ids("contact_id:123") == []
    assert await ids("updated_after:2026-11-10T12:00:30Z") == [draft["id"], dated_draft["id"]]
    assert await ids(f"created_after:{draft['created_at']}") == [dated_draft["id"]]
    bad_state = await api.get("/sales_invoices.json?filter=state:lost")
    open_ended = await api.get("/sales_invoices.json?filter=period:20250101..")
    bad_period = await api.get("/sales_invoices.json?filter=period:someday")
    assert bad_state.status == 400
    assert bad_state.body == {
        "error": "Status is not included in the list",
        "symbolic": {"filter": "invalid"},
    }
    assert open_ended.body == {"error": "Period must have both a start and end date"}
    assert bad_period.status == 400


async def test_sales_invoice_synchronization(api: Api) -> None:
    contact = await api.new_contact()
    invoices = [await api.new_invoice(contact["id"]) for _ in range(3)]
    listing = await api.get("/sales_invoices/synchronization.json?filter=state:all")
    fetched = await api.post(
        "/sales_invoices/synchronization.json", {"ids": [invoices[2]["id"], "1"]}
    )
    assert listing.body == [{"id": i["id"], "version": i["version"]} for i in invoices]
    assert [i["id"] for i in fetched.body] == [invoices[2]["id"]]
    assert fetched.body[0]["details"] == invoices[2]["details"]


async def test_tax_rates_list_and_filters(api: Api) -> None:
    everything = await api.get("/tax_rates.json")
    twenty_one = await api.get("/tax_rates.json?filter=percentage:21")
    sales = await api.get("/tax_rates.json?filter=tax_rate_type:sales_invoice,country:EE")
    rate = twenty_one.body[0]
    assert set(rate) == {
        "id",
        "administration_id",
        "name",
        "percentage",
        "tax_rate_type",
        "show_tax",
        "active",
        "country",
        "created_at",
        "updated_at",
    }
    assert {r["tax_rate_type"] for r in twenty_one.body} == {"sales_invoice", "purchase_invoice"}
    assert all(r["percentage"] == "21.0" for r in twenty_one.body)
    assert sorted(r["percentage"] for r in sales.body) == ["22.0", "9.0"]
    zero_sales = [
        r
        for r in everything.body
        if r["tax_rate_type"] == "sales_invoice" and r["percentage"] in ("0.0", None)
    ]
    assert len(zero_sales) > 1  # several rates share a percentage: map by id, not by %


# ---------------------------------------------------------------- payments


async def test_payments_settle_the_invoice(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    invoice = await api.sent_invoice(contact["id"])  # 100 + 21% = 121
    path = f"/sales_invoices/{invoice['id']}/payments.json"
    partial = await api.post(path, {"payment": {"payment_date": "2026-11-11", "price": "21,00"}})
    halfway = await api.get(f"/sales_invoices/{invoice['id']}.json")
    rest = await api.post(
        path, {"payment": {"payment_date": "2026-11-12T10:00:00.000Z", "price": 100}}
    )
    paid = await api.get(f"/sales_invoices/{invoice['id']}.json")
    single = await api.get(f"/payments/{rest.body['id']}.json")
    paid_filter = await api.get("/sales_invoices.json?filter=state:paid")
    assert partial.status == 201
    assert partial.body["price"] == "21.0" and partial.body["invoice_type"] == "SalesInvoice"
    assert partial.body["invoice_id"] == invoice["id"]
    assert halfway.body["state"] == "open"
    assert (halfway.body["total_paid"], halfway.body["total_unpaid"]) == ("21.0", "100.0")
    assert halfway.body["version"] > invoice["version"]
    assert rest.body["payment_date"] == "2026-11-12"
    assert paid.body["state"] == "paid" and paid.body["paid_at"] == "2026-11-12"
    assert paid.body["total_unpaid"] == "0.0"
    assert [p["id"] for p in paid.body["payments"]] == [partial.body["id"], rest.body["id"]]
    assert single.body == rest.body
    assert [i["id"] for i in paid_filter.body] == [invoice["id"]]
    removed = await api.delete(f"/sales_invoices/{invoice['id']}/payments/{rest.body['id']}.json")
    reopened = await api.get(f"/sales_invoices/{invoice['id']}.json")
    assert removed.status == 204
    assert reopened.body["state"] == "open" and reopened.body["paid_at"] is None


async def test_payment_errors(api: Api) -> None:
    contact = await api.new_contact()
    draft = await api.new_invoice(contact["id"])
    path = f"/sales_invoices/{draft['id']}/payments.json"
    missing = await api.post(path, {"payment": {"price": "1"}})
    on_draft = await api.post(path, {"payment": {"payment_date": "2026-11-10", "price": "1"}})
    no_invoice = await api.post(
        "/sales_invoices/1/payments.json", {"payment": {"payment_date": "2026-11-10", "price": "1"}}
    )
    no_payment = await api.get("/payments/1.json")
    assert (missing.status, missing.body) == (400, {"error": "payment[payment_date] is missing"})
    assert on_draft.status == 400
    assert no_invoice.status == 404 and no_payment.status == 404


# ---------------------------------------------------------------- rate limits


async def test_429_has_the_vendor_headers_and_body(clock: FakeClock) -> None:
    options = _options(rate_limits=True, rate_scale=60.0)  # 150 requests per 5 s
    async for api in _serve(options, clock):
        for _ in range(150):
            assert (await api.get("/tax_rates.json")).status == 200
        refused = await api.get("/tax_rates.json")
        assert refused.status == 429
        assert refused.body == "Retry later"
        headers = refused.headers
        reset = int(clock.now.timestamp()) + 5
        assert headers["RateLimit-Limit"] == "150"
        assert headers["RateLimit-Remaining"] == "0"
        assert headers["RateLimit-Reset"] == str(reset)
        assert headers["Retry-After"] == str(reset)  # an epoch, as the spec documents
        assert api.emulator.counters.rate_limited == 1
        clock.advance(seconds=5)
        assert (await api.get("/tax_rates.json")).status == 200


def test_rate_windows_and_retry_after_in_seconds_quirk(clock: FakeClock) -> None:
    assert MoneybirdEmulator.default_rate_windows == (RateWindow(requests=150, per_seconds=300.0),)
    emulator = MoneybirdEmulator(_options(), clock, MoneybirdQuirks(retry_after_epoch=False))
    response = emulator.rate_limited_response(RateDecision(False, 150, 0, 12.2, 300.0))
    assert response.status == 429
    assert response.headers["Retry-After"] == "13"
    assert response.headers["RateLimit-Reset"] == str(int(T0.timestamp()) + 13)


# ---------------------------------------------------------------- seeding and determinism


def _tiny_seed() -> VendorSeed:
    contact = SeedContact(
        key="c1",
        kind="organization",
        name="Bakkerij De Vries B.V.",
        first_name=None,
        last_name=None,
        email="info@devries.nl",
        phone=None,
        website="https://devries.nl",
        address="Markt 1",
        postal_code="1234 AB",
        city="Gouda",
        country="NL",
        vat_number="NL001234567B01",
        coc_number="12345678",
        iban="NL91ABNA0417164300",
        bic="ABNANL2A",
        customer_number="1001",
        created_at=dt.datetime(2025, 1, 1, 9, 0, 0, 123456, tzinfo=dt.UTC),
        updated_at=dt.datetime(2025, 6, 1, 9, 0, tzinfo=dt.UTC),
    )
    lines = (SeedLine("Bread", Decimal("1.5"), Decimal("10.00"), Decimal(21)),)
    made = dt.datetime(2026, 10, 1, 9, 0, tzinfo=dt.UTC)

    def invoice(
        key: str, status: Any, number: str | None, payments: tuple[SeedPayment, ...]
    ) -> SeedInvoice:
        return SeedInvoice(
            key=key,
            contact_key="c1",
            number=number,
            issue_date=dt.date(2026, 10, 1),
            due_date=dt.date(2026, 10, 15),
            currency="EUR",
            status=status,
            lines=lines,
            payments=payments,
            created_at=made,
            updated_at=made,
        )

    return VendorSeed(
        contacts=(contact,),
        invoices=(
            invoice(
                "i1", "paid", "2026-0007", (SeedPayment(dt.date(2026, 10, 5), Decimal("18.15")),)
            ),
            invoice("i2", "overdue", "2026-0008", ()),
            invoice("i3", "draft", None, ()),
            invoice("i4", "cancelled", "2026-0009", ()),
        ),
    )


def test_seed_becomes_vendor_records_with_its_quirks(clock: FakeClock) -> None:
    emulator = MoneybirdEmulator(_options(), clock)
    emulator.load_seed(_tiny_seed())
    state = emulator.dump()
    contact = state["contacts"][0]
    assert contact["company_name"] == "Bakkerij De Vries B.V."
    assert contact["customer_id"] == "1001" and contact["tax_number"] == "NL001234567B01"
    assert contact["email"] == contact["send_invoices_to_email"] == "info@devries.nl"
    assert contact["address2"] is None  # seeded data carries nulls, API-created data ""
    assert contact["created_at"] == "2025-01-01T09:00:00.123Z"
    assert contact["version"] == int(dt.datetime(2025, 6, 1, 9, tzinfo=dt.UTC).timestamp())
    paid, late, draft, written_off = state["sales_invoices"]
    assert (paid["state"], paid["invoice_id"], paid["total_paid"]) == ("paid", "2026-0007", "18.15")
    assert paid["details"][0]["amount"] == "1,5 x" and paid["details"][0]["amount_decimal"] == "1.5"
    assert (late["state"], late["total_unpaid"]) == ("late", "18.15")
    assert (draft["state"], draft["invoice_date"], draft["invoice_id"]) == ("draft", None, None)
    assert written_off["state"] == "uncollectible"
    assert [p["price"] for p in state["payments"]] == ["18.15"]
    # New numbers continue after the seeded ones.
    sent = emulator.mutate("sales_invoices", draft["id"], {"send": True})
    assert sent["invoice_id"] == "2026-0010"


async def test_same_seed_gives_the_same_dump(clock: FakeClock) -> None:
    dumps = []
    for seed in (5, 5, 6):
        async for api in _serve(_options(seed=seed, contacts=30, invoices=30), clock):
            dumps.append(api.emulator.dump())
    assert dumps[0] == dumps[1]
    assert dumps[0]["contacts"] and dumps[0]["sales_invoices"]
    assert dumps[0] != dumps[2]
    ids = [c["id"] for c in dumps[0]["contacts"]]
    assert ids != [c["id"] for c in dumps[2]["contacts"]]


async def test_seeded_world_is_consistent(seeded: Api) -> None:
    state = seeded.emulator.dump()
    contact_ids = {c["id"] for c in state["contacts"]}
    for invoice in state["sales_invoices"]:
        assert invoice["contact_id"] in contact_ids
        total = Decimal(invoice["total_price_incl_tax"])
        assert Decimal(invoice["total_paid"]) + Decimal(invoice["total_unpaid"]) == total
        if invoice["state"] == "paid":
            assert Decimal(invoice["total_unpaid"]) == 0
        if invoice["state"] == "draft":
            assert invoice["invoice_id"] is None and invoice["invoice_date"] is None
        else:
            assert invoice["invoice_id"] is not None


# ---------------------------------------------------------------- control hooks


async def test_mutate_contact_is_seen_by_updated_after(api: Api) -> None:
    contact = await api.new_contact()
    api.clock.advance(seconds=30)
    changed = api.emulator.mutate("contacts", contact["id"], {"city": "Leiden"})
    newer = await api.get("/contacts/filter.json?filter=updated_after:2026-11-10T12:00:10Z")
    assert changed["city"] == "Leiden" and changed["version"] > contact["version"]
    assert [c["id"] for c in newer.body] == [contact["id"]]
    archived = api.emulator.mutate("contacts", contact["id"], {"archived": True})
    restored = api.emulator.mutate("contacts", contact["id"], {"archived": False})
    assert archived["archived"] is True and restored["archived"] is False
    assert restored["version"] > archived["version"]
    with pytest.raises(KeyError):
        api.emulator.mutate("contacts", "1", {"city": "x"})
    with pytest.raises(ValueError, match="company_name"):
        api.emulator.mutate("contacts", contact["id"], {"company_name": ""})
    with pytest.raises(ValueError):
        api.emulator.mutate("payments", contact["id"], {})


async def test_control_create_delete_archive_and_payment(api: Api) -> None:
    emulator = api.emulator
    contact = emulator.create(
        "contacts", {"company_name": "Made By Hand", "send_invoices_to_email": "x@y.nl"}
    )
    person = emulator.create(
        "contact_people", {"contact_id": contact["id"], "firstname": "A", "lastname": "B"}
    )
    invoice = emulator.create(
        "sales_invoices",
        {"contact_id": contact["id"], "send": True, "details_attributes": [{"price": "50"}]},
    )
    assert invoice["state"] == "open" and invoice["invoice_id"] == "2026-0001"
    payment = emulator.register_payment(invoice["id"], Decimal("60.50"), dt.date(2026, 11, 9))
    after = (await api.get(f"/sales_invoices/{invoice['id']}.json")).body
    assert payment["price"] == "60.5"
    assert after["state"] == "paid" and after["paid_at"] == "2026-11-09"
    uncollectible = emulator.create(
        "sales_invoices", {"contact_id": contact["id"], "details_attributes": [{"price": "5"}]}
    )
    marked = emulator.mutate("sales_invoices", uncollectible["id"], {"state": "open"})
    marked = emulator.mutate("sales_invoices", uncollectible["id"], {"state": "uncollectible"})
    assert marked["state"] == "uncollectible"
    with pytest.raises(ValueError):
        emulator.register_payment(
            emulator.create("sales_invoices", {"contact_id": contact["id"]})["id"],
            Decimal(1),
            dt.date(2026, 11, 9),
        )
    with pytest.raises(KeyError):
        emulator.register_payment("1", Decimal(1), dt.date(2026, 11, 9))
    emulator.delete("payments", payment["id"])
    assert (await api.get(f"/payments/{payment['id']}.json")).status == 404
    emulator.delete("contact_people", person["id"])
    archived = emulator.archive("contacts", contact["id"])
    assert archived["archived"] is True
    with pytest.raises(ValueError):
        emulator.archive("contacts", contact["id"])
    with pytest.raises(ValueError):
        emulator.archive("sales_invoices", invoice["id"])
    with pytest.raises(KeyError):
        emulator.delete("sales_invoices", "1")
    emulator.delete("sales_invoices", invoice["id"])
    assert invoice["id"] not in {i["id"] for i in emulator.dump()["sales_invoices"]}
    assert emulator.counters.writes == 0  # control actions are not API writes


async def test_control_api_over_http(api: Api) -> None:
    contact = await api.new_contact()
    root = api.handle.url
    async with api.session.patch(
        f"{root}/_sandbox/moneybird/contacts/{contact['id']}", json={"city": "Assen"}
    ) as response:
        assert response.status == 200
        assert (await response.json())["city"] == "Assen"
    async with api.session.patch(f"{root}/_sandbox/moneybird/contacts/1", json={}) as response:
        assert response.status == 404
    async with api.session.get(f"{root}/_sandbox/moneybird/state") as response:
        state = await response.json()
        assert set(state) == {
            "contacts",
            "contact_people",
            "sales_invoices",
            "payments",
            "tax_rates",
        }


async def test_reset_forgets_records_and_counters(api: Api) -> None:
    await api.new_contact()
    api.emulator.reset()
    assert api.emulator.dump()["contacts"] == []
    assert api.emulator.counters.requests == {} and api.emulator.counters.writes == 0
    assert len(api.emulator.dump()["tax_rates"]) > 0


async def test_writes_are_counted_but_reads_and_sync_posts_are_not(api: Api) -> None:
    contact = await api.new_contact()
    await api.patch(f"/contacts/{contact['id']}.json", {"contact": {"city": "X"}})
    await api.get("/contacts.json")
    await api.post("/contacts/synchronization.json", {"ids": [contact["id"]]})
    await api.post("/contacts.json", {"contact": {}})  # refused: not a write
    assert api.emulator.counters.writes == 2
    assert api.emulator.counters.requests["POST /contacts/synchronization.json"] == 1


async def test_control_hooks_refuse_attributes_the_api_would_ignore(api: Api) -> None:
    contact = await api.new_contact()
    with pytest.raises(ValueError, match="email"):
        api.emulator.mutate("contacts", contact["id"], {"email": "x@y.nl"})
    with pytest.raises(ValueError, match="total_paid"):
        api.emulator.create("sales_invoices", {"contact_id": contact["id"], "total_paid": "1"})
    with pytest.raises(KeyError, match="contact_people 1 not found"):
        api.emulator.mutate("contact_people", "1", {"phone": "1"})


async def test_mark_as_uncollectible_over_the_api(api: Api) -> None:
    contact = await api.new_contact(send_invoices_to_email="ap@acme.nl")
    draft = await api.new_invoice(contact["id"])
    refused = await api.patch(f"/sales_invoices/{draft['id']}/mark_as_uncollectible.json", {})
    sent = await api.sent_invoice(contact["id"])
    marked = await api.patch(
        f"/sales_invoices/{sent['id']}/mark_as_uncollectible.json",
        {"uncollectible_date": "2026-11-09"},
    )
    assert refused.status == 400
    assert marked.status == 200
    assert marked.body["state"] == "uncollectible"
    assert marked.body["marked_uncollectible_on"] == "2026-11-09"


async def test_lost_create_is_found_again_by_customer_id(api: Api) -> None:
    options = api.handle.options
    body = {"contact": {"company_name": "Once", "customer_id": "T-1"}}
    options.fault_rate, options.fault_kinds = 1.0, ("lost_response",)
    with pytest.raises(aiohttp.ClientError):
        await api.post("/contacts.json", body)
    options.fault_rate = 0.0
    retry = await api.post("/contacts.json", body)
    found = await api.get("/contacts/customer_id/T-1.json")
    assert retry.status == 422  # a blind retry collides with the committed create
    assert retry.body["error"] == {"customer_id": ["has already been taken"]}
    assert found.status == 200 and found.body["company_name"] == "Once"
    assert api.emulator.counters.faults == {"lost_response": 1}
    assert api.emulator.counters.writes == 1


@pytest.fixture
def sandbox_vendors() -> tuple[str, ...]:
    return ("moneybird",)


async def test_shared_sandbox_fixture_serves_the_seeded_share(
    sandbox: SandboxHandle, sandbox_http: aiohttp.ClientSession
) -> None:
    base = sandbox.base_urls["moneybird"]
    token = sandbox.credentials["moneybird"]["token"]
    assert base.endswith("/moneybird/api/v2/123456789")
    async with sandbox_http.get(
        f"{base}/contacts.json?per_page=100", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        contacts = await response.json()
    assert response.status == 200
    assert len(contacts) == len(sandbox.emulators["moneybird"].dump()["contacts"]) > 0
    assert response.headers.get("RateLimit-Limit") is None  # only documented on the 429
