"""`syncd demo`: the four vendor sandboxes and syncd in one process, on a SQLite file.

The demo config (``config/demo.toml``) points every account at one sandbox address
(127.0.0.1:8900) with budgets sixty times the real ones. ``syncd demo``:

1. takes the SQLite instance lock and starts from a fresh demo database: the sandbox's
   data is generated anew on every run, so records linked by an earlier run are gone;
2. serves the sandbox there in-process: seeded, overlapping data in all four vendors,
   rate limits scaled by 60 (a minute's budget per second);
3. migrates the database (``syncd db upgrade``);
4. either runs the daemon (`syncd.daemon.Daemon`, with its admin API) and shows what
   every account is doing until Ctrl-C, or, with ``--once``, runs the engine to
   convergence and returns the per-account totals for the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from syncd.app import open_runtime
from syncd.daemon import Daemon
from syncd.errors import SyncdError
from syncd.runner import PassStats
from syncd.sandbox.base import SandboxOptions
from syncd.sandbox.server import build_sandbox, start_site
from syncd.settings import Settings
from syncd.store import migrate
from syncd.store.leases import InstanceLock, InstanceLocked, instance_lock_for_url

__all__ = [
    "DemoError",
    "demo_daemon",
    "demo_once",
    "demo_sandbox_options",
    "find_demo_config",
    "fresh_database",
    "sandbox_address",
]

DEMO_CONFIG = Path("config") / "demo.toml"
Progress = Callable[[str, str], None]


class DemoError(SyncdError):
    """The demo cannot run (no demo config, port in use, another demo running...)."""


def find_demo_config(cwd: Path | None = None) -> Path:
    """``config/demo.toml`` under the current directory, else next to the syncd sources."""
    here = Path.cwd() if cwd is None else cwd
    for candidate in (here / DEMO_CONFIG, Path(__file__).resolve().parent.parent / DEMO_CONFIG):
        if candidate.is_file():
            return candidate
    raise DemoError(
        f"no {DEMO_CONFIG} here or next to syncd's sources; run the demo from the syncd "
        "source directory, or pass --config with a demo configuration"
    )


def demo_sandbox_options(seed: int = 1, **overrides: Any) -> SandboxOptions:
    """The demo world: seeded, a third of the contacts in several vendors, limits x60."""
    values: dict[str, Any] = {
        "seed": seed,
        "contacts": 40,
        "invoices": 20,
        "overlap": 0.3,
        "rate_limits": True,
        "rate_scale": 60.0,
    }
    values.update(overrides)
    return SandboxOptions(**values)


def sandbox_address(settings: Settings) -> tuple[str, int]:
    """Where the sandbox must listen: the one host:port every demo account points at."""
    found: set[tuple[str, int]] = set()
    for _, account in settings.iter_accounts():
        parts = urlsplit(account.base_url)
        if parts.hostname is None:
            raise DemoError(f"account {account.name}: base_url has no host")
        found.add((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)))
    if len(found) != 1:
        where = ", ".join(f"{h}:{p}" for h, p in sorted(found)) or "nowhere"
        raise DemoError(
            f"the demo serves one sandbox, but the accounts point at {where}; "
            "use config/demo.toml (every account on 127.0.0.1:8900)"
        )
    host, port = found.pop()
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise DemoError(f"the demo sandbox listens on this machine only, not on {host}")
    return host, port


def _sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        raise DemoError("the demo runs on a SQLite file ([database] url = sqlite+aiosqlite:///...)")
    return Path(database)


def fresh_database(url: str) -> Path:
    """Delete the demo's SQLite file (and its WAL): every demo run starts from scratch."""
    path = _sqlite_path(url)
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    return path


def _lock(url: str) -> InstanceLock | None:
    _sqlite_path(url)
    try:
        return instance_lock_for_url(url)
    except InstanceLocked as exc:
        raise DemoError(str(exc)) from None


@contextlib.asynccontextmanager
async def _sandbox(settings: Settings, options: SandboxOptions) -> AsyncIterator[str]:
    host, port = sandbox_address(settings)
    sandbox = build_sandbox(options)
    try:
        runner, bound = await start_site(sandbox, host, port)
    except OSError as exc:
        raise DemoError(
            f"cannot serve the sandbox on {host}:{port}: {exc.strerror or exc} "
            "(is another demo or `syncd sandbox` running?)"
        ) from None
    try:
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()


async def demo_once(
    settings: Settings,
    *,
    options: SandboxOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, PassStats]:
    """Sandbox + one `Engine.once` to convergence; the totals per account."""
    url = settings.database.url
    lock = _lock(url)
    try:
        fresh_database(url)
        async with _sandbox(settings, options or demo_sandbox_options()):
            await migrate.aupgrade(url)
            async with open_runtime(settings) as runtime:
                runtime.engine.progress = progress
                return await runtime.engine.once()
    finally:
        if lock is not None:
            lock.release()


