"""Who syncs what, when: per-account jobs on APScheduler, and leases between instances.

`Scheduler` (DESIGN §3.1) gives every account of the engine three jobs on an
``AsyncIOScheduler`` (``max_instances=1``, ``coalesce=True``, no misfire limit):

- **pull** every ``poll_interval`` plus jitter (up to 10 %, at most 30 s), first right
  after start. `Scheduler.trigger` (a webhook) runs it now; a trigger that arrives
  while the pull runs makes it run once more when it ends, so no change is missed.
  `Scheduler.request_pull` does that, or, when this instance does not hold the account
  (or is reloading), stores the request on the account row; the holder's outbox watch
  starts the pull at its next look and clears the request.
- **push** as soon as the account's outbox holds due rows: an outbox watch asks the
  database which accounts have due ``pending``/``failed`` rows once per ``outbox_poll``
  seconds and right after every job (a pull of one account plans writes for the
  others), and starts their push; also every ``poll_interval`` as a backstop. Never
  before the account's first successful pull in this process: until its own records
  are linked, a create planned by another account could duplicate one it already has
  (that first pull also settles writes a crash left uncertain).
- **reconcile** looked at every ``min(reconcile_interval, 5 min)`` and run when the
  engine says a sweep is due, never before the account's first successful pull in this
  process (a sweep of a store that has not pulled yet would fetch every record one by
  one), and straight after that first pull when one is due.

Each run is its own asyncio task, so a slow or sick account never holds up another
(the rate budgets and lanes - pushes before pulls before sweeps - live in the adapters;
the engine adds a per-account lock). Whether a job runs at all is the gate's call: it
returns the `WriteScope` to run under (the account's lease and fencing token), or None
when another instance holds the account or it is being handed over. Paused accounts
(a daily quota used up) are skipped until ``paused_until`` without calling the engine.

Health: an account whose job fails is *unavailable* until one of its jobs succeeds.
``vendor_unavailable`` (or ``sync_stopped`` for a safety stop) is logged once when that
starts and ``vendor_recovered`` once when it ends, whatever happens in between (the
engine still logs each failed job at its own level). While unavailable, the outbox
watch does not start the account's push, so a vendor that is down, or that refuses our
credentials, only sees the regular jobs.

`LeaseKeeper` (PostgreSQL scale-out) decides which accounts this instance holds. Each
instance heartbeats a row in ``instances``; live instances each aim for
ceil(accounts / live instances) leases. Leases are renewed every third of their ttl; an
instance over its share stops starting jobs for the accounts it ranks lowest and
releases them once idle, an instance under its share takes free or expired leases in
the order it ranks them (rendezvous hashing of owner and account, so instances prefer
different accounts and a newcomer gets its share within a few ticks). An instance that
dies stops heartbeating and renewing; within one ttl its accounts move to the others.
On PostgreSQL each instance also holds a liveness lock (`syncd.store.leases.Liveness`):
when a process dies its lock goes with its connection, and the next tick of any other
instance (or of the process restarted in its place) expires its leases at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import math
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Table, and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.app import WriteScope, write_scope
from syncd.metrics import Metrics
from syncd.runner import Engine, PassStats
from syncd.store import leases
from syncd.store import tables as t
from syncd.store.leases import LeaseGrant, StaleLease

__all__ = [
    "JOBS",
    "AccountRef",
    "Gate",
    "LeaseKeeper",
    "Scheduler",
    "SingleInstance",
    "account_refs",
]

log = structlog.get_logger("syncd.scheduler")

JOBS = ("pull", "push", "reconcile")
OUTBOX_POLL_SECONDS = 1.0
RECONCILE_CHECK = dt.timedelta(minutes=5)
JITTER_FRACTION = 0.1
MAX_JITTER_SECONDS = 30.0
START_SPREAD_SECONDS = 1.0  # first runs are spread over this, so accounts do not start in step
# Sync-run statuses that mean "this account's vendor cannot be used right now".
UNAVAILABLE_STATUSES = frozenset({"error", "auth_failed", "parked"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account as the scheduler and the lease keeper know it."""

    name: str
    account_id: int
    workspace_id: int


def account_refs(engine: Engine) -> dict[str, AccountRef]:
    """The engine's accounts with their database ids (call after ``engine.prepare()``)."""
    return {
        name: AccountRef(name, ctx.id, ctx.workspace_id) for name, ctx in engine.accounts.items()
    }


