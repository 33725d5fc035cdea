"""What every account is doing, read from the store: ``syncd status`` and ``GET /status``.

`collect_status` reads only the store tables (``syncd.store.tables``) plus the settings
(to list accounts that have not run yet and to know each account's rate windows); it
writes nothing and talks to no vendor. `render_status` turns the result into text for a
terminal.

The result is JSON-able (strings, numbers, booleans, null, lists, objects) and its shape
is a public interface (``syncd status --json`` and ``/status``); fields may be added,
never renamed or removed without bumping ``version``. Times are ISO 8601 UTC strings
ending in ``Z``, or null::

    {
      "version": 1,
      "generated_at": "2026-01-31T12:00:00Z",
      "totals": {"accounts": int, "open_conflicts": int, "open_match_reviews": int,
                 "quarantine": int, "outbox": {<state>: int, ...}},
      "workspaces": [{
        "name": str,
        "configured": bool,              # false: only in the database (removed from config)
        "open_conflicts": int,           # conflicts of this workspace in state "open"
        "open_match_reviews": int,
        "accounts": [{
          "name": str, "vendor": str,
          "configured": bool,            # in the config file
          "in_database": bool,           # false until the daemon first records the account
          "state": "active" | "paused" | "auth_failed" | "unknown",   # unknown: not in DB
          "state_reason": str | null, "paused_until": time | null,
          "runs": {"pull" | "push" | "reconcile": null | {
              "run_id": str, "status": str, "started_at": time, "finished_at": time | null,
              "duration_seconds": float | null, "pulled": int, "changed": int,
              "pushed": int, "conflicts": int, "errors": int, "api_calls": int,
              "error": str | null}},   # the latest run of each job
          "last_success": {"pull" | "push" | "reconcile": time | null},
          "last_success_at": time | null,      # the latest of last_success
          "pull_lag_seconds": float | null,    # now - last successful pull's finish
          "cursors": {<resource>: {"value": str | null, "checkpoint": bool,
                                   "last_full_sweep_at": time | null, "updated_at": time}},
          "budget": [{                   # one per rate window, shortest first
              "per": str ("1m"), "per_seconds": int, "requests": int | null,
              "kind": "bucket" | "quota" | null, "capacity": int, "tokens": float,
              "used": float, "allowed": int | null, "rate_factor": float,
              "penalty_until": time | null, "paused": bool}],
          "outbox": {"pending": int, "sending": int, "uncertain": int, "failed": int,
                     "dead": int},       # rows by state ("done" rows are not counted)
          "open_conflicts": int,         # open conflicts with a candidate from this account
          "open_match_reviews": int,
          "quarantine": int,             # unresolved quarantined records
          "lease": null | {"owner": str, "fencing_token": int, "acquired_at": time,
                           "expires_at": time, "expired": bool}
        }]
      }]
    }

A run is *successful* when it finished and its status is one of `SUCCESS_STATUSES`.
Budget windows of a configured account are shown as the rate limiter sees them at
``now`` (tokens refilled up to ``now``; a window without a row yet is full); "allowed" is
the most syncd sends in any interval of the window's length, "requests" the vendor's
limit. Windows of an account that is only in the database are shown as stored
(``requests``, ``kind`` and ``allowed`` null). Text that the runner stored (errors, state
reasons) has every configured secret value masked, as a second line of defence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from syncd.adapters.ratelimit import BucketState, SqlRateBudget, budget_for
from syncd.settings import AccountSettings, Settings, format_duration
from syncd.store.tables import (
    OUTBOX_STATES,
    SYNC_JOBS,
    Account,
    Conflict,
    Cursor,
    Lease,
    MatchReview,
    Outbox,
    Quarantine,
    RateBucket,
    SyncRun,
    Workspace,
)

__all__ = [
    "OUTBOX_SHOWN_STATES",
    "STATUS_VERSION",
    "SUCCESS_STATUSES",
    "collect_status",
    "render_status",
]

STATUS_VERSION: Final = 1
# The runner records one of these when a job run completes without error.
SUCCESS_STATUSES: Final = frozenset({"ok", "success", "succeeded", "done", "completed"})
OUTBOX_SHOWN_STATES: Final = tuple(s for s in OUTBOX_STATES if s != "done")
_RUN_COUNTS: Final = ("pulled", "changed", "pushed", "conflicts", "errors", "api_calls")
_MASK: Final = "***"
_MIN_SECRET: Final = 4


# --------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class _Scrubber:
    """Masks configured secret values in stored text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text