async def demo_daemon(
    settings: Settings,
    *,
    config_path: Path | None,
    options: SandboxOptions | None = None,
    out: TextIO | None = None,
    live: bool | None = None,
    on_tty_start: Callable[[TextIO], None] | None = None,
    on_daemon: Callable[[Daemon], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Sandbox + the daemon until Ctrl-C/SIGTERM, showing each account; the exit status.

    ``live``: a table redrawn in place (default: when ``out`` is a terminal); otherwise a
    line per account whenever its numbers change. ``on_tty_start(stream)`` is called once
    the table is up, with the stream log lines must go to so they print above it.
    ``on_daemon`` receives the daemon before it starts (tests stop it with it).
    """
    stream = out if out is not None else sys.stderr
    url = settings.database.url
    lock = _lock(url)
    try:
        path = fresh_database(url)
        async with _sandbox(settings, options or demo_sandbox_options()) as sandbox_url:
            await migrate.aupgrade(url)
            activity: dict[str, str] = {}
            daemon = Daemon(
                settings,
                config_path=config_path,
                instance_lock=lock,
                progress=lambda account, what: activity.__setitem__(account, what),
                install_signals=install_signals,
            )
            lock = None  # the daemon releases it
            if on_daemon is not None:
                on_daemon(daemon)
            header = (
                f"syncd demo: sandbox {sandbox_url}, database {path}, "
                f"admin http://{settings.daemon.admin_listen} (Ctrl-C stops)"
            )
            tty = stream.isatty() if live is None else live
            with contextlib.ExitStack() as stack:
                if tty:
                    view = stack.enter_context(
                        _LiveView(daemon, activity, header, stream, on_tty_start)
                    )
                    watcher = asyncio.create_task(view.run())
                else:
                    watcher = asyncio.create_task(_plain_view(daemon, activity, header, stream))
                try:
                    return await daemon.run()
                finally:
                    watcher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await watcher
    finally:
        if lock is not None:
            lock.release()


def _rows(daemon: Daemon, activity: Mapping[str, str]) -> list[tuple[str, ...]]:
    scheduler = daemon.scheduler
    if scheduler is None:
        return []
    rows: list[tuple[str, ...]] = []
    for name, state in scheduler.accounts.items():
        totals = state.totals or PassStats(account=name)
        if not state.healthy:
            doing = f"unavailable: {state.problem or '?'}"
        elif state.running:
            doing = activity.get(name) or ", ".join(sorted(state.running))
        else:
            doing = "idle"
        rows.append(
            (
                name,
                str(totals.pulled),
                str(totals.matched),
                str(totals.new_entities),
                str(totals.created),
                str(totals.updated),
                str(totals.conflicts),
                doing[:70],
            )
        )
    return rows


# pulled: records read; matched: linked to a record another account has; new: records
# only this account had; created/updated: written to this account.
_COLUMNS = ("account", "pulled", "matched", "new", "created", "updated", "conflicts", "now")
_NUMBERS = slice(1, 7)


class _LiveView:
    """A rich table of the accounts, redrawn twice a second (terminals only)."""

    def __init__(
        self,
        daemon: Daemon,
        activity: Mapping[str, str],
        header: str,
        stream: TextIO,
        on_start: Callable[[TextIO], None] | None,
    ) -> None:
        from rich.console import Console
        from rich.live import Live

        self.daemon = daemon
        self.activity = activity
        self.header = header
        self.console = Console(file=stream)
        self.live = Live(console=self.console, refresh_per_second=4, redirect_stderr=True)
        self.on_start = on_start

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(title=self.header, title_justify="left")
        for column in _COLUMNS:
            table.add_column(column, justify="left" if column in ("account", "now") else "right")
        for row in _rows(self.daemon, self.activity):
            table.add_row(*row)
        return table

    def __enter__(self) -> _LiveView:
        self.live.__enter__()
        if self.on_start is not None:
            self.on_start(sys.stderr)  # rich's proxy now: log lines print above the table
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.update(self._table())
        self.live.__exit__(None, None, None)

    async def run(self) -> None:
        while True:
            self.live.update(self._table())
            await asyncio.sleep(0.5)


async def _plain_view(
    daemon: Daemon, activity: Mapping[str, str], header: str, stream: TextIO
) -> None:
    """One line per account whenever its numbers change (not a terminal)."""
    print(header, file=stream, flush=True)
    shown: dict[str, tuple[str, ...]] = {}
    while True:
        await asyncio.sleep(2.0)
        for row in _rows(daemon, activity):
            numbers = row[_NUMBERS]
            if shown.get(row[0]) == numbers:
                continue
            shown[row[0]] = numbers
            pairs = ", ".join(f"{c} {v}" for c, v in zip(_COLUMNS[_NUMBERS], numbers, strict=True))
            print(f"{row[0]}: {pairs}", file=stream, flush=True)
