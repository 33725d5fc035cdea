"""One exception tree for syncd, grouped by what the caller should do about it.

- ``Fatal``: stop this account (or the process) until a human acts: bad credentials,
  a vendor that refuses our requests outright, a broken schema.
- ``Retryable``: try again later, optionally after ``retry_after`` seconds: 429, 5xx on a
  safe call, a connection failure before anything was sent.
- ``Uncertain``: a write was sent and we do not know whether it landed (timeout, reset,
  5xx after send). Settle it by looking the record up before any retry.
- ``NotFound``: the vendor says this record does not exist.
- ``SkipRecord``: this one record cannot be processed (unmappable vendor data, a
  validation error on write); quarantine it and carry on with the rest.
- ``SafetyStop``: a guard refused a pass (mass delete, a side that suddenly lists nothing).
- ``ConfigError``: the configuration is invalid; carries every problem at once.

Messages never contain secret values: callers pass vendor messages and identifiers only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""


class Fatal(SyncdError):
    """Not recoverable without a human: stop the account and say why."""


class AuthFailed(Fatal):
    """The vendor rejected our credentials; the account is paused as auth-failed."""


class SchemaBehind(Fatal):
    """The database schema is older than this version of syncd."""


class Retryable(SyncdError):
    """Transient: the same call may succeed later."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(Retryable):
    """The vendor answered 429: a budget miss. ``retry_after`` says how long to pause."""


class QuotaExhausted(Retryable):
    """A daily quota ran out: the account is parked until ``retry_after`` seconds pass."""


class VendorUnavailable(Retryable):
    """5xx, connection refused, DNS, or a garbled/HTML body on a safe call."""


class NotFound(SyncdError):
    """The vendor says the record does not exist (a plain 404 on a record URL)."""


class Uncertain(SyncdError):
    """A write was sent but its outcome is unknown; look it up before retrying."""


class SkipRecord(SyncdError):
    """One record cannot be processed; it is quarantined with ``reason``."""

    def __init__(self, reason: str, *, external_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.external_id = external_id


class SafetyStop(SyncdError):
    """A guard refused the pass; nothing was pushed."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One configuration problem: where in the TOML, and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(SyncdError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the configuration:\n{lines}")
