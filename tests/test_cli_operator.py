"""The operator commands through the command line: output, exit codes, and their effect.

State is built by the engine on fake vendors (in a worker thread with its own event loop);
the CLI then reads a config file naming the same accounts as real moneybird accounts on
an unreachable address, so a request leaving the process would fail the test.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.cli import main
from syncd.logs import reset_logging
from syncd.store.db import create_engine, create_sessionmaker
from tests.conftest import run_in_thread
from tests.test_operator import (
    World,
    contact_named,
    email_conflict,
    new_world,
    pending_review,
    write_config,
)

Scenario = Callable[[World, async_sessionmaker[AsyncSession]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # The CLI points logging at the runner's captured stderr, which closes after the call.
    yield
    reset_logging()


def run_engine(url: str, world: World, scenario: Scenario) -> None:
    """Run ``scenario`` against the database at ``url`` on a private event loop."""

    async def go() -> None:
        db = create_engine(url)
        try:
            await scenario(world, create_sessionmaker(db))
        finally:
            await db.dispose()

    run_in_thread(go)


async def sync_once(world: World, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await world.engine(sessionmaker).once()


def cli(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["--config", str(config), *args])
    reset_logging()
    return result


@pytest.fixture
def conflict_world(migrated_db_url: str, tmp_path: Path) -> tuple[Path, World]:
    config, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    run_engine(migrated_db_url, world, email_conflict)
    return config, world


@pytest.fixture
def review_world(migrated_db_url: str, tmp_path: Path) -> tuple[Path, World]:
    config, settings = write_config(tmp_path, migrated_db_url)
    world = new_world(settings)
    run_engine(migrated_db_url, world, pending_review)
    return config, world


# --------------------------------------------------------------------------- conflicts


def test_conflicts_list_and_show(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world

    listed = cli(config, "conflicts", "list")
    shown = cli(config, "conflicts", "show", "1")

    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("1 open conflict\n")
    row = listed.output.splitlines()[2].split()
    assert row[:6] == ["1", "open", "ws", "contacts", "1", '"Acme"']
    assert 'crm="crm@acme.nl"' in listed.output and 'books="books@acme.nl"' in listed.output
    assert shown.exit_code == 0, shown.output
    assert 'current canonical value: "crm@acme.nl"' in shown.output
    assert '"a@acme.nl" -> "crm@acme.nl"  (crm changed email)' in shown.output
    assert "syncd conflicts resolve 1 --take crm\n" in shown.output
    assert "syncd conflicts resolve 1 --take books\n" in shown.output
    assert "syncd conflicts resolve 1 --value VALUE\n" in shown.output


def test_conflicts_list_json_and_filters(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world

    listed = cli(config, "conflicts", "list", "--json")
    other = cli(config, "conflicts", "list", "--workspace", "other")

    assert listed.exit_code == 0
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["field"], row["candidates"]) == (
        1,
        "email",
        {"crm": "crm@acme.nl", "books": "books@acme.nl"},
    )
    assert other.exit_code == 2
    assert "no workspace named 'other'" in other.output


def test_resolve_by_taking_an_account_is_pushed_by_the_next_pass(
    conflict_world: tuple[Path, World], migrated_db_url: str
) -> None:
    config, world = conflict_world

    result = cli(config, "conflicts", "resolve", "1", "--take", "books")

    assert result.exit_code == 0, result.output
    assert 'email = "books@acme.nl" (books\'s value; was "crm@acme.nl")' in result.output
    assert "update in crm (fields: email)" in result.output
    assert "next `syncd once`" in result.output
    assert cli(config, "conflicts", "list").output == "no open conflicts\n"
    assert "[resolved]" in cli(config, "explain", "contacts", "1").output
    run_engine(migrated_db_url, world, sync_once)
    assert contact_named(world.crm, "Acme")[1].email == "books@acme.nl"
    assert contact_named(world.books, "Acme")[1].email == "books@acme.nl"


def test_resolve_with_a_value(conflict_world: tuple[Path, World], migrated_db_url: str) -> None:
    config, world = conflict_world

    result = cli(config, "conflicts", "resolve", "1", "--value", "Sales@Acme.nl")

    assert result.exit_code == 0, result.output
    assert 'email = "sales@acme.nl" (the given value' in result.output
    run_engine(migrated_db_url, world, sync_once)
    assert contact_named(world.crm, "Acme")[1].email == "sales@acme.nl"


CONFLICT_MISTAKES = [
    (["resolve", "1", "--take", "shop"], "no candidate from 'shop'"),
    (["resolve", "99", "--take", "crm"], "no conflict with id 99"),
    (["resolve", "one", "--take", "crm"], "no conflict with id 'one'"),
    (["resolve", "1"], "exactly one of --take ACCOUNT or --value VALUE"),
    (["resolve", "1", "--take", "crm", "--value", "x"], "exactly one of"),
    (["show", "0"], "no conflict with id '0'"),
    (["show", "99"], "no conflict with id 99"),
]


def test_conflict_mistakes_exit_2_with_the_reason(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world

    for args, message in CONFLICT_MISTAKES:
        result = cli(config, "conflicts", *args)
        assert result.exit_code == 2, args
        assert message in result.output, args
    # Nothing was decided by any of them.
    assert cli(config, "conflicts", "list").output.startswith("1 open conflict\n")


def test_a_resolved_conflict_cannot_be_resolved_again(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world
    assert cli(config, "conflicts", "resolve", "1", "--take", "crm").exit_code == 0

    again = cli(config, "conflicts", "resolve", "1", "--take", "books")
    shown = cli(config, "conflicts", "show", "1")

    assert again.exit_code == 2
    assert "conflict 1 is already resolved" in again.output
    assert shown.exit_code == 0
    assert "took crm's value" in shown.output
    assert "resolve it with" not in shown.output
    assert len(json.loads(cli(config, "conflicts", "list", "--all", "--json").stdout)) == 1


# --------------------------------------------------------------------------- matches


def test_matches_list_accept(review_world: tuple[Path, World], migrated_db_url: str) -> None:
    config, world = review_world

    listed = cli(config, "matches", "list")
    accepted = cli(config, "matches", "accept", "1", "--candidate", "1")

    assert listed.exit_code == 0, listed.output
    assert '#1 [open] books contacts 1000 "Bakkerij de Vries"' in listed.output
    assert 'candidate contacts 1 "Bakkerij de Vries Amsterdam" score 0.77' in listed.output
    assert accepted.exit_code == 0, accepted.output
    assert "is linked to contacts 1" in accepted.output
    assert cli(config, "matches", "list").output == "no open match reviews\n"
    run_engine(migrated_db_url, world, sync_once)
    explained = cli(config, "explain", "contacts", "books:1000", "--json")
    assert json.loads(explained.stdout)["canonical_id"] == 1


def test_matches_reject(review_world: tuple[Path, World], migrated_db_url: str) -> None:
    config, world = review_world

    rejected = cli(config, "matches", "reject", "1")
    run_engine(migrated_db_url, world, sync_once)

    assert rejected.exit_code == 0, rejected.output
    assert "becomes a new canonical contact" in rejected.output
    assert len(world.crm.live("contacts")) == 2
    assert json.loads(cli(config, "explain", "contacts", "books:1000", "--json").stdout)[
        "canonical_id"
    ] not in (None, 1)


def test_match_mistakes_exit_2(review_world: tuple[Path, World]) -> None:
    config, _ = review_world

    for args, message in [
        (["accept", "5"], "no match review with id 5"),
        (["reject", "x"], "no match review with id 'x'"),
        (["accept", "1", "--candidate", "9"], "9 is not one of its candidates"),
        (["accept", "1", "--candidate", "first"], "no candidate with id 'first'"),
    ]:
        result = cli(config, "matches", *args)
        assert result.exit_code == 2, args
        assert message in result.output, args
    assert "#1 [open]" in cli(config, "matches", "list").output


def test_a_decided_match_cannot_be_decided_again(review_world: tuple[Path, World]) -> None:
    config, _ = review_world
    assert cli(config, "matches", "reject", "1").exit_code == 0

    again = cli(config, "matches", "accept", "1")

    assert again.exit_code == 2
    assert "match review 1 is already rejected" in again.output


# --------------------------------------------------------------------------- explain


def test_explain_by_canonical_id_and_by_account_external_id(
    conflict_world: tuple[Path, World],
) -> None:
    config, world = conflict_world
    crm_id, _ = contact_named(world.crm, "Acme")

    by_id = cli(config, "explain", "contacts", "1")
    by_link = cli(config, "explain", "contacts", f"crm:{crm_id}")

    assert by_id.exit_code == 0, by_id.output
    assert by_link.output == by_id.output
    lines = by_id.output.splitlines()
    assert lines[0] == 'contacts 1 "Acme" — live, workspace ws, version 2'
    assert f"  crm              {crm_id}" in by_id.output
    history = lines[lines.index("history:") + 1 : lines.index("conflicts (1 open):")]
    assert [line.split()[2:4] for line in history] == [
        ["crm", "record:"],
        ["books", "record:"],
        ["crm", "city:"],
        ["crm", "email:"],
        ["books", "email:"],
    ]
    assert "#1 email [open]" in by_id.output
    assert "-> syncd conflicts show 1" in by_id.output


def test_explain_names_an_unknown_record(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world

    for args, message in [
        (["contacts", "77"], "no contacts with canonical id 77"),
        (["contacts", "crm:nope"], "crm has no record 'nope'"),
        (["contacts", "shop:1"], "no account named 'shop'"),
        (["contacts", "crm:"], "neither a canonical id nor ACCOUNT:EXTERNAL_ID"),
        (["invoices", "1"], "no invoices with canonical id 1"),
        (["payments", "3"], "no payments with canonical id 3"),
        (
            ["invoice_lines", "3"],
            "'invoice_lines' is not one of 'contacts', 'invoices', 'payments'",
        ),
    ]:
        result = cli(config, "explain", *args)
        assert result.exit_code == 2, args
        assert message in result.output, args


# --------------------------------------------------------------------------- status


def test_status_text_and_json(conflict_world: tuple[Path, World]) -> None:
    config, _ = conflict_world

    text = cli(config, "status")
    as_json = cli(config, "status", "--json")

    assert text.exit_code == 0, text.output
    assert "1 open conflict" in text.output
    assert "crm (moneybird) — active" in text.output
    assert as_json.exit_code == 0
    snapshot = json.loads(as_json.stdout)
    assert snapshot["totals"]["open_conflicts"] == 1
    assert [a["name"] for a in snapshot["workspaces"][0]["accounts"]] == ["crm", "books"]
    assert "token-secret" not in text.output + as_json.output


def test_status_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")

    for args in (
        ["status"],
        ["conflicts", "list"],
        ["matches", "list"],
        ["explain", "contacts", "1"],
    ):
        result = cli(config, *args)
        assert result.exit_code == 2, args
        assert "run `syncd db upgrade`" in result.output
