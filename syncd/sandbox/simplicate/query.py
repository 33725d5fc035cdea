"""Simplicate list semantics: q[...] filters, sort, select, offset/limit paging, JSON numbers."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from syncd.sandbox.common import exact_json, plain_decimal

_KEY = re.compile(r"^q((?:\[[^\[\]]*\])+)$")
_PART = re.compile(r"\[([^\[\]]*)\]")
_COMPARISONS = frozenset({"ge", "gt", "le", "lt"})
_LIST_OPS = frozenset({"in", "nin"})  # only in unofficial notes; cheap to serve
_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class QueryError(Exception):
    """A list parameter the vendor would refuse (answered with 400)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One ``q[...]`` condition: path into the record, operator, accepted values."""

    path: tuple[str, ...]
    op: str  # "eq" (exact/wildcard, any of values), "ge"/"gt"/"le"/"lt", "in", "nin"
    values: tuple[str, ...]
    is_or: bool  # from q[or][...]: OR-ed with the AND of the other terms


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Everything a list request asked for."""

    terms: tuple[Term, ...]
    sort: tuple[tuple[tuple[str, ...], bool], ...]  # (path, descending)
    select: tuple[str, ...] | None
    offset: int
    limit: int
    metadata: tuple[str, ...]


def parse_list_query(
    query: Mapping[str, str] | Any, *, default_limit: int, max_limit: int
) -> ListQuery:
    """Read offset/limit/sort/select/metadata/q[...] from a (multi)dict of query parameters."""
    offset = _int_param(query.get("offset"), "offset", 0)
    limit = _int_param(query.get("limit"), "limit", default_limit)
    if limit == 0:
        limit = default_limit
    # Inferred: a limit above the maximum is silently capped (clients page by 100), not refused.
    limit = min(limit, max_limit)
    sort_param = query.get("sort") or ""
    sort: list[tuple[tuple[str, ...], bool]] = []
    for raw in sort_param.split(","):
        name = raw.strip()
        if not name:
            continue
        descending = name.startswith("-")
        sort.append((tuple(name.lstrip("-+").split(".")), descending))
    select_param = query.get("select")
    select = None
    if select_param:
        select = tuple(s.strip() for s in select_param.split(",") if s.strip())
    metadata = tuple(m.strip() for m in (query.get("metadata") or "").split(",") if m.strip())
    return ListQuery(
        terms=parse_terms(_items(query)),
        sort=tuple(sort),
        select=select,
        offset=offset,
        limit=limit,
        metadata=metadata,
    )


def _items(query: Any) -> list[tuple[str, str]]:
    items = query.items()
    return [(str(k), str(v)) for k, v in items]


def _int_param(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"Invalid value given for the {name} parameter") from None
    if value < 0:
        raise QueryError(f"Invalid value given for the {name} parameter")
    return value


def parse_terms(items: Iterable[tuple[str, str]]) -> tuple[Term, ...]:
    """Group ``q[...]`` parameters into terms; repeated ``q[f][]`` values form one OR term."""
    exact: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    others: list[Term] = []
    for key, value in items:
        match = _KEY.match(key)
        if match is None:
            if key.startswith("q["):
                raise QueryError(f"Invalid filter given: {key}")
            continue
        parts = _PART.findall(match.group(1))
        is_or = parts[0] == "or"
        if is_or:
            parts = parts[1:]
        if not parts or not parts[0]:
            raise QueryError(f"Invalid filter given: {key}")
        path = tuple(parts[0].split("."))
        if len(parts) == 1 or (len(parts) == 2 and parts[1] == ""):
            exact.setdefault((path, is_or), []).append(value)
        elif len(parts) == 2 and parts[1] in _COMPARISONS:
            if path[-1].endswith(("_at", "date")) and parse_local_datetime(value) is None:
                raise QueryError(f"Invalid date given in filter: {value}")
            # Two bounds on one field (ge and lt) are two terms that must both hold.
            others.append(Term(path=path, op=parts[1], values=(value,), is_or=is_or))
        elif len(parts) == 2 and parts[1] in _LIST_OPS:
            values = tuple(value.split(","))
            others.append(Term(path=path, op=parts[1], values=values, is_or=is_or))
        else:
            raise QueryError(f"Invalid filter given: {key}")
    terms = [
        Term(path=path, op="eq", values=tuple(values), is_or=is_or)
        for (path, is_or), values in exact.items()
    ]
    return tuple(terms + others)


# ---------------------------------------------------------------- matching


def resolve(record: Any, path: Sequence[str]) -> list[Any]:
    """Every leaf value at ``path``; lists along the way fan out (any element may match)."""
    current: list[Any] = [record]
    for name in path:
        found: list[Any] = []
        for item in current:
            if isinstance(item, list):
                for element in item:
                    if isinstance(element, dict) and name in element:
                        found.append(element[name])
            elif isinstance(item, dict) and name in item:
                found.append(item[name])
        current = found
    leaves: list[Any] = []
    for item in current:
        if isinstance(item, list):
            leaves.extend(item)
        else:
            leaves.append(item)
    return leaves


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "" if value is None else str(value)


def parse_local_datetime(raw: str) -> dt.datetime | None:
    """A zone-less local timestamp as the vendor reads one, or None when it is not one."""
    for fmt in _DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt)  # noqa: DTZ007 - the vendor's times carry no zone
        except ValueError:
            continue
    return None


def _decimal(raw: Any) -> Decimal | None:
    if isinstance(raw, bool):
        return Decimal(int(raw))
    if isinstance(raw, int | Decimal):
        return Decimal(raw)
    if isinstance(raw, str):
        try:
            return Decimal(raw.strip())
        except InvalidOperation:
            return None
    return None


