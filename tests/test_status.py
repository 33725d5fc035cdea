"""The status snapshot (syncd.status) on real migrated databases, SQLite and PostgreSQL."""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.settings import Settings, parse_settings
from syncd.status import collect_status, render_status
from syncd.store.tables import (
    Account,
    Conflict,
    Cursor,
    Lease,
    MatchReview,
    Outbox,
    Quarantine,
    RateBucket,
    SyncRun,
    Workspace,
)

NOW = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
LEAKY = "moneybird-token-value"

CONFIG = """
[daemon]
admin_token = "admin-token-value"

[[workspace]]
name = "acme"

  [[workspace.account]]
  name = "acme-crm"
  vendor = "simplicate"
  base_url = "https://acme.simplicate.nl/api/v2"
  credentials = { key = "crm-key-value", secret = "crm-secret-value" }
  webhook_secret = "crm-hook-secret"

  [[workspace.account]]
  name = "acme-books"
  vendor = "moneybird"
  base_url = "https://moneybird.com/api/v2/123456789"
  credentials = { token = "moneybird-token-value" }

  [[workspace.account]]
  name = "acme-fresh"
  vendor = "perfex"
  base_url = "https://crm.example.com/api/v1"
  credentials = { api_key = "perfex-key-value" }

[[workspace]]
name = "beta"

  [[workspace.account]]
  name = "beta-books"
  vendor = "simplbooks"
  base_url = "https://app.simplbooks.com/abc/api"
  credentials = { token = "simplbooks-token-value" }
"""


def _settings(tmp_path: Path, text: str = CONFIG) -> Settings:
    return parse_settings(tomllib.loads(text), environ={}, base_dir=tmp_path)


def _ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def _ahead(**kw: float) -> datetime:
    return NOW + timedelta(**kw)


def _run(account: Account, job: str, status: str, start: datetime, **kw: Any) -> SyncRun:
    return SyncRun(
        account_id=account.id,
        job=job,
        run_id=f"{job}-{start:%H%M%S}",
        started_at=start,
        status=status,
        **kw,
    )


