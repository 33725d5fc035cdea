"""Rate budgets: every request takes a token from every window of its account first.

Vendors count requests in a *sliding* window: at most N requests in ANY interval of
length ``per`` (so does the sandbox, ``syncd.sandbox.common.SlidingWindowLimiter``). Two
shapes of window keep us inside that rule.

Token bucket (windows shorter than a day)
    A plain bucket of capacity N refilled at N/per can send 2N in one window (a full
    bucket, then a window's worth of refill). In any interval of length T a bucket of
    capacity C refilled at r tokens/s hands out at most ``C + r*T`` tokens, so we choose

        C = max(1, ceil(5 % of N))          burst, so a quiet account starts at once
        M = max(1, round(2 % of N))         reserve for clock and latency differences
        r = (N - C - M) / per               refill

    giving ``C + r*per = N - M <= N - 1``: never more than N in any window, and one
    spare request (or 2 %) absorbs network jitter between our clock and the vendor's
    (a request that travels slower than the one after it). Under a backlog the bucket
    delivers ``(N - C - M)/N`` of the vendor's rate: 93 % for 60/min, 150/5min and
    1000/h. For tiny windows (N < 4) there is no room for a margin; there C = 1 and
    r = N/(2*per), and since requests are whole, ``floor(1 + N/2) <= N`` still holds.

Quota (windows of a day or longer)
    A daily quota should let a big import use most of the day's allowance at once and
    then park the account until enough of it ages out, instead of dripping one request
    every ten seconds. It is a sliding-window counter: requests are counted in 96 slots
    per window (15 minutes for a day), and a slot counts until its *end* plus ``per``,
    so the count is never lower than the vendor's. At most ``N - M`` are allowed. When
    the next free request is further away than ``max_wait`` (default 5 minutes),
    ``acquire`` raises ``QuotaExhausted(retry_after=...)`` instead of sleeping for
    hours; nothing is lost, the caller reschedules.

SimplBooks halves its limits after more than 10 000 requests in 24 hours. Its default
10 000/1d window is a quota here and we never send more than ``N - M`` (9 800) in any 24
hours, so the halving cannot trigger. Should a SimplBooks 429 arrive anyway (another
client on the same token, say), the penalty path below handles it like any other 429.

429 penalty: ``penalize(retry_after)`` pauses the whole account until ``retry_after``
(or, when the vendor says nothing, for the shortest window, at most a minute), empties
the token buckets (refill restarts when the pause ends), and shrinks their refill rate
by 20 % (at most once per pause; never below 25 % of the plan). Each processed request
(``record_success``) wins back ``20 % / N`` of the rate, so one window's worth of
requests at the reduced rate undoes one shrink. Quotas are not shrunk.

Lanes: when several callers of one account wait in one process, pushes go before pulls
before reconcile sweeps (an in-process priority queue; only its head takes tokens and
sleeps). Across processes the SQL row is the shared truth: ``SqlRateBudget`` keeps each
window in ``rate_buckets`` and takes tokens in one transaction that locks the account's
rows first (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the transaction opens
with a write, which takes the database's write lock before anything is read), so a
restart does not burst and several instances on one database share one budget. The
rate factor and the quota slots live in the row's ``log`` JSON. Waiting never spins: the
head sleeps exactly until the next token, through the injected ``sleep``.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.base import Lane
from syncd.adapters.http import RateBudget
from syncd.errors import QuotaExhausted, RateLimited
from syncd.settings import AccountSettings, RateLimitWindow
from syncd.store.tables import RateBucket

__all__ = [
    "LANE_PRIORITY",
    "UNLIMITED",
    "BucketState",
    "MemoryRateBudget",
    "SqlRateBudget",
    "WindowPlan",
    "budget_for",
    "plan_window",
    "utcnow",
]

LANE_PRIORITY: dict[Lane, int] = {"push": 0, "pull": 1, "reconcile": 2}
QUOTA_MIN_SECONDS = 86400.0  # windows this long are quotas, not buckets
QUOTA_SLOTS = 96  # slots per quota window (15 minutes for a day)
BURST_SHARE = 0.05
MARGIN_SHARE = 0.02
PENALTY_SHRINK = 0.8
MIN_RATE_FACTOR = 0.25
MAX_DEFAULT_PENALTY = 60.0  # seconds, when a 429 says nothing about how long to wait
_TOKEN_EPSILON = 1e-9
_BUCKETS = cast(Table, RateBucket.__table__)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _ceil_micro(seconds: float) -> float:
    """``seconds`` rounded up to whole microseconds (datetimes cannot hold less)."""
    return math.ceil(seconds * 1_000_000 - 1e-6) / 1_000_000 if seconds > 0 else 0.0


# --------------------------------------------------------------------------- plans


@dataclass(frozen=True, slots=True)
class WindowPlan:
    """How one configured window is enforced (see the module docstring)."""

    window: RateLimitWindow
    kind: Literal["bucket", "quota"]
    seconds: float  # the window's length
    capacity: int  # bucket: burst size; quota: requests allowed per window
    refill_per_window: float  # bucket: tokens added per window at full rate; quota: 0

    @property
    def key(self) -> int:
        """The window's length in whole seconds: its key in ``rate_buckets``."""
        return round(self.seconds)

    @property
    def rate(self) -> float:
        """Full refill rate in tokens per second (bucket only)."""
        return self.refill_per_window / self.seconds

    @property
    def slot(self) -> float:
        """Slot length of a quota window."""
        return self.seconds / QUOTA_SLOTS

    @property
    def recovery_per_success(self) -> float:
        """Rate factor won back by one processed request."""
        return (1.0 - PENALTY_SHRINK) / self.window.requests


