"""Two `syncd run` processes on one PostgreSQL database share six accounts, and fail over.

Two sandboxes serve two workspaces of three accounts each. Both processes start with
the same config; they must split the six leases three and three, converge both
workspaces, and when one is killed (SIGKILL: no goodbye, its leases simply stop being
renewed) the other must take its accounts over (at its next lease tick, as the dead process's
liveness lock went with its connection; at worst within one lease ttl) and carry on,
with every vendor holding each contact exactly once.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from sqlalchemy import select

from syncd.sandbox.base import SandboxOptions, VendorName
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.store import tables as t
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.migrate import aupgrade
from syncd.webhooks import sign_timestamped
from tests.daemon.helpers import wait_for
from tests.daemon.process import (
    Syncd,
    account_toml,
    alive,
    config_toml,
    contact_count,
    kept,
    seeded_union,
    workspace_toml,
)

TTL_SECONDS = 3
FIRST: tuple[VendorName, ...] = ("simplicate", "moneybird", "perfex")
SECOND: tuple[VendorName, ...] = ("moneybird", "perfex", "simplbooks")
HOOK_SECRET = "moneybird-hook-secret-for-the-scale-out-test"
OPTIONS = SandboxOptions(seed=7, contacts=6, invoices=0, overlap=0.5, rate_limits=False)


def workspace(handle: SandboxHandle, name: str, vendors: tuple[VendorName, ...]) -> str:
    names = [f"{name}-{v}" for v in vendors]
    blocks = [
        account_toml(
            handle,
            v,
            f"{name}-{v}",
            webhook_secret=HOOK_SECRET if v == "moneybird" else None,
        )
        for v in vendors
    ]
    return workspace_toml(name, names, blocks)


def moneybird_names(handle: SandboxHandle) -> Counter[str]:
    return Counter(
        c.get("company_name") or "" for c in handle.emulators["moneybird"].dump()["contacts"]
    )


async def test_two_instances_split_six_accounts_and_fail_over(
    postgres_url: str, tmp_path: Path
) -> None:
    await aupgrade(postgres_url)
    db = create_engine(postgres_url)
    sessions = create_sessionmaker(db)

    async def holders() -> Counter[str]:
        now = dt.datetime.now(dt.UTC)
        async with sessions() as s:
            rows = (await s.execute(select(t.Lease.owner, t.Lease.expires_at))).all()
        return Counter(row.owner.split(":")[1] for row in rows if row.expires_at > now)

    try:
        async with running_sandbox(OPTIONS) as one, running_sandbox(OPTIONS) as two:
            config = tmp_path / "syncd.toml"
            config.write_text(
                config_toml(
                    postgres_url,
                    "127.0.0.1:0",  # each instance gets its own free port
                    [workspace(one, "one", FIRST), workspace(two, "two", SECOND)],
                ),
                encoding="utf-8",
            )
            env = {"SYNCD_LEASE_TTL": f"{TTL_SECONDS}s"}
            a = Syncd(config, tmp_path / "a.log", env)
            b = Syncd(config, tmp_path / "b.log", env)
            async with kept([a, b]):
                await a.start()
                await b.start()

                # Three accounts each (whoever started first took all, then handed over).
                await wait_for(
                    lambda: alive(a, b) and _split(holders, {str(a.pid), str(b.pid)}),
                    within=45,
                    what="three leases per instance",
                )

                # Both workspaces converge.
                unions = {
                    "one": seeded_union(OPTIONS, FIRST),
                    "two": seeded_union(OPTIONS, SECOND),
                }
                worlds = {"one": (one, FIRST), "two": (two, SECOND)}

                def converged(extra: dict[str, int]) -> bool:
                    return all(
                        contact_count(handle.emulators[v]) == unions[w] + extra.get(w, 0)
                        for w, (handle, vendors) in worlds.items()
                        for v in vendors
                    )

                def counts() -> dict[str, int]:
                    return {
                        f"{w}-{v}": contact_count(handle.emulators[v])
                        for w, (handle, vendors) in worlds.items()
                        for v in vendors
                    }

                await wait_for(lambda: converged({}), within=60, what="convergence", state=counts)

                async with sessions() as s:
                    owner = (
                        await s.execute(
                            select(t.Lease.owner)
                            .join(t.Account, t.Account.id == t.Lease.account_id)
                            .where(t.Account.name == "one-moneybird")
                        )
                    ).scalar_one()
                victim, survivor = (a, b) if owner.split(":")[1] == str(a.pid) else (b, a)

                # A Moneybird webhook that reaches the instance NOT holding the account
                # still makes the holder pull at once (the account polls once an hour).
                await _webhook_via_the_other_instance(one, holder=victim, other=survivor)

                # Kill the instance that holds workspace one's Moneybird account.
                victim.signal(signal.SIGKILL)
                await victim.wait()
                killed = time.monotonic()

                # Someone makes a contact there meanwhile; it must still reach everyone.
                one.emulators["moneybird"].create(
                    "contacts",
                    {
                        "company_name": "Failover Test B.V.",
                        "send_invoices_to_email": "fo@example.nl",
                    },
                )
                await wait_for(
                    lambda: alive(survivor) and _all_held_by(holders, str(survivor.pid)),
                    within=30,
                    what="the survivor holding all six accounts",
                )
                took = time.monotonic() - killed
                print(f"takeover finished {took:.2f}s after the kill (lease ttl {TTL_SECONDS}s)")
                await wait_for(
                    lambda: converged({"one": 1}),
                    within=45,
                    what="the new contact everywhere",
                    state=counts,
                )

                # Nobody got anything twice.
                assert converged({"one": 1})
                for handle in (one, two):
                    names = moneybird_names(handle)
                    doubled = {n: c for n, c in names.items() if n and c > 1}
                    assert doubled == {}
                taken = survivor.events("lease_acquired")
                assert {e["account"] for e in taken} >= {"one-moneybird"}
                # The survivor saw the process was gone (its liveness lock went with its
                # connection) rather than waiting for the leases to expire.
                assert owner in {e["owner"] for e in survivor.events("instance_gone")}

                survivor.signal(signal.SIGTERM)
                assert await survivor.wait(within=20) == 0
                assert await holders() == Counter()  # a clean stop releases its leases
    finally:
        await db.dispose()


Holders = Callable[[], Awaitable[Counter[str]]]


def _admin(process: Syncd) -> str:
    started = process.events("daemon_started")
    assert started and started[-1].get("admin"), "the instance logged no admin address"
    return str(started[-1]["admin"])


async def _webhook_via_the_other_instance(
    handle: SandboxHandle, *, holder: Syncd, other: Syncd
) -> None:
    moneybird = handle.emulators["moneybird"]
    target = moneybird.dump()["contacts"][0]
    renamed = "Handed Over B.V."
    moneybird.mutate("contacts", target["id"], {"company_name": renamed})
    now = int(time.time())
    body = json.dumps(
        {"entity_type": "Contact", "entity_id": str(target["id"]), "action": "contact_updated"}
    ).encode()
    headers = {
        "Moneybird-Signature": f"t={now},v1={sign_timestamped(HOOK_SECRET, now, body)}",
        "Content-Type": "application/json",
    }
    async with aiohttp.ClientSession() as http:
        sent = time.monotonic()
        async with http.post(
            f"{_admin(other)}/hooks/one-moneybird", data=body, headers=headers
        ) as answer:
            assert answer.status == 200
    simplicate = handle.emulators["simplicate"]
    await wait_for(
        lambda: any(o["name"] == renamed for o in simplicate.dump()["organization"]),
        within=20,
        what="the renamed contact in Simplicate",
    )
    latency = time.monotonic() - sent
    print(f"webhook at the non-holder to change in another vendor: {latency:.2f}s")
    assert latency < 10  # generous: the holder's watch looks every second
    assert [e["account"] for e in other.events("pull_handed_over")] == ["one-moneybird"]
    assert "one-moneybird" in {e["account"] for e in holder.events("handed_over_pull_started")}


async def _split(holders: Holders, pids: set[str]) -> bool:
    counts = await holders()
    return set(counts) == pids and sorted(counts.values()) == [3, 3]


async def _all_held_by(holders: Holders, pid: str) -> bool:
    counts = await holders()
    return dict(counts) == {pid: 6}
