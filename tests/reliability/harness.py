"""Shared rig for the reliability tests: the sandbox, a tampering proxy, and a real Engine.

``TamperProxy`` sits between the adapters and the sandbox and forwards every request;
rules rewrite chosen answers on the way back (a garbled body, a wrong type in one row,
the same page forever...), so bad vendor data reaches the real adapters over real HTTP.

``sync_rig`` builds what ``syncd once`` builds (settings, migrated database, one aiohttp
session, the registry's adapters, an ``Engine``) with two differences that keep the tests
fast and deterministic: budgets are unlimited and every backoff pause is skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.adapters.ratelimit import UNLIMITED
from syncd.adapters.registry import create_adapter
from syncd.app import CallCounter, ensure_accounts
from syncd.runner import Engine
from syncd.sandbox.base import SandboxOptions, VendorName
from syncd.sandbox.common import exact_json, plain_decimal
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import Settings, parse_settings
from syncd.store import tables as t
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.migrate import aupgrade

# Status, body, content type (None: keep the vendor's) -> what the client receives.
Answer = tuple[int, bytes, str | None]
Transform = Callable[[int, bytes], Answer]

ACCOUNT_OF: dict[VendorName, str] = {
    "simplicate": "crm",
    "moneybird": "books",
    "perfex": "perfex",
    "simplbooks": "simplbooks",
}

_HOP_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "accept-encoding",
        "content-encoding",
    }
)


@dataclass
class Rule:
    """Rewrite the answers to ``method`` requests whose path matches ``path``."""

    method: str
    path: re.Pattern[str]
    transform: Transform
    times: int | None = None  # apply to this many answers, then pass the rest through
    when: Callable[[Mapping[str, str]], bool] | None = None  # a test on the query
    hits: int = 0

    def wants(self, request: web.Request) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if request.method != self.method or not self.path.search(request.path):
            return False
        return self.when is None or self.when(request.query)


@dataclass
class TamperProxy:
    """An HTTP proxy in front of the sandbox that rewrites answers by rule."""

    upstream: str  # the sandbox root, e.g. "http://127.0.0.1:40123"
    rules: list[Rule] = field(default_factory=list)
    url: str = ""
    requests: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    def add(
        self,
        method: str,
        path: str,
        transform: Transform,
        *,
        times: int | None = None,
        when: Callable[[Mapping[str, str]], bool] | None = None,
    ) -> Rule:
        rule = Rule(method.upper(), re.compile(path), transform, times=times, when=when)
        self.rules.append(rule)
        return rule

    def base_url(self, sandbox_base_url: str) -> str:
        """The proxied form of one vendor's sandbox base_url."""
        assert sandbox_base_url.startswith(self.upstream)
        return self.url + sandbox_base_url[len(self.upstream) :]

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        self.requests += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        body = await request.read()
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            status = upstream.status
            raw = await upstream.read()
            content_type = upstream.headers.get("Content-Type")
            passed = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in _HOP_HEADERS and k.lower() != "content-type"
            }
        for rule in self.rules:
            if rule.wants(request):
                rule.hits += 1
                status, raw, replaced = rule.transform(status, raw)
                if replaced is not None:
                    content_type = replaced
                break
        response = web.Response(status=status, body=raw, headers=passed)
        if content_type:
            response.headers["Content-Type"] = content_type
        return response


# --------------------------------------------------------------------------- transforms


def dumps(data: Any) -> bytes:
    """JSON bytes with Decimals written exactly, as the sandbox writes them.

    A lone surrogate in a string is written as its (invalid) UTF-8 bytes, not refused.
    """
    return exact_json(data, plain_decimal).encode("utf-8", "surrogatepass")


def rewrite_json(change: Callable[[Any], Any]) -> Transform:
    """Parse the answer (Decimals kept), let ``change`` edit or replace it, write it again."""

    def transform(status: int, body: bytes) -> Answer:
        data = json.loads(body, parse_float=Decimal)
        changed = change(data)
        return status, dumps(data if changed is None else changed), None

    return transform


def rewrite_row(change: Callable[[dict[str, Any]], Any], *, index: int = 0) -> Transform:
    """Edit one row of a ``{"data": [...]}`` list answer (when the page has that many)."""

    def edit(data: Any) -> None:
        rows = data.get("data") if isinstance(data, dict) else None
        if isinstance(rows, list) and len(rows) > index and isinstance(rows[index], dict):
            change(rows[index])

    return rewrite_json(edit)


def replace_body(body: bytes, content_type: str | None = None, status: int = 200) -> Transform:
    """Answer with exactly ``body`` (and ``status``), whatever the vendor said."""

    def transform(_status: int, _body: bytes) -> Answer:
        return status, body, content_type

    return transform


def replace_bytes(old: bytes, new: bytes) -> Transform:
    """Swap bytes in the raw answer: invalid UTF-8, JSON escapes, anything the parser sees."""

    def transform(status: int, body: bytes) -> Answer:
        return status, body.replace(old, new), None

    return transform


