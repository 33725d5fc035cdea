"""Simulated process kills for engine tests.

A :class:`CrashPlan` counts the *steps* an engine takes: every vendor call (before it is
sent and, for writes, again after the vendor applied it) and every database commit
(before and after). Armed with a countdown, it raises :class:`Crash` at the chosen step
and at every later one, because a killed process does nothing more: no ``finally``
clause of the old engine may still commit or call a vendor. ``Crash`` derives from
``BaseException``, so no ``except Exception`` in the engine can swallow it; the
transaction in flight is rolled back, as the database server does when a connection
dies. The test then throws the old :class:`~syncd.runner.Engine` away and builds a new
one on the same database and vendors.

``CrashingAdapter`` wraps a :class:`~syncd.adapters.fake.FakeAdapter`; ``crashing_sessions``
wraps a session factory. Both report to the same plan.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator
from types import TracebackType
from typing import Any, cast

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
)

from syncd.adapters.base import (
    Canonical,
    Capabilities,
    Checkpoint,
    IdVersion,
    Lane,
    Page,
    Resource,
    ResourceAdapter,
    VendorRecord,
)
from syncd.adapters.fake import FakeAdapter, FakeResource
from syncd.errors import NotFound


class Crash(BaseException):
    """The process was killed at this step."""


@dataclasses.dataclass
class CrashPlan:
    """Where the next simulated kill happens, if anywhere."""

    countdown: int | None = None  # steps still allowed before the kill; None: never
    dead: bool = False
    steps: int = 0
    where: str | None = None  # the step the kill happened at

    def arm(self, after: int) -> None:
        """Kill the process at the step after ``after`` more steps."""
        self.countdown = after
        self.dead = False
        self.where = None

    def disarm(self) -> None:
        """A fresh process that is never killed."""
        self.countdown = None
        self.dead = False

    def step(self, where: str) -> None:
        """One step boundary; raises Crash when this is (or is after) the chosen one."""
        self.steps += 1
        if self.dead:
            raise Crash(where)
        if self.countdown is None:
            return
        if self.countdown <= 0:
            self.dead = True
            self.where = where
            raise Crash(where)
        self.countdown -= 1


class CrashingResource(ResourceAdapter):
    """A FakeResource whose every call is a crash point.

    Also maps the fake's ``KeyError`` for a record that no longer exists to ``NotFound``,
    which is what the real adapters raise for a 404 (see ``VendorHttp``).
    """

    def __init__(self, inner: FakeResource, plan: CrashPlan, *, timestamps: bool) -> None:
        self.inner = inner
        self.plan = plan
        self.resource = inner.resource
        self.timestamps = timestamps

    def _out(self, record: VendorRecord) -> VendorRecord:
        # Snapshot vendors (Perfex, SimplBooks) report no modification time.
        return record if self.timestamps else dataclasses.replace(record, updated_at=None)

    async def list_changes(
        self, cursor: Checkpoint | None, *, lane: Lane = "pull"
    ) -> AsyncIterator[Page]:
        pages = cast(AsyncGenerator[Page, None], self.inner.list_changes(cursor, lane=lane))
        try:
            while True:
                self.plan.step(f"{self.inner.vendor.name}: read a page")
                try:
                    page = await pages.__anext__()
                except StopAsyncIteration:
                    return
                yield dataclasses.replace(page, records=tuple(self._out(r) for r in page.records))
        finally:
            await pages.aclose()

    async def list_ids(self, *, lane: Lane = "reconcile") -> AsyncIterator[list[IdVersion]]:
        self.plan.step(f"{self.inner.vendor.name}: list ids")
        async for batch in self.inner.list_ids(lane=lane):
            yield batch

    async def get(self, external_id: str, *, lane: Lane = "pull") -> VendorRecord | None:
        self.plan.step(f"{self.inner.vendor.name}: get {external_id}")
        record = await self.inner.get(external_id, lane=lane)
        return None if record is None else self._out(record)

    async def create(self, value: Canonical, *, client_token: str | None) -> VendorRecord:
        name = self.inner.vendor.name
        self.plan.step(f"{name}: before a create")
        record = await self.inner.create(value, client_token=client_token)
        self.plan.step(f"{name}: after a create")
        return self._out(record)

    async def update(
        self, external_id: str, value: Canonical, fields: frozenset[str]
    ) -> VendorRecord:
        name = self.inner.vendor.name
        self.plan.step(f"{name}: before an update of {external_id}")
        try:
            record = await self.inner.update(external_id, value, fields)
        except KeyError as exc:
            raise NotFound(f"{name} holds no {self.resource} {external_id}") from exc
        self.plan.step(f"{name}: after an update of {external_id}")
        return self._out(record)

    async def remove(self, external_id: str) -> None:
        name = self.inner.vendor.name
        self.plan.step(f"{name}: before a removal of {external_id}")
        try:
            await self.inner.remove(external_id)
        except KeyError as exc:
            raise NotFound(f"{name} holds no {self.resource} {external_id}") from exc
        self.plan.step(f"{name}: after a removal of {external_id}")

    async def find(
        self, *, client_token: str | None, natural_key: Canonical | None
    ) -> VendorRecord | None:
        self.plan.step(f"{self.inner.vendor.name}: find")
        record = await self.inner.find(client_token=client_token, natural_key=natural_key)
        return None if record is None else self._out(record)


class CrashingAdapter:
    """A FakeAdapter whose resources are CrashingResources (a VendorAdapter)."""

    def __init__(self, inner: FakeAdapter, plan: CrashPlan) -> None:
        self.inner = inner
        self.vendor = inner.vendor
        self.account = inner.account
        self.capabilities: Capabilities = inner.capabilities
        timestamps = inner.capabilities.change_detection == "incremental"
        self._resources = {
            name: CrashingResource(inner.resource(name), plan, timestamps=timestamps)
            for name in ("contacts", "invoices", "payments")
        }

    def resource(self, name: Resource) -> CrashingResource:
        return self._resources[name]

    async def verify(self) -> None:
        await self.inner.verify()


class _CrashingTransaction:
    """``session.begin()`` whose commit is two crash points (before and after it)."""

    def __init__(self, inner: AsyncSessionTransaction, plan: CrashPlan) -> None:
        self.inner = inner
        self.plan = plan

    async def __aenter__(self) -> _CrashingTransaction:
        await self.inner.__aenter__()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is not None:
            await self.inner.__aexit__(kind, exc, tb)
            return
        try:
            self.plan.step("before a commit")
        except Crash as crash:
            await self.inner.__aexit__(Crash, crash, None)  # the server rolls back
            raise
        await self.inner.__aexit__(None, None, None)
        self.plan.step("after a commit")


class _CrashingSession(AsyncSession):
    plan: CrashPlan

    def begin(self) -> Any:
        return _CrashingTransaction(super().begin(), self.plan)


def crashing_sessions(engine: AsyncEngine, plan: CrashPlan) -> async_sessionmaker[AsyncSession]:
    """syncd's session factory on ``engine``, with every commit a crash point of ``plan``."""
    session_class = type("CrashingSession", (_CrashingSession,), {"plan": plan})
    return cast(
        async_sessionmaker[AsyncSession],
        async_sessionmaker(engine, class_=session_class, expire_on_commit=False),
    )
