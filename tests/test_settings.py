"""Tests for the config contract: loading, every validation rule, and secret hygiene."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from syncd.errors import ConfigError
from syncd.settings import (
    VENDOR_DEFAULT_RATE_LIMITS,
    AccountSettings,
    FlowSettings,
    RateLimitWindow,
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    parse_settings,
)

FIXTURES = Path(__file__).parent / "fixtures" / "config"
REPO = Path(__file__).parent.parent

VALID_ENV = {
    "DB_PASSWORD": "db-pass-w0rd",
    "ADMIN_TOKEN": "admin-token-value",
    "SIMPLICATE_KEY": "simplicate-key-value",
    "MONEYBIRD_TOKEN": "moneybird-token-value",
    "SIMPLBOOKS_TOKEN": "simplbooks-token-value",
    "BOOKS_ACCOUNT": "",  # empty: ${BOOKS_ACCOUNT:-acme-books} falls back
}

# Two accounts and one flow: every invalid case below is this file with one thing broken.
MINIMAL = """\
[[workspace]]
name = "acme"

  [[workspace.account]]
  name = "acme-crm"
  vendor = "simplicate"
  base_url = "https://acme.simplicate.nl/api/v2"
  credentials = { key = "crm-key-value", secret = "crm-secret-value" }

  [[workspace.account]]
  name = "acme-books"
  vendor = "moneybird"
  base_url = "https://moneybird.com/api/v2/123456789"
  credentials = { token = "${MONEYBIRD_TOKEN}" }

  [[workspace.flow]]
  resource = "contacts"
  accounts = ["acme-crm", "acme-books"]
"""
MINIMAL_ENV = {"MONEYBIRD_TOKEN": "mb-token-value"}

BETA = """
[[workspace]]
name = "beta"

  [[workspace.account]]
  name = "beta-books"
  vendor = "simplbooks"
  base_url = "https://app.simplbooks.com/abc123/api"
  credentials = { token = "sb-token-value" }
