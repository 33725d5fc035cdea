"""`syncd run`: the long-running process around the scheduler.

Start-up, in order:

1. SQLite: take the instance lock next to the database file; a second instance on the
   same file stops here with the lock's message (exit 2).
2. Check the schema is at head (`syncd db upgrade` otherwise; exit 2).
3. Open the database, one HTTP session, the adapters and the engine; mirror the
   configured accounts into the store.
4. Decide which accounts this instance holds: all of them on SQLite; on PostgreSQL the
   `LeaseKeeper`'s share (heartbeat in ``instances``, leases renewed every ttl/3).
5. Serve the admin API (``[daemon] admin_listen``) and start the scheduler.
6. sd_notify ``READY=1`` with a ``STATUS=`` line; then ``STATUS=`` whenever the line
   changes, and ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` from the event loop while the
   scheduler runs.

Signals:

- SIGTERM / SIGINT: ``STOPPING=1``, nothing new starts, running jobs get
  ``[daemon] shutdown_grace`` to finish and are cancelled after it (their work resumes
  from its checkpoints next time); leases are released so other instances take over at
  once; exit 0. A second SIGTERM/SIGINT cancels the running jobs at once.
- SIGHUP: ``RELOADING=1``, re-read the config file. An invalid file (or one that changes
  what cannot change in a running process: the database URL) is refused: every problem
  is logged and the old config keeps running. Otherwise running jobs are let finish (up
  to ``shutdown_grace``), the adapters and the engine are rebuilt for the new accounts
  and flows, jobs are rescheduled, the admin API restarts if its settings or webhook
  secrets changed, and ``READY=1`` follows.

The lease ttl is ``[daemon] lease_ttl`` when the settings have it, else
``$SYNCD_LEASE_TTL`` (a duration such as ``"30s"``), else 30 s: an instance that dies
loses its accounts to the others within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import signal
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from syncd import logs
from syncd.admin import create_admin_app, is_loopback_host, start_admin, stop_admin
from syncd.app import (
    CallCounter,
    build_adapters,
    ensure_accounts,
    http_session,
    scoped_sessionmaker,
)
from syncd.errors import ConfigError, Problem, SyncdError
from syncd.metrics import Metrics
from syncd.notify import Notifier, watchdog_interval
from syncd.runner import Engine
from syncd.scheduler import LeaseKeeper, Scheduler, SingleInstance, account_refs
from syncd.settings import Settings, load_settings, parse_duration
from syncd.status import collect_status
from syncd.store import migrate
from syncd.store.db import create_engine, create_sessionmaker
from syncd.store.leases import InstanceLock, InstanceLocked, Liveness, instance_lock_for_url
from syncd.webhooks import DeliveryCache, webhook_accounts

__all__ = ["DEFAULT_LEASE_TTL", "Daemon", "DaemonError", "instance_owner", "lease_ttl"]

log = structlog.get_logger("syncd.daemon")

DEFAULT_LEASE_TTL = dt.timedelta(seconds=30)
STATUS_EVERY_SECONDS = 5.0
EXIT_OK = 0
EXIT_USAGE = 2


class DaemonError(SyncdError):
    """The daemon cannot start; ``code`` is the process exit status to use."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def instance_owner() -> str:
    """This process's lease owner name: host, pid and a random part (unique per process)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_ttl(settings: Settings, environ: Mapping[str, str] | None = None) -> dt.timedelta:
    """``[daemon] lease_ttl`` if the settings have it, else ``$SYNCD_LEASE_TTL``, else 30 s."""
    configured = settings.daemon.lease_ttl
    if configured is not None:
        return configured
    env = os.environ if environ is None else environ
    raw = env.get("SYNCD_LEASE_TTL", "").strip()
    if raw:
        try:
            value = parse_duration(raw)
        except ValueError as exc:
            raise DaemonError(f"SYNCD_LEASE_TTL={raw!r}: {exc}") from None
        if value > dt.timedelta(0):
            return value
        raise DaemonError(f"SYNCD_LEASE_TTL={raw!r}: must be positive")
    return DEFAULT_LEASE_TTL


def _is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _admin_view(settings: Settings) -> tuple[Any, ...]:
    """What the admin API is built from: a change means restarting it."""
    secrets = {
        name: (account.vendor, account.secret.get_secret_value())
        for name, account in webhook_accounts(settings).items()
    }
    token = settings.daemon.admin_token
    return (
        settings.daemon.admin_listen,
        None if token is None else token.get_secret_value(),
        sorted(secrets.items()),
    )


class Daemon:
    """One ``syncd run`` process (see the module docstring); ``await run()`` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        notifier: Notifier | None = None,
        environ: Mapping[str, str] | None = None,
        progress: Callable[[str, str], None] | None = None,
        install_signals: bool = True,
        instance_lock: InstanceLock | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.environ = dict(os.environ if environ is None else environ)
        self.notifier = notifier if notifier is not None else Notifier.from_environ(self.environ)
        self.progress = progress
        self.install_signals = install_signals
        self.metrics = Metrics()
        self.deliveries = DeliveryCache()
        self.owner = instance_owner()
        self.scheduler: Scheduler | None = None
        self.keeper: LeaseKeeper | None = None
        self.gate: SingleInstance | LeaseKeeper | None = None
        self.engine: Engine | None = None
        self.admin_address: tuple[str, int] | None = None
        self._db: AsyncEngine | None = None
        self._plain: async_sessionmaker[AsyncSession] | None = None
        self._scoped: async_sessionmaker[AsyncSession] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._counter: CallCounter | None = None
        self._admin: web.AppRunner | None = None
        self._admin_view: tuple[Any, ...] | None = None
        self._lock: InstanceLock | None = instance_lock
        self._head: str | None = None
        self._stop = asyncio.Event()
        self._stopping = False
        self._reloads: asyncio.Queue[None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_status: str | None = None
        self._reloading = False
        self.ready = asyncio.Event()

    # ----------------------------------------------------------------- signals

    def request_stop(self) -> None:
        """Begin draining (SIGTERM, SIGINT); a second request cancels running jobs at once."""
        if self._stopping:
            cancelled = self.scheduler.cancel_running() if self.scheduler is not None else 0
            log.warning("stop_forced", reason="second stop request", cancelled=cancelled)
            return
        self._stopping = True
        self._stop.set()

    def request_reload(self) -> None:
        """Re-read the config file (SIGHUP)."""
        self._reloads.put_nowait(None)

    def _signals(self, install: bool) -> None:
        if not self.install_signals:
            return
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self.request_reload,
        }
        for sig, handler in handlers.items():
            if install:
                loop.add_signal_handler(sig, handler)
            else:
                loop.remove_signal_handler(sig)

    # ----------------------------------------------------------------- run

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, drain, clean up; the exit status."""
        self._signals(True)
        try:
            await self._start()
            self.ready.set()
            await self._serve()
            return EXIT_OK
        finally:
            await self._cleanup()
            self._signals(False)

    async def _start(self) -> None:
        settings = self.settings
        url = settings.database.url
        if self._lock is None:
            try:
                self._lock = instance_lock_for_url(url)
            except InstanceLocked as exc:
                raise DaemonError(str(exc), EXIT_USAGE) from None
        await migrate.aensure_current(url)  # SchemaBehind: the CLI says what to run
        self._head = (await migrate.acurrent(url)).head
        self._db = create_engine(url)
        self._plain = create_sessionmaker(self._db)
        self._scoped = scoped_sessionmaker(self._db)
        accounts = [a for _, a in settings.iter_accounts()]
        self._counter = CallCounter(accounts, observer=self._observe_request)
        self._http = http_session(self._counter)
        engine = await self._build_engine(settings)
        refs = account_refs(engine)
        if _is_postgres(url):
            ttl = lease_ttl(settings, self.environ)
            self.keeper = LeaseKeeper(
                self._plain,
                owner=self.owner,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                ttl=ttl,
                liveness=Liveness(self._db, self.owner),
            )
            self.keeper.set_accounts(refs)
            self.gate = self.keeper
            await self.keeper.tick()
        else:
            self.gate = SingleInstance(refs)
        await self._start_admin()
        self.scheduler = Scheduler(engine, self._plain, gate=self.gate, metrics=self.metrics)
        await self.scheduler.start()
        summary = self.scheduler.summary()
        self.notifier.ready(summary)
        self._last_status = summary
        log.info(
            "daemon_started",
            owner=self.owner,
            accounts=len(refs),
            held=len([n for n in refs if self.gate.scope(n) is not None]),
            admin=self._admin_url(),
            database=_redacted(url),
            lease_ttl_seconds=None if self.keeper is None else self.keeper.ttl.total_seconds(),
        )

    async def _serve(self) -> None:
        self._tasks = [asyncio.create_task(self._status_loop(), name="syncd-status")]
        interval = watchdog_interval(self.environ)
        if interval is not None:
            self._tasks.append(asyncio.create_task(self._watchdog(interval), name="syncd-watchdog"))
        if self.keeper is not None:
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="syncd-leases"))
        reloads = asyncio.create_task(self._reload_loop(), name="syncd-reload")
        self._tasks.append(reloads)
        await self._stop.wait()
        # Drain: no reload may rebuild anything from here on.
        reloads.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reloads
        grace = self.settings.daemon.shutdown_grace.total_seconds()
        self.notifier.stopping(f"draining (up to {grace:g}s)")
        log.info("daemon_stopping", grace_seconds=grace)
        if self.scheduler is not None:
            await self.scheduler.stop(grace)
        log.info("daemon_stopped")

    async def _cleanup(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await self.scheduler.stop(0)
        if self.keeper is not None:
            await self.keeper.close()
        if self._admin is not None:
            with contextlib.suppress(Exception):
                await stop_admin(self._admin)
            self._admin = None
        if self._http is not None:
            await self._http.close()
        if self._db is not None:
            await self._db.dispose()
        if self._lock is not None:
            self._lock.release()
        self.notifier.close()

    # ----------------------------------------------------------------- wiring

    def _observe_request(
        self, account: str, vendor: str, status: int | None, elapsed: float
    ) -> None:
        self.metrics.request(account, vendor, status, elapsed=elapsed)

    async def _build_engine(self, settings: Settings) -> Engine:
        assert self._plain is not None and self._scoped is not None and self._http is not None
        assert self._counter is not None
        ids = await ensure_accounts(self._plain, settings)
        adapters = build_adapters(settings, self._http, self._plain, ids)
        engine = Engine(settings, self._scoped, adapters, call_count=self._counter.count)
        engine.progress = self.progress
        await engine.prepare()
        self.engine = engine
        return engine

    def _admin_url(self) -> str | None:
        if self.admin_address is None:
            return None
        host, port = self.admin_address
        return f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"

    async def _start_admin(self) -> None:
        settings = self.settings
        app = create_admin_app(
            status_provider=self._status,
            metrics=self.metrics,
            readiness=self._readiness,
            on_webhook=self._on_webhook,
            webhook_secrets=webhook_accounts(settings),
            admin_token=settings.daemon.admin_token,
            loopback_only=is_loopback_host(settings.daemon.admin_host),
            deliveries=self.deliveries,
        )
        listen = settings.daemon.admin_listen
        try:
            runner = await start_admin(app, listen)
        except OSError as exc:
            raise DaemonError(
                f"cannot serve the admin API on {listen}: {exc.strerror or exc}"
                " (set [daemon] admin_listen to a free address)"
            ) from None
        self._admin = runner
        self._admin_view = _admin_view(settings)
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                self.admin_address = (str(address[0]), int(address[1]))
                break

    async def _status(self) -> Mapping[str, Any]:
        assert self._plain is not None
        return await collect_status(self._plain, self.settings, now=utcnow())

    async def _readiness(self) -> tuple[bool, list[str]]:
        reasons: list[str] = []
        if self._stopping:
            reasons.append("draining: shutting down")
        if self.scheduler is None or not self.scheduler.running:
            reasons.append("scheduler not running")
        try:
            assert self._plain is not None
            async with self._plain() as session:
                version = await session.scalar(text("SELECT version_num FROM alembic_version"))
            if version != self._head:
                reasons.append(f"schema at {version}, not at head {self._head}")
        except Exception as exc:
            reasons.append(f"database unreachable ({type(exc).__name__})")
        return not reasons, reasons

    async def _on_webhook(self, account: str) -> None:
        assert self.scheduler is not None
        # Pulled here, or (another instance holds the account, or we are reloading or
        # draining) recorded for the holder's outbox watch. A database error raises, and
        # the admin API answers 500 so that the vendor delivers again.
        await self.scheduler.request_pull(account)

    # ----------------------------------------------------------------- loops

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_SECONDS)
            if self.scheduler is None:
                continue
            line = self.scheduler.summary()
            if line != self._last_status:
                self.notifier.status(line)
                self._last_status = line

    async def _watchdog(self, interval: float) -> None:
        # Runs on the event loop: a blocked loop stops the pings and systemd restarts us.
        while True:
            busy = self._reloading or self._stopping  # the scheduler is held back meanwhile
            if self.scheduler is not None and (self.scheduler.running or busy):
                self.notifier.watchdog()
            await asyncio.sleep(interval)

    async def _lease_loop(self) -> None:
        assert self.keeper is not None and self.scheduler is not None
        failing = False
        while True:
            await asyncio.sleep(self.keeper.interval)
            try:
                changes = await self.keeper.tick(busy=self.scheduler.busy)
            except Exception as exc:
                if not failing:
                    log.warning("lease_tick_failed", error=f"{type(exc).__name__}: {exc}")
                failing = True
                continue
            if failing:
                log.info("lease_tick_recovered")
                failing = False
            for name in changes.gained:
                self.scheduler.trigger(name, "pull")
                self.scheduler.trigger(name, "push")

    async def _reload_loop(self) -> None:
        while True:
            await self._reloads.get()
            while not self._reloads.empty():  # several SIGHUPs at once: one reload
                self._reloads.get_nowait()
            self._reloading = True
            try:
                await self.reload()
            except Exception:
                log.exception("reload_failed")
                self.notifier.ready(f"reload failed; {self._summary()}")
            finally:
                self._reloading = False

    def _summary(self) -> str:
        return self.scheduler.summary() if self.scheduler is not None else "starting"

    # ----------------------------------------------------------------- reload

    def _refuse(self, problems: list[Problem]) -> None:
        path = str(self.config_path) if self.config_path is not None else "config"
        # Every problem first, then the verdict: whoever waits for the verdict has them all.
        for problem in problems:
            log.error("config_problem", config=path, problem=str(problem))
        log.error("reload_refused", config=path, problems=len(problems), keeping="old config")
        self.notifier.ready(f"reload refused ({len(problems)} problem(s)); {self._summary()}")

    async def reload(self) -> bool:
        """Re-read the config file and apply it; False (old config kept) if it is refused."""
        self.notifier.reloading("reloading the configuration")
        if self.config_path is None:
            self._refuse([Problem("", "no config file to re-read")])
            return False
        try:
            new = load_settings(self.config_path, environ=self.environ)
        except ConfigError as exc:
            self._refuse(list(exc.problems))
            return False
        logs.add_secrets(new.secret_values())
        old = self.settings
        if new.database.url != old.database.url:
            self._refuse(
                [Problem("database.url", "cannot change while syncd runs; restart syncd to use it")]
            )
            return False
        if new == old:
            log.info("config_unchanged")
            self.notifier.ready(self._summary())
            return True
        before = {a.name: a for _, a in old.iter_accounts()}
        after = {a.name: a for _, a in new.iter_accounts()}
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        changed = sorted(n for n in set(before) & set(after) if before[n] != after[n])
        flows_changed = [w.flows for w in old.workspaces] != [w.flows for w in new.workspaces]

        assert self.scheduler is not None and self._counter is not None
        grace = new.daemon.shutdown_grace.total_seconds()
        await self.scheduler.quiesce(grace)
        try:
            try:
                engine = await self._build_engine(new)
            except ConfigError as exc:
                self._refuse(list(exc.problems))
                return False
            self.settings = new
            self._counter.set_accounts(list(after.values()))
            refs = account_refs(engine)
            if self.keeper is not None:
                self.keeper.set_accounts(refs)
            else:
                self.gate = SingleInstance(refs)
                self.scheduler.gate = self.gate
            self.scheduler.replace_engine(engine)
        finally:
            self.scheduler.resume()
        if (old.daemon.log_level, old.daemon.log_format) != (
            new.daemon.log_level,
            new.daemon.log_format,
        ):
            logs.configure_logging(
                log_format=new.daemon.log_format,
                log_level=new.daemon.log_level,
                secrets=new.secret_values(),
            )
        if _admin_view(new) != self._admin_view:
            await self._restart_admin()
        log.info(
            "config_reloaded",
            added=added,
            removed=removed,
            changed=changed,
            flows_changed=flows_changed,
        )
        if self.keeper is not None:
            # Take a share of new accounts (and hand back removed ones) now, not in ttl/3.
            with contextlib.suppress(Exception):
                await self.keeper.tick(busy=self.scheduler.busy)
        self.notifier.ready(f"reloaded; {self._summary()}")
        return True

    async def _restart_admin(self) -> None:
        old = self._admin
        self._admin = None
        if old is not None:
            await stop_admin(old)
        try:
            await self._start_admin()
        except DaemonError as exc:
            log.error("admin_restart_failed", error=str(exc))


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
