"""The operator commands: status, the conflict queue, the match-review queue and explain.

Reading is done here, straight from the store tables, in one short session per command;
nothing is written and no vendor is contacted. Decisions (resolving a conflict, accepting
or rejecting a match) go through the engine (``Engine.resolve_conflict`` and
``Engine.decide_match``), so they are audited and re-planned into the outbox exactly like
the engine's own decisions; the next ``syncd once`` or daemon pass pushes them.

Every ``*_command`` coroutine returns the text to print (JSON when asked) and raises
`OperatorError` for anything the operator typed wrong: an unknown id, a conflict that is
already resolved, a value that does not fit the field. ``cli.py`` prints that message
and exits 2.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from syncd.core.model import (
    CONTACT_FIELDS,
    CONTACT_KINDS,
    INVOICE_LINE_FIELDS,
    INVOICE_STATUSES,
    normalise,
    to_fields,
)
from syncd.settings import Settings
from syncd.store import migrate, repos
from syncd.store import tables as t
from syncd.store.db import create_engine, create_sessionmaker

__all__ = [
    "EXPLAIN_RESOURCES",
    "OperatorError",
    "conflicts_list_command",
    "conflicts_resolve_command",
    "conflicts_show_command",
    "explain_command",
    "field_hint",
    "matches_decide_command",
    "matches_list_command",
    "open_store",
    "parse_field_value",
    "status_command",
]

EXPLAIN_RESOURCES: Final = ("contacts", "invoices", "payments")
# Outbox rows that still mean "a write is on its way".
_WAITING: Final = ("pending", "sending", "uncertain", "failed")
_ENGINE: Final = "operator/engine"  # audit rows without an account
_MASK: Final = "***"
_MIN_SECRET: Final = 4
_LIST_VALUE_WIDTH: Final = 40


class OperatorError(Exception):
    """Something the operator asked for cannot be done as asked (exit 2, message shown)."""


# --------------------------------------------------------------------------- plumbing


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on the configured database, refusing a schema that is behind."""
    await migrate.aensure_current(settings.database.url)
    db = create_engine(settings.database.url)
    try:
        yield create_sessionmaker(db)
    finally:
        await db.dispose()


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _when(value: str | None) -> str:
    """An ISO time as ``2026-11-01 09:05:00Z`` (seconds), or ``-``."""
    if value is None:
        return "-"
    return value.replace("T", " ")[:19] + "Z"