"""


def variant(*edits: tuple[str, str], append: str = "") -> str:
    """MINIMAL with each (old, new) replaced exactly once, then ``append`` added."""
    text = MINIMAL
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text + append


def single(vendor: str, base_url: str, credentials: str, extra: str = "") -> str:
    """A workspace holding one account of ``vendor``."""
    return (
        '[[workspace]]\nname = "w"\n\n  [[workspace.account]]\n  name = "a"\n'
        f'  vendor = "{vendor}"\n  base_url = "{base_url}"\n'
        f"  credentials = {credentials}\n{extra}"
    )


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path, environ=MINIMAL_ENV if env is None else env)


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return [(p.path, p.message) for p in caught.value.problems]


# --------------------------------------------------------------------------- valid files


def test_valid_fixture_loads_every_value_typed() -> None:
    settings = load_settings(FIXTURES / "valid.toml", environ=VALID_ENV)

    assert settings.database.url == (
        "postgresql+asyncpg://syncd:db-pass-w0rd@db.internal:5432/syncd"
    )
    daemon = settings.daemon
    assert (daemon.admin_listen, daemon.admin_host, daemon.admin_port) == (
        "[::1]:9000",
        "::1",
        9000,
    )
    assert (daemon.log_format, daemon.log_level) == ("json", "warning")
    assert daemon.shutdown_grace == timedelta(minutes=1, seconds=30)
    assert daemon.admin_token == SecretStr("admin-token-value")

    [workspace] = settings.workspaces
    crm, books, perfex, simplbooks = workspace.accounts
    assert crm.base_url == "https://acme.simplicate.nl/api/v2"  # trailing slash stripped
    assert {k: v.get_secret_value() for k, v in crm.credentials.items()} == {
        "key": "simplicate-key-value",
        "secret": "file-simplicate-secret",  # relative _file, trailing newline stripped
    }
    assert crm.poll_interval == timedelta(seconds=30)
    assert crm.reconcile_interval == timedelta(days=1)
    assert crm.rate_limit == (
        RateLimitWindow(requests=40, per=timedelta(minutes=1)),
        RateLimitWindow(requests=5000, per=timedelta(days=1)),
    )
    assert crm.webhook_secret == SecretStr("fallback-hook-secret")  # ${VAR:-default}
    assert books.rate_limit == VENDOR_DEFAULT_RATE_LIMITS["moneybird"]
    assert perfex.credentials["jwt"].get_secret_value() == "jwt-${not-a-var}"  # $${ escape
    assert perfex.base_url == "https://www.acme.example/crm/api/v1"
    assert simplbooks.vendor == "simplbooks"

    contacts, invoices = workspace.flows
    assert contacts.accounts == ("acme-crm", "acme-books", "acme-perfex")  # inside arrays
    assert contacts.conflict == "prefer:acme-crm"
    assert contacts.preferred_account == "acme-crm"
    assert (contacts.delete, contacts.max_delete_percent) == ("propagate", 10)
    assert contacts.owner == {"iban": "acme-books"}  # inside inline tables
    assert invoices.preferred_account is None
    assert invoices.owner == {"lines": "acme-crm", "status": "acme-books", "payments": "acme-books"}


def test_omitted_options_take_their_documented_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)

    assert settings.database.url == "sqlite+aiosqlite:///var/lib/syncd/syncd.db"
    assert settings.daemon.admin_listen == "127.0.0.1:8765"
    assert (settings.daemon.log_format, settings.daemon.log_level) == ("auto", "info")
    assert settings.daemon.shutdown_grace == timedelta(seconds=30)
    assert settings.daemon.admin_token is None
    crm = settings.account("acme-crm")
    assert crm.poll_interval == timedelta(minutes=2)
    assert crm.reconcile_interval == timedelta(hours=6)
    assert crm.rate_limit == VENDOR_DEFAULT_RATE_LIMITS["simplicate"]
    assert (crm.webhook_secret, crm.allow_insecure_http) == (None, False)
    [flow] = settings.workspaces[0].flows
    assert (flow.conflict, flow.delete, flow.max_delete_percent) == ("newest", "archive", 20)
    assert flow.owner == {}


def test_vendor_default_rate_limits_match_the_design() -> None:
    def windows(vendor: str) -> list[tuple[int, timedelta]]:
        return [(w.requests, w.per) for w in VENDOR_DEFAULT_RATE_LIMITS[vendor]]

    assert windows("simplicate") == [(60, timedelta(minutes=1))]
    assert windows("moneybird") == [(150, timedelta(minutes=5))]
    assert windows("perfex") == [(1000, timedelta(hours=1))]
    assert windows("simplbooks") == [(60, timedelta(minutes=1)), (10000, timedelta(days=1))]


def test_example_config_loads_with_its_environment(tmp_path: Path) -> None:
    (tmp_path / "acme-moneybird-token").write_text("mb-from-credential-file\n")
    env = {
        "SYNCD_ADMIN_TOKEN": "t1",
        "ACME_SIMPLICATE_KEY": "t2",
        "ACME_SIMPLICATE_SECRET": "t3",
        "ACME_SIMPLICATE_HOOK_SECRET": "t4",
        "CREDENTIALS_DIRECTORY": str(tmp_path),
        "BETA_PERFEX_API_KEY": "t5",
        "BETA_PERFEX_HOOK_SECRET": "t6",
        "BETA_SIMPLBOOKS_TOKEN": "t7",
    }
    settings = load_settings(REPO / "config" / "syncd.example.toml", environ=env)

    assert [w.name for w in settings.workspaces] == ["acme", "beta"]
    assert settings.account("acme-books").credentials["token"].get_secret_value() == (
        "mb-from-credential-file"
    )
    assert settings.secret_values() == {
        "t1", "t2", "t3", "t4", "t5", "t6", "t7", "mb-from-credential-file",
    }  # fmt: skip


def test_example_config_documents_every_option() -> None:
    text = (REPO / "config" / "syncd.example.toml").read_text()
    options = [
        *("url", "admin_listen", "log_format", "log_level", "shutdown_grace", "admin_token"),
        "lease_ttl",
        *("name", "vendor", "base_url", "credentials", "poll_interval", "reconcile_interval"),
        *("rate_limit", "webhook_secret", "allow_insecure_http", "resource", "accounts"),
        *("conflict", "delete", "max_delete_percent", "owner"),
    ]
    for option in options:
        assert f"{option} =" in text, option


def test_demo_config_loads_without_any_environment() -> None:
    settings = load_settings(REPO / "config" / "demo.toml", environ={})

    assert settings.database.url == "sqlite+aiosqlite:///./syncd-demo.db"
    assert settings.daemon.admin_listen == "127.0.0.1:8765"
    [demo] = settings.workspaces
    assert demo.name == "demo"
    by_name = {a.name: a for a in demo.accounts}
    assert {name: a.vendor for name, a in by_name.items()} == {
        "demo-simplicate": "simplicate",
        "demo-perfex": "perfex",
        "demo-moneybird": "moneybird",
        "demo-simplbooks": "simplbooks",
    }
    assert all(a.base_url.startswith("http://127.0.0.1:8900/") for a in demo.accounts)
    assert by_name["demo-moneybird"].base_url.endswith("/api/v2/123456789")
    assert by_name["demo-simplbooks"].base_url.endswith("/demo/api")
    assert settings.secret_values() == {
        "sandbox-simplicate-key",
        "sandbox-simplicate-secret",
        "sandbox-moneybird-token",
        "sandbox-perfex-key",
        "sandbox-simplbooks-token",
    }
    flows = [(f.resource, set(f.accounts), dict(f.owner)) for f in demo.flows]
    assert flows == [
        ("contacts", set(by_name), {}),
        (
            "invoices",
            {"demo-simplicate", "demo-moneybird"},
            {"lines": "demo-simplicate", "status": "demo-moneybird", "payments": "demo-moneybird"},
        ),
        (
            "invoices",
            {"demo-perfex", "demo-simplbooks"},
            {"lines": "demo-perfex", "status": "demo-simplbooks", "payments": "demo-simplbooks"},
        ),
    ]


@pytest.mark.parametrize(
    "base_url",
    [
        "http://127.0.0.1:8900/simplicate/api/v2",
        "http://127.0.0.1:8900/moneybird/api/v2/123456789",
        "http://127.0.0.1:8900/perfex/api/v1",
        "http://127.0.0.1:8900/simplbooks/demo/api",
    ],
)
def test_sandbox_base_urls_are_accepted_with_allow_insecure_http(
    tmp_path: Path, base_url: str
) -> None:
    vendor = base_url.split("/")[3]
    credentials = {
        "simplicate": '{ key = "k", secret = "s" }',
        "moneybird": '{ token = "t" }',
        "perfex": '{ api_key = "k" }',
        "simplbooks": '{ token = "t" }',
    }[vendor]
    text = single(vendor, base_url, credentials, "  allow_insecure_http = true\n")

    assert load(tmp_path, text).account("a").base_url == base_url


# --------------------------------------------------------------------------- one problem each


def test_unset_environment_variable_is_reported_at_its_path(tmp_path: Path) -> None:
    assert problems(tmp_path, MINIMAL, env={}) == [
        (
            "workspace[0].account[1].credentials.token",
            "environment variable MONEYBIRD_TOKEN is not set",
        )
    ]


def test_default_is_used_when_variable_is_unset_and_dollar_dollar_escapes(tmp_path: Path) -> None:
    text = variant(("${MONEYBIRD_TOKEN}", "$${literal}-${MONEYBIRD_TOKEN:-fallback}"))
    settings = load(tmp_path, text, env={})

    token = settings.account("acme-books").credentials["token"].get_secret_value()
    assert token == "${literal}-fallback"


def test_unterminated_interpolation_is_reported(tmp_path: Path) -> None:
    text = variant(('name = "acme"', 'name = "acme${OOPS"'))

    assert problems(tmp_path, text) == [
        ("workspace[0].name", "unterminated '${' (write '$${' for a literal '${')")
    ]


def test_unknown_key_suggests_the_closest_valid_key(tmp_path: Path) -> None:
    text = variant(('vendor = "simplicate"', 'vendor = "simplicate"\n  pol_interval = "5m"'))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[0].pol_interval",
            "unknown key 'pol_interval'; did you mean 'poll_interval'?",
        )
    ]


def test_unknown_top_level_key_without_a_close_match_has_no_suggestion(tmp_path: Path) -> None:
    assert problems(tmp_path, "zzz = 1\n" + MINIMAL) == [("zzz", "unknown key 'zzz'")]


def test_unknown_vendor_lists_the_four_and_suggests_one(tmp_path: Path) -> None:
    text = variant(('vendor = "moneybird"', 'vendor = "moneybirb"'))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[1].vendor",
            "unknown vendor 'moneybirb'; expected one of simplicate, moneybird, perfex, "
            "simplbooks; did you mean 'moneybird'?",
        )
    ]


def test_flow_naming_an_account_of_another_workspace_says_which(tmp_path: Path) -> None:
    text = variant(('["acme-crm", "acme-books"]', '["acme-crm", "beta-books"]'), append=BETA)

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[0].accounts[1]",
            "account 'beta-books' belongs to workspace 'beta', not 'acme'",
        )
    ]


def test_flow_naming_an_unknown_account_suggests_a_member(tmp_path: Path) -> None:
    text = variant(('["acme-crm", "acme-books"]', '["acme-crm", "acme-boks"]'))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[0].accounts[1]",
            "unknown account 'acme-boks'; accounts of workspace 'acme': acme-books, acme-crm; "
            "did you mean 'acme-books'?",
        )
    ]


@pytest.mark.parametrize("accounts", ['["acme-crm"]', '["acme-crm", "acme-crm"]'])
def test_flow_needs_two_distinct_accounts(tmp_path: Path, accounts: str) -> None:
    text = variant(('["acme-crm", "acme-books"]', accounts))

    found = problems(tmp_path, text)
    assert ("workspace[0].flow[0].accounts", "a flow needs at least 2 distinct accounts") in found


def test_account_may_join_only_one_flow_per_resource(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '\n  [[workspace.flow]]\n  resource = "contacts"\n  accounts = ["acme-books", "acme-crm"]\n'
    )

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[1].accounts[0]",
            "account 'acme-books' is already in workspace[0].flow[0]; an account may be in "
            "only one contacts flow",
        ),
        (
            "workspace[0].flow[1].accounts[1]",
            "account 'acme-crm' is already in workspace[0].flow[0]; an account may be in "
            "only one contacts flow",
        ),
    ]


def test_same_accounts_may_share_a_contacts_and_an_invoices_flow(tmp_path: Path) -> None:
    text = (
        MINIMAL
        + '\n  [[workspace.flow]]\n  resource = "invoices"\n  accounts = ["acme-books", "acme-crm"]\n'
    )

    assert [f.resource for f in load(tmp_path, text).workspaces[0].flows] == [
        "contacts",
        "invoices",
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"5 minutes"', "'5 minutes' is not a duration; use e.g. 30s, 5m, 2h, 1d"),
        ("300", "must be a duration string (use e.g. 30s, 5m, 2h, 1d), not an integer"),
        ('"5s"', "must be at least 10s, not 5s"),
    ],
)
def test_bad_poll_interval_is_reported(tmp_path: Path, value: str, message: str) -> None:
    text = variant(('vendor = "simplicate"', f'vendor = "simplicate"\n  poll_interval = {value}'))

    assert problems(tmp_path, text) == [("workspace[0].account[0].poll_interval", message)]


def test_secret_file_that_does_not_exist_names_the_resolved_path(tmp_path: Path) -> None:
    text = variant(('{ token = "${MONEYBIRD_TOKEN}" }', '{ token_file = "creds/missing" }'))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[1].credentials.token_file",
            f"file {tmp_path / 'creds' / 'missing'} does not exist",
        )
    ]


def test_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("\n")
    text = variant(('{ token = "${MONEYBIRD_TOKEN}" }', '{ token_file = "token" }'))

    assert problems(tmp_path, text) == [
        ("workspace[0].account[1].credentials.token_file", f"file {tmp_path / 'token'} is empty")
    ]


def test_secret_given_both_inline_and_as_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file")
    text = variant(
        (
            '{ token = "${MONEYBIRD_TOKEN}" }',
            '{ token = "${MONEYBIRD_TOKEN}", token_file = "token" }',
        )
    )

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[1].credentials.token",
            "give either 'token' or 'token_file', not both",
        )
    ]


def test_empty_secret_from_environment_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, MINIMAL, env={"MONEYBIRD_TOKEN": ""}) == [
        ("workspace[0].account[1].credentials.token", "must not be empty")
    ]


def test_webhook_secret_and_admin_token_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "hook").write_text("hook-secret-value\r\n")
    (tmp_path / "admin").write_text("admin-secret-value")
    text = '[daemon]\nadmin_token_file = "admin"\n' + variant(
        ('vendor = "simplicate"', 'vendor = "simplicate"\n  webhook_secret_file = "hook"')
    )
    settings = load(tmp_path, text)

    assert settings.daemon.admin_token == SecretStr("admin-secret-value")
    assert settings.account("acme-crm").webhook_secret == SecretStr("hook-secret-value")


def test_http_base_url_is_refused_without_allow_insecure_http(tmp_path: Path) -> None:
    text = variant(("https://acme.simplicate.nl", "http://acme.simplicate.nl"))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[0].base_url",
            "http:// is refused; use https://, or set allow_insecure_http = true "
            "(sandbox and tests only)",
        )
    ]


@pytest.mark.parametrize(
    ("vendor", "base_url", "credentials", "tail"),
    [
        (
            "simplicate",
            "https://acme.simplicate.nl/api/v1",
            '{ key = "k", secret = "s" }',
            "/api/v2",
        ),
        ("simplicate", "https://acme.simplicate.nl", '{ key = "k", secret = "s" }', "/api/v2"),
        (
            "moneybird",
            "https://moneybird.com/api/v2",
            '{ token = "t" }',
            "/api/v2/<administration id",
        ),
        (
            "moneybird",
            "https://moneybird.com/api/v2/acme",
            '{ token = "t" }',
            "/api/v2/<administration id",
        ),
        ("perfex", "https://crm.example.com/api", '{ api_key = "k" }', "/api/v1"),
        ("perfex", "https://crm.example.com/api/v2", '{ api_key = "k" }', "/api/v1"),
        ("simplbooks", "https://app.simplbooks.com/api", '{ token = "t" }', "/<company_id>/api"),
        (
            "simplbooks",
            "https://app.simplbooks.com/abc/api/v1",
            '{ token = "t" }',
            "/<company_id>/api",
        ),
    ],
)
def test_base_url_with_the_wrong_path_shape_is_refused(
    tmp_path: Path, vendor: str, base_url: str, credentials: str, tail: str
) -> None:
    [(path, message)] = problems(tmp_path, single(vendor, base_url, credentials))

    assert path == "workspace[0].account[0].base_url"
    assert message.startswith(f"a {vendor} base_url path must end with {tail}")


@pytest.mark.parametrize(
    "base_url", ["acme.simplicate.nl/api/v2", "ftp://acme.simplicate.nl/api/v2"]
)
def test_base_url_must_be_an_absolute_http_url(tmp_path: Path, base_url: str) -> None:
    [(path, message)] = problems(
        tmp_path, single("simplicate", base_url, '{ key = "k", secret = "s" }')
    )

    assert path == "workspace[0].account[0].base_url"
    assert message.startswith(f"{base_url!r} is not an absolute http(s) URL")


def test_base_url_with_user_info_is_refused_without_echoing_it(tmp_path: Path) -> None:
    url = "https://user:pa55word@acme.simplicate.nl/api/v2"
    [(path, message)] = problems(tmp_path, single("simplicate", url, '{ key = "k", secret = "s" }'))

    assert path == "workspace[0].account[0].base_url"
    assert "pa55word" not in message
    assert "user name or password" in message


@pytest.mark.parametrize(
    ("vendor", "base_url", "credentials", "expected"),
    [
        (
            "simplicate",
            "https://a.simplicate.nl/api/v2",
            '{ key = "k" }',
            [("credentials", "missing 'secret'; simplicate needs key and secret")],
        ),
        (
            "moneybird",
            "https://moneybird.com/api/v2/1",
            '{ token = "t", api_key = "k" }',
            [("credentials.api_key", "unknown credential 'api_key' for moneybird; expected token")],
        ),
        (
            "perfex",
            "https://crm.example.com/api/v1",
            '{ api_key = "k", jwt = "j" }',
            [("credentials", "give only one of api_key or jwt, not several")],
        ),
        (
            "perfex",
            "https://crm.example.com/api/v1",
            '{ apikey = "k" }',
            [
                (
                    "credentials.apikey",
                    "unknown credential 'apikey' for perfex; expected api_key or jwt; "
                    "did you mean 'api_key'?",
                ),
                ("credentials", "missing; perfex needs api_key or jwt"),
            ],
        ),
        (
            "simplbooks",
            "https://app.simplbooks.com/abc/api",
            '{ key = "k", secret_file = "x" }',
            [
                ("credentials.key", "unknown credential 'key' for simplbooks; expected token"),
                (
                    "credentials.secret_file",
                    "unknown credential 'secret' for simplbooks; expected token",
                ),
                ("credentials", "missing; simplbooks needs token"),
                ("credentials.secret_file", "file {tmp}/x does not exist"),
            ],
        ),
    ],
)
def test_credentials_of_the_wrong_shape_name_the_expected_keys(
    tmp_path: Path,
    vendor: str,
    base_url: str,
    credentials: str,
    expected: list[tuple[str, str]],
) -> None:
    found = problems(tmp_path, single(vendor, base_url, credentials))

    prefix = "workspace[0].account[0]."
    assert found == [(prefix + path, m.format(tmp=tmp_path)) for path, m in expected]


def test_missing_credentials_say_what_the_vendor_needs(tmp_path: Path) -> None:
    text = variant(('  credentials = { token = "${MONEYBIRD_TOKEN}" }\n', ""))

    assert problems(tmp_path, text) == [
        (
            "workspace[0].account[1].credentials",
            "missing required key 'credentials'; moneybird needs token",
        )
    ]


def test_duplicate_workspace_names_are_refused(tmp_path: Path) -> None:
    text = MINIMAL + BETA.replace('name = "beta"', 'name = "acme"')

    assert problems(tmp_path, text) == [
        ("workspace[1].name", "duplicate workspace name 'acme' (also workspace[0].name)")
    ]


def test_account_names_must_be_unique_across_workspaces(tmp_path: Path) -> None:
    text = MINIMAL + BETA.replace('name = "beta-books"', 'name = "acme-crm"')

    assert problems(tmp_path, text) == [
        (
            "workspace[1].account[0].name",
            "duplicate account name 'acme-crm' (also workspace[0].account[0].name); "
            "account names are unique across the whole file",
        )
    ]


@pytest.mark.parametrize("name", ["acme crm", "", "acme/crm"])
def test_names_must_be_simple_identifiers(tmp_path: Path, name: str) -> None:
    text = variant(
        ('name = "acme-crm"', f'name = "{name}"'), ('"acme-crm", "acme-books"', '"acme-books", "x"')
    )

    found = problems(tmp_path, text)
    assert found[0][0] == "workspace[0].account[0].name"
    assert found[0][1] == (
        "must not be empty"
        if not name
        else f"{name!r} is not a valid name; use only letters, digits, '_', '.' and '-'"
    )


def test_prefer_must_name_a_member_of_the_flow(tmp_path: Path) -> None:
    text = MINIMAL + '  conflict = "prefer:acme-crn"\n'

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[0].conflict",
            "prefer: names 'acme-crn', which is not an account of this flow "
            "(members: acme-crm, acme-books)",
        )
    ]


def test_unknown_conflict_policy_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '  conflict = "newset"\n'

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[0].conflict",
            "unknown conflict policy 'newset'; expected newest, manual or prefer:<account>; "
            "did you mean 'newest'?",
        )
    ]


def test_owner_with_a_field_the_resource_does_not_have_is_refused(tmp_path: Path) -> None:
    text = (
        variant(('resource = "contacts"', 'resource = "invoices"'))
        + '  owner = { linez = "acme-crm" }\n'
    )

    [(path, message)] = problems(tmp_path, text)
    assert path == "workspace[0].flow[0].owner.linez"
    assert message.startswith("'linez' is not a invoices field; expected one of lines, status,")
    assert message.endswith("did you mean 'lines'?")


def test_owner_for_contacts_accepts_contact_fields_only(tmp_path: Path) -> None:
    ok = load(tmp_path, MINIMAL + '  owner = { iban = "acme-books", email = "acme-crm" }\n')
    assert ok.workspaces[0].flows[0].owner == {"iban": "acme-books", "email": "acme-crm"}

    [(path, _)] = problems(tmp_path, MINIMAL + '  owner = { lines = "acme-crm" }\n')
    assert path == "workspace[0].flow[0].owner.lines"


def test_owner_must_be_a_member_of_the_flow(tmp_path: Path) -> None:
    text = MINIMAL + '  owner = { email = "acme-other" }\n'

    assert problems(tmp_path, text) == [
        (
            "workspace[0].flow[0].owner.email",
            "owner 'acme-other' is not an account of this flow (members: acme-crm, acme-books)",
        )
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("150", "must be between 0 and 100, not 150"),
        ("true", "must be an integer, not a boolean"),
    ],
)
def test_max_delete_percent_must_be_a_percentage(tmp_path: Path, value: str, message: str) -> None:
    assert problems(tmp_path, MINIMAL + f"  max_delete_percent = {value}\n") == [
        ("workspace[0].flow[0].max_delete_percent", message)
    ]


@pytest.mark.parametrize(
    ("rate_limit", "path", "message"),
    [
        ('[{ requests = 0, per = "1m" }]', "rate_limit[0].requests", "must be at least 1, not 0"),
        ('[{ requests = 5, per = "0s" }]', "rate_limit[0].per", "must be at least 1s, not 0s"),
        ("[{ requests = 5 }]", "rate_limit[0].per", "missing required key 'per'"),
        ('[{ requests = 5, per = "1m", burst = 3 }]', "rate_limit[0].burst", "unknown key 'burst'"),
        (
            "[]",
            "rate_limit",
            "needs at least one window; leave rate_limit out for the vendor default",
        ),
    ],
)
def test_bad_rate_limit_windows_are_refused(
    tmp_path: Path, rate_limit: str, path: str, message: str
) -> None:
    text = variant(('vendor = "simplicate"', f'vendor = "simplicate"\n  rate_limit = {rate_limit}'))

    assert problems(tmp_path, text) == [(f"workspace[0].account[0].{path}", message)]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgresql://syncd@db/syncd",
            "driver 'postgresql://' is not supported; use postgresql+asyncpg:// (asyncpg driver)",
        ),
        (
            "sqlite:///x.db",
            "driver 'sqlite://' is not supported; use sqlite+aiosqlite:// (aiosqlite driver)",
        ),
        (
            "mysql://db/x",
            "unsupported database 'mysql://'; use sqlite+aiosqlite:// or postgresql+asyncpg://",
        ),
    ],
)
def test_database_url_needs_an_async_driver(tmp_path: Path, url: str, message: str) -> None:
    assert problems(tmp_path, f'[database]\nurl = "{url}"\n' + MINIMAL) == [
        ("database.url", message)
    ]


@pytest.mark.parametrize("listen", ["localhost", "127.0.0.1:99999", ":8765", "[::1:8765", "a b:1"])
def test_admin_listen_must_be_host_and_port(tmp_path: Path, listen: str) -> None:
    assert problems(tmp_path, f'[daemon]\nadmin_listen = "{listen}"\n' + MINIMAL) == [
        ("daemon.admin_listen", f"{listen!r} is not host:port, e.g. 127.0.0.1:8765 or [::1]:8765")
    ]


def test_log_level_is_checked_and_case_insensitive(tmp_path: Path) -> None:
    assert load(tmp_path, '[daemon]\nlog_level = "DEBUG"\n' + MINIMAL).daemon.log_level == "debug"
    assert problems(tmp_path, '[daemon]\nlog_level = "verbose"\n' + MINIMAL) == [
        (
            "daemon.log_level",
            "unknown log_level 'verbose'; expected one of debug, info, warning, error",
        )
    ]


def test_single_bracket_workspace_asks_for_an_array_of_tables(tmp_path: Path) -> None:
    assert problems(tmp_path, '[workspace]\nname = "acme"\n') == [
        ("workspace", "must be an array of tables: write [[workspace]]")
    ]


def test_workspace_without_accounts_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, '[[workspace]]\nname = "acme"\n') == [
        ("workspace[0]", "a workspace needs at least one [[workspace.account]]")
    ]


def test_file_with_no_workspaces_is_valid_and_empty(tmp_path: Path) -> None:
    settings = load(tmp_path, '[database]\nurl = "sqlite+aiosqlite:///x.db"\n')

    assert settings.workspaces == ()
    assert list(settings.iter_accounts()) == []


# --------------------------------------------------------------------------- whole files


def test_toml_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(FIXTURES / "syntax_error.toml", environ={})

    [problem] = caught.value.problems
    assert problem.path == ""
    assert "syntax_error.toml: invalid TOML:" in problem.message
    assert "line 4, column" in problem.message


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "nope.toml", environ={})

    assert [str(p) for p in caught.value.problems] == [
        f"config file {tmp_path / 'nope.toml'} does not exist"
    ]


def test_every_problem_in_a_file_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(FIXTURES / "three_problems.toml", environ={})

    assert [(p.path, p.message) for p in caught.value.problems] == [
        (
            "workspace[0].account[0].pol_interval",
            "unknown key 'pol_interval'; did you mean 'poll_interval'?",
        ),
        (
            "workspace[0].account[1].vendor",
            "unknown vendor 'moneybirb'; expected one of simplicate, moneybird, perfex, "
            "simplbooks; did you mean 'moneybird'?",
        ),
        ("workspace[0].flow[0].max_delete_percent", "must be between 0 and 100, not 150"),
    ]
    assert str(caught.value).startswith("3 problem(s) in the configuration:")


# --------------------------------------------------------------------------- secrets


SECRET_ENV = {
    "MONEYBIRD_TOKEN": "mb-very-secret-token",
    "DB_URL": "mysql://syncd:db-very-secret-pass@db/syncd",
    "PERFEX_KEY": "perfex-very-secret-key",
}


def test_secret_values_never_appear_in_config_errors(tmp_path: Path) -> None:
    text = (
        '[database]\nurl = "${DB_URL}"\n'
        + variant(
            # A secret pasted into a non-secret field must not be echoed back either.
            ("https://acme.simplicate.nl/api/v2", "${MONEYBIRD_TOKEN}"),
            (
                '{ token = "${MONEYBIRD_TOKEN}" }',
                '{ token = "${MONEYBIRD_TOKEN}", extra = "extra-very-secret" }',
            ),
        )
        + single(
            "perfex",
            "https://x.example/api/v1",
            '{ api_key = "${PERFEX_KEY}", jwt = "jwt-very-secret" }',
        )
        .replace('name = "w"', 'name = "w2"')
        .replace('name = "a"', 'name = "a2"')
    )
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env=SECRET_ENV)

    text_of_error = str(caught.value) + repr(caught.value.problems)
    secrets = [*SECRET_ENV.values(), "db-very-secret-pass", "extra-very-secret", "jwt-very-secret"]
    for secret in secrets:
        assert secret not in text_of_error
    assert [p.path for p in caught.value.problems] == [
        "database.url",
        "workspace[0].account[0].base_url",
        "workspace[0].account[1].credentials.extra",
        "workspace[1].account[0].credentials",
    ]
    assert caught.value.problems[1].message.startswith("'***' is not an absolute http(s) URL")


def test_repr_and_str_of_settings_hide_every_secret() -> None:
    settings = load_settings(FIXTURES / "valid.toml", environ=VALID_ENV)
    shown = repr(settings) + str(settings) + repr(settings.database) + str(settings.daemon)

    assert settings.secret_values()
    for secret in settings.secret_values():
        assert secret not in shown
    assert "postgresql+asyncpg://syncd:***@db.internal:5432/syncd" in shown


def test_secret_values_collects_credentials_hooks_admin_token_and_db_password() -> None:
    env = {**VALID_ENV, "DB_PASSWORD": "p%40ss"}
    settings = load_settings(FIXTURES / "valid.toml", environ=env)

    assert settings.secret_values() == {
        "p%40ss",
        "p@ss",  # the decoded form is what a driver could echo
        "admin-token-value",
        "simplicate-key-value",
        "file-simplicate-secret",
        "fallback-hook-secret",
        "moneybird-token-value",
        "jwt-${not-a-var}",
        "simplbooks-token-value",
    }


# --------------------------------------------------------------------------- API


def test_account_lookup_by_name_and_iteration_in_file_order() -> None:
    settings = load_settings(FIXTURES / "valid.toml", environ=VALID_ENV)

    assert settings.account("acme-perfex").vendor == "perfex"
    with pytest.raises(KeyError):
        settings.account("nobody")
    assert [(w.name, a.name) for w, a in settings.iter_accounts()] == [
        ("acme", "acme-crm"),
        ("acme", "acme-books"),
        ("acme", "acme-perfex"),
        ("acme", "acme-simplbooks"),
    ]
    assert settings.workspace("acme").name == "acme"


def test_settings_are_frozen() -> None:
    settings = load_settings(FIXTURES / "valid.toml", environ=VALID_ENV)

    with pytest.raises(ValidationError):
        settings.account("acme-crm").name = "other"  # type: ignore[misc]


def test_parse_settings_resolves_file_secrets_against_base_dir(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("tok-from-file\n")
    data = {
        "workspace": [
            {
                "name": "w",
                "account": [
                    {
                        "name": "a",
                        "vendor": "moneybird",
                        "base_url": "https://moneybird.com/api/v2/1",
                        "credentials": {"token_file": "tok"},
                    }
                ],
            }
        ]
    }
    settings = parse_settings(data, environ={}, base_dir=tmp_path)

    assert settings.account("a").credentials["token"].get_secret_value() == "tok-from-file"


def test_models_built_in_code_obey_the_same_rules() -> None:
    account = AccountSettings.model_validate(
        {
            "name": "a",
            "vendor": "perfex",
            "base_url": "https://crm.example.com/api/v1/",
            "credentials": {"api_key": "k"},
            "poll_interval": "30s",
        }
    )
    assert account.base_url == "https://crm.example.com/api/v1"
    assert account.poll_interval == timedelta(seconds=30)
    assert account.rate_limit == VENDOR_DEFAULT_RATE_LIMITS["perfex"]

    with pytest.raises(ValidationError, match="http:// is refused"):
        AccountSettings.model_validate({**account.model_dump(), "base_url": "http://x/api/v1"})
    with pytest.raises(ValidationError, match="prefer: names 'c'"):
        FlowSettings(resource="contacts", accounts=("a", "b"), conflict="prefer:c")


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_reads_units_and_combinations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "1m1h", "1.5h", "-5m", "5M", "1w"])
def test_parse_duration_refuses_anything_else_with_a_hint(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a duration; use e\.g\. 30s, 5m, 2h, 1d"):
        parse_duration(text)
