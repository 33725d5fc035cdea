"""Schema migrations: upgrade, downgrade, status, drift check and the startup schema gate.

Each operation exists twice. The ``a``-prefixed coroutines (``aupgrade``, ``adowngrade``,
``acurrent``, ``acheck_drift``, ``aensure_current``) work inside a running event loop: they
hand alembic a connection through ``Config.attributes["connection"]`` and run it with
``AsyncConnection.run_sync``. The plain functions wrap them with ``asyncio.run`` for
synchronous callers (the CLI) and raise ``RuntimeError`` if called from a running loop.

The alembic configuration is built here; no ``alembic.ini`` is read at runtime.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.resources
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Index, Table, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import Constraint, MetaData, SchemaItem
from sqlalchemy.types import TypeDecorator

import syncd.store.tables  # noqa: F401  (registers every table on Base.metadata)
from syncd.errors import Fatal, SchemaBehind
from syncd.store.db import Base, create_engine

__all__ = [
    "SchemaStatus",
    "acheck_drift",
    "acurrent",
    "adowngrade",
    "aensure_current",
    "alembic_config",
    "aupgrade",
    "check_drift",
    "current",
    "downgrade",
    "ensure_current",
    "migration_context_options",
    "script_location",
    "upgrade",
]

_T = TypeVar("_T")

UPGRADE_HINT = "run `syncd db upgrade`"

# PostgreSQL advisory lock id taken while migrating ("syncd" in ASCII).
_MIGRATION_LOCK_KEY = 0x73796E6364


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where the database schema is, where syncd needs it, and whether those agree."""

    current: str | None
    head: str
    up_to_date: bool


def _repo_migrations() -> Path | None:
    """``migrations/`` of the source tree this module runs from (editable install), if any."""
    root = Path(__file__).resolve().parents[2]
    # pyproject.toml tells the repository apart from a site-packages that merely happens
    # to hold some other distribution's top-level "migrations" directory.
    repo = root / "migrations"
    if (root / "pyproject.toml").is_file() and (repo / "env.py").is_file():
        return repo
    return None


def _packaged_migrations() -> Path | None:
    """``syncd/migrations`` inside an installed wheel (the build maps ``migrations/`` there)."""
    packaged = importlib.resources.files("syncd").joinpath("migrations")
    if isinstance(packaged, Path) and (packaged / "env.py").is_file():
        return packaged
    return None


def _installed_data_migrations() -> Path | None:
    """``<prefix>/share/syncd/migrations`` installed as wheel data files, found via RECORD."""
    try:
        files = importlib.metadata.distribution("syncd").files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.as_posix().endswith("share/syncd/migrations/env.py"):
            env = Path(str(file.locate())).resolve()
            if env.is_file():
                return env.parent
    return None


def script_location() -> Path:
    """Find the migration scripts: the repository's ``migrations/`` first, then an installed copy.

    An installed copy is either the package directory ``syncd/migrations`` or the data
    files under ``<prefix>/share/syncd/migrations``, whichever way the wheel was built.
    """
    location = _repo_migrations() or _packaged_migrations() or _installed_data_migrations()
    if location is None:
        raise Fatal(
            "syncd's migration scripts were not found (looked for ./migrations in the source "
            "tree, syncd/migrations and share/syncd/migrations in the installation); "
            "reinstall syncd"
        )
    return location