class Gate(Protocol):
    """Decides whether this instance may run jobs of an account now, and under what scope."""

    def scope(self, account: str) -> WriteScope | None: ...


class SingleInstance:
    """The gate of a lone instance (SQLite, held by the instance lock): every account, no token."""

    def __init__(self, accounts: Mapping[str, AccountRef]) -> None:
        self.accounts = dict(accounts)

    def scope(self, account: str) -> WriteScope | None:
        ref = self.accounts.get(account)
        if ref is None:
            return None
        return WriteScope(ref.name, ref.account_id, ref.workspace_id)


# --------------------------------------------------------------------------- leases


def _rank(owner: str, account: str) -> int:
    """How much ``owner`` wants ``account`` (rendezvous hashing): higher is keener."""
    return int.from_bytes(hashlib.sha256(f"{owner}\0{account}".encode()).digest()[:8], "big")


_INSTANCES = cast(Table, t.Instance.__table__)
_LEASES = cast(Table, t.Lease.__table__)


@dataclass
class LeaseChanges:
    """What one `LeaseKeeper.tick` changed."""

    gained: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    live_instances: int = 1
    target: int = 0


class LeaseKeeper:
    """This instance's share of the accounts on a shared database (see the module docstring)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        owner: str,
        hostname: str,
        pid: int,
        ttl: dt.timedelta,
        clock: Callable[[], dt.datetime] = utcnow,
        liveness: leases.Liveness | None = None,
    ) -> None:
        if ttl <= dt.timedelta(0):
            raise ValueError("lease ttl must be positive")
        self.sessionmaker = sessionmaker
        self.liveness = liveness
        self.owner = owner
        self.hostname = hostname
        self.pid = pid
        self.ttl = ttl
        self.clock = clock
        self.accounts: dict[str, AccountRef] = {}
        self.grants: dict[str, LeaseGrant] = {}
        self.releasing: set[str] = set()
        self.started_at = clock()
        self.last_tick: dt.datetime | None = None

    @property
    def interval(self) -> float:
        """Seconds between ticks: a third of the ttl, so two renewals may fail in a row."""
        return self.ttl.total_seconds() / 3

    def set_accounts(self, accounts: Mapping[str, AccountRef]) -> None:
        """The accounts to share out (after a config reload); held ones no longer listed are released on the next tick."""
        self.accounts = dict(accounts)

    def scope(self, account: str) -> WriteScope | None:
        """The scope to run ``account``'s jobs under, or None if we must not touch it now."""
        grant = self.grants.get(account)
        ref = self.accounts.get(account)
        if grant is None or ref is None or account in self.releasing:
            return None
        if grant.expires_at <= self.clock():
            return None  # renewals failed for a whole ttl: someone may have it by now
        return WriteScope(ref.name, ref.account_id, ref.workspace_id, grant.fencing_token)

    def held(self) -> list[str]:
        return sorted(self.grants)

    def lost(self, account: str) -> None:
        """A job found the lease gone (`StaleLease`): forget it until we win it back."""
        self.grants.pop(account, None)
        self.releasing.discard(account)

    async def _heartbeat(self, now: dt.datetime) -> int:
        """Renew this instance's row; the number of live instances (us included)."""
        async with self.sessionmaker() as session, session.begin():
            dialect = session.get_bind().dialect.name
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            key = self.liveness.key if self.liveness is not None and self.liveness.held else None
            values = {
                "owner": self.owner,
                "hostname": self.hostname,
                "pid": self.pid,
                "started_at": self.started_at,
                "heartbeat_at": now,
                "expires_at": now + self.ttl,
                "liveness_key": key,
            }
            statement = insert(_INSTANCES).values(**values)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[_INSTANCES.c.owner],
                    set_={"heartbeat_at": now, "expires_at": now + self.ttl, "liveness_key": key},
                )
            )
            # Rows of instances gone for a long time are only clutter.
            await session.execute(
                delete(_INSTANCES).where(_INSTANCES.c.expires_at < now - 10 * self.ttl)
            )
            live = await session.scalar(
                select(func.count()).select_from(_INSTANCES).where(_INSTANCES.c.expires_at > now)
            )
        return max(1, int(live or 0))

    async def _reap(self, now: dt.datetime) -> None:
        """Expire the leases of instances whose process is gone, and forget them.

        Only instances that announced a liveness lock are looked at (PostgreSQL); the
        others are declared dead by their leases' expiry alone.
        """
        async with self.sessionmaker() as session, session.begin():
            rows = (
                await session.execute(
                    select(_INSTANCES.c.owner, _INSTANCES.c.liveness_key).where(
                        _INSTANCES.c.owner != self.owner,
                        _INSTANCES.c.expires_at > now,
                        _INSTANCES.c.liveness_key.is_not(None),
                    )
                )
            ).all()
            for row in rows:
                if not await leases.owner_gone(session, row.liveness_key):
                    continue
                freed = await leases.expire_owner(session, row.owner, now)
                await session.execute(delete(_INSTANCES).where(_INSTANCES.c.owner == row.owner))
                log.warning("instance_gone", owner=row.owner, leases_freed=len(freed))

    async def _free(self, names: Iterable[str], now: dt.datetime) -> list[str]:
        """Which of ``names`` nobody holds (no lease row, or an expired one)."""
        wanted = {self.accounts[n].account_id: n for n in names}
        if not wanted:
            return []
        async with self.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(_LEASES.c.account_id, _LEASES.c.expires_at).where(
                        _LEASES.c.account_id.in_(list(wanted))
                    )
                )
            ).all()
        taken = {row.account_id for row in rows if row.expires_at > now}
        return [name for account_id, name in wanted.items() if account_id not in taken]

    async def tick(self, busy: Callable[[str], bool] = lambda name: False) -> LeaseChanges:
        """Heartbeat, renew, hand back what is over our share, take what is under it.

        ``busy(name)`` says whether a job of the account is running here: an account to
        hand back is released only once idle (until then no new job starts for it).
        """
        now = self.clock()
        changes = LeaseChanges()
        if self.liveness is not None:
            await self.liveness.hold()
            await self._reap(now)
        live = await self._heartbeat(now)
        changes.live_instances = live

        for name, grant in sorted(self.grants.items()):
            if name not in self.accounts:
                # Removed from the config: give it back once its last job is done.
                self.releasing.add(name)
                continue
            renewed = await leases.renew(self.sessionmaker, grant, self.ttl, now)
            if renewed is None:
                del self.grants[name]
                self.releasing.discard(name)
                changes.lost.append(name)
                log.warning("lease_lost", account=name, owner=self.owner)
            else:
                self.grants[name] = renewed

        target = math.ceil(len(self.accounts) / live) if self.accounts else 0
        changes.target = target
        configured = [n for n in self.grants if n in self.accounts]
        extra = len(configured) - target
        keep_releasing = {n for n in self.releasing if n not in self.accounts}
        if extra > 0:
            # Hand back the accounts we want least; another instance ranks them higher.
            keep_releasing |= set(sorted(configured, key=lambda n: _rank(self.owner, n))[:extra])
        self.releasing = keep_releasing
        for name in sorted(self.releasing):
            held = self.grants.get(name)
            if held is None:
                self.releasing.discard(name)
                continue
            if busy(name):
                continue
            await leases.release(self.sessionmaker, held, now)
            del self.grants[name]
            self.releasing.discard(name)
            changes.released.append(name)
            log.info("lease_released", account=name, owner=self.owner, share=target)

        want = target - len([n for n in self.grants if n in self.accounts])
        if want > 0:
            candidates = [n for n in self.accounts if n not in self.grants]
            free = await self._free(candidates, now)
            for name in sorted(free, key=lambda n: -_rank(self.owner, n)):
                if want <= 0:
                    break
                won = await leases.acquire(
                    self.sessionmaker, self.accounts[name].account_id, self.owner, self.ttl, now
                )
                if won is None:
                    continue  # another instance was quicker
                self.grants[name] = won
                changes.gained.append(name)
                want -= 1
                log.info(
                    "lease_acquired",
                    account=name,
                    owner=self.owner,
                    fencing_token=won.fencing_token,
                    share=target,
                )
        self.last_tick = now
        return changes

    async def close(self) -> None:
        """Release every lease and remove our instance row (a clean stop hands over at once)."""
        now = self.clock()
        for grant in list(self.grants.values()):
            with contextlib.suppress(Exception):
                await leases.release(self.sessionmaker, grant, now)
        self.grants.clear()
        self.releasing.clear()
        with contextlib.suppress(Exception):
            async with self.sessionmaker() as session, session.begin():
                await session.execute(delete(_INSTANCES).where(_INSTANCES.c.owner == self.owner))
        if self.liveness is not None:
            await self.liveness.release()


