"""Fixtures of the sandbox integration tests (helpers live in ``helpers.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def sqlite_db_url(tmp_path: Path, _sqlite_template: Path) -> str:
    """A private SQLite database at the newest schema (a copy of the session template)."""
    path = tmp_path / "integration.db"
    shutil.copyfile(_sqlite_template, path)
    path.chmod(0o600)
    return f"sqlite+aiosqlite:///{path}"
