"""Logging: structlog JSON lines or console output, stdlib loggers routed through it, secrets redacted.

``configure_logging`` installs one handler on the root stdlib logger whose formatter is a
``structlog.stdlib.ProcessorFormatter``. structlog events and records from stdlib loggers
(aiohttp, sqlalchemy, apscheduler, alembic, anything else) end in the same final chain:

    drop structlog's meta keys -> format exceptions to text -> redact -> render

so every line, whoever wrote it, carries an ISO UTC ``timestamp``, ``level``, ``logger``,
the context bound with ``bind_context`` (workspace, account, run_id...) and the event,
and no line can carry a secret past the redaction step.

Redaction:

- every configured secret value (``secrets=`` / ``add_secrets``) is replaced by ``***``
  wherever it occurs as a substring: in the event text, in any value, in keys, inside
  nested dicts, lists, tuples and sets, in the text of exceptions and their rendered
  tracebacks, in the repr of any other object;
- the value under a known secret key (``SECRET_KEYS``: ``Authorization``, ``X-API-KEY``,
  ``token``, ``password``... compared case-insensitively, ``-`` and ``_`` alike) is
  replaced by ``***`` whatever it is, so a header dict is safe even before its secret is
  configured;
- secrets shorter than ``MIN_SECRET_LENGTH`` (4) characters are not used for substring
  redaction: they are not real credentials, and replacing every "a" or "12" in every
  line would make the logs unreadable while showing exactly where the short value
  occurs, which gives it away anyway;
- secrets are only ever added within a process, never forgotten: a rotated value still
  appears in old exception texts and vendor echoes.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED: Final = "***"
MIN_SECRET_LENGTH: Final = 4
LOG_FORMATS: Final = ("auto", "json", "console")
LOG_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _key_form(key: str) -> str:
    return key.casefold().replace("-", "_")


# Header and field names whose value is a credential, whatever the value looks like.
SECRET_KEYS: Final[frozenset[str]] = frozenset(
    _key_form(k)
    for k in (
        "Authentication-Secret",  # Simplicate
        "Authentication-Key",  # Simplicate
        "Authorization",
        "Proxy-Authorization",
        "X-API-KEY",  # Perfex
        "X-Simplbooks-Token",  # SimplBooks
        "authtoken",  # Perfex JWT header
        "token",
        "secret",
        "password",
        "api_key",
        "apikey",
        "jwt",
        "access_token",
        "refresh_token",
        "client_secret",
        "webhook_secret",
        "credentials",
        "cookie",
        "set-cookie",
    )
)

# stdlib loggers that are chatty at INFO (SQL statements, one line per job run): kept at
# WARNING unless the daemon runs at DEBUG, when they get the level given here. The level is
# set explicitly, not left to inherit: importing sqlalchemy sets its own "sqlalchemy"
# logger to WARNING, which would otherwise silence every SQL statement even at DEBUG.
# sqlalchemy.engine at INFO logs statements and their parameters; its DEBUG adds every
# result row, which no one reading a daemon's log wants.
_NOISY_LOGGERS: Final[Mapping[str, int]] = {
    "sqlalchemy.engine": logging.INFO,
    "aiosqlite": logging.DEBUG,
    "apscheduler.executors": logging.DEBUG,
}
_ROUTED_LOGGERS: Final = ("aiohttp", "sqlalchemy", "apscheduler", "alembic", "asyncio")

_MAX_DEPTH: Final = 20


class _Redactor:
    """A structlog processor that removes secret values from an event dict."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def add(self, values: Iterable[str]) -> None:
        merged = set(self._secrets)
        merged.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH)
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = tuple(sorted(merged, key=lambda s: (-len(s), s)))

    def clear(self) -> None:
        self._secrets = ()

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def _contains_secret(self, value: str) -> bool:
        return any(secret in value for secret in self._secrets)

    def value(self, value: Any, depth: int = 0) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str):
            return self.text(value)
        if depth >= _MAX_DEPTH:
            return self.text(repr(value))
        if isinstance(value, Mapping):
            return self.mapping(value, depth + 1)
        if isinstance(value, list | tuple | set | frozenset):
            items = [self.value(v, depth + 1) for v in value]
            if isinstance(value, list):
                return items
            if isinstance(value, tuple):
                return tuple(items)
            return items  # a set of redacted values may no longer be hashable; a list is fine
        if isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8", "replace")
            return self.text(text) if self._contains_secret(text) else value
        if isinstance(value, BaseException):
            return self.text(f"{type(value).__name__}: {value}")
        # Numbers, datetimes, arbitrary objects: the renderer will show their repr/str.
        shown = repr(value)
        if self._contains_secret(shown) or self._contains_secret(str(value)):
            return self.text(shown)
        return value

    def mapping(self, data: Mapping[Any, Any], depth: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, item in data.items():
            shown_key = self.text(key) if isinstance(key, str) else key
            if isinstance(key, str) and _key_form(key) in SECRET_KEYS:
                result[shown_key] = REDACTED
            else:
                result[shown_key] = self.value(item, depth)
        return result

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return self.mapping(event_dict, 0)


_REDACTOR: Final = _Redactor()
# Logger levels as they were before the first configure_logging, for reset_logging.
_saved_levels: dict[str, int] | None = None


class _SyncdHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one root handler configure_logging owns (found again by its class)."""


# Attributes every LogRecord has, plus those other handlers' formatters add to it.
_RECORD_ATTRS: Final = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "color_message",
    "taskName",
}


def _add_extras(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # ``extra=`` values of a stdlib record; its own attributes and private ones stay out.
    record = event_dict.get("_record")
    if isinstance(record, logging.LogRecord):
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                event_dict.setdefault(key, value)
    return event_dict


def _foreign_stack(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    # A stdlib record's stack_info is already text; show it under structlog's key.
    stack = event_dict.pop("stack_info", None)
    if isinstance(stack, str):
        event_dict["stack"] = stack
    return event_dict


def _timestamper() -> Processor:
    return structlog.processors.TimeStamper(fmt="iso", utc=True)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def add_secrets(values: Iterable[str]) -> None:
    """Add secret values to redact from now on (e.g. after a config reload)."""
    _REDACTOR.add(values)


def redact(value: Any) -> Any:
    """``value`` with every configured secret (and secret-keyed entry) replaced by ``***``."""
    return _REDACTOR.value(value)


_QUIETED: set[str] = set()


def configure_logging(
    *,
    log_format: str = "auto",
    log_level: str = "info",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    quiet: Iterable[str] = (),
) -> None:
    """Set up structlog and the stdlib root logger; safe to call again (no duplicate handlers).

    ``log_format``: ``json`` (one JSON object per line), ``console`` (structlog's console
    renderer) or ``auto`` (console when ``stream`` is a TTY, JSON otherwise).
    ``stream`` defaults to stderr. ``secrets`` are added to the redaction set.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}")
    level = LOG_LEVELS.get(log_level.lower())
    if level is None:
        raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}")
    out = stream if stream is not None else sys.stderr
    _REDACTOR.add(secrets)
    # Loggers that narrate routine work at INFO (alembic's schema checks) are held to
    # WARNING for this configuration only: the next call starts from their defaults.
    for name in _QUIETED:
        logging.getLogger(name).setLevel(logging.NOTSET)
    _QUIETED.clear()
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
        _QUIETED.add(name)

    tty = _is_tty(out)
    renderer: Processor
    if log_format == "console" or (log_format == "auto" and tty):
        # Exceptions arrive pre-formatted (and redacted) as text: plain output, no locals.
        renderer = structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        renderer = structlog.processors.JSONRenderer()

    foreign_pre_chain: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _add_extras,
        _foreign_stack,
        _timestamper(),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _REDACTOR,
            renderer,
        ],
    )
    handler = _SyncdHandler(out)
    handler.setFormatter(formatter)

    global _saved_levels
    if _saved_levels is None:
        _saved_levels = {n: logging.getLogger(n or None).level for n in ("", *_NOISY_LOGGERS)}
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SyncdHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _ROUTED_LOGGERS:
        logging.getLogger(name).propagate = True
    for name, debug_level in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(debug_level if level <= logging.DEBUG else logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.PositionalArgumentsFormatter(),
            _timestamper(),
            structlog.processors.StackInfoRenderer(),
            # Format while still inside the except block; the formatter's own
            # format_exc_info then handles stdlib records only.
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a logger first used before configure_logging must not keep the
        # default (unredacted) chain for the life of the process.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo configure_logging: handler, logger levels, secrets, structlog config (tests)."""
    global _saved_levels
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _SyncdHandler)]:
        root.removeHandler(old)
        old.close()
    if _saved_levels is not None:
        for name, level in _saved_levels.items():
            logging.getLogger(name or None).setLevel(level)
        _saved_levels = None
    _REDACTOR.clear()
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A structlog logger backed by the stdlib logger ``name`` (root when None)."""
    return structlog.stdlib.get_logger(name)


def bind_context(**values: Any) -> None:
    """Bind key/values to every log line of the current task/thread (contextvars)."""
    structlog.contextvars.bind_contextvars(**values)


def unbind_context(*keys: str) -> None:
    """Remove keys bound with bind_context."""
    structlog.contextvars.unbind_contextvars(*keys)


def clear_context() -> None:
    """Remove everything bound with bind_context in the current context."""
    structlog.contextvars.clear_contextvars()


def bound_context(**values: Any) -> AbstractContextManager[None]:
    """Bind key/values for the duration of a ``with`` block, restoring the previous ones."""
    return cast(AbstractContextManager[None], structlog.contextvars.bound_contextvars(**values))


__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "SECRET_KEYS",
    "add_secrets",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redact",
    "reset_logging",
    "unbind_context",
]