def _equals(candidate: Any, wanted: str, *, ci: bool) -> bool:
    if wanted == "null":
        return _is_empty(candidate)
    if wanted == "*":
        return not _is_empty(candidate)
    if isinstance(candidate, bool):
        lowered = wanted.lower()
        if lowered in {"true", "false"}:
            return candidate == (lowered == "true")
    if isinstance(candidate, int | Decimal) and not isinstance(candidate, bool):
        number = _decimal(wanted)
        if number is not None:
            return Decimal(candidate) == number
    text = _text(candidate)
    if "*" in wanted:
        pattern = ".*".join(re.escape(piece) for piece in wanted.split("*"))
        return re.fullmatch(pattern, text, re.IGNORECASE if ci else 0) is not None
    return text.casefold() == wanted.casefold() if ci else text == wanted


def _compare(candidate: Any, wanted: str, *, ci: bool) -> int | None:
    """-1/0/1 of candidate against wanted, or None when they cannot be compared."""
    if _is_empty(candidate):
        return None
    if isinstance(candidate, str):
        mine = parse_local_datetime(candidate)
        if mine is not None:
            theirs = parse_local_datetime(wanted)
            if theirs is None:
                raise QueryError(f"Invalid date given in filter: {wanted}")
            return (mine > theirs) - (mine < theirs)
    if isinstance(candidate, int | Decimal):
        number = _decimal(wanted)
        if number is None:
            raise QueryError(f"Invalid number given in filter: {wanted}")
        value = Decimal(candidate)
        return (value > number) - (value < number)
    left, right = _text(candidate), wanted
    if ci:
        left, right = left.casefold(), right.casefold()
    return (left > right) - (left < right)


def _term_matches(record: Mapping[str, Any], term: Term, *, ci: bool) -> bool:
    candidates = resolve(record, term.path) or [None]
    if term.op == "eq":
        return any(_equals(c, v, ci=ci) for c in candidates for v in term.values)
    if term.op == "in":
        return any(_equals(c, v, ci=ci) for c in candidates for v in term.values)
    if term.op == "nin":
        return not any(_equals(c, v, ci=ci) for c in candidates for v in term.values)
    wanted = term.values[0]
    for candidate in candidates:
        outcome = _compare(candidate, wanted, ci=ci)
        if outcome is None:
            continue
        if (
            (term.op == "ge" and outcome >= 0)
            or (term.op == "gt" and outcome > 0)
            or (term.op == "le" and outcome <= 0)
            or (term.op == "lt" and outcome < 0)
        ):
            return True
    return False


def matches(record: Mapping[str, Any], terms: Sequence[Term], *, ci: bool) -> bool:
    """AND of the plain terms, OR-ed with every ``q[or][...]`` term."""
    plain = [t for t in terms if not t.is_or]
    alternatives = [t for t in terms if t.is_or]
    if plain and all(_term_matches(record, t, ci=ci) for t in plain):
        return True
    if not plain and not alternatives:
        return True
    return any(_term_matches(record, t, ci=ci) for t in alternatives)


# ---------------------------------------------------------------- sort, select, page


def _sort_key(value: Any, ci: bool) -> tuple[int, Any]:
    # NULLs first, like the vendor's database in ascending order.
    if _is_empty(value):
        return (0, 0)
    if isinstance(value, bool):
        return (1, Decimal(int(value)))
    if isinstance(value, int | Decimal):
        return (1, Decimal(value))
    if isinstance(value, str):
        return (2, value.casefold() if ci else value)
    return (3, _text(value))


def sort_records(
    records: list[dict[str, Any]],
    sort: Sequence[tuple[tuple[str, ...], bool]],
    *,
    ci: bool,
) -> list[dict[str, Any]]:
    """Stable multi-key sort; ties keep the store's own order."""
    result = list(records)
    for path, descending in reversed(sort):

        def key(record: dict[str, Any], path: tuple[str, ...] = path) -> tuple[int, Any]:
            found = resolve(record, path)
            return _sort_key(found[0] if found else None, ci)

        result.sort(key=key, reverse=descending)
    return result


def select_fields(record: Mapping[str, Any], select: Sequence[str]) -> dict[str, Any]:
    """Keep chosen fields: ``a`` (a scalar), ``a.`` (a whole nested value), ``a.b`` (one child).

    ``id`` always comes back. Inferred: a nested object named without the trailing dot is left
    out, since the docs only describe ``a.`` as the way to get an object's children.
    """
    out: dict[str, Any] = {}
    if "id" in record:
        out["id"] = record["id"]
    for name in select:
        if name.endswith("."):
            top = name[:-1]
            if top in record:
                out[top] = record[top]
            continue
        if "." in name:
            top, _, child = name.partition(".")
            value = record.get(top)
            if isinstance(value, dict):
                existing = out.get(top)
                merged = dict(existing) if isinstance(existing, dict) else {}
                if child in value:
                    merged[child] = value[child]
                out[top] = merged
            elif isinstance(value, list):
                out[top] = [
                    {child: item[child]}
                    for item in value
                    if isinstance(item, dict) and child in item
                ]
            continue
        if name in record and not isinstance(record[name], dict | list):
            out[name] = record[name]
    return out


def omit_empty(value: Any) -> Any:
    """Drop null and empty-string fields everywhere, as the vendor's response clean-up does."""
    if isinstance(value, dict):
        return {k: omit_empty(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [omit_empty(v) for v in value]
    return value


# ---------------------------------------------------------------- JSON with decimal numbers


def _number(value: Decimal) -> str:
    text = plain_decimal(value)
    # The vendor's amounts are PHP floats: an integral one is written with ".0".
    return text if "." in text else f"{text}.0"


def dumps(value: Any) -> str:
    """JSON text in which Decimals are numbers (never routed through float)."""
    return exact_json(value, _number)
