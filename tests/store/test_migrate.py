"""Migrations: upgrade, downgrade, status, drift detection and the startup schema gate."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from syncd.errors import Fatal, SchemaBehind
from syncd.store import migrate
from syncd.store.db import Base, create_engine

OUR_TABLES = set(Base.metadata.tables)

# SQLAlchemy cannot reflect an index on an expression (``lower(number)``) from SQLite, so
# alembic leaves those indexes out of the comparison there and says so in a warning;
# ``test_indexes_alembic_cannot_compare_match_the_models`` checks them instead.
pytestmark = [
    pytest.mark.filterwarnings(
        "ignore:Skipped unsupported reflection of expression-based index:sqlalchemy.exc.SAWarning"
    ),
    pytest.mark.filterwarnings(
        "ignore:autogenerate skipping metadata-specified expression-based index:UserWarning"
    ),
]


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


async def _execute(url: str, statement: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def _head() -> str:
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert head is not None
    return head


def test_upgrade_from_empty_creates_every_table_without_drift(db_url: str) -> None:
    migrate.upgrade(db_url)

    status = migrate.current(db_url)
    assert status == migrate.SchemaStatus(current=_head(), head=_head(), up_to_date=True)
    assert migrate.check_drift(db_url) == []
    migrate.ensure_current(db_url)


async def test_upgrade_creates_exactly_the_model_tables(db_url: str) -> None:
    await migrate.aupgrade(db_url)

    assert await _table_names(db_url) == OUR_TABLES | {"alembic_version"}


async def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(db_url: str) -> None:
    await migrate.aupgrade(db_url)

    await migrate.adowngrade(db_url, "base")
    assert await _table_names(db_url) & OUR_TABLES == set()
    assert (await migrate.acurrent(db_url)).current is None

    await migrate.aupgrade(db_url)
    assert (await migrate.acurrent(db_url)).up_to_date
    assert await migrate.acheck_drift(db_url) == []


def test_current_on_empty_database_is_not_up_to_date(db_url: str) -> None:
    status = migrate.current(db_url)

    assert status.current is None
    assert status.head == _head()
    assert status.up_to_date is False


async def test_ensure_current_on_empty_database_says_how_to_fix_it(db_url: str) -> None:
    with pytest.raises(SchemaBehind) as caught:
        await migrate.aensure_current(db_url)

    message = str(caught.value)
    assert "run `syncd db upgrade`" in message
    assert _head() in message


async def test_ensure_current_refuses_a_revision_this_syncd_does_not_know(
    migrated_db_url: str,
) -> None:
    await _execute(migrated_db_url, "UPDATE alembic_version SET version_num = 'fffffffffff0'")

    with pytest.raises(Fatal, match=r"fffffffffff0.*newer syncd") as caught:
        await migrate.aensure_current(migrated_db_url)
    # Upgrading cannot help here, so the message must not suggest it.
    assert not isinstance(caught.value, SchemaBehind)


async def test_check_drift_reports_a_column_the_models_do_not_have(migrated_db_url: str) -> None:
    await _execute(migrated_db_url, "ALTER TABLE contacts ADD COLUMN nickname VARCHAR(20)")

    drift = await migrate.acheck_drift(migrated_db_url)

    assert drift == ["remove_column contacts.nickname"]


async def test_check_drift_reports_a_missing_index(migrated_db_url: str) -> None:
    await _execute(migrated_db_url, "DROP INDEX ix_contacts_email_workspace_id")

    drift = await migrate.acheck_drift(migrated_db_url)

    assert drift == ["add_index ix_contacts_email_workspace_id on contacts"]


def _expression_indexes() -> list[sa.Index]:
    return [
        index
        for table in Base.metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(e, sa.Column) for e in index.expressions)
    ]


async def _index_catalog(url: str) -> dict[str, str]:
    """Each index's definition as SQLite stores it, or its access method on PostgreSQL."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                query = (
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
                )
            else:
                query = (
                    "SELECT c.relname, a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
                    "WHERE c.relkind = 'i'"
                )
            rows = (await conn.exec_driver_sql(query)).all()
    finally:
        await engine.dispose()
    return {name: definition for name, definition in rows}


async def test_indexes_alembic_cannot_compare_match_the_models(db_url: str) -> None:
    # Alembic compares neither expression indexes on SQLite nor an index's access method
    # (btree, hash) on PostgreSQL: both are checked against the models here.
    await migrate.aupgrade(db_url)
    catalog = await _index_catalog(db_url)
    dialect = create_engine(db_url).dialect

    assert _expression_indexes()
    if dialect.name == "sqlite":
        for index in _expression_indexes():
            assert catalog.get(index.name or "") == str(
                sa.schema.CreateIndex(index).compile(dialect=dialect)
            )
    else:
        for table in Base.metadata.tables.values():
            for index in table.indexes:
                wanted = index.dialect_options["postgresql"]["using"] or "btree"
                assert catalog.get(index.name or "") == wanted, index.name


