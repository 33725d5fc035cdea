"""The operator commands (syncd.operator) on state the engine built from fake vendors.

The engine runs on ``FakeAdapter``s over the same settings the commands read (two
moneybird-shaped accounts, "crm" and "books"), into a migrated database on SQLite and
PostgreSQL. The commands build their own runtime from the settings; their decisions only
plan outbox rows, so no request leaves the process.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.fake import FakeAdapter, FakeVendor
from syncd.core.model import (
    Contact,
    Invoice,
    InvoiceLine,
    Payment,
    normalise,
    with_computed_totals,
)
from syncd.errors import SchemaBehind
from syncd.operator import (
    OperatorError,
    conflicts_list_command,
    conflicts_resolve_command,
    conflicts_show_command,
    explain_command,
    field_hint,
    matches_decide_command,
    matches_list_command,
    parse_field_value,
    status_command,
)
from syncd.runner import Engine
from syncd.settings import Settings, load_settings
from syncd.store import tables as t
from tests.engine.helpers import VirtualClock

Maker = async_sessionmaker[AsyncSession]

CONFIG = """\
[database]
url = "{url}"

[[workspace]]
name = "ws"

  [[workspace.account]]
  name = "crm"
  vendor = "moneybird"
  base_url = "http://127.0.0.1:9/crm/api/v2/1"
  allow_insecure_http = true
  credentials = {{ token = "crm-token-secret" }}

  [[workspace.account]]
  name = "books"
  vendor = "moneybird"
  base_url = "http://127.0.0.1:9/books/api/v2/1"
  allow_insecure_http = true
  credentials = {{ token = "books-token-secret" }}

  [[workspace.flow]]
  resource = "contacts"
  accounts = ["crm", "books"]
  conflict = "manual"

  [[workspace.flow]]
  resource = "invoices"
  accounts = ["crm", "books"]
  conflict = "manual"
"""


def write_config(directory: Path, url: str) -> tuple[Path, Settings]:
    """A config file for ``url`` whose accounts are the fake vendors' names."""
    path = directory / "syncd.toml"
    path.write_text(CONFIG.format(url=url), encoding="utf-8")
    return path, load_settings(path)


@dataclass
class World:
    """Two fake vendors and an engine over them, on the configured accounts."""

    settings: Settings
    crm: FakeVendor
    books: FakeVendor

    def engine(self, sessionmaker: Maker) -> Engine:
        # Virtual time from the real present: the commands plan outbox rows at real time,
        # and the engine must find them due.
        clock = VirtualClock()
        clock.now = dt.datetime.now(dt.UTC)
        vendors = {"crm": self.crm, "books": self.books}
        adapters = {name: FakeAdapter(v, account=name, page_size=7) for name, v in vendors.items()}
        return Engine(
            self.settings,
            sessionmaker,
            adapters,
            clock=clock,
            sleep=clock.sleep,
            call_count=lambda name: vendors[name].calls,
        )


def new_world(settings: Settings) -> World:
    return World(
        settings,
        FakeVendor(name="crm", change_detection="incremental"),
        FakeVendor(name="books", change_detection="incremental"),
    )


def contact_named(vendor: FakeVendor, name: str) -> tuple[str, Contact]:
    found = [
        (k, c)
        for k, c in vendor.live("contacts").items()
        if isinstance(c, Contact) and c.name == name
    ]
    assert len(found) == 1, f"{vendor.name} holds {len(found)} contacts named {name!r}"
    return found[0]


async def email_conflict(world: World, sessionmaker: Maker) -> None:
    """Acme synced to both sides, then its e-mail edited on both: one manual conflict."""
    world.crm.human_create("contacts", Contact(kind="organization", name="Acme", email="a@acme.nl"))
    engine = world.engine(sessionmaker)
    await engine.once()
    crm_id, _ = contact_named(world.crm, "Acme")
    books_id, _ = contact_named(world.books, "Acme")
    world.crm.human_edit("contacts", crm_id, email="crm@acme.nl", city="Delft")
    world.books.human_edit("contacts", books_id, email="books@acme.nl")
    await engine.once()


