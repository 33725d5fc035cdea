"""Shared set-up for daemon tests: fast settings, fake vendors behind a running Scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from syncd.adapters.base import Checkpoint, Lane, Page
from syncd.adapters.fake import FakeAdapter, FakeResource, FakeVendor
from syncd.app import scoped_sessionmaker
from syncd.runner import Engine
from syncd.scheduler import Gate, Scheduler, SingleInstance, account_refs
from syncd.settings import Settings
from syncd.store import tables as t
from tests.engine.helpers import settings_for


def with_intervals(settings: Settings, intervals: Mapping[str, tuple[float, float]]) -> Settings:
    """``settings`` with (poll, reconcile) seconds per account (sub-second is fine in code)."""
    workspaces = []
    for workspace in settings.workspaces:
        accounts = []
        for account in workspace.accounts:
            poll, sweep = intervals.get(account.name, (3600.0, 86400.0))
            accounts.append(
                account.model_copy(
                    update={
                        "poll_interval": dt.timedelta(seconds=poll),
                        "reconcile_interval": dt.timedelta(seconds=sweep),
                    }
                )
            )
        workspaces.append(workspace.model_copy(update={"accounts": tuple(accounts)}))
    return settings.model_copy(update={"workspaces": tuple(workspaces)})


class GatedResource(FakeResource):
    """A fake resource whose listings wait for ``gate`` (a vendor that hangs until told)."""

    def __init__(self, inner: FakeResource, gate: asyncio.Event) -> None:
        super().__init__(inner.vendor, inner.resource, inner.page_size, inner.budget)
        self.gate = gate
        self.waiting = asyncio.Event()

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        self.waiting.set()
        await self.gate.wait()
        async for page in super().list_changes(cursor, lane=lane):
            yield page


def gate_pulls(adapter: FakeAdapter) -> tuple[asyncio.Event, GatedResource]:
    """Make ``adapter``'s contact pulls hang until the returned event is set."""
    gate = asyncio.Event()
    gated = GatedResource(adapter.resource("contacts"), gate)
    adapter._resources["contacts"] = gated
    return gate, gated


@dataclass
class Harness:
    engine: Engine
    scheduler: Scheduler
    vendors: dict[str, FakeVendor]
    adapters: dict[str, FakeAdapter]
    sessionmaker: async_sessionmaker[AsyncSession]

    async def runs(self, account: str, job: str | None = None, status: str | None = None) -> int:
        """How many sync_runs rows ``account`` has (of ``job``, with ``status``)."""
        ctx = self.engine.accounts[account]
        where = [t.SyncRun.account_id == ctx.id]
        if job is not None:
            where.append(t.SyncRun.job == job)
        if status is not None:
            where.append(t.SyncRun.status == status)
        async with self.sessionmaker() as s:
            return int(
                (
                    await s.execute(select(func.count()).select_from(t.SyncRun).where(*where))
                ).scalar_one()
            )

    async def outbox_open(self) -> int:
        async with self.sessionmaker() as s:
            return int(
                (
                    await s.execute(
                        select(func.count())
                        .select_from(t.Outbox)
                        .where(t.Outbox.state.in_(("pending", "sending", "uncertain", "failed")))
                    )
                ).scalar_one()
            )

    async def canonical_contacts(self) -> int:
        async with self.sessionmaker() as s:
            return int((await s.execute(select(func.count()).select_from(t.Contact))).scalar_one())


@contextlib.asynccontextmanager
async def running_scheduler(
    db: AsyncEngine,
    vendors: dict[str, FakeVendor],
    *,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    gate: Callable[[Engine], Gate] | None = None,
    outbox_poll: float = 0.05,
    prepare: Callable[[Harness], Awaitable[None]] | None = None,
    grace: float = 1.0,
    **options: Any,
) -> AsyncIterator[Harness]:
    """A Scheduler over fake vendors on ``db`` (the engine on scoped sessions), started."""
    settings = with_intervals(
        settings_for(list(vendors), **options),
        intervals or {name: (0.2, 3600.0) for name in vendors},
    )
    adapters = {name: FakeAdapter(v, account=name, page_size=7) for name, v in vendors.items()}
    from syncd.store.db import create_sessionmaker

    plain = create_sessionmaker(db)
    engine = Engine(
        settings, scoped_sessionmaker(db), adapters, call_count=lambda name: vendors[name].calls
    )
    await engine.prepare()
    chosen = gate(engine) if gate is not None else SingleInstance(account_refs(engine))
    scheduler = Scheduler(engine, plain, gate=chosen, outbox_poll=outbox_poll)
    harness = Harness(engine, scheduler, vendors, adapters, plain)
    if prepare is not None:
        await prepare(harness)
    await scheduler.start()
    try:
        yield harness
    finally:
        await scheduler.stop(grace)


async def wait_for(
    check: Callable[[], Awaitable[object] | object],
    *,
    within: float = 15.0,
    what: str = "condition",
    state: Callable[[], object] | None = None,
) -> float:
    """Poll ``check`` until true; the seconds it took. Fails the test after ``within`` seconds.

    ``state`` (optional) describes the situation in the failure message.
    """
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > within:
            seen = f"; state: {state()}" if state is not None else ""
            raise AssertionError(f"timed out after {within}s waiting for {what}{seen}")
        await asyncio.sleep(0.05)


def contact_names(vendor: FakeVendor) -> list[str]:
    return sorted(getattr(c, "name", "?") for c in vendor.live("contacts").values())


def same_everywhere(vendors: Sequence[FakeVendor], count: int) -> Callable[[], bool]:
    def check() -> bool:
        return all(len(v.live("contacts")) == count for v in vendors)

    return check
