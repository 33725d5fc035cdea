"""Composition root: settings -> database, one aiohttp session, rate budgets, adapters, engine.

Everything that wires the layers together lives here (and in ``cli.py``); the layers
themselves never build each other. ``open_runtime`` is shared by ``syncd once``, the
operator commands and the daemon.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from syncd.adapters.base import VendorAdapter
from syncd.adapters.ratelimit import budget_for
from syncd.adapters.registry import create_adapter
from syncd.runner import Engine
from syncd.settings import AccountSettings, Settings
from syncd.store import migrate, repos
from syncd.store.db import create_engine, create_sessionmaker


class CallCounter:
    """Counts the HTTP requests each account sends, from aiohttp's request tracing.

    Requests are told apart by their URL: the account whose ``base_url`` is the longest
    prefix of the request URL sent it. Counting at the session (not in the adapters)
    means every request is counted, retries included, whatever the adapter does.
    """

    def __init__(self, accounts: Sequence[AccountSettings]) -> None:
        self._prefixes = sorted(
            ((a.base_url.rstrip("/"), a.name) for a in accounts), key=lambda p: -len(p[0])
        )
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._on_start)
        self.trace.on_request_end.append(self._on_end)

    def account_of(self, url: str) -> str | None:
        for prefix, name in self._prefixes:
            if url == prefix or url.startswith(prefix + "/") or url.startswith(prefix + "?"):
                return name
        return None

    async def _on_start(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        name = self.account_of(str(params.url))
        if name is not None:
            self.calls[name] += 1

    async def _on_end(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        name = self.account_of(str(params.url))
        if name is not None:
            self.statuses[(name, int(params.response.status))] += 1

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
    """Mirror workspaces and accounts into the store; their database ids by account name."""
    ids: dict[str, int] = {}
    async with sessionmaker() as session, session.begin():
        for workspace in settings.workspaces:
            ws = await repos.ensure_workspace(session, workspace.name)
            for account in workspace.accounts:
                row = await repos.ensure_account(
                    session, workspace_id=ws.id, name=account.name, vendor=account.vendor
                )
                ids[account.name] = row.id
    return ids


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
        accounts = [a for w in settings.workspaces for a in w.accounts]
        counter = CallCounter(accounts)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
        async with aiohttp.ClientSession(trace_configs=[counter.trace], timeout=timeout) as http:
            adapters: dict[str, VendorAdapter] = {}
            for account in accounts:
                budget = budget_for(
                    account,
                    sessionmaker=sessionmaker if shared_budgets else None,
                    account_id=ids[account.name],
                )
                adapters[account.name] = create_adapter(account, http, budget=budget)
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