async def pending_review(world: World, sessionmaker: Maker) -> None:
    """A books contact that only possibly matches a crm one: one open match review."""
    world.crm.human_create(
        "contacts",
        Contact(
            kind="organization",
            name="Bakkerij de Vries Amsterdam",
            postal_code="1012AB",
            country="NL",
        ),
    )
    world.books.human_create(
        "contacts",
        Contact(kind="organization", name="Bakkerij de Vries", postal_code="1012 AB", country="NL"),
    )
    engine = world.engine(sessionmaker)
    await engine.pull("crm")
    await engine.pull("books")


def _invoice(contact: str, lines: list[tuple[str, str, str]]) -> Invoice:
    value = Invoice(
        number="2026-001",
        contact=contact,
        issue_date=dt.date(2026, 11, 2),
        due_date=dt.date(2026, 11, 30),
        lines=tuple(
            InvoiceLine(
                description=d, quantity=Decimal(q), unit_price=Decimal(p), vat_rate=Decimal("21")
            )
            for d, q, p in lines
        ),
    )
    return normalise(with_computed_totals(value))


async def lines_conflict(world: World, sessionmaker: Maker) -> None:
    """An invoice whose lines were edited differently on both sides."""
    contact = world.crm.human_create("contacts", Contact(kind="organization", name="Acme"))
    engine = world.engine(sessionmaker)
    await engine.once()
    invoice_id = world.crm.human_create("invoices", _invoice(contact, [("Work", "1", "100.00")]))
    await engine.once()
    [(books_invoice, books_value)] = world.books.live("invoices").items()
    assert isinstance(books_value, Invoice)
    crm_value = _invoice(contact, [("Work", "2", "100.00")])
    world.crm.human_edit(
        "invoices",
        invoice_id,
        lines=crm_value.lines,
        subtotal=crm_value.subtotal,
        tax_total=crm_value.tax_total,
        total=crm_value.total,
    )
    books_value = _invoice(books_value.contact or "", [("Work", "3", "100.00")])
    world.books.human_edit(
        "invoices",
        books_invoice,
        lines=books_value.lines,
        subtotal=books_value.subtotal,
        tax_total=books_value.tax_total,
        total=books_value.total,
    )
    await engine.once()


async def open_conflict_ids(sessionmaker: Maker, field: str | None = None) -> list[int]:
    async with sessionmaker() as session:
        query = select(t.Conflict.id).where(t.Conflict.state == "open").order_by(t.Conflict.id)
        if field is not None:
            query = query.where(t.Conflict.field == field)
        return list(await session.scalars(query))


# --------------------------------------------------------------------------- value parsing


@pytest.mark.parametrize(
    ("resource", "field", "text", "expected"),
    [
        ("contacts", "email", " sales@acme.nl ", "sales@acme.nl"),
        ("contacts", "city", "", None),
        ("contacts", "archived", "yes", True),
        ("contacts", "archived", "False", False),
        ("contacts", "kind", "person", "person"),
        ("invoices", "due_date", "2026-12-31", "2026-12-31"),
        ("invoices", "due_date", "", None),
        ("invoices", "total", "1210.5", "1210.5"),
        ("invoices", "currency", "usd", "USD"),
        ("invoices", "status", "paid", "paid"),
        ("invoices", "contact", "0012", "12"),
        ("payments", "date", "2026-11-05", "2026-11-05"),
        (
            "invoices",
            "lines",
            '[{"description": "Work", "quantity": 2, "unit_price": 50.10, "vat_rate": "21"}]',
            [{"description": "Work", "quantity": "2", "unit_price": "50.10", "vat_rate": "21"}],
        ),
    ],
)
def test_a_value_is_parsed_for_its_field(
    resource: str, field: str, text: str, expected: Any
) -> None:
    assert parse_field_value(resource, field, text) == expected


