"""Benchmark: end-to-end sync speed, memory and API economy, CRM -> bookkeeping.

Run from the repository root::

    python tests/bench/bench_sync.py [--n 10000] [--db sqlite|postgres] [--json out.json]
        [--rate-n 300] [--rate-scale 60] [--no-rate] [--profile out.prof]

What it does:

1. **Seed.** A sandbox (``syncd.sandbox``) serving Simplicate and Moneybird, in a child
   process, so that the figures below are the engine's own (its CPU time, its peak RSS)
   and not the emulators'. Simplicate starts with ``--n`` contacts and ``--n`` invoices of
   three lines each (no payments); Moneybird starts empty. Rate limits are off in the
   sandbox and the accounts get no client-side budget.
2. **Initial sync.** ``Engine.once()`` over both accounts (contacts and invoices flows),
   on a fresh SQLite file or a fresh PostgreSQL database. Records/s = (contacts +
   invoices) / wall time of the whole pass.
3. **Change round.** 1 % of the contacts (phone) and 1 % of the invoices (reference) are
   edited in Simplicate as a user would, then ``once()`` again.
4. **Idle round.** ``once()`` with nothing changed: it should write nothing and list each
   resource of each account once.
5. **Rate limits on** (unless ``--no-rate``): a smaller world (``--rate-n``) with the
   sandbox enforcing the vendors' windows divided by ``--rate-scale``, and the accounts
   declaring the same scaled windows (SQL budgets, as the daemon runs): 429s seen, and
   the budget utilisation of the bookkeeping account while it works off its backlog
   (requests / (push seconds x the tightest window's rate)).

API calls are counted per account at the aiohttp session (retries included) and by
route in the sandbox. The minimum is what any correct sync must do: one list call per
page of records (``ceil(records / page size)``, page size 100 at both vendors, at least
one call per resource listed), plus one write per created or changed record.

Exit status is 0 whatever the figures; they are printed and written to ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import pstats
import re
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp

PAGE_SIZE = 100  # Simplicate and Moneybird both list at most 100 records per call
LINES_PER_INVOICE = 3
SANDBOX_VENDORS = ("simplicate", "moneybird")
DEFAULT_POSTGRES_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------- the world


def bench_world(n: int, seed: int) -> Any:
    """Simplicate's seed: ``n`` contacts, ``n`` invoices of three lines, no payments.

    Built from the sandbox's own generator (every vendor's share merged into one), with
    invoice numbers and customer numbers made unique across the merged shares.
    """
    from syncd.sandbox.base import SandboxOptions, SeedLine, VendorSeed
    from syncd.sandbox.seed import generate_world

    world = generate_world(SandboxOptions(seed=seed, contacts=n, invoices=n, overlap=0.0))
    contacts = sorted((c for share in world.values() for c in share.contacts), key=lambda c: c.key)
    contacts = [
        dataclasses.replace(c, customer_number=str(100_001 + i)) for i, c in enumerate(contacts)
    ]
    invoices = sorted((i for share in world.values() for i in share.invoices), key=lambda i: i.key)
    out = []
    per_year: dict[int, int] = {}
    for inv in invoices:
        lines = list(inv.lines)
        while len(lines) < LINES_PER_INVOICE:
            base = lines[len(lines) % len(inv.lines)]
            lines.append(
                SeedLine(
                    description=f"{base.description} ({len(lines) + 1})",
                    quantity=base.quantity,
                    unit_price=base.unit_price,
                    vat_rate=base.vat_rate,
                )
            )
        status = inv.status
        if status in ("paid", "partially_paid", "open"):
            status = "sent"
        number = inv.number
        if status != "draft":
            year = inv.issue_date.year
            per_year[year] = per_year.get(year, 0) + 1
            number = f"{year}-{per_year[year]:06d}"
        out.append(
            dataclasses.replace(
                inv,
                lines=tuple(lines[:LINES_PER_INVOICE]),
                payments=(),
                status=status,
                number=number,
            )
        )
    return VendorSeed(contacts=tuple(contacts), invoices=tuple(out))


# --------------------------------------------------------------------------- the sandbox process


def _sandbox_process(conn: Connection, n: int, seed: int, rate_limits: bool, scale: float) -> None:
    asyncio.run(_sandbox_main(conn, n, seed, rate_limits, scale))


async def _sandbox_main(
    conn: Connection, n: int, seed: int, rate_limits: bool, scale: float
) -> None:
    from syncd.sandbox.base import Counters, SandboxOptions
    from syncd.sandbox.testing import running_sandbox

    started = time.monotonic()
    world = bench_world(n, seed)
    generated = time.monotonic()
    options = SandboxOptions(
        seed=seed, contacts=0, invoices=0, rate_limits=rate_limits, rate_scale=scale
    )
    async with running_sandbox(options, vendors=SANDBOX_VENDORS) as handle:
        crm = handle.emulators["simplicate"]
        crm.load_seed(world)
        loaded = time.monotonic()
        conn.send(
            {
                "base_urls": dict(handle.base_urls),
                "credentials": {v: dict(c) for v, c in handle.credentials.items()},
                "windows": {
                    v: [(w.requests, w.per_seconds) for w in e.current_rate_windows()]
                    for v, e in handle.emulators.items()
                },
                "generate_seconds": round(generated - started, 2),
                "load_seconds": round(loaded - generated, 2),
            }
        )
        loop = asyncio.get_running_loop()
        while True:
            command, arg = await loop.run_in_executor(None, conn.recv)
            if command == "stop":
                conn.send(None)
                return
            if command == "counters":
                conn.send({v: e.counters.as_json() for v, e in handle.emulators.items()})
            elif command == "reset_counters":
                for emulator in handle.emulators.values():
                    emulator.counters = Counters()
                conn.send(None)
            elif command == "change":
                conn.send(_change(crm, float(arg)))
            elif command == "count":
                state = handle.emulators[arg].dump()
                conn.send({k: len(v) for k, v in state.items() if isinstance(v, list)})
            else:
                conn.send({"error": f"unknown command {command!r}"})


def _change(crm: Any, fraction: float) -> dict[str, int]:
    """Edit ``fraction`` of Simplicate's contacts (phone) and invoices (reference)."""
    state = crm.dump()
    changed = {"contacts": 0, "invoices": 0}
    relations = [("organization", r["id"]) for r in state["organization"]] + [
        ("person", r["id"]) for r in state["person"]
    ]
    relations.sort(key=lambda r: r[1])
    invoices = sorted(r["id"] for r in state["invoice"])
    step = max(1, round(1 / fraction))
    for index, (kind, rid) in enumerate(relations[::step]):
        crm.mutate(kind, rid, {"phone": f"+31 6 {index:08d}"})
        changed["contacts"] += 1
    for index, rid in enumerate(invoices[::step]):
        crm.mutate("invoice", rid, {"reference": f"bench change {index}"})
        changed["invoices"] += 1
    return changed