def alembic_config() -> Config:
    """Build syncd's alembic configuration in code (no ini file involved)."""
    config = Config()
    location = script_location()
    # set_main_option interpolates "%": escape it in paths.
    config.set_main_option("script_location", str(location).replace("%", "%%"))
    config.set_main_option("version_locations", str(location / "versions").replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    return config


def _include_object(
    obj: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: SchemaItem | None
) -> bool:
    """Compare only syncd's own tables (a shared database may hold others)."""
    if type_ == "table" and reflected and compare_to is None:
        return name in Base.metadata.tables
    return True


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render syncd's column types as the plain SQLAlchemy types they store as.

    Revisions must not import syncd: a later change to a Python-side type must not
    change what an old migration creates.
    """
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def migration_context_options(connection: Connection) -> dict[str, Any]:
    """The options env.py and the drift check both give alembic's MigrationContext."""
    return {
        "target_metadata": Base.metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        "render_as_batch": connection.dialect.name == "sqlite",
        "include_object": _include_object,
        "render_item": _render_item,
    }


async def _with_connection(
    url: str, work: Callable[[Connection], _T], *, migrating: bool = False
) -> _T:
    """Run ``work`` on a sync-style connection to ``url`` inside one transaction."""
    # SQLite table rebuilds (batch mode) must run with foreign keys off; we check them after.
    engine = create_engine(url, sqlite_foreign_keys=not migrating)
    try:
        async with engine.begin() as conn:
            if migrating and conn.dialect.name == "postgresql":
                # Instances starting together migrate one after the other; the lock ends
                # with the transaction. (SQLite serialises writers by itself.)
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            result = await conn.run_sync(work)
            if migrating:
                await _check_sqlite_foreign_keys(conn)
            return result
    finally:
        await engine.dispose()


async def _check_sqlite_foreign_keys(conn: AsyncConnection) -> None:
    """Refuse to commit a SQLite migration that left dangling foreign keys."""
    if conn.dialect.name != "sqlite":
        return
    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise Fatal(f"the migration left broken foreign keys in: {', '.join(tables)}")


def _run_command(run: Callable[[Config], None]) -> Callable[[Connection], None]:
    """Adapt an alembic command to run on the given connection."""

    def work(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        run(config)

    return work


async def aupgrade(url: str, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (default: the newest)."""
    await _with_connection(
        url, _run_command(lambda c: command.upgrade(c, revision)), migrating=True
    )


async def adowngrade(url: str, revision: str) -> None:
    """Downgrade the database at ``url`` to ``revision`` (``"base"`` drops everything)."""
    await _with_connection(
        url, _run_command(lambda c: command.downgrade(c, revision)), migrating=True
    )


def _head(script: ScriptDirectory) -> str:
    head = script.get_current_head()
    if head is None:
        raise Fatal("syncd ships no migration scripts; reinstall syncd")
    return head


def _status(connection: Connection) -> SchemaStatus:
    script = ScriptDirectory.from_config(alembic_config())
    head = _head(script)
    current_rev = MigrationContext.configure(connection).get_current_revision()
    return SchemaStatus(current=current_rev, head=head, up_to_date=current_rev == head)


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return False
    if parsed.database == ":memory:" or parsed.database.startswith("file:"):
        return False
    return not Path(parsed.database).exists()


async def acurrent(url: str) -> SchemaStatus:
    """Report the database's schema revision (None if empty) against syncd's newest.

    A SQLite file that does not exist counts as empty and is not created.
    """
    if _missing_sqlite_file(url):
        head = _head(ScriptDirectory.from_config(alembic_config()))
        return SchemaStatus(current=None, head=head, up_to_date=False)
    return await _with_connection(url, _status)


def _describe(diff: Any) -> Iterable[str]:
    """Turn one alembic autogenerate diff into readable lines."""
    if isinstance(diff, list):
        for change in diff:
            # ("modify_type", schema, table, column, info, old, new)
            op, _schema, table, column, _info, old, new = change
            yield f"{op} {table}.{column}: {old!r} -> {new!r}"
        return
    op, *items = diff
    if op in ("add_column", "remove_column"):
        # (op, schema, table name, column)
        yield f"{op} {items[1]}.{items[2].name}"
        return
    yield f"{op} {', '.join(_name(item) for item in items)}"


def _name(item: Any) -> str:
    if isinstance(item, Table):
        return item.name
    if isinstance(item, Column):
        return f"{item.table.name}.{item.name}" if item.table is not None else str(item.name)
    if isinstance(item, Index | Constraint):
        table = item.table.name if item.table is not None else "?"
        return f"{item.name or '<unnamed>'} on {table}"
    if isinstance(item, MetaData):
        return "<metadata>"
    return repr(item)


def _drift(connection: Connection) -> list[str]:
    context = MigrationContext.configure(connection, opts=migration_context_options(connection))
    diffs = compare_metadata(context, Base.metadata)
    return [line for diff in diffs for line in _describe(diff)]


async def acheck_drift(url: str) -> list[str]:
    """Compare the live schema at ``url`` with the models; an empty list means no drift."""
    return await _with_connection(url, _drift)


async def aensure_current(url: str) -> None:
    """Raise ``SchemaBehind`` unless the database is at syncd's newest revision."""
    status = await acurrent(url)
    if status.up_to_date:
        return
    if status.current is None:
        raise SchemaBehind(
            f"the database schema is at base (empty) but syncd needs {status.head}; {UPGRADE_HINT}"
        )
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if status.current not in known:
        raise Fatal(
            f"the database schema is at {status.current}, which this version of syncd does "
            f"not know (it needs {status.head}); was the database upgraded by a newer syncd?"
        )
    raise SchemaBehind(
        f"the database schema is at {status.current} but syncd needs {status.head}; {UPGRADE_HINT}"
    )


def _run(make: Callable[[], Awaitable[_T]], async_name: str) -> _T:
    """Run a coroutine from synchronous code; refuse inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError(f"called from a running event loop; await {async_name}() instead")

    async def main() -> _T:
        return await make()

    return asyncio.run(main())


def upgrade(url: str, revision: str = "head") -> None:
    """Synchronous ``aupgrade``; not callable from inside a running event loop."""
    _run(lambda: aupgrade(url, revision), "aupgrade")


def downgrade(url: str, revision: str) -> None:
    """Synchronous ``adowngrade``; not callable from inside a running event loop."""
    _run(lambda: adowngrade(url, revision), "adowngrade")


def current(url: str) -> SchemaStatus:
    """Synchronous ``acurrent``; not callable from inside a running event loop."""
    return _run(lambda: acurrent(url), "acurrent")


def check_drift(url: str) -> list[str]:
    """Synchronous ``acheck_drift``; not callable from inside a running event loop."""
    return _run(lambda: acheck_drift(url), "acheck_drift")


def ensure_current(url: str) -> None:
    """Synchronous ``aensure_current``; not callable from inside a running event loop."""
    _run(lambda: aensure_current(url), "aensure_current")