@pytest.mark.parametrize(
    ("resource", "field", "text", "message"),
    [
        ("contacts", "name", "  ", "must not be empty"),
        ("contacts", "archived", "maybe", "not true or false"),
        ("contacts", "kind", "company", "not one of organization, person"),
        ("invoices", "due_date", "31-12-2026", "is not a date"),
        ("invoices", "total", "12,50", "is not a decimal number"),
        ("invoices", "total", "Infinity", "not a finite number"),
        ("invoices", "currency", "EURO", "three-letter currency code"),
        ("invoices", "status", "finished", "is not one of draft"),
        ("invoices", "contact", "acme", "is not a canonical id"),
        ("invoices", "lines", "[{'description': 'x'}]", "not valid JSON"),
        ("invoices", "lines", '{"description": "x"}', "expected a JSON list"),
        (
            "invoices",
            "lines",
            '[{"description": "x", "quantity": "1"}]',
            "lacks unit_price, vat_rate",
        ),
        (
            "invoices",
            "lines",
            '[{"description": "x", "quantity": "1", "unit_price": "1", "vat_rate": "21", "vat": 1}]',
            "unknown key(s) vat",
        ),
        (
            "invoices",
            "lines",
            '[{"description": "x", "quantity": "one", "unit_price": "1", "vat_rate": "21"}]',
            "line 1 quantity",
        ),
        ("payments", "date", "", "is not a date"),
        ("payments", "invoice", "", "needs its invoice"),
        ("contacts", "colour", "red", "cannot be set with --value"),
    ],
)
def test_a_bad_value_is_refused_with_the_reason(
    resource: str, field: str, text: str, message: str
) -> None:
    with pytest.raises(OperatorError) as caught:
        parse_field_value(resource, field, text)
    assert message in str(caught.value)


def test_every_settable_field_has_a_hint() -> None:
    assert field_hint("invoices", "lines") is not None
    assert "JSON" in (field_hint("invoices", "lines") or "")
    assert field_hint("contacts", "colour") is None


# --------------------------------------------------------------------------- conflicts


