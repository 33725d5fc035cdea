"""Rate budgets: sliding-window safety, exact waits, lanes, 429 penalties, quotas, SQL sharing."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.ratelimit import (
    UNLIMITED,
    MemoryRateBudget,
    SqlRateBudget,
    budget_for,
    plan_window,
)
from syncd.errors import QuotaExhausted, RateLimited
from syncd.settings import AccountSettings, RateLimitWindow
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.tables import Account, RateBucket, Workspace

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def window(requests: int, seconds: float) -> RateLimitWindow:
    return RateLimitWindow(requests=requests, per=timedelta(seconds=seconds))


class FakeTime:
    """A clock that only moves when someone sleeps on it; records every sleep."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)  # let other tasks queue up behind the sleeper
        self.advance(seconds)


class VirtualTime:
    """Shared virtual time for several workers: it advances only when all of them sleep.

    Workers never see the clock move while one of them is between two sleeps, so the time
    a worker reads right after ``acquire`` is the time its token was taken.
    """

    def __init__(self, start: datetime = T0) -> None:
        self.now = start
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        wake = self.now + timedelta(seconds=seconds)
        heapq.heappush(self._sleepers, (wake, next(self._seq), future))
        await future

    async def run(self, *workers: Coroutine[Any, Any, None]) -> None:
        tasks = [asyncio.create_task(w) for w in workers]
        try:
            while not all(t.done() for t in tasks):
                await asyncio.sleep(0.001)  # real time: lets database I/O progress
                live = [t for t in tasks if not t.done()]
                if live and len(self._sleepers) == len(live):
                    # Wake everyone due at the same instant together, so they race.
                    self.now = max(self.now, self._sleepers[0][0])
                    while self._sleepers and self._sleepers[0][0] <= self.now:
                        heapq.heappop(self._sleepers)[2].set_result(None)
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()


def max_in_any_window(times: Sequence[datetime], seconds: float) -> int:
    """The most requests in any half-open interval (t - seconds, t], as vendors count."""
    stamps = sorted(t.timestamp() for t in times)
    best = 0
    for i, stamp in enumerate(stamps):
        first = bisect.bisect_right(stamps, stamp - seconds)
        best = max(best, i + 1 - first)
    return best


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize("requests", [1, 2, 3, 4, 5, 10, 60, 100, 150, 1000, 5000])
def test_plan_never_lets_burst_plus_one_window_of_refill_exceed_the_limit(requests: int) -> None:
    plan = plan_window(window(requests, 60))

    assert plan.kind == "bucket"
    assert plan.capacity >= 1
    assert plan.refill_per_window > 0
    # Whole requests: at most floor(capacity + refill) in any window of the vendor's length.
    assert int(plan.capacity + plan.refill_per_window) <= requests


@pytest.mark.parametrize(("requests", "seconds"), [(60, 60), (150, 300), (1000, 3600)])
def test_plan_of_the_vendor_defaults_uses_at_least_90_percent_and_keeps_a_margin(
    requests: int, seconds: float
) -> None:
    plan = plan_window(window(requests, seconds))

    assert plan.refill_per_window / requests >= 0.9
    assert plan.capacity + plan.refill_per_window <= requests - 1


def test_a_window_of_a_day_is_a_quota_that_allows_nearly_all_of_it_at_once() -> None:
    plan = plan_window(window(10_000, 86_400))

    assert plan.kind == "quota"
    assert 9_500 <= plan.capacity < 10_000


# --------------------------------------------------------------------------- memory budget


async def test_unlimited_budget_never_waits() -> None:
    for _ in range(1000):
        await UNLIMITED.acquire("pull")
    await UNLIMITED.penalize(5.0)
    UNLIMITED.record_success()


async def test_backlog_never_exceeds_the_limit_in_any_sliding_window_and_uses_90_percent() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    sent: list[datetime] = []

    for _ in range(600):
        await budget.acquire("pull")
        sent.append(time.now)

    assert max_in_any_window(sent, 60) <= 60
    elapsed = (sent[-1] - sent[0]).total_seconds()
    assert len(sent) / (elapsed * 60 / 60) >= 0.9


async def test_two_windows_are_both_respected() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(10, 1), window(100, 60)], clock=time.clock, sleep=time.sleep)
    sent: list[datetime] = []

    for _ in range(400):
        await budget.acquire("pull")
        sent.append(time.now)

    assert max_in_any_window(sent, 1) <= 10
    assert max_in_any_window(sent, 60) <= 100


