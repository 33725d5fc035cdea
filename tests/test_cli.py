"""The command line: exit codes, config discovery, and the commands that work today."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main, resolve_config_path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "config" / "demo.toml"
THREE_PROBLEMS = REPO / "tests" / "fixtures" / "config" / "three_problems.toml"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def write_db_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


def test_check_config_accepts_the_demo_file() -> None:
    code, out = run("--config", str(DEMO), "check-config")
    assert code == 0, out
    assert "OK (1 workspace(s), 4 account(s), 3 flow(s))" in out


def test_check_config_lists_every_problem_and_exits_2() -> None:
    code, out = run("--config", str(THREE_PROBLEMS), "check-config")
    assert code == 2
    assert "3 problem(s)" in out
    assert "workspace[0].account[0].pol_interval: unknown key 'pol_interval'" in out
    assert "workspace[0].account[1].vendor: unknown vendor 'moneybirb'" in out
    assert "workspace[0].flow[0].max_delete_percent" in out


def test_a_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run("--config", str(tmp_path / "absent.toml"), "check-config")
    assert code == 2
    assert "does not exist" in out


def test_config_path_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path("given.toml", {"SYNCD_CONFIG": "env.toml"}) == Path("given.toml")
    assert resolve_config_path(None, {"SYNCD_CONFIG": "env.toml"}) == Path("env.toml")
    (tmp_path / "syncd.toml").write_text("", encoding="utf-8")
    assert resolve_config_path(None, {}) == Path("syncd.toml")


def test_db_check_fails_on_an_empty_database_then_upgrade_fixes_it(
    tmp_path: Path, db_url: str
) -> None:
    config = str(write_db_config(tmp_path, db_url))
    code, out = run("--config", config, "db", "check")
    assert code == 1
    assert "run `syncd db upgrade`" in out
    code, out = run("--config", config, "db", "upgrade")
    assert code == 0, out
    assert "(head)" in out
    code, out = run("--config", config, "db", "check")
    assert code == 0, out
    assert "current" in out


def _demo_copy(tmp_path: Path, db_url: str) -> Path:
    """config/demo.toml with its database pointed at ``db_url``."""
    text = Path("config/demo.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite+aiosqlite:///./syncd-demo.db"', f'url = "{db_url}"')
    path = tmp_path / "demo.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_once_refuses_a_schema_that_is_behind(tmp_path: Path) -> None:
    config = _demo_copy(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'new.db'}")
    code, out = run("--config", str(config), "once")
    assert code == 2
    assert "run `syncd db upgrade`" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--account", "nope"], "no account named 'nope'"),
        (["--workspace", "nope"], "no workspace named 'nope'"),
        (["--workspace", "demo", "--account", "nope"], "no account named 'nope' in workspace"),
    ],
)
def test_once_names_an_unknown_workspace_or_account(
    tmp_path: Path, args: list[str], message: str
) -> None:
    config = _demo_copy(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    code, out = run("--config", str(config), "once", *args)
    assert code == 2
    assert message in out


@pytest.mark.parametrize("listen", ["8900", "localhost", "127.0.0.1:99999", ":80"])
def test_sandbox_rejects_a_bad_listen_address(listen: str) -> None:
    code, out = run("sandbox", "--listen", listen)
    assert code == 2
    assert "HOST:PORT" in out


def test_sandbox_rejects_an_unknown_fault_kind() -> None:
    code, out = run("sandbox", "--fault-kinds", "reset,meteor")
    assert code == 2
    assert "meteor" in out


def test_every_command_has_useful_help() -> None:
    for args in (
        [],
        ["check-config"],
        ["db"],
        ["db", "upgrade"],
        ["once"],
        ["sandbox"],
        ["conflicts", "resolve"],
    ):
        code, out = run(*args, "--help")
        assert code == 0
        assert "Usage:" in out


def test_sandbox_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "--listen", f"127.0.0.1:{port}", "--control"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sandbox/settings") as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out
    assert f"http://127.0.0.1:{port}/moneybird/api/v2/123456789" in out
