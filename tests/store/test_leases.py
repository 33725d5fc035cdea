"""Account leases with fencing tokens (both backends) and the SQLite single-instance lock."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.errors import Fatal, SyncdError
from syncd.store import leases
from syncd.store.leases import (
    InstanceLocked,
    LeaseGrant,
    StaleLease,
    acquire,
    acquire_instance_lock,
    check_fence,
    get_lease,
    instance_lock_for_url,
    release,
    renew,
)
from syncd.store.tables import Account, Workspace

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
TICK = timedelta(microseconds=1)
# Bounds a wait for another connection to block; exceeding it fails the test, nothing more.
WAIT_LIMIT = 20.0

Maker = async_sessionmaker[AsyncSession]


async def _accounts(maker: Maker, count: int = 1) -> list[int]:
    """Lease rows point at accounts: create ``count`` of them."""
    async with maker() as session, session.begin():
        workspace = Workspace(name="acme")
        session.add(workspace)
        await session.flush()
        rows = [
            Account(workspace_id=workspace.id, name=f"acme-{i}", vendor="moneybird")
            for i in range(count)
        ]
        session.add_all(rows)
        await session.flush()
        return [row.id for row in rows]


async def _fence_ok(maker: Maker, account_id: int, token: int) -> bool:
    async with maker() as session, session.begin():
        try:
            await check_fence(session, account_id, token)
        except StaleLease:
            return False
        return True


# --- acquire / renew / release ------------------------------------------------------------


async def test_first_acquire_creates_the_lease_with_token_1(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)

    grant = await acquire(db_sessionmaker, account, "host-a:1", TTL, T0)

    assert grant == LeaseGrant(account, "host-a:1", 1, T0 + TTL)
    async with db_sessionmaker() as session:
        state = await get_lease(session, account)
    assert state is not None
    assert (state.owner, state.fencing_token) == ("host-a:1", 1)
    assert (state.acquired_at, state.expires_at) == (T0, T0 + TTL)
    assert not state.expired(T0 + TTL - TICK)
    assert state.expired(T0 + TTL)


async def test_another_owner_is_refused_until_the_lease_expires(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "a", TTL, T0)

    assert await acquire(db_sessionmaker, account, "b", TTL, T0 + TTL - TICK) is None

    taken = await acquire(db_sessionmaker, account, "b", TTL, T0 + TTL)
    assert taken == LeaseGrant(account, "b", 2, T0 + 2 * TTL)


async def test_a_takeover_fences_off_the_old_holder(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    old = await acquire(db_sessionmaker, account, "a", TTL, T0)
    assert old is not None
    assert await _fence_ok(db_sessionmaker, account, old.fencing_token)

    new = await acquire(db_sessionmaker, account, "b", TTL, T0 + 2 * TTL)
    assert new is not None

    assert await _fence_ok(db_sessionmaker, account, new.fencing_token)
    assert not await _fence_ok(db_sessionmaker, account, old.fencing_token)
    assert await renew(db_sessionmaker, old, TTL, T0 + 2 * TTL) is None
    assert await release(db_sessionmaker, old, T0 + 2 * TTL) is False
    # The failed renew/release did not disturb the new holder.
    async with db_sessionmaker() as session:
        state = await get_lease(session, account)
    assert state is not None
    assert (state.owner, state.fencing_token, state.expires_at) == ("b", 2, T0 + 3 * TTL)


async def test_stale_lease_error_says_what_happened(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "a", TTL, T0)
    await acquire(db_sessionmaker, account, "b", TTL, T0 + TTL)

    async with db_sessionmaker() as session:
        with pytest.raises(StaleLease) as caught:
            await check_fence(session, account, 1)

    assert isinstance(caught.value, SyncdError)
    assert (caught.value.account_id, caught.value.token, caught.value.current) == (account, 1, 2)
    assert "lost" in str(caught.value)
    assert "fencing token 2" in str(caught.value)


async def test_check_fence_without_any_lease_refuses(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)

    async with db_sessionmaker() as session:
        with pytest.raises(StaleLease, match="no lease") as caught:
            await check_fence(session, account, 1)
    assert caught.value.current is None


async def test_the_holder_reacquiring_a_live_lease_keeps_its_token(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "a", TTL, T0)

    again = await acquire(db_sessionmaker, account, "a", TTL, T0 + TTL / 2)

    assert again == LeaseGrant(account, "a", 1, T0 + TTL / 2 + TTL)


async def test_the_holder_reacquiring_an_expired_lease_gets_a_new_token(
    db_sessionmaker: Maker,
) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "a", TTL, T0)

    again = await acquire(db_sessionmaker, account, "a", TTL, T0 + TTL)

    # Work started under token 1 may be stale; the new term gets its own token.
    assert again == LeaseGrant(account, "a", 2, T0 + 2 * TTL)


async def test_renew_extends_while_the_token_is_unchanged(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    grant = await acquire(db_sessionmaker, account, "a", TTL, T0)
    assert grant is not None

    renewed = await renew(db_sessionmaker, grant, TTL, T0 + TTL / 3)
    assert renewed == LeaseGrant(account, "a", 1, T0 + TTL / 3 + TTL)
    assert await acquire(db_sessionmaker, account, "b", TTL, T0 + TTL) is None

    # Late, but nobody took over: the unchanged token proves nobody else held it.
    late = await renew(db_sessionmaker, renewed, TTL, T0 + 2 * TTL)
    assert late == LeaseGrant(account, "a", 1, T0 + 3 * TTL)


async def test_release_hands_the_account_over_at_once_and_tokens_keep_rising(
    db_sessionmaker: Maker,
) -> None:
    [account] = await _accounts(db_sessionmaker)
    grant = await acquire(db_sessionmaker, account, "a", TTL, T0)
    assert grant is not None

    assert await release(db_sessionmaker, grant, T0 + TICK) is True
    taken = await acquire(db_sessionmaker, account, "b", TTL, T0 + TICK)

    assert taken == LeaseGrant(account, "b", 2, T0 + TICK + TTL)


async def test_fencing_tokens_only_ever_increase(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)
    tokens = []
    now = T0
    for turn in range(6):
        grant = await acquire(db_sessionmaker, account, f"owner-{turn % 2}", TTL, now)
        assert grant is not None
        tokens.append(grant.fencing_token)
        if turn % 3 == 0:
            await release(db_sessionmaker, grant, now)
        else:
            now += TTL
    assert tokens == [1, 2, 3, 4, 5, 6]


async def test_leases_are_per_account(db_sessionmaker: Maker) -> None:
    first, second = await _accounts(db_sessionmaker, 2)

    a = await acquire(db_sessionmaker, first, "a", TTL, T0)
    b = await acquire(db_sessionmaker, second, "b", TTL, T0)

    assert a is not None and b is not None
    assert (a.fencing_token, b.fencing_token) == (1, 1)
    assert await acquire(db_sessionmaker, first, "b", TTL, T0) is None
    assert await acquire(db_sessionmaker, second, "a", TTL, T0) is None


async def test_with_a_session_the_caller_owns_the_transaction(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)

    async with db_sessionmaker() as session:
        grant = await acquire(session, account, "a", TTL, T0)
        assert grant is not None
        await session.rollback()
    async with db_sessionmaker() as session:
        assert await get_lease(session, account) is None

    async with db_sessionmaker() as session:
        await acquire(session, account, "a", TTL, T0)
        await session.commit()
    async with db_sessionmaker() as session:
        assert await get_lease(session, account) is not None


async def test_naive_times_and_non_positive_ttls_are_refused(db_sessionmaker: Maker) -> None:
    [account] = await _accounts(db_sessionmaker)

    with pytest.raises(ValueError, match="naive"):
        await acquire(db_sessionmaker, account, "a", TTL, datetime(2025, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="positive"):
        await acquire(db_sessionmaker, account, "a", timedelta(0), T0)


# --- races ---------------------------------------------------------------------------------


async def test_concurrent_acquirers_of_a_new_lease_get_exactly_one_grant(
    db_sessionmaker: Maker,
) -> None:
    accounts = await _accounts(db_sessionmaker, 3)
    for account in accounts:
        grants = await asyncio.gather(
            *(acquire(db_sessionmaker, account, f"owner-{i}", TTL, T0) for i in range(8))
        )

        winners = [g for g in grants if g is not None]
        assert len(winners) == 1
        assert winners[0].fencing_token == 1


async def test_concurrent_takeovers_of_an_expired_lease_get_exactly_one_grant(
    db_sessionmaker: Maker,
) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "dead", TTL, T0)
    now = T0
    for round_ in range(5):
        now += 2 * TTL
        grants = await asyncio.gather(
            *(acquire(db_sessionmaker, account, f"r{round_}-{i}", TTL, now) for i in range(8))
        )

        winners = [g for g in grants if g is not None]
        assert len(winners) == 1
        assert winners[0].fencing_token == round_ + 2
        async with db_sessionmaker() as session:
            state = await get_lease(session, account)
        assert state is not None
        assert (state.owner, state.fencing_token) == (winners[0].owner, round_ + 2)


async def _wait_until_blocked_on_a_lock(maker: Maker, waiting: Awaitable[object]) -> None:
    """Return once some other backend of this database waits on a lock; fail on timeout.

    ``waiting`` is the task expected to block; if it finishes first, it did not block.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_LIMIT
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while loop.time() < deadline:
        async with maker() as session:
            if (await session.execute(query)).scalar_one() > 0:
                return
        assert not (isinstance(waiting, asyncio.Future) and waiting.done()), (
            "expected the statement to wait for the row lock, but it finished"
        )
        await asyncio.sleep(0.02)
    pytest.fail(f"no session blocked on a lock within {WAIT_LIMIT}s")


