"""The config file (DESIGN §6) as typed, frozen settings: ${ENV}, *_file secrets, every problem at once.

`load_settings` reads the TOML file; `parse_settings` walks the parsed tables once,
interpolating environment variables, reading ``*_file`` secrets and checking every rule,
and records each violation as a `Problem` with its TOML path
(``workspace[0].account[1].credentials.token``). Only when nothing is wrong are the
pydantic models built; otherwise one `ConfigError` carries every problem. Secret values
never appear in a message nor in ``repr()``: they are `SecretStr`, and the password of
``database.url`` is masked in the repr.

The models validate their own invariants too, so settings built in code (tests, tools)
obey the same rules as settings read from a file.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from syncd.core.model import CONTACT_FIELDS, INVOICE_OWNER_FIELDS
from syncd.errors import ConfigError, Problem

__all__ = [
    "DEFAULT_DATABASE_URL",
    "VENDOR_DEFAULT_RATE_LIMITS",
    "AccountSettings",
    "DaemonSettings",
    "DatabaseSettings",
    "FlowSettings",
    "RateLimitWindow",
    "Settings",
    "WorkspaceSettings",
    "base_url_problems",
    "format_duration",
    "load_settings",
    "parse_duration",
    "parse_settings",
]

Vendor = Literal["simplicate", "moneybird", "perfex", "simplbooks"]
Resource = Literal["contacts", "invoices"]
DeletePolicy = Literal["propagate", "archive", "ignore"]
LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

VENDORS: tuple[str, ...] = get_args(Vendor)
RESOURCES: tuple[str, ...] = get_args(Resource)
DELETE_POLICIES: tuple[str, ...] = get_args(DeletePolicy)
LOG_FORMATS: tuple[str, ...] = get_args(LogFormat)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/lib/syncd/syncd.db"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:8765"
DEFAULT_POLL_INTERVAL = timedelta(minutes=2)
DEFAULT_RECONCILE_INTERVAL = timedelta(hours=6)
DEFAULT_SHUTDOWN_GRACE = timedelta(seconds=30)
MIN_LEASE_TTL = timedelta(seconds=3)  # renewed every third of it: at least once a second
MIN_POLL_INTERVAL = timedelta(seconds=10)
MIN_RECONCILE_INTERVAL = timedelta(minutes=1)
MIN_RATE_WINDOW = timedelta(seconds=1)

_FILE_SUFFIX = "_file"
_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_RE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_HOSTNAME_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")
_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_DURATION_HINT = "use e.g. 30s, 5m, 2h, 1d"
_MIN_REDACTED = 6
_DATABASE_SCHEMES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")

# --------------------------------------------------------------------------- durations


def parse_duration(text: str) -> timedelta:
    """Parse "30s", "5m", "2h", "1d" or a combination in that order ("1h30m")."""
    match = _DURATION_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; {_DURATION_HINT}")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    try:
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is too long a duration") from None


def format_duration(value: timedelta) -> str:
    """The shortest text `parse_duration` reads back as ``value`` (whole seconds)."""
    total = int(value.total_seconds())
    if total <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, total = divmod(total, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def _duration_input(value: Any) -> Any:
    """Let models built in code take "5m" as well as a timedelta."""
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration_input)]

# --------------------------------------------------------------------------- shared rules


def _suggest(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _name_problem(name: str) -> str | None:
    if not name:
        return "must not be empty"
    if not _NAME_RE.fullmatch(name):
        return f"{name!r} is not a valid name; use only letters, digits, '_', '.' and '-'"
    return None


_BASE_URL_SHAPES: Mapping[str, tuple[re.Pattern[str], str, str]] = MappingProxyType(
    {
        "simplicate": (
            re.compile(r"(?:/[^/]+)*/api/v2"),
            "/api/v2",
            "https://acme.simplicate.nl/api/v2",
        ),
        "moneybird": (
            re.compile(r"(?:/[^/]+)*/api/v2/\d+"),
            "/api/v2/<administration id, digits only>",
            "https://moneybird.com/api/v2/123456789",
        ),
        "perfex": (
            re.compile(r"(?:/[^/]+)*/api/v1"),
            "/api/v1",
            "https://crm.example.com/api/v1 or https://example.com/crm/api/v1",
        ),
        "simplbooks": (
            re.compile(r"(?:/[^/]+)*/[^/]+/api"),
            "/<company_id>/api",
            "https://app.simplbooks.com/0fdf33a5c10c384986f81fc45a444f22/api",
        ),
    }
)


def base_url_problems(vendor: str | None, url: str, allow_insecure_http: bool) -> list[str]:
    """Everything wrong with ``url`` as the base_url of a ``vendor`` account (DESIGN §6)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return [f"{url!r} is not an absolute URL"]
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: the user part may hold a secret.
        return ["must not contain a user name or password; put them under credentials"]
    shape = _BASE_URL_SHAPES.get(vendor or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        example = shape[2] if shape else "https://..."
        return [f"{url!r} is not an absolute http(s) URL, e.g. {example}"]
    problems: list[str] = []
    if parts.query or parts.fragment:
        problems.append("must not have a query string or fragment")
    if parts.scheme == "http" and not allow_insecure_http:
        problems.append(
            "http:// is refused; use https://, or set allow_insecure_http = true "
            "(sandbox and tests only)"
        )
    if shape:
        pattern, tail, example = shape
        if not pattern.fullmatch(parts.path.rstrip("/")):
            problems.append(f"a {vendor} base_url path must end with {tail}, e.g. {example}")
    return problems


# Each vendor takes one of these sets of credential keys.
_CREDENTIAL_SHAPES: Mapping[str, tuple[frozenset[str], ...]] = MappingProxyType(
    {
        "simplicate": (frozenset({"key", "secret"}),),
        "moneybird": (frozenset({"token"}),),
        "perfex": (frozenset({"api_key"}), frozenset({"jwt"})),
        "simplbooks": (frozenset({"token"}),),
    }
)


def _describe_shape(shapes: tuple[frozenset[str], ...]) -> str:
    return " or ".join(" and ".join(sorted(shape)) for shape in shapes)


def _credential_problems(vendor: str, present: Collection[str]) -> list[tuple[str | None, str]]:
    """(offending key or None for the whole table, message) for each shape violation."""
    shapes = _CREDENTIAL_SHAPES.get(vendor)
    if shapes is None:
        return []
    expected = _describe_shape(shapes)
    allowed = frozenset().union(*shapes)
    problems: list[tuple[str | None, str]] = []
    for key in present:
        if key not in allowed:
            message = f"unknown credential '{key}' for {vendor}; expected {expected}"
            problems.append((key, message + _suggest(key, sorted(allowed))))
    known = frozenset(present) & allowed
    touched = [shape for shape in shapes if shape & known]
    if len(touched) > 1:
        problems.append((None, f"give only one of {expected}, not several"))
    elif not touched:
        problems.append((None, f"missing; {vendor} needs {expected}"))
    else:
        missing = sorted(touched[0] - known)
        if missing:
            names = ", ".join(f"'{key}'" for key in missing)
            problems.append((None, f"missing {names}; {vendor} needs {expected}"))
    return problems


def _conflict_problem(conflict: str, members: Sequence[str]) -> str | None:
    if conflict in ("newest", "manual"):
        return None
    if conflict.startswith("prefer:"):
        preferred = conflict.removeprefix("prefer:")
        if preferred in members:
            return None
        return (
            f"prefer: names {preferred!r}, which is not an account of this flow "
            f"(members: {', '.join(members)})"
        )
    return (
        f"unknown conflict policy {conflict!r}; expected newest, manual or prefer:<account>"
        + _suggest(conflict, ("newest", "manual"))
    )


def _owner_fields(resource: str) -> tuple[str, ...]:
    return CONTACT_FIELDS if resource == "contacts" else INVOICE_OWNER_FIELDS


def _owner_problems(
    resource: str, owner: Mapping[str, str], members: Sequence[str]
) -> list[tuple[str, str]]:
    """(owner key, message) for each field that is not a field or not owned by a member."""
    fields = _owner_fields(resource)
    problems: list[tuple[str, str]] = []
    for field, account in owner.items():
        if field not in fields:
            problems.append(
                (
                    field,
                    f"'{field}' is not a {resource} field; expected one of {', '.join(fields)}"
                    + _suggest(field, fields),
                )
            )
        if account not in members:
            problems.append(
                (
                    field,
                    f"owner {account!r} is not an account of this flow "
                    f"(members: {', '.join(members)})",
                )
            )
    return problems


def _listen_problem(text: str) -> str | None:
    host, sep, port = text.rpartition(":")
    hint = f"{text!r} is not host:port, e.g. 127.0.0.1:8765 or [::1]:8765"
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        return hint
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host.removeprefix("[").removesuffix("]"))
        except ValueError:
            return hint
        return None if host.endswith("]") else hint
    if _HOSTNAME_RE.fullmatch(host):
        return None
    return hint