async def test_waits_exactly_until_the_next_token() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    plan = plan_window(window(60, 60))
    for _ in range(plan.capacity):  # the burst goes at once
        await budget.acquire("pull")
    assert time.sleeps == []

    await budget.acquire("pull")

    assert time.sleeps == [pytest.approx(60 / plan.refill_per_window, abs=1e-6)]


async def test_partial_refill_shortens_the_wait() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    plan = plan_window(window(60, 60))
    for _ in range(plan.capacity):
        await budget.acquire("pull")
    per_token = 60 / plan.refill_per_window

    time.advance(per_token * 0.75)
    await budget.acquire("pull")

    assert time.sleeps == [pytest.approx(per_token * 0.25, abs=1e-6)]


async def test_waiting_callers_get_tokens_push_first_then_pull_then_reconcile() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    for _ in range(plan_window(window(60, 60)).capacity):
        await budget.acquire("pull")
    order: list[str] = []

    async def call(lane: Any, name: str) -> None:
        await budget.acquire(lane)
        order.append(name)

    # Reconcile asks first and pushes last, but the push goes first once a token is free.
    await asyncio.gather(
        call("reconcile", "reconcile-1"),
        call("pull", "pull-1"),
        call("reconcile", "reconcile-2"),
        call("push", "push-1"),
        call("pull", "pull-2"),
        call("push", "push-2"),
    )

    assert order == ["push-1", "push-2", "pull-1", "pull-2", "reconcile-1", "reconcile-2"]


async def test_only_the_head_waiter_sleeps_the_others_wait_without_spinning() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    plan = plan_window(window(60, 60))
    for _ in range(plan.capacity):
        await budget.acquire("pull")

    await asyncio.gather(*(budget.acquire("pull") for _ in range(5)))

    # One sleep per token: nobody polls.
    assert time.sleeps == [pytest.approx(60 / plan.refill_per_window, abs=1e-6)] * 5


async def test_a_cancelled_waiter_does_not_block_the_queue() -> None:
    time = FakeTime()
    gate = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        await gate.wait()
        time.advance(seconds)

    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=blocking_sleep)
    for _ in range(plan_window(window(60, 60)).capacity):
        await budget.acquire("pull")
    head = asyncio.create_task(budget.acquire("pull"))
    behind = asyncio.create_task(budget.acquire("push"))
    await asyncio.sleep(0)

    head.cancel()
    gate.set()
    await asyncio.wait_for(behind, timeout=5)

    assert head.cancelled()


async def test_penalty_pauses_until_retry_after_then_refills_at_a_shrunk_rate() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    plan = plan_window(window(60, 60))

    await budget.penalize(30.0)
    [state] = await budget.snapshot()
    await budget.acquire("pull")

    assert state.penalty_until == T0 + timedelta(seconds=30)
    assert state.rate_factor == pytest.approx(0.8)
    assert state.tokens == 0
    # The pause, then one token at 80 % of the planned rate: one exact sleep.
    assert time.sleeps == [pytest.approx(30 + 60 / (plan.refill_per_window * 0.8), abs=1e-5)]


async def test_two_429s_of_one_burst_shrink_the_rate_once() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)

    await budget.penalize(10.0)
    await budget.penalize(12.0)
    [state] = await budget.snapshot()

    assert state.rate_factor == pytest.approx(0.8)
    assert state.penalty_until == T0 + timedelta(seconds=12)


async def test_penalty_without_retry_after_pauses_for_the_shortest_window_at_most_a_minute() -> (
    None
):
    short = FakeTime()
    budget = MemoryRateBudget([window(10, 5), window(100, 600)], clock=short.clock)
    await budget.penalize(None)
    long = FakeTime()
    slow = MemoryRateBudget([window(1000, 3600)], clock=long.clock)
    await slow.penalize(None)

    assert [s.penalty_until for s in await budget.snapshot()] == [T0 + timedelta(seconds=5)] * 2
    assert [s.penalty_until for s in await slow.snapshot()] == [T0 + timedelta(seconds=60)]


async def test_successes_restore_the_configured_rate_slowly() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(60, 60)], clock=time.clock, sleep=time.sleep)
    await budget.penalize(1.0)

    for _ in range(30):
        await budget.acquire("pull")
        budget.record_success()
    await budget.acquire("pull")
    [halfway] = await budget.snapshot()
    for _ in range(30):
        await budget.acquire("pull")
        budget.record_success()
    await budget.acquire("pull")
    [recovered] = await budget.snapshot()

    assert halfway.rate_factor == pytest.approx(0.9)
    assert recovered.rate_factor == 1.0
    assert recovered.allowed == plan_window(window(60, 60)).capacity + 56