def _span(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _age(value: dt.datetime | None, now: dt.datetime) -> float | None:
    if value is None:
        return None
    return round(max(0.0, (now - value).total_seconds()), 3)


def _show(value: Any, limit: int | None = None) -> str:
    """A field value for people: strings quoted, nothing as ``(empty)``, the rest as JSON."""
    if value is None:
        return "(empty)"
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def _dump(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = []
    for row in [headers, *rows]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


class _Scrubber:
    """Masks configured secret values in text the engine stored (errors, reasons)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = sorted((s for s in secrets if len(s) >= _MIN_SECRET), key=len, reverse=True)

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, _MASK)
        return text


def _parse_id(text: str, what: str, hint: str) -> int:
    value = text.strip()
    if not value.isdigit() or int(value) <= 0:
        raise OperatorError(f"no {what} with id {text!r}: ids are positive whole numbers ({hint})")
    return int(value)


def _operator_name() -> str:
    """Who decided, for the audit trail: ``operator <login name>`` where it is known."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in this environment (some containers)
        return "operator"
    return f"operator {user}" if user else "operator"


async def _names(
    session: AsyncSession, table: type[t.Workspace] | type[t.Account]
) -> dict[int, str]:
    rows = await session.execute(select(table.id, table.name))
    return {row_id: name for row_id, name in rows.all()}


async def _workspace_id(session: AsyncSession, name: str | None) -> int | None:
    if name is None:
        return None
    found = await session.scalar(select(t.Workspace.id).where(t.Workspace.name == name))
    if found is None:
        known = ", ".join(sorted((await _names(session, t.Workspace)).values())) or "none"
        raise OperatorError(f"no workspace named {name!r} in the database (known: {known})")
    return int(found)


async def _labels(session: AsyncSession, resource: str, ids: Iterable[int]) -> dict[int, str]:
    """A human label per canonical id: contact name, invoice number, payment amount/date."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    if resource == "contacts":
        rows = await session.execute(
            select(t.Contact.id, t.Contact.name).where(t.Contact.id.in_(wanted))
        )
        return {row_id: name or "(no name)" for row_id, name in rows.all()}
    if resource == "invoices":
        invoices = await session.execute(
            select(t.Invoice.id, t.Invoice.number, t.Invoice.reference).where(
                t.Invoice.id.in_(wanted)
            )
        )
        return {
            row_id: number or (f"reference {reference}" if reference else "draft")
            for row_id, number, reference in invoices.all()
        }
    if resource == "payments":
        payments = await session.execute(
            select(t.Payment.id, t.Payment.amount, t.Payment.date).where(t.Payment.id.in_(wanted))
        )
        return {
            row_id: f"{amount} on {date.isoformat()}" for row_id, amount, date in payments.all()
        }
    return {}


def _record(resource: str, canonical_id: int, label: str | None) -> str:
    return f"{resource} {canonical_id}" + (f" {_show(label)}" if label else " (gone)")


# --------------------------------------------------------------------------- field values


@dataclass(frozen=True)
class _Kind:
    """How an operator writes one field's value on the command line."""

    name: str
    hint: str


_TEXT = _Kind("text", "text; an empty string clears the field")
_NAME = _Kind("name", "non-empty text")
_BOOL = _Kind("bool", "true or false")
_DATE = _Kind("date", "a date YYYY-MM-DD; an empty string clears it")
_REQUIRED_DATE = _Kind("required_date", "a date YYYY-MM-DD")
_DECIMAL = _Kind("decimal", "a decimal number such as 1210.00")
_CURRENCY = _Kind("currency", "a three-letter ISO 4217 code such as EUR")
_CONTACT_KIND = _Kind("contact_kind", "one of: " + ", ".join(CONTACT_KINDS))
_STATUS = _Kind("status", "one of: " + ", ".join(INVOICE_STATUSES))
_CONTACT_REF = _Kind("contact_ref", "the canonical id of a contact (see `syncd explain contacts`)")
_INVOICE_REF = _Kind("invoice_ref", "the canonical id of an invoice (see `syncd explain invoices`)")
_LINES = _Kind(
    "lines",
    "a JSON list of lines, e.g. "
    '\'[{"description": "Work", "quantity": "2", "unit_price": "50.00", "vat_rate": "21"}]\'',
)

_FIELD_KINDS: Final[Mapping[str, Mapping[str, _Kind]]] = {
    "contacts": {
        **dict.fromkeys(CONTACT_FIELDS, _TEXT),
        "kind": _CONTACT_KIND,
        "name": _NAME,
        "archived": _BOOL,
    },
    "invoices": {
        "number": _TEXT,
        "contact": _CONTACT_REF,
        "issue_date": _DATE,
        "due_date": _DATE,
        "currency": _CURRENCY,
        "status": _STATUS,
        "lines": _LINES,
        "subtotal": _DECIMAL,
        "tax_total": _DECIMAL,
        "total": _DECIMAL,
        "amount_paid": _DECIMAL,
        "reference": _TEXT,
    },
    "payments": {
        "invoice": _INVOICE_REF,
        "date": _REQUIRED_DATE,
        "amount": _DECIMAL,
        "method": _TEXT,
        "reference": _TEXT,
    },
}
_TRUE: Final = frozenset({"true", "yes", "1", "on"})
_FALSE: Final = frozenset({"false", "no", "0", "off"})


def _kind_of(resource: str, field: str) -> _Kind:
    kind = _FIELD_KINDS.get(resource, {}).get(field)
    if kind is None:
        raise OperatorError(
            f"{resource} field {field!r} cannot be set with --value; use --take ACCOUNT"
        )
    return kind


def field_hint(resource: str, field: str) -> str | None:
    """What ``--value`` takes for this field, in words; None when it cannot be set."""
    kind = _FIELD_KINDS.get(resource, {}).get(field)
    return None if kind is None else kind.hint


def _decimal_text(text: str, what: str) -> str:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        raise OperatorError(f"{what}: {text!r} is not a decimal number") from None
    if not number.is_finite():
        raise OperatorError(f"{what}: {text!r} is not a finite number")
    return str(number)


def _date_text(text: str, what: str) -> str:
    try:
        return dt.date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise OperatorError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def _lines(text: str, what: str) -> list[dict[str, Any]]:
    # Numbers stay exact: JSON numbers are read as their text, never as floats.
    try:
        data = json.loads(text, parse_float=str, parse_int=str, parse_constant=str)
    except json.JSONDecodeError as exc:
        raise OperatorError(f"{what}: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(data, list) or not all(isinstance(line, dict) for line in data):
        raise OperatorError(f"{what}: expected a JSON list of objects, one per line")
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(data, start=1):
        unknown = sorted(set(line) - set(INVOICE_LINE_FIELDS))
        if unknown:
            raise OperatorError(
                f"{what}: line {number} has unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(INVOICE_LINE_FIELDS)})"
            )
        missing = [
            k for k in ("description", "quantity", "unit_price", "vat_rate") if k not in line
        ]
        if missing:
            raise OperatorError(f"{what}: line {number} lacks {', '.join(missing)}")
        converted: dict[str, Any] = {}
        for key, raw in line.items():
            if key == "description":
                if not isinstance(raw, str):
                    raise OperatorError(f"{what}: line {number} description must be text")
                converted[key] = raw
            elif raw is None and key == "line_total":
                converted[key] = None
            elif isinstance(raw, str):
                converted[key] = _decimal_text(raw, f"{what}: line {number} {key}")
            else:
                raise OperatorError(f"{what}: line {number} {key} must be a number")
        lines.append(converted)
    return lines


def parse_field_value(resource: str, field: str, text: str) -> Any:
    """``--value`` text as the field's stored (``to_fields``) form; OperatorError if it does
    not fit. References are checked for existence separately (they need the database)."""
    kind = _kind_of(resource, field)
    what = f"--value for {resource} field {field}"
    stripped = text.strip()
    if kind is _TEXT:
        return stripped or None
    if kind is _NAME:
        if not stripped:
            raise OperatorError(f"{what}: must not be empty")
        return stripped
    if kind is _BOOL:
        if stripped.lower() in _TRUE:
            return True
        if stripped.lower() in _FALSE:
            return False
        raise OperatorError(f"{what}: {text!r} is not true or false")
    if kind is _DATE:
        return _date_text(stripped, what) if stripped else None
    if kind is _REQUIRED_DATE:
        return _date_text(stripped, what)
    if kind is _DECIMAL:
        return _decimal_text(stripped, what)
    if kind is _CURRENCY:
        code = stripped.upper()
        if len(code) != 3 or not code.isalpha() or not code.isascii():
            raise OperatorError(f"{what}: {text!r} is not a three-letter currency code")
        return code
    if kind is _CONTACT_KIND:
        if stripped not in CONTACT_KINDS:
            raise OperatorError(f"{what}: {text!r} is not one of {', '.join(CONTACT_KINDS)}")
        return stripped
    if kind is _STATUS:
        if stripped not in INVOICE_STATUSES:
            raise OperatorError(f"{what}: {text!r} is not one of {', '.join(INVOICE_STATUSES)}")
        return stripped
    if kind in (_CONTACT_REF, _INVOICE_REF):
        if not stripped:
            if kind is _INVOICE_REF:
                raise OperatorError(f"{what}: a payment needs its invoice")
            return None
        if not stripped.isdigit():
            raise OperatorError(f"{what}: {text!r} is not a canonical id")
        return str(int(stripped))
    return _lines(text, what)


async def _check_reference(
    session: AsyncSession, kind: _Kind, value: Any, workspace_id: int, what: str
) -> None:
    if value is None or kind not in (_CONTACT_REF, _INVOICE_REF):
        return
    table: type[t.Contact] | type[t.Invoice] = t.Contact if kind is _CONTACT_REF else t.Invoice
    row = await session.get(table, int(value))
    noun = "contact" if kind is _CONTACT_REF else "invoice"
    if row is None or row.workspace_id != workspace_id or row.deleted_at is not None:
        raise OperatorError(f"{what}: there is no live {noun} {value} in this workspace")


# --------------------------------------------------------------------------- status


async def status_command(
    settings: Settings, *, as_json: bool, now: dt.datetime | None = None
) -> str:
    """``syncd status``: the snapshot of ``syncd.status`` as text or JSON."""
    from syncd.status import collect_status, render_status

    async with open_store(settings) as sessionmaker:
        snapshot = await collect_status(sessionmaker, settings, now=now or _utcnow())
    return _dump(snapshot) if as_json else render_status(snapshot)


# --------------------------------------------------------------------------- conflicts


def _conflict_json(
    row: t.Conflict, workspaces: Mapping[int, str], label: str | None, now: dt.datetime
) -> dict[str, Any]:
    return {
        "id": row.id,
        "workspace": workspaces.get(row.workspace_id, f"#{row.workspace_id}"),
        "resource": row.resource,
        "canonical_id": row.canonical_id,
        "label": label,
        "field": row.field,
        "policy": row.policy,
        "state": row.state,
        "candidates": dict(row.candidates),
        "created_at": _iso(row.created_at),
        "age_seconds": _age(row.created_at, now),
        "resolved_at": _iso(row.resolved_at),
        "resolution": row.resolution,
    }


async def _list_conflicts(
    session: AsyncSession, *, workspace: str | None, include_resolved: bool, now: dt.datetime
) -> list[dict[str, Any]]:
    workspace_id = await _workspace_id(session, workspace)
    query = select(t.Conflict).order_by(t.Conflict.id)
    if workspace_id is not None:
        query = query.where(t.Conflict.workspace_id == workspace_id)
    if not include_resolved:
        query = query.where(t.Conflict.state == "open")
    rows = list(await session.scalars(query))
    workspaces = await _names(session, t.Workspace)
    by_resource: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        by_resource[row.resource].add(row.canonical_id)
    labels = {r: await _labels(session, r, ids) for r, ids in by_resource.items()}
    return [
        _conflict_json(row, workspaces, labels[row.resource].get(row.canonical_id), now)
        for row in rows
    ]


def _candidates_text(candidates: Mapping[str, Any], limit: int | None) -> str:
    return "  ".join(f"{name}={_show(value, limit)}" for name, value in candidates.items())


def render_conflicts(rows: Sequence[Mapping[str, Any]], *, include_resolved: bool) -> str:
    """The conflict queue as a table, with how to act on it."""
    what = "conflict" if include_resolved else "open conflict"
    if not rows:
        return f"no {what}s\n"
    table = [
        [
            str(row["id"]),
            row["state"],
            row["workspace"],
            _record(row["resource"], row["canonical_id"], row["label"]),
            row["field"],
            _candidates_text(row["candidates"], _LIST_VALUE_WIDTH),
            _span(row["age_seconds"] or 0.0),
        ]
        for row in rows
    ]
    headers = ["ID", "STATE", "WORKSPACE", "RECORD", "FIELD", "CANDIDATES", "AGE"]
    lines = [f"{len(rows)} {what}{'' if len(rows) == 1 else 's'}", *_table(headers, table)]
    lines.append("")
    lines.append("details: syncd conflicts show ID")
    lines.append("decide:  syncd conflicts resolve ID --take ACCOUNT   (or --value VALUE)")
    return "\n".join(lines) + "\n"


async def conflicts_list_command(
    settings: Settings,
    *,
    workspace: str | None,
    include_resolved: bool,
    as_json: bool,
    now: dt.datetime | None = None,
) -> str:
    """``syncd conflicts list``."""
    moment = now or _utcnow()
    async with open_store(settings) as sessionmaker, sessionmaker() as session:
        rows = await _list_conflicts(
            session, workspace=workspace, include_resolved=include_resolved, now=moment
        )
    if as_json:
        return _dump(rows)
    return render_conflicts(rows, include_resolved=include_resolved)


async def _audit_rows(
    session: AsyncSession,
    resource: str,
    canonical_id: int,
    accounts: Mapping[int, str],
    field: str | None = None,
) -> list[dict[str, Any]]:
    query = select(t.Audit).where(
        t.Audit.resource == resource, t.Audit.canonical_id == canonical_id
    )
    if field is not None:
        query = query.where(t.Audit.field == field)
    rows = await session.scalars(query.order_by(t.Audit.at, t.Audit.id))
    return [
        {
            "at": _iso(row.at),
            "account": None if row.account_id is None else accounts.get(row.account_id),
            "field": row.field,
            "old": row.old,
            "new": row.new,
            "reason": row.reason,
            "run_id": row.run_id,
        }
        for row in rows
    ]


async def _current_fields(
    session: AsyncSession, resource: str, canonical_id: int
) -> tuple[repos.Entity | None, dict[str, Any] | None]:
    if resource not in repos.ENTITY_TABLES:
        return None, None
    entity = await repos.load_entity(session, resource, canonical_id)
    if entity is None:
        return None, None
    return entity, await repos.entity_fields(session, resource, entity)


async def _conflict_detail(
    session: AsyncSession, conflict_id: int, now: dt.datetime
) -> dict[str, Any]:
    row = await session.get(t.Conflict, conflict_id)
    if row is None:
        raise OperatorError(f"no conflict with id {conflict_id} (see `syncd conflicts list --all`)")
    workspaces = await _names(session, t.Workspace)
    accounts = await _names(session, t.Account)
    labels = await _labels(session, row.resource, [row.canonical_id])
    detail = _conflict_json(row, workspaces, labels.get(row.canonical_id), now)
    entity, fields = await _current_fields(session, row.resource, row.canonical_id)
    detail["record_deleted"] = entity is None or entity.deleted_at is not None
    detail["current"] = None if fields is None else fields.get(row.field)
    detail["history"] = await _audit_rows(
        session, row.resource, row.canonical_id, accounts, field=row.field
    )
    detail["value_hint"] = field_hint(row.resource, row.field)
    commands = []
    if row.state == "open":
        commands = [f"syncd conflicts resolve {row.id} --take {name}" for name in row.candidates]
        if detail["value_hint"] is not None:
            commands.append(f"syncd conflicts resolve {row.id} --value VALUE")
    detail["commands"] = commands
    return detail


def _history_lines(history: Sequence[Mapping[str, Any]], *, with_field: bool) -> list[str]:
    lines = []
    for entry in history:
        who = entry["account"] or _ENGINE
        head = f"  {_when(entry['at'])}  {who:<16}"
        if entry["field"] == "*":
            lines.append(f"{head} {'record: ' if with_field else ''}{entry['reason']}")
            continue
        change = f"{_show(entry['old'])} -> {_show(entry['new'])}"
        field = f"{entry['field']}: " if with_field else ""
        lines.append(f"{head} {field}{change}  ({entry['reason']})")
    return lines


def render_conflict(detail: Mapping[str, Any]) -> str:
    """One conflict: candidates, the current value, the field's history, how to resolve."""
    lines = [
        f"conflict {detail['id']} ({detail['state']}, policy {detail['policy']}) "
        f"in workspace {detail['workspace']}, since {_when(detail['created_at'])} "
        f"({_span(detail['age_seconds'] or 0.0)} ago)",
        f"record:  {_record(detail['resource'], detail['canonical_id'], detail['label'])}"
        + ("  [deleted]" if detail["record_deleted"] else ""),
        f"field:   {detail['field']}",
        f"current canonical value: {_show(detail['current'])}",
        "candidates:",
    ]
    width = max((len(name) for name in detail["candidates"]), default=0)
    for name, value in detail["candidates"].items():
        lines.append(f"  {name:<{width}}  {_show(value)}")
    if detail["policy"] == "immutable":
        lines.append(
            "  (an account cannot take this change any more, e.g. a sent invoice; "
            "the canonical value is what syncd holds)"
        )
    lines.append(f"history of {detail['field']}:")
    lines.extend(_history_lines(detail["history"], with_field=False) or ["  (no changes recorded)"])
    if detail["state"] == "open":
        lines.append("resolve it with one of:")
        lines.extend(f"  {command}" for command in detail["commands"])
        if detail["value_hint"] is not None:
            lines.append(f"  (VALUE: {detail['value_hint']})")
        lines.append("The field is written to no account until it is resolved.")
    else:
        resolution = detail.get("resolution") or {}
        how = (
            f"took {resolution.get('take')}'s value" if resolution.get("take") else "a chosen value"
        )
        lines.append(
            f"resolved {_when(detail['resolved_at'])} by {resolution.get('by', '?')}: {how}, "
            f"{_show(resolution.get('value'))}"
        )
    return "\n".join(lines) + "\n"


async def conflicts_show_command(
    settings: Settings, conflict_id: str, *, as_json: bool = False, now: dt.datetime | None = None
) -> str:
    """``syncd conflicts show ID``."""
    number = _parse_id(conflict_id, "conflict", "see `syncd conflicts list`")
    async with open_store(settings) as sessionmaker, sessionmaker() as session:
        detail = await _conflict_detail(session, number, now or _utcnow())
    return _dump(detail) if as_json else render_conflict(detail)


async def _resolution_value(
    session: AsyncSession, conflict_id: int, take: str | None, value_text: str | None
) -> tuple[t.Conflict, Any]:
    """Check the conflict can be resolved as asked; the parsed ``--value`` (or None)."""
    row = await session.get(t.Conflict, conflict_id)
    if row is None:
        raise OperatorError(f"no conflict with id {conflict_id} (see `syncd conflicts list`)")
    if row.state != "open":
        resolution = row.resolution or {}
        raise OperatorError(
            f"conflict {conflict_id} is already {row.state} "
            f"({_when(_iso(row.resolved_at))}, by {resolution.get('by', '?')}, value "
            f"{_show(resolution.get('value'))}); nothing to do"
        )
    if take is not None:
        if take not in row.candidates:
            known = ", ".join(row.candidates)
            raise OperatorError(
                f"conflict {conflict_id} has no candidate from {take!r}; candidates: {known}"
            )
        return row, None
    assert value_text is not None
    kind = _kind_of(row.resource, row.field)
    what = f"--value for {row.resource} field {row.field}"
    parsed = parse_field_value(row.resource, row.field, value_text)
    await _check_reference(session, kind, parsed, row.workspace_id, what)
    entity, fields = await _current_fields(session, row.resource, row.canonical_id)
    if entity is None or fields is None:
        raise OperatorError(f"{row.resource} {row.canonical_id} no longer exists")
    try:
        value = normalise(repos.value_from_fields(row.resource, {**fields, row.field: parsed}))
    except (TypeError, ValueError) as exc:
        raise OperatorError(f"{what}: {exc}") from None
    # What the store will hold, so the audit row and the output show exactly that.
    return row, to_fields(value)[row.field]


async def conflicts_resolve_command(
    settings: Settings,
    conflict_id: str,
    *,
    take: str | None,
    value: str | None,
    by: str | None = None,
) -> str:
    """``syncd conflicts resolve ID --take ACCOUNT | --value VALUE``, through the engine."""
    from syncd.app import open_runtime

    if (take is None) == (value is None):
        raise OperatorError("give exactly one of --take ACCOUNT or --value VALUE")
    number = _parse_id(conflict_id, "conflict", "see `syncd conflicts list`")
    async with open_runtime(settings) as runtime:
        async with runtime.sessionmaker() as session:
            row, parsed = await _resolution_value(session, number, take, value)
            resource, canonical_id, field = row.resource, row.canonical_id, row.field
            old = (await _current_fields(session, resource, canonical_id))[1]
        engine = runtime.engine
        await engine.prepare()  # account and workspace ids, which planning needs
        try:
            if take is not None:
                chosen = await engine.resolve_conflict(number, take=take, by=by or _operator_name())
            else:
                chosen = await engine.resolve_conflict(
                    number, value=parsed, by=by or _operator_name()
                )
        except (LookupError, ValueError) as exc:  # decided meanwhile, or the record is gone
            raise OperatorError(str(exc)) from None
        async with runtime.sessionmaker() as session:
            planned = await _waiting_writes(session, resource, canonical_id)
            labels = await _labels(session, resource, [canonical_id])
    source = f"{take}'s value" if take is not None else "the given value"
    lines = [
        f"conflict {number} resolved: {_record(resource, canonical_id, labels.get(canonical_id))} "
        f"{field} = {_show(chosen)} ({source}; was {_show(None if old is None else old.get(field))})"
    ]
    if planned:
        lines.append("writes waiting in the outbox:")
        lines.extend(
            f"  {w['op']} in {w['account']}"
            + (f" (fields: {', '.join(w['fields'])})" if w["fields"] else "")
            for w in planned
        )
        lines.append("The next `syncd once` (or the running daemon's next pass) pushes them.")
    else:
        lines.append("Every account already holds this value: nothing to push.")
    return "\n".join(lines) + "\n"


async def _waiting_writes(
    session: AsyncSession, resource: str, canonical_id: int
) -> list[dict[str, Any]]:
    accounts = await _names(session, t.Account)
    rows = await session.scalars(
        select(t.Outbox)
        .where(
            t.Outbox.resource == resource,
            t.Outbox.canonical_id == canonical_id,
            t.Outbox.state.in_(_WAITING),
        )
        .order_by(t.Outbox.id)
    )
    return [
        {
            "account": accounts.get(row.account_id, f"#{row.account_id}"),
            "op": row.op,
            "fields": list(row.fields.get("fields", [])),
            "state": row.state,
        }
        for row in rows
    ]


# --------------------------------------------------------------------------- match reviews


def _review_json(
    row: t.MatchReview,
    workspaces: Mapping[int, str],
    accounts: Mapping[int, str],
    labels: Mapping[int, str],
    now: dt.datetime,
) -> dict[str, Any]:
    incoming: Mapping[str, Any] = {}
    candidates = []
    for entry in row.candidates:
        if not isinstance(entry, dict):
            continue
        if "incoming" in entry and isinstance(entry["incoming"], dict):
            incoming = entry["incoming"]
        elif "canonical_id" in entry:
            canonical_id = int(entry["canonical_id"])
            candidates.append(
                {
                    "canonical_id": canonical_id,
                    "label": labels.get(canonical_id),
                    "score": entry.get("score"),
                    "reason": entry.get("reason"),
                }
            )
    reason_all = next(
        (e.get("reason_all") for e in row.candidates if isinstance(e, dict) and "reason_all" in e),
        None,
    )
    return {
        "id": row.id,
        "workspace": workspaces.get(row.workspace_id, f"#{row.workspace_id}"),
        "account": accounts.get(row.account_id, f"#{row.account_id}"),
        "resource": row.resource,
        "external_id": row.external_id,
        "incoming_label": _incoming_label(row.resource, incoming),
        "incoming": dict(incoming),
        "reason": reason_all,
        "candidates": candidates,
        "state": row.state,
        "chosen_canonical_id": row.chosen_canonical_id,
        "created_at": _iso(row.created_at),
        "age_seconds": _age(row.created_at, now),
        "decided_at": _iso(row.decided_at),
    }


def _incoming_label(resource: str, fields: Mapping[str, Any]) -> str | None:
    if not fields:
        return None
    if resource == "contacts":
        return str(fields.get("name") or "(no name)")
    if resource == "invoices":
        return str(fields.get("number") or fields.get("reference") or "draft")
    return f"{fields.get('amount')} on {fields.get('date')}"


async def _reviews(session: AsyncSession, query: Any, now: dt.datetime) -> list[dict[str, Any]]:
    rows = list(await session.scalars(query))
    workspaces = await _names(session, t.Workspace)
    accounts = await _names(session, t.Account)
    by_resource: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        for entry in row.candidates:
            if isinstance(entry, dict) and "canonical_id" in entry:
                by_resource[row.resource].add(int(entry["canonical_id"]))
    labels = {r: await _labels(session, r, ids) for r, ids in by_resource.items()}
    return [
        _review_json(row, workspaces, accounts, labels.get(row.resource, {}), now) for row in rows
    ]


def render_reviews(rows: Sequence[Mapping[str, Any]], *, include_decided: bool) -> str:
    """The identity-review queue: each record with its candidate matches."""
    what = "match review" if include_decided else "open match review"
    if not rows:
        return f"no {what}s\n"
    lines = [f"{len(rows)} {what}{'' if len(rows) == 1 else 's'}"]
    for row in rows:
        lines.append("")
        head = (
            f"#{row['id']} [{row['state']}] {row['account']} {row['resource']} {row['external_id']}"
        )
        if row["incoming_label"]:
            head += f" {_show(row['incoming_label'])}"
        head += f"  (workspace {row['workspace']}, {_span(row['age_seconds'] or 0.0)} old)"
        lines.append(head)
        if row["reason"]:
            lines.append(f"  queued because: {row['reason']}")
        for candidate in row["candidates"]:
            chosen = (
                "  <- chosen" if candidate["canonical_id"] == row["chosen_canonical_id"] else ""
            )
            lines.append(
                f"  candidate {row['resource']} {candidate['canonical_id']} "
                f"{_show(candidate['label'])} score {candidate['score']}: "
                f"{candidate['reason']}{chosen}"
            )
    lines.append("")
    lines.append(
        "decide: syncd matches accept ID [--candidate CANONICAL_ID] | syncd matches reject ID"
    )
    return "\n".join(lines) + "\n"


async def matches_list_command(
    settings: Settings,
    *,
    workspace: str | None,
    include_decided: bool,
    as_json: bool,
    now: dt.datetime | None = None,
) -> str:
    """``syncd matches list``."""
    moment = now or _utcnow()
    async with open_store(settings) as sessionmaker, sessionmaker() as session:
        workspace_id = await _workspace_id(session, workspace)
        query = select(t.MatchReview).order_by(t.MatchReview.id)
        if workspace_id is not None:
            query = query.where(t.MatchReview.workspace_id == workspace_id)
        if not include_decided:
            query = query.where(t.MatchReview.state == "open")
        rows = await _reviews(session, query, moment)
    if as_json:
        return _dump(rows)
    return render_reviews(rows, include_decided=include_decided)


async def matches_decide_command(
    settings: Settings, review_id: str, *, accept: bool, candidate: str | None = None
) -> str:
    """``syncd matches accept ID [--candidate C]`` / ``syncd matches reject ID``."""
    from syncd.app import open_runtime

    number = _parse_id(review_id, "match review", "see `syncd matches list`")
    chosen: int | None = None
    if candidate is not None:
        if not accept:
            raise OperatorError("--candidate only goes with `matches accept`")
        chosen = _parse_id(candidate, "candidate", "a canonical id from `syncd matches list`")
    async with open_runtime(settings) as runtime:
        async with runtime.sessionmaker() as session:
            row = await session.get(t.MatchReview, number)
            if row is None:
                raise OperatorError(f"no match review with id {number} (see `syncd matches list`)")
            if row.state != "open":
                raise OperatorError(
                    f"match review {number} is already {row.state} "
                    f"({_when(_iso(row.decided_at))}); nothing to do"
                )
            ids = [int(c["canonical_id"]) for c in row.candidates if "canonical_id" in c]
            if accept and chosen is not None and chosen not in ids:
                raise OperatorError(
                    f"match review {number}: {chosen} is not one of its candidates "
                    f"({', '.join(map(str, ids)) or 'none'})"
                )
        try:
            await runtime.engine.decide_match(number, accept=accept, canonical_id=chosen)
        except (LookupError, ValueError) as exc:
            raise OperatorError(str(exc)) from None
        async with runtime.sessionmaker() as session:
            [review] = await _reviews(
                session, select(t.MatchReview).where(t.MatchReview.id == number), _utcnow()
            )
    record = f"{review['account']} {review['resource']} {review['external_id']}"
    if review["incoming_label"]:
        record += f" {_show(review['incoming_label'])}"
    if accept:
        target = review["chosen_canonical_id"]
        label = next(
            (c["label"] for c in review["candidates"] if c["canonical_id"] == target), None
        )
        outcome = f"is linked to {_record(review['resource'], target, label)}"
    else:
        outcome = f"becomes a new canonical {review['resource'].rstrip('s')}"
    return (
        f"match review {number} {review['state']}: {record} {outcome} on the next pull "
        f"of {review['account']} (`syncd once` or the running daemon).\n"
    )


# --------------------------------------------------------------------------- explain


async def _resolve_reference(
    session: AsyncSession, resource: str, reference: str
) -> tuple[int | None, dict[str, Any] | None]:
    """``ID`` or ``ACCOUNT:EXTERNAL_ID`` -> (canonical id, the account/external id asked)."""
    text = reference.strip()
    if ":" not in text:
        return _parse_id(text, resource.rstrip("s"), "a canonical id, or ACCOUNT:EXTERNAL_ID"), None
    account_name, _, external_id = text.partition(":")
    if not account_name or not external_id:
        raise OperatorError(f"{reference!r} is neither a canonical id nor ACCOUNT:EXTERNAL_ID")
    account = await session.scalar(select(t.Account).where(t.Account.name == account_name))
    if account is None:
        known = ", ".join(sorted((await _names(session, t.Account)).values())) or "none"
        raise OperatorError(f"no account named {account_name!r} in the database (known: {known})")
    asked = {"account_id": account.id, "account": account.name, "external_id": external_id}
    link = await repos.link_by_external(session, account.id, resource, external_id)
    return (None if link is None else link.canonical_id), asked


async def _quarantine_rows(
    session: AsyncSession,
    resource: str,
    keys: Iterable[tuple[int, str]],
    accounts: Mapping[int, str],
    scrub: _Scrubber,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for account_id, external_id in sorted(set(keys)):
        rows = await session.scalars(
            select(t.Quarantine).where(
                t.Quarantine.account_id == account_id,
                t.Quarantine.resource == resource,
                t.Quarantine.external_id == external_id,
            )
        )
        found.extend(
            {
                "account": accounts.get(row.account_id, f"#{row.account_id}"),
                "external_id": row.external_id,
                "reason": scrub(row.reason),
                "first_seen_at": _iso(row.first_seen_at),
                "last_seen_at": _iso(row.last_seen_at),
                "resolved_at": _iso(row.resolved_at),
            }
            for row in rows
        )
    return found


async def _related_reviews(
    session: AsyncSession,
    resource: str,
    canonical_id: int | None,
    keys: Iterable[tuple[int, str]],
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Reviews of this record's external ids, or that name it as a candidate."""
    wanted = set(keys)
    rows = list(
        await session.scalars(
            select(t.MatchReview)
            .where(t.MatchReview.resource == resource)
            .order_by(t.MatchReview.id)
        )
    )
    ids = []
    for row in rows:
        candidate_ids = {
            int(c["canonical_id"])
            for c in row.candidates
            if isinstance(c, dict) and "canonical_id" in c
        }
        if (row.account_id, row.external_id) in wanted or (
            canonical_id is not None
            and (canonical_id in candidate_ids or row.chosen_canonical_id == canonical_id)
        ):
            ids.append(row.id)
    if not ids:
        return []
    return await _reviews(
        session,
        select(t.MatchReview).where(t.MatchReview.id.in_(ids)).order_by(t.MatchReview.id),
        now,
    )


async def _explain(
    session: AsyncSession, resource: str, reference: str, now: dt.datetime, scrub: _Scrubber
) -> dict[str, Any]:
    canonical_id, asked = await _resolve_reference(session, resource, reference)
    accounts = await _names(session, t.Account)
    workspaces = await _names(session, t.Workspace)
    if canonical_id is None:
        # Not linked: perhaps quarantined, or waiting for a match decision.
        assert asked is not None
        key = (asked["account_id"], asked["external_id"])
        quarantine = await _quarantine_rows(session, resource, [key], accounts, scrub)
        reviews = await _related_reviews(session, resource, None, [key], now)
        if not quarantine and not reviews:
            raise OperatorError(
                f"{resource} {reference!r}: {asked['account']} has no record "
                f"{asked['external_id']!r} that syncd knows of (not linked, quarantined or "
                "waiting for review)"
            )
        return {
            "resource": resource,
            "reference": reference,
            "canonical_id": None,
            "state": "not linked",
            "quarantine": quarantine,
            "match_reviews": reviews,
        }
    entity, fields = await _current_fields(session, resource, canonical_id)
    links = await repos.links_of_entity(session, resource, canonical_id)
    history = await _audit_rows(session, resource, canonical_id, accounts)
    if entity is None and not links and not history:
        raise OperatorError(f"no {resource} with canonical id {canonical_id}")
    labels = await _labels(session, resource, [canonical_id])
    conflicts = await session.scalars(
        select(t.Conflict)
        .where(t.Conflict.resource == resource, t.Conflict.canonical_id == canonical_id)
        .order_by(t.Conflict.id)
    )
    outbox = await session.scalars(
        select(t.Outbox)
        .where(t.Outbox.resource == resource, t.Outbox.canonical_id == canonical_id)
        .order_by(t.Outbox.id)
    )
    keys = [(link.account_id, link.external_id) for link in links]
    if asked is not None:
        keys.append((asked["account_id"], asked["external_id"]))
    state = "gone" if entity is None else ("deleted" if entity.deleted_at else "live")
    return {
        "resource": resource,
        "reference": reference,
        "canonical_id": canonical_id,
        "label": labels.get(canonical_id),
        "workspace": None if entity is None else workspaces.get(entity.workspace_id),
        "state": state,
        "created_at": None if entity is None else _iso(entity.created_at),
        "updated_at": None if entity is None else _iso(entity.updated_at),
        "deleted_at": None if entity is None else _iso(entity.deleted_at),
        "version": None if entity is None else entity.version,
        "fields": fields,
        "links": [
            {
                "account": accounts.get(link.account_id, f"#{link.account_id}"),
                "external_id": link.external_id,
                "linked_at": _iso(link.linked_at),
                "detached_at": _iso(link.detached_at),
                "external_version": link.external_version,
                "external_updated_at": _iso(link.external_updated_at),
            }
            for link in sorted(links, key=lambda link: (link.linked_at, link.id))
        ],
        "history": history,
        "conflicts": [
            {
                "id": row.id,
                "field": row.field,
                "state": row.state,
                "policy": row.policy,
                "candidates": dict(row.candidates),
                "created_at": _iso(row.created_at),
                "resolved_at": _iso(row.resolved_at),
                "resolution": row.resolution,
            }
            for row in conflicts
        ],
        "outbox": [
            {
                "id": row.id,
                "account": accounts.get(row.account_id, f"#{row.account_id}"),
                "op": row.op,
                "fields": list(row.fields.get("fields", [])),
                "reason": row.fields.get("reason"),
                "state": row.state,
                "attempts": row.attempts,
                "next_attempt_at": _iso(row.next_attempt_at),
                "last_error": scrub(row.last_error),
                "created_at": _iso(row.created_at),
                "updated_at": _iso(row.updated_at),
            }
            for row in outbox
        ],
        "quarantine": await _quarantine_rows(session, resource, keys, accounts, scrub),
        "match_reviews": await _related_reviews(session, resource, canonical_id, keys, now),
    }


def _review_lines(reviews: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for review in reviews:
        chosen = review["chosen_canonical_id"]
        decided = f", chose {review['resource']} {chosen}" if chosen is not None else ""
        lines.append(
            f"  #{review['id']} {review['account']} {review['external_id']} "
            f"{_show(review['incoming_label'])}: {review['state']}{decided} "
            f"(candidates {', '.join(str(c['canonical_id']) for c in review['candidates'])})"
        )
    return lines


def _quarantine_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"  {row['account']} {row['external_id']}: {row['reason']} "
        f"(first seen {_when(row['first_seen_at'])}, last {_when(row['last_seen_at'])}"
        + (f", resolved {_when(row['resolved_at'])})" if row["resolved_at"] else ", unresolved)")
        for row in rows
    ]


def render_explain(report: Mapping[str, Any]) -> str:
    """Every decision made for one record, oldest first."""
    resource = report["resource"]
    if report["canonical_id"] is None:
        lines = [f"{resource} {report['reference']} is not linked to any canonical record."]
        if report["quarantine"]:
            lines.append("quarantined (could not be read):")
            lines.extend(_quarantine_lines(report["quarantine"]))
        if report["match_reviews"]:
            lines.append("match reviews:")
            lines.extend(_review_lines(report["match_reviews"]))
        return "\n".join(lines) + "\n"
    state = report["state"]
    if state == "deleted":
        state = f"deleted {_when(report['deleted_at'])}"
    lines = [
        f"{_record(resource, report['canonical_id'], report['label'])} — {state}"
        + (f", workspace {report['workspace']}" if report["workspace"] else "")
        + (f", version {report['version']}" if report["version"] is not None else ""),
    ]
    fields = report["fields"]
    if fields:
        shown = {k: v for k, v in fields.items() if v not in (None, "", [], False)}
        lines.append("fields:")
        width = max((len(k) for k in shown), default=0)
        lines.extend(f"  {k:<{width}}  {_show(v)}" for k, v in shown.items())
    lines.append("links:")
    if not report["links"]:
        lines.append("  (none)")
    for link in report["links"]:
        text = (
            f"  {link['account']:<16} {link['external_id']:<12} linked {_when(link['linked_at'])}"
        )
        if link["detached_at"]:
            text += f", detached {_when(link['detached_at'])} (deleted there; never written again)"
        lines.append(text)
    lines.append("history:")
    lines.extend(_history_lines(report["history"], with_field=True) or ["  (nothing recorded)"])
    open_conflicts = [c for c in report["conflicts"] if c["state"] == "open"]
    if report["conflicts"]:
        lines.append(f"conflicts ({len(open_conflicts)} open):")
        for conflict in report["conflicts"]:
            text = (
                f"  #{conflict['id']} {conflict['field']} [{conflict['state']}] "
                f"{_candidates_text(conflict['candidates'], _LIST_VALUE_WIDTH)}"
            )
            if conflict["state"] == "open":
                text += f"  -> syncd conflicts show {conflict['id']}"
            lines.append(text)
    if report["outbox"]:
        lines.append("outbox:")
        for row in report["outbox"]:
            fields_text = ", ".join(row["fields"])
            text = (
                f"  #{row['id']} {row['op']} in {row['account']}: {row['state']}, "
                f"{row['attempts']} attempt{'' if row['attempts'] == 1 else 's'}"
            )
            if row["op"] == "update" and fields_text:
                text += f" (fields: {fields_text})"
            if row["last_error"]:
                text += f", last error: {row['last_error']}"
            lines.append(text)
    if report["quarantine"]:
        lines.append("quarantine:")
        lines.extend(_quarantine_lines(report["quarantine"]))
    if report["match_reviews"]:
        lines.append("match reviews:")
        lines.extend(_review_lines(report["match_reviews"]))
    return "\n".join(lines) + "\n"


async def explain_command(
    settings: Settings,
    resource: str,
    reference: str,
    *,
    as_json: bool = False,
    now: dt.datetime | None = None,
) -> str:
    """``syncd explain RESOURCE ID``."""
    if resource not in EXPLAIN_RESOURCES:
        raise OperatorError(
            f"cannot explain {resource!r}; choose one of {', '.join(EXPLAIN_RESOURCES)}"
        )
    scrub = _Scrubber(settings.secret_values())
    async with open_store(settings) as sessionmaker, sessionmaker() as session:
        report = await _explain(session, resource, reference, now or _utcnow(), scrub)
    return _dump(report) if as_json else render_explain(report)