class SandboxProcess:
    """The sandbox child process and its command pipe."""

    def __init__(self, n: int, seed: int, *, rate_limits: bool = False, scale: float = 1.0):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_sandbox_process, args=(child, n, seed, rate_limits, scale), daemon=True
        )
        self.process.start()
        child.close()
        self.info: dict[str, Any] = self.conn.recv()

    def ask(self, command: str, arg: Any = None) -> Any:
        self.conn.send((command, arg))
        return self.conn.recv()

    def stop(self) -> None:
        try:
            self.ask("stop")
        finally:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()


# --------------------------------------------------------------------------- syncd side


def bench_settings(info: dict[str, Any], url: str, rate: dict[str, list[tuple[int, float]]] | None):
    from syncd.settings import parse_settings

    creds = info["credentials"]

    def account(name: str, vendor: str) -> dict[str, Any]:
        table: dict[str, Any] = {
            "name": name,
            "vendor": vendor,
            "base_url": info["base_urls"][vendor],
            "credentials": creds[vendor],
            "allow_insecure_http": True,
        }
        if rate is not None:
            table["rate_limit"] = [
                {"requests": r, "per": f"{max(1, round(s))}s"} for r, s in rate[vendor]
            ]
        return table

    data = {
        "database": {"url": url},
        "workspace": [
            {
                "name": "bench",
                "account": [account("crm", "simplicate"), account("books", "moneybird")],
                "flow": [
                    {
                        "resource": "contacts",
                        "accounts": ["crm", "books"],
                        "conflict": "newest",
                        "delete": "archive",
                    },
                    {
                        "resource": "invoices",
                        "accounts": ["crm", "books"],
                        "conflict": "newest",
                        "delete": "archive",
                    },
                ],
            }
        ],
    }
    return parse_settings(data, environ={}, base_dir=Path("."))


