"""Engine and session factories, the declarative base, and the column types every table shares."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, MetaData, Numeric, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator, TypeEngine

__all__ = [
    "NAMING_CONVENTION",
    "Base",
    "ExactNumeric",
    "Id",
    "Json",
    "Money",
    "UTCDateTime",
    "create_engine",
    "create_sessionmaker",
    "prepare_sqlite_file",
    "redact_url",
    "utcnow",
]

# Every constraint gets a predictable name, so later migrations can drop or alter it by
# name on both backends (SQLite batch mode needs names to recreate tables faithfully).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Beyond 15 significant digits SQLite (which stores NUMERIC values as REAL) cannot hold a
# decimal exactly; we refuse such values rather than lose cents silently.
_SQLITE_EXACT_DIGITS = 15


class Base(DeclarativeBase):
    """Declarative base of every syncd table; its metadata names constraints by convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime (column defaults only)."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is stored in UTC and always read back timezone-aware UTC.

    Naive datetimes are refused on write: syncd never guesses a timezone. On SQLite the
    value is stored as naive UTC text (same format for every row, so ordering holds).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: object, dialect: Dialect) -> datetime | None:
        """Refuse naive or non-datetime values; convert aware ones to UTC."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"UTCDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime refused: syncd stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Attach UTC to what SQLite returns naive; normalise aware values to UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class ExactNumeric(TypeDecorator[Decimal]):
    """``Numeric(p, s)`` that takes and returns ``Decimal`` only, and never rounds silently."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def process_bind_param(self, value: object, dialect: Dialect) -> Decimal | None:
        """Refuse floats, non-finite values and anything the column would round."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"expected Decimal, got {type(value).__name__} (money is never float)")
        value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"{value} cannot be stored in a NUMERIC column")
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        if -exponent > self.scale and value != value.quantize(Decimal(1).scaleb(-self.scale)):
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        integer_digits = value.adjusted() + 1
        if integer_digits > self.precision - self.scale:
            raise ValueError(f"{value} does not fit NUMERIC({self.precision}, {self.scale})")
        if dialect.name == "sqlite":
            significant = max(integer_digits, 1) + self.scale
            if significant > _SQLITE_EXACT_DIGITS:
                raise ValueError(f"{value} has too many digits to be stored exactly on SQLite")
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        """Return a ``Decimal`` with exactly the column's scale on every backend."""
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal(1).scaleb(-self.scale))


# Money: 16 integer digits and cents.
Money = ExactNumeric(18, 2)

# Integer keys: BIGINT on PostgreSQL, INTEGER on SQLite (only INTEGER PRIMARY KEY autoincrements).
Id: TypeEngine[int] = BigInteger().with_variant(Integer(), "sqlite")

# JSON documents: JSONB on PostgreSQL; Python None is SQL NULL (not the JSON literal null).
Json: TypeEngine[Any] = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def redact_url(url: str | URL) -> str:
    """Render a database URL with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def prepare_sqlite_file(url: str | URL) -> None:
    """Create a file SQLite database's parent directory and an empty file with mode 0600.

    Does nothing for in-memory databases, other backends, or a file that already exists.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # O_EXCL: if another process created it in between, leave its file (and mode) alone.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    # The umask may have removed bits but never adds any; make 0600 exact anyway.
    path.chmod(0o600)


def _sqlite_pragmas(foreign_keys: bool) -> Any:
    """Build a connect hook that sets syncd's PRAGMAs on every new SQLite connection."""

    def on_connect(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
        finally:
            cursor.close()

    return on_connect


def create_engine(url: str, *, sqlite_foreign_keys: bool = True) -> AsyncEngine:
    """Create the async engine for ``url`` (``sqlite+aiosqlite://`` or ``postgresql+asyncpg://``).

    SQLite: the file (and its directory) is created mode 0600 before the first connect, and
    every connection gets ``foreign_keys=ON``, ``journal_mode=WAL`` and ``busy_timeout=5000``.
    ``sqlite_foreign_keys=False`` is for schema migrations only (table rebuilds need it).
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        prepare_sqlite_file(parsed)
        engine = _create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(sqlite_foreign_keys))
        return engine
    if backend == "postgresql":
        # A daemon holds few concurrent sessions per account; pre-ping survives DB restarts,
        # recycle drops connections before typical server/proxy idle timeouts.
        return _create_async_engine(
            parsed,
            pool_size=5,
            max_overflow=10,
            pool_timeout=30,
            pool_recycle=1800,
            pool_pre_ping=True,
        )
    raise ValueError(
        f"unsupported database URL {redact_url(parsed)}: use sqlite+aiosqlite:// or postgresql+asyncpg://"
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Create the session factory; objects stay usable after commit (no implicit reloads)."""
    return async_sessionmaker(engine, expire_on_commit=False)