def plan_window(window: RateLimitWindow) -> WindowPlan:
    """The bucket or quota that keeps us at or under ``window`` in every sliding interval."""
    n = window.requests
    seconds = window.per.total_seconds()
    margin = max(1, round(n * MARGIN_SHARE))
    if seconds >= QUOTA_MIN_SECONDS:
        return WindowPlan(window, "quota", seconds, max(1, n - margin), 0.0)
    capacity = max(1, math.ceil(n * BURST_SHARE))
    refill = float(n - capacity - margin)
    if refill < n / 2:
        capacity, refill = 1, n / 2
    return WindowPlan(window, "bucket", seconds, capacity, refill)


def _plans(windows: Iterable[RateLimitWindow]) -> tuple[WindowPlan, ...]:
    """One plan per window length (the strictest wins when two share a length)."""
    by_key: dict[int, WindowPlan] = {}
    for window in windows:
        plan = plan_window(window)
        if plan.seconds < 1:
            raise ValueError("a rate-limit window must be at least 1s")
        known = by_key.get(plan.key)
        if known is None or window.requests < known.window.requests:
            by_key[plan.key] = plan
    return tuple(sorted(by_key.values(), key=lambda p: p.seconds))


# --------------------------------------------------------------------------- pure state


@dataclass(slots=True)
class _Window:
    """The mutable state of one window; SQL rows and the memory budget both hold these."""

    plan: WindowPlan
    tokens: float
    refilled_at: datetime
    penalty_until: datetime | None = None
    rate_factor: float = 1.0
    slots: list[list[float]] = field(default_factory=list)  # quota: [slot start, count]

    @classmethod
    def fresh(cls, plan: WindowPlan, now: datetime) -> _Window:
        return cls(plan=plan, tokens=float(plan.capacity), refilled_at=now)

    # --- refill

    def refill(self, now: datetime) -> None:
        """Bring tokens (or the quota count) up to ``now``."""
        if self.plan.kind == "quota":
            horizon = now.timestamp() - self.plan.seconds - self.plan.slot
            self.slots = [s for s in self.slots if s[0] > horizon]
            self.tokens = float(self.plan.capacity - self.used())
        elif now > self.refilled_at:
            elapsed = (now - self.refilled_at).total_seconds()
            rate = self.plan.rate * self.rate_factor
            self.tokens = min(float(self.plan.capacity), self.tokens + elapsed * rate)
        if now > self.refilled_at:
            self.refilled_at = now

    def used(self) -> int:
        """Requests counted in the current quota window."""
        return int(sum(count for _, count in self.slots))

    def recover(self, successes: int) -> None:
        """Win back part of a shrunk rate for ``successes`` processed requests."""
        if self.plan.kind == "bucket" and successes and self.rate_factor < 1.0:
            factor = self.rate_factor + successes * self.plan.recovery_per_success
            self.rate_factor = 1.0 if factor >= 1.0 - 1e-9 else factor

    # --- waiting and taking (call refill(now) first)

    def wait(self, now: datetime) -> float:
        """Seconds until this window can give one request (0: now)."""
        if self.plan.kind == "quota":
            count = self.used()
            if count < self.plan.capacity:
                return 0.0
            remaining = count
            for start, slot_count in sorted(self.slots):
                remaining -= int(slot_count)
                if remaining < self.plan.capacity:
                    expires = start + self.plan.slot + self.plan.seconds
                    return max(0.0, expires - now.timestamp())
            return 0.0
        frozen = max(0.0, (self.refilled_at - now).total_seconds())
        missing = 1.0 - self.tokens
        if missing <= _TOKEN_EPSILON:
            return frozen
        return frozen + missing / (self.plan.rate * self.rate_factor)

    def take(self, now: datetime) -> None:
        """Use one request."""
        if self.plan.kind == "quota":
            start = math.floor(now.timestamp() / self.plan.slot) * self.plan.slot
            if self.slots and self.slots[-1][0] == start:
                self.slots[-1][1] += 1
            else:
                self.slots.append([start, 1])
            self.tokens = float(self.plan.capacity - self.used())
        else:
            self.tokens = max(0.0, self.tokens - 1.0)

    def penalize(self, now: datetime, until: datetime) -> None:
        """Pause until ``until``; empty and slow down a bucket (once per pause)."""
        already = self.penalty_until is not None and self.penalty_until > now
        if self.penalty_until is None or until > self.penalty_until:
            self.penalty_until = until
        if self.plan.kind == "bucket":
            if not already:
                self.rate_factor = max(MIN_RATE_FACTOR, self.rate_factor * PENALTY_SHRINK)
            self.tokens = 0.0
            if until > self.refilled_at:
                self.refilled_at = until

    # --- persistence of the extra state in the row's ``log`` JSON

    def log_json(self) -> dict[str, Any]:
        if self.plan.kind == "quota":
            return {"slots": [[start, int(count)] for start, count in self.slots]}
        return {"rate_factor": self.rate_factor}


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The outcome of one try: taken (wait 0), or how long and why to wait."""

    wait: float
    cause: Literal["none", "penalty", "window"]
    window: WindowPlan | None = None


def _try_take(windows: Sequence[_Window], now: datetime, successes: int) -> _Verdict:
    """Refill every window; take one request from all of them, or say how long to wait."""
    for w in windows:
        w.refill(now)
        w.recover(successes)
    penalty = max(
        ((w.penalty_until - now).total_seconds() for w in windows if w.penalty_until), default=0.0
    )
    longest, cause_plan = 0.0, None
    for w in windows:
        wait = w.wait(now)
        if wait > longest:
            longest, cause_plan = wait, w.plan
    if penalty <= 0 and longest <= 0:
        for w in windows:
            w.take(now)
        return _Verdict(0.0, "none")
    if penalty > 0:  # paused after a 429; the buckets restart when the pause ends
        return _Verdict(_ceil_micro(max(penalty, longest)), "penalty")
    return _Verdict(_ceil_micro(longest), "window", cause_plan)


def _penalty_seconds(plans: Sequence[WindowPlan], retry_after: float | None) -> float:
    if retry_after is not None and retry_after > 0:
        return retry_after
    shortest = min((p.seconds for p in plans), default=MAX_DEFAULT_PENALTY)
    return min(shortest, MAX_DEFAULT_PENALTY)


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class BucketState:
    """One window of an account's budget, for ``syncd status`` and metrics."""

    window: RateLimitWindow  # the configured (vendor) limit
    kind: Literal["bucket", "quota"]
    capacity: int  # bucket: burst size; quota: requests allowed per window
    tokens: float  # requests that may go right now (bucket tokens, or quota left)
    used: float  # capacity - tokens
    allowed: int  # the most we send in any interval of the window's length
    rate_factor: float  # 1.0, or less after a 429
    penalty_until: datetime | None


