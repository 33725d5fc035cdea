"""The scheduler on fake vendors: concurrent jobs, outbox-triggered pushes, health, drain."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from syncd.app import WriteScope
from syncd.runner import Engine
from syncd.scheduler import Scheduler, SingleInstance, account_refs
from syncd.store import tables as t
from tests.daemon.helpers import (
    Harness,
    contact_names,
    gate_pulls,
    running_scheduler,
    same_everywhere,
    wait_for,
)
from tests.engine.helpers import org, vendor


def events(logs: list[dict[str, object]], name: str, account: str | None = None) -> int:
    return sum(
        1
        for e in logs
        if e.get("event") == name and (account is None or e.get("account") == account)
    )


async def test_concurrent_jobs_on_overlapping_data_create_nothing_twice(
    migrated_db: AsyncEngine,
) -> None:
    # Every account holds the same 10 companies. Pulls of the three accounts run at the
    # same time; without the workspace write scope two of them would both find no match
    # for "Company 3" and both create it, and every vendor would get it twice.
    vendors = {name: vendor(name) for name in ("a", "b", "c")}
    for v in vendors.values():
        for i in range(10):
            v.human_create("contacts", org(f"Company {i}", email=f"c{i}@example.com"))
    vendors["a"].human_create("contacts", org("Only In A"))
    vendors["c"].human_create("contacts", org("Only In C"))

    async with running_scheduler(migrated_db, vendors) as h:
        await wait_for(
            same_everywhere(list(vendors.values()), 12),
            what="12 contacts everywhere",
            state=lambda: {
                n: (len(v.live("contacts")), dict(h.scheduler.accounts[n].last_run))
                for n, v in vendors.items()
            },
        )
        await wait_for(lambda: _quiet(h), what="an empty outbox")
        assert await h.canonical_contacts() == 12
    for v in vendors.values():
        assert contact_names(v) == sorted(
            {*(f"Company {i}" for i in range(10)), "Only In A", "Only In C"}
        )


async def _quiet(h: Harness) -> bool:
    return await h.outbox_open() == 0


async def test_a_new_record_is_pushed_without_waiting_for_the_target_poll(
    sqlite_db: AsyncEngine,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    crm.human_create("contacts", org("Acme"))
    # books polls once an hour: only the outbox watch can bring it the new record soon.
    intervals = {"crm": (0.2, 3600.0), "books": (3600.0, 3600.0)}
    async with running_scheduler(sqlite_db, {"crm": crm, "books": books}, intervals=intervals) as h:
        await wait_for(lambda: "Acme" in contact_names(books), what="Acme in books")
        pushes_before = await h.runs("books", "push")
        crm.human_create("contacts", org("Bakker"))
        took = await wait_for(lambda: "Bakker" in contact_names(books), what="Bakker in books")
        print(f"new record reached the other account {took:.2f}s after it was made")

        async def pushed_again() -> bool:
            return await h.runs("books", "push") > pushes_before

        # The vendor holds the record before the push job records its run: wait for it.
        await wait_for(pushed_again, what="a books push run after Bakker was made")
        assert await h.runs("books", "pull") == 1  # its own poll never came round again


async def test_a_hanging_vendor_does_not_hold_up_the_other_accounts(
    sqlite_db: AsyncEngine,
) -> None:
    vendors = {name: vendor(name) for name in ("a", "b", "slow")}
    held: dict[str, asyncio.Event] = {}

    async def hang_slow(h: Harness) -> None:
        held["gate"], _ = gate_pulls(h.adapters["slow"])

    async with running_scheduler(sqlite_db, vendors, prepare=hang_slow, grace=0.2) as h:
        await wait_for(lambda: h.scheduler.busy("slow"), what="the slow pull to start")
        vendors["a"].human_create("contacts", org("Acme"))
        await wait_for(lambda: "Acme" in contact_names(vendors["b"]), what="Acme in b")
        assert "pull" in h.scheduler.accounts["slow"].running  # still hanging meanwhile
        assert await h.runs("slow", "pull") == 0
        held["gate"].set()
        await wait_for(lambda: "Acme" in contact_names(vendors["slow"]), what="Acme in slow")


async def test_a_failing_account_is_reported_once_and_its_recovery_once(
    sqlite_db: AsyncEngine,
) -> None:
    good, sick = vendor("good"), vendor("sick", credentials="revoked")
    good.human_create("contacts", org("Acme"))
    with capture_logs() as logs:
        async with running_scheduler(sqlite_db, {"good": good, "sick": sick}) as h:
            await wait_for(
                lambda: _failed_runs(h, "sick", 4), what="several failed runs of the sick account"
            )
            assert events(logs, "vendor_unavailable", "sick") == 1
            assert events(logs, "vendor_unavailable", "good") == 0
            assert not h.scheduler.accounts["sick"].healthy
            assert "1 unavailable (sick)" in h.scheduler.summary()

            sick.credentials = "good"
            await wait_for(lambda: "Acme" in contact_names(sick), what="Acme in the mended account")
            await wait_for(lambda: h.scheduler.accounts["sick"].healthy, what="recovery")
            runs_after = await h.runs("sick", status="ok")
            await wait_for(lambda: _ok_runs(h, "sick", runs_after + 3), what="more good runs")
    assert events(logs, "vendor_unavailable", "sick") == 1
    assert events(logs, "vendor_recovered", "sick") == 1


async def _failed_runs(h: Harness, account: str, n: int) -> bool:
    return await h.runs(account, status="auth_failed") >= n


async def _ok_runs(h: Harness, account: str, n: int) -> bool:
    return await h.runs(account, status="ok") >= n


async def test_trigger_runs_a_pull_now_and_again_when_it_came_during_one(
    sqlite_db: AsyncEngine,
) -> None:
    crm, books = vendor("crm"), vendor("books")
    intervals = {"crm": (3600.0, 3600.0), "books": (3600.0, 3600.0)}
    held: dict[str, asyncio.Event] = {}

    async def hang_crm(h: Harness) -> None:
        held["gate"], _ = gate_pulls(h.adapters["crm"])

    async with running_scheduler(
        sqlite_db, {"crm": crm, "books": books}, intervals=intervals, prepare=hang_crm
    ) as h:
        await wait_for(lambda: h.scheduler.busy("crm"), what="the first crm pull")
        # A webhook while the pull is under way: the pull may have listed past the change.
        assert h.scheduler.trigger("crm", "pull")
        held["gate"].set()
        await wait_for(lambda: _pulls(h, "crm", 2), what="a second crm pull")

        crm.human_create("contacts", org("Acme"))
        assert h.scheduler.trigger("crm", "pull")
        await wait_for(lambda: "Acme" in contact_names(books), what="Acme in books")
        # The outbox watch may push Acme before the third pull has recorded its run.
        await wait_for(lambda: _pulls(h, "crm", 3), what="the third crm pull recorded")
        assert await h.runs("crm", "pull") == 3
        assert not h.scheduler.trigger("nobody", "pull")


async def _pulls(h: Harness, account: str, n: int) -> bool:
    return await h.runs(account, "pull") >= n


class OnlySome:
    """A gate that lets this instance run some accounts only (another instance has the rest)."""

    def __init__(self, engine: Engine, mine: set[str]) -> None:
        self.inner = SingleInstance(account_refs(engine))
        self.mine = mine

    def scope(self, account: str) -> WriteScope | None:
        return self.inner.scope(account) if account in self.mine else None


async def test_jobs_run_only_for_accounts_the_gate_allows(sqlite_db: AsyncEngine) -> None:
    a, b = vendor("a"), vendor("b")
    a.human_create("contacts", org("Acme"))
    async with running_scheduler(
        sqlite_db, {"a": a, "b": b}, gate=lambda engine: OnlySome(engine, {"a"})
    ) as h:
        await wait_for(lambda: _pulls(h, "a", 3), what="a few pulls of a")
        # a planned a create for b, but b belongs to another instance here.
        assert not h.scheduler.trigger("b", "push")
        assert await h.runs("b") == 0
        assert b.calls == 0 and contact_names(b) == []
        assert h.scheduler.summary().startswith("1/2 accounts held")


async def test_stop_lets_a_short_job_finish_and_cancels_a_long_one(
    sqlite_db: AsyncEngine,
) -> None:
    a, b = vendor("a"), vendor("b")
    held: dict[str, asyncio.Event] = {}

    async def hang_a(h: Harness) -> None:
        held["gate"], _ = gate_pulls(h.adapters["a"])
        gate_b, _ = gate_pulls(h.adapters["b"])
        held["b"] = gate_b

    with capture_logs() as logs:
        async with running_scheduler(sqlite_db, {"a": a, "b": b}, prepare=hang_a) as h:
            await wait_for(
                lambda: h.scheduler.busy("a") and h.scheduler.busy("b"), what="both pulls"
            )
            # b's vendor answers shortly after the stop began; a's never does.
            stopping = asyncio.create_task(h.scheduler.stop(1.0))
            await asyncio.sleep(0.1)
            held["b"].set()
            await stopping
            assert not h.scheduler.busy("a") and not h.scheduler.busy("b")
            assert await h.runs("b", "pull", status="ok") == 1
            assert not h.scheduler.trigger("a", "pull")
    assert events(logs, "job_cancelled", "a") == 1
    assert events(logs, "job_cancelled", "b") == 0
    assert events(logs, "drain_timeout") == 1


@pytest.mark.parametrize("job", ["push", "reconcile"])
async def test_quiesce_and_resume(sqlite_db: AsyncEngine, job: str) -> None:
    a, b = vendor("a"), vendor("b")
    async with running_scheduler(sqlite_db, {"a": a, "b": b}) as h:
        await wait_for(lambda: _pulls(h, "a", 1), what="a first pull")
        await h.scheduler.quiesce(1.0)
        assert not h.scheduler.running
        assert not h.scheduler.trigger("a", job)
        before = await h.runs("a")
        await asyncio.sleep(0.5)  # several poll intervals: nothing may start meanwhile
        assert await h.runs("a") == before
        h.scheduler.resume()
        assert h.scheduler.running
        await wait_for(lambda: _pulls(h, "a", 2), what="pulls again after resume")


async def _pull_requested(h: Harness, account: str) -> object:
    async with h.sessionmaker() as s:
        return (
            await s.execute(select(t.Account.pull_requested_at).where(t.Account.name == account))
        ).scalar_one()


async def test_a_pull_asked_of_an_instance_without_the_account_reaches_the_holder(
    sqlite_db: AsyncEngine,
) -> None:
    # Both accounts poll once an hour: only the handed-over request can bring Acme soon.
    crm, books = vendor("crm"), vendor("books")
    intervals = {"crm": (3600.0, 3600.0), "books": (3600.0, 3600.0)}
    async with running_scheduler(sqlite_db, {"crm": crm, "books": books}, intervals=intervals) as h:
        await wait_for(lambda: _pulls(h, "crm", 1), what="the first crm pull")
        # Another instance on the same database that holds nothing (a webhook reached it).
        other = Scheduler(
            h.engine, h.sessionmaker, gate=OnlySome(h.engine, set()), outbox_poll=0.05
        )
        await other.start()
        try:
            crm.human_create("contacts", org("Acme"))
            with capture_logs() as logs:
                assert not await other.request_pull("crm")
            assert events(logs, "pull_handed_over", "crm") == 1
            took = await wait_for(lambda: "Acme" in contact_names(books), what="Acme in books")
            print(f"handed-over pull: the change reached the other account in {took:.2f}s")
            await wait_for(lambda: _pulls(h, "crm", 2), what="the handed-over pull recorded")
            assert await _pull_requested(h, "crm") is None  # taken, so not pulled again
            await asyncio.sleep(0.3)  # several looks of the watch
            assert await h.runs("crm", "pull") == 2
            assert not await other.request_pull("nobody")  # not in the config: nothing stored
        finally:
            await other.stop(0.1)


async def test_a_pull_asked_while_reloading_is_run_after_the_resume(sqlite_db: AsyncEngine) -> None:
    crm, books = vendor("crm"), vendor("books")
    intervals = {"crm": (3600.0, 3600.0), "books": (3600.0, 3600.0)}
    async with running_scheduler(sqlite_db, {"crm": crm, "books": books}, intervals=intervals) as h:
        await wait_for(lambda: _pulls(h, "crm", 1), what="the first crm pull")
        await h.scheduler.quiesce(1.0)
        crm.human_create("contacts", org("Acme"))
        assert not await h.scheduler.request_pull("crm")  # held back: stored, not lost
        assert await _pull_requested(h, "crm") is not None
        await asyncio.sleep(0.3)
        assert await h.runs("crm", "pull") == 1  # nothing starts while held back
        h.scheduler.resume()
        await wait_for(lambda: "Acme" in contact_names(books), what="Acme in books")
        await wait_for(lambda: _pulls(h, "crm", 2), what="the stored pull recorded")
        assert await _pull_requested(h, "crm") is None