def _fresh_file(path: str) -> Path:
    """``path`` made absolute, with any SQLite database (and its WAL files) there removed."""
    absolute = Path(path).resolve()
    for stale in (absolute, Path(f"{absolute}-wal"), Path(f"{absolute}-shm")):
        stale.unlink(missing_ok=True)
    return absolute


@asynccontextmanager
async def database(
    kind: str, admin_url: str, keep: str | None = None, revision: str = "head"
) -> AsyncIterator[str]:
    """A fresh database URL migrated to ``revision``; removed afterwards unless ``keep`` names it.

    ``keep`` is a file path (SQLite) or a database name (PostgreSQL): whatever was there
    is replaced, and the database is left behind for inspection (``EXPLAIN``).
    """
    from syncd.store.migrate import aupgrade

    if kind == "sqlite":
        if keep is not None:
            url = f"sqlite+aiosqlite:///{_fresh_file(keep)}"
            await aupgrade(url, revision)
            yield url
            print(f"kept the database: {url}")
            return
        with tempfile.TemporaryDirectory(prefix="syncd-bench-") as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await aupgrade(url, revision)
            yield url
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    admin = make_url(admin_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = keep or f"syncd_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(dsn)
    try:
        if keep is not None:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        await aupgrade(url, revision)
        yield url
    finally:
        if keep is not None:
            print(f"kept the database: {url}")
        else:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()


@asynccontextmanager
async def engine_for(settings: Any, *, limited: bool) -> AsyncIterator[Any]:
    """An Engine over both accounts: UNLIMITED budgets, or SQL budgets from the settings."""
    from syncd.adapters.ratelimit import UNLIMITED, budget_for
    from syncd.adapters.registry import create_adapter
    from syncd.app import CallCounter, ensure_accounts
    from syncd.runner import Engine
    from syncd.store.db import create_engine, create_sessionmaker

    db = create_engine(settings.database.url)
    try:
        sessionmaker = create_sessionmaker(db)
        ids = await ensure_accounts(sessionmaker, settings)
        accounts = [a for w in settings.workspaces for a in w.accounts]
        counter = CallCounter(accounts)
        probe = Probe()
        probe.watch_sql(db)
        async with aiohttp.ClientSession(trace_configs=[counter.trace, probe.trace]) as http:
            adapters = {
                a.name: create_adapter(
                    a,
                    http,
                    budget=budget_for(a, sessionmaker=sessionmaker, account_id=ids[a.name])
                    if limited
                    else UNLIMITED,
                )
                for a in accounts
            }
            engine = Engine(settings, sessionmaker, adapters, call_count=counter.count)
            engine.bench_counter = counter  # type: ignore[attr-defined]
            engine.bench_probe = probe  # type: ignore[attr-defined]
            probe.wrap_jobs(engine)
            yield engine
    finally:
        await db.dispose()


@contextmanager
def profiled(args: argparse.Namespace) -> Iterator[None]:
    """cProfile (``--profile``) or pyinstrument (``--pyinstrument``, if installed) around a block."""
    if args.pyinstrument:
        from pyinstrument import Profiler  # optional: pip install pyinstrument

        wall = Profiler(async_mode="enabled")
        wall.start()
        try:
            yield
        finally:
            wall.stop()
            Path(args.pyinstrument).write_text(
                wall.output_text(unicode=True, show_all=False), encoding="utf-8"
            )
        return
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            profiler.dump_stats(args.profile)
        return
    yield


class Probe:
    """Where a round's time goes: SQL statements, seconds waiting on HTTP, seconds per job."""

    def __init__(self) -> None:
        self.statements = 0
        self.commits = 0
        self.http_seconds = 0.0
        self.jobs: dict[str, float] = {}
        self.job_statements: dict[str, int] = {}
        self.current: str | None = None
        self.templates: dict[tuple[str, str], int] | None = None
        self._open: dict[int, float] = {}
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_start.append(self._start)
        self.trace.on_request_end.append(self._end)
        self.trace.on_request_exception.append(self._end)

    async def _start(self, session: Any, context: Any, params: Any) -> None:
        self._open[id(context)] = time.perf_counter()

    async def _end(self, session: Any, context: Any, params: Any) -> None:
        began = self._open.pop(id(context), None)
        if began is not None:
            self.http_seconds += time.perf_counter() - began

    def watch_sql(self, db: Any) -> None:
        from sqlalchemy import event

        def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            self.statements += 1
            if self.templates is not None:
                text = re.sub(r"^SELECT .*? FROM ", "SELECT … FROM ", " ".join(statement.split()))
                key = (self.current or "-", text[:200])
                self.templates[key] = self.templates.get(key, 0) + 1
            if self.current is not None:
                self.job_statements[self.current] = self.job_statements.get(self.current, 0) + 1

        def commit(*_: Any) -> None:
            self.commits += 1

        event.listen(db.sync_engine, "before_cursor_execute", count)
        event.listen(db.sync_engine, "commit", commit)

    def wrap_jobs(self, engine: Any) -> None:
        for job in ("pull", "push", "reconcile"):
            original = getattr(engine, job)

            async def timed(
                name: str, *a: Any, _job: str = job, _f: Any = original, **k: Any
            ) -> Any:
                began = time.perf_counter()
                key = f"{_job} {name}"
                self.current = key
                try:
                    return await _f(name, *a, **k)
                finally:
                    self.current = None
                    self.jobs[key] = self.jobs.get(key, 0.0) + time.perf_counter() - began

            setattr(engine, job, timed)

    def snapshot(self) -> dict[str, Any]:
        return {
            "sql_statements": self.statements,
            "commits": self.commits,
            "http_seconds": self.http_seconds,
            "jobs": dict(self.jobs),
            "job_statements": dict(self.job_statements),
        }


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    jobs = {
        k: round(v - before["jobs"].get(k, 0.0), 3)
        for k, v in after["jobs"].items()
        if v - before["jobs"].get(k, 0.0) > 0
    }
    statements = {
        k: v - before["job_statements"].get(k, 0)
        for k, v in after["job_statements"].items()
        if v - before["job_statements"].get(k, 0) > 0
    }
    return {
        "sql_statements": after["sql_statements"] - before["sql_statements"],
        "job_sql_statements": statements,
        "commits": after["commits"] - before["commits"],
        "http_seconds": round(after["http_seconds"] - before["http_seconds"], 3),
        "job_seconds": jobs,
    }


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _route_calls(counters: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {
        vendor: dict(sorted(c["requests"].items(), key=lambda kv: -kv[1]))
        for vendor, c in counters.items()
    }


def _minimum_reads(listed: dict[str, int]) -> int:
    return sum(max(1, math.ceil(count / PAGE_SIZE)) for count in listed.values())


async def timed_round(engine: Any, sandbox: SandboxProcess, label: str) -> dict[str, Any]:
    counter = engine.bench_counter
    probe = engine.bench_probe
    sandbox.ask("reset_counters")
    before = dict(counter.calls)
    probed = probe.snapshot()
    cpu = cpu_seconds()
    started = time.perf_counter()
    totals = await engine.once()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds() - cpu
    where = _delta(probe.snapshot(), probed)
    counters = sandbox.ask("counters")
    calls = {name: counter.calls[name] - before.get(name, 0) for name in totals}
    stats = {
        name: {
            k: v for k, v in dataclasses.asdict(st).items() if k not in ("account", "errors") and v
        }
        | ({"errors": st.errors[:3]} if st.errors else {})
        for name, st in totals.items()
    }
    writes = {v: c["writes"] for v, c in counters.items()}
    return {
        "round": label,
        "seconds": round(elapsed, 3),
        "cpu_seconds": round(cpu, 3),
        "api_calls": calls,
        "api_calls_total": sum(calls.values()),
        "vendor_writes": writes,
        "vendor_429s": {v: c["rate_limited"] for v, c in counters.items()},
        "calls_by_route": _route_calls(counters),
        "engine": stats,
        **where,
        "peak_rss_mb": peak_rss_mb(),
    }


async def unlimited_part(args: argparse.Namespace) -> dict[str, Any]:
    n = args.n
    sandbox = SandboxProcess(n, args.seed)
    try:
        report: dict[str, Any] = {
            "n": n,
            "db": args.db,
            "sandbox_generate_seconds": sandbox.info["generate_seconds"],
            "sandbox_load_seconds": sandbox.info["load_seconds"],
        }
        async with database(args.db, args.postgres_admin, args.keep_db, args.schema) as url:
            settings = bench_settings(sandbox.info, url, None)
            async with engine_for(settings, limited=False) as engine:
                probe = engine.bench_probe
                if args.sql_top:
                    probe.templates = {}
                with profiled(args):
                    initial = await timed_round(engine, sandbox, "initial")
                if probe.templates:
                    top = sorted(probe.templates.items(), key=lambda kv: -kv[1])[: args.sql_top]
                    print(f"most frequent SQL statements of the initial sync (N = {n}):")
                    for (job, text), count in top:
                        print(f"  {count:7d}  {job:12s} {text}")
                    probe.templates = None
                records = 2 * n
                initial["records"] = records
                initial["records_per_second"] = round(records / initial["seconds"], 1)
                created = initial["vendor_writes"]["moneybird"]
                initial["minimum_api_calls"] = (
                    _minimum_reads({"crm contacts": n, "crm invoices": n})
                    + _minimum_reads({"books contacts": 0, "books invoices": 0})
                    + created
                )
                initial["calls_over_minimum"] = round(
                    initial["api_calls_total"] / initial["minimum_api_calls"], 3
                )
                books = sandbox.ask("count", "moneybird")
                initial["books_holds"] = {
                    "contacts": books.get("contacts", 0),
                    "sales_invoices": books.get("sales_invoices", 0),
                }

                changed = sandbox.ask("change", 0.01)
                change = await timed_round(engine, sandbox, "change 1%")
                change_records = changed["contacts"] + changed["invoices"]
                change["edited_in_crm"] = changed
                change["records_per_second"] = round(change_records / change["seconds"], 1)
                # The changed records are read once at the CRM, written once to the books,
                # and the books' echo of them is read once more.
                change["minimum_api_calls"] = (
                    _minimum_reads(
                        {"contacts": changed["contacts"], "invoices": changed["invoices"]}
                    )
                    + change_records
                    + _minimum_reads({"books contacts": 0, "books invoices": 0})
                )
                change["calls_over_minimum"] = round(
                    change["api_calls_total"] / change["minimum_api_calls"], 3
                )

                idle = await timed_round(engine, sandbox, "idle")
                idle["writes"] = sum(idle["vendor_writes"].values())
        report["rounds"] = [initial, change, idle]
        report["peak_rss_mb"] = peak_rss_mb()
        return report
    finally:
        sandbox.stop()


async def rate_part(args: argparse.Namespace) -> dict[str, Any]:
    """Rate limits on: 429s and the bookkeeping account's budget use under backlog."""
    n = args.rate_n
    sandbox = SandboxProcess(n, args.seed, rate_limits=True, scale=args.rate_scale)
    try:
        windows = {
            v: [(r, s / args.rate_scale) for r, s in w] for v, w in sandbox.info["windows"].items()
        }
        async with database(args.db, args.postgres_admin) as url:
            settings = bench_settings(sandbox.info, url, windows)
            async with engine_for(settings, limited=True) as engine:
                counter = engine.bench_counter
                sandbox.ask("reset_counters")
                started = time.perf_counter()
                for name in ("crm", "books"):
                    await engine.pull(name)
                pulled = time.perf_counter()
                before = counter.calls["books"]
                await engine.push("books")
                pushed = time.perf_counter()
                push_calls = counter.calls["books"] - before
                totals = await engine.once()
                finished = time.perf_counter()
                counters = sandbox.ask("counters")
        tightest = min(r / s for r, s in windows["moneybird"])
        burst = min(r for r, _ in windows["moneybird"])  # a full bucket to start with
        push_seconds = pushed - pulled
        return {
            "n": n,
            "rate_scale": args.rate_scale,
            "windows": {v: [f"{r}/{s:g}s" for r, s in w] for v, w in windows.items()},
            "books_push_calls": push_calls,
            "books_push_seconds": round(push_seconds, 2),
            "books_allowed_per_second": round(tightest, 3),
            "books_budget_utilisation": round(push_calls / (push_seconds * tightest), 3),
            # Without the first full window, which a fresh bucket allows at once.
            "books_budget_utilisation_after_burst": round(
                max(0, push_calls - burst) / (push_seconds * tightest), 3
            ),
            "vendor_429s": {v: c["rate_limited"] for v, c in counters.items()},
            "total_seconds": round(finished - started, 2),
            "pull_seconds": round(pulled - started, 2),
            "remaining_failed": {n_: st.failed for n_, st in totals.items()},
        }
    finally:
        sandbox.stop()


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


def print_report(report: dict[str, Any]) -> None:
    main = report["sync"]
    print(
        f"syncd sync benchmark: N = {main['n']} on {main['db']} ({report['machine']['cpus']} CPUs)"
    )
    print(
        f"  sandbox seeding: generate {main['sandbox_generate_seconds']}s, "
        f"load {main['sandbox_load_seconds']}s"
    )
    for rnd in main["rounds"]:
        line = (
            f"  {rnd['round']:<10} {rnd['seconds']:>9.2f}s  cpu {rnd['cpu_seconds']:>8.2f}s  "
            f"calls {rnd['api_calls_total']:>7}"
        )
        if "minimum_api_calls" in rnd:
            line += f" (minimum {rnd['minimum_api_calls']}, x{rnd['calls_over_minimum']})"
        if "records_per_second" in rnd:
            line += f"  {rnd['records_per_second']} records/s"
        line += f"  vendor writes {sum(rnd['vendor_writes'].values())}"
        print(line)
        jobs = ", ".join(
            f"{k} {v:.2f}s/{rnd['job_sql_statements'].get(k, 0)} stmts"
            for k, v in rnd["job_seconds"].items()
        )
        print(
            f"      SQL statements {rnd['sql_statements']}, commits {rnd['commits']}, "
            f"HTTP wait {rnd['http_seconds']:.2f}s; {jobs}"
        )
        for vendor, routes in rnd["calls_by_route"].items():
            top = ", ".join(f"{k} {v}" for k, v in list(routes.items())[:6])
            print(f"      {vendor}: {top}")
    print(f"  peak RSS (syncd process): {main['peak_rss_mb']} MB")
    rate = report.get("rate")
    if rate:
        print(
            f"  rate limits on (N = {rate['n']}, scale {rate['rate_scale']:g}): "
            f"429s {rate['vendor_429s']}, books budget use {rate['books_budget_utilisation']:.1%} "
            f"({rate['books_budget_utilisation_after_burst']:.1%} after the initial burst) "
            f"({rate['books_push_calls']} calls in {rate['books_push_seconds']}s at "
            f"{rate['books_allowed_per_second']}/s)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="contacts and invoices (each)")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-admin",
        default=os.environ.get("SYNCD_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_ADMIN),
        help="a PostgreSQL URL on which the benchmark may create and drop a database",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--rate-n", type=int, default=300, help="world size with rate limits on")
    parser.add_argument("--rate-scale", type=float, default=60.0)
    parser.add_argument("--no-rate", action="store_true", help="skip the rate-limited part")
    parser.add_argument("--profile", help="write a cProfile of the initial sync here")
    parser.add_argument(
        "--sql-top",
        type=int,
        default=0,
        help="print the N most frequent SQL statements of the initial sync, per job",
    )
    parser.add_argument(
        "--schema",
        default="head",
        metavar="REVISION",
        help="migrate the main part's database to this alembic revision instead of the newest "
        "(to compare indexes on the same code; the engine does not check the revision)",
    )
    parser.add_argument(
        "--keep-db",
        metavar="PATH_OR_NAME",
        help="keep the main part's database: an SQLite file path, or a PostgreSQL database "
        "name (replaced if it exists), for EXPLAIN afterwards",
    )
    parser.add_argument(
        "--pyinstrument", help="write a pyinstrument (wall clock) profile of the initial sync here"
    )
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    report: dict[str, Any] = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    report["sync"] = asyncio.run(unlimited_part(args))
    if not args.no_rate:
        report["rate"] = asyncio.run(rate_part(args))
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    if args.profile:
        stats = pstats.Stats(args.profile)
        stats.sort_stats("cumulative").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