def _state_of(w: _Window) -> BucketState:
    plan = w.plan
    if plan.kind == "quota":
        allowed = plan.capacity
    else:
        allowed = math.floor(plan.capacity + plan.refill_per_window * w.rate_factor + 1e-9)
    return BucketState(
        window=plan.window,
        kind=plan.kind,
        capacity=plan.capacity,
        tokens=w.tokens,
        used=plan.capacity - w.tokens,
        allowed=allowed,
        rate_factor=w.rate_factor,
        penalty_until=w.penalty_until,
    )


# --------------------------------------------------------------------------- lanes


@dataclass(order=True, slots=True)
class _Waiter:
    priority: int
    seq: int
    turn: asyncio.Future[None] = field(compare=False)


class _LaneQueue:
    """Lets one waiter at a time (best lane first, then first come) take tokens or sleep."""

    def __init__(self) -> None:
        self._heap: list[_Waiter] = []
        self._granted: _Waiter | None = None
        self._seq = itertools.count()

    def join(self, lane: Lane) -> _Waiter:
        waiter = _Waiter(
            LANE_PRIORITY[lane], next(self._seq), asyncio.get_running_loop().create_future()
        )
        heapq.heappush(self._heap, waiter)
        self._dispatch()
        return waiter

    def end_turn(self, waiter: _Waiter) -> None:
        """``waiter`` slept and will try again: let the best waiter (maybe itself) go next."""
        if self._granted is waiter:
            self._granted = None
        waiter.turn = asyncio.get_running_loop().create_future()
        self._dispatch()

    def leave(self, waiter: _Waiter) -> None:
        self._heap.remove(waiter)
        heapq.heapify(self._heap)
        if self._granted is waiter:
            self._granted = None
        self._dispatch()

    def _dispatch(self) -> None:
        if self._granted is None and self._heap:
            head = self._heap[0]
            self._granted = head
            if not head.turn.done():
                head.turn.set_result(None)


