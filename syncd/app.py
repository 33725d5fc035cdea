"""Composition root: settings -> database, one aiohttp session, rate budgets, adapters, engine.

Everything that wires the layers together lives here (and in ``cli.py``); the layers
themselves never build each other. ``open_runtime`` is shared by ``syncd once``, the
operator commands and the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    AsyncSessionTransaction,
    async_sessionmaker,
)

from syncd.adapters.base import VendorAdapter
from syncd.adapters.ratelimit import budget_for
from syncd.adapters.registry import create_adapter, vendor_capabilities
from syncd.core.policy import invoice_direction_problems
from syncd.errors import ConfigError, Problem
from syncd.runner import Engine, flow_owners
from syncd.settings import AccountSettings, Settings
from syncd.store import migrate, repos
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.leases import check_fence

# (account, vendor, HTTP status or None when no answer came, seconds on the wire)
RequestObserver = Callable[[str, str, int | None, float], None]


class CallCounter:
    """Counts the HTTP requests each account sends, from aiohttp's request tracing.

    Requests are told apart by their URL: the account whose ``base_url`` is the longest
    prefix of the request URL sent it. Counting at the session (not in the adapters)
    means every request is counted, retries included, whatever the adapter does.

    ``observer`` (optional) is told about every finished attempt: account, vendor, HTTP
    status (None when no answer came) and seconds on the wire; the daemon feeds its
    Prometheus metrics from it. ``set_accounts`` swaps the account list (config reload).
    """

    def __init__(
        self, accounts: Sequence[AccountSettings], *, observer: RequestObserver | None = None
    ) -> None:
        self._prefixes: list[tuple[str, str]] = []
        self._vendors: dict[str, str] = {}
        self.set_accounts(accounts)
        self.observer = observer
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._on_start)
        self.trace.on_request_end.append(self._on_end)
        self.trace.on_request_exception.append(self._on_exception)

    def set_accounts(self, accounts: Sequence[AccountSettings]) -> None:
        """Recognise these accounts' requests from now on (counts so far are kept)."""
        self._prefixes = sorted(
            ((a.base_url.rstrip("/"), a.name) for a in accounts), key=lambda p: -len(p[0])
        )
        self._vendors = {a.name: a.vendor for a in accounts}

    def account_of(self, url: str) -> str | None:
        for prefix, name in self._prefixes:
            if url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?"):
                return name
        return None

    async def _on_start(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        name = self.account_of(str(params.url))
        context.syncd_account = name
        context.syncd_started = time.monotonic()
        if name is not None:
            self.calls[name] += 1

    def _observe(self, context: SimpleNamespace, status: int | None) -> None:
        name = getattr(context, "syncd_account", None)
        if self.observer is None or name is None:
            return
        elapsed = time.monotonic() - getattr(context, "syncd_started", time.monotonic())
        self.observer(name, self._vendors.get(name, ""), status, elapsed)

    async def _on_end(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        name = self.account_of(str(params.url))
        if name is not None:
            self.statuses[(name, int(params.response.status))] += 1
        self._observe(context, int(params.response.status))

    async def _on_exception(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        self._observe(context, None)

    def count(self, account: str) -> int:
        return self.calls[account]


@dataclass
class Runtime:
    """Everything one process needs to sync: database, HTTP session, adapters, engine."""

    settings: Settings
    db: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: aiohttp.ClientSession
    adapters: dict[str, VendorAdapter]
    engine: Engine
    counter: CallCounter
    account_ids: dict[str, int] = field(default_factory=dict)


def check_directions(settings: Settings) -> None:
    """Refuse flows the vendors cannot carry out (``ConfigError`` with every problem).

    Today: an invoice flow that would create invoices in a vendor that takes no invoice
    lines through its API (Simplicate), because another account owns the lines.
    """
    problems: list[Problem] = []
    for w, workspace in enumerate(settings.workspaces):
        vendors = {a.name: a.vendor for a in workspace.accounts}
        for f, flow in enumerate(workspace.flows):
            if flow.resource != "invoices":
                continue
            takes_lines: dict[str, tuple[str, bool]] = {}
            for name in flow.accounts:
                capabilities = vendor_capabilities(vendors.get(name, ""))
                if capabilities is not None:
                    writable = capabilities.writable_fields.get("invoices", frozenset())
                    takes_lines[name] = (vendors[name], "lines" in writable)
            owners = flow_owners(workspace, flow)
            for _account, message in invoice_direction_problems(owners, takes_lines):
                problems.append(Problem(f"workspace[{w}].flow[{f}]", message))
    if problems:
        raise ConfigError(problems)


def select_accounts(
    settings: Settings, *, workspace: str | None = None, account: str | None = None
) -> list[str]:
    """Account names for ``--workspace``/``--account``; ``LookupError`` names what is unknown."""
    workspaces = {w.name: w for w in settings.workspaces}
    if workspace is not None and workspace not in workspaces:
        known = ", ".join(sorted(workspaces)) or "none"
        raise LookupError(f"no workspace named {workspace!r} (configured: {known})")
    chosen = [
        a.name
        for w in settings.workspaces
        if workspace is None or w.name == workspace
        for a in w.accounts
    ]
    if account is not None:
        if account not in chosen:
            where = f" in workspace {workspace!r}" if workspace else ""
            known = ", ".join(chosen) or "none"
            raise LookupError(f"no account named {account!r}{where} (configured: {known})")
        return [account]
    return chosen


async def ensure_accounts(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[str, int]:
    """Mirror workspaces and accounts into the store; their database ids by account name.

    Instances that start together (scale-out) may both find a row missing and insert it:
    the one that loses meets the unique constraint, and simply reads again what the
    other committed.
    """
    for attempt in range(3):
        ids: dict[str, int] = {}
        try:
            async with sessionmaker() as session, session.begin():
                for workspace in settings.workspaces:
                    ws = await repos.ensure_workspace(session, workspace.name)
                    for account in workspace.accounts:
                        row = await repos.ensure_account(
                            session, workspace_id=ws.id, name=account.name, vendor=account.vendor
                        )
                        ids[account.name] = row.id
        except IntegrityError:
            if attempt == 2:
                raise
            continue
        return ids
    raise AssertionError("unreachable")


def build_adapters(
    settings: Settings,
    http: aiohttp.ClientSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    account_ids: Mapping[str, int],
    *,
    shared_budgets: bool = True,
) -> dict[str, VendorAdapter]:
    """One adapter per configured account over the shared HTTP session and its budget."""
    adapters: dict[str, VendorAdapter] = {}
    for _, account in settings.iter_accounts():
        budget = budget_for(
            account,
            sessionmaker=sessionmaker if shared_budgets else None,
            account_id=account_ids[account.name],
        )
        adapters[account.name] = create_adapter(account, http, budget=budget)
    return adapters


def http_session(counter: CallCounter) -> aiohttp.ClientSession:
    """The one vendor HTTP session of a process, traced by ``counter``."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    return aiohttp.ClientSession(trace_configs=[counter.trace], timeout=timeout)


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, shared_budgets: bool = True
) -> AsyncIterator[Runtime]:
    """Open the database (refusing a schema that is behind), the HTTP session and adapters.

    ``shared_budgets``: rate budgets live in the database (shared by every process and
    surviving restarts). A dry run passes False: its one long transaction must not wait
    on budget rows, and it should not spend the shared budget's state anyway.
    """
    await migrate.aensure_current(settings.database.url)
    db = create_engine(settings.database.url)
    try:
        sessionmaker = create_sessionmaker(db)
        ids = await ensure_accounts(sessionmaker, settings)
        counter = CallCounter([a for _, a in settings.iter_accounts()])
        async with http_session(counter) as http:
            adapters = build_adapters(
                settings, http, sessionmaker, ids, shared_budgets=shared_budgets
            )
            engine = Engine(settings, sessionmaker, adapters, call_count=counter.count)
            yield Runtime(
                settings=settings,
                db=db,
                sessionmaker=sessionmaker,
                http=http,
                adapters=adapters,
                engine=engine,
                counter=counter,
                account_ids=ids,
            )
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- write scopes
#
# The daemon runs jobs of many accounts at once (and, on PostgreSQL, in several
# processes). Two things must then hold for every transaction the engine opens inside a
# job; the session class below enforces both when the job runs under `write_scope`:
#
# 1. Transactions of one workspace take turns. Matching an incoming record against the
#    canonical store and inserting a new entity must not interleave with another
#    account's transaction doing the same, or both insert "Acme" and every vendor gets
#    it twice. Inside one process the transactions of a workspace queue on an asyncio
#    lock (first come, first served, no connection held while waiting); across
#    PostgreSQL instances the transaction's first statement takes a transaction-scoped
#    advisory lock on the workspace. (SQLite has one process per file: the instance
#    lock.) Engine transactions never wait for a vendor, so a turn is short.
# 2. A stale lease holder writes nothing (fencing). With a fencing token in the scope,
#    the transaction then reads the account's lease row ``FOR SHARE`` and raises
#    `StaleLease` unless the token is still current; a takeover's UPDATE of that row
#    waits for this transaction, so it cannot slip in between the check and the commit.
#
# This is the daemon's side of an ``Engine.before_write(session, account_id)`` hook: the
# engine opens every transaction with ``async with sessionmaker() as s, s.begin()``, so
# wrapping ``begin`` covers all of them without the engine knowing.


@dataclass(frozen=True, slots=True)
class WriteScope:
    """On whose behalf the engine's transactions write (set by the scheduler per job)."""

    account: str
    account_id: int
    workspace_id: int
    fencing_token: int | None = None  # None: no lease in use (one SQLite instance)


_SCOPE: ContextVar[WriteScope | None] = ContextVar("syncd_write_scope", default=None)
_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.contextmanager
def write_scope(scope: WriteScope | None) -> Iterator[None]:
    """Run the block (and the tasks it starts) with ``scope`` guarding engine transactions."""
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def current_scope() -> WriteScope | None:
    """The scope of the running job, if any."""
    return _SCOPE.get()


def _turn(workspace_id: int) -> asyncio.Lock:
    locks = _TURNS.setdefault(asyncio.get_running_loop(), {})
    lock = locks.get(workspace_id)
    if lock is None:
        lock = locks[workspace_id] = asyncio.Lock()
    return lock


# Advisory lock space of the workspace turns on PostgreSQL: (this, workspace id).
WORKSPACE_LOCK_SPACE = 0x77736E63  # "wsnc"


async def enter_scope(session: AsyncSession, scope: WriteScope) -> None:
    """Take the workspace's turn in the database and check the fence, in ``session``'s transaction.

    PostgreSQL: a transaction-scoped advisory lock on the workspace (other processes
    queue on it; it writes nothing, so read-only transactions stay cheap). SQLite: no
    lock here; one process owns the file (the instance lock) and the in-process turn
    already orders its transactions. Then, when the scope carries a fencing token, the
    fencing check, which raises `StaleLease` when the account's lease moved on. Call it first in the transaction
    (`ScopedSession` does).
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(func.pg_advisory_xact_lock(WORKSPACE_LOCK_SPACE, scope.workspace_id))
        )
    if scope.fencing_token is not None:
        await check_fence(session, scope.account_id, scope.fencing_token)


class _ScopedTransaction(AsyncSessionTransaction):
    """``session.begin()`` that takes the workspace's turn and checks the fence first."""

    __slots__ = ("_turn",)

    def __init__(self, session: AsyncSession, nested: bool = False) -> None:
        super().__init__(session, nested)
        self._turn: asyncio.Lock | None = None

    async def start(self, is_ctxmanager: bool = False) -> AsyncSessionTransaction:
        scope = _SCOPE.get()
        if scope is None or self.nested or not is_ctxmanager:
            return await super().start(is_ctxmanager)
        turn = _turn(scope.workspace_id)
        await turn.acquire()
        self._turn = turn
        try:
            started = await super().start(is_ctxmanager)
        except BaseException:
            self._release()
            raise
        try:
            await enter_scope(self.session, scope)
        except BaseException as exc:
            await self._end(type(exc), exc, exc.__traceback__)
            raise
        return started

    def _release(self) -> None:
        turn, self._turn = getattr(self, "_turn", None), None
        if turn is not None:
            turn.release()

    async def _end(self, type_: Any, value: Any, traceback: Any) -> None:
        # Commit or roll back, and only then give the turn to the next transaction. A
        # cancelled job (drain, reload) must not abandon a half-finished commit that still
        # holds the database's write lock: the ending runs on, shielded, and the turn is
        # passed on when it is really over.
        ending = asyncio.ensure_future(super().__aexit__(type_, value, traceback))
        ending.add_done_callback(self._ended)
        await asyncio.shield(ending)

    def _ended(self, ending: asyncio.Future[None]) -> None:
        self._release()
        if not ending.cancelled():
            ending.exception()  # mark it retrieved: a cancelled caller no longer awaits it

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        await self._end(type_, value, traceback)


class ScopedSession(AsyncSession):
    """An AsyncSession whose ``begin()`` honours the current `WriteScope` (see above)."""

    def begin(self) -> AsyncSessionTransaction:
        return _ScopedTransaction(self)


def scoped_sessionmaker(db: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions like `create_sessionmaker`'s whose transactions honour `write_scope`."""
    return async_sessionmaker(db, expire_on_commit=False, class_=ScopedSession)