def _database_problem(url: str) -> str | None:
    # The URL may carry a password, so only its scheme is ever quoted back.
    if url.startswith(_DATABASE_SCHEMES):
        return None
    expected = "use sqlite+aiosqlite:// or postgresql+asyncpg://"
    scheme = _SCHEME_RE.match(url)
    if scheme is None:
        return f"is not a database URL; {expected}"
    name = scheme.group(1)
    if name.startswith("postgres"):
        return f"driver '{name}://' is not supported; use postgresql+asyncpg:// (asyncpg driver)"
    if name.startswith("sqlite"):
        return f"driver '{name}://' is not supported; use sqlite+aiosqlite:// (aiosqlite driver)"
    return f"unsupported database '{name}://'; {expected}"


def _database_passwords(url: str) -> set[str]:
    found: set[str] = set()
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return found
    if password:
        found.update({password, unquote(password)})
    for key, value in parse_qsl(parts.query):
        if key == "password" and value:
            found.add(value)
    return found


def _redact_database_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable database url>"
    if password is None and "password=" not in parts.query:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    netloc = f"{user}:***@{hostinfo}" if password is not None else parts.netloc
    query = "&".join(
        f"{key}=***" if key == "password" else f"{key}={value}"
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return parts._replace(netloc=netloc, query=query).geturl()


# --------------------------------------------------------------------------- models


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _fail(problems: Sequence[str]) -> None:
    if problems:
        raise ValueError("; ".join(problems))


class RateLimitWindow(_Frozen):
    """At most ``requests`` calls per ``per`` (one window of an account's budget)."""

    requests: int = Field(ge=1, strict=True)
    per: Duration

    @field_validator("per")
    @classmethod
    def _per_at_least_one_second(cls, value: timedelta) -> timedelta:
        if value < MIN_RATE_WINDOW:
            raise ValueError("must be at least 1s")
        return value


VENDOR_DEFAULT_RATE_LIMITS: Mapping[str, tuple[RateLimitWindow, ...]] = MappingProxyType(
    {
        "simplicate": (RateLimitWindow(requests=60, per=timedelta(minutes=1)),),
        "moneybird": (RateLimitWindow(requests=150, per=timedelta(minutes=5)),),
        "perfex": (RateLimitWindow(requests=1000, per=timedelta(hours=1)),),
        "simplbooks": (
            RateLimitWindow(requests=60, per=timedelta(minutes=1)),
            RateLimitWindow(requests=10000, per=timedelta(days=1)),
        ),
    }
)


class DatabaseSettings(_Frozen):
    """Where the canonical store lives; ``url`` may hold a password (masked in repr)."""

    url: str = DEFAULT_DATABASE_URL

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        problem = _database_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        yield "url", _redact_database_url(self.url)


class DaemonSettings(_Frozen):
    """The long-running process: admin endpoint, logging, shutdown."""

    admin_listen: str = DEFAULT_ADMIN_LISTEN
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    shutdown_grace: Duration = DEFAULT_SHUTDOWN_GRACE
    admin_token: SecretStr | None = None
    # PostgreSQL scale-out: how long an account's lease lasts without renewal (None: the
    # daemon's default, or $SYNCD_LEASE_TTL).
    lease_ttl: Duration | None = None

    @field_validator("admin_listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        problem = _listen_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("admin_token")
    @classmethod
    def _token_not_empty(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @property
    def admin_host(self) -> str:
        """Host part of ``admin_listen`` (IPv6 without brackets)."""
        return self.admin_listen.rpartition(":")[0].removeprefix("[").removesuffix("]")

    @property
    def admin_port(self) -> int:
        """Port part of ``admin_listen`` (0 asks the OS for a free port)."""
        return int(self.admin_listen.rpartition(":")[2])


class AccountSettings(_Frozen):
    """One vendor account: where it is, how to authenticate, how often and how fast to sync."""

    name: str
    vendor: Vendor
    base_url: str
    credentials: Mapping[str, SecretStr]
    poll_interval: Duration = DEFAULT_POLL_INTERVAL
    reconcile_interval: Duration = DEFAULT_RECONCILE_INTERVAL
    rate_limit: tuple[RateLimitWindow, ...] = ()
    webhook_secret: SecretStr | None = None
    allow_insecure_http: bool = False

    @model_validator(mode="before")
    @classmethod
    def _vendor_default_rate_limit(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not data.get("rate_limit"):
            default = VENDOR_DEFAULT_RATE_LIMITS.get(str(data.get("vendor")))
            if default is not None:
                return {**data, "rate_limit": default}
        return data

    @field_validator("base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check(self) -> AccountSettings:
        problems: list[str] = []
        name = _name_problem(self.name)
        if name:
            problems.append(f"name: {name}")
        problems += (
            f"base_url: {p}"
            for p in base_url_problems(self.vendor, self.base_url, self.allow_insecure_http)
        )
        problems += (
            f"credentials{'.' + key if key else ''}: {message}"
            for key, message in _credential_problems(self.vendor, list(self.credentials))
        )
        problems += (
            f"credentials.{key}: must not be empty"
            for key, value in self.credentials.items()
            if not value.get_secret_value()
        )
        if self.webhook_secret is not None and not self.webhook_secret.get_secret_value():
            problems.append("webhook_secret: must not be empty")
        if self.poll_interval < MIN_POLL_INTERVAL:
            problems.append("poll_interval: must be at least 10s")
        if self.reconcile_interval < MIN_RECONCILE_INTERVAL:
            problems.append("reconcile_interval: must be at least 1m")
        if not self.rate_limit:
            problems.append("rate_limit: needs at least one window")
        _fail(problems)
        return self


class FlowSettings(_Frozen):
    """Which accounts keep one resource in step, and how conflicts and deletes are settled."""

    resource: Resource
    accounts: tuple[str, ...]
    conflict: str = "newest"
    delete: DeletePolicy = "archive"
    max_delete_percent: int = Field(default=20, ge=0, le=100, strict=True)
    owner: Mapping[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> FlowSettings:
        problems: list[str] = []
        if len(set(self.accounts)) != len(self.accounts):
            problems.append("accounts: an account is listed twice")
        if len(set(self.accounts)) < 2:
            problems.append("accounts: a flow needs at least 2 distinct accounts")
        conflict = _conflict_problem(self.conflict, self.accounts)
        if conflict:
            problems.append(f"conflict: {conflict}")
        problems += (
            f"owner.{key}: {message}"
            for key, message in _owner_problems(self.resource, self.owner, self.accounts)
        )
        _fail(problems)
        return self

    @property
    def preferred_account(self) -> str | None:
        """The account named by ``prefer:<account>``, else None."""
        return (
            self.conflict.removeprefix("prefer:") if self.conflict.startswith("prefer:") else None
        )


class WorkspaceSettings(_Frozen):
    """A set of accounts whose records belong together, and the flows between them."""

    name: str
    accounts: tuple[AccountSettings, ...]
    flows: tuple[FlowSettings, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> WorkspaceSettings:
        problems: list[str] = []
        name = _name_problem(self.name)
        if name:
            problems.append(f"name: {name}")
        names = [account.name for account in self.accounts]
        problems += (f"duplicate account name {n!r}" for n in sorted(_duplicates(names)))
        seen: set[tuple[str, str]] = set()
        for index, flow in enumerate(self.flows):
            for account in flow.accounts:
                if account not in names:
                    problems.append(
                        f"flow[{index}]: account {account!r} is not in workspace {self.name!r}"
                    )
                if (flow.resource, account) in seen:
                    problems.append(
                        f"flow[{index}]: account {account!r} is in more than one "
                        f"{flow.resource} flow"
                    )
                seen.add((flow.resource, account))
        _fail(problems)
        return self


def _duplicates(items: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    repeated: set[str] = set()
    for item in items:
        (repeated if item in seen else seen).add(item)
    return repeated


class Settings(_Frozen):
    """Everything the config file says; build it with `load_settings` or `parse_settings`."""

    database: DatabaseSettings = DatabaseSettings()
    daemon: DaemonSettings = DaemonSettings()
    workspaces: tuple[WorkspaceSettings, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        problems = [
            f"duplicate workspace name {n!r}"
            for n in sorted(_duplicates(w.name for w in self.workspaces))
        ]
        problems += (
            f"duplicate account name {n!r}"
            for n in sorted(_duplicates(a.name for _, a in self.iter_accounts()))
        )
        _fail(problems)
        return self

    def iter_accounts(self) -> Iterator[tuple[WorkspaceSettings, AccountSettings]]:
        """Every account with its workspace, in file order."""
        for workspace in self.workspaces:
            for account in workspace.accounts:
                yield workspace, account

    def account(self, name: str) -> AccountSettings:
        """The account called ``name`` (names are unique across the file); KeyError if none."""
        for _, account in self.iter_accounts():
            if account.name == name:
                return account
        raise KeyError(name)

    def workspace(self, name: str) -> WorkspaceSettings:
        """The workspace called ``name``; KeyError if none."""
        for workspace in self.workspaces:
            if workspace.name == name:
                return workspace
        raise KeyError(name)

    def secret_values(self) -> frozenset[str]:
        """Every secret value in the settings, for log redaction."""
        found: set[str] = set(_database_passwords(self.database.url))
        if self.daemon.admin_token is not None:
            found.add(self.daemon.admin_token.get_secret_value())
        for _, account in self.iter_accounts():
            found.update(value.get_secret_value() for value in account.credentials.values())
            if account.webhook_secret is not None:
                found.add(account.webhook_secret.get_secret_value())
        found.discard("")
        return frozenset(found)


# --------------------------------------------------------------------------- file walker

# TOML keys per table: the model fields, plus the *_file form of each secret. Only the
# top level and workspaces differ, where TOML's [[workspace.account]] names are singular.
_TOP_KEYS = ("database", "daemon", "workspace")
_WORKSPACE_KEYS = ("name", "account", "flow")
_DATABASE_KEYS = (*DatabaseSettings.model_fields, "url" + _FILE_SUFFIX)
_DAEMON_KEYS = (*DaemonSettings.model_fields, "admin_token" + _FILE_SUFFIX)
_ACCOUNT_KEYS = (*AccountSettings.model_fields, "webhook_secret" + _FILE_SUFFIX)
_RATE_KEYS = tuple(RateLimitWindow.model_fields)
_FLOW_KEYS = tuple(FlowSettings.model_fields)

_TOML_TYPES: Mapping[type, str] = MappingProxyType(
    {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "an array"}
)


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    return _TOML_TYPES.get(type(value), "a date/time")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Walker:
    """One pass over the parsed TOML: clean values out, problems recorded along the way."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path) -> None:
        self.environ = environ
        self.base_dir = base_dir
        self.problems: list[Problem] = []
        self.secrets: set[str] = set()

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # ----------------------------------------------------------------- primitives

    def known_keys(self, table: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
        for key in table:
            if key not in allowed:
                self.add(_join(path, key), f"unknown key '{key}'" + _suggest(key, allowed))

    def interpolate(self, text: str, path: str, *, secret: bool) -> str | None:
        """Expand ${VAR} and ${VAR:-default}; "$${" is a literal "${". None when it fails."""
        out: list[str] = []
        ok = True
        i = 0
        while i < len(text):
            if text.startswith("$${", i):
                out.append("${")
                i += 3
                continue
            if not text.startswith("${", i):
                out.append(text[i])
                i += 1
                continue
            end = text.find("}", i + 2)
            if end < 0:
                self.add(path, "unterminated '${' (write '$${' for a literal '${')")
                return None
            expression = text[i + 2 : end]
            name, has_default, default = expression.partition(":-")
            i = end + 1
            if not _VAR_RE.fullmatch(name):
                shown = "" if secret else f" '${{{expression}}}'"
                self.add(
                    path,
                    f"invalid environment variable reference{shown}; "
                    "use ${NAME} or ${NAME:-default}",
                )
                ok = False
                continue
            value = self.environ.get(name)
            if has_default and not value:
                value = default
            if value is None:
                self.add(path, f"environment variable {name} is not set")
                ok = False
                continue
            out.append(value)
        return "".join(out) if ok else None

    def string(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        *,
        required: bool = False,
        secret: bool = False,
    ) -> str | None:
        where = _join(path, key)
        if key not in table:
            if required:
                self.add(where, f"missing required key '{key}'")
            return None
        value = table[key]
        if not isinstance(value, str):
            self.add(where, f"must be a string, not {_kind(value)}")
            return None
        return self.interpolate(value, where, secret=secret)

    def choice(
        self,
        table: Mapping[str, Any],
        key: str,
        path: str,
        choices: Sequence[str],
        *,
        required: bool = False,
    ) -> str | None:
        value = self.string(table, key, path, required=required)
        if value is None:
            return None
        if value.lower() in choices:
            return value.lower()
        self.add(
            _join(path, key),
            f"unknown {key} {value!r}; expected one of {', '.join(choices)}"
            + _suggest(value.lower(), choices),
        )
        return None

    def name(self, table: Mapping[str, Any], path: str) -> str | None:
        value = self.string(table, "name", path, required=True)
        if value is None:
            return None
        problem = _name_problem(value)
        if problem:
            self.add(_join(path, "name"), problem)
            return None
        return value

    def boolean(self, table: Mapping[str, Any], key: str, path: str) -> bool | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, bool):
            self.add(_join(path, key), f"must be true or false, not {_kind(value)}")
            return None
        return value

    def integer(
        self, table: Mapping[str, Any], key: str, path: str, *, low: int, high: int | None = None
    ) -> int | None:
        if key not in table:
            return None
        value = table[key]
        where = _join(path, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(where, f"must be an integer, not {_kind(value)}")
            return None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            self.add(where, f"must be {bound}, not {value}")
            return None
        return value

    def duration(
        self, table: Mapping[str, Any], key: str, path: str, *, minimum: timedelta
    ) -> timedelta | None:
        if key not in table:
            return None
        where = _join(path, key)
        if not isinstance(table[key], str):
            self.add(
                where, f"must be a duration string ({_DURATION_HINT}), not {_kind(table[key])}"
            )
            return None
        text = self.string(table, key, path)
        if text is None:
            return None
        try:
            value = parse_duration(text)
        except ValueError as exc:
            self.add(where, str(exc))
            return None
        if value < minimum:
            self.add(where, f"must be at least {format_duration(minimum)}, not {text}")
            return None
        return value

    def secret(
        self, table: Mapping[str, Any], key: str, path: str, *, required: bool = False
    ) -> str | None:
        """A secret given as ``key`` (maybe via ${ENV}) or as ``key_file`` (a path)."""
        file_key = key + _FILE_SUFFIX
        where = _join(path, key)
        if key in table and file_key in table:
            self.add(where, f"give either '{key}' or '{file_key}', not both")
            return None
        if file_key in table:
            location = self.string(table, file_key, path)
            if location is None:
                return None
            value = self.read_secret_file(location, _join(path, file_key))
        elif key in table:
            value = self.string(table, key, path, secret=True)
            if value == "":
                self.add(where, "must not be empty")
                return None
        else:
            if required:
                self.add(where, f"missing required key '{key}' (or '{file_key}')")
            return None
        if value is not None:
            self.secrets.add(value)
        return value

    def read_secret_file(self, location: str, where: str) -> str | None:
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = self.base_dir / path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            self.add(where, f"file {path} does not exist")
            return None
        except IsADirectoryError:
            self.add(where, f"file {path} is a directory")
            return None
        except PermissionError:
            self.add(where, f"file {path} is not readable (permission denied)")
            return None
        except OSError as exc:
            self.add(where, f"file {path} cannot be read: {exc.strerror or type(exc).__name__}")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.add(where, f"file {path} is not UTF-8 text")
            return None
        value = text.rstrip("\r\n")
        if not value:
            self.add(where, f"file {path} is empty")
            return None
        return value

    def table(self, parent: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, Mapping):
            self.add(_join(path, key), f"must be a table, not {_kind(value)}")
            return None
        return value

    def tables(
        self, parent: Mapping[str, Any], key: str, path: str
    ) -> list[tuple[str, Mapping[str, Any]]]:
        """The elements of an array of tables ([[key]]), each with its path."""
        if key not in parent:
            return []
        where = _join(path, key)
        value = parent[key]
        if isinstance(value, Mapping):
            header = re.sub(r"\[\d+\]", "", where)
            self.add(where, f"must be an array of tables: write [[{header}]]")
            return []
        if not isinstance(value, list):
            self.add(where, f"must be an array of tables, not {_kind(value)}")
            return []
        found: list[tuple[str, Mapping[str, Any]]] = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                found.append((f"{where}[{index}]", item))
            else:
                self.add(f"{where}[{index}]", f"must be a table, not {_kind(item)}")
        return found

    # ----------------------------------------------------------------- sections

    def settings(self, data: Mapping[str, Any]) -> dict[str, Any]:
        self.known_keys(data, _TOP_KEYS, "")
        out: dict[str, Any] = {
            "database": self.database(data),
            "daemon": self.daemon(data),
        }
        workspaces = self.tables(data, "workspace", "")
        # account name -> (workspace name, path of its name), for uniqueness and flow checks
        owners: dict[str, tuple[str | None, str]] = {}
        raw: list[tuple[str, Mapping[str, Any], str | None, list[dict[str, Any]]]] = []
        seen_workspaces: dict[str, str] = {}
        for path, table in workspaces:
            self.known_keys(table, _WORKSPACE_KEYS, path)
            name = self.name(table, path)
            if name is not None:
                if name in seen_workspaces:
                    self.add(
                        _join(path, "name"),
                        f"duplicate workspace name {name!r} (also {seen_workspaces[name]})",
                    )
                else:
                    seen_workspaces[name] = _join(path, "name")
            accounts: list[dict[str, Any]] = []
            account_tables = self.tables(table, "account", path)
            if table.get("account") in (None, []):
                self.add(path, "a workspace needs at least one [[workspace.account]]")
            for account_path, account_table in account_tables:
                account = self.account(account_table, account_path)
                account_name = account.get("name")
                if isinstance(account_name, str):
                    if account_name in owners:
                        self.add(
                            _join(account_path, "name"),
                            f"duplicate account name {account_name!r} "
                            f"(also {owners[account_name][1]}); account names are unique "
                            "across the whole file",
                        )
                    else:
                        owners[account_name] = (name, _join(account_path, "name"))
                accounts.append(account)
            raw.append((path, table, name, accounts))

        built: list[dict[str, Any]] = []
        used: dict[tuple[str, str], str] = {}
        for path, table, name, accounts in raw:
            members = {a["name"] for a in accounts if isinstance(a.get("name"), str)}
            flows = [
                self.flow(flow_table, flow_path, name, members, owners, used)
                for flow_path, flow_table in self.tables(table, "flow", path)
            ]
            built.append({"name": name, "accounts": accounts, "flows": flows})
        out["workspaces"] = built
        return out

    def database(self, data: Mapping[str, Any]) -> dict[str, Any]:
        table = self.table(data, "database", "")
        if table is None:
            return {}
        self.known_keys(table, _DATABASE_KEYS, "database")
        url = self.secret(table, "url", "database")
        if url is None:
            return {}
        problem = _database_problem(url)
        if problem:
            self.add("database.url", problem)
        return {"url": url}

    def daemon(self, data: Mapping[str, Any]) -> dict[str, Any]:
        table = self.table(data, "daemon", "")
        if table is None:
            return {}
        path = "daemon"
        self.known_keys(table, _DAEMON_KEYS, path)
        out: dict[str, Any] = {}
        listen = self.string(table, "admin_listen", path)
        if listen is not None:
            problem = _listen_problem(listen)
            if problem:
                self.add(_join(path, "admin_listen"), problem)
            out["admin_listen"] = listen
        for key, choices in (("log_format", LOG_FORMATS), ("log_level", LOG_LEVELS)):
            value = self.choice(table, key, path, choices)
            if value is not None:
                out[key] = value
        grace = self.duration(table, "shutdown_grace", path, minimum=timedelta(0))
        if grace is not None:
            out["shutdown_grace"] = grace
        token = self.secret(table, "admin_token", path)
        if token is not None:
            out["admin_token"] = token
        ttl = self.duration(table, "lease_ttl", path, minimum=MIN_LEASE_TTL)
        if ttl is not None:
            out["lease_ttl"] = ttl
        return out

    def account(self, table: Mapping[str, Any], path: str) -> dict[str, Any]:
        self.known_keys(table, _ACCOUNT_KEYS, path)
        out: dict[str, Any] = {}
        name = self.name(table, path)
        vendor = self.choice(table, "vendor", path, VENDORS, required=True)
        allow_insecure = self.boolean(table, "allow_insecure_http", path)
        base_url = self.string(table, "base_url", path, required=True)
        if base_url is not None:
            for problem in base_url_problems(vendor, base_url, bool(allow_insecure)):
                self.add(_join(path, "base_url"), problem)
        credentials = self.credentials(table, path, vendor)
        intervals = {
            key: self.duration(table, key, path, minimum=minimum)
            for key, minimum in (
                ("poll_interval", MIN_POLL_INTERVAL),
                ("reconcile_interval", MIN_RECONCILE_INTERVAL),
            )
        }
        rate_limit = self.rate_limit(table, path)
        webhook_secret = self.secret(table, "webhook_secret", path)
        for key, value in (
            ("name", name),
            ("vendor", vendor),
            ("base_url", base_url),
            ("credentials", credentials),
            *intervals.items(),
            ("rate_limit", rate_limit),
            ("webhook_secret", webhook_secret),
            ("allow_insecure_http", allow_insecure),
        ):
            if value is not None:
                out[key] = value
        return out

    def credentials(
        self, table: Mapping[str, Any], path: str, vendor: str | None
    ) -> dict[str, str] | None:
        where = _join(path, "credentials")
        if "credentials" not in table:
            needs = (
                f"; {vendor} needs {_describe_shape(_CREDENTIAL_SHAPES[vendor])}" if vendor else ""
            )
            self.add(where, "missing required key 'credentials'" + needs)
            return None
        creds = self.table(table, "credentials", path)
        if creds is None:
            return None
        names = list(dict.fromkeys(key.removesuffix(_FILE_SUFFIX) for key in creds))
        if vendor is not None:
            for key, message in _credential_problems(vendor, names):
                if key is None:
                    self.add(where, message)
                else:
                    # Point at the key as written (it may be the *_file form).
                    written = key if key in creds else key + _FILE_SUFFIX
                    self.add(_join(where, written), message)
        out: dict[str, str] = {}
        for key in names:
            value = self.secret(creds, key, where)
            if value is not None:
                out[key] = value
        return out

    def rate_limit(self, table: Mapping[str, Any], path: str) -> list[dict[str, Any]] | None:
        if "rate_limit" not in table:
            return None
        where = _join(path, "rate_limit")
        value = table["rate_limit"]
        if not isinstance(value, list):
            self.add(where, f"must be an array of {{ requests, per }} tables, not {_kind(value)}")
            return None
        if not value:
            self.add(
                where, "needs at least one window; leave rate_limit out for the vendor default"
            )
            return None
        windows: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            item_path = f"{where}[{index}]"
            if not isinstance(item, Mapping):
                self.add(
                    item_path,
                    f'must be a table like {{ requests = 60, per = "1m" }}, not {_kind(item)}',
                )
                continue
            self.known_keys(item, _RATE_KEYS, item_path)
            for key in _RATE_KEYS:
                if key not in item:
                    self.add(_join(item_path, key), f"missing required key '{key}'")
            requests = self.integer(item, "requests", item_path, low=1)
            per = self.duration(item, "per", item_path, minimum=MIN_RATE_WINDOW)
            windows.append({"requests": requests, "per": per})
        return windows

    def flow(
        self,
        table: Mapping[str, Any],
        path: str,
        workspace: str | None,
        members: set[str],
        owners: Mapping[str, tuple[str | None, str]],
        used: dict[tuple[str, str], str],
    ) -> dict[str, Any]:
        self.known_keys(table, _FLOW_KEYS, path)
        out: dict[str, Any] = {}
        resource = self.choice(table, "resource", path, RESOURCES, required=True)
        accounts = self.flow_accounts(table, path, workspace, members, owners)
        listed = [name for name in accounts or () if name is not None]
        if resource is not None and accounts is not None:
            for index, name in enumerate(accounts):
                if name is None or name not in members:
                    continue
                slot = (resource, name)
                if slot in used:
                    self.add(
                        f"{path}.accounts[{index}]",
                        f"account {name!r} is already in {used[slot]}; an account may be in "
                        f"only one {resource} flow",
                    )
                else:
                    used[slot] = path
        conflict = self.string(table, "conflict", path)
        # Without a usable account list, a prefer: target cannot be judged yet.
        if conflict is not None and (accounts is not None or not conflict.startswith("prefer:")):
            problem = _conflict_problem(conflict, listed)
            if problem:
                self.add(_join(path, "conflict"), problem)
        delete = self.choice(table, "delete", path, DELETE_POLICIES)
        percent = self.integer(table, "max_delete_percent", path, low=0, high=100)
        owner = self.owner(table, path, resource, listed if accounts is not None else None)
        for key, value in (
            ("resource", resource),
            ("accounts", listed),
            ("conflict", conflict),
            ("delete", delete),
            ("max_delete_percent", percent),
            ("owner", owner),
        ):
            if value is not None:
                out[key] = value
        return out

    def flow_accounts(
        self,
        table: Mapping[str, Any],
        path: str,
        workspace: str | None,
        members: set[str],
        owners: Mapping[str, tuple[str | None, str]],
    ) -> list[str | None] | None:
        where = _join(path, "accounts")
        if "accounts" not in table:
            self.add(where, "missing required key 'accounts'")
            return None
        value = table["accounts"]
        if not isinstance(value, list):
            self.add(where, f"must be an array of account names, not {_kind(value)}")
            return None
        names: list[str | None] = []
        complete = True
        for index, item in enumerate(value):
            item_path = f"{where}[{index}]"
            if not isinstance(item, str):
                self.add(item_path, f"must be an account name (a string), not {_kind(item)}")
                names.append(None)
                complete = False
                continue
            name = self.interpolate(item, item_path, secret=False)
            names.append(name)
            if name is None:
                complete = False
            elif name in names[:index]:
                self.add(item_path, f"account {name!r} is listed twice")
            elif name not in members and workspace is not None:
                other = owners.get(name)
                if other is not None and other[0] is not None:
                    self.add(
                        item_path,
                        f"account {name!r} belongs to workspace {other[0]!r}, not {workspace!r}",
                    )
                else:
                    self.add(
                        item_path,
                        f"unknown account {name!r}; accounts of workspace {workspace!r}: "
                        f"{', '.join(sorted(members)) or 'none'}" + _suggest(name, sorted(members)),
                    )
        if complete and len({n for n in names if n is not None}) < 2:
            self.add(where, "a flow needs at least 2 distinct accounts")
        return names

    def owner(
        self,
        table: Mapping[str, Any],
        path: str,
        resource: str | None,
        members: Sequence[str] | None,
    ) -> dict[str, str] | None:
        owner = self.table(table, "owner", path)
        if owner is None:
            return None
        where = _join(path, "owner")
        out: dict[str, str] = {}
        for field in owner:
            value = self.string(owner, field, where)
            if value is not None:
                out[field] = value
        if resource is not None and members is not None:
            for field, message in _owner_problems(resource, out, members):
                self.add(_join(where, field), message)
        return out

    # ----------------------------------------------------------------- result

    def redacted(self) -> list[Problem]:
        """The problems with any secret value that slipped into a message masked.

        Messages never quote a secret field; this catches a secret pasted into a
        non-secret one. Values shorter than `_MIN_REDACTED` are left alone: masking "k"
        would garble every message while protecting nothing worth a secret's name.
        """
        secrets = sorted(
            (s for s in self.secrets if len(s) >= _MIN_REDACTED), key=len, reverse=True
        )
        cleaned: list[Problem] = []
        for problem in self.problems:
            message = problem.message
            for secret in secrets:
                message = message.replace(secret, "***")
            cleaned.append(Problem(problem.path, message))
        return cleaned


def _loc_path(loc: Sequence[int | str]) -> str:
    path = ""
    names = {"workspaces": "workspace", "accounts": "account", "flows": "flow"}
    for depth, part in enumerate(loc):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            # Model field names differ from TOML keys only for the nested arrays of tables.
            path = _join(path, names.get(part, part) if depth < 3 else part)
    return path


def parse_settings(
    data: Mapping[str, Any], *, environ: Mapping[str, str], base_dir: Path
) -> Settings:
    """Validate parsed TOML into `Settings`, or raise `ConfigError` listing every problem.

    ``environ`` feeds ${VAR} interpolation; relative ``*_file`` paths resolve against
    ``base_dir`` (the config file's directory).
    """
    walker = _Walker(environ, base_dir)
    clean = walker.settings(data)
    if walker.problems:
        raise ConfigError(walker.redacted())
    try:
        return Settings.model_validate(clean)
    except ValidationError as exc:
        # The walker checks the same rules first; this only fires if the two drift apart.
        for error in exc.errors(include_url=False, include_input=False):
            walker.add(_loc_path(error["loc"]), error["msg"].removeprefix("Value error, "))
        raise ConfigError(walker.redacted()) from None


def load_settings(path: Path, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the TOML config file at ``path``; `ConfigError` lists every problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem("", f"config file {path} does not exist")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem("", f"config file {path} is a directory")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([Problem("", f"cannot read config file {path}: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem("", f"config file {path} is not UTF-8 text (byte {exc.start})")]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("", f"{path}: invalid TOML: {exc}")]) from None
    return parse_settings(
        data,
        environ=os.environ if environ is None else environ,
        base_dir=path.absolute().parent,
    )
