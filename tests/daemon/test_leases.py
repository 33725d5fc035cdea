"""LeaseKeeper: instances split the accounts evenly, take over a dead one's, fence stale writes."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from structlog.testing import capture_logs

from syncd.adapters.fake import FakeAdapter
from syncd.app import ensure_accounts, scoped_sessionmaker, write_scope
from syncd.runner import Engine
from syncd.scheduler import AccountRef, LeaseKeeper, account_refs
from syncd.store import leases
from syncd.store import tables as t
from syncd.store.db import create_sessionmaker
from syncd.store.leases import Liveness, StaleLease
from tests.engine.helpers import org, settings_for, vendor

TTL = dt.timedelta(seconds=10)
NAMES = [f"acct-{i}" for i in range(6)]


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 11, 2, 8, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


async def refs(sm: async_sessionmaker[AsyncSession], names: list[str]) -> dict[str, AccountRef]:
    ids = await ensure_accounts(sm, settings_for(names))
    async with sm() as s:
        rows = (await s.execute(select(t.Account.id, t.Account.workspace_id))).all()
    workspace = {row.id: row.workspace_id for row in rows}
    return {name: AccountRef(name, ids[name], workspace[ids[name]]) for name in names}


def keeper(sm: async_sessionmaker[AsyncSession], clock: Clock, host: str) -> LeaseKeeper:
    return LeaseKeeper(sm, owner=f"{host}:1:abcd1234", hostname=host, pid=1, ttl=TTL, clock=clock)


async def test_two_instances_split_the_accounts_and_one_takes_over_when_the_other_dies(
    migrated_db: AsyncEngine,
) -> None:
    sm = create_sessionmaker(migrated_db)
    accounts = await refs(sm, NAMES)
    clock = Clock()
    first, second = keeper(sm, clock, "one"), keeper(sm, clock, "two")
    first.set_accounts(accounts)
    second.set_accounts(accounts)

    # Alone, the first instance takes everything.
    changes = await first.tick()
    assert sorted(changes.gained) == NAMES and changes.live_instances == 1

    # The second one arrives: nothing is free yet, but it is counted.
    changes = await second.tick()
    assert changes.gained == [] and changes.live_instances == 2 and changes.target == 3

    # The first hands back what is over its share; the second takes it.
    clock.advance(1)
    changes = await first.tick()
    assert len(changes.released) == 3
    changes = await second.tick()
    assert len(changes.gained) == 3
    assert set(first.held()).isdisjoint(second.held())
    assert sorted(first.held() + second.held()) == NAMES

    # Stable from here: ticks change nothing.
    for _ in range(3):
        clock.advance(3)
        assert (await first.tick()).gained == [] and (await second.tick()).gained == []
    assert len(first.held()) == len(second.held()) == 3

    # The second instance stops ticking (it died). After one ttl its accounts move.
    theirs = second.held()
    their_tokens = {name: second.grants[name].fencing_token for name in theirs}
    clock.advance(TTL.total_seconds() + 1)
    changes = await first.tick()
    assert sorted(changes.gained) == sorted(theirs)
    assert sorted(first.held()) == NAMES
    for name in theirs:
        assert first.grants[name].fencing_token == their_tokens[name] + 1  # a takeover bumps it
        # The dead instance's own view expired: it would not start a job.
        assert second.scope(name) is None


async def test_a_stale_holder_cannot_write(migrated_db: AsyncEngine) -> None:
    sm = create_sessionmaker(migrated_db)
    accounts = await refs(sm, NAMES[:2])
    clock = Clock()
    first, second = keeper(sm, clock, "one"), keeper(sm, clock, "two")
    first.set_accounts(accounts)
    second.set_accounts(accounts)
    await first.tick()
    stale = first.scope("acct-0")
    assert stale is not None and stale.fencing_token == 1

    clock.advance(TTL.total_seconds() + 1)
    await second.tick()  # the first stalled; the second takes both accounts over
    fresh = second.scope("acct-0")
    assert fresh is not None and fresh.fencing_token == 2

    scoped = scoped_sessionmaker(migrated_db)
    with write_scope(stale), pytest.raises(StaleLease, match="write refused"):
        async with scoped() as s, s.begin():
            s.add(t.Workspace(name="written by a stale holder"))
    with write_scope(fresh):
        async with scoped() as s, s.begin():
            s.add(t.Workspace(name="written by the holder"))
    async with sm() as s:
        names = set((await s.execute(select(t.Workspace.name))).scalars())
    assert "written by the holder" in names
    assert "written by a stale holder" not in names

    # The stalled instance learns it on its next tick, and does not get it back.
    changes = await first.tick()
    assert sorted(changes.lost) == ["acct-0", "acct-1"]
    assert first.scope("acct-0") is None


async def test_an_account_in_use_is_handed_back_only_once_idle(sqlite_db: AsyncEngine) -> None:
    sm = create_sessionmaker(sqlite_db)
    accounts = await refs(sm, NAMES[:4])
    clock = Clock()
    first, second = keeper(sm, clock, "one"), keeper(sm, clock, "two")
    first.set_accounts(accounts)
    second.set_accounts(accounts)
    await first.tick()
    await second.tick()

    changes = await first.tick(busy=lambda name: True)
    assert changes.released == []
    handing_over = sorted(first.releasing)
    assert len(handing_over) == 2
    for name in handing_over:
        assert first.scope(name) is None  # no new job starts meanwhile
    assert first.scope(sorted(set(first.held()) - set(handing_over))[0]) is not None

    changes = await first.tick(busy=lambda name: False)
    assert sorted(changes.released) == handing_over
    assert sorted((await second.tick()).gained) == handing_over


async def test_accounts_removed_from_the_config_are_handed_back(sqlite_db: AsyncEngine) -> None:
    sm = create_sessionmaker(sqlite_db)
    accounts = await refs(sm, NAMES[:3])
    clock = Clock()
    alone = keeper(sm, clock, "one")
    alone.set_accounts(accounts)
    await alone.tick()
    assert alone.held() == NAMES[:3]

    alone.set_accounts({n: accounts[n] for n in NAMES[:2]})
    changes = await alone.tick()
    assert changes.released == ["acct-2"]
    assert alone.held() == NAMES[:2]


async def test_a_clean_stop_hands_everything_over_at_once(sqlite_db: AsyncEngine) -> None:
    sm = create_sessionmaker(sqlite_db)
    accounts = await refs(sm, NAMES[:4])
    clock = Clock()
    first, second = keeper(sm, clock, "one"), keeper(sm, clock, "two")
    first.set_accounts(accounts)
    second.set_accounts(accounts)
    await first.tick()
    await second.tick()
    await first.close()

    async with sm() as s:
        live = (await s.execute(select(func.count()).select_from(t.Instance))).scalar_one()
    assert live == 1
    changes = await second.tick()  # no waiting for a ttl
    assert sorted(changes.gained) == NAMES[:4] and changes.live_instances == 1


def test_lease_ttl_comes_from_the_environment_or_defaults() -> None:
    from syncd.daemon import DEFAULT_LEASE_TTL, DaemonError, lease_ttl

    settings = settings_for(["a", "b"])
    assert lease_ttl(settings, {}) == DEFAULT_LEASE_TTL
    assert lease_ttl(settings, {"SYNCD_LEASE_TTL": "4s"}) == dt.timedelta(seconds=4)
    with pytest.raises(DaemonError, match="SYNCD_LEASE_TTL"):
        lease_ttl(settings, {"SYNCD_LEASE_TTL": "soon"})


def test_lease_ttl_in_the_config_wins_and_is_checked() -> None:
    from syncd.daemon import lease_ttl
    from syncd.errors import ConfigError
    from syncd.settings import parse_settings

    def parsed(ttl: str) -> Any:
        return parse_settings({"daemon": {"lease_ttl": ttl}}, environ={}, base_dir=Path("."))

    assert lease_ttl(parsed("12s"), {"SYNCD_LEASE_TTL": "4s"}) == dt.timedelta(seconds=12)
    with pytest.raises(ConfigError) as refused:
        parsed("1s")
    assert "daemon.lease_ttl: must be at least 3s, not 1s" in str(refused.value)


async def test_the_engine_writes_nothing_for_an_account_whose_lease_was_lost(
    migrated_db: AsyncEngine,
) -> None:
    # The guard sits in the sessions the daemon gives the engine: every engine
    # transaction must pass through it (this fails if the engine ever opens one that
    # does not, e.g. without ``session.begin()``).
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    settings = settings_for(["crm", "books"])
    adapters = {
        "crm": FakeAdapter(crm, account="crm"),
        "books": FakeAdapter(books, account="books"),
    }
    engine = Engine(settings, scoped_sessionmaker(migrated_db), adapters)
    await engine.prepare()
    sm = create_sessionmaker(migrated_db)
    clock = Clock()
    first, second = keeper(sm, clock, "one"), keeper(sm, clock, "two")
    first.set_accounts(account_refs(engine))
    second.set_accounts(account_refs(engine))
    await first.tick()
    stale = first.scope("crm")
    clock.advance(TTL.total_seconds() + 1)
    await second.tick()

    with write_scope(stale), pytest.raises(StaleLease):
        await engine.pull("crm")
    async with sm() as s:
        assert (await s.execute(select(func.count()).select_from(t.Contact))).scalar_one() == 0
        assert (await s.execute(select(func.count()).select_from(t.SyncRun))).scalar_one() == 0

    with write_scope(second.scope("crm")):
        stats = await engine.pull("crm")
    assert stats.errors == [] and stats.new_entities == 1


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
async def test_instances_starting_together_mirror_the_accounts_once(
    migrated_db: AsyncEngine,
) -> None:
    # Two instances (two engines, two connection pools) race to insert the same missing
    # workspace and accounts: one wins, the other reads what the winner committed.
    from syncd.store.db import create_engine

    settings = settings_for(["crm", "books", "shop"])
    other = create_engine(migrated_db.url.render_as_string(hide_password=False))
    try:
        results = await asyncio.gather(
            *(
                ensure_accounts(create_sessionmaker(db), settings)
                for db in (migrated_db, other)
                for _ in range(3)
            )
        )
        assert all(ids == results[0] for ids in results)
        first = results[0]
        assert sorted(first) == ["books", "crm", "shop"]
    finally:
        await other.dispose()
    async with create_sessionmaker(migrated_db)() as s:
        assert (await s.execute(select(func.count()).select_from(t.Account))).scalar_one() == 3
        assert (await s.execute(select(func.count()).select_from(t.Workspace))).scalar_one() == 1


async def _kill_session_holding(db: AsyncEngine, key: int) -> int:
    """End the server session that holds advisory lock ``key``, as a dying process would."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    async with db.connect() as conn:
        pids = (
            (
                await conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
                        " AND classid = CAST(CAST(:hi AS bigint) AS oid)"
                        " AND objid = CAST(CAST(:lo AS bigint) AS oid)"
                    ),
                    {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
                )
            )
            .scalars()
            .all()
        )
        for pid in pids:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await conn.commit()
    return len(pids)