async def test_conflicts_list_shows_open_conflicts_with_label_and_candidates(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await email_conflict(world, db_sessionmaker)

    rows = json.loads(
        await conflicts_list_command(settings, workspace=None, include_resolved=False, as_json=True)
    )

    assert len(rows) == 1
    row = rows[0]
    assert (row["workspace"], row["resource"], row["label"], row["field"]) == (
        "ws",
        "contacts",
        "Acme",
        "email",
    )
    assert row["candidates"] == {"crm": "crm@acme.nl", "books": "books@acme.nl"}
    assert row["state"] == "open" and row["policy"] == "manual"
    later = dt.datetime.fromisoformat(row["created_at"]) + dt.timedelta(hours=3)
    text = await conflicts_list_command(
        settings, workspace="ws", include_resolved=False, as_json=False, now=later
    )
    assert 'contacts 1 "Acme"' in text and 'books="books@acme.nl"' in text
    assert text.splitlines()[2].endswith("3h")  # the age column


async def test_conflicts_list_names_an_unknown_workspace(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    await email_conflict(new_world(settings), db_sessionmaker)

    with pytest.raises(OperatorError, match="no workspace named 'other'"):
        await conflicts_list_command(
            settings, workspace="other", include_resolved=False, as_json=False
        )


async def test_conflicts_show_has_current_value_history_and_commands(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    await email_conflict(new_world(settings), db_sessionmaker)
    [conflict_id] = await open_conflict_ids(db_sessionmaker)

    detail = json.loads(await conflicts_show_command(settings, str(conflict_id), as_json=True))

    assert detail["current"] == "crm@acme.nl"
    assert [(h["account"], h["old"], h["new"]) for h in detail["history"]] == [
        ("crm", "a@acme.nl", "crm@acme.nl"),
        ("books", "crm@acme.nl", "books@acme.nl"),
    ]
    assert detail["commands"] == [
        f"syncd conflicts resolve {conflict_id} --take crm",
        f"syncd conflicts resolve {conflict_id} --take books",
        f"syncd conflicts resolve {conflict_id} --value VALUE",
    ]


async def test_resolving_with_a_value_normalises_it_audits_it_and_plans_both_sides(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await email_conflict(world, db_sessionmaker)
    [conflict_id] = await open_conflict_ids(db_sessionmaker)

    out = await conflicts_resolve_command(
        settings, str(conflict_id), take=None, value=" Sales@ACME.nl", by="operator test"
    )

    assert 'email = "sales@acme.nl"' in out
    assert "update in crm" in out and "update in books" in out
    assert await open_conflict_ids(db_sessionmaker) == []
    async with db_sessionmaker() as session:
        audit = (
            await session.scalars(
                select(t.Audit).where(t.Audit.field == "email").order_by(t.Audit.id.desc())
            )
        ).first()
    assert audit is not None
    assert (audit.account_id, audit.old, audit.new) == (None, "crm@acme.nl", "sales@acme.nl")
    assert "operator test" in audit.reason
    # The next pass pushes the decision to both vendors.
    await world.engine(db_sessionmaker).once()
    assert contact_named(world.crm, "Acme")[1].email == "sales@acme.nl"
    assert contact_named(world.books, "Acme")[1].email == "sales@acme.nl"


async def test_resolving_twice_or_with_a_stranger_is_refused(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    await email_conflict(new_world(settings), db_sessionmaker)
    [conflict_id] = await open_conflict_ids(db_sessionmaker)

    with pytest.raises(OperatorError, match="no candidate from 'shop'; candidates: crm, books"):
        await conflicts_resolve_command(settings, str(conflict_id), take="shop", value=None)
    with pytest.raises(OperatorError, match="no conflict with id 999"):
        await conflicts_resolve_command(settings, "999", take=None, value="x")
    await conflicts_resolve_command(settings, str(conflict_id), take="books", value=None)
    with pytest.raises(OperatorError, match=f"conflict {conflict_id} is already resolved"):
        await conflicts_resolve_command(settings, str(conflict_id), take="crm", value=None)
    with pytest.raises(OperatorError, match="exactly one of --take ACCOUNT or --value"):
        await conflicts_resolve_command(settings, str(conflict_id), take="crm", value="x")


async def test_invoice_lines_are_resolved_from_json(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await lines_conflict(world, db_sessionmaker)
    [conflict_id] = await open_conflict_ids(db_sessionmaker, "lines")
    detail = json.loads(await conflicts_show_command(settings, str(conflict_id), as_json=True))
    assert "JSON" in detail["value_hint"]

    with pytest.raises(OperatorError, match="not valid JSON"):
        await conflicts_resolve_command(settings, str(conflict_id), take=None, value="[{")
    out = await conflicts_resolve_command(
        settings,
        str(conflict_id),
        take=None,
        value='[{"description": "Work, agreed", "quantity": 2.5, "unit_price": "100", "vat_rate": 21}]',
    )

    assert "Work, agreed" in out
    async with db_sessionmaker() as session:
        lines = list(await session.scalars(select(t.InvoiceLine)))
    assert [(x.description, x.quantity, x.unit_price, x.vat_rate) for x in lines] == [
        ("Work, agreed", Decimal("2.5"), Decimal("100.00"), Decimal("21"))
    ]


# --------------------------------------------------------------------------- match reviews


async def test_matches_list_shows_the_record_and_its_scored_candidates(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    await pending_review(new_world(settings), db_sessionmaker)

    [review] = json.loads(
        await matches_list_command(settings, workspace=None, include_decided=False, as_json=True)
    )

    assert (review["account"], review["resource"], review["incoming_label"]) == (
        "books",
        "contacts",
        "Bakkerij de Vries",
    )
    assert review["state"] == "open"
    assert [(c["label"], c["score"]) for c in review["candidates"]] == [
        ("Bakkerij de Vries Amsterdam", 0.77)
    ]
    assert "postcode" in review["candidates"][0]["reason"]


async def test_accepting_a_match_links_the_record_on_the_next_pull(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await pending_review(world, db_sessionmaker)
    [review] = json.loads(
        await matches_list_command(settings, workspace=None, include_decided=False, as_json=True)
    )
    candidate = review["candidates"][0]["canonical_id"]

    with pytest.raises(OperatorError, match=f"{candidate + 50} is not one of its candidates"):
        await matches_decide_command(
            settings, str(review["id"]), accept=True, candidate=str(candidate + 50)
        )
    out = await matches_decide_command(
        settings, str(review["id"]), accept=True, candidate=str(candidate)
    )
    assert "accepted" in out and "Bakkerij de Vries Amsterdam" in out
    await world.engine(db_sessionmaker).once()

    books_id, _ = contact_named(world.books, "Bakkerij de Vries")
    report = json.loads(
        await explain_command(settings, "contacts", f"books:{books_id}", as_json=True)
    )
    assert report["canonical_id"] == candidate
    # Linked, not created again: each side holds the company once.
    assert len(world.books.live("contacts")) == 1
    assert len(world.crm.live("contacts")) == 1
    with pytest.raises(OperatorError, match="already accepted"):
        await matches_decide_command(settings, str(review["id"]), accept=False)


async def test_rejecting_a_match_makes_a_new_entity(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await pending_review(world, db_sessionmaker)
    [review] = json.loads(
        await matches_list_command(settings, workspace=None, include_decided=False, as_json=True)
    )

    out = await matches_decide_command(settings, str(review["id"]), accept=False)
    await world.engine(db_sessionmaker).once()

    assert "rejected" in out and "new canonical contact" in out
    assert sorted(
        c.name for c in world.crm.live("contacts").values() if isinstance(c, Contact)
    ) == [
        "Bakkerij de Vries",
        "Bakkerij de Vries Amsterdam",
    ]
    assert (
        json.loads(
            await matches_list_command(
                settings, workspace=None, include_decided=False, as_json=True
            )
        )
        == []
    )


async def test_an_unknown_review_is_named(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)

    with pytest.raises(OperatorError, match="no match review with id 7"):
        await matches_decide_command(settings, "7", accept=True)
    with pytest.raises(OperatorError, match="no match review with id 'seven'"):
        await matches_decide_command(settings, "seven", accept=False)


# --------------------------------------------------------------------------- explain


async def test_explain_tells_the_whole_story_of_a_contact(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await email_conflict(world, db_sessionmaker)
    crm_id, _ = contact_named(world.crm, "Acme")

    by_id = json.loads(await explain_command(settings, "contacts", "1", as_json=True))
    by_link = json.loads(await explain_command(settings, "contacts", f"crm:{crm_id}", as_json=True))

    assert by_id["canonical_id"] == by_link["canonical_id"] == 1
    assert by_id["label"] == "Acme" and by_id["state"] == "live"
    assert sorted(link["account"] for link in by_id["links"]) == ["books", "crm"]
    assert all(link["detached_at"] is None for link in by_id["links"])
    reasons = [h["reason"] for h in by_id["history"]]
    assert reasons[0] == f"new record from crm ({crm_id})"
    assert reasons[1].startswith("created in books as ")
    assert [(h["field"], h["new"]) for h in by_id["history"][2:]] == [
        ("city", "Delft"),
        ("email", "crm@acme.nl"),
        ("email", "books@acme.nl"),
    ]
    times = [h["at"] for h in by_id["history"]]
    assert times == sorted(times)
    assert [(c["field"], c["state"]) for c in by_id["conflicts"]] == [("email", "open")]
    assert [(o["account"], o["op"], o["state"]) for o in by_id["outbox"]] == [
        ("books", "create", "done"),
        ("books", "update", "done"),
    ]
    text = await explain_command(settings, "contacts", "1")
    assert "operator/engine" not in text  # nothing was decided by a person yet
    assert 'email: "a@acme.nl" -> "crm@acme.nl"  (crm changed email)' in text


async def test_explain_shows_a_waiting_record_and_refuses_unknown_ones(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    await pending_review(world, db_sessionmaker)
    books_id, _ = contact_named(world.books, "Bakkerij de Vries")

    waiting = json.loads(
        await explain_command(settings, "contacts", f"books:{books_id}", as_json=True)
    )
    candidate = json.loads(await explain_command(settings, "contacts", "1", as_json=True))

    assert waiting["state"] == "not linked"
    assert [r["state"] for r in waiting["match_reviews"]] == ["open"]
    # The candidate's own story mentions the review that names it.
    assert [r["external_id"] for r in candidate["match_reviews"]] == [books_id]
    with pytest.raises(OperatorError, match="no contacts with canonical id 42"):
        await explain_command(settings, "contacts", "42")
    with pytest.raises(OperatorError, match="books has no record '999'"):
        await explain_command(settings, "contacts", "books:999")
    with pytest.raises(OperatorError, match="no account named 'shop'"):
        await explain_command(settings, "contacts", "shop:1")
    with pytest.raises(OperatorError, match="no contact with id 'acme'"):
        await explain_command(settings, "contacts", "acme")


async def test_explain_payments_and_invoices(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    contact = world.crm.human_create("contacts", Contact(kind="organization", name="Acme"))
    engine = world.engine(db_sessionmaker)
    await engine.once()
    world.crm.human_create("invoices", _invoice(contact, [("Work", "1", "100.00")]))
    await engine.once()
    [books_invoice] = world.books.live("invoices")
    world.books.human_create(
        "payments",
        Payment(invoice=books_invoice, date=dt.date(2026, 11, 5), amount=Decimal("121.00")),
    )
    await engine.once()

    invoice = json.loads(await explain_command(settings, "invoices", "1", as_json=True))
    payment = json.loads(await explain_command(settings, "payments", "1", as_json=True))

    assert invoice["label"] == "2026-001"
    assert invoice["fields"]["lines"][0]["description"] == "Work"
    assert payment["label"] == "121.00 on 2026-11-05"
    assert sorted(link["account"] for link in payment["links"]) == ["books", "crm"]
    assert 'payments 1 "121.00 on 2026-11-05"' in await explain_command(settings, "payments", "1")


# --------------------------------------------------------------------------- status


async def test_status_reports_the_queues_the_engine_left(
    db_sessionmaker: Maker, migrated_db_url: str, tmp_path: Path
) -> None:
    _, settings = write_config(tmp_path, migrated_db_url)
    await email_conflict(new_world(settings), db_sessionmaker)

    snapshot = json.loads(await status_command(settings, as_json=True))
    text = await status_command(settings, as_json=False)

    assert snapshot["totals"]["open_conflicts"] == 1
    accounts = {a["name"]: a for a in snapshot["workspaces"][0]["accounts"]}
    assert set(accounts) == {"crm", "books"}
    assert accounts["crm"]["runs"]["pull"]["status"] == "ok"
    assert "1 open conflict" in text
    assert "crm-token-secret" not in text + json.dumps(snapshot)


async def test_every_read_command_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    _, settings = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")

    for command in (
        status_command(settings, as_json=False),
        conflicts_list_command(settings, workspace=None, include_resolved=False, as_json=False),
        explain_command(settings, "contacts", "1"),
    ):
        with pytest.raises(SchemaBehind, match="syncd db upgrade"):
            await command