async def _seed(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as session, session.begin():
        acme = Workspace(name="acme")
        gone = Workspace(name="gone")
        session.add_all([acme, gone])
        await session.flush()
        crm = Account(workspace_id=acme.id, name="acme-crm", vendor="simplicate")
        books = Account(
            workspace_id=acme.id,
            name="acme-books",
            vendor="moneybird",
            state="paused",
            state_reason="daily quota used up",
            paused_until=_ahead(hours=2),
        )
        old = Account(workspace_id=acme.id, name="acme-old", vendor="perfex", state="auth_failed")
        orphan = Account(workspace_id=gone.id, name="gone-crm", vendor="simplicate")
        session.add_all([crm, books, old, orphan])
        await session.flush()

        session.add_all(
            [
                _run(crm, "pull", "ok", _ago(minutes=10), finished_at=_ago(minutes=9), pulled=5),
                _run(
                    crm,
                    "pull",
                    "failed",
                    _ago(minutes=5),
                    finished_at=_ago(minutes=4),
                    errors=1,
                    error=f"vendor said: bad token {LEAKY}",
                ),
                _run(crm, "pull", "running", _ago(minutes=1), api_calls=3),
                _run(
                    crm,
                    "push",
                    "ok",
                    _ago(minutes=3),
                    finished_at=_ago(minutes=2, seconds=30),
                    pushed=4,
                    api_calls=4,
                ),
                _run(books, "reconcile", "ok", _ago(hours=1), finished_at=_ago(minutes=50)),
                _run(books, "pull", "failed", _ago(minutes=20), finished_at=_ago(minutes=19)),
            ]
        )
        session.add_all(
            [
                Cursor(
                    account_id=crm.id,
                    resource="contacts",
                    value="2026-01-31T11:50:00Z",
                    checkpoint={"page": 2},
                ),
                Cursor(
                    account_id=crm.id,
                    resource="invoices",
                    value=None,
                    last_full_sweep_at=_ago(hours=3),
                ),
            ]
        )
        for index, state in enumerate(
            ["pending", "pending", "uncertain", "dead", "done", "done", "done"]
        ):
            session.add(
                Outbox(
                    account_id=crm.id,
                    resource="contacts",
                    op="update",
                    canonical_id=index + 1,
                    fields={"name": "x"},
                    client_token=f"tok-{index}",
                    state=state,
                )
            )
        for candidates, state in (
            ({"acme-crm": "a", "acme-books": "b"}, "open"),
            ({"acme-crm": "c", "acme-books": "d"}, "open"),
            ({"acme-books": "e", "acme-old": "f"}, "open"),
            ({"acme-crm": "g", "acme-books": "h"}, "resolved"),
        ):
            session.add(
                Conflict(
                    workspace_id=acme.id,
                    resource="contacts",
                    canonical_id=1,
                    field="email",
                    candidates=candidates,
                    policy="manual",
                    state=state,
                )
            )
        for state in ("open", "accepted"):
            session.add(
                MatchReview(
                    workspace_id=acme.id,
                    account_id=crm.id,
                    resource="contacts",
                    external_id=f"ext-{state}",
                    candidates=[{"id": 1, "score": 0.7}],
                    state=state,
                )
            )
        for index, resolved in enumerate((None, None, _ago(minutes=1))):
            session.add(
                Quarantine(
                    account_id=crm.id,
                    resource="contacts",
                    external_id=f"bad-{index}",
                    reason="no name",
                    payload={"id": index},
                    resolved_at=resolved,
                )
            )
        session.add_all(
            [
                Lease(
                    account_id=crm.id,
                    owner="host-a:1234",
                    fencing_token=7,
                    acquired_at=_ago(minutes=1),
                    expires_at=_ahead(seconds=30),
                ),
                Lease(
                    account_id=books.id,
                    owner="host-b:99",
                    fencing_token=3,
                    acquired_at=_ago(minutes=2),
                    expires_at=_ago(seconds=5),
                ),
                # acme-crm sent too fast: a 429 paused it for 20 more seconds at 80 % rate.
                RateBucket(
                    account_id=crm.id,
                    window_seconds=60,
                    capacity=3,
                    tokens=0.0,
                    refilled_at=_ahead(seconds=20),
                    penalty_until=_ahead(seconds=20),
                    log={"rate_factor": 0.8},
                ),
                RateBucket(
                    account_id=old.id,
                    window_seconds=3600,
                    capacity=50,
                    tokens=12.5,
                    refilled_at=_ago(minutes=1),
                    log={"rate_factor": 1.0},
                ),
            ]
        )


def _workspace(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(w for w in status["workspaces"] if w["name"] == name)


def _account(status: dict[str, Any], name: str) -> dict[str, Any]:
    for workspace in status["workspaces"]:
        for account in workspace["accounts"]:
            if account["name"] == name:
                return dict(account)
    raise KeyError(name)


@pytest.fixture
async def seeded_status(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> dict[str, Any]:
    await _seed(db_sessionmaker)
    return await collect_status(db_sessionmaker, _settings(tmp_path), now=NOW)


async def test_status_is_json_and_lists_every_workspace(seeded_status: dict[str, Any]) -> None:
    assert json.loads(json.dumps(seeded_status)) == seeded_status
    assert seeded_status["version"] == 1
    assert seeded_status["generated_at"] == "2026-01-31T12:00:00Z"
    names = [w["name"] for w in seeded_status["workspaces"]]
    assert names == ["acme", "beta", "gone"]
    acme = _workspace(seeded_status, "acme")
    assert [a["name"] for a in acme["accounts"]] == [
        "acme-crm",
        "acme-books",
        "acme-fresh",
        "acme-old",
    ]
    assert (acme["configured"], _workspace(seeded_status, "gone")["configured"]) == (True, False)


async def test_latest_run_per_job_and_the_last_success(seeded_status: dict[str, Any]) -> None:
    crm = _account(seeded_status, "acme-crm")
    pull = crm["runs"]["pull"]
    assert pull["status"] == "running"
    assert pull["finished_at"] is None
    assert pull["duration_seconds"] is None
    assert pull["api_calls"] == 3
    push = crm["runs"]["push"]
    assert (push["status"], push["pushed"], push["duration_seconds"]) == ("ok", 4, 30.0)
    assert crm["runs"]["reconcile"] is None
    assert crm["last_success"] == {
        "pull": "2026-01-31T11:51:00Z",
        "push": "2026-01-31T11:57:30Z",
        "reconcile": None,
    }
    assert crm["last_success_at"] == "2026-01-31T11:57:30Z"
    assert crm["pull_lag_seconds"] == 540.0


async def test_an_account_that_never_pulled_successfully_has_no_lag(
    seeded_status: dict[str, Any],
) -> None:
    books = _account(seeded_status, "acme-books")
    assert books["runs"]["pull"]["status"] == "failed"
    assert books["last_success"]["pull"] is None
    assert books["pull_lag_seconds"] is None
    assert books["last_success_at"] == "2026-01-31T11:10:00Z"  # its reconcile


async def test_account_state_and_reason(seeded_status: dict[str, Any]) -> None:
    books = _account(seeded_status, "acme-books")
    assert books["state"] == "paused"
    assert books["state_reason"] == "daily quota used up"
    assert books["paused_until"] == "2026-01-31T14:00:00Z"
    assert _account(seeded_status, "acme-crm")["state"] == "active"


async def test_cursors(seeded_status: dict[str, Any]) -> None:
    cursors = _account(seeded_status, "acme-crm")["cursors"]
    assert cursors["contacts"]["value"] == "2026-01-31T11:50:00Z"
    assert cursors["contacts"]["checkpoint"] is True
    assert cursors["contacts"]["last_full_sweep_at"] is None
    assert cursors["invoices"]["value"] is None
    assert cursors["invoices"]["checkpoint"] is False
    assert cursors["invoices"]["last_full_sweep_at"] == "2026-01-31T09:00:00Z"


async def test_outbox_counts_skip_done_rows(seeded_status: dict[str, Any]) -> None:
    crm = _account(seeded_status, "acme-crm")
    assert crm["outbox"] == {"pending": 2, "sending": 0, "uncertain": 1, "failed": 0, "dead": 1}
    assert seeded_status["totals"]["outbox"]["pending"] == 2


async def test_queues_count_only_open_items(seeded_status: dict[str, Any]) -> None:
    acme = _workspace(seeded_status, "acme")
    assert acme["open_conflicts"] == 3
    assert acme["open_match_reviews"] == 1
    crm = _account(seeded_status, "acme-crm")
    assert (crm["open_conflicts"], crm["open_match_reviews"], crm["quarantine"]) == (2, 1, 2)
    assert _account(seeded_status, "acme-books")["open_conflicts"] == 3
    assert _account(seeded_status, "acme-old")["open_conflicts"] == 1
    totals = seeded_status["totals"]
    assert (totals["open_conflicts"], totals["open_match_reviews"], totals["quarantine"]) == (
        3,
        1,
        2,
    )
    assert totals["accounts"] == 6


async def test_leases(seeded_status: dict[str, Any]) -> None:
    assert _account(seeded_status, "acme-crm")["lease"] == {
        "owner": "host-a:1234",
        "fencing_token": 7,
        "acquired_at": "2026-01-31T11:59:00Z",
        "expires_at": "2026-01-31T12:00:30Z",
        "expired": False,
    }
    assert _account(seeded_status, "acme-books")["lease"]["expired"] is True
    assert _account(seeded_status, "acme-fresh")["lease"] is None


async def test_budget_of_a_penalised_account(seeded_status: dict[str, Any]) -> None:
    [window] = _account(seeded_status, "acme-crm")["budget"]
    assert (window["per"], window["per_seconds"], window["requests"]) == ("1m", 60, 60)
    assert window["kind"] == "bucket"
    assert window["tokens"] == 0.0
    assert window["used"] == window["capacity"]
    assert window["paused"] is True
    assert window["penalty_until"] == "2026-01-31T12:00:20Z"
    assert window["rate_factor"] == 0.8
    assert window["allowed"] < 60


async def test_budget_without_rows_is_full(seeded_status: dict[str, Any]) -> None:
    [window] = _account(seeded_status, "acme-books")["budget"]
    assert (window["requests"], window["per"]) == (150, "5m")
    assert window["tokens"] == window["capacity"]
    assert window["used"] == 0
    assert window["paused"] is False
    windows = _account(seeded_status, "beta-books")["budget"]
    assert [(w["per"], w["kind"]) for w in windows] == [("1m", "bucket"), ("1d", "quota")]


async def test_accounts_not_yet_in_the_database_show_as_unknown(
    seeded_status: dict[str, Any],
) -> None:
    fresh = _account(seeded_status, "acme-fresh")
    assert fresh["configured"] is True
    assert fresh["in_database"] is False
    assert fresh["state"] == "unknown"
    assert fresh["runs"] == {"pull": None, "push": None, "reconcile": None}
    assert fresh["outbox"] == dict.fromkeys(fresh["outbox"], 0)
    assert (fresh["open_conflicts"], fresh["quarantine"], fresh["cursors"]) == (0, 0, {})
    assert fresh["budget"][0]["requests"] == 1000


async def test_accounts_only_in_the_database_are_kept_with_their_stored_budget(
    seeded_status: dict[str, Any],
) -> None:
    old = _account(seeded_status, "acme-old")
    assert (old["configured"], old["in_database"], old["state"]) == (False, True, "auth_failed")
    assert old["budget"] == [
        {
            "per": "1h",
            "per_seconds": 3600,
            "requests": None,
            "kind": None,
            "capacity": 50,
            "tokens": 12.5,
            "used": 37.5,
            "allowed": None,
            "rate_factor": 1.0,
            "penalty_until": None,
            "paused": False,
        }
    ]
    gone = _workspace(seeded_status, "gone")
    assert [a["name"] for a in gone["accounts"]] == ["gone-crm"]


async def test_a_failed_run_error_is_shown_masked(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await _seed(db_sessionmaker)
    async with db_sessionmaker() as session, session.begin():
        books = await session.scalar(select(Account).where(Account.name == "acme-books"))
        assert books is not None
        books.state_reason = f"credentials rejected: {LEAKY}"
        session.add(
            _run(
                books,
                "push",
                "failed",
                _ago(seconds=30),
                finished_at=_ago(seconds=20),
                error=f"401 for token {LEAKY}",
            )
        )
    status = await collect_status(db_sessionmaker, _settings(tmp_path), now=NOW)
    books_status = _account(status, "acme-books")
    assert books_status["runs"]["push"]["error"] == "401 for token ***"
    assert books_status["state_reason"] == "credentials rejected: ***"
    assert LEAKY not in json.dumps(status)
    assert LEAKY not in render_status(status)
    assert "error: 401 for token ***" in render_status(status)


async def test_collecting_status_writes_nothing(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await _seed(db_sessionmaker)
    tables = (Account, Workspace, RateBucket, SyncRun, Lease, Cursor, Outbox)

    async def counts() -> list[int]:
        async with db_sessionmaker() as session:
            return [
                int(await session.scalar(select(func.count()).select_from(t)) or 0) for t in tables
            ]

    before = await counts()
    await collect_status(db_sessionmaker, _settings(tmp_path), now=NOW)
    assert await counts() == before


async def test_empty_database(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    status = await collect_status(db_sessionmaker, _settings(tmp_path), now=NOW)
    accounts = [a for w in status["workspaces"] for a in w["accounts"]]
    assert [a["state"] for a in accounts] == ["unknown"] * 4
    assert status["totals"]["outbox"] == dict.fromkeys(status["totals"]["outbox"], 0)


async def test_naive_now_is_refused(
    db_sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await collect_status(db_sessionmaker, _settings(tmp_path), now=datetime(2026, 1, 1))


# --------------------------------------------------------------------------- rendering


async def test_render_shows_each_account_block(seeded_status: dict[str, Any]) -> None:
    text = render_status(seeded_status)
    assert text.startswith("syncd status at 2026-01-31T12:00:00Z\n")
    assert "6 accounts, 3 open conflicts, 1 match review, 2 quarantined" in text
    assert "workspace acme — 3 open conflicts, 1 match review" in text
    assert "  acme-crm (simplicate) — active" in text
    assert "pull       running   started 1m ago  (3 api calls)" in text
    assert "push       ok        finished 2.5m ago  (pushed 4, 4 api calls)" in text
    assert "reconcile  never run" in text
    assert "last successful pull 9m ago" in text
    assert "contacts   2026-01-31T11:50:00Z, mid-pull checkpoint, full sweep never" in text
    assert "paused after a 429 (resumes in 20s)" in text
    assert "outbox     pending 2, uncertain 1, dead 1" in text
    assert "queues     2 open conflicts, 1 match review, 2 quarantined" in text
    assert "lease      host-a:1234 (token 7), expires in 30s" in text
    assert "lease      host-b:99 (token 3), expired 5s ago" in text
    assert "acme-books (moneybird) — paused: daily quota used up (resumes in 2h)" in text
    assert "acme-fresh (perfex) — unknown" in text
    assert "not synced yet" in text
    assert "acme-old (perfex) — auth_failed  [not in the config any more]" in text
    assert (
        "workspace gone — 0 open conflicts, 0 match reviews  [not in the config any more]" in text
    )


def test_render_without_workspaces() -> None:
    text = render_status({"version": 1, "generated_at": "2026-01-31T12:00:00Z", "workspaces": []})
    assert "no workspaces configured" in text