async def test_check_drift_reports_a_changed_expression_index_on_postgres(
    postgres_url: str,
) -> None:
    await migrate.aupgrade(postgres_url)
    await _execute(postgres_url, "DROP INDEX ix_invoices_lower_number_workspace_id")
    await _execute(
        postgres_url,
        "CREATE INDEX ix_invoices_lower_number_workspace_id ON invoices (upper(number), workspace_id)",
    )

    drift = await migrate.acheck_drift(postgres_url)

    assert drift != []
    assert all("ix_invoices_lower_number_workspace_id" in line for line in drift)


@pytest.mark.postgres
async def test_check_drift_reports_a_changed_column_type(postgres_url: str) -> None:
    await migrate.aupgrade(postgres_url)
    await _execute(postgres_url, "ALTER TABLE invoices ALTER COLUMN total TYPE NUMERIC(10, 2)")

    drift = await migrate.acheck_drift(postgres_url)

    assert len(drift) == 1
    assert drift[0].startswith("modify_type invoices.total: NUMERIC(precision=10, scale=2)")


async def test_check_drift_ignores_tables_that_are_not_ours(migrated_db_url: str) -> None:
    await _execute(migrated_db_url, "CREATE TABLE someone_elses (id INTEGER PRIMARY KEY)")

    assert await migrate.acheck_drift(migrated_db_url) == []


async def test_sync_functions_refuse_to_run_inside_an_event_loop(sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match=r"await aupgrade\(\)"):
        migrate.upgrade(sqlite_url)
    with pytest.raises(RuntimeError, match=r"await aensure_current\(\)"):
        migrate.ensure_current(sqlite_url)
    # Refused before touching anything: the database file was not even created.
    assert not Path(sqlite_url.removeprefix("sqlite+aiosqlite:///")).exists()  # noqa: ASYNC240


def test_migration_scripts_come_from_the_repository_in_a_source_checkout() -> None:
    location = migrate.script_location()

    assert location == Path(__file__).resolve().parents[2] / "migrations"


def test_migration_scripts_fall_back_to_the_packaged_copy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged = tmp_path / "site-packages" / "syncd" / "migrations"
    packaged.mkdir(parents=True)
    (packaged / "env.py").write_text("")
    monkeypatch.setattr(migrate, "_repo_migrations", lambda: None)
    monkeypatch.setattr("importlib.resources.files", lambda _: packaged.parent)

    assert migrate.script_location() == packaged


def test_missing_migration_scripts_are_a_fatal_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(migrate, "_repo_migrations", lambda: None)
    monkeypatch.setattr("importlib.resources.files", lambda _: tmp_path)

    with pytest.raises(Fatal, match="migration scripts were not found"):
        migrate.script_location()


def test_revisions_have_dated_names_a_single_head_and_do_not_import_syncd() -> None:
    versions = migrate.script_location() / "versions"
    files = sorted(versions.glob("*.py"))

    assert files
    for path in files:
        assert re.fullmatch(r"\d{8}_[0-9a-f]{12}_\w+\.py", path.name), path.name
        source = path.read_text()
        assert not re.search(r"^\s*(from|import) syncd", source, re.MULTILINE), path.name
    assert len(ScriptDirectory.from_config(migrate.alembic_config()).get_heads()) == 1


def test_migration_scripts_are_found_among_installed_data_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "prefix" / "share" / "syncd" / "migrations"
    data.mkdir(parents=True)
    (data / "env.py").write_text("")

    class _File:
        def __init__(self, relative: str) -> None:
            self.relative = relative

        def as_posix(self) -> str:
            return self.relative

        def locate(self) -> Path:
            return tmp_path / "prefix" / "lib" / ".." / self.relative

    class _Distribution:
        files = (_File("syncd/__init__.py"), _File("share/syncd/migrations/env.py"))

    monkeypatch.setattr(migrate, "_repo_migrations", lambda: None)
    monkeypatch.setattr(migrate, "_packaged_migrations", lambda: None)
    monkeypatch.setattr("importlib.metadata.distribution", lambda _: _Distribution())

    assert migrate.script_location() == data


def test_checking_a_missing_sqlite_file_neither_creates_it_nor_passes(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "syncd.db"
    url = f"sqlite+aiosqlite:///{path}"

    assert migrate.current(url).up_to_date is False
    with pytest.raises(SchemaBehind):
        migrate.ensure_current(url)
    assert not path.parent.exists()


@pytest.mark.postgres
async def test_instances_upgrading_at_the_same_time_take_turns(postgres_url: str) -> None:
    await asyncio.gather(*(migrate.aupgrade(postgres_url) for _ in range(3)))

    assert (await migrate.acurrent(postgres_url)).up_to_date
    assert await migrate.acheck_drift(postgres_url) == []
