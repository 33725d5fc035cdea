"""Benchmark: does the SQL rate budget keep a sandbox vendor at zero 429s and >= 90 % use?

Run: ``python tests/bench/bench_ratelimit.py [--vendor simplicate] [--requests 500]
[--workers 8] [--window 3] [--limits on|off] [--json out.json]``.

It serves one vendor of the in-process sandbox on 127.0.0.1 (faults off, rate windows
scaled so the vendor's shortest window lasts ``--window`` seconds), gives an
``SqlRateBudget`` on a temporary SQLite file the same (scaled) windows, and sends
``--requests`` GETs of a list endpoint through ``VendorHttp`` from ``--workers``
concurrent workers. It prints the 429s the sandbox counted and the budget utilisation:
requests sent / (elapsed seconds * the tightest window's allowed rate). With
``--limits off`` the sandbox does not limit and the budget is ``UNLIMITED``: raw throughput.
Exit status 1 when a target (zero 429s, >= 90 %) is missed with limits on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from syncd.adapters.http import RateBudget, RetryPolicy, VendorHttp
from syncd.adapters.ratelimit import UNLIMITED, SqlRateBudget
from syncd.sandbox.base import SandboxOptions
from syncd.sandbox.testing import running_sandbox
from syncd.settings import RateLimitWindow
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.migrate import aupgrade
from syncd.store.tables import Account, Workspace

# A cheap list call per vendor, and how each authenticates.
LIST_PATHS = {
    "simplicate": "/crm/organization",
    "moneybird": "/contacts.json",
    "perfex": "/customers",
    "simplbooks": "/clients/list",
}


def auth_headers(vendor: str, credentials: dict[str, str]) -> dict[str, str]:
    if vendor == "simplicate":
        return {
            "Authentication-Key": credentials["key"],
            "Authentication-Secret": credentials["secret"],
        }
    if vendor == "moneybird":
        return {"Authorization": f"Bearer {credentials['token']}"}
    if vendor == "perfex":
        return {"X-API-KEY": credentials["api_key"]}
    return {"X-Simplbooks-Token": credentials["token"]}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    limits = args.limits == "on"
    probe = SandboxOptions(rate_limits=False, fault_rate=0.0)
    async with running_sandbox(probe, vendors=[args.vendor]) as handle:
        emulator = handle.emulators[args.vendor]
        vendor_windows = emulator.current_rate_windows()
        shortest = min(w.per_seconds for w in vendor_windows)
        scale = shortest / args.window
        options = handle.options
        options.rate_limits = limits
        options.rate_scale = scale
        windows = [
            RateLimitWindow(requests=w.requests, per=timedelta(seconds=w.per_seconds / scale))
            for w in vendor_windows
        ]

        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            await aupgrade(url)
            engine = create_engine(url)
            try:
                sessionmaker = create_sessionmaker(engine)
                async with sessionmaker() as session, session.begin():
                    workspace = Workspace(name="bench")
                    session.add(workspace)
                    await session.flush()
                    account = Account(workspace_id=workspace.id, name="bench", vendor=args.vendor)
                    session.add(account)
                    await session.flush()
                    account_id = account.id
                budget: RateBudget = (
                    SqlRateBudget(sessionmaker, account_id=account_id, windows=windows)
                    if limits
                    else UNLIMITED
                )
                async with aiohttp.ClientSession() as client:
                    http = VendorHttp(
                        client,
                        account="bench",
                        vendor=args.vendor,
                        base_url=handle.base_urls[args.vendor],
                        auth_headers=auth_headers(args.vendor, handle.credentials[args.vendor]),
                        budget=budget,
                        retry=RetryPolicy(attempts=2),
                    )
                    emulator.counters.rate_limited = 0
                    result = await drive(http, args.vendor, args.requests, args.workers)
            finally:
                await engine.dispose()
        counters = emulator.counters.as_json()

    elapsed = result["elapsed"]
    tightest = min(w.requests / w.per.total_seconds() for w in windows)
    report: dict[str, Any] = {
        "vendor": args.vendor,
        "limits": args.limits,
        "windows": [f"{w.requests}/{w.per.total_seconds():g}s" for w in windows],
        "rate_scale": round(scale, 3),
        "workers": args.workers,
        "requests": args.requests,
        "api_calls": http.calls,
        "errors": result["errors"],
        "elapsed_seconds": round(elapsed, 3),
        "throughput_per_second": round(args.requests / elapsed, 2),
        "sandbox_429s": counters["rate_limited"],
        "sandbox_requests": counters["requests_total"],
    }
    if limits:
        report["allowed_per_second"] = round(tightest, 3)
        report["utilisation"] = round(args.requests / (elapsed * tightest), 4)
        report["target_met"] = report["sandbox_429s"] == 0 and report["utilisation"] >= 0.9
    return report


async def drive(http: VendorHttp, vendor: str, total: int, workers: int) -> dict[str, Any]:
    remaining = total
    errors: dict[str, int] = {}

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            try:
                await http.get(LIST_PATHS[vendor], params={"limit": "1"})
            except Exception as exc:  # counted and reported, never fatal to the bench
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return {"elapsed": time.monotonic() - started, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendor", choices=sorted(LIST_PATHS), default="simplicate")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--window", type=float, default=3.0, help="seconds the shortest vendor window lasts"
    )
    parser.add_argument("--limits", choices=["on", "off"], default="on")
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be at least 1 second (rate windows are whole seconds)")

    report = asyncio.run(run(args))
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report.get("target_met", True) else 1


if __name__ == "__main__":
    sys.exit(main())