def _empty_account(name: str, vendor: str, *, configured: bool) -> dict[str, Any]:
    return {
        "name": name,
        "vendor": vendor,
        "configured": configured,
        "in_database": False,
        "state": "unknown",
        "state_reason": None,
        "paused_until": None,
        "runs": dict.fromkeys(SYNC_JOBS),
        "last_success": dict.fromkeys(SYNC_JOBS),
        "last_success_at": None,
        "pull_lag_seconds": None,
        "cursors": {},
        "budget": [],
        "outbox": dict.fromkeys(OUTBOX_SHOWN_STATES, 0),
        "open_conflicts": 0,
        "open_match_reviews": 0,
        "quarantine": 0,
        "lease": None,
    }


def _run_json(run: SyncRun, scrub: _Scrubber) -> dict[str, Any]:
    duration = None
    if run.finished_at is not None:
        duration = round((run.finished_at - run.started_at).total_seconds(), 3)
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": duration,
    }
    for name in _RUN_COUNTS:
        out[name] = int(getattr(run, name))
    out["error"] = scrub(run.error)
    return out


def _window_json(state: BucketState, now: datetime) -> dict[str, Any]:
    seconds = round(state.window.per.total_seconds())
    return {
        "per": format_duration(state.window.per),
        "per_seconds": seconds,
        "requests": state.window.requests,
        "kind": state.kind,
        "capacity": state.capacity,
        "tokens": round(state.tokens, 3),
        "used": round(state.used, 3),
        "allowed": state.allowed,
        "rate_factor": round(state.rate_factor, 4),
        "penalty_until": _iso(state.penalty_until),
        "paused": state.penalty_until is not None and state.penalty_until > now,
    }


def _raw_window_json(row: RateBucket, now: datetime) -> dict[str, Any]:
    log: Mapping[str, Any] = row.log if isinstance(row.log, dict) else {}
    factor = log.get("rate_factor", 1.0)
    return {
        "per": format_duration(timedelta(seconds=row.window_seconds)),
        "per_seconds": row.window_seconds,
        "requests": None,
        "kind": None,
        "capacity": row.capacity,
        "tokens": round(float(row.tokens), 3),
        "used": round(row.capacity - float(row.tokens), 3),
        "allowed": None,
        "rate_factor": round(float(factor), 4) if isinstance(factor, int | float) else 1.0,
        "penalty_until": _iso(row.penalty_until),
        "paused": row.penalty_until is not None and row.penalty_until > now,
    }


# --------------------------------------------------------------------------- reading


async def _latest_runs(session: AsyncSession, job: str, *, successful: bool) -> dict[int, SyncRun]:
    """The latest (successful) run of ``job`` per account id.

    A correlated ``ORDER BY started_at DESC LIMIT 1`` per account walks the
    (account_id, started_at) index from the newest end instead of scanning the history.
    """
    inner = aliased(SyncRun)
    latest = select(inner.id).where(inner.account_id == Account.id, inner.job == job)
    if successful:
        latest = latest.where(
            inner.finished_at.is_not(None), inner.status.in_(sorted(SUCCESS_STATUSES))
        )
    latest_id = (
        latest.order_by(inner.started_at.desc(), inner.id.desc())
        .limit(1)
        .correlate(Account)
        .scalar_subquery()
    )
    ids = select(latest_id).select_from(Account)
    rows = await session.scalars(select(SyncRun).where(SyncRun.id.in_(ids)))
    return {run.account_id: run for run in rows}


async def _count_by(
    session: AsyncSession, column: Any, *conditions: Any, group: Sequence[Any] = ()
) -> dict[Any, int]:
    keys = [column, *group]
    query = select(*keys, func.count()).where(*conditions).group_by(*keys)
    out: dict[Any, int] = {}
    for row in await session.execute(query):
        key = row[0] if not group else tuple(row[: len(keys)])
        out[key] = int(row[-1])
    return out


async def _conflicts_per_account(session: AsyncSession) -> dict[tuple[int, str], int]:
    """Open conflicts per (workspace id, account name) that has a candidate in them."""
    counts: dict[tuple[int, str], int] = defaultdict(int)
    result = await session.stream(
        select(Conflict.workspace_id, Conflict.candidates)
        .where(Conflict.state == "open")
        .execution_options(yield_per=500)
    )
    async for workspace_id, candidates in result:
        if isinstance(candidates, Mapping):
            for name in candidates:
                counts[(workspace_id, str(name))] += 1
    return counts