async def test_penalty_longer_than_max_wait_raises_rate_limited_with_retry_after() -> None:
    time = FakeTime()
    budget = MemoryRateBudget(
        [window(60, 60)], clock=time.clock, sleep=time.sleep, max_wait=300, name="acme-crm"
    )
    await budget.penalize(3600.0)

    with pytest.raises(RateLimited) as caught:
        await budget.acquire("push")

    # The pause, then the first token at the shrunk rate.
    per_token = 60 / (plan_window(window(60, 60)).refill_per_window * 0.8)
    assert caught.value.retry_after == pytest.approx(3600.0 + per_token, abs=1e-5)
    assert "acme-crm" in str(caught.value)
    assert time.sleeps == []


async def test_exhausted_daily_quota_parks_the_account_with_quota_exhausted() -> None:
    time = FakeTime()
    budget = MemoryRateBudget([window(100, 86_400)], clock=time.clock, sleep=time.sleep)
    allowed = plan_window(window(100, 86_400)).capacity
    for _ in range(allowed):
        await budget.acquire("pull")
        time.advance(60)  # spread over the first hours of the day
    assert time.sleeps == []

    with pytest.raises(QuotaExhausted) as caught:
        await budget.acquire("pull")

    # The first 15-minute slot (9:00-9:15) ages out a day after it ended.
    expected = (T0 + timedelta(days=1, minutes=15) - time.now).total_seconds()
    assert caught.value.retry_after == pytest.approx(expected)
    assert time.sleeps == []


async def test_quota_frees_requests_as_old_slots_age_out() -> None:
    time = FakeTime()
    budget = MemoryRateBudget(
        [window(100, 86_400)], clock=time.clock, sleep=time.sleep, max_wait=10**9
    )
    sent: list[datetime] = []
    for _ in range(300):
        await budget.acquire("pull")
        sent.append(time.now)

    assert max_in_any_window(sent, 86_400) <= 100
    assert len(time.sleeps) >= 2  # it parked and resumed


async def test_simplbooks_default_windows_stay_under_the_halving_threshold() -> None:
    time = FakeTime()
    windows = [window(60, 60), window(10_000, 86_400)]
    budget = MemoryRateBudget(windows, clock=time.clock, sleep=time.sleep, max_wait=10**9)
    sent: list[datetime] = []

    for _ in range(11_000):
        await budget.acquire("pull")
        sent.append(time.now)

    assert max_in_any_window(sent, 60) <= 60
    assert max_in_any_window(sent, 86_400) <= 10_000


