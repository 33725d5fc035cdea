"""Shared fixtures: throwaway SQLite and PostgreSQL databases, empty or migrated to head.

PostgreSQL tests run when ``SYNCD_TEST_POSTGRES_URL`` points at a server we may create
databases on; otherwise they skip, unless ``SYNCD_REQUIRE_POSTGRES=1`` (CI), which turns
the skip into a failure. Each test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import pytest
from hypothesis import settings as hypothesis_settings
from sqlalchemy.engine import URL, make_url

# Local runs explore new random examples every time. CI (.ci/run exports
# HYPOTHESIS_PROFILE=ci) runs a fixed, derandomised set so that a red build is
# reproducible; every failure found locally is kept in .hypothesis/ and replayed.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

POSTGRES_URL_ENV = "SYNCD_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "SYNCD_REQUIRE_POSTGRES"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

_T = TypeVar("_T")


def run_in_thread(make: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine on a private event loop in a worker thread (safe inside any test)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def _postgres_unavailable(why: str) -> NoReturn:
    message = (
        f"PostgreSQL tests need {POSTGRES_URL_ENV}=postgresql+asyncpg://USER@HOST:PORT/DB ({why})"
    )
    if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
        pytest.fail(f"{message}; {REQUIRE_POSTGRES_ENV}=1 forbids skipping", pytrace=False)
    pytest.skip(message)


async def _postgres_admin(url: URL, *statements: str) -> None:
    """Run statements outside a transaction (CREATE/DROP DATABASE) on the admin database."""
    import asyncpg

    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def _create_postgres_database(admin: URL, name: str, template: str | None = None) -> str:
    clause = f' TEMPLATE "{template}"' if template else ""
    run_in_thread(lambda: _postgres_admin(admin, f'CREATE DATABASE "{name}"{clause}'))
    return admin.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(admin: URL, name: str) -> None:
    run_in_thread(lambda: _postgres_admin(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses a PostgreSQL fixture with ``postgres``."""
    for item in items:
        if "postgres_admin_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_admin_url() -> URL:
    """The configured PostgreSQL server, checked reachable once; skips (or fails) otherwise."""
    raw = os.environ.get(POSTGRES_URL_ENV)
    if not raw:
        _postgres_unavailable("unset")
    try:
        url = make_url(raw)
    except Exception:
        _postgres_unavailable("not a database URL")
    try:
        run_in_thread(lambda: _postgres_admin(url, "SELECT 1"))
    except Exception as exc:
        detail = str(exc).replace(url.password, "***") if url.password else str(exc)
        _postgres_unavailable(f"unreachable: {type(exc).__name__}: {detail}")
    return url


@pytest.fixture
def postgres_url(postgres_admin_url: URL) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test; dropped afterwards, pass or fail."""
    name = _unique_name("syncd_test")
    url = _create_postgres_database(postgres_admin_url, name)
    try:
        yield url
    finally:
        _drop_postgres_database(postgres_admin_url, name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database URL in this test's tmp dir; the file does not exist yet."""
    return f"sqlite+aiosqlite:///{tmp_path / 'syncd.db'}"


@pytest.fixture(params=BACKENDS)
def db_backend(request: pytest.FixtureRequest) -> str:
    """Run the test once per database backend: ``"sqlite"`` and ``"postgres"``."""
    return str(request.param)


@pytest.fixture
def db_url(db_backend: str, request: pytest.FixtureRequest) -> str:
    """An empty database on each backend."""
    return str(request.getfixturevalue(f"{db_backend}_url"))


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies."""
    from syncd.store.migrate import aupgrade

    path = tmp_path_factory.mktemp("template") / "syncd.db"
    run_in_thread(lambda: aupgrade(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_admin_url: URL) -> Iterator[str]:
    """A PostgreSQL database migrated to head once per session; tests get copies."""
    from syncd.store.migrate import aupgrade

    name = _unique_name("syncd_template")
    url = _create_postgres_database(postgres_admin_url, name)
    try:
        run_in_thread(lambda: aupgrade(url))
        yield name
    finally:
        _drop_postgres_database(postgres_admin_url, name)


@pytest.fixture
def migrated_db_url(
    db_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """A database at the newest schema revision on each backend, private to this test."""
    if db_backend == "sqlite":
        path = tmp_path / "migrated.db"
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        path.chmod(0o600)
        yield f"sqlite+aiosqlite:///{path}"
        return
    admin: URL = request.getfixturevalue("postgres_admin_url")
    template: str = request.getfixturevalue("_postgres_template")
    name = _unique_name("syncd_test")
    url = _create_postgres_database(admin, name, template=template)
    try:
        yield url
    finally:
        _drop_postgres_database(admin, name)


@pytest.fixture
async def migrated_db(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated database (each backend); disposed afterwards."""
    from syncd.store.db import create_engine

    engine = create_engine(migrated_db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def db_sessionmaker(migrated_db: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """syncd's session factory on the migrated database."""
    from syncd.store.db import create_sessionmaker

    return create_sessionmaker(migrated_db)


@pytest.fixture
async def db_session(
    db_sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One session on the migrated database; whatever is left uncommitted is rolled back."""
    async with db_sessionmaker() as session:
        yield session