def truncate(keep: float = 0.5) -> Transform:
    """Cut the body short: a proxy that lost the end of the answer."""

    def transform(status: int, body: bytes) -> Answer:
        return status, body[: max(1, int(len(body) * keep))], None

    return transform


# --------------------------------------------------------------------------- the sync rig


class VirtualClock:
    """Engine time that starts now and moves only when the engine sleeps."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=max(0.0, seconds))
        await asyncio.sleep(0)


async def no_backoff(seconds: float) -> None:
    """Retries go again at once (the backoff policy itself is tested elsewhere)."""
    await asyncio.sleep(0)


def settings_for(
    base_urls: Mapping[str, str],
    credentials: Mapping[str, Mapping[str, str]],
    db_url: str,
    *,
    vendors: Sequence[VendorName] = ("simplicate", "moneybird"),
    invoices: bool = True,
) -> Settings:
    """One workspace: an account per vendor, contacts (and invoices) flowing among them."""
    names = [ACCOUNT_OF[v] for v in vendors]
    accounts = [
        {
            "name": ACCOUNT_OF[vendor],
            "vendor": vendor,
            "base_url": base_urls[vendor],
            "credentials": dict(credentials[vendor]),
            "allow_insecure_http": True,
        }
        for vendor in vendors
    ]
    flows: list[dict[str, Any]] = [
        {"resource": "contacts", "accounts": names, "conflict": "newest", "delete": "archive"}
    ]
    if invoices:
        flows.append(
            {"resource": "invoices", "accounts": names, "conflict": "newest", "delete": "archive"}
        )
    data = {
        "database": {"url": db_url},
        "workspace": [{"name": "rel", "account": accounts, "flow": flows}],
    }
    return parse_settings(data, environ={}, base_dir=Path("."))


@dataclass
class SyncRig:
    handle: SandboxHandle
    proxy: TamperProxy
    settings: Settings
    engine: Engine
    sessionmaker: async_sessionmaker[AsyncSession]
    counter: CallCounter
    clock: VirtualClock

    def emulator_state(self, vendor: VendorName) -> dict[str, Any]:
        return self.handle.emulators[vendor].dump()

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.sessionmaker() as session:
            return list((await session.execute(select(table).where(*where))).scalars())

    async def account_id(self, name: str) -> int:
        (row,) = await self.rows(t.Account, t.Account.name == name)
        return int(row.id)

    async def quarantined(self, account: str) -> dict[str | None, str]:
        """Open quarantine entries of ``account``: external id -> reason."""
        aid = await self.account_id(account)
        rows = await self.rows(
            t.Quarantine, t.Quarantine.account_id == aid, t.Quarantine.resolved_at.is_(None)
        )
        return {row.external_id: row.reason for row in rows}

    async def linked(self, account: str, resource: str) -> set[str]:
        aid = await self.account_id(account)
        rows = await self.rows(t.Link, t.Link.account_id == aid, t.Link.resource == resource)
        return {row.external_id for row in rows}

    async def runs(self, account: str) -> list[t.SyncRun]:
        aid = await self.account_id(account)
        return await self.rows(t.SyncRun, t.SyncRun.account_id == aid)


@asynccontextmanager
async def sync_rig(
    db_url: str,
    *,
    options: SandboxOptions | None = None,
    vendors: Sequence[VendorName] = ("simplicate", "moneybird"),
    proxied: Iterable[VendorName] = ("simplicate",),
    invoices: bool = True,
    migrate: bool = False,
) -> AsyncIterator[SyncRig]:
    """The sandbox (``vendors``), a proxy before ``proxied`` vendors, and an Engine over all.

    ``db_url`` must be migrated already, unless ``migrate`` says to do it here.
    """
    sandbox_options = options or SandboxOptions(
        seed=11, contacts=24, invoices=16, overlap=0.0, rate_limits=False
    )
    if migrate:
        await aupgrade(db_url)
    async with running_sandbox(sandbox_options, vendors=vendors) as handle:
        proxy = TamperProxy(handle.url)
        await proxy.start()
        db = create_engine(db_url)
        try:
            via_proxy = set(proxied)
            base_urls = {
                v: proxy.base_url(url) if v in via_proxy else url
                for v, url in handle.base_urls.items()
            }
            settings = settings_for(
                base_urls, handle.credentials, db_url, vendors=vendors, invoices=invoices
            )
            sessionmaker = create_sessionmaker(db)
            await ensure_accounts(sessionmaker, settings)
            accounts = [a for w in settings.workspaces for a in w.accounts]
            counter = CallCounter(accounts)
            clock = VirtualClock()
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(
                trace_configs=[counter.trace], timeout=timeout
            ) as http:
                adapters = {
                    a.name: create_adapter(a, http, budget=UNLIMITED, sleep=no_backoff)
                    for a in accounts
                }
                engine = Engine(
                    settings,
                    sessionmaker,
                    adapters,
                    clock=clock,
                    sleep=clock.sleep,
                    call_count=counter.count,
                )
                yield SyncRig(handle, proxy, settings, engine, sessionmaker, counter, clock)
        finally:
            await db.dispose()
            await proxy.stop()
