"""The shared PostgreSQL fixtures skip, fail or mark exactly as promised (run in a child pytest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

PROBE = """
def test_needs_postgres(postgres_url):
    assert postgres_url.startswith("postgresql+asyncpg://")


def test_needs_only_sqlite(sqlite_url):
    assert sqlite_url.startswith("sqlite+aiosqlite:///")
"""


def _run_pytest(
    tmp_path: Path, probe: str, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``probe`` under a child pytest that loads only the shared conftest."""
    shutil.copyfile(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(probe)
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"SYNCD_TEST_POSTGRES_URL", "SYNCD_REQUIRE_POSTGRES", "PYTEST_ADDOPTS"}
    }
    # Third-party plugins are not needed by the probes and only slow the child down.
    child_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsE", "-p", "no:cacheprovider", *args],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_postgres_tests_skip_with_instructions_when_the_url_is_unset(tmp_path: Path) -> None:
    result = _run_pytest(tmp_path, PROBE, {})

    assert result.returncode == 0, result.stdout
    assert "1 passed, 1 skipped" in result.stdout
    assert (
        "PostgreSQL tests need SYNCD_TEST_POSTGRES_URL="
        "postgresql+asyncpg://USER@HOST:PORT/DB (unset)" in result.stdout
    )


def test_postgres_tests_fail_instead_of_skipping_when_postgres_is_required(
    tmp_path: Path,
) -> None:
    result = _run_pytest(tmp_path, PROBE, {"SYNCD_REQUIRE_POSTGRES": "1"})

    assert result.returncode == 1, result.stdout
    assert "1 passed" in result.stdout
    assert "1 error" in result.stdout
    assert "SYNCD_REQUIRE_POSTGRES=1 forbids skipping" in result.stdout


def test_unreachable_postgres_skips_without_showing_the_password_and_tests_are_marked(
    tmp_path: Path,
) -> None:
    url = "postgresql+asyncpg://postgres:s3cr3t-pw@127.0.0.1:1/test"

    result = _run_pytest(tmp_path, PROBE, {"SYNCD_TEST_POSTGRES_URL": url}, "-m", "postgres")

    assert result.returncode == 0, result.stdout
    assert "1 skipped, 1 deselected" in result.stdout
    assert "(unreachable: " in result.stdout
    assert "s3cr3t-pw" not in result.stdout + result.stderr


@pytest.mark.postgres
def test_each_test_gets_its_own_database_which_is_dropped_afterwards(
    tmp_path: Path,
    postgres_admin_url: object,  # skips here unless PostgreSQL is reachable
) -> None:
    probe = """
import asyncio, asyncpg

SEEN = []

def _exists(url, name):
    async def check():
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            return await conn.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
        finally:
            await conn.close()
    return asyncio.run(check())

def test_first(postgres_url):
    SEEN.append(postgres_url)

def test_second(postgres_url):
    SEEN.append(postgres_url)
    assert SEEN[0] != SEEN[1]

def test_first_database_is_gone(postgres_admin_url):
    admin = postgres_admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = SEEN[0].rsplit("/", 1)[1]
    assert _exists(admin, name) == 0
"""
    admin_url = os.environ["SYNCD_TEST_POSTGRES_URL"]

    result = _run_pytest(tmp_path, probe, {"SYNCD_TEST_POSTGRES_URL": admin_url})

    assert result.returncode == 0, result.stdout
    assert "3 passed" in result.stdout
