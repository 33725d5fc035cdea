"""One pass for one account: pull -> map -> link or match -> merge -> plan -> push -> record.

This is DESIGN §3 as code. The decisions are made by the pure core (``core.matching``,
``core.merge``, ``core.policy``, ``core.plan``, ``core.guards``); this module reads what
they need from the store, calls them, and writes down what they decided, in one
transaction per vendor page. Vendor I/O happens only between transactions, so a
database lock is never held while waiting for a vendor.

Crash safety, step by step:

- **Pull** commits each page's merges together with the page's checkpoint: a crash
  loses at most the page in flight, which is read again on the next pass. Records are
  recognised by their link's base fingerprint, so a page read twice changes nothing.
- **Push** commits an *intent* (outbox row ``sending``, with its client token) before a
  create is sent, and the link after it succeeded. A row found in ``sending`` or
  ``uncertain`` is *settled* by looking the token (or natural key) up at the vendor
  before anything else happens for that account: found -> linked, not found -> sent
  again. Pulls of a resource wait until its uncertain creates are settled, so our own
  create is never mistaken for somebody else's new record. Zero duplicates.
- **Echo**: after a write the link's base becomes what the vendor now holds, so the next
  pull of that record equals its base and is skipped: no timing windows.

Engine-wide rules: one job at a time per account (an asyncio lock); a paused or
auth-failed account is skipped, never blocks others; every canonical change, conflict
decision and refusal is written to ``audit`` for ``syncd explain``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from syncd.adapters.base import RESOURCES, Lane, Resource, VendorAdapter, VendorRecord
from syncd.core import guards
from syncd.core.matching import (
    Ambiguous,
    Candidate,
    InvoiceCandidate,
    Link,
    MatchDecision,
    NoMatch,
    contact_keys,
    match_contact,
    match_invoice,
)
from syncd.core.merge import merge
from syncd.core.model import (
    INVOICE_FIELDS,
    PAYMENT_FIELDS,
    Contact,
    Invoice,
    Payment,
    normalise,
    to_fields,
)
from syncd.core.plan import (
    Action,
    Target,
    as_held,
    base_after_write,
    decide_deletion,
    decide_revival,
    describe,
    fixes_kind,
    pending_fields,
    plan,
)
from syncd.core.policy import (
    FlowPolicy,
    InvoiceRole,
    Origin,
    default_invoice_owners,
    flow_policy,
    origin_owner,
)
from syncd.errors import (
    AuthFailed,
    Fatal,
    NotFound,
    QuotaExhausted,
    Retryable,
    SafetyStop,
    SkipRecord,
    Uncertain,
)
from syncd.settings import FlowSettings, Settings, WorkspaceSettings
from syncd.store import repos
from syncd.store import tables as t

log = structlog.get_logger("syncd.runner")

MAX_ATTEMPTS = 8  # a write that failed this often is dead-lettered (visible in status)
BACKOFF_BASE = 2.0  # seconds; doubled per attempt, capped at BACKOFF_CAP
BACKOFF_CAP = 3600.0
DEFER_SECONDS = 5.0  # a write waiting for its contact/invoice to be linked first
PAGE_RETRIES = 3  # a page whose canonical rows changed under us is merged again

# The side of the business each vendor is on, for the default invoice owners.
VENDOR_ROLES: Mapping[str, InvoiceRole] = {
    "simplicate": "crm",
    "perfex": "crm",
    "moneybird": "books",
    "simplbooks": "books",
}
RETRY_QUARANTINE = 50  # records waiting for their contact/invoice, read again per pull


def flow_owners(workspace: WorkspaceSettings, flow: FlowSettings) -> dict[str, str]:
    """A flow's field owners: the configured ones, and for invoices the default split."""
    owners = dict(flow.owner)
    if flow.resource != "invoices":
        return owners
    vendors = {a.name: a.vendor for a in workspace.accounts}
    roles = {
        name: VENDOR_ROLES[vendors[name]]
        for name in flow.accounts
        if vendors.get(name) in VENDOR_ROLES
    }
    return default_invoice_owners(roles, owners)


# Fields each vendor numbers for itself (a customer number is "1001" in one system and
# "C-17" in another, and unique in each): kept per link, never merged or written across.
VENDOR_LOCAL_FIELDS: Mapping[str, frozenset[str]] = {
    "contacts": frozenset({"customer_number"}),
    "invoices": frozenset(),
    "payments": frozenset(),
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fields_fingerprint(fields: Mapping[str, Any]) -> str:
    """Hex SHA-256 of canonical fields (compact JSON, sorted keys)."""
    text = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class PassStats:
    """Counts of one account's work, summed over jobs (for ``once`` and ``sync_runs``)."""

    account: str
    pulled: int = 0  # records read from the vendor
    changed: int = 0  # records that differed from their link's base
    matched: int = 0  # unlinked records linked to an existing canonical entity
    created: int = 0  # records created at this vendor
    updated: int = 0  # records updated at this vendor
    removed: int = 0  # records deleted or archived at this vendor
    new_entities: int = 0  # canonical entities created from this account's records
    conflicts: int = 0
    reviews: int = 0  # ambiguous matches queued for review
    skipped: int = 0  # quarantined records
    failed: int = 0  # writes that failed (retried later) or were dead-lettered
    api_calls: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: PassStats) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("account", "errors"):
                continue
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        self.errors.extend(other.errors)

    @property
    def pushed(self) -> int:
        return self.created + self.updated + self.removed


@dataclass(frozen=True)
class Flow:
    """One configured flow: its resource, its accounts in order, and its policy."""

    resource: Resource
    accounts: tuple[str, ...]
    policy: FlowPolicy


@dataclass
class AccountContext:
    name: str
    vendor: str
    workspace: str
    adapter: VendorAdapter
    id: int = 0
    workspace_id: int = 0
    flows: dict[Resource, Flow] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # Resources whose last listing failed (cleared by the next one that succeeds): a push
    # holds their creates rather than list the vendor again first.
    listing_failed: set[Resource] = field(default_factory=set)

    @property
    def resources(self) -> tuple[Resource, ...]:
        return tuple(r for r in RESOURCES if r in self.flows)


@dataclass(frozen=True)
class PlannedWrite:
    """One outbox row as ``--dry-run`` shows it."""

    account: str
    resource: Resource
    op: str
    canonical_id: int
    fields: tuple[str, ...]
    label: str


NOUNS_PLURAL: Mapping[str, str] = {
    "contacts": "contacts",
    "invoices": "invoices",
    "payments": "payments",
}


class _Defer(Exception):
    """A write must wait: a record it refers to is not linked at that account yet."""


def _label(resource: str, fields: Mapping[str, Any]) -> str:
    if resource == "contacts":
        return str(fields.get("name") or "?")
    if resource == "invoices":
        return str(fields.get("number") or fields.get("reference") or "draft")
    return f"{fields.get('amount')} on {fields.get('date')}"


def _held_archived(resource: Resource, link: t.Link | None) -> bool:
    """Whether the linked copy is archived, as last agreed there (an archive is then moot).

    A copy can be archived before the record is deleted: a person archived it in another
    account and the update carried that over. Archiving it again changes nothing; if a
    person unarchives it there meanwhile, the next pull sees a modify.
    """
    return link is not None and resource == "contacts" and link.base.get("archived") is True


