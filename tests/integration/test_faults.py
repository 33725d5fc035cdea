"""Faults at ~15 % of all requests, "write committed, response lost" included: repeated
``once`` runs converge to the union with zero duplicates.

The sandbox injects its faults into every vendor's requests (429s, 500s, 503s, resets,
garbled and HTML 200s, and for writes a dropped answer after the write was committed).
The engine's own clock is virtual here, so a write's retry back-off is waited out in
virtual time; the adapters' short HTTP retries and the vendors' 1 s Retry-After are
real.
"""

from __future__ import annotations

import datetime as dt

import pytest

from syncd.runner import Engine
from syncd.sandbox.base import FAULT_KINDS, VENDORS
from syncd.store import tables as t
from tests.integration.helpers import SyncWorld, assert_agree, assert_union, open_sync

FAULT_RATE = 0.15
# Every kind but "slow" (it waits out a 30 s read timeout per hit); and a mix where a
# faulted write is a lost response one time in three.
ALL_KINDS = tuple(k for k in FAULT_KINDS if k != "slow")
WRITE_KINDS = ("lost_response", "server_error", "reset")
MAX_RUNS = 12


class VirtualClock:
    """Engine time that starts now and moves on when the engine sleeps."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=max(0.0, seconds))


def virtual_engine(world: SyncWorld) -> Engine:
    """The runtime's engine over the same store and adapters, on a virtual clock."""
    clock = VirtualClock()
    return Engine(
        world.settings,
        world.runtime.sessionmaker,
        world.runtime.adapters,
        clock=clock,
        sleep=clock.sleep,
        call_count=world.runtime.counter.count,
    )


async def _settled(world: SyncWorld) -> bool:
    unsettled = await world.rows(
        t.Outbox, t.Outbox.state.in_(("pending", "sending", "uncertain", "failed"))
    )
    return not unsettled


@pytest.mark.parametrize(
    ("seed", "kinds"), [(7, ALL_KINDS), (8, WRITE_KINDS)], ids=["all-kinds", "write-kinds"]
)
async def test_repeated_runs_under_faults_converge_without_duplicates(
    seed: int, kinds: tuple[str, ...], sqlite_db_url: str
) -> None:
    async with open_sync(VENDORS, sqlite_db_url, seed=seed, contacts=14, overlap=0.5) as world:
        engine = virtual_engine(world)
        world.handle.options.fault_kinds = kinds
        world.handle.options.fault_rate = FAULT_RATE

        runs = 0
        while runs < MAX_RUNS:
            runs += 1
            totals = await engine.once()
            quiet = all(st.changed == 0 and st.pushed == 0 for st in totals.values())
            if quiet and await _settled(world):
                break
        faults = {v: dict(world.handle.counters(v).faults) for v in VENDORS}
        world.handle.options.fault_rate = 0.0
        await engine.once()

        assert runs < MAX_RUNS, f"no quiet run in {MAX_RUNS}; faults: {faults}"
        # The faults did happen (with the write-heavy mix: writes that landed unanswered).
        seen = {k for f in faults.values() for k in f}
        assert seen >= {"server_error", "reset"}, faults
        if kinds == WRITE_KINDS:
            assert sum(f.get("lost_response", 0) for f in faults.values()) > 0, faults
        assert await world.open_reviews() == []
        assert await world.rows(t.Outbox, t.Outbox.state == "dead") == []
        assert_union(world)
        assert_agree(world)
        # And settled for good: another pass writes nothing.
        writes = world.writes()
        await engine.once()
        assert world.writes() == writes
