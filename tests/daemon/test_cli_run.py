"""`syncd run` and `syncd demo` at the command line: the refusals that need no daemon."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main
from syncd.logs import reset_logging
from tests.daemon.process import REPO


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def demo_copy(tmp_path: Path, db: Path) -> Path:
    text = (REPO / "config" / "demo.toml").read_text(encoding="utf-8")
    text = text.replace("sqlite+aiosqlite:///./syncd-demo.db", f"sqlite+aiosqlite:///{db}")
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_run_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    config = demo_copy(tmp_path, tmp_path / "new.db")
    result = CliRunner().invoke(main, ["--config", str(config), "run"])
    assert result.exit_code == 2, result.output
    assert "run `syncd db upgrade`" in result.output


def test_run_lists_every_config_problem_and_exits_2(tmp_path: Path) -> None:
    config = demo_copy(tmp_path, tmp_path / "new.db")
    config.write_text(
        config.read_text(encoding="utf-8").replace("poll_interval", "pol_interval"),
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["--config", str(config), "run"])
    assert result.exit_code == 2
    assert "4 problem(s)" in result.output


def test_demo_without_a_demo_config_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import syncd.demo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(syncd.demo, "DEMO_CONFIG", Path("config") / "absent-demo.toml")
    result = CliRunner().invoke(main, ["demo", "--once"])
    assert result.exit_code == 2
    assert "absent-demo.toml" in result.output