@pytest.mark.parametrize("db_backend", ["postgres"])
async def test_postgres_a_queued_acquirer_rechecks_after_the_winner_commits(
    db_sessionmaker: Maker,
) -> None:
    [account] = await _accounts(db_sessionmaker)
    await acquire(db_sessionmaker, account, "dead", TTL, T0)
    later = T0 + 2 * TTL

    async with db_sessionmaker() as first:
        # The first acquirer takes the row lock in its open transaction...
        won = await acquire(first, account, "a", TTL, later)
        assert won is not None and won.fencing_token == 2
        # ...the second queues behind it, with the lease still expired in its snapshot.
        second = asyncio.ensure_future(acquire(db_sessionmaker, account, "b", TTL, later))
        await _wait_until_blocked_on_a_lock(db_sessionmaker, second)
        await first.commit()

    assert await second is None
    async with db_sessionmaker() as session:
        state = await get_lease(session, account)
    assert state is not None
    assert (state.owner, state.fencing_token) == ("a", 2)


@pytest.mark.parametrize("db_backend", ["postgres"])
async def test_postgres_a_takeover_waits_for_a_fenced_write_to_commit(
    db_sessionmaker: Maker,
) -> None:
    [account] = await _accounts(db_sessionmaker)
    held = await acquire(db_sessionmaker, account, "a", TTL, T0)
    assert held is not None
    later = T0 + 2 * TTL  # the holder stalled past its expiry

    async with db_sessionmaker() as writer:
        await check_fence(writer, account, held.fencing_token)  # still valid: passes
        takeover = asyncio.ensure_future(acquire(db_sessionmaker, account, "b", TTL, later))
        # The takeover cannot change the row while the writer's transaction is open.
        await _wait_until_blocked_on_a_lock(db_sessionmaker, takeover)
        assert not takeover.done()
        await writer.commit()

    grant = await takeover
    assert grant is not None and grant.fencing_token == held.fencing_token + 1
    assert not await _fence_ok(db_sessionmaker, account, held.fencing_token)