# --------------------------------------------------------------------------- budgets


class _BudgetBase(RateBudget):
    """Lanes, waiting and the max-wait rule; subclasses keep the windows somewhere."""

    pauses_after_penalty = True  # VendorHttp: our acquire() waits out a 429 pause

    def __init__(
        self,
        windows: Sequence[RateLimitWindow],
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], Awaitable[None]],
        max_wait: float,
        name: str,
    ) -> None:
        self.plans = _plans(windows)
        self._clock = clock
        self._sleep = sleep
        self.max_wait = max_wait
        self.name = name
        self._queue = _LaneQueue()
        self._successes = 0

    @abc.abstractmethod
    async def _attempt(self) -> _Verdict:
        """Try to take a token of every window now: granted, or how long to wait."""

    async def acquire(self, lane: Lane) -> None:
        """Wait for a token of every window and take it (push before pull before reconcile).

        Raises ``QuotaExhausted`` when a window would make us wait longer than
        ``max_wait``, ``RateLimited`` when a 429 penalty would.
        """
        if not self.plans:
            return
        waiter = self._queue.join(lane)
        try:
            while True:
                await waiter.turn
                verdict = await self._attempt()
                if verdict.cause == "none":
                    return
                if verdict.wait > self.max_wait:
                    raise self._too_long(verdict)
                await self._sleep(verdict.wait)
                self._queue.end_turn(waiter)
        finally:
            self._queue.leave(waiter)

    def _too_long(self, verdict: _Verdict) -> Exception:
        seconds = verdict.wait
        if verdict.cause == "penalty":
            return RateLimited(
                f"account {self.name} is paused after a 429 for {seconds:.0f}s more",
                retry_after=seconds,
            )
        plan = verdict.window
        limit = "" if plan is None else f" ({plan.window.requests} per {plan.window.per})"
        return QuotaExhausted(
            f"rate budget of account {self.name} is used up{limit}; "
            f"next request possible in {seconds:.0f}s",
            retry_after=seconds,
        )

    def record_success(self) -> None:
        """A request was processed: recover a little from an earlier 429 (applied lazily)."""
        self._successes += 1

    def _take_successes(self) -> int:
        successes, self._successes = self._successes, 0
        return successes


