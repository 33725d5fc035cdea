"""Bad vendor data, through the real adapters and the Engine, against the sandbox.

A proxy between the Simplicate adapter and the sandbox rewrites answers: one record made
bad in a chosen way, or a whole page broken. Every case must end the same way: no crash
(``Engine.once`` returns), the bad record quarantined with a reason that names the
problem, refused by the other vendor and dead-lettered with that vendor's reason, or
carried faithfully, and a broken page retried or stopped with a clear log line; every
good record syncs to Moneybird, once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import pytest

from syncd.errors import SkipRecord
from syncd.sandbox.base import SandboxOptions
from syncd.store import tables as t
from tests.reliability.conftest import JsonLogs
from tests.reliability.harness import (
    SyncRig,
    Transform,
    dumps,
    replace_body,
    rewrite_json,
    sync_rig,
    truncate,
)

# A small world: Simplicate and Moneybird each get a share of 12 contacts and 8 invoices.
WORLD = SandboxOptions(seed=6, contacts=12, invoices=8, overlap=0.0, rate_limits=False)
HANG_GUARD = 120.0  # seconds; a listing that never ends must not hang the suite

Collection = Literal["organization", "invoice", "payment"]
PATHS: dict[Collection, str] = {
    "organization": r"/simplicate/api/v2/crm/organization(/[^/]+)?$",
    "invoice": r"/simplicate/api/v2/invoices/invoice(/[^/]+)?$",
    "payment": r"/simplicate/api/v2/invoices/payment(/[^/]+)?$",
}


def not_a_sweep(query: Mapping[str, str]) -> bool:
    """Listings and single reads, not the id sweeps of reconcile (``select=id,...``)."""
    return "select" not in query


def change_record(external_id: str, change: Callable[[dict[str, Any]], Any]) -> Transform:
    """Apply ``change`` to the record ``external_id`` wherever an answer holds it."""

    def edit(data: Any) -> Any:
        body = data.get("data") if isinstance(data, dict) else None
        rows = body if isinstance(body, list) else [body]
        for index, row in enumerate(rows):
            if isinstance(row, dict) and row.get("id") == external_id:
                replaced = change(row)
                if replaced is not None:  # the change swaps the whole row
                    if isinstance(body, list):
                        body[index] = replaced
                    else:
                        data["data"] = replaced
        return data

    return rewrite_json(edit)


def first_id(rig: SyncRig, collection: Collection) -> str:
    rows = rig.emulator_state("simplicate")[collection]
    ids = sorted(r["id"] for r in rows)
    assert ids, f"the seeded world has no Simplicate {collection}"
    return ids[0]


def with_dependents(rig: SyncRig, victim: str) -> set[str]:
    """The victim, and the invoices of a victim contact (they cannot sync without it)."""
    invoices = rig.emulator_state("simplicate")["invoice"]
    return {victim} | {
        row["id"]
        for row in invoices
        if victim in (row.get("organization_id"), row.get("person_id"))
    }


async def assert_good_records_synced(rig: SyncRig, *, except_ids: set[str]) -> None:
    """Every other Simplicate contact and invoice is linked, and exists once in Moneybird."""
    state = rig.emulator_state("simplicate")
    contacts = {r["id"] for r in state["organization"] + state["person"]} - except_ids
    invoices = {r["id"] for r in state["invoice"]} - except_ids
    for resource, wanted in (("contacts", contacts), ("invoices", invoices)):
        crm_links = await rig.rows(
            t.Link,
            t.Link.account_id == await rig.account_id("crm"),
            t.Link.resource == resource,
        )
        books_links = await rig.rows(
            t.Link,
            t.Link.account_id == await rig.account_id("books"),
            t.Link.resource == resource,
        )
        canonical = {link.external_id: link.canonical_id for link in crm_links}
        missing = sorted(wanted - set(canonical))
        assert not missing, f"good Simplicate {resource} not synced: {missing}"
        at_books = {link.canonical_id for link in books_links}
        absent = sorted(i for i in wanted if canonical[i] not in at_books)
        assert not absent, f"good Simplicate {resource} never reached Moneybird: {absent}"
    books = rig.emulator_state("moneybird")
    books_contacts = await rig.linked("books", "contacts")
    assert len(books["contacts"]) == len(books_contacts), "Moneybird holds a duplicate contact"
    books_invoices = await rig.linked("books", "invoices")
    assert len(books["sales_invoices"]) == len(books_invoices), (
        "Moneybird holds a duplicate invoice"
    )


async def pull_statuses(rig: SyncRig, account: str) -> list[str]:
    return [run.status for run in await rig.runs(account) if run.job == "pull"]


# --------------------------------------------------------------------------- one bad record


def setter(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(row: dict[str, Any]) -> None:
        row[key] = value

    return change


def dropper(key: str) -> Callable[[dict[str, Any]], None]:
    def change(row: dict[str, Any]) -> None:
        row.pop(key, None)

    return change


def first_line(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(row: dict[str, Any]) -> None:
        row["invoice_lines"][0][key] = value

    return change


def whole_row(value: Any) -> Callable[[dict[str, Any]], Any]:
    def change(row: dict[str, Any]) -> Any:
        return value

    return change


@dataclass(frozen=True)
class BadRecord:
    name: str
    collection: Collection
    change: Callable[[dict[str, Any]], Any]
    outcome: Literal["quarantined", "quarantined without id", "refused", "carried"]
    reason: str = ""  # expected in the quarantine reason or the dead letter's error
    carried: tuple[str, Any] | None = None  # canonical field, value Moneybird must hold


BAD_RECORDS = [
    BadRecord("wrong type", "organization", setter("email", 12345), "quarantined", "email is a int"),
    BadRecord("missing name", "organization", dropper("name"), "quarantined", "without a name"),
    BadRecord("missing id", "organization", dropper("id"), "quarantined without id", "without an id"),
    BadRecord("id of a wrong type", "organization", setter("id", 42), "quarantined without id", "without an id"),
    BadRecord("row not an object", "organization", whole_row("garbage"), "quarantined without id", "not an object"),
    BadRecord("nested wrong type", "organization", setter("visiting_address", [1, 2]), "quarantined", "visiting_address is a list"),
    BadRecord("invalid e-mail", "organization", setter("email", "not an e-mail@@"), "refused", "invalid"),
    BadRecord("invalid IBAN", "organization", setter("bank_account", "NL00BANK0123456789"), "carried", carried=("iban", "NL00BANK0123456789")),
    BadRecord("invalid VAT number", "organization", setter("vat_number", "XX123"), "carried", carried=("vat_number", "XX123")),
    BadRecord("invoice total of a wrong type", "invoice", setter("total_including_vat", "lots"), "quarantined", "total_including_vat"),
    BadRecord("invoice date out of range", "invoice", setter("date", "2026-13-45"), "quarantined", "date"),
    BadRecord("invoice without lines", "invoice", setter("invoice_lines", None), "quarantined", "totals do not add up"),
    BadRecord("negative line price", "invoice", first_line("price", Decimal("-500.00")), "quarantined", "totals do not add up"),
    BadRecord("absurd line quantity", "invoice", first_line("amount", Decimal("1E+20")), "quarantined", "line 1 quantity 100000000000000000000 is out of range"),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_RECORDS, ids=lambda c: c.name)
async def test_a_bad_record_is_isolated_and_the_rest_syncs(
    case: BadRecord, sqlite_db: str, json_logs: JsonLogs
) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        victim = first_id(rig, case.collection)
        rule = rig.proxy.add(
            "GET", PATHS[case.collection], change_record(victim, case.change), when=not_a_sweep
        )
        # Reconcile is left out here: see test_reconcile_meets_a_quarantined_record.
        totals = await rig.engine.once(reconcile=False)

        assert rule.hits > 0, "the bad record was never served"
        quarantined = await rig.quarantined("crm")
        if case.outcome == "quarantined":
            assert victim in quarantined, f"not quarantined; quarantine holds {quarantined}"
            assert case.reason in quarantined[victim]
            assert json_logs.matching(victim) or totals["crm"].skipped > 0
        elif case.outcome == "quarantined without id":
            assert None in quarantined, f"no id-less entry; quarantine holds {quarantined}"
            assert case.reason in quarantined[None]
        elif case.outcome == "refused":
            dead = await rig.rows(
                t.Outbox,
                t.Outbox.account_id == await rig.account_id("books"),
                t.Outbox.state == "dead",
            )
            assert dead, "the write Moneybird refused was not dead-lettered"
            assert all(case.reason in (row.last_error or "") for row in dead)
            assert json_logs.matching("write_dead_lettered")
        else:
            assert case.carried is not None
            field, value = case.carried
            crm_links = await rig.rows(
                t.Link,
                t.Link.account_id == await rig.account_id("crm"),
                t.Link.external_id == victim,
            )
            (link,) = crm_links
            books = await rig.rows(
                t.Link,
                t.Link.account_id == await rig.account_id("books"),
                t.Link.canonical_id == link.canonical_id,
                t.Link.resource == "contacts",
            )
            assert [b.base.get(field) for b in books] == [value]
        assert "error" not in await pull_statuses(rig, "crm")
        excluded = with_dependents(rig, victim) if case.outcome != "carried" else set()
        await assert_good_records_synced(rig, except_ids=excluded)


# --------------------------------------------------------------------------- storage limits

HUGE_NAME = "Huge " + "X" * 1_000_000
RANDOM_TEXT = "".join(f"{(n * 2654435761) % 2**32:08x}" for n in range(1000))  # 8000 chars


def victim_name(rig: SyncRig, victim: str) -> bytes:
    rows = rig.emulator_state("simplicate")["organization"]
    (row,) = [r for r in rows if r["id"] == victim]
    return str(row["name"]).encode()


def in_bytes(
    old_of: Callable[[SyncRig, str], bytes], new: bytes
) -> Callable[[SyncRig, str], Transform]:
    def make(rig: SyncRig, victim: str) -> Transform:
        old = old_of(rig, victim)

        def transform(status: int, body: bytes) -> tuple[int, bytes, str | None]:
            return status, body.replace(old, new), None

        return transform

    return make


def as_record(change: Callable[[dict[str, Any]], Any]) -> Callable[[SyncRig, str], Transform]:
    return lambda rig, victim: change_record(victim, change)


def nan_amount(rig: SyncRig, victim: str) -> Transform:
    marked = change_record(victim, setter("amount", Decimal("987654.321")))

    def transform(status: int, body: bytes) -> tuple[int, bytes, str | None]:
        status, body, _ = marked(status, body)
        return status, body.replace(b"987654.321", b"NaN"), None

    return transform


@dataclass(frozen=True)
class Unstorable:
    name: str
    collection: Collection
    make: Callable[[SyncRig, str], Transform]
    outcome: Literal["quarantined", "carried"]
    expect: str  # the quarantine reason, or the value Moneybird must hold
    resource: str = "contacts"
    field: str = "name"
    logged: str | None = None  # a log line that must say what happened
    xfail: str | None = None  # a known bug, on "postgres" or "both"
    xfail_on: str = "both"
    held_by: str = "books"  # whose link base must hold a carried value


UNSTORABLE = [
    Unstorable("huge name", "organization", as_record(setter("name", HUGE_NAME)), "carried", HUGE_NAME),
    Unstorable("NUL in a name", "organization", in_bytes(victim_name, b"Bad\\u0000Name"), "carried", "Bad\ufffdName", logged="replaced by U+FFFD"),
    Unstorable("lone surrogate escape", "organization", in_bytes(victim_name, b"Bad\\ud800Name"), "carried", "Bad\ufffdName", logged="replaced by U+FFFD"),
    Unstorable("invalid UTF-8", "organization", in_bytes(victim_name, b"Bad \xff\xfe bytes"), "carried", "Bad \ufffd\ufffd bytes", logged="not valid utf-8"),
    Unstorable("NaN amount", "payment", nan_amount, "quarantined", "amount is nan"),
    Unstorable("negative payment", "payment", as_record(setter("amount", Decimal("-50.00"))), "carried", "-50.00", resource="payments", field="amount", held_by="crm"),
    Unstorable("huge incompressible e-mail", "organization", as_record(setter("email", RANDOM_TEXT + "@example.nl")), "quarantined", "email is 8011 characters long"),
    Unstorable("absurd payment amount", "payment", as_record(setter("amount", Decimal("1E+20"))), "quarantined", "amount 100000000000000000000 is out of range"),
]  # fmt: skip


@pytest.mark.parametrize("case", UNSTORABLE, ids=lambda c: c.name)
async def test_text_and_numbers_no_store_can_hold(
    case: Unstorable,
    migrated_db_url: str,
    db_backend: str,
    json_logs: JsonLogs,
    request: pytest.FixtureRequest,
) -> None:
    if case.xfail and case.xfail_on in ("both", db_backend):
        request.applymarker(pytest.mark.xfail(strict=True, reason=case.xfail))
    async with sync_rig(migrated_db_url, options=WORLD) as rig:
        victim = first_id(rig, case.collection)
        rule = rig.proxy.add(
            "GET", PATHS[case.collection], case.make(rig, victim), when=not_a_sweep
        )
        await rig.engine.once(reconcile=False)

        assert rule.hits > 0
        if case.outcome == "quarantined":
            quarantined = await rig.quarantined("crm")
            assert victim in quarantined, f"not quarantined; quarantine holds {quarantined}"
            assert case.expect in quarantined[victim]
        else:
            (crm,) = await rig.rows(t.Link, t.Link.external_id == victim)
            holders = await rig.rows(
                t.Link,
                t.Link.account_id == await rig.account_id(case.held_by),
                t.Link.resource == case.resource,
                t.Link.canonical_id == crm.canonical_id,
            )
            assert [h.base.get(case.field) for h in holders] == [case.expect]
        if case.logged:
            assert json_logs.matching(case.logged), f"no log line says {case.logged!r}"
        assert "error" not in await pull_statuses(rig, "crm")
        excluded = with_dependents(rig, victim) if case.outcome == "quarantined" else set()
        await assert_good_records_synced(rig, except_ids=excluded)


async def test_reconcile_meets_a_quarantined_record(sqlite_db: str, json_logs: JsonLogs) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        victim = first_id(rig, "organization")
        rig.proxy.add(
            "GET",
            PATHS["organization"],
            change_record(victim, setter("email", 12345)),
            when=not_a_sweep,
        )
        await rig.engine.once()  # the id sweep lists the victim; it is not linked

        assert victim in await rig.quarantined("crm")
        assert "error" not in [r.status for r in await rig.runs("crm")]
        await assert_good_records_synced(rig, except_ids=with_dependents(rig, victim))


# --------------------------------------------------------------------------- a bad page

LISTING = PATHS["organization"]


@pytest.mark.parametrize(
    ("name", "transform", "logged"),
    [
        ("truncated JSON", truncate(0.6), "garbled JSON"),
        ("HTML error page with 200", replace_body(b"<!DOCTYPE html><html><body><h1>Oops</h1></body></html>", "text/html"), "HTML page"),
        ("empty body with 200", replace_body(b"", "application/json"), "empty body"),
        ("not JSON at all", replace_body(b"\x00\x01garbage\xff", "application/json"), "garbled JSON"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)  # fmt: skip
async def test_a_broken_page_is_read_again(
    name: str, transform: Transform, logged: str, sqlite_db: str, json_logs: JsonLogs
) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        rule = rig.proxy.add("GET", LISTING, transform, times=1, when=not_a_sweep)
        await rig.engine.once()

        assert rule.hits == 1
        retried = json_logs.matching(logged, "retry 1")
        assert retried, f"no log line says the page was {logged!r} and is retried"
        assert "account crm" in retried[0]["event"]
        assert await rig.quarantined("crm") == {}
        assert "error" not in await pull_statuses(rig, "crm")
        await assert_good_records_synced(rig, except_ids=set())


async def test_a_page_that_stays_broken_fails_the_job_then_resumes(
    sqlite_db: str, json_logs: JsonLogs
) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        html = b"<html><body>Maintenance</body></html>"
        rule = rig.proxy.add("GET", LISTING, replace_body(html, "text/html"), when=not_a_sweep)
        first = await rig.engine.once()

        assert rule.hits >= 2, "the broken page was not retried"
        assert any("HTML page" in e for e in first["crm"].errors)
        failed = json_logs.matching("job_failed", "HTML page")
        assert failed and failed[0]["account"] == "crm"
        assert "error" in await pull_statuses(rig, "crm")

        rig.proxy.rules.clear()  # the vendor recovers
        await rig.engine.once()
        await assert_good_records_synced(rig, except_ids=set())
        assert await rig.quarantined("crm") == {}, "records quarantined while waiting stay so"


async def test_the_same_record_on_two_pages_is_synced_once(
    sqlite_db: str, json_logs: JsonLogs
) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        rig.engine.accounts["crm"].adapter.resource("contacts").page_size = 2  # type: ignore[attr-defined]
        seen: list[dict[str, Any]] = []

        def repeat_first(data: Any) -> Any:
            rows = data.get("data")
            if isinstance(rows, list) and rows:
                if not seen:
                    seen.append(dict(rows[0]))
                elif all(r.get("id") != seen[0]["id"] for r in rows if isinstance(r, dict)):
                    rows.append(dict(seen[0]))
            return data

        rule = rig.proxy.add(
            "GET", r"/crm/organization$", rewrite_json(repeat_first), when=not_a_sweep
        )
        await rig.engine.once()

        assert rule.hits >= 3 and seen, "the listing did not take several pages"
        crm_links = await rig.rows(t.Link, t.Link.external_id == seen[0]["id"])
        assert len(crm_links) == 1
        await assert_good_records_synced(rig, except_ids=set())


async def test_a_listing_that_never_ends_is_stopped(sqlite_db: str, json_logs: JsonLogs) -> None:
    async with sync_rig(sqlite_db, options=WORLD) as rig:
        rig.engine.accounts["crm"].adapter.resource("contacts").page_size = 2  # type: ignore[attr-defined]
        first_page: list[bytes] = []

        def same_page_forever(status: int, body: bytes) -> tuple[int, bytes, str | None]:
            # The vendor ignores offset and paging: the first full page, again and again,
            # and a total that promises ever more.
            if not first_page:
                data = json.loads(body, parse_float=Decimal)
                data["metadata"] = {"count": 1_000_000}
                first_page.append(dumps(data))
            return 200, first_page[0], "application/json"

        rule = rig.proxy.add("GET", r"/crm/organization$", same_page_forever, when=not_a_sweep)
        totals = await asyncio.wait_for(rig.engine.once(), HANG_GUARD)

        assert rule.hits < 50, f"the listing went on for {rule.hits} pages"
        assert any("pagination loop" in e for e in totals["crm"].errors)
        assert json_logs.matching("job_failed", "pagination loop")
        links = await rig.rows(t.Link, t.Link.resource == "contacts")
        assert len({(link.account_id, link.external_id) for link in links}) == len(links)


async def test_garbled_and_html_pages_from_both_vendors_are_retried(
    sqlite_db: str, json_logs: JsonLogs
) -> None:
    # The sandbox's own fault injection: 30 % of reads at either vendor answer 200 with a
    # truncated JSON body or an HTML page. Six tries per call make a lost page unlikely
    # (0.3**6); the checkpoint makes one harmless: the next pass resumes.
    options = SandboxOptions(
        seed=6,
        contacts=12,
        invoices=8,
        overlap=0.0,
        rate_limits=False,
        fault_rate=0.3,
        fault_kinds=("garbled", "html"),
    )
    async with sync_rig(sqlite_db, options=options, proxied=()) as rig:
        await rig.engine.once()
        rig.handle.options.fault_rate = 0.0
        await rig.engine.once()

        faults = {v: rig.handle.counters(v).faults for v in ("simplicate", "moneybird")}
        assert all(sum(f.values()) > 0 for f in faults.values()), faults
        for vendor in ("simplicate", "moneybird"):
            assert json_logs.matching(vendor, "retry"), f"no retry logged for {vendor}"
        await assert_good_records_synced(rig, except_ids=set())
        books_contacts = rig.emulator_state("moneybird")["contacts"]
        crm_contacts = rig.emulator_state("simplicate")
        crm_count = len(crm_contacts["organization"]) + len(crm_contacts["person"])
        assert len(await rig.linked("crm", "contacts")) == crm_count, "a duplicate in Simplicate"
        assert len(await rig.linked("books", "contacts")) == len(books_contacts)


# --------------------------------------------------------------------------- every mapping


def _simplicate_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from syncd.adapters.simplicate import mapping
    from tests.adapters.test_simplicate_mapping import load

    def contact() -> Any:
        raw = load("organization")["data"]
        return mapping.contact_to_canonical({**raw, "email": RANDOM_TEXT + "@example.nl"})

    def payment() -> Any:
        return mapping.payment_to_canonical({**load("payment")["data"], "amount": "1E+20"})

    return [("contact", contact, "email"), ("payment", payment, "amount")]


def _moneybird_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from syncd.adapters.moneybird import mapping
    from tests.adapters.test_moneybird_mapping import spec_rates, vendor

    def contact() -> Any:
        huge = RANDOM_TEXT + "@example.nl"
        raw = {**vendor("contact_company"), "email": huge, "send_invoices_to_email": huge}
        return mapping.contact_to_canonical(raw)

    def payment() -> Any:
        return mapping.payment_to_canonical({**vendor("payment_single"), "price": "1E+20"})

    def invoice() -> Any:
        # Beyond what even the arithmetic of a price-including-VAT line can round.
        raw = vendor("invoice_open")
        detail = {**raw["details"][0], "price": "1E+70"}
        detail.pop("total_price_excl_tax_with_discount", None)  # computed from the price
        details = [detail]
        bad = {**raw, "details": details, "prices_are_incl_tax": True}
        return mapping.invoice_to_canonical(bad, spec_rates())

    return [
        ("contact", contact, "email"),
        ("payment", payment, "amount"),
        ("invoice", invoice, "range"),
    ]


def _perfex_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from syncd.adapters.perfex import mapping
    from tests.adapters.test_perfex_mapping import (
        COUNTRIES,
        MODES,
        base_customer,
        base_payment,
        base_primary,
    )

    def contact() -> Any:
        primary = base_primary(email=RANDOM_TEXT + "@example.nl")
        return mapping.contact_to_canonical(base_customer(), primary, COUNTRIES)

    def payment() -> Any:
        return mapping.payment_to_canonical(base_payment(amount="1E+20"), MODES)

    return [("contact", contact, "email"), ("payment", payment, "amount")]


def _simplbooks_cases() -> list[tuple[str, Callable[[], Any], str]]:
    from syncd.adapters.simplbooks import mapping
    from tests.adapters.test_simplbooks_mapping import TODAY, load

    def contact() -> Any:
        data = load("clients_get_spec.json")["data"]
        client = {**data["Client"], "e_mail": RANDOM_TEXT + "@example.nl"}
        return mapping.contact_to_canonical({**data, "Client": client})

    def payment() -> Any:
        data = load("incomings_get_spec.json")["data"]
        incoming = {**data["Incoming"], "income_sum": Decimal("1E+20")}
        return mapping.payment_to_canonical({**data, "Incoming": incoming}, 5004)

    def invoice() -> Any:
        data = load("invoices_get_paid.json")["data"]
        header = {**data["Invoice"], "total_sum": Decimal("1E+70"), "remnant": Decimal("-1E+70")}
        return mapping.invoice_to_canonical({**data, "Invoice": header}, today=TODAY)

    return [
        ("contact", contact, "email"),
        ("payment", payment, "amount"),
        ("invoice", invoice, "range"),
    ]


MAPPING_CASES = [
    pytest.param(vendor, resource, name, id=f"{vendor}-{resource}")
    for vendor, cases in (
        ("simplicate", _simplicate_cases),
        ("moneybird", _moneybird_cases),
        ("perfex", _perfex_cases),
        ("simplbooks", _simplbooks_cases),
    )
    for resource, _, name in cases()
]


@pytest.mark.parametrize(("vendor", "resource", "named"), MAPPING_CASES)
def test_every_mapping_refuses_what_the_store_cannot_hold(
    vendor: str, resource: str, named: str
) -> None:
    """Each vendor's mapping makes an unstorable record a SkipRecord that names the field."""
    cases = {
        "simplicate": _simplicate_cases,
        "moneybird": _moneybird_cases,
        "perfex": _perfex_cases,
        "simplbooks": _simplbooks_cases,
    }[vendor]()
    (to_canonical,) = [run for r, run, _ in cases if r == resource]
    with pytest.raises(SkipRecord) as refused:
        to_canonical()
    assert named in refused.value.reason
    assert refused.value.external_id, "the refusal does not say which record it is"