# --------------------------------------------------------------------------- jobs


class _SkipRunningWarnings(logging.Filter):
    """APScheduler warns each time a job is due while its previous run goes on; with
    ``max_instances=1`` and ``coalesce=True`` that is the intended outcome, not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


def _aps_logger() -> logging.Logger:
    logger = logging.getLogger("syncd.scheduler.apscheduler")
    logger.setLevel(logging.WARNING)  # job added/removed, paused, resumed: not worth a line
    if not any(isinstance(f, _SkipRunningWarnings) for f in logger.filters):
        logger.addFilter(_SkipRunningWarnings())
    return logger


@dataclass
class AccountState:
    """What the scheduler knows about one account (also what the demo shows)."""

    name: str
    poll_seconds: float
    reconcile_seconds: float
    healthy: bool = True
    problem: str | None = None
    down_since: dt.datetime | None = None
    pulled_once: bool = False
    rerun_pull: bool = False
    sweep_soon: bool = False
    running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    last_run: dict[str, dt.datetime] = field(default_factory=dict)
    totals: PassStats | None = None

    def __post_init__(self) -> None:
        if self.totals is None:
            self.totals = PassStats(account=self.name)


class Scheduler:
    """Runs the engine's jobs per account (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        gate: Gate,
        metrics: Metrics | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        outbox_poll: float = OUTBOX_POLL_SECONDS,
        reconcile_check: dt.timedelta = RECONCILE_CHECK,
        rng: random.Random | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker
        self.gate = gate
        self.metrics = metrics
        self.clock = clock
        self.outbox_poll = outbox_poll
        self.reconcile_check = reconcile_check
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not crypto
        self.accounts: dict[str, AccountState] = {}
        self._refs: dict[str, AccountRef] = {}
        self._aps: AsyncIOScheduler | None = None
        self._watch: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._held_back = False  # quiesced: nothing new starts
        self._stopping = False
        self._closing = False
        self._watch_failing = False

    # ----------------------------------------------------------------- lifecycle

    @property
    def running(self) -> bool:
        """True between `start` and `stop` while jobs may be started."""
        return self._aps is not None and self._aps.running and not self._held_back

    async def start(self) -> None:
        """Start APScheduler, schedule every account's jobs and the outbox watch."""
        if self._aps is not None:
            raise RuntimeError("scheduler already started")
        self._aps = AsyncIOScheduler(
            timezone=dt.UTC,
            logger=_aps_logger(),
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self._aps.start()
        self._schedule_all()
        self._watch = asyncio.create_task(self._watch_outbox(), name="syncd-outbox-watch")

    def _schedule_all(self, unchanged: frozenset[str] = frozenset()) -> None:
        assert self._aps is not None
        self._refs = account_refs(self.engine)
        old = self.accounts
        self.accounts = {}
        now = self.clock()
        for name in self.engine.accounts:
            account = self.engine.settings.account(name)
            poll = max(0.001, account.poll_interval.total_seconds())
            sweep = account.reconcile_interval.total_seconds()
            state = AccountState(name, poll, sweep)
            if name in old:  # a reload keeps what we learnt about the account
                previous = old[name]
                state.healthy, state.problem = previous.healthy, previous.problem
                state.down_since = previous.down_since
                state.totals, state.last_run = previous.totals, previous.last_run
                # A changed account (another base_url, say) pulls before it pushes again.
                state.pulled_once = previous.pulled_once and name in unchanged
            self.accounts[name] = state
            jitter = min(poll * JITTER_FRACTION, MAX_JITTER_SECONDS)
            spread = min(START_SPREAD_SECONDS, poll)
            check = max(0.001, min(sweep, self.reconcile_check.total_seconds()))
            plan = (("pull", poll, jitter), ("push", poll, jitter), ("reconcile", check, 0.0))
            for job, every, wobble in plan:
                first = now + dt.timedelta(seconds=self._rng.uniform(0, spread))
                self._aps.add_job(
                    self._run,
                    IntervalTrigger(seconds=every, jitter=wobble or None, timezone=dt.UTC),
                    args=(name, job),
                    id=f"{job}:{name}",
                    name=f"{job} {name}",
                    next_run_time=first,
                    replace_existing=True,
                )

    def busy(self, account: str) -> bool:
        """Whether a job of ``account`` is running."""
        state = self.accounts.get(account)
        return bool(state and state.running)

    def _tasks(self) -> list[asyncio.Task[Any]]:
        return [task for s in self.accounts.values() for task in s.running.values()]

    def cancel_running(self) -> int:
        """Cancel every running job now (a second SIGTERM); how many there were."""
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        return len(tasks)

    async def _settle_running(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for running jobs, then cancel what is left."""
        tasks = self._tasks()
        if tasks:
            log.info("draining", jobs=len(tasks), grace_seconds=grace)
            _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace))
            if pending:
                log.warning("drain_timeout", cancelled=len(pending), grace_seconds=grace)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=5.0)

    async def quiesce(self, grace: float) -> None:
        """Start nothing new; let running jobs finish (cancel them after ``grace`` s)."""
        self._held_back = True
        if self._aps is not None:
            self._aps.pause()
        await self._settle_running(grace)

    def replace_engine(self, engine: Engine) -> None:
        """Run ``engine`` (a reloaded config) from now on; call between quiesce and resume."""
        assert self._aps is not None
        before = {a.name: a for _, a in self.engine.settings.iter_accounts()}
        unchanged = frozenset(
            a.name for _, a in engine.settings.iter_accounts() if before.get(a.name) == a
        )
        self.engine = engine
        self._aps.remove_all_jobs()
        self._schedule_all(unchanged)

    def resume(self) -> None:
        """Undo `quiesce`."""
        self._held_back = False
        if self._aps is not None:
            self._aps.resume()
        self._poke.set()

    async def stop(self, grace: float) -> None:
        """Drain: start nothing new, give running jobs ``grace`` seconds, then cancel them."""
        self._stopping = True
        await self.quiesce(grace)
        if self._watch is not None:
            self._closing = True
            self._poke.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._watch), timeout=5.0)
            except TimeoutError:
                self._watch.cancel()
            self._watch = None
        if self._aps is not None:
            if self._aps.running:
                self._aps.shutdown(wait=False)
            self._aps = None

    # ----------------------------------------------------------------- triggers

    def trigger(self, account: str, job: str = "pull") -> bool:
        """Run ``account``'s ``job`` now (a webhook, an outbox row); False if not ours now."""
        state = self.accounts.get(account)
        if state is None or self._aps is None or self._held_back:
            return False
        if job in state.running:
            if job == "pull":
                state.rerun_pull = True  # the running pull may have listed past the change
            return True
        if self.gate.scope(account) is None:
            return False
        self._aps.modify_job(f"{job}:{account}", next_run_time=self.clock())
        return True

    def poke(self) -> None:
        """Have the outbox watch look now."""
        self._poke.set()

    async def request_pull(self, account: str) -> bool:
        """Pull ``account`` now here, or hand the request to whichever instance holds it.

        True if the pull was scheduled in this process. Otherwise the request is stored
        on the account's row (``pull_requested_at``) and the holder's outbox watch starts
        the pull within ``outbox_poll`` seconds; an instance that takes the account over
        later, or this one once it is done reloading, finds it there too. False for an
        account not in the config. A database error propagates: nothing was scheduled.
        """
        if self.trigger(account, "pull"):
            return True
        ref = self._refs.get(account)
        if ref is None:
            return False
        async with self.sessionmaker() as session, session.begin():
            await session.execute(
                update(t.Account)
                .where(t.Account.id == ref.account_id)
                .values(pull_requested_at=self.clock())
            )
        log.info("pull_handed_over", account=account)
        return False

    async def _pull_requests(self) -> dict[str, dt.datetime]:
        """Accounts with a pull handed over by another instance (or asked for while busy)."""
        ids = {ref.account_id: name for name, ref in self._refs.items()}
        if not ids:
            return {}
        query = select(t.Account.id, t.Account.pull_requested_at).where(
            t.Account.id.in_(list(ids)), t.Account.pull_requested_at.is_not(None)
        )
        async with self.sessionmaker() as session:
            rows = (await session.execute(query)).all()
        return {ids[row.id]: row.pull_requested_at for row in rows if row.id in ids}

    async def _take_pull_requests(self) -> None:
        """Start the pulls asked for on accounts we hold, and clear those requests.

        A request is cleared only if it is still the one we read: one made meanwhile
        (after our pull may already have listed) stays for the next look.
        """
        for name, asked_at in (await self._pull_requests()).items():
            if not self.trigger(name, "pull"):
                continue  # not ours (now): the holder takes it
            ref = self._refs[name]
            async with self.sessionmaker() as session, session.begin():
                await session.execute(
                    update(t.Account)
                    .where(
                        t.Account.id == ref.account_id,
                        t.Account.pull_requested_at <= asked_at,
                    )
                    .values(pull_requested_at=None)
                )
            log.info("handed_over_pull_started", account=name)

    async def _due_accounts(self) -> list[str]:
        """Accounts with outbox rows due now, that are not paused."""
        ids = {ref.account_id: name for name, ref in self._refs.items()}
        if not ids:
            return []
        now = self.clock()
        outbox, accounts = t.Outbox, t.Account
        query = (
            select(outbox.account_id)
            .join(accounts, accounts.id == outbox.account_id)
            .where(
                outbox.account_id.in_(list(ids)),
                outbox.state.in_(("pending", "failed")),
                outbox.next_attempt_at <= now,
                or_(
                    accounts.state != "paused",
                    accounts.paused_until.is_(None),
                    accounts.paused_until <= now,
                ),
            )
            .group_by(outbox.account_id)
        )
        async with self.sessionmaker() as session:
            found = (await session.execute(query)).scalars().all()
        return [ids[i] for i in found if i in ids]

    async def _watch_outbox(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.outbox_poll):
                    await self._poke.wait()
            self._poke.clear()
            if self._held_back or self._closing:
                continue
            try:
                due = await self._due_accounts()
                await self._take_pull_requests()
            except Exception as exc:
                if not self._watch_failing:
                    log.warning("outbox_watch_failed", error=f"{type(exc).__name__}: {exc}")
                self._watch_failing = True
                continue
            if self._watch_failing:
                log.info("outbox_watch_recovered")
                self._watch_failing = False
            for name in due:
                state = self.accounts.get(name)
                if state is None or not state.healthy or not state.pulled_once:
                    continue
                if "push" in state.running:
                    continue
                self.trigger(name, "push")

    # ----------------------------------------------------------------- running jobs

    async def _paused(self, ref: AccountRef) -> bool:
        """True while the engine parked the account (quota) until a time still ahead."""
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(t.Account.state, t.Account.paused_until).where(
                        t.Account.id == ref.account_id
                    )
                )
            ).one_or_none()
        if row is None:
            return False
        return bool(
            row.state == "paused"
            and row.paused_until is not None
            and row.paused_until > self.clock()
        )

    async def _run_status(self, ref: AccountRef, job: str) -> tuple[str, str | None]:
        """Status and error of the account's latest recorded run of ``job``."""
        async with self.sessionmaker() as session:
            row = (
                await session.execute(
                    select(t.SyncRun.status, t.SyncRun.error)
                    .where(and_(t.SyncRun.account_id == ref.account_id, t.SyncRun.job == job))
                    .order_by(t.SyncRun.id.desc())
                    .limit(1)
                )
            ).one_or_none()
        if row is None:
            return "error", None
        return str(row.status), row.error

    async def _due(self, scope: WriteScope) -> bool:
        with write_scope(scope):
            return await self.engine.reconcile_due(scope.account)

    async def _run(self, name: str, job: str) -> None:
        """One run of ``job`` for ``name`` (the APScheduler job function)."""
        state = self.accounts.get(name)
        ref = self._refs.get(name)
        if state is None or ref is None or self._held_back or job in state.running:
            return
        task = asyncio.current_task()
        assert task is not None
        state.running[job] = task  # before any await: `trigger` must see it
        outcome = "skipped"
        try:
            scope = self.gate.scope(name)
            if scope is None:
                return
            if job == "push" and not state.pulled_once:
                return  # its own records are not linked yet: a create could duplicate one
            if job == "reconcile" and not state.pulled_once:
                return
            try:
                if job == "reconcile" and not await self._due(scope):
                    return
                if await self._paused(ref):
                    return
            except Exception as exc:
                # The store cannot be asked (a database outage): the run cannot start.
                # The account is unavailable until a run succeeds; no traceback per run.
                problem = f"{type(exc).__name__}: {exc}"
                if state.healthy or state.problem != problem:
                    log.warning("job_not_started", account=name, job=job, error=problem)
                self._unhealthy(state, None, problem)
                self._count(name, job, None, "crashed")
                outcome = "crashed"
                return
            outcome = await self._execute(state, ref, scope, job)
        except asyncio.CancelledError:
            if self._stopping or self._held_back:
                log.info("job_cancelled", account=name, job=job)
                return
            raise
        finally:
            state.running.pop(job, None)
            if outcome != "skipped":
                state.last_run[job] = self.clock()
            # Re-triggers wait until this run is over for APScheduler too (its own done
            # callback comes first), or it would skip them as "already running".
            if job == "pull" and state.rerun_pull and not self._held_back:
                state.rerun_pull = False
                task.add_done_callback(lambda _: self.trigger(name, "pull"))
            if state.sweep_soon and not self._held_back:
                state.sweep_soon = False
                # The first sweep follows the first pull, and so may the first push.
                task.add_done_callback(lambda _: self.trigger(name, "reconcile"))
                task.add_done_callback(lambda _: self.trigger(name, "push"))
            if outcome != "skipped":
                self.poke()  # a pull plans writes for other accounts; a push may leave some

    async def _execute(
        self, state: AccountState, ref: AccountRef, scope: WriteScope, job: str
    ) -> str:
        name = state.name
        try:
            with write_scope(scope):
                if job == "pull":
                    stats = await self.engine.pull(name)
                elif job == "push":
                    stats = await self.engine.push(name)
                else:
                    stats = await self.engine.reconcile(name)
        except StaleLease as exc:
            log.warning("lease_lost", account=name, job=job, error=str(exc))
            lost = getattr(self.gate, "lost", None)
            if callable(lost):
                lost(name)
            self._count(name, job, None, "stale_lease")
            return "stale_lease"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if state.healthy or state.problem != problem:
                log.exception("job_crashed", account=name, job=job, error=problem)
            self._unhealthy(state, None, problem)
            self._count(name, job, None, "crashed")
            return "crashed"
        assert state.totals is not None
        state.totals.add(stats)
        if stats.errors:
            status, error = await self._run_status(ref, job)
            event = "vendor_unavailable" if status in UNAVAILABLE_STATUSES else "sync_stopped"
            self._unhealthy(state, event, error or stats.errors[-1], status=status)
            self._count(name, job, stats, status)
            return status
        if job == "pull" and not state.pulled_once:
            state.pulled_once = True
            state.sweep_soon = True
        self._healthy(state)
        self._count(name, job, stats, "ok")
        return "ok"

    def _count(self, name: str, job: str, stats: PassStats | None, status: str) -> None:
        if self.metrics is None:
            return
        self.metrics.run_finished(name, job, status)
        if stats is not None:
            self.metrics.pulled(name, stats.pulled)
            self.metrics.pushed(name, stats.pushed)

    def _unhealthy(
        self, state: AccountState, event: str | None, problem: str, **extra: Any
    ) -> None:
        if state.healthy:
            state.down_since = self.clock()
            if event is not None:
                log.warning(event, account=state.name, reason=problem, **extra)
        state.healthy = False
        state.problem = problem

    def _healthy(self, state: AccountState) -> None:
        if not state.healthy:
            down = None
            if state.down_since is not None:
                down = round((self.clock() - state.down_since).total_seconds(), 1)
            log.info("vendor_recovered", account=state.name, down_seconds=down)
        state.healthy = True
        state.problem = None
        state.down_since = None

    # ----------------------------------------------------------------- reporting

    def summary(self) -> str:
        """One line for systemd's STATUS=: accounts held, syncing, unavailable."""
        total = len(self.accounts)
        held = [n for n in self.accounts if self.gate.scope(n) is not None]
        syncing = sum(1 for s in self.accounts.values() if s.running)
        down = sorted(n for n, s in self.accounts.items() if not s.healthy and n in held)
        parts = [f"{len(held)}/{total} accounts held", f"{syncing} syncing"]
        if down:
            shown = ", ".join(down[:3]) + (", ..." if len(down) > 3 else "")
            parts.append(f"{len(down)} unavailable ({shown})")
        else:
            parts.append("all healthy")
        return "; ".join(parts)
