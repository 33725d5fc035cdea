"""No secret in any log line or database row after a full ``syncd once``.

The run is the real thing: ``syncd db upgrade`` and ``syncd once`` through the CLI, JSON
logs at DEBUG (every SQL statement and its parameters included), against the sandbox
serving all four vendors with credentials of its own, with 5 % injected faults (the error paths are where
secrets leak), on a config shaped like ``config/demo.toml`` whose secrets arrive the ways the config allows: ``${ENV}``,
``*_file``, and the database URL's password (PostgreSQL). Afterwards every value of
``settings.secret_values()`` is searched for in every output line, in every column of
every table, and (SQLite) in the raw bytes of the database files.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from syncd.cli import main
from syncd.logs import reset_logging
from syncd.sandbox.base import FAULT_KINDS, SandboxOptions
from syncd.sandbox.testing import SandboxHandle, running_sandbox
from syncd.settings import load_settings
from syncd.store.db import Base, create_engine

# Distinct, long values: a hit can only be a leak, never a coincidence.
VENDOR_CREDENTIALS = {
    "simplicate": {
        "key": "sk-simplicate-key-9f2c71e04b8d",
        "secret": "sk-simplicate-secret-3a6d0e95c7f1",
    },
    "moneybird": {"token": "sk-moneybird-token-c4e8a2196d0b"},
    "perfex": {"api_key": "sk-perfex-apikey-71b3f9d5e2a0"},
    "simplbooks": {"token": "sk-simplbooks-token-5e0a8c3b7d94"},
}
ENV = {
    "REL_SIMPLICATE_KEY": VENDOR_CREDENTIALS["simplicate"]["key"],
    "REL_SIMPLICATE_SECRET": VENDOR_CREDENTIALS["simplicate"]["secret"],
    "REL_PERFEX_KEY": VENDOR_CREDENTIALS["perfex"]["api_key"],
    "REL_SIMPLBOOKS_TOKEN": VENDOR_CREDENTIALS["simplbooks"]["token"],
    "REL_HOOK_SECRET": "whsec-shared-8d1f4a0c6e2b9357",
    "REL_ADMIN_TOKEN": "adm-token-2c9e5b1f7a3d0846",
}
DB_PASSWORD = "dbpw-0e7b3c9a5f1d2864"


class ThreadedSandbox:
    """The sandbox on its own event loop in a thread, so the CLI can run asyncio itself."""

    def __init__(self, options: SandboxOptions) -> None:
        self.options = options
        self.handle: SandboxHandle | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with running_sandbox(self.options) as handle:
            self.handle = handle
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> SandboxHandle:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self.handle is None:
            raise RuntimeError(f"the sandbox did not start: {self._error!r}")
        return self.handle

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


def write_config(path: Path, handle: SandboxHandle, db_url: str, token_file: Path) -> None:
    urls = handle.base_urls
    path.write_text(
        f"""
[database]
url = "{db_url}"

[daemon]
admin_listen = "127.0.0.1:0"
log_format = "json"
log_level = "debug"
admin_token = "${{REL_ADMIN_TOKEN}}"

[[workspace]]
name = "demo"

  [[workspace.account]]
  name = "demo-simplicate"
  vendor = "simplicate"
  base_url = "{urls["simplicate"]}"
  credentials = {{ key = "${{REL_SIMPLICATE_KEY}}", secret = "${{REL_SIMPLICATE_SECRET}}" }}
  webhook_secret = "${{REL_HOOK_SECRET}}"
  rate_limit = [{{ requests = 60, per = "1s" }}]
  allow_insecure_http = true

  [[workspace.account]]
  name = "demo-perfex"
  vendor = "perfex"
  base_url = "{urls["perfex"]}"
  credentials = {{ api_key = "${{REL_PERFEX_KEY}}" }}
  rate_limit = [{{ requests = 1000, per = "1m" }}]
  allow_insecure_http = true

  [[workspace.account]]
  name = "demo-moneybird"
  vendor = "moneybird"
  base_url = "{urls["moneybird"]}"
  credentials = {{ token_file = "{token_file}" }}
  webhook_secret = "${{REL_HOOK_SECRET}}"
  rate_limit = [{{ requests = 150, per = "5s" }}]
  allow_insecure_http = true

  [[workspace.account]]
  name = "demo-simplbooks"
  vendor = "simplbooks"
  base_url = "{urls["simplbooks"]}"
  credentials = {{ token = "${{REL_SIMPLBOOKS_TOKEN}}" }}
  rate_limit = [{{ requests = 60, per = "1s" }}, {{ requests = 10000, per = "24m" }}]
  allow_insecure_http = true

  [[workspace.flow]]
  resource = "contacts"
  accounts = ["demo-simplicate", "demo-perfex", "demo-moneybird", "demo-simplbooks"]
  conflict = "newest"
  delete = "archive"

  [[workspace.flow]]
  resource = "invoices"
  accounts = ["demo-simplicate", "demo-moneybird"]
  conflict = "newest"
  owner = {{ lines = "demo-simplicate", status = "demo-moneybird", payments = "demo-moneybird" }}

  [[workspace.flow]]
  resource = "invoices"
  accounts = ["demo-perfex", "demo-simplbooks"]
  conflict = "newest"
  owner = {{ lines = "demo-perfex", status = "demo-simplbooks", payments = "demo-simplbooks" }}
