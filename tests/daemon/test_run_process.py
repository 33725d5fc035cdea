"""`syncd run` as a real process against a served sandbox (SQLite).

One process goes through its whole life here, because starting one is the slow part:
READY=1 on a test NOTIFY_SOCKET, convergence of four vendors, /healthz, /readyz and
/metrics, a signed webhook, a refused second instance, SIGHUP reloads (a good and a bad
config), WATCHDOG=1 and STATUS=, and a SIGTERM drain that exits 0.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from syncd.daemon import Daemon, DaemonError
from syncd.sandbox.base import VENDORS, SandboxOptions
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import load_settings
from syncd.store.migrate import aupgrade
from syncd.webhooks import sign_timestamped
from tests.daemon.helpers import wait_for
from tests.daemon.process import (
    NotifySocket,
    Syncd,
    account_toml,
    config_toml,
    contact_count,
    free_port,
    kept,
    seeded_union,
    workspace_toml,
)

OPTIONS = SandboxOptions(seed=5, contacts=10, invoices=0, overlap=0.5, rate_limits=False)
HOOK_SECRET = "moneybird-hook-secret-for-tests"


def config_for(handle: SandboxHandle, db_url: str, port: int, vendors: tuple[str, ...]) -> str:
    blocks = [
        account_toml(
            handle,
            vendor,  # type: ignore[arg-type]
            f"it-{vendor}",
            webhook_secret=HOOK_SECRET if vendor == "moneybird" else None,
        )
        for vendor in vendors
    ]
    names = [f"it-{vendor}" for vendor in vendors]
    return config_toml(db_url, f"127.0.0.1:{port}", [workspace_toml("it", names, blocks)])


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


def moneybird_hook(contact_id: str, now: int) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(
        {"entity_type": "Contact", "entity_id": contact_id, "action": "contact_updated"}
    ).encode()
    signature = sign_timestamped(HOOK_SECRET, now, body)
    return body, {
        "Moneybird-Signature": f"t={now},v1={signature}",
        "Content-Type": "application/json",
    }


@pytest.fixture
async def notify() -> AsyncIterator[NotifySocket]:
    """A NOTIFY_SOCKET to listen on, closed whatever the test's outcome."""
    socket = NotifySocket()
    try:
        yield socket
    finally:
        socket.close()


async def test_syncd_run_lives_a_whole_life(tmp_path: Path, notify: NotifySocket) -> None:
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'syncd.db'}"
    await aupgrade(db_url)
    port = free_port()
    admin = f"http://127.0.0.1:{port}"
    config = tmp_path / "syncd.toml"
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}
    async with running_sandbox(OPTIONS) as sandbox:
        config.write_text(config_for(sandbox, db_url, port, VENDORS), encoding="utf-8")
        daemon = Syncd(config, tmp_path / "syncd.log", env)
        async with kept([daemon]):
            await daemon.start()

            # Up: READY=1 once the schema is checked and the scheduler runs.
            took = await wait_for(lambda: notify.seen("READY", "1") >= 1, what="READY=1")
            print(f"READY=1 {took:.2f}s after start")
            assert (await get(f"{admin}/healthz")) == (200, "ok\n")
            status, body = await get(f"{admin}/readyz")
            assert status == 200 and json.loads(body)["ready"] is True

            # Converges: every vendor ends up with every seeded contact, once.
            union = seeded_union(OPTIONS, VENDORS)
            emulators = sandbox.emulators
            took = await wait_for(
                lambda: all(contact_count(e) == union for e in emulators.values()),
                within=60,
                what=f"{union} contacts in every vendor",
                state=lambda: {v: contact_count(e) for v, e in emulators.items()},
            )
            print(f"converged {took:.2f}s after READY")

            # /metrics is Prometheus text with per-account request counts.
            status, text = await get(f"{admin}/metrics")
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(text)}
            requested = {s.labels["account"] for s in families["syncd_vendor_requests"].samples}
            assert requested == {f"it-{v}" for v in VENDORS}
            assert "syncd_outbox_depth" in families and "syncd_runs" in families

            # A second instance on the same SQLite file is refused, clearly (exit 2).
            with pytest.raises(DaemonError) as refused:
                await Daemon(load_settings(config), install_signals=False).run()
            assert refused.value.code == 2
            assert "another syncd instance is running on this database" in str(refused.value)

            # A signed webhook makes Moneybird's account pull now (its poll is 1h).
            moneybird = emulators["moneybird"]
            target = moneybird.dump()["contacts"][0]
            renamed = "Webhook Renamed B.V."
            moneybird.mutate("contacts", target["id"], {"company_name": renamed})
            body, headers = moneybird_hook(str(target["id"]), int(time.time()))
            async with aiohttp.ClientSession() as http:
                sent = time.monotonic()
                async with http.post(
                    f"{admin}/hooks/it-moneybird", data=body, headers=headers
                ) as answer:
                    assert answer.status == 200
                async with http.post(
                    f"{admin}/hooks/it-moneybird",
                    data=b"{}",
                    headers={"Moneybird-Signature": "t=1,v1=00"},
                ) as bad:
                    assert bad.status == 401
            simplicate = emulators["simplicate"]
            await wait_for(
                lambda: any(o["name"] == renamed for o in simplicate.dump()["organization"]),
                within=20,
                what="the renamed contact in Simplicate",
            )
            latency = time.monotonic() - sent
            print(f"webhook to change visible in another vendor: {latency:.2f}s")
            assert latency < 10  # generous: the pull starts at once; the rest is the sync

            # SIGHUP with a good config: an account leaves without a restart.
            three = tuple(v for v in VENDORS if v != "simplbooks")
            config.write_text(config_for(sandbox, db_url, port, three), encoding="utf-8")
            daemon.signal(signal.SIGHUP)
            await wait_for(lambda: daemon.events("config_reloaded"), what="config_reloaded")
            reloaded = daemon.events("config_reloaded")[0]
            assert reloaded["removed"] == ["it-simplbooks"]
            status, body = await get(f"{admin}/status")
            accounts = {a["name"]: a for w in json.loads(body)["workspaces"] for a in w["accounts"]}
            assert accounts["it-simplbooks"]["configured"] is False
            assert accounts["it-moneybird"]["configured"] is True
            assert notify.seen("RELOADING", "1") == 1

            # SIGHUP with a broken config: every problem logged, the old config runs on.
            config.write_text(
                config_for(sandbox, db_url, port, three).replace("poll_interval", "pol_interval"),
                encoding="utf-8",
            )
            daemon.signal(signal.SIGHUP)
            await wait_for(lambda: daemon.events("reload_refused"), what="reload_refused")
            await wait_for(lambda: len(daemon.events("config_problem")) >= 3, what="3 problems")
            problems = daemon.events("config_problem")
            assert len(problems) == 3 and all("pol_interval" in p["problem"] for p in problems)
            assert (await get(f"{admin}/healthz"))[0] == 200
            await wait_for(lambda: notify.seen("READY", "1") >= 3, what="READY=1 after each reload")

            assert notify.seen("WATCHDOG", "1") >= 1
            assert any("accounts held" in m.get("STATUS", "") for m in notify.drain())

            # SIGTERM: STOPPING=1, drain, exit 0.
            daemon.signal(signal.SIGTERM)
            assert await daemon.wait(within=20) == 0
            assert notify.seen("STOPPING", "1") == 1
            assert daemon.events("daemon_stopped")