async def _budget(
    sessionmaker: async_sessionmaker[AsyncSession],
    account: AccountSettings,
    account_id: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    budget = (
        SqlRateBudget(
            sessionmaker, account_id=account_id, windows=account.rate_limit, clock=lambda: now
        )
        if account_id is not None
        else budget_for(account, clock=lambda: now)
    )
    return [_window_json(state, now) for state in await budget.snapshot()]


async def collect_status(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *, now: datetime
) -> dict[str, Any]:
    """The status of every configured account (and any left in the database); see above."""
    if now.tzinfo is None:
        raise ValueError("collect_status needs a timezone-aware now")
    scrub = _Scrubber(settings.secret_values())
    async with sessionmaker() as session:
        workspaces = {w.id: w for w in await session.scalars(select(Workspace))}
        accounts = {a.name: a for a in await session.scalars(select(Account))}
        last_runs = {job: await _latest_runs(session, job, successful=False) for job in SYNC_JOBS}
        last_ok = {job: await _latest_runs(session, job, successful=True) for job in SYNC_JOBS}
        cursors: dict[int, list[Cursor]] = defaultdict(list)
        for cursor in await session.scalars(select(Cursor).order_by(Cursor.resource)):
            cursors[cursor.account_id].append(cursor)
        outbox = await _count_by(
            session, Outbox.account_id, Outbox.state != "done", group=[Outbox.state]
        )
        workspace_conflicts = await _count_by(
            session, Conflict.workspace_id, Conflict.state == "open"
        )
        account_conflicts = await _conflicts_per_account(session)
        reviews = await _count_by(session, MatchReview.account_id, MatchReview.state == "open")
        workspace_reviews = await _count_by(
            session, MatchReview.workspace_id, MatchReview.state == "open"
        )
        quarantine = await _count_by(
            session, Quarantine.account_id, Quarantine.resolved_at.is_(None)
        )
        leases = {lease.account_id: lease for lease in await session.scalars(select(Lease))}
        buckets: dict[int, list[RateBucket]] = defaultdict(list)
        for bucket in await session.scalars(select(RateBucket).order_by(RateBucket.window_seconds)):
            buckets[bucket.account_id].append(bucket)

    def fill(entry: dict[str, Any], row: Account) -> None:
        entry["in_database"] = True
        entry["state"] = row.state
        entry["state_reason"] = scrub(row.state_reason)
        entry["paused_until"] = _iso(row.paused_until)
        for job in SYNC_JOBS:
            run = last_runs[job].get(row.id)
            entry["runs"][job] = _run_json(run, scrub) if run is not None else None
            ok = last_ok[job].get(row.id)
            entry["last_success"][job] = _iso(ok.finished_at) if ok is not None else None
        finished = [r.finished_at for j in SYNC_JOBS if (r := last_ok[j].get(row.id)) is not None]
        entry["last_success_at"] = _iso(max((f for f in finished if f), default=None))
        pull = last_ok["pull"].get(row.id)
        if pull is not None and pull.finished_at is not None:
            entry["pull_lag_seconds"] = round(max(0.0, (now - pull.finished_at).total_seconds()), 3)
        entry["cursors"] = {
            c.resource: {
                "value": scrub(c.value),
                "checkpoint": c.checkpoint is not None,
                "last_full_sweep_at": _iso(c.last_full_sweep_at),
                "updated_at": _iso(c.updated_at),
            }
            for c in cursors.get(row.id, [])
        }
        for state in OUTBOX_SHOWN_STATES:
            entry["outbox"][state] = outbox.get((row.id, state), 0)
        entry["open_conflicts"] = account_conflicts.get((row.workspace_id, row.name), 0)
        entry["open_match_reviews"] = reviews.get(row.id, 0)
        entry["quarantine"] = quarantine.get(row.id, 0)
        lease = leases.get(row.id)
        if lease is not None:
            entry["lease"] = {
                "owner": lease.owner,
                "fencing_token": int(lease.fencing_token),
                "acquired_at": _iso(lease.acquired_at),
                "expires_at": _iso(lease.expires_at),
                "expired": lease.expires_at <= now,
            }

    workspace_by_name = {w.name: w for w in workspaces.values()}
    out_workspaces: list[dict[str, Any]] = []
    listed: set[str] = set()
    for workspace in settings.workspaces:
        db_workspace = workspace_by_name.get(workspace.name)
        entries: list[dict[str, Any]] = []
        for account in workspace.accounts:
            listed.add(account.name)
            entry = _empty_account(account.name, account.vendor, configured=True)
            row = accounts.get(account.name)
            if row is not None:
                fill(entry, row)
            entry["budget"] = await _budget(
                sessionmaker, account, row.id if row is not None else None, now
            )
            entries.append(entry)
        out_workspaces.append(
            {
                "name": workspace.name,
                "configured": True,
                "open_conflicts": workspace_conflicts.get(db_workspace.id, 0)
                if db_workspace
                else 0,
                "open_match_reviews": workspace_reviews.get(db_workspace.id, 0)
                if db_workspace
                else 0,
                "accounts": entries,
            }
        )

    # Accounts the database still has but the config no longer names.
    by_name = {w["name"]: w for w in out_workspaces}
    for row in sorted(accounts.values(), key=lambda a: a.name):
        if row.name in listed:
            continue
        workspace_row = workspaces.get(row.workspace_id)
        ws_name = workspace_row.name if workspace_row is not None else f"#{row.workspace_id}"
        target = by_name.get(ws_name)
        if target is None:
            target = {
                "name": ws_name,
                "configured": False,
                "open_conflicts": workspace_conflicts.get(row.workspace_id, 0),
                "open_match_reviews": workspace_reviews.get(row.workspace_id, 0),
                "accounts": [],
            }
            by_name[ws_name] = target
            out_workspaces.append(target)
        entry = _empty_account(row.name, row.vendor, configured=False)
        fill(entry, row)
        entry["budget"] = [_raw_window_json(b, now) for b in buckets.get(row.id, [])]
        target["accounts"].append(entry)

    totals_outbox = dict.fromkeys(OUTBOX_SHOWN_STATES, 0)
    totals = {"accounts": 0, "open_conflicts": 0, "open_match_reviews": 0, "quarantine": 0}
    for ws in out_workspaces:
        totals["open_conflicts"] += ws["open_conflicts"]
        totals["open_match_reviews"] += ws["open_match_reviews"]
        for entry in ws["accounts"]:
            totals["accounts"] += 1
            totals["quarantine"] += entry["quarantine"]
            for state, count in entry["outbox"].items():
                totals_outbox[state] += count
    return {
        "version": STATUS_VERSION,
        "generated_at": _iso(now),
        "totals": {**totals, "outbox": totals_outbox},
        "workspaces": out_workspaces,
    }


# --------------------------------------------------------------------------- rendering


def _ago(value: str | None, now: datetime | None) -> str:
    """ "3m ago" / "in 20s" relative to ``now``; the bare time when now is unknown."""
    when = _parse_iso(value)
    if when is None:
        return "never"
    if now is None:
        return value or "never"
    seconds = (now - when).total_seconds()
    text = _span(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def _span(seconds: float) -> str:
    if seconds < 1:
        return "0s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole = seconds / size
            return f"{whole:.0f}{unit}" if whole >= 10 else f"{math.floor(whole * 10) / 10:g}{unit}"
    return f"{seconds:.0f}s"


def _short(text: str | None, limit: int = 100) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _number(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.1f}"


def _render_run(job: str, run: Mapping[str, Any] | None, now: datetime | None) -> str:
    if run is None:
        return f"{job:<10} never run"
    if run.get("finished_at") is None:
        line = f"{job:<10} {run['status']:<9} started {_ago(run.get('started_at'), now)}"
    else:
        line = f"{job:<10} {run['status']:<9} finished {_ago(run.get('finished_at'), now)}"
    counts = [
        f"{name} {run.get(name, 0)}" for name in ("pulled", "changed", "pushed") if run.get(name)
    ]
    for name in ("conflicts", "errors"):
        if run.get(name):
            counts.append(f"{name} {run[name]}")
    if run.get("api_calls"):
        counts.append(f"{run['api_calls']} api calls")
    if counts:
        line += "  (" + ", ".join(counts) + ")"
    if run.get("error"):
        line += f"  error: {_short(run['error'])}"
    return line


def _render_account(account: Mapping[str, Any], now: datetime | None) -> list[str]:
    state = account.get("state", "unknown")
    head = f"  {account['name']} ({account['vendor']}) — {state}"
    if account.get("state_reason"):
        head += f": {_short(account['state_reason'], 80)}"
    if account.get("paused_until"):
        head += f" (resumes {_ago(account['paused_until'], now)})"
    if not account.get("configured", True):
        head += "  [not in the config any more]"
    lines = [head]
    pad = "    "
    if not account.get("in_database", True):
        lines.append(f"{pad}not synced yet")
    else:
        runs = account.get("runs", {})
        for index, job in enumerate(SYNC_JOBS):
            label = "runs" if index == 0 else ""
            lines.append(f"{pad}{label:<10} {_render_run(job, runs.get(job), now)}")
    if account.get("pull_lag_seconds") is not None:
        lines.append(f"{pad}{'':<10} last successful pull {_span(account['pull_lag_seconds'])} ago")
    cursors = account.get("cursors") or {}
    for index, (resource, cursor) in enumerate(sorted(cursors.items())):
        label = "cursors" if index == 0 else ""
        parts = [f"{resource:<10} {cursor.get('value') or '(start)'}"]
        if cursor.get("checkpoint"):
            parts.append("mid-pull checkpoint")
        parts.append(f"full sweep {_ago(cursor.get('last_full_sweep_at'), now)}")
        lines.append(f"{pad}{label:<10} " + ", ".join(parts))
    for index, window in enumerate(account.get("budget") or []):
        label = "budget" if index == 0 else ""
        limit = f"{window['requests']}/{window['per']}" if window.get("requests") else window["per"]
        text = f"{limit:<10} {_number(window['tokens'])}/{window['capacity']} tokens free"
        if window.get("allowed") is not None:
            text += f", sends at most {window['allowed']} per {window['per']}"
        if window.get("rate_factor", 1.0) < 1.0:
            text += f", slowed to {window['rate_factor']:.0%}"
        if window.get("paused"):
            text += f", paused after a 429 (resumes {_ago(window.get('penalty_until'), now)})"
        lines.append(f"{pad}{label:<10} {text}")
    outbox = account.get("outbox") or {}
    waiting = [f"{state} {count}" for state, count in outbox.items() if count]
    lines.append(f"{pad}{'outbox':<10} {', '.join(waiting) if waiting else 'empty'}")
    lines.append(
        f"{pad}{'queues':<10} "
        f"{_plural(account.get('open_conflicts', 0), 'open conflict')}, "
        f"{_plural(account.get('open_match_reviews', 0), 'match review')}, "
        f"{account.get('quarantine', 0)} quarantined"
    )
    lease = account.get("lease")
    if lease:
        verb = "expired" if lease.get("expired") else "expires"
        lines.append(
            f"{pad}{'lease':<10} {lease['owner']} (token {lease['fencing_token']}), "
            f"{verb} {_ago(lease.get('expires_at'), now)}"
        )
    return lines


def render_status(status: Mapping[str, Any]) -> str:
    """``collect_status``'s result as readable plain text, one block per account."""
    now = _parse_iso(status.get("generated_at"))
    lines = [f"syncd status at {status.get('generated_at', '?')}"]
    totals = status.get("totals")
    if totals:
        outbox = totals.get("outbox", {})
        lines.append(
            f"{_plural(totals.get('accounts', 0), 'account')}, "
            f"{_plural(totals.get('open_conflicts', 0), 'open conflict')}, "
            f"{_plural(totals.get('open_match_reviews', 0), 'match review')}, "
            f"{totals.get('quarantine', 0)} quarantined, "
            f"{sum(outbox.values())} writes waiting ({outbox.get('dead', 0)} dead)"
        )
    workspaces = status.get("workspaces") or []
    if not workspaces:
        lines.append("")
        lines.append("no workspaces configured")
    for workspace in workspaces:
        lines.append("")
        head = (
            f"workspace {workspace['name']} — "
            f"{_plural(workspace.get('open_conflicts', 0), 'open conflict')}, "
            f"{_plural(workspace.get('open_match_reviews', 0), 'match review')}"
        )
        if not workspace.get("configured", True):
            head += "  [not in the config any more]"
        lines.append(head)
        for account in workspace.get("accounts", []):
            lines.append("")
            lines.extend(_render_account(account, now))
    return "\n".join(lines) + "\n"