# --- SQLite single-instance lock -------------------------------------------------------------

_HOLD_LOCK = """
import sys
from syncd.store.leases import acquire_instance_lock
lock = acquire_instance_lock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_second_instance_on_one_sqlite_file_is_refused_with_the_holders_pid(
    tmp_path: Path,
) -> None:
    db = tmp_path / "syncd.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"

        with pytest.raises(InstanceLocked) as caught:
            acquire_instance_lock(db)

        assert isinstance(caught.value, Fatal)
        assert caught.value.pid == holder.pid
        assert f"another syncd instance is running on this database (pid {holder.pid})" in str(
            caught.value
        )
        assert str(tmp_path / "syncd.db.lock") in str(caught.value)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits, and the kernel drops its lock
        assert holder.wait(timeout=60) == 0
        assert holder.stdout is not None
        holder.stdout.close()

    with acquire_instance_lock(db) as lock:
        assert lock.held
        assert (tmp_path / "syncd.db.lock").read_text() == f"{os.getpid()}\n"
    assert not lock.held


def test_the_lock_is_exclusive_within_one_process_too_and_release_frees_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "state" / "syncd.db"
    first = acquire_instance_lock(db)
    try:
        with pytest.raises(InstanceLocked, match=rf"\(pid {os.getpid()}\)"):
            acquire_instance_lock(db)
    finally:
        first.release()
    first.release()  # idempotent

    second = acquire_instance_lock(db)
    second.release()
    mode = stat.S_IMODE((tmp_path / "state" / "syncd.db.lock").stat().st_mode)
    assert mode == 0o600


def test_an_unreadable_pid_still_gives_a_clear_refusal(tmp_path: Path) -> None:
    db = tmp_path / "syncd.db"
    with acquire_instance_lock(db):
        Path(f"{db}.lock").write_text("")  # as if the holder had not written its pid yet
        with pytest.raises(InstanceLocked, match=r"\(pid unknown\)"):
            acquire_instance_lock(db)


def test_instance_lock_for_url_locks_sqlite_files_only(tmp_path: Path) -> None:
    assert instance_lock_for_url("postgresql+asyncpg://syncd@db/syncd") is None
    assert instance_lock_for_url("sqlite+aiosqlite://") is None
    assert instance_lock_for_url("sqlite+aiosqlite:///:memory:") is None

    lock = instance_lock_for_url(f"sqlite+aiosqlite:///{tmp_path / 'syncd.db'}")
    assert lock is not None
    try:
        assert lock.path == tmp_path / "syncd.db.lock"
        with pytest.raises(InstanceLocked):
            leases.acquire_instance_lock(tmp_path / "syncd.db")
    finally:
        lock.release()
