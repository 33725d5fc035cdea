"""Fixtures of the daemon tests."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from syncd.store.db import create_engine


@pytest.fixture
async def sqlite_db(_sqlite_template: Path, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated SQLite database only: for tests of scheduling, not of the database.

    (``migrated_db`` runs a test on both backends; the write-scope and lease tests use
    that one.)
    """
    path = tmp_path / "sched.db"
    shutil.copyfile(_sqlite_template, path)
    path.chmod(0o600)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        yield engine
    finally:
        await engine.dispose()