def test_budget_for_uses_the_accounts_windows() -> None:
    account = AccountSettings.model_validate(
        {
            "name": "acme-books",
            "vendor": "simplbooks",
            "base_url": "https://app.simplbooks.com/demo/api",
            "credentials": {"token": "t" * 32},
        }
    )

    budget = budget_for(account)

    assert isinstance(budget, MemoryRateBudget)
    assert [p.window for p in budget.plans] == list(account.rate_limit)
    with pytest.raises(ValueError, match="database id"):
        budget_for(account, sessionmaker=object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SQL budget


async def _account(sessionmaker: async_sessionmaker[AsyncSession], name: str = "acme") -> int:
    async with sessionmaker() as session, session.begin():
        workspace = Workspace(name=f"ws-{name}")
        session.add(workspace)
        await session.flush()
        account = Account(workspace_id=workspace.id, name=name, vendor="simplicate")
        session.add(account)
        await session.flush()
        return account.id


@pytest.fixture
async def second_sessionmaker(
    migrated_db_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Another engine on the same database: what a second syncd process would hold."""
    engine = create_engine(migrated_db_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def test_sql_budget_waits_exactly_until_the_next_token_and_persists_the_bucket(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = FakeTime()
    budget = SqlRateBudget(
        db_sessionmaker,
        account_id=account_id,
        windows=[window(60, 60)],
        clock=time.clock,
        sleep=time.sleep,
    )
    plan = plan_window(window(60, 60))

    for _ in range(plan.capacity + 1):
        await budget.acquire("pull")

    assert time.sleeps == [pytest.approx(60 / plan.refill_per_window, abs=1e-6)]
    async with db_sessionmaker() as session:
        row = (await session.execute(select(RateBucket))).scalar_one()
    assert (row.account_id, row.window_seconds, row.capacity) == (account_id, 60, plan.capacity)
    assert row.tokens == pytest.approx(0.0, abs=1e-6)
    assert row.refilled_at == time.now


async def test_a_restarted_budget_on_the_same_database_does_not_burst(
    db_sessionmaker: async_sessionmaker[AsyncSession],
    second_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = FakeTime()
    windows = [window(60, 60)]
    before = SqlRateBudget(
        db_sessionmaker, account_id=account_id, windows=windows, clock=time.clock
    )
    plan = plan_window(windows[0])
    for _ in range(plan.capacity):
        await before.acquire("pull")

    after = SqlRateBudget(
        second_sessionmaker,
        account_id=account_id,
        windows=windows,
        clock=time.clock,
        sleep=time.sleep,
    )
    await after.acquire("pull")

    assert time.sleeps == [pytest.approx(60 / plan.refill_per_window, abs=1e-6)]


async def test_two_processes_sharing_one_database_never_exceed_the_limit_together(
    db_sessionmaker: async_sessionmaker[AsyncSession],
    second_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = VirtualTime()
    windows = [window(20, 10)]
    sent: list[datetime] = []

    def holder(sessionmaker: async_sessionmaker[AsyncSession]) -> SqlRateBudget:
        return SqlRateBudget(
            sessionmaker, account_id=account_id, windows=windows, clock=time.clock, sleep=time.sleep
        )

    async def worker(budget: SqlRateBudget, count: int) -> None:
        for _ in range(count):
            await budget.acquire("pull")
            sent.append(time.now)

    await time.run(
        worker(holder(db_sessionmaker), 60),
        worker(holder(second_sessionmaker), 60),
    )

    assert len(sent) == 120
    assert max_in_any_window(sent, 10) <= 20
    elapsed = (max(sent) - min(sent)).total_seconds()
    assert len(sent) / (elapsed * 20 / 10) >= 0.85


async def test_a_penalty_is_honoured_by_every_process(
    db_sessionmaker: async_sessionmaker[AsyncSession],
    second_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = FakeTime()
    windows = [window(60, 60)]
    hit = SqlRateBudget(db_sessionmaker, account_id=account_id, windows=windows, clock=time.clock)
    other = SqlRateBudget(
        second_sessionmaker,
        account_id=account_id,
        windows=windows,
        clock=time.clock,
        sleep=time.sleep,
    )
    await other.acquire("pull")

    await hit.penalize(20.0)
    await other.acquire("push")
    [state] = await other.snapshot()

    plan = plan_window(windows[0])
    assert time.sleeps == [pytest.approx(20 + 60 / (plan.refill_per_window * 0.8), abs=1e-5)]
    assert state.rate_factor == pytest.approx(0.8)
    assert state.penalty_until == T0 + timedelta(seconds=20)


async def test_sql_quota_parks_the_account_across_restarts(
    db_sessionmaker: async_sessionmaker[AsyncSession],
    second_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = FakeTime()
    windows = [window(10, 86_400)]
    first = SqlRateBudget(db_sessionmaker, account_id=account_id, windows=windows, clock=time.clock)
    for _ in range(plan_window(windows[0]).capacity):
        await first.acquire("pull")

    time.advance(3600)
    second = SqlRateBudget(
        second_sessionmaker, account_id=account_id, windows=windows, clock=time.clock
    )
    with pytest.raises(QuotaExhausted) as caught:
        await second.acquire("pull")
    [state] = await second.snapshot()

    assert caught.value.retry_after == pytest.approx(86_400 + 15 * 60 - 3600)
    assert state.kind == "quota"
    assert (state.tokens, state.used) == (0, state.capacity)


async def test_snapshot_of_an_untouched_account_shows_full_windows_without_writing(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    budget = SqlRateBudget(
        db_sessionmaker,
        account_id=account_id,
        windows=[window(60, 60), window(10_000, 86_400)],
        clock=FakeTime().clock,
    )

    states = await budget.snapshot()

    assert [(s.kind, s.tokens, s.used, s.penalty_until) for s in states] == [
        ("bucket", 3.0, 0.0, None),
        ("quota", 9800.0, 0.0, None),
    ]
    assert [s.allowed for s in states] == [59, 9800]
    async with db_sessionmaker() as session:
        assert (await session.execute(select(RateBucket))).first() is None


async def test_changed_windows_in_the_config_take_effect_without_leftover_tokens(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    account_id = await _account(db_sessionmaker)
    time = FakeTime()
    big = SqlRateBudget(
        db_sessionmaker, account_id=account_id, windows=[window(1000, 60)], clock=time.clock
    )
    await big.acquire("pull")
    small = SqlRateBudget(
        db_sessionmaker,
        account_id=account_id,
        windows=[window(20, 60)],
        clock=time.clock,
        sleep=time.sleep,
    )

    await small.acquire("pull")
    await small.acquire("pull")

    # The small window's burst is one request: the second waits for a token.
    assert len(time.sleeps) == 1
