"""A corpus of broken config files through ``syncd check-config``.

Every file in ``configs/`` is wrong in a known way. Each must exit 2, say how many
problems it found, print each expected problem with its TOML path, and never print a
secret: every secret value in the corpus contains ``TOPSECRET`` (the one that arrives
through the environment too).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from syncd.cli import main

CONFIGS = Path(__file__).parent / "configs"
SECRET_MARK = "TOPSECRET"
ENV = {"SYNCD_RELIABILITY_TOKEN": "TOPSECRET-env-token-0018"}

# file -> (number of problems, texts the output must contain)
EXPECTED: dict[str, tuple[int, list[str]]] = {
    "syntax_error.toml": (
        1,
        ["invalid TOML: Expected ']' at the end of a table declaration (at line 2, column 10)"],
    ),
    "not_utf8.toml": (1, ["not_utf8.toml is not UTF-8 text (byte 26)"]),
    "unknown_key.toml": (
        1,
        ["workspace[0].account[0].pol_interval: unknown key 'pol_interval'; did you mean 'poll_interval'?"],
    ),
    "missing_env.toml": (
        1,
        ["workspace[0].account[0].credentials.token: environment variable SYNCD_RELIABILITY_UNSET_TOKEN is not set"],
    ),
    "bad_duration.toml": (
        1,
        ["workspace[0].account[0].poll_interval: '5 minutes' is not a duration; use e.g. 30s, 5m, 2h, 1d"],
    ),
    "unknown_vendor.toml": (
        1,
        ["workspace[0].account[0].vendor: unknown vendor 'exactonline'; expected one of simplicate, moneybird, perfex, simplbooks"],
    ),
    "flow_across_workspaces.toml": (
        1,
        ["workspace[0].flow[0].accounts[1]: account 'b-books' belongs to workspace 'beta', not 'alpha'"],
    ),
    "prefer_non_member.toml": (
        1,
        ["workspace[0].flow[0].conflict: prefer: names 'acme-perfex', which is not an account of this flow (members: acme-crm, acme-books)"],
    ),
    "owner_non_member.toml": (
        1,
        ["workspace[0].flow[0].owner.lines: owner 'acme-elsewhere' is not an account of this flow (members: acme-crm, acme-books)"],
    ),
    "lines_into_simplicate.toml": (
        1,
        ['workspace[0].flow[0]: invoices would be created in acme-crm from acme-books, but simplicate takes no invoice lines through its API: set owner.lines = "acme-crm" or leave acme-crm out of this flow'],
    ),
    "insecure_http.toml": (
        1,
        ["workspace[0].account[0].base_url: http:// is refused; use https://, or set allow_insecure_http = true"],
    ),
    "missing_credentials.toml": (
        1,
        ["workspace[0].account[0].credentials: missing required key 'credentials'; moneybird needs token"],
    ),
    "wrong_credential_keys.toml": (
        2,
        [
            "workspace[0].account[0].credentials.token: unknown credential 'token' for simplicate; expected key and secret",
            "workspace[0].account[0].credentials: missing; simplicate needs key and secret",
        ],
    ),
    "duplicate_account.toml": (
        1,
        ["workspace[0].account[1].name: duplicate account name 'books' (also workspace[0].account[0].name)"],
    ),
    "flow_of_one.toml": (1, ["workspace[0].flow[0].accounts: a flow needs at least 2 distinct accounts"]),
    "bad_rate_limit.toml": (
        1,
        ["workspace[0].account[0].rate_limit[0].requests: must be at least 1, not 0"],
    ),
    "secret_file_missing.toml": (
        1,
        ["workspace[0].account[0].credentials.token_file: file /nonexistent/syncd-reliability/moneybird-token does not exist"],
    ),
    "secret_twice.toml": (
        1,
        ["workspace[0].account[0].credentials.token: give either 'token' or 'token_file', not both"],
    ),
    "database_password.toml": (
        1,
        ["database.url: unsupported database 'mysql://'; use sqlite+aiosqlite:// or postgresql+asyncpg://"],
    ),
    "secret_in_plain_field.toml": (1, ["workspace[0].account[0].vendor: unknown vendor '***'"]),
    "env_secret_echoed.toml": (
        1,
        ["workspace[0].account[0].base_url: '***' is not an absolute http(s) URL"],
    ),
    "bad_daemon.toml": (
        2,
        [
            "daemon.admin_listen: 'everywhere' is not host:port",
            "daemon.log_level: unknown log_level 'loud'; expected one of debug, info, warning, error",
        ],
    ),
    "wrong_types.toml": (
        3,
        [
            "workspace[0].account[0].allow_insecure_http: must be true or false, not a string",
            "workspace[0].account[0].poll_interval: must be a duration string (use e.g. 30s, 5m, 2h, 1d), not an integer",
            "workspace[0].flow[0].max_delete_percent: must be between 0 and 100, not 150",
        ],
    ),
    "workspace_not_array.toml": (1, ["workspace: must be an array of tables: write [[workspace]]"]),
    "no_workspace_account.toml": (1, ["workspace[0]: a workspace needs at least one [[workspace.account]]"]),
    "unknown_flow_resource.toml": (
        2,
        [
            "workspace[0].flow[0].resource: unknown resource 'projects'; expected one of contacts, invoices",
            "workspace[0].flow[0].delete: unknown delete 'shred'; expected one of propagate, archive, ignore",
        ],
    ),
}  # fmt: skip


def test_every_file_in_the_corpus_has_its_expectations() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_config_names_the_problem_exits_2_and_keeps_secrets(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_RELIABILITY_UNSET_TOKEN", raising=False)
    count, texts = EXPECTED[name]
    result = CliRunner().invoke(
        main, ["--config", str(CONFIGS / name), "check-config"], env=ENV, catch_exceptions=False
    )
    out = result.output
    assert result.exit_code == 2, out
    assert f"{count} problem(s) in the configuration" in out, out
    for text in texts:
        assert text in out, f"expected {text!r} in:\n{out}"
    problem_lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert len(problem_lines) == count, out
    assert SECRET_MARK not in out
    assert "Traceback" not in out