class MemoryRateBudget(_BudgetBase):
    """The same budget, kept in memory (tests, benchmarks, and single-shot tools)."""

    def __init__(
        self,
        windows: Sequence[RateLimitWindow],
        *,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = 300.0,
        name: str = "memory",
    ) -> None:
        super().__init__(windows, clock=clock, sleep=sleep, max_wait=max_wait, name=name)
        now = clock()
        self._windows = [_Window.fresh(plan, now) for plan in self.plans]

    async def _attempt(self) -> _Verdict:
        return _try_take(self._windows, self._clock(), self._take_successes())

    async def penalize(self, retry_after: float | None) -> None:
        """Pause the account after a 429 and slow its buckets down."""
        now = self._clock()
        until = now + timedelta(seconds=_penalty_seconds(self.plans, retry_after))
        for w in self._windows:
            w.refill(now)
            w.penalize(now, until)

    async def snapshot(self) -> list[BucketState]:
        """Every window as it stands now."""
        now = self._clock()
        for w in self._windows:
            w.refill(now)
        return [_state_of(w) for w in self._windows]


class SqlRateBudget(_BudgetBase):
    """The budget of one account, shared through the ``rate_buckets`` table."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        account_id: int,
        windows: Sequence[RateLimitWindow],
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = 300.0,
        name: str | None = None,
    ) -> None:
        super().__init__(
            windows,
            clock=clock,
            sleep=sleep,
            max_wait=max_wait,
            name=name if name is not None else f"#{account_id}",
        )
        self._sessionmaker = sessionmaker
        self.account_id = account_id

    async def _attempt(self) -> _Verdict:
        async with self._sessionmaker() as session, session.begin():
            windows = await self._lock(session)
            now = self._clock()
            verdict = _try_take(windows, now, self._take_successes())
            if verdict.cause == "none":
                await self._store(session, windows)
            return verdict

    async def penalize(self, retry_after: float | None) -> None:
        """Pause the account after a 429 (every process sees it) and slow its buckets down."""
        seconds = _penalty_seconds(self.plans, retry_after)
        async with self._sessionmaker() as session, session.begin():
            windows = await self._lock(session)
            now = self._clock()
            until = now + timedelta(seconds=seconds)
            for w in windows:
                w.refill(now)
                w.penalize(now, until)
            await self._store(session, windows)

    async def snapshot(self) -> list[BucketState]:
        """Every window as it stands now (read only)."""
        async with self._sessionmaker() as session:
            rows = await self._read(session, lock=False)
        now = self._clock()
        states = []
        for plan in self.plans:
            w = rows.get(plan.key) or _Window.fresh(plan, now)
            w.refill(now)
            states.append(_state_of(w))
        return states

    # --- SQL

    def _keys(self) -> list[int]:
        return [plan.key for plan in self.plans]

    async def _lock(self, session: AsyncSession) -> list[_Window]:
        """Lock this account's rows for the transaction, creating missing ones."""
        dialect = session.get_bind().dialect.name
        if dialect == "sqlite":
            # Open the transaction with a write: SQLite takes its write lock now (waiting
            # out busy_timeout), so the reads below see the latest committed rows and no
            # other writer can slip in before we write them back.
            await session.execute(
                update(_BUCKETS)
                .where(_BUCKETS.c.account_id == self.account_id)
                .values(capacity=_BUCKETS.c.capacity)
            )
        rows = await self._read(session, lock=True)
        missing = [plan for plan in self.plans if plan.key not in rows]
        if missing:
            now = self._clock()
            values = [
                {
                    "account_id": self.account_id,
                    "window_seconds": plan.key,
                    "capacity": plan.capacity,
                    "tokens": float(plan.capacity),
                    "refilled_at": now,
                    "penalty_until": None,
                    "log": _Window.fresh(plan, now).log_json(),
                }
                for plan in missing
            ]
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            await session.execute(
                insert(_BUCKETS)
                .values(values)
                .on_conflict_do_nothing(index_elements=["account_id", "window_seconds"])
            )
            rows = await self._read(session, lock=True)
        return [rows[plan.key] for plan in self.plans]

    async def _read(self, session: AsyncSession, *, lock: bool) -> dict[int, _Window]:
        query = select(_BUCKETS).where(
            _BUCKETS.c.account_id == self.account_id,
            _BUCKETS.c.window_seconds.in_(self._keys()),
        )
        if lock:
            query = query.order_by(_BUCKETS.c.window_seconds).with_for_update()
        result = await session.execute(query)
        plans = {plan.key: plan for plan in self.plans}
        out: dict[int, _Window] = {}
        for row in result.mappings():
            plan = plans[row["window_seconds"]]
            log = row["log"] if isinstance(row["log"], dict) else {}
            factor = log.get("rate_factor", 1.0)
            slots = log.get("slots", [])
            out[plan.key] = _Window(
                plan=plan,
                # A smaller window in the config must not leave extra tokens behind.
                tokens=min(float(row["tokens"]), float(plan.capacity)),
                refilled_at=row["refilled_at"],
                penalty_until=row["penalty_until"],
                rate_factor=float(factor) if isinstance(factor, int | float) else 1.0,
                slots=[[float(s[0]), float(s[1])] for s in slots if len(s) == 2],
            )
        return out

    async def _store(self, session: AsyncSession, windows: Sequence[_Window]) -> None:
        for w in windows:
            await session.execute(
                update(_BUCKETS)
                .where(
                    _BUCKETS.c.account_id == self.account_id,
                    _BUCKETS.c.window_seconds == w.plan.key,
                )
                .values(
                    capacity=w.plan.capacity,
                    tokens=w.tokens,
                    refilled_at=w.refilled_at,
                    penalty_until=w.penalty_until,
                    log=w.log_json(),
                )
            )


class _Unlimited:
    """A budget that never waits (rate limits off)."""

    async def acquire(self, lane: Lane) -> None:
        """Return at once."""

    async def penalize(self, retry_after: float | None) -> None:
        """Ignore the 429; VendorHttp still retries with backoff."""

    def record_success(self) -> None:
        """Nothing to recover."""

    async def snapshot(self) -> list[BucketState]:
        """No windows."""
        return []


UNLIMITED: RateBudget = _Unlimited()


def budget_for(
    account: AccountSettings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    account_id: int | None = None,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_wait: float = 300.0,
) -> SqlRateBudget | MemoryRateBudget:
    """The budget of ``account``'s configured windows: in SQL when a database is given."""
    if sessionmaker is not None:
        if account_id is None:
            raise ValueError("an SQL rate budget needs the account's database id")
        return SqlRateBudget(
            sessionmaker,
            account_id=account_id,
            windows=account.rate_limit,
            clock=clock,
            sleep=sleep,
            max_wait=max_wait,
            name=account.name,
        )
    return MemoryRateBudget(
        account.rate_limit, clock=clock, sleep=sleep, max_wait=max_wait, name=account.name
    )