def live_keeper(db: AsyncEngine, clock: Clock, host: str) -> LeaseKeeper:
    owner = f"{host}:1:abcd1234"
    return LeaseKeeper(
        create_sessionmaker(db),
        owner=owner,
        hostname=host,
        pid=1,
        ttl=TTL,
        clock=clock,
        liveness=Liveness(db, owner),
    )


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
async def test_a_dead_process_loses_its_accounts_at_once_not_after_the_ttl(
    migrated_db: AsyncEngine,
) -> None:
    from syncd.store.db import create_engine

    accounts = await refs(create_sessionmaker(migrated_db), NAMES)
    clock = Clock()
    # Two connection pools, as two processes would have.
    other = create_engine(migrated_db.url.render_as_string(hide_password=False))
    first, second = live_keeper(other, clock, "one"), live_keeper(migrated_db, clock, "two")
    try:
        first.set_accounts(accounts)
        second.set_accounts(accounts)
        await first.tick()
        await second.tick()
        clock.advance(1)
        await first.tick()
        assert len((await second.tick()).gained) == 3

        # Both alive: looking at each other's liveness takes nothing.
        clock.advance(3)
        changes = await second.tick()
        assert changes.gained == [] and changes.live_instances == 2
        assert len(first.held()) == 3

        # The first process dies: the server ends its sessions, and its lock goes.
        theirs = first.held()
        tokens = {name: first.grants[name].fencing_token for name in theirs}
        assert first.liveness is not None
        assert await _kill_session_holding(migrated_db, first.liveness.key) == 1
        clock.advance(1)  # far less than the ttl
        with capture_logs() as logs:
            changes = await second.tick()
        assert sorted(changes.gained) == sorted(theirs)
        assert changes.live_instances == 1 and sorted(second.held()) == NAMES
        for name in theirs:
            assert second.grants[name].fencing_token == tokens[name] + 1
        gone = [e for e in logs if e["event"] == "instance_gone"]
        assert gone == [
            {
                "event": "instance_gone",
                "owner": "one:1:abcd1234",
                "leases_freed": 3,
                "log_level": "warning",
            }
        ]

        # Were it only its connection that died, the first learns on its next tick that
        # the accounts are gone, takes its liveness lock again, and is counted again.
        changes = await first.tick()
        assert sorted(changes.lost) == sorted(theirs) and first.held() == []
        assert changes.live_instances == 2
    finally:
        await first.close()
        await second.close()
        await other.dispose()


@pytest.mark.parametrize("db_backend", ["postgres"], indirect=True)
async def test_an_instance_without_a_liveness_lock_is_only_declared_dead_by_expiry(
    migrated_db: AsyncEngine,
) -> None:
    # An instance of an older syncd (no liveness_key) holds acct-0: its lock cannot be
    # looked at, so its lease is respected until it expires.
    sm = create_sessionmaker(migrated_db)
    accounts = await refs(sm, NAMES[:2])
    clock = Clock()
    await leases.acquire(sm, accounts["acct-0"].account_id, "old:9:ffffffff", TTL, clock.now)
    async with sm() as s, s.begin():
        s.add(
            t.Instance(
                owner="old:9:ffffffff",
                hostname="old",
                pid=9,
                heartbeat_at=clock.now,
                expires_at=clock.now + TTL,
            )
        )
    mine = live_keeper(migrated_db, clock, "new")
    try:
        mine.set_accounts(accounts)
        changes = await mine.tick()
        assert changes.gained == ["acct-1"] and changes.live_instances == 2
        clock.advance(TTL.total_seconds() + 1)
        changes = await mine.tick()
        assert changes.gained == ["acct-0"]
    finally:
        await mine.close()
