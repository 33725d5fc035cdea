"""Who works on which account: leases with fencing tokens, and the SQLite instance lock.

PostgreSQL (any number of instances on one database)
    Each account has at most one row in ``leases``: its holder (``owner``), until when
    (``expires_at``), and a fencing token that only ever increases. ``acquire`` creates the
    row (``INSERT ... ON CONFLICT DO NOTHING``) or takes over an expired one with a
    conditional ``UPDATE ... WHERE expires_at <= now`` that bumps the token; the row lock
    of that UPDATE makes concurrent acquirers queue, and the loser's WHERE no longer
    matches once the winner commits, so exactly one of them gets the account. Rows are
    never deleted (``release`` only expires the lease), so a token is never handed out
    twice for one account.

    A holder renews well before ``expires_at`` (say every third of the ttl). A holder that
    stalls past ``expires_at`` may lose the account, and then its writes must not land:
    every transaction that writes on behalf of an account calls ``check_fence`` first. On
    PostgreSQL it reads the lease row ``FOR SHARE``, which blocks a takeover's UPDATE
    until the writing transaction ends, so a takeover is ordered entirely before (the
    check fails: ``StaleLease``) or entirely after (the writes committed under the old,
    still valid token) the write.

    Each instance also holds a ``Liveness`` advisory lock on a connection of its own: a
    process that died (crash, SIGKILL, OOM) drops it with its connection, and the next
    instance to look (``owner_gone``) expires the dead one's leases at once instead of
    after their ttl. A host that vanishes without closing its connections is still only
    noticed when the leases expire.

    Times are passed in (``now``) so tests need no clock; instances on different hosts
    should keep their clocks in sync (NTP), and the ttl should dwarf the skew.

SQLite (one process)
    ``acquire_instance_lock`` takes an exclusive ``flock`` on ``<database>.lock`` next to
    the database file and keeps it for the life of the process. A second instance on the
    same file is refused with ``InstanceLocked`` naming the holder's pid. The kernel drops
    the lock when the holder exits, however it exits, so a crash leaves nothing to clean.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL, CursorResult, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from syncd.errors import Fatal, SyncdError
from syncd.store.tables import Lease

__all__ = [
    "InstanceLock",
    "InstanceLocked",
    "LeaseGrant",
    "LeaseState",
    "Liveness",
    "SessionSource",
    "StaleLease",
    "acquire",
    "acquire_instance_lock",
    "check_fence",
    "expire_owner",
    "get_lease",
    "instance_lock_for_url",
    "liveness_key",
    "owner_gone",
    "release",
    "renew",
]

_LEASES = cast(Table, Lease.__table__)

# A session (the caller owns the transaction and commits) or a factory (each call runs in
# its own transaction and commits before returning).
SessionSource = AsyncSession | async_sessionmaker[AsyncSession]


class StaleLease(SyncdError):
    """This instance no longer holds the account's lease: a newer fencing token exists."""

    def __init__(self, account_id: int, token: int, current: int | None) -> None:
        if current is None:
            detail = "there is no lease for it"
        else:
            detail = f"the lease is now at fencing token {current}"
        super().__init__(
            f"lease on account {account_id} was lost (held token {token}, {detail}); write refused"
        )
        self.account_id = account_id
        self.token = token
        self.current = current