def test_the_models_limits_are_what_the_store_holds() -> None:
    """The largest number the model lets through binds on both backends; the next does not."""
    from sqlalchemy.dialects import postgresql, sqlite

    from syncd.core import model
    from syncd.store.db import ExactNumeric

    columns = {
        "amount": (t.Payment.__table__.c.amount.type, Decimal("0.01")),
        "quantity": (t.InvoiceLine.__table__.c.quantity.type, Decimal("0.0001")),
        "vat_rate": (t.InvoiceLine.__table__.c.vat_rate.type, Decimal("0.01")),
    }
    for name, (column, step) in columns.items():
        assert isinstance(column, ExactNumeric)
        largest = model.NUMBER_LIMITS[name] - step
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            for value in (largest, -largest):
                assert column.process_bind_param(value, dialect) == value
        with pytest.raises(ValueError):
            column.process_bind_param(model.NUMBER_LIMITS[name], sqlite.dialect())
    # Indexed text: the worst case (4 UTF-8 bytes a character) fits a PostgreSQL btree entry.
    assert max(model.TEXT_LIMITS.values()) * 4 < 2704


async def test_a_record_with_a_huge_id_is_quarantined_without_it(
    migrated_db_url: str, json_logs: JsonLogs
) -> None:
    """An id no index can hold (8 KB) quarantines its record with no id; the rest syncs."""
    async with sync_rig(migrated_db_url, options=WORLD) as rig:
        victim = first_id(rig, "organization")
        huge = "organization:" + RANDOM_TEXT
        rule = rig.proxy.add(
            "GET",
            PATHS["organization"],
            change_record(victim, setter("id", huge)),
            when=not_a_sweep,
        )
        await rig.engine.once(reconcile=False)

        assert rule.hits > 0
        quarantined = await rig.quarantined("crm")
        assert None in quarantined, f"no id-less entry; quarantine holds {quarantined}"
        assert "id is 8013 characters long" in quarantined[None]
        assert "error" not in await pull_statuses(rig, "crm")
        await assert_good_records_synced(rig, except_ids=with_dependents(rig, victim))