class Engine:
    """Runs pulls, pushes and reconciles for the accounts of one configuration.

    ``adapters`` maps account names to their adapters (built by the caller over one
    aiohttp session). ``call_count`` returns the number of vendor requests an account has
    made so far (for the API-call figures); ``clock`` gives aware UTC time.
    """

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        adapters: Mapping[str, VendorAdapter],
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        call_count: Callable[[str], int] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.sleep = sleep
        self._call_count = call_count
        self.accounts: dict[str, AccountContext] = {}
        self._dry: AsyncSession | None = None
        self.planned: list[PlannedWrite] = []
        # Called with (account, what is happening now); ``syncd once`` shows it on a TTY.
        self.before_write: Callable[[AsyncSession, int], Awaitable[None]] | None = None
        self.progress: Callable[[str, str], None] | None = None
        for workspace in settings.workspaces:
            for account in workspace.accounts:
                if account.name not in adapters:
                    continue
                self.accounts[account.name] = AccountContext(
                    name=account.name,
                    vendor=account.vendor,
                    workspace=workspace.name,
                    adapter=adapters[account.name],
                )
            for flow in workspace.flows:
                resources: tuple[Resource, ...] = (
                    ("contacts",) if flow.resource == "contacts" else ("invoices", "payments")
                )
                owners = flow_owners(workspace, flow)
                for resource in resources:
                    runtime = Flow(
                        resource=resource,
                        accounts=tuple(flow.accounts),
                        policy=flow_policy(
                            resource,
                            flow.conflict,
                            owners,
                            flow.delete,
                            flow.max_delete_percent,
                            accounts=flow.accounts,
                        ),
                    )
                    for name in flow.accounts:
                        if name in self.accounts:
                            self.accounts[name].flows[resource] = runtime
        capabilities = {c.name: c.adapter.capabilities for c in self.accounts.values()}
        # Accounts whose vendor cannot change a contact's kind (each copy keeps its own),
        # and those whose vendor cannot tell persons from organizations at all.
        self._kind_fixed_names = frozenset(n for n, c in capabilities.items() if fixes_kind(c))
        self._kind_blind_names = frozenset(
            n for n, c in capabilities.items() if not c.contact_kinds
        )
        self._prepared = False

    # ------------------------------------------------------------------ plumbing

    @contextlib.asynccontextmanager
    async def _tx(self, ctx: AccountContext | None = None) -> AsyncIterator[AsyncSession]:
        """One transaction; in a dry run, the one shared session that is never committed.

        A transaction that writes on behalf of account ``ctx`` first awaits
        ``before_write(session, account_id)``: the daemon checks its lease's fencing token
        there, so an instance that lost the account can no longer change anything for it.
        """
        if self._dry is not None:
            yield self._dry
            return
        async with self.sessionmaker() as session, session.begin():
            if ctx is not None and self.before_write is not None:
                await self.before_write(session, ctx.id)
            yield session

    def _progress(self, account: str, what: str) -> None:
        if self.progress is not None:
            self.progress(account, what)

    def _calls(self, name: str) -> int:
        return self._call_count(name) if self._call_count is not None else 0

    async def prepare(self) -> None:
        """Mirror the configured workspaces and accounts into the store (idempotent)."""
        async with self._tx() as s:
            for workspace in self.settings.workspaces:
                ws = await repos.ensure_workspace(s, workspace.name)
                for account in workspace.accounts:
                    row = await repos.ensure_account(
                        s, workspace_id=ws.id, name=account.name, vendor=account.vendor
                    )
                    ctx = self.accounts.get(account.name)
                    if ctx is not None:
                        ctx.id = row.id
                        ctx.workspace_id = ws.id
        self._prepared = True

    def _ctx(self, name: str) -> AccountContext:
        try:
            return self.accounts[name]
        except KeyError:
            raise LookupError(f"no account named {name!r} in the configuration") from None

    async def _available(self, ctx: AccountContext) -> str | None:
        """Why the account must be skipped now (paused, auth failed), or None."""
        async with self._tx() as s:
            row = await repos.account_by_id(s, ctx.id)
            now = self.clock()
            if row.state == "paused" and row.paused_until is not None and row.paused_until > now:
                return f"paused until {row.paused_until.isoformat()}: {row.state_reason}"
        return None

    async def _set_state(
        self, ctx: AccountContext, state: str, reason: str | None, until: dt.datetime | None = None
    ) -> None:
        async with self._tx() as s:
            row = await repos.account_by_id(s, ctx.id)
            if row.state != state or row.state_reason != reason:
                row.state = state
                row.state_reason = reason
                row.paused_until = until
        if state != "active":
            log.warning("account_state", account=ctx.name, state=state, reason=reason)

    async def _mark_healthy(self, ctx: AccountContext) -> None:
        async with self._tx() as s:
            row = await repos.account_by_id(s, ctx.id)
            if row.state != "active":
                log.info("account_recovered", account=ctx.name, was=row.state)
                row.state = "active"
                row.state_reason = None
                row.paused_until = None

    @contextlib.asynccontextmanager
    async def _job(self, ctx: AccountContext, job: str) -> AsyncIterator[PassStats]:
        """Run one job for one account: lock, sync_runs row, error classification."""
        if not self._prepared:
            await self.prepare()
        stats = PassStats(account=ctx.name)
        run_id = uuid.uuid4().hex
        started = self.clock()
        before = self._calls(ctx.name)
        status = "ok"
        error: str | None = None
        async with ctx.lock:
            self._progress(ctx.name, f"{job}")
            try:
                with structlog.contextvars.bound_contextvars(
                    account=ctx.name, job=job, run_id=run_id
                ):
                    yield stats
                if self._dry is None:
                    await self._mark_healthy(ctx)
            except AuthFailed as exc:
                status, error = "auth_failed", str(exc)
                await self._set_state(ctx, "auth_failed", error)
            except QuotaExhausted as exc:
                status, error = "parked", str(exc)
                wait = exc.retry_after or 60.0
                await self._set_state(
                    ctx, "paused", error, self.clock() + dt.timedelta(seconds=wait)
                )
            except SafetyStop as exc:
                status, error = "safety_stop", str(exc)
                log.error("safety_stop", account=ctx.name, reason=error)
            except (Retryable, Fatal) as exc:
                status, error = "error", str(exc)
                log.warning("job_failed", account=ctx.name, job=job, error=error)
            finally:
                stats.api_calls += self._calls(ctx.name) - before
                if error is not None:
                    stats.errors.append(error)
                if self._dry is None:
                    await self._record_run(ctx, job, run_id, started, stats, status, error)

    async def _record_run(
        self,
        ctx: AccountContext,
        job: str,
        run_id: str,
        started: dt.datetime,
        stats: PassStats,
        status: str,
        error: str | None,
    ) -> None:
        async with self._tx() as s:
            s.add(
                t.SyncRun(
                    account_id=ctx.id,
                    job=job,
                    run_id=run_id,
                    started_at=started,
                    finished_at=self.clock(),
                    pulled=stats.pulled,
                    changed=stats.changed,
                    pushed=stats.pushed,
                    conflicts=stats.conflicts,
                    errors=len(stats.errors) + stats.failed,
                    api_calls=stats.api_calls,
                    status=status,
                    error=error,
                )
            )

    # ------------------------------------------------------------------ pull

    async def pull(self, name: str, resource: Resource | None = None) -> PassStats:
        """Pull every flow resource of account ``name`` (or just ``resource``)."""
        ctx = self._ctx(name)
        if not self._prepared:
            await self.prepare()
        reason = await self._available(ctx)
        if reason is not None:
            log.info("account_skipped", account=name, reason=reason)
            return PassStats(account=name)
        async with self._job(ctx, "pull") as stats:
            for res in ctx.resources:
                if resource is None or res == resource:
                    await self._pull_resource(ctx, res, stats)
        return stats

    async def _load_cursor(
        self, ctx: AccountContext, resource: Resource
    ) -> Mapping[str, Any] | None:
        async with self._tx() as s:
            row = await repos.cursor_row(s, ctx.id, resource)
            if row.checkpoint is not None:
                return row.checkpoint
            if row.value:
                loaded = json.loads(row.value)
                return cast(Mapping[str, Any], loaded) if isinstance(loaded, dict) else None
        return None

    async def _pull_resource(
        self, ctx: AccountContext, resource: Resource, stats: PassStats
    ) -> None:
        try:
            await self._list_and_merge(ctx, resource, stats)
        except (Retryable, Fatal, SafetyStop):
            ctx.listing_failed.add(resource)
            raise
        ctx.listing_failed.discard(resource)

    async def _list_and_merge(
        self, ctx: AccountContext, resource: Resource, stats: PassStats
    ) -> None:
        if await self._settle(ctx, resource, stats):
            log.warning(
                "pull_postponed",
                account=ctx.name,
                resource=resource,
                reason="a create's outcome is still unknown; the pull waits so it is not "
                "taken for a new record",
            )
            return
        adapter = ctx.adapter.resource(resource)
        if resource != "contacts":
            await self._retry_waiting(ctx, resource, stats)
        cursor = await self._load_cursor(ctx, resource)
        async for page in adapter.list_changes(cursor, lane="pull"):
            for attempt in range(PAGE_RETRIES):
                page_stats = PassStats(account=ctx.name)
                try:
                    async with self._tx(ctx) as s:
                        now = self.clock()
                        for skipped in page.skipped:
                            await repos.upsert_quarantine(
                                s,
                                account_id=ctx.id,
                                resource=resource,
                                external_id=skipped.external_id,
                                reason=skipped.reason,
                                payload=skipped.payload,
                                now=now,
                            )
                            page_stats.skipped += 1
                        for record in page.records:
                            page_stats.pulled += 1
                            await self._ingest(s, ctx, resource, record, page_stats)
                        cursor_row = await repos.cursor_row(s, ctx.id, resource)
                        if page.final:
                            cursor_row.value = json.dumps(dict(page.checkpoint), sort_keys=True)
                            cursor_row.checkpoint = None
                        else:
                            cursor_row.checkpoint = dict(page.checkpoint)
                except StaleDataError:
                    if attempt + 1 == PAGE_RETRIES:
                        raise
                    log.info(
                        "page_retried",
                        account=ctx.name,
                        resource=resource,
                        reason="concurrent change",
                    )
                    continue
                stats.add(page_stats)
                self._progress(ctx.name, f"pull {resource}: {stats.pulled} read")
                break

    async def _retry_waiting(
        self, ctx: AccountContext, resource: Resource, stats: PassStats
    ) -> None:
        """Read again the records quarantined because what they refer to was not linked.

        An incremental vendor does not list an unchanged invoice again, so an invoice
        that arrived before its contact is fetched once more on each pull until its
        contact is linked (then it syncs) or it is deleted.
        """
        async with self._tx() as s:
            waiting = await repos.waiting_quarantine(s, ctx.id, resource, RETRY_QUARANTINE)
        if not waiting:
            return
        for external_id in waiting:
            record = await self._read_one(ctx, resource, external_id, "pull", stats)
            if record is False:
                continue
            async with self._tx(ctx) as s:
                if record is None:
                    await repos.resolve_quarantine(s, ctx.id, resource, external_id, self.clock())
                    continue
                stats.pulled += 1
                await self._ingest(s, ctx, resource, record, stats)

    async def _read_one(
        self,
        ctx: AccountContext,
        resource: Resource,
        external_id: str,
        lane: Lane,
        stats: PassStats,
    ) -> VendorRecord | Literal[False] | None:
        """One record read by id; ``False`` when it is unusable (then it is quarantined).

        A vendor answer that cannot be mapped is the same fault as a bad row in a list:
        the record waits in quarantine with the adapter's reason; the pass goes on.
        """
        try:
            return await ctx.adapter.resource(resource).get(external_id, lane=lane)
        except SkipRecord as exc:
            async with self._tx(ctx) as s:
                await repos.upsert_quarantine(
                    s,
                    account_id=ctx.id,
                    resource=resource,
                    external_id=external_id,
                    reason=exc.reason,
                    payload=None,
                    now=self.clock(),
                )
            stats.skipped += 1
            log.warning(
                "record_quarantined",
                account=ctx.name,
                resource=resource,
                external_id=external_id,
                reason=exc.reason,
            )
            return False

    async def _inbound(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        value: Contact | Invoice | Payment,
    ) -> dict[str, Any]:
        """Canonical fields of a vendor value: references become canonical ids."""
        if isinstance(value, Invoice) and value.contact is not None:
            link = await repos.link_by_external(s, ctx.id, "contacts", value.contact)
            if link is None:
                raise SkipRecord(
                    f"contact not synced: {ctx.name} contact {value.contact} is not linked yet",
                )
            value = dataclasses.replace(value, contact=str(link.canonical_id))
        elif isinstance(value, Payment) and value.invoice is not None:
            link = await repos.link_by_external(s, ctx.id, "invoices", value.invoice)
            if link is None:
                raise SkipRecord(
                    f"invoice not synced: {ctx.name} invoice {value.invoice} is not linked yet"
                )
            value = dataclasses.replace(value, invoice=str(link.canonical_id))
        return to_fields(normalise(value))

    async def _outbound(
        self, s: AsyncSession, target: AccountContext, resource: str, fields: Mapping[str, Any]
    ) -> Contact | Invoice | Payment:
        """The value to write to ``target``: canonical references become its external ids."""
        local = VENDOR_LOCAL_FIELDS[resource]
        value = repos.value_from_fields(
            resource, {k: (None if k in local else v) for k, v in fields.items()}
        )
        if isinstance(value, Invoice) and value.contact is not None:
            link = await repos.link_by_entity(s, target.id, "contacts", int(value.contact))
            if link is None:
                raise _Defer(f"its contact is not in {target.name} yet")
            value = dataclasses.replace(value, contact=link.external_id)
        elif isinstance(value, Payment) and value.invoice is not None:
            link = await repos.link_by_entity(s, target.id, "invoices", int(value.invoice))
            if link is None:
                raise _Defer(f"its invoice is not in {target.name} yet")
            value = dataclasses.replace(value, invoice=link.external_id)
        return value

    async def _audit(
        self,
        s: AsyncSession,
        ctx: AccountContext | None,
        workspace_id: int,
        resource: str,
        canonical_id: int,
        name: str,
        old: Any,
        new: Any,
        reason: str,
    ) -> None:
        s.add(
            t.Audit(
                workspace_id=workspace_id,
                resource=resource,
                canonical_id=canonical_id,
                account_id=None if ctx is None else ctx.id,
                field=name,
                old=old,
                new=new,
                reason=reason,
                run_id=structlog.contextvars.get_contextvars().get("run_id"),
                at=self.clock(),
            )
        )

    async def _ingest(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        record: VendorRecord,
        stats: PassStats,
    ) -> None:
        now = self.clock()
        try:
            incoming = await self._inbound(s, ctx, resource, record.value)
        except SkipRecord as exc:
            await repos.upsert_quarantine(
                s,
                account_id=ctx.id,
                resource=resource,
                external_id=record.external_id,
                reason=exc.reason,
                payload=to_fields(record.value),
                now=now,
            )
            stats.skipped += 1
            return
        if isinstance(record.value, Invoice):
            problem = guards.invoice_totals_problem(record.value)
            if problem is not None:
                await repos.upsert_quarantine(
                    s,
                    account_id=ctx.id,
                    resource=resource,
                    external_id=record.external_id,
                    reason=problem,
                    payload=to_fields(record.value),
                    now=now,
                )
                stats.skipped += 1
                log.warning(
                    "invoice_quarantined",
                    account=ctx.name,
                    external_id=record.external_id,
                    reason=problem,
                )
                return
        fp = fields_fingerprint(incoming)
        link = await repos.link_by_external(s, ctx.id, resource, record.external_id)
        if link is not None and link.base_fingerprint != fp:
            await self._own_unconfirmed_writes(s, ctx, resource, link, incoming)
        if link is not None and link.base_fingerprint == fp:
            if record.version is not None and link.external_version != record.version:
                link.external_version = record.version
                link.external_updated_at = record.updated_at
            return  # unchanged, or our own echo
        await repos.resolve_quarantine(s, ctx.id, resource, record.external_id, now)
        stats.changed += 1
        if link is None:
            canonical_id = await self._link_or_match(s, ctx, resource, record, incoming, stats)
            if canonical_id is None:
                stats.changed -= 1  # waiting for a person: nothing changed, the pass is quiet
                return
            if canonical_id < 0:  # a new entity: nothing to merge against
                entity = await repos.new_entity(s, resource, ctx.workspace_id, incoming)
                s.add(
                    t.Link(
                        account_id=ctx.id,
                        resource=resource,
                        external_id=record.external_id,
                        canonical_id=entity.id,
                        base=dict(incoming),
                        base_fingerprint=fp,
                        external_version=record.version,
                        external_updated_at=record.updated_at,
                        linked_at=now,
                    )
                )
                stats.new_entities += 1
                await self._audit(
                    s,
                    ctx,
                    ctx.workspace_id,
                    resource,
                    entity.id,
                    "*",
                    None,
                    _label(resource, incoming),
                    f"new record from {ctx.name} ({record.external_id})",
                )
                await s.flush()
                await self._plan(s, ctx.workspace_id, resource, entity.id, incoming, held=())
                return
            link = t.Link(
                account_id=ctx.id,
                resource=resource,
                external_id=record.external_id,
                canonical_id=canonical_id,
                base={},
                base_fingerprint="",
                linked_at=now,
            )
            s.add(link)
            stats.matched += 1
        await self._merge_into(s, ctx, resource, record, incoming, link, stats)

    async def _own_unconfirmed_writes(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        link: t.Link,
        incoming: Mapping[str, Any],
    ) -> None:
        """Agree on the fields that hold what an update of ours, not yet confirmed, sent.

        An update whose answer was lost, or whose process was killed after the vendor took
        it, leaves the link's base as it was before. The vendor now shows what we sent;
        without this, that echo would read as a person's change there and could overwrite
        a newer edit elsewhere (one that set the field back to the old value, say).
        """
        echoed: dict[str, Any] = {}
        for row in await repos.active_outbox(s, ctx.id, resource, link.canonical_id):
            sent = row.fields.get("sent") if row.op == "update" else None
            if not isinstance(sent, dict):
                continue
            for name, value in sent.items():
                if name in incoming and incoming[name] == value and link.base.get(name) != value:
                    echoed[name] = value
        if echoed:
            link.base = {**link.base, **echoed}
            link.base_fingerprint = fields_fingerprint(link.base)

    async def _link_or_match(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        record: VendorRecord,
        incoming: Mapping[str, Any],
        stats: PassStats,
    ) -> int | None:
        """The canonical id to link to; -1 for "create a new entity"; None: wait for review."""
        review = await repos.open_review(s, ctx.id, resource, record.external_id)
        if review is not None:
            if review.state == "open":
                return None  # still waiting for a person
            if review.state == "accepted" and review.chosen_canonical_id is not None:
                return review.chosen_canonical_id
        rejected: frozenset[int] = frozenset()
        if review is not None and review.state == "rejected":
            # Not the candidates a person turned down (in any review of this record); but
            # maybe an entity made since (the same new company, its review rejected in
            # another account too). When the entities made since leave doubt (the VAT
            # number says one, a shared mailbox and the name another), that is a new
            # question for a person, like any doubt: a new entity could be a duplicate.
            rejected = await repos.rejected_candidates(s, ctx.id, resource, record.external_id)
        decision = await self._match(s, ctx, resource, incoming, exclude=rejected)
        if isinstance(decision, NoMatch) and resource == "contacts":
            # A deleted company whose copies some account keeps (archived) may be typed in
            # again: a new entity would be a second copy there. The record revives it
            # instead (a modify the deletion never saw, as _merge_into decides).
            kept = await self._match(s, ctx, resource, incoming, exclude=rejected, deleted=True)
            if isinstance(kept, Link):
                decision = kept
        if isinstance(decision, Link):
            await self._audit(
                s,
                ctx,
                ctx.workspace_id,
                resource,
                int(decision.canonical_id),
                "*",
                None,
                record.external_id,
                f"matched {ctx.name} {record.external_id}: {decision.reason}",
            )
            return int(decision.canonical_id)
        if isinstance(decision, Ambiguous):
            s.add(
                t.MatchReview(
                    workspace_id=ctx.workspace_id,
                    account_id=ctx.id,
                    resource=resource,
                    external_id=record.external_id,
                    candidates=[
                        {**c, "reason_all": decision.reason} for c in decision.review_candidates()
                    ]
                    + [{"incoming": dict(incoming)}],
                    state="open",
                )
            )
            stats.reviews += 1
            log.info(
                "match_review_queued",
                account=ctx.name,
                resource=resource,
                external_id=record.external_id,
                reason=decision.reason,
            )
            return None
        return -1

    async def _match(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        incoming: Mapping[str, Any],
        *,
        exclude: frozenset[int] = frozenset(),
        deleted: bool = False,
    ) -> MatchDecision:
        """The match among live entities; with ``deleted`` (contacts only), among deleted
        entities that some account still holds a linked copy of."""
        if resource == "contacts":
            contact = repos.value_from_fields("contacts", incoming)
            assert isinstance(contact, Contact)
            keys = contact_keys(contact)
            rows = await repos.contact_candidates(
                s, ctx.workspace_id, contact, keys.vat_number, deleted=deleted
            )
            rows = [r for r in rows if r.id not in exclude]
            accounts = await repos.linked_accounts(s, "contacts", (r.id for r in rows))
            if deleted:
                rows = [r for r in rows if accounts[r.id]]
            candidates = [
                Candidate(
                    r.id, cast(Contact, await repos.entity_value(s, "contacts", r)), accounts[r.id]
                )
                for r in rows
            ]
            return match_contact(
                contact,
                candidates,
                account=ctx.id,
                kind_blind=self._kind_blind,
            )
        if resource == "invoices":
            invoice = repos.value_from_fields("invoices", incoming)
            assert isinstance(invoice, Invoice)
            inv_rows = await repos.invoice_candidates(s, ctx.workspace_id, invoice)
            inv_rows = [r for r in inv_rows if r.id not in exclude]
            accounts = await repos.linked_accounts(s, "invoices", (r.id for r in inv_rows))
            inv_candidates = [
                InvoiceCandidate(
                    r.id, cast(Invoice, await repos.entity_value(s, "invoices", r)), accounts[r.id]
                )
                for r in inv_rows
            ]
            return match_invoice(invoice, inv_candidates, account=ctx.id)
        payment = repos.value_from_fields("payments", incoming)
        assert isinstance(payment, Payment)
        pay_rows = await repos.payment_candidates(s, ctx.workspace_id, payment)
        accounts = await repos.linked_accounts(s, "payments", (r.id for r in pay_rows))
        free = [r for r in pay_rows if ctx.id not in accounts[r.id]]
        if len(free) == 1:
            return Link(free[0].id, "same invoice, date and amount", 1.0)
        if len(free) > 1:
            return NoMatch("several equal payments: each is its own")
        return NoMatch("no payment of that invoice with that date and amount")

    async def _origins(
        self, s: AsyncSession, resource: str, canonical_id: int, fields: Iterable[str] = ()
    ) -> dict[str, Origin]:
        """Per field: the account its current value came from and that record's vendor time."""
        by_field = await repos.last_change_accounts(s, resource, canonical_id)
        links = {
            link.account_id: link for link in await repos.links_of_entity(s, resource, canonical_id)
        }
        names = {ctx.id: ctx.name for ctx in self.accounts.values()}
        origins: dict[str, Origin] = {}
        for name, account_id in by_field.items():
            if account_id is None or account_id not in names:
                continue
            link = links.get(account_id)
            origins[name] = Origin(
                names[account_id], None if link is None else link.external_updated_at
            )
        # A field nobody changed since the entity was made from a record still holds that
        # record's value: its origin is the account the entity was first seen in.
        first = await repos.first_link(s, resource, canonical_id)
        if first is not None and first.account_id in names:
            creator = Origin(names[first.account_id], first.external_updated_at)
            for name in fields:
                origins.setdefault(name, creator)
        return origins

    async def _merge_into(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        record: VendorRecord,
        incoming: Mapping[str, Any],
        link: t.Link,
        stats: PassStats,
    ) -> None:
        flow = ctx.flows[resource]
        entity = await repos.load_entity(s, resource, link.canonical_id)
        if entity is None:
            raise LookupError(f"{resource} {link.canonical_id} linked from {ctx.name} is missing")
        carried = self._carried_fields(ctx, resource)
        base = dict(link.base) if link.base else None
        if entity.deleted_at is not None:
            decision = decide_revival(
                flow=flow.policy, account=ctx.name, base=base, incoming=incoming, carried=carried
            )
            if decision.outcome == "stay_deleted":
                link.base = dict(incoming)
                link.base_fingerprint = fields_fingerprint(incoming)
                if incoming.get("archived") is True:
                    # Held archived there already: a removal still queued for it is moot.
                    for removal in await repos.active_removals(s, resource, entity.id):
                        if removal.account_id == ctx.id and removal.state in ("pending", "failed"):
                            removal.state = "done"
                            removal.last_error = f"moot: {ctx.name} holds it archived already"
                return
            entity.deleted_at = None
            await self._audit(
                s,
                ctx,
                entity.workspace_id,
                resource,
                entity.id,
                "*",
                "deleted",
                "restored",
                decision.reason,
            )
            for removal in await repos.active_removals(s, resource, entity.id):
                removal.state = "done"
                removal.last_error = f"cancelled: the record was restored ({decision.reason})"
        canonical = await repos.entity_fields(s, resource, entity)
        canonical = dict(await self._learn_kind(s, ctx, resource, entity, canonical, incoming))
        conflicts = await repos.open_conflicts(s, resource, entity.id)
        origins = await self._origins(s, resource, entity.id, canonical)
        result = merge(
            account=ctx.name,
            base=base,
            incoming=incoming,
            canonical=canonical,
            flow=flow.policy,
            incoming_at=record.updated_at,
            origins=origins,
            carried=carried,
            open_conflicts=conflicts.keys(),
            holders=await self._holders(s, resource, entity.id),
            kind_fixed=self._kind_fixed_names,
            kind_blind=self._kind_blind_names,
        )
        if result.updates:
            await repos.write_entity(s, resource, entity, result.merged)
            entity.updated_at = self.clock()
            for update in result.updates:
                await self._audit(
                    s,
                    ctx,
                    entity.workspace_id,
                    resource,
                    entity.id,
                    update.field,
                    update.old,
                    update.new,
                    update.reason,
                )

        # A decision that keeps the canonical value (the incoming one lost or was
        # refused) is written down under the account the kept value came from: the audit
        # says per field who changed it last (``_origins``, and which changes a deletion
        # may override: ``_fields_from_gone_sources``), and ``ctx`` changed nothing here.
        def keeper(name: str) -> AccountContext | None:
            origin = origins.get(name)
            if origin is None or origin.account is None:
                return None
            return self.accounts.get(origin.account)

        for resolution in result.resolved:
            if resolution.outcome != "incoming":
                await self._audit(
                    s,
                    keeper(resolution.conflict.field),
                    entity.workspace_id,
                    resource,
                    entity.id,
                    resolution.conflict.field,
                    resolution.conflict.incoming,
                    resolution.value,
                    resolution.reason,
                )
        for refusal in result.refused:
            await self._audit(
                s,
                keeper(refusal.field),
                entity.workspace_id,
                resource,
                entity.id,
                refusal.field,
                refusal.value,
                canonical.get(refusal.field),
                refusal.reason,
            )
        for queued in result.queued:
            name = queued.conflict.field
            row = conflicts.get(name)
            if row is None:
                origin = queued.conflict.current_origin.account or "canonical"
                row = t.Conflict(
                    workspace_id=entity.workspace_id,
                    resource=resource,
                    canonical_id=entity.id,
                    field=name,
                    candidates={
                        origin: queued.conflict.current,
                        ctx.name: queued.conflict.incoming,
                    },
                    policy=queued.policy,
                    state="open",
                    created_at=self.clock(),
                )
                s.add(row)
                conflicts[name] = row
                stats.conflicts += 1
            else:
                row.candidates = {**row.candidates, ctx.name: queued.conflict.incoming}
            await self._audit(
                s,
                ctx,  # the proposer: the conflict's history shows who wants which value
                entity.workspace_id,
                resource,
                entity.id,
                name,
                queued.conflict.current,
                queued.conflict.incoming,
                queued.reason,
            )
        link.base = dict(result.new_base)
        link.base_fingerprint = fields_fingerprint(result.new_base)
        link.external_version = record.version
        link.external_updated_at = record.updated_at
        await s.flush()
        await self._plan(
            s, entity.workspace_id, resource, entity.id, dict(result.merged), held=conflicts.keys()
        )

    # ------------------------------------------------------------------ plan

    async def _flow_of(self, s: AsyncSession, resource: Resource, canonical_id: int) -> Flow | None:
        """The flow a canonical record belongs to: the one of the accounts linked to it.

        A workspace may hold several flows of one resource (Simplicate -> Moneybird and
        Perfex -> SimplBooks invoices): a record follows the flow of the account it came
        from, never another one.
        """
        by_id = {ctx.id: ctx for ctx in self.accounts.values()}
        for link in sorted(
            await repos.links_of_entity(s, resource, canonical_id), key=lambda link: link.id
        ):
            ctx = by_id.get(link.account_id)
            if ctx is not None and resource in ctx.flows:
                return ctx.flows[resource]
        return None

    async def _targets(
        self, s: AsyncSession, flow: Flow, resource: Resource, canonical_id: int
    ) -> list[Target]:
        targets = []
        for name in flow.accounts:
            target = self.accounts.get(name)
            if target is None:
                continue
            link = await repos.link_by_entity(s, target.id, resource, canonical_id)
            base = None if link is None else dict(link.base)
            sent = bool(
                resource == "invoices"
                and base is not None
                and base.get("status") not in (None, "draft")
            )
            targets.append(
                self._target(
                    target,
                    resource,
                    base=base,
                    sent=sent,
                    detached=link is not None and link.detached_at is not None,
                )
            )
        return targets

    def _carried_fields(self, ctx: AccountContext, resource: Resource) -> frozenset[str]:
        """The fields an account's records are believed for when merging.

        Contacts: what the vendor can store (a vendor without a website field reports
        none, which says nothing). Invoices and payments: everything the vendor reports,
        since bookkeeping decides numbers, status and amounts paid that nobody writes,
        and a CRM reports line edits even where the API cannot rewrite them.
        """
        if resource == "contacts":
            return self._synced_fields(ctx, resource)
        every = INVOICE_FIELDS if resource == "invoices" else PAYMENT_FIELDS
        return frozenset(every) - VENDOR_LOCAL_FIELDS[resource]

    @property
    def _kind_blind(self) -> frozenset[int]:
        """Accounts whose vendor cannot store a contact's kind (person or organization)."""
        return frozenset(
            ctx.id for ctx in self.accounts.values() if not ctx.adapter.capabilities.contact_kinds
        )

    def _synced_fields(self, ctx: AccountContext, resource: Resource) -> frozenset[str]:
        """The fields of ``resource`` this account holds and that sync between accounts."""
        writable = ctx.adapter.capabilities.writable_fields.get(resource, frozenset())
        return frozenset(writable) - VENDOR_LOCAL_FIELDS[resource]

    def _target(
        self,
        ctx: AccountContext,
        resource: Resource,
        *,
        base: Mapping[str, Any] | None,
        sent: bool = False,
        detached: bool = False,
    ) -> Target:
        capabilities = ctx.adapter.capabilities
        return Target(
            account=ctx.name,
            base=base,
            writable=self._synced_fields(ctx, resource),
            removal=capabilities.removal.get(resource, "none"),
            sent_mutable=frozenset(capabilities.sent_invoice_mutable_fields),
            sent=sent,
            detached=detached,
            drafts=capabilities.invoice_drafts,
            kind_fixed=resource == "contacts" and fixes_kind(capabilities),
        )

    async def _plan(
        self,
        s: AsyncSession,
        workspace_id: int,
        resource: Resource,
        canonical_id: int,
        canonical: Mapping[str, Any] | None,
        held: Iterable[str],
    ) -> tuple[Action, ...]:
        await s.flush()
        flow = await self._flow_of(s, resource, canonical_id)
        if flow is None:
            return ()
        targets = await self._targets(s, flow, resource, canonical_id)
        actions = plan(flow=flow.policy, canonical=canonical, targets=targets, held=tuple(held))
        if resource == "payments" and canonical is not None and canonical.get("invoice"):
            actions = tuple(
                [await self._payment_target_check(s, a, int(canonical["invoice"])) for a in actions]
            )
        if any(a.op == "create" for a in actions):
            actions = tuple([await self._review_hold(s, a, canonical_id) for a in actions])
        origin = origin_owner(resource, flow.policy.owners)
        if origin is not None and any(a.op == "create" for a in actions):
            first = await repos.first_link(s, resource, canonical_id)
            if first is not None and first.account_id != self.accounts[origin].id:
                names = {c.id: c.name for c in self.accounts.values()}
                came_from = names.get(first.account_id, "another account")
                actions = tuple(
                    Action(
                        a.account,
                        "skip",
                        a.fields,
                        f"{NOUNS_PLURAL[resource]} are created from {origin}; this one was "
                        f"made in {came_from}, so it is not created in {a.account}",
                        resource,
                    )
                    if a.op == "create"
                    else a
                    for a in actions
                )
        for action in actions:
            await self._enqueue(s, workspace_id, resource, canonical_id, canonical, action)
        return actions

    async def _review_hold(self, s: AsyncSession, action: Action, canonical_id: int) -> Action:
        """No create where a record of that account may be this one, until a person decides."""
        if action.op != "create":
            return action
        target = self.accounts[action.account]
        reviews = await repos.open_reviews(s, target.id, action.resource)
        if not reviews:
            return action
        review_id = repos.review_candidates(reviews).get(canonical_id)
        if review_id is None and action.resource == "contacts":
            # An entity made after the review opened is none of its candidates, yet the
            # record waiting there may be this very company.
            review_id = await self._waiting_record_matches(s, target, canonical_id, reviews)
        if review_id is None:
            return action
        return Action(
            action.account,
            "skip",
            action.fields,
            f"a record in {action.account} may be this one (match review {review_id}); "
            "nothing is created there until it is decided",
            action.resource,
        )

    async def _waiting_record_matches(
        self,
        s: AsyncSession,
        target: AccountContext,
        canonical_id: int,
        reviews: Sequence[t.MatchReview],
    ) -> int | None:
        """The open review in ``target`` whose waiting record may be this contact, if any."""
        entity = await repos.load_entity(s, "contacts", canonical_id)
        if entity is None:
            return None
        value = cast(Contact, await repos.entity_value(s, "contacts", entity))
        linked = await repos.linked_accounts(s, "contacts", [canonical_id])
        candidate = Candidate(canonical_id, value, linked[canonical_id])
        for review in reviews:
            for entry in review.candidates:
                if not isinstance(entry, dict) or "incoming" not in entry:
                    continue
                waiting = repos.value_from_fields("contacts", entry["incoming"])
                assert isinstance(waiting, Contact)
                decision = match_contact(
                    waiting, [candidate], account=target.id, kind_blind=self._kind_blind
                )
                if not isinstance(decision, NoMatch):
                    return review.id
        return None

    async def _payment_target_check(
        self, s: AsyncSession, action: Action, invoice_id: int
    ) -> Action:
        """A payment is only created where its invoice is, or is about to be created."""
        if action.op != "create":
            return action
        target = self.accounts[action.account]
        if await repos.link_by_entity(s, target.id, "invoices", invoice_id) is not None:
            return action
        pending = await repos.active_outbox(s, target.id, "invoices", invoice_id)
        if any(row.op == "create" for row in pending):
            return action
        return Action(
            action.account,
            "skip",
            action.fields,
            f"the payment's invoice is not in {action.account}, so the payment is not either",
            "payments",
        )

    async def _enqueue(
        self,
        s: AsyncSession,
        workspace_id: int,
        resource: Resource,
        canonical_id: int,
        canonical: Mapping[str, Any] | None,
        action: Action,
    ) -> None:
        target = self.accounts[action.account]
        if action.op == "skip":
            log.info(
                "write_skipped",
                account=action.account,
                resource=resource,
                canonical_id=canonical_id,
                reason=action.reason,
            )
            return
        if action.op == "conflict":
            existing = await repos.open_conflicts(s, resource, canonical_id)
            for name in sorted(action.fields):
                if name in existing:
                    continue
                s.add(
                    t.Conflict(
                        workspace_id=workspace_id,
                        resource=resource,
                        canonical_id=canonical_id,
                        field=name,
                        candidates={
                            "canonical": None if canonical is None else canonical.get(name)
                        },
                        policy="immutable",
                        state="open",
                        created_at=self.clock(),
                    )
                )
                await self._audit(
                    s, None, workspace_id, resource, canonical_id, name, None, None, action.reason
                )
            return
        op = (
            "create"
            if action.op == "create"
            else "update"
            if action.op == "update"
            else (action.removal or "delete")
        )
        active = await repos.active_outbox(s, target.id, resource, canonical_id)
        if op == "create" and any(row.op == "create" for row in active):
            return
        if op == "update":
            if any(row.op == "create" for row in active):
                return  # the create writes the current canonical record anyway
            for row in active:
                if row.op == "update" and row.state in ("pending", "failed"):
                    row.fields = {
                        **row.fields,
                        "fields": sorted(set(row.fields.get("fields", [])) | action.fields),
                    }
                    return
        if op in ("delete", "archive"):
            if any(row.op == op for row in active):
                return
            for row in active:
                if row.op == "update" and row.state in ("pending", "failed"):
                    # The removal supersedes it: no write to a record being removed.
                    row.state = "done"
                    row.last_error = f"superseded by the {op} planned after it"
            if op == "archive" and _held_archived(
                resource, await repos.link_by_entity(s, target.id, resource, canonical_id)
            ):
                log.info(
                    "write_skipped",
                    account=action.account,
                    resource=resource,
                    canonical_id=canonical_id,
                    reason=f"{action.account} holds it archived already",
                )
                return
        label = _label(resource, canonical or {})
        s.add(
            t.Outbox(
                account_id=target.id,
                resource=resource,
                op=op,
                canonical_id=canonical_id,
                fields={"fields": sorted(action.fields), "reason": action.reason},
                client_token=uuid.uuid4().hex if op == "create" else None,
                state="pending",
                attempts=0,
                next_attempt_at=self.clock(),
            )
        )
        if self._dry is not None:
            self.planned.append(
                PlannedWrite(
                    action.account, resource, op, canonical_id, tuple(sorted(action.fields)), label
                )
            )

    # ------------------------------------------------------------------ push

    async def push(self, name: str) -> PassStats:
        """Drain account ``name``'s outbox (due rows, in order) under its rate budget."""
        ctx = self._ctx(name)
        if not self._prepared:
            await self.prepare()
        reason = await self._available(ctx)
        if reason is not None:
            log.info("account_skipped", account=name, reason=reason)
            return PassStats(account=name)
        async with self._job(ctx, "push") as stats:
            await self._settle(ctx, None, stats)
            hold = await self._pull_before_creates(ctx, stats)
            done: set[int] = set()
            while True:
                async with self._tx() as s:
                    ids = [
                        i for i in await repos.due_outbox(s, ctx.id, self.clock()) if i not in done
                    ]
                if not ids:
                    break
                for row_id in ids:
                    done.add(row_id)
                    await self._push_one(ctx, row_id, stats, hold_creates=hold)
        return stats

    async def _pull_before_creates(
        self, ctx: AccountContext, stats: PassStats
    ) -> frozenset[Resource]:
        """Pull a resource first when creates are due for it; the resources whose creates wait.

        Somebody may have typed the same company into this vendor since its last pull,
        whenever the create was planned (before that pull too: the pull could not link a
        record that was not there yet); the pull links it (by matching) so the create is
        dropped instead of making a second record. Only for incremental vendors, where a
        pull with nothing new costs one request; snapshot vendors are listed in full by
        every scheduled pull anyway.

        When the vendor cannot be listed (this pull fails, or the resource's last one did
        and none has succeeded since), its creates wait for a listing that works: creating
        blind could duplicate. Updates and removals go ahead.
        """
        if ctx.adapter.capabilities.change_detection != "incremental":
            return frozenset()
        async with self._tx() as s:
            resources = await repos.resources_with_due_creates(s, ctx.id, self.clock())
        hold: set[Resource] = set()
        for resource in ctx.resources:
            if resource not in resources:
                continue
            if resource in ctx.listing_failed:
                hold.add(resource)  # not listed again here: the next scheduled pull retries
                continue
            try:
                await self._pull_resource(ctx, resource, stats)
            except (AuthFailed, QuotaExhausted, SafetyStop):
                raise  # the whole account waits (see _job)
            except (Retryable, Fatal) as exc:
                hold.add(resource)
                stats.errors.append(f"{resource}: {exc}")
        if hold:
            log.warning(
                "creates_held",
                account=ctx.name,
                resources=sorted(hold),
                reason="the vendor's listing failed; a create now could duplicate a record "
                "typed in since",
            )
        return frozenset(hold)

    def _backoff(self, attempts: int, retry_after: float | None) -> dt.timedelta:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, attempts - 1)))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return dt.timedelta(seconds=delay)

    async def _fail(
        self, row_id: int, error: str, *, retry_after: float | None = None, dead: bool = False
    ) -> None:
        async with self._tx() as s:
            row = await s.get(t.Outbox, row_id)
            assert row is not None
            row.last_error = error
            if dead or row.attempts >= MAX_ATTEMPTS:
                row.state = "dead"
                log.error(
                    "write_dead_lettered",
                    outbox_id=row_id,
                    op=row.op,
                    resource=row.resource,
                    error=error,
                )
            else:
                row.state = "failed"
                row.next_attempt_at = self.clock() + self._backoff(row.attempts, retry_after)
                log.warning(
                    "write_failed",
                    outbox_id=row_id,
                    op=row.op,
                    resource=row.resource,
                    error=error,
                    attempts=row.attempts,
                )

    async def _push_one(
        self,
        ctx: AccountContext,
        row_id: int,
        stats: PassStats,
        *,
        hold_creates: frozenset[Resource] = frozenset(),
    ) -> None:
        async with self._tx(ctx) as s:
            # The claim: the row is locked while its intent is written ("sending"); a row
            # another transaction holds is skipped, not waited for (PostgreSQL; SQLite
            # has one writer at a time and ignores the clause).
            row = await repos.claim_outbox(s, row_id)
            if row is None or row.state not in ("pending", "failed"):
                return
            resource = cast(Resource, row.resource)
            if row.op == "create" and resource in hold_creates:
                return  # stays due: see _pull_before_creates
            adapter = ctx.adapter.resource(resource)
            entity = await repos.load_entity(s, resource, row.canonical_id)
            link = await repos.link_by_entity(s, ctx.id, resource, row.canonical_id)
            op = row.op
            token = row.client_token
            # A field that got an open conflict after this row was planned is held: it is
            # written nowhere until a person (or the policy) decides.
            held = (await repos.open_conflicts(s, resource, row.canonical_id)).keys()
            wanted = frozenset(row.fields.get("fields", [])) - held
            if op == "create" and (
                link is not None or entity is None or entity.deleted_at is not None
            ):
                row.state = "done"  # already there (matched or settled), or nothing to create
                if link is not None and entity is not None and entity.deleted_at is None:
                    # Linked by a match meanwhile: the account still lacks what differs.
                    await s.flush()
                    held = (await repos.open_conflicts(s, resource, entity.id)).keys()
                    current = await repos.entity_fields(s, resource, entity)
                    await self._plan(
                        s, entity.workspace_id, resource, entity.id, current, held=held
                    )
                return
            if op == "create":
                waiting = await repos.open_review_candidates(s, ctx.id, resource)
                if row.canonical_id in waiting:
                    # A record of this account may be this one: creating it now could make
                    # a duplicate. Deciding the review plans the create again if needed.
                    row.state = "done"
                    row.last_error = (
                        f"cancelled: match review {waiting[row.canonical_id]} may link an "
                        f"existing {ctx.name} record to it"
                    )
                    return
            if op in ("update", "delete", "archive") and link is None:
                row.state = "done"
                row.last_error = "no longer linked: nothing to write"
                return
            if op == "archive" and _held_archived(resource, link):
                row.state = "done"
                row.last_error = f"moot: {ctx.name} holds it archived already"
                return
            value: Contact | Invoice | Payment | None = None
            fields: Mapping[str, Any] = {}
            if op in ("create", "update"):
                if entity is None:
                    row.state = "done"
                    return
                fields = await repos.entity_fields(s, resource, entity)
                if op == "update" and link is not None:
                    # The copy as it should be held there: a contact keeps the kind it
                    # was created with where the vendor cannot change it.
                    fields = as_held(fields, self._target(ctx, resource, base=dict(link.base)))
                try:
                    value = await self._outbound(s, ctx, resource, fields)
                except _Defer as exc:
                    row.attempts += 1
                    if row.attempts >= MAX_ATTEMPTS * 3:
                        row.state = "dead"
                        row.last_error = f"waited too long: {exc}"
                    else:
                        row.next_attempt_at = self.clock() + dt.timedelta(seconds=DEFER_SECONDS)
                        row.last_error = str(exc)
                    return
            external_id = None if link is None else link.external_id
            base = None if link is None else dict(link.base)
            if op == "create":
                # What the create carries, so that a change made while it is on its way
                # (or unsettled after a crash) is seen once it is linked.
                row.fields = {**row.fields, "sent": dict(fields)}
            if op == "update" and base is not None:
                # Only what the account does not hold yet: a later merge in the same pass
                # may have given a field back the value the account already has.
                wanted = frozenset(
                    name for name in wanted if name not in base or fields.get(name) != base[name]
                )
                if not wanted:
                    row.state = "done"
                    row.last_error = None
                    return
                # What the update carries: if its answer is lost (or the process dies
                # before it is recorded), its echo is still known for ours on the next pull.
                writes = ctx.adapter.capabilities.writable_fields.get(resource, frozenset())
                row.fields = {
                    **row.fields,
                    "sent": {name: fields.get(name) for name in sorted(wanted & writes)},
                }
            row.state = "sending"  # the intent: committed before anything is sent
            row.attempts += 1
        try:
            if op == "create":
                assert value is not None
                record = await adapter.create(value, client_token=token)
                await self._after_create(ctx, row_id, resource, record)
                stats.created += 1
            elif op == "update":
                assert value is not None and external_id is not None
                writable = ctx.adapter.capabilities.writable_fields.get(resource, frozenset())
                to_write = frozenset(wanted & writable)
                if to_write:
                    record = await adapter.update(external_id, value, to_write)
                    await self._after_update(ctx, row_id, resource, record, base, to_write)
                    stats.updated += 1
                else:
                    await self._finish(row_id)
            else:
                assert external_id is not None
                with contextlib.suppress(NotFound):  # already gone: the removal holds
                    await adapter.remove(external_id)
                await self._after_remove(ctx, row_id, resource, external_id)
                stats.removed += 1
        except Uncertain as exc:
            async with self._tx(ctx) as s:
                row = await s.get(t.Outbox, row_id)
                assert row is not None
                row.state = "uncertain"
                row.last_error = str(exc)
            log.warning(
                "write_uncertain", outbox_id=row_id, op=op, resource=resource, error=str(exc)
            )
            await self._settle(ctx, resource, stats, only=row_id)
        except SkipRecord as exc:
            stats.failed += 1
            await self._fail(row_id, f"{ctx.name} refused the {op}: {exc.reason}", dead=True)
        except NotFound as exc:
            stats.failed += 1
            await self._fail(row_id, f"{ctx.name} no longer has the record: {exc}", dead=True)
        except Retryable as exc:
            stats.failed += 1
            await self._fail(row_id, str(exc), retry_after=exc.retry_after)
            if isinstance(exc, QuotaExhausted):
                raise
        except Fatal:
            async with self._tx(ctx) as s:
                row = await s.get(t.Outbox, row_id)
                assert row is not None
                row.state = "pending"  # nothing was sent; try again once the account is fixed
                row.attempts = max(0, row.attempts - 1)
            raise

    async def _finish(self, row_id: int) -> None:
        async with self._tx() as s:
            row = await s.get(t.Outbox, row_id)
            assert row is not None
            row.state = "done"
            row.last_error = None

    async def _after_create(
        self, ctx: AccountContext, row_id: int, resource: Resource, record: VendorRecord
    ) -> None:
        async with self._tx(ctx) as s:
            row = await s.get(t.Outbox, row_id)
            assert row is not None
            # Done first: planning inside _link_created must not take this create for
            # one still to come (it would fold a newer edit into it and send nothing).
            row.state = "done"
            row.last_error = None
            sent = row.fields.get("sent")
            await self._link_created(s, ctx, resource, row.canonical_id, record, sent=sent)

    async def _link_created(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        canonical_id: int,
        record: VendorRecord,
        *,
        sent: Mapping[str, Any] | None = None,
    ) -> None:
        """Link the record a create made; ``sent``: the canonical fields the create sent."""
        try:
            written = await self._inbound(s, ctx, resource, record.value)
        except SkipRecord:
            entity = await repos.load_entity(s, resource, canonical_id)
            assert entity is not None
            written = await repos.entity_fields(s, resource, entity)
        existing = await repos.link_by_external(s, ctx.id, resource, record.external_id)
        if existing is not None:
            if existing.canonical_id != canonical_id:
                log.error(
                    "link_clash",
                    account=ctx.name,
                    resource=resource,
                    external_id=record.external_id,
                    linked_to=existing.canonical_id,
                    wanted=canonical_id,
                )
            return
        s.add(
            t.Link(
                account_id=ctx.id,
                resource=resource,
                external_id=record.external_id,
                canonical_id=canonical_id,
                base=written,
                base_fingerprint=fields_fingerprint(written),
                external_version=record.version,
                external_updated_at=record.updated_at,
                linked_at=self.clock(),
            )
        )
        entity = await repos.load_entity(s, resource, canonical_id)
        workspace_id = entity.workspace_id if entity is not None else ctx.workspace_id
        await self._audit(
            s,
            ctx,
            workspace_id,
            resource,
            canonical_id,
            "*",
            None,
            record.external_id,
            f"created in {ctx.name} as {record.external_id}",
        )
        await self._adopt_owned(s, ctx, resource, entity, written, sent)

    async def _adopt_owned(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        entity: repos.Entity | None,
        written: Mapping[str, Any],
        sent: Mapping[str, Any] | None = None,
    ) -> None:
        """Take into the canonical record what the vendor decided itself while creating.

        A bookkeeping vendor numbers an invoice it creates (or sends) at once; the number
        is in its answer and so in the new link's base, and a later pull would see no
        change. Fields this account owns are therefore adopted right here, and planned
        to the other accounts (the CRM gets the number).
        """
        flow = ctx.flows.get(resource)
        if flow is None or entity is None or entity.deleted_at is not None:
            return
        current = await repos.entity_fields(s, resource, entity)
        adopted = {
            name: value
            for name, value in written.items()
            if name in current
            and flow.policy.owner_of(name) == ctx.name
            and value not in (None, "", [])
            and current.get(name) != value
        }
        merged = {**current, **adopted}
        if adopted:
            await repos.write_entity(s, resource, entity, merged)
            entity.updated_at = self.clock()
            for name, value in sorted(adopted.items()):
                await self._audit(
                    s,
                    ctx,
                    entity.workspace_id,
                    resource,
                    entity.id,
                    name,
                    current.get(name),
                    value,
                    f"owner: {ctx.name} set {name} when it created the record",
                )
        elif sent is None or not pending_fields(
            merged, self._target(ctx, resource, base=dict(sent))
        ):
            # Nothing changed since the create was sent (a field the vendor keeps its
            # own way, such as a payment method it assigns, is no change of ours).
            return
        # Either the vendor decided something the others need, or the canonical record
        # changed while the create was on its way (or unsettled after a crash): planning
        # then found no link here and skipped this account; the new copy lacks the edit.
        await s.flush()
        held = (await repos.open_conflicts(s, resource, entity.id)).keys()
        await self._plan(s, entity.workspace_id, resource, entity.id, merged, held=held)

    async def _after_update(
        self,
        ctx: AccountContext,
        row_id: int,
        resource: Resource,
        record: VendorRecord,
        base: Mapping[str, Any] | None,
        written_fields: frozenset[str],
    ) -> None:
        async with self._tx(ctx) as s:
            row = await s.get(t.Outbox, row_id)
            assert row is not None
            link = await repos.link_by_entity(s, ctx.id, resource, row.canonical_id)
            if link is not None:
                try:
                    written = await self._inbound(s, ctx, resource, record.value)
                except SkipRecord:
                    written = None
                if written is not None:
                    action = Action(ctx.name, "update", written_fields, "pushed", resource)
                    new_base = base_after_write(dict(link.base), action, written) or {}
                    link.base = new_base
                    link.base_fingerprint = fields_fingerprint(new_base)
                    link.external_version = record.version
                    link.external_updated_at = record.updated_at
            row.state = "done"
            row.last_error = None

    async def _after_remove(
        self, ctx: AccountContext, row_id: int, resource: Resource, external_id: str
    ) -> None:
        async with self._tx(ctx) as s:
            row = await s.get(t.Outbox, row_id)
            assert row is not None
            link = await repos.link_by_external(s, ctx.id, resource, external_id)
            if link is not None:
                if row.op == "archive" and resource == "contacts":
                    link.base = {**link.base, "archived": True}
                    link.base_fingerprint = fields_fingerprint(link.base)
                else:
                    await s.delete(link)
            row.state = "done"
            row.last_error = None

    async def _settle(
        self,
        ctx: AccountContext,
        resource: Resource | None,
        stats: PassStats,
        only: int | None = None,
    ) -> bool:
        """Settle writes whose outcome is unknown; True when some are still unknown."""
        async with self._tx() as s:
            ids = await repos.unsettled_outbox(s, ctx.id, resource)
        if only is not None:
            ids = [i for i in ids if i == only]
        unknown = False
        for row_id in ids:
            async with self._tx(ctx) as s:
                row = await s.get(t.Outbox, row_id)
                if row is None or row.state not in ("sending", "uncertain"):
                    continue
                res = cast(Resource, row.resource)
                if row.op != "create":
                    row.state = "pending"  # updates and removals are safe to send again
                    continue
                entity = await repos.load_entity(s, res, row.canonical_id)
                if entity is None:
                    row.state = "done"
                    continue
                link = await repos.link_by_entity(s, ctx.id, res, row.canonical_id)
                if link is not None:
                    row.state = "done"
                    continue
                fields = await repos.entity_fields(s, res, entity)
                try:
                    natural = await self._outbound(s, ctx, res, fields)
                except _Defer:
                    natural = None
                token = row.client_token
            try:
                found = await ctx.adapter.resource(res).find(
                    client_token=token, natural_key=natural
                )
            except (Retryable, Uncertain) as exc:
                log.warning("settle_postponed", outbox_id=row_id, error=str(exc))
                unknown = True
                continue
            async with self._tx(ctx) as s:
                row = await s.get(t.Outbox, row_id)
                assert row is not None
                if found is not None:
                    other = await repos.link_by_external(s, ctx.id, res, found.external_id)
                    if other is not None and other.canonical_id != row.canonical_id:
                        # A namesake that is another record: ours was not created.
                        found = None
                if found is not None:
                    row.state = "done"  # before _link_created plans (see _after_create)
                    row.last_error = None
                    sent = row.fields.get("sent")
                    await self._link_created(s, ctx, res, row.canonical_id, found, sent=sent)
                    stats.created += 1
                    log.info(
                        "uncertain_create_found", outbox_id=row_id, external_id=found.external_id
                    )
                    entity = await repos.load_entity(s, res, row.canonical_id)
                    if entity is not None and entity.deleted_at is not None:
                        # Deleted while the create's outcome was unknown: the deletion
                        # could plan no removal here then (no link); plan it now.
                        await self._plan(s, ctx.workspace_id, res, row.canonical_id, None, held=())
                else:
                    row.state = "failed" if row.attempts < MAX_ATTEMPTS else "dead"
                    row.next_attempt_at = self.clock()
                    log.info("uncertain_create_absent", outbox_id=row_id, note="safe to send again")
        return unknown

    # ------------------------------------------------------------------ reconcile

    async def reconcile_due(self, name: str) -> bool:
        ctx = self._ctx(name)
        interval = self._account_settings(name).reconcile_interval
        async with self._tx() as s:
            for resource in ctx.resources:
                row = await repos.cursor_row(s, ctx.id, resource)
                if (
                    row.last_full_sweep_at is None
                    or row.last_full_sweep_at + interval <= self.clock()
                ):
                    return True
        return False

    def _account_settings(self, name: str) -> Any:
        for workspace in self.settings.workspaces:
            for account in workspace.accounts:
                if account.name == name:
                    return account
        raise LookupError(name)

    async def reconcile(self, name: str) -> PassStats:
        """List every id of ``name``; apply deletions per the flow; pick up missed records."""
        ctx = self._ctx(name)
        if not self._prepared:
            await self.prepare()
        reason = await self._available(ctx)
        if reason is not None:
            return PassStats(account=name)
        async with self._job(ctx, "reconcile") as stats:
            for resource in ctx.resources:
                await self._reconcile_resource(ctx, resource, stats)
        return stats

    async def _reconcile_resource(
        self, ctx: AccountContext, resource: Resource, stats: PassStats
    ) -> None:
        if await self._settle(ctx, resource, stats):
            return
        adapter = ctx.adapter.resource(resource)
        listed: dict[str, bool] = {}
        async for batch in adapter.list_ids(lane="reconcile"):
            for entry in batch:
                listed[entry.external_id] = entry.archived
        async with self._tx() as s:
            links = await repos.external_ids(s, ctx.id, resource)
        live_links = {k: v for k, v in links.items() if v.detached_at is None}
        vanished = sorted(set(live_links) - set(listed))
        flow = ctx.flows[resource]
        side = f"{ctx.name} {resource}"
        empty = guards.check_empty_side(
            len(live_links), len(listed), account=ctx.name, resource=resource
        )
        if not empty.ok:
            raise SafetyStop(f"{side}: {empty.reason}")
        verdict = guards.check_mass_delete(
            len(live_links),
            len(vanished),
            flow.policy.max_delete_percent,
            account=ctx.name,
            resource=resource,
        )
        if not verdict.ok:
            raise SafetyStop(f"{side}: {verdict.reason}")
        for external_id in vanished:
            await self._vanished(ctx, resource, external_id, stats)
        missing = sorted(set(listed) - set(links))
        for external_id in missing:
            record = await self._read_one(ctx, resource, external_id, "reconcile", stats)
            if not record:
                continue
            async with self._tx(ctx) as s:
                stats.pulled += 1
                await self._ingest(s, ctx, resource, record, stats)
        async with self._tx(ctx) as s:
            row = await repos.cursor_row(s, ctx.id, resource)
            row.last_full_sweep_at = self.clock()

    async def _vanished(
        self, ctx: AccountContext, resource: Resource, external_id: str, stats: PassStats
    ) -> None:
        async with self._tx(ctx) as s:
            link = await repos.link_by_external(s, ctx.id, resource, external_id)
            if link is None:
                return
            entity = await repos.load_entity(s, resource, link.canonical_id)
            flow = ctx.flows[resource]
            canonical = None
            if entity is not None and entity.deleted_at is None:
                canonical = await repos.entity_fields(s, resource, entity)
            target = self._target(ctx, resource, base=dict(link.base))
            gone: set[str] = set()
            if canonical is not None:
                gone = await self._fields_from_gone_sources(s, resource, link, canonical)
            decision = decide_deletion(
                flow=flow.policy, target=target, canonical=canonical, gone=gone
            )
            log.info(
                "record_vanished",
                account=ctx.name,
                resource=resource,
                external_id=external_id,
                outcome=decision.outcome,
                reason=decision.reason,
            )
            canonical_id = link.canonical_id
            workspace_id = ctx.workspace_id
            if decision.outcome == "detach":
                link.detached_at = self.clock()
                await self._audit(
                    s,
                    ctx,
                    workspace_id,
                    resource,
                    canonical_id,
                    "*",
                    external_id,
                    None,
                    decision.reason,
                )
                return
            await s.delete(link)
            await s.flush()
            await self._audit(
                s,
                ctx,
                workspace_id,
                resource,
                canonical_id,
                "*",
                external_id,
                None,
                decision.reason,
            )
            if decision.outcome == "delete" and entity is not None:
                entity.deleted_at = self.clock()
                stats.changed += 1
                await s.flush()
                await self._plan(s, workspace_id, resource, canonical_id, None, held=())
            elif decision.outcome == "recreate" and canonical is not None:
                await self._plan(s, workspace_id, resource, canonical_id, canonical, held=())

    async def _learn_kind(
        self,
        s: AsyncSession,
        ctx: AccountContext,
        resource: Resource,
        entity: repos.Entity,
        canonical: Mapping[str, Any],
        incoming: Mapping[str, Any],
    ) -> Mapping[str, Any]:
        """A contact's kind, first learnt from an account that can store it.

        An entity made from a record of a vendor without persons (SimplBooks) is an
        organization only because that vendor says so of every client. The first account
        that can tell persons from organizations settles it; after that the kind merges
        like any field.
        """
        kind = incoming.get("kind")
        blind = self._kind_blind
        if resource != "contacts" or ctx.id in blind or kind is None:
            return canonical
        if canonical.get("kind") == kind:
            return canonical
        others = [
            link
            for link in await repos.links_of_entity(s, resource, entity.id)
            if link.account_id != ctx.id
        ]
        if not others or any(link.account_id not in blind for link in others):
            return canonical
        learnt = {**canonical, "kind": kind}
        await repos.write_entity(s, resource, entity, learnt)
        entity.updated_at = self.clock()
        await self._audit(
            s,
            ctx,
            entity.workspace_id,
            resource,
            entity.id,
            "kind",
            canonical.get("kind"),
            kind,
            f"kind learnt from {ctx.name}: the accounts that held it so far cannot store "
            "a contact's kind",
        )
        return learnt

    async def _holders(self, s: AsyncSession, resource: str, canonical_id: int) -> set[str]:
        """Names of the accounts that hold a linked copy of a canonical record."""
        names = {ctx.id: ctx.name for ctx in self.accounts.values()}
        return {
            names[link.account_id]
            for link in await repos.links_of_entity(s, resource, canonical_id)
            if link.detached_at is None and link.account_id in names
        }

    async def _fields_from_gone_sources(
        self, s: AsyncSession, resource: str, vanished: t.Link, fields: Iterable[str]
    ) -> set[str]:
        """Fields whose value came from an account that no longer holds the record.

        Such an account deleted it too (its link was dropped when it vanished there), so
        its unsent change is no modify that could beat the deletion now weighed. A field
        nobody changed since the entity was made from a record still holds that record's
        value: it came from the account the entity was made from.
        """
        live = {
            link.account_id
            for link in await repos.links_of_entity(s, resource, vanished.canonical_id)
            if link.detached_at is None and link.id != vanished.id
        }
        known = {ctx.id for ctx in self.accounts.values()}
        by_field = await repos.last_change_accounts(s, resource, vanished.canonical_id)
        creator = await repos.creating_account(s, resource, vanished.canonical_id)
        for name in fields:
            by_field.setdefault(name, creator)
        return {
            name
            for name, account_id in by_field.items()
            if account_id is not None
            and account_id in known
            and account_id != vanished.account_id
            and account_id not in live
        }

    # ------------------------------------------------------------------ operators

    async def replan(self, resource: Resource, canonical_id: int) -> tuple[Action, ...]:
        """Plan one canonical record again (after a conflict or match decision)."""
        if not self._prepared:
            await self.prepare()
        async with self._tx() as s:
            entity = await repos.load_entity(s, resource, canonical_id)
            if entity is None:
                raise LookupError(f"no {resource} with id {canonical_id}")
            held = (await repos.open_conflicts(s, resource, canonical_id)).keys()
            fields = (
                None
                if entity.deleted_at is not None
                else await repos.entity_fields(s, resource, entity)
            )
            return await self._plan(
                s, entity.workspace_id, resource, canonical_id, fields, held=held
            )

    async def resolve_conflict(
        self, conflict_id: int, *, take: str | None = None, value: Any = None, by: str = "operator"
    ) -> Any:
        """Decide an open conflict: ``take`` an account's candidate, or set ``value``."""
        if not self._prepared:
            await self.prepare()
        async with self._tx() as s:
            row = await s.get(t.Conflict, conflict_id)
            if row is None:
                raise LookupError(f"no conflict with id {conflict_id}")
            if row.state != "open":
                raise ValueError(f"conflict {conflict_id} is already {row.state}")
            if take is not None:
                if take not in row.candidates:
                    known = ", ".join(sorted(row.candidates))
                    raise ValueError(
                        f"conflict {conflict_id} has no candidate from {take!r}; candidates: {known}"
                    )
                value = row.candidates[take]
            resource = cast(Resource, row.resource)
            entity = await repos.load_entity(s, resource, row.canonical_id)
            if entity is None:
                raise LookupError(f"{resource} {row.canonical_id} no longer exists")
            fields = await repos.entity_fields(s, resource, entity)
            old = fields.get(row.field)
            fields[row.field] = value
            await repos.write_entity(s, resource, entity, fields)
            entity.updated_at = self.clock()
            row.state = "resolved"
            row.resolution = {"field": row.field, "value": value, "take": take, "by": by}
            row.resolved_at = self.clock()
            why = f"conflict {conflict_id} resolved by {by}: " + (
                f"took {take}'s value" if take else "chose a value"
            )
            await self._audit(
                s, None, entity.workspace_id, resource, entity.id, row.field, old, value, why
            )
            await s.flush()
            held = (await repos.open_conflicts(s, resource, entity.id)).keys()
            await self._plan(
                s,
                entity.workspace_id,
                resource,
                entity.id,
                await repos.entity_fields(s, resource, entity),
                held=held,
            )
            return value

    async def decide_match(
        self, review_id: int, *, accept: bool, canonical_id: int | None = None
    ) -> None:
        """Accept (link to the chosen or best candidate) or reject a review.

        A rejected record becomes a new entity on its account's next pull, unless an entity
        made since matches it (then it is linked) or leaves doubt (then a new review asks
        about those; the candidates turned down stay out).
        """
        if not self._prepared:
            await self.prepare()
        candidates: list[int] = []
        chosen: int | None = None
        resource: Resource = "contacts"
        async with self._tx() as s:
            row = await s.get(t.MatchReview, review_id)
            if row is None:
                raise LookupError(f"no match review with id {review_id}")
            if row.state != "open":
                raise ValueError(f"match review {review_id} is already {row.state}")
            if accept:
                ids = [int(c["canonical_id"]) for c in row.candidates if "canonical_id" in c]
                chosen = canonical_id if canonical_id is not None else (ids[0] if ids else None)
                if chosen is None or chosen not in ids:
                    raise ValueError(
                        f"match review {review_id}: choose one of the candidates {ids}"
                    )
                row.state = "accepted"
                row.chosen_canonical_id = chosen
            else:
                row.state = "rejected"
            row.decided_at = self.clock()
            resource = cast(Resource, row.resource)
            candidates = [int(c["canonical_id"]) for c in row.candidates if "canonical_id" in c]
            waiting = [c["incoming"] for c in row.candidates if "incoming" in c]
            workspace_id = row.workspace_id
            verdict = (
                f"accepted: {row.external_id} is canonical {row.chosen_canonical_id}"
                if accept
                else f"rejected: {row.external_id} becomes a record of its own"
            )
            for candidate in candidates:
                await self._audit(
                    s,
                    None,
                    row.workspace_id,
                    resource,
                    candidate,
                    "*",
                    None,
                    row.external_id,
                    f"match review {review_id} {verdict}",
                )
            # The record is linked on its account's next pull: make sure it is read again.
            cursor = await repos.cursor_row(s, row.account_id, row.resource)
            cursor.checkpoint = None
            cursor.value = None
        # Creates held back while the review was open may go ahead now, for every
        # candidate but the chosen one: that one is linked on the account's next pull.
        # Entities made after the review opened were held too when the waiting record
        # may be them (_review_hold): they are planned again as well.
        if resource == "contacts" and waiting:
            async with self._tx() as s:
                for fields in waiting:
                    contact = repos.value_from_fields("contacts", fields)
                    assert isinstance(contact, Contact)
                    rows = await repos.contact_candidates(
                        s, workspace_id, contact, contact_keys(contact).vat_number
                    )
                    candidates.extend(r.id for r in rows if r.id not in candidates)
        for candidate in candidates:
            if accept and candidate == chosen:
                continue
            with contextlib.suppress(LookupError):
                await self.replan(resource, candidate)

    # ------------------------------------------------------------------ once

    async def once(
        self, names: Sequence[str] | None = None, *, max_rounds: int = 8, reconcile: bool = True
    ) -> dict[str, PassStats]:
        """Run the accounts to quiescence: pull everything, push everything, repeat."""
        await self.prepare()
        selected = [self._ctx(n) for n in (names or list(self.accounts))]
        totals = {ctx.name: PassStats(account=ctx.name) for ctx in selected}
        for round_no in range(max_rounds):
            activity = 0
            for ctx in selected:
                st = await self.pull(ctx.name)
                totals[ctx.name].add(st)
                activity += st.changed
            if reconcile and round_no == 0:
                for ctx in selected:
                    if await self.reconcile_due(ctx.name):
                        st = await self.reconcile(ctx.name)
                        totals[ctx.name].add(st)
                        activity += st.changed
            for ctx in selected:
                st = await self.push(ctx.name)
                totals[ctx.name].add(st)
                activity += st.pushed
            async with self._tx() as s:
                waiting, earliest = await repos.outbox_waiting(s, [c.id for c in selected])
            if activity == 0 and waiting == 0:
                break
            if activity == 0 and earliest is not None:
                delay = (earliest - self.clock()).total_seconds()
                if delay > 30:
                    break  # backing off for longer than a one-shot run should wait
                if delay > 0:
                    await self.sleep(delay)
        return totals

    async def dry_run(self, names: Sequence[str] | None = None) -> list[PlannedWrite]:
        """Pull and plan as ``once`` would, in one transaction that is rolled back.

        Nothing is written to any vendor or kept in the store; the returned writes are
        what the first push of a real run would send.
        """
        async with self.sessionmaker() as session:
            await session.begin()
            self._dry = session
            self.planned = []
            try:
                await self.prepare()
                for ctx in [self._ctx(n) for n in (names or list(self.accounts))]:
                    async with ctx.lock:
                        for resource in ctx.resources:
                            stats = PassStats(account=ctx.name)
                            await self._pull_resource(ctx, resource, stats)
                return await self._still_planned(session, self.planned)
            finally:
                self._dry = None
                self._prepared = False
                await session.rollback()

    async def _still_planned(
        self, s: AsyncSession, planned: Sequence[PlannedWrite]
    ) -> list[PlannedWrite]:
        """The dry run's writes as the first push would meet them.

        A create planned while pulling one account is dropped when a later pull in the
        same pass linked a record of the target account to that entity: the push finds
        the link and creates nothing.
        """
        ids = {ctx.name: ctx.id for ctx in self.accounts.values()}
        kept: list[PlannedWrite] = []
        for write in planned:
            if write.op == "create":
                link = await repos.link_by_entity(
                    s, ids[write.account], write.resource, write.canonical_id
                )
                if link is not None:
                    continue
            kept.append(write)
        return kept


def describe_plan(planned: Sequence[PlannedWrite]) -> list[str]:
    """``--dry-run`` lines: one per account and kind of write, with names and fields."""
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[PlannedWrite]] = {}
    for write in planned:
        groups.setdefault((write.account, write.resource, write.op), []).append(write)
    for (account, resource, op), writes in sorted(groups.items()):
        noun = resource if len(writes) != 1 else resource.rstrip("s")
        names = ", ".join(w.label for w in writes[:10]) + (", ..." if len(writes) > 10 else "")
        if op == "create":
            lines.append(f"would create {len(writes)} {noun} in {account}: {names}")
        elif op == "update":
            fields = sorted({f for w in writes for f in w.fields})
            lines.append(
                f"would update {len(writes)} {noun} in {account} (fields: {', '.join(fields)}): {names}"
            )
        else:
            lines.append(f"would {op} {len(writes)} {noun} in {account}: {names}")
    return lines


__all__ = [
    "AccountContext",
    "Engine",
    "Flow",
    "PassStats",
    "PlannedWrite",
    "describe",
    "describe_plan",
    "fields_fingerprint",
]
