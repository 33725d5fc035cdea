"""Alembic environment for syncd: async engines, SQLite batch mode, the models as target."""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from syncd.store.db import Base, create_engine
from syncd.store.migrate import migration_context_options

config = context.config
if config.config_file_name is not None:  # alembic run by hand: use the ini's logging
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _database_url() -> str:
    """The database to migrate when alembic runs by hand: -x url=..., $SYNCD_DATABASE_URL, ini."""
    url = context.get_x_argument(as_dictionary=True).get("url")
    url = url or os.environ.get("SYNCD_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL: pass -x url=... or set SYNCD_DATABASE_URL")
    return url


def run_migrations_offline() -> None:
    """Write the migration SQL instead of running it (``alembic upgrade --sql``)."""
    url = _database_url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(connection=connection, **migration_context_options(connection))
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    """Open our own engine (alembic run by hand) and migrate through it."""
    # Foreign keys off on SQLite: batch-mode table rebuilds would otherwise cascade or fail.
    engine = create_engine(_database_url(), sqlite_foreign_keys=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Use the caller's connection (syncd.store.migrate) or, by hand, open one."""
    connection = config.attributes.get("connection")
    if connection is not None:
        do_run_migrations(connection)
    else:
        asyncio.run(run_async_migrations())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