""",
        encoding="utf-8",
    )


async def every_stored_value(db_url: str) -> list[tuple[str, str, str]]:
    """(table, column, text) for every non-null value of every table."""
    engine = create_engine(db_url)
    found: list[tuple[str, str, str]] = []
    try:
        async with engine.connect() as conn:
            for table in Base.metadata.sorted_tables:
                for row in (await conn.execute(select(table))).mappings():
                    for column, value in row.items():
                        if value is not None:
                            found.append((table.name, column, str(value)))
    finally:
        await engine.dispose()
    return found


@pytest.fixture
def database(db_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty database; on PostgreSQL its URL carries a password (trust auth ignores it)."""
    if db_backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'syncd.db'}"
        return
    url = make_url(request.getfixturevalue("postgres_url"))
    yield url.set(password=DB_PASSWORD).render_as_string(hide_password=False)


def test_no_secret_in_any_log_line_or_database_row(
    database: str, db_backend: str, tmp_path: Path
) -> None:
    token_file = tmp_path / "moneybird-token"
    token_file.write_text(VENDOR_CREDENTIALS["moneybird"]["token"] + "\n", encoding="utf-8")
    token_file.chmod(0o600)
    options = SandboxOptions(
        seed=5,
        contacts=10,
        invoices=6,
        overlap=0.3,
        rate_limits=False,
        # Error paths are where secrets leak: retries, 429s, lost responses, HTML pages.
        fault_rate=0.05,
        fault_kinds=tuple(k for k in FAULT_KINDS if k != "slow"),
        credentials={vendor: dict(values) for vendor, values in VENDOR_CREDENTIALS.items()},
    )
    config = tmp_path / "syncd.toml"
    runner = CliRunner()
    try:
        with ThreadedSandbox(options) as handle:
            write_config(config, handle, database, token_file)
            upgraded = runner.invoke(main, ["--config", str(config), "db", "upgrade"], env=ENV)
            assert upgraded.exit_code == 0, upgraded.output
            result = runner.invoke(main, ["--config", str(config), "once"], env=ENV)
            counters = {v: e.counters.as_json() for v, e in handle.emulators.items()}
    finally:
        reset_logging()
    assert result.exit_code in (0, 1), result.output  # 1: a write failed under faults
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output

    settings = load_settings(config, environ=ENV)
    secrets = settings.secret_values()
    expected = {v for values in VENDOR_CREDENTIALS.values() for v in values.values()}
    expected |= {ENV["REL_HOOK_SECRET"], ENV["REL_ADMIN_TOKEN"]}
    if db_backend == "postgres":
        expected.add(DB_PASSWORD)
    assert expected <= secrets, "settings.secret_values() misses a configured secret"

    # The secrets were in use: every vendor was called, none refused our credentials.
    for vendor, seen in counters.items():
        assert seen["requests_total"] > 0, f"{vendor} was never called"
        assert seen["auth_failures"] == 0, f"{vendor} refused the credentials"

    output = result.output + (upgraded.output or "")
    log_lines = [line for line in output.splitlines() if line.startswith("{")]
    assert len(log_lines) > 20, "the run logged too little to prove anything:\n" + output[-3000:]
    # At DEBUG every SQL statement and its parameters are logged, on either backend (the
    # stored values pass through these lines on their way to the database).
    loggers = {json.loads(line).get("logger") for line in log_lines}
    assert "sqlalchemy.engine.Engine" in loggers, f"no SQL statement logged; loggers: {loggers}"
    assert any("retry" in line for line in log_lines), "no error path was logged"
    leaks = [(s, line) for line in output.splitlines() for s in secrets if s in line]
    assert not leaks, f"secrets in the output: {leaks[:3]}"

    stored = asyncio.run(every_stored_value(database))
    assert len(stored) > 1000, "the run stored too little to prove anything"
    leaked_rows = [(table, column) for table, column, text in stored for s in secrets if s in text]
    assert not leaked_rows, f"secrets stored in {sorted(set(leaked_rows))}"

    if db_backend == "sqlite":
        path = Path(make_url(database).database or "")
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                raw = part.read_bytes()
                assert not [s for s in secrets if s.encode() in raw], f"a secret is in {part}"