def test_every_mapping_refuses_an_id_too_long_to_index() -> None:
    from syncd.adapters.base import Skipped
    from syncd.adapters.moneybird import mapping as moneybird
    from syncd.adapters.perfex import mapping as perfex
    from syncd.adapters.simplbooks import mapping as simplbooks
    from syncd.adapters.simplicate import mapping as simplicate
    from tests.adapters.test_moneybird_mapping import vendor
    from tests.adapters.test_perfex_mapping import COUNTRIES, base_customer
    from tests.adapters.test_simplbooks_mapping import load as simplbooks_load
    from tests.adapters.test_simplicate_mapping import load as simplicate_load

    long_digits = "1" * 300
    clients = simplbooks_load("clients_get_spec.json")["data"]
    refusals: list[Callable[[], Any]] = [
        lambda: simplicate.contact_to_canonical(
            {**simplicate_load("organization")["data"], "id": "organization:" + "a" * 300}
        ),
        lambda: moneybird.contact_to_canonical({**vendor("contact_company"), "id": long_digits}),
        lambda: perfex.contact_to_canonical(base_customer(userid=long_digits), None, COUNTRIES),
        lambda: simplbooks.contact_to_canonical(
            {**clients, "Client": {**clients["Client"], "id": long_digits}}
        ),
    ]
    for refuse in refusals:
        with pytest.raises(SkipRecord) as refused:
            refuse()
        assert refused.value.external_id is None
    # What an adapter quarantines never carries such an id, whoever built it.
    assert Skipped("x" * 256, "bad", {}).external_id is None
    assert Skipped("x" * 255, "bad", {}).external_id == "x" * 255