class InstanceLocked(Fatal):
    """Another syncd process already runs on this SQLite database."""

    def __init__(self, lock_path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "pid unknown"
        super().__init__(
            f"another syncd instance is running on this database ({holder}); "
            f"lock file {lock_path}. SQLite allows one instance: stop the other one, "
            "or use PostgreSQL to run several"
        )
        self.lock_path = lock_path
        self.pid = pid


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """A lease this instance now holds: pass ``fencing_token`` to ``check_fence``."""

    account_id: int
    owner: str
    fencing_token: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseState:
    """An account's lease row as stored (for status output)."""

    account_id: int
    owner: str
    fencing_token: int
    acquired_at: datetime
    expires_at: datetime

    def expired(self, now: datetime) -> bool:
        """True when anyone may take the account over at ``now``."""
        return self.expires_at <= now


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("naive datetime refused: lease times are timezone-aware UTC")
    return now.astimezone(UTC)


def _check_ttl(ttl: timedelta) -> None:
    if ttl <= timedelta(0):
        raise ValueError(f"lease ttl must be positive, not {ttl}")


@contextlib.asynccontextmanager
async def _transaction(source: SessionSource) -> AsyncIterator[AsyncSession]:
    """The caller's session as is, or a new session whose transaction commits on exit."""
    if isinstance(source, AsyncSession):
        yield source
        return
    async with source() as session, session.begin():
        yield session


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _grant(row: Any) -> LeaseGrant:
    return LeaseGrant(
        account_id=row.account_id,
        owner=row.owner,
        fencing_token=row.fencing_token,
        expires_at=row.expires_at,
    )


async def _read(session: AsyncSession, account_id: int) -> Any:
    query = select(
        _LEASES.c.account_id, _LEASES.c.owner, _LEASES.c.fencing_token, _LEASES.c.expires_at
    ).where(_LEASES.c.account_id == account_id)
    return (await session.execute(query)).one()


async def acquire(
    source: SessionSource,
    account_id: int,
    owner: str,
    ttl: timedelta,
    now: datetime | None = None,
) -> LeaseGrant | None:
    """Take (or keep) the lease on an account for ``ttl``; None while another holds it.

    - no lease row yet: create it with fencing token 1;
    - ``owner`` already holds an unexpired lease: extend it, same token;
    - the lease expired (whoever held it, ``owner`` too): take it over, token + 1;
    - someone else holds an unexpired lease: None.
    """
    _check_ttl(ttl)
    at = _now(now)
    expires = at + ttl
    async with _transaction(source) as session:
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        created = await session.execute(
            insert(_LEASES)
            .values(
                account_id=account_id,
                owner=owner,
                fencing_token=1,
                acquired_at=at,
                expires_at=expires,
            )
            .on_conflict_do_nothing(index_elements=[_LEASES.c.account_id])
        )
        if _rowcount(created) == 1:
            return LeaseGrant(account_id, owner, 1, expires)

        # Our own live lease: extend it and keep the token (nobody else wrote meanwhile).
        kept = await session.execute(
            update(_LEASES)
            .where(
                _LEASES.c.account_id == account_id,
                _LEASES.c.owner == owner,
                _LEASES.c.expires_at > at,
            )
            .values(expires_at=expires)
        )
        if _rowcount(kept) == 0:
            # Take over an expired lease. On PostgreSQL a concurrent acquirer waits on the
            # row lock and then re-checks this WHERE against the committed row: one wins.
            taken = await session.execute(
                update(_LEASES)
                .where(_LEASES.c.account_id == account_id, _LEASES.c.expires_at <= at)
                .values(
                    owner=owner,
                    fencing_token=_LEASES.c.fencing_token + 1,
                    acquired_at=at,
                    expires_at=expires,
                )
            )
            if _rowcount(taken) == 0:
                return None
        # We hold the row lock from the UPDATE: this reads what we just wrote.
        return _grant(await _read(session, account_id))


async def renew(
    source: SessionSource,
    grant: LeaseGrant,
    ttl: timedelta,
    now: datetime | None = None,
) -> LeaseGrant | None:
    """Extend a held lease to ``now + ttl``; None if it was lost (taken over or released).

    Renewal succeeds as long as the fencing token is unchanged, even slightly after
    ``expires_at``: an unchanged token means nobody else has held the account since.
    """
    _check_ttl(ttl)
    at = _now(now)
    expires = at + ttl
    async with _transaction(source) as session:
        result = await session.execute(
            update(_LEASES)
            .where(
                _LEASES.c.account_id == grant.account_id,
                _LEASES.c.owner == grant.owner,
                _LEASES.c.fencing_token == grant.fencing_token,
            )
            .values(expires_at=expires)
        )
        if _rowcount(result) == 0:
            return None
    return LeaseGrant(grant.account_id, grant.owner, grant.fencing_token, expires)


async def release(source: SessionSource, grant: LeaseGrant, now: datetime | None = None) -> bool:
    """Give the account up at once (it expires ``now``); False if it was already lost.

    The row stays, so the next holder's token is still higher than ``grant``'s.
    """
    at = _now(now)
    async with _transaction(source) as session:
        result = await session.execute(
            update(_LEASES)
            .where(
                _LEASES.c.account_id == grant.account_id,
                _LEASES.c.owner == grant.owner,
                _LEASES.c.fencing_token == grant.fencing_token,
            )
            .values(expires_at=at)
        )
        return _rowcount(result) == 1


async def check_fence(session: AsyncSession, account_id: int, token: int) -> None:
    """Raise ``StaleLease`` unless ``token`` is still the account's current fencing token.

    Call it inside the transaction that writes for the account, before the writes. On
    PostgreSQL the lease row is read ``FOR SHARE``: a takeover (an UPDATE of that row)
    waits until this transaction ends, so it cannot slip in between check and commit.
    On SQLite the instance lock already guarantees a single writer.
    """
    query = (
        select(_LEASES.c.fencing_token)
        .where(_LEASES.c.account_id == account_id)
        .with_for_update(read=True)
    )
    current = (await session.execute(query)).scalar_one_or_none()
    if current != token:
        raise StaleLease(account_id, token, current)


async def get_lease(session: AsyncSession, account_id: int) -> LeaseState | None:
    """The account's lease row, or None if it was never leased."""
    row = (
        await session.execute(select(Lease).where(Lease.account_id == account_id))
    ).scalar_one_or_none()
    if row is None:
        return None
    return LeaseState(
        account_id=row.account_id,
        owner=row.owner,
        fencing_token=row.fencing_token,
        acquired_at=row.acquired_at,
        expires_at=row.expires_at,
    )


# --------------------------------------------------------------------------- liveness


def liveness_key(owner: str) -> int:
    """The advisory lock key of an instance (a signed 64-bit number derived from ``owner``)."""
    digest = hashlib.blake2b(f"syncd-instance:{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Liveness:
    """PostgreSQL: an advisory lock this process holds for as long as it lives.

    The lock sits on a connection of its own, outside the pool. When the process dies,
    however it dies, its connection closes and the server drops the lock at once; another
    instance that then gets the lock (`owner_gone`) knows the holder is gone and need
    not wait for its leases to expire. A lock lost while the process lives (the server
    restarted, the network dropped) is taken again by `hold` on the next tick; until
    then others may take our accounts, which the fencing tokens make safe.
    """

    def __init__(self, engine: AsyncEngine, owner: str) -> None:
        self.engine = engine
        self.owner = owner
        self.key = liveness_key(owner)
        self._connection: AsyncConnection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    async def hold(self) -> None:
        """Take the lock, or check that the connection holding it is still there."""
        if self._connection is not None:
            try:
                await self._connection.execute(text("SELECT 1"))
                await self._connection.commit()
                return
            except Exception:
                await self._drop()
        connection = await self.engine.connect()
        try:
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            )
            await connection.commit()
        except BaseException:
            await connection.invalidate()
            raise
        if not got:
            await connection.invalidate()
            raise RuntimeError(f"the liveness lock of {self.owner} is held by another session")
        self._connection = connection

    async def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing the DBAPI connection (not returning it to the pool) ends the server
            # session, and with it the lock.
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    async def release(self) -> None:
        """Let the lock go (a clean stop)."""
        await self._drop()


async def owner_gone(session: AsyncSession, key: int) -> bool:
    """True if no session holds the liveness lock ``key``: its instance's process is gone.

    Takes the lock for the caller's transaction only (released at its end).
    """
    got = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(got)


async def expire_owner(session: AsyncSession, owner: str, now: datetime) -> list[int]:
    """Expire every live lease of ``owner`` (a gone instance); the account ids."""
    result = await session.execute(
        update(_LEASES)
        .where(_LEASES.c.owner == owner, _LEASES.c.expires_at > now)
        .values(expires_at=now)
        .returning(_LEASES.c.account_id)
    )
    return sorted(result.scalars().all())


# --------------------------------------------------------------------------- SQLite lock


class InstanceLock:
    """An exclusive ``flock`` on a lock file, held until ``release()`` or process exit."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """True until ``release()``."""
        return self._fd is not None

    def release(self) -> None:
        """Drop the lock (the file stays: removing it could race with a new holder)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _holder_pid(fd: int) -> int | None:
    try:
        raw = os.pread(fd, 32, 0)
    except OSError:
        return None
    text = raw.decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def acquire_instance_lock(db_path: str | os.PathLike[str]) -> InstanceLock:
    """Lock ``<db_path>.lock`` for this process or raise ``InstanceLocked`` (never waits).

    The lock file (mode 0600) holds the holder's pid, for the message a second instance
    prints. The returned lock must stay referenced for as long as the process runs.
    """
    path = Path(os.fspath(db_path) + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder_pid(fd)
        os.close(fd)
        raise InstanceLocked(path, pid) from None
    except BaseException:
        os.close(fd)
        raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return InstanceLock(path, fd)


def instance_lock_for_url(url: str | URL) -> InstanceLock | None:
    """The instance lock for a file SQLite database URL; None for PostgreSQL or in-memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return acquire_instance_lock(database)
