"""Database outage: PostgreSQL becomes unreachable under a running `syncd run`, then
comes back; the daemon stays up, says it is not ready meanwhile, and resumes without loss.

The daemon reaches PostgreSQL through `PgProxy`, a small TCP forwarder in this test. The
outage is the proxy's doing: it drops every proxied connection and refuses new ones
(its listening socket is closed, so a connect gets ECONNREFUSED), for ~10 s here and
30 s with ``SYNCD_LONG_RELIABILITY=1``; the PostgreSQL server itself is never touched.
The lease ttl is cut to a few seconds so that the outage also outlasts the daemon's
leases: afterwards it renews them (the fencing tokens are unchanged: nobody else held
the accounts meanwhile) and carries on.

Meanwhile users edit a contact in every vendor and add a company in every vendor (each
change followed by a signed webhook). Checked: the process never exits and /healthz
answers throughout; /readyz answers 503 "not ready" during the outage, and 200 again
after it; then every edit and every new company reaches every vendor, and no vendor
holds a contact twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from syncd.sandbox.base import SandboxOptions
from syncd.store.db import create_engine
from syncd.store.migrate import aupgrade
from tests.daemon.helpers import running_scheduler
from tests.daemon.process import free_port
from tests.engine.helpers import org, vendor
from tests.reliability.procs import Rig, assert_nothing_dead, converge, long_run, rig, wait_until

LONG = long_run()
OUTAGE_SECONDS = 30.0 if LONG else 9.0
LEASE_TTL = "5s"
OPTIONS = SandboxOptions(seed=23, contacts=20, invoices=0, overlap=0.5, rate_limits=False)


class PgProxy:
    """Forward 127.0.0.1:<port> to PostgreSQL; `outage` cuts it, `restore` reconnects it.

    It runs on its own event loop in a thread: the test's loop also serves the sandbox,
    and every database round trip of the daemon passes through here twice.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()
        self.dropped = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="pg-proxy", daemon=True)

    async def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def start(self) -> None:
        self.thread.start()
        await self._call(self._listen())

    async def outage(self) -> None:
        """Refuse new connections (the port is closed) and drop every open one."""
        await self._call(self._cut())

    async def restore(self) -> None:
        await self._call(self._listen())

    async def close(self) -> None:
        await self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    # --- on the proxy's own loop

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        self.dropped += len(self.open) // 2
        for w in list(self.open):
            w.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self.open |= pair
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.open -= pair
            for w in pair:
                w.transport.abort()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    sink.transport.abort()


async def test_syncd_run_rides_out_a_database_outage(postgres_url: str, tmp_path: Path) -> None:
    await aupgrade(postgres_url)
    real = make_url(postgres_url)
    proxy = PgProxy(real.host or "127.0.0.1", real.port or 5432)
    await proxy.start()
    proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        async with rig(OPTIONS, tmp_path, proxied, env={"SYNCD_LEASE_TTL": LEASE_TTL}) as r:
            began = time.monotonic()
            daemon = await r.start()
            took = await converge(r, daemon, within=120, what="first convergence")
            print(f"\nconverged {time.monotonic() - began:.1f}s after start ({took:.1f}s wait)")
            status, body = await r.get("/readyz")
            assert status == 200, body

            # The outage, with users at work in every vendor.
            await proxy.outage()
            cut = time.monotonic()
            for i, vendor in enumerate(r.vendors):
                r.create_contact(vendor, i)
            r.edit_round(1)
            hooks = [await r.notify(vendor) for vendor in r.vendors]
            ready: list[tuple[float, int]] = []  # (seconds into the outage, /readyz status)
            health: list[int] = []
            while time.monotonic() - cut < OUTAGE_SECONDS:
                assert daemon.running(), f"syncd exited during the outage:\n{daemon.text()[-4000:]}"
                status, body = await r.get("/readyz", seconds=10)
                ready.append((time.monotonic() - cut, status))
                health.append((await r.get("/healthz"))[0])
                await asyncio.sleep(0.5)
            not_ready = [s for _, s in ready if s == 503]
            first_503 = next((t for t, s in ready if s == 503), None)

            # Back.
            await proxy.restore()
            back = time.monotonic()
            to_ready = await wait_until(
                lambda: _ready(r), within=120, what="/readyz 200 after the outage"
            )
            resumed = await converge(r, daemon, within=120, what="the outage's edits everywhere")
            resume_total = time.monotonic() - back

            names = (
                "job_failed",
                "lease_tick_failed",
                "lease_tick_recovered",
                "outbox_watch_failed",
                "outbox_watch_recovered",
                "vendor_unavailable",
                "vendor_recovered",
            )
            seen = {n: len(daemon.events(n)) for n in names}
            statuses = sorted({s for _, s in ready})
            print(
                f"outage {OUTAGE_SECONDS:.0f}s ({proxy.dropped} connections dropped): "
                f"webhooks accepted {sum(hooks)}/{len(hooks)}, "
                f"/readyz polled {len(ready)}x (statuses {statuses}, first 503 after "
                f"{first_503 if first_503 is None else f'{first_503:.1f}s'}), "
                f"/healthz {sorted(set(health))}",
                f"ready again {to_ready:.1f}s after the database came back; every edit and "
                f"new company everywhere {resumed:.1f}s later ({resume_total:.1f}s in all)",
                f"log events: {seen}",
                sep="\n",
            )
            assert daemon.running()
            # Every failed run is syncd's to handle: none escapes into APScheduler.
            escaped = [
                e["event"]
                for e in daemon.events()
                if e.get("logger", "").startswith("apscheduler") and e.get("level") == "error"
            ]
            assert escaped == [], escaped
            assert health and set(health) == {200}, health
            assert not_ready and first_503 is not None, f"/readyz never said 503: {ready}"
            assert all(s == 503 for t, s in ready if t >= first_503), ready
            assert r.union_problems() == []
            assert r.missing_edits() == []
            await assert_nothing_dead(r)
    finally:
        await proxy.close()


async def _ready(r: Rig) -> bool:
    status, _ = await r.get("/readyz")
    return status == 200


class _Unreachable:
    """A session factory whose sessions cannot connect: the database is down."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Unreachable:
        return self

    def begin(self) -> _Unreachable:
        return self

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_run_that_cannot_reach_the_database_is_handled_by_the_scheduler(
    sqlite_db: str,
) -> None:
    db = create_engine(sqlite_db)
    vendors = {name: vendor(name) for name in ("a", "b")}
    vendors["a"].human_create("contacts", org("Acme"))
    try:
        quiet_intervals = {name: (3600.0, 86400.0) for name in vendors}
        async with running_scheduler(db, vendors, intervals=quiet_intervals) as h:
            scheduler, engine = h.scheduler, h.engine
            await wait_until(
                lambda: all(s.pulled_once for s in scheduler.accounts.values()),
                within=30,
                what="the first pulls",
            )
            working = (scheduler.sessionmaker, engine.sessionmaker)
            down: Any = _Unreachable()
            scheduler.sessionmaker, engine.sessionmaker = down, down
            try:
                await scheduler._run("a", "pull")  # the APScheduler job function
                assert scheduler.accounts["a"].healthy is False
            finally:
                scheduler.sessionmaker, engine.sessionmaker = working
    finally:
        await db.dispose()
