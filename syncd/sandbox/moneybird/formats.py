"""Moneybird wire formats: money strings, timestamps, filters, periods and error bodies."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

# Moneybird administrations live in Dutch time: "today", "this_year" and date-only
# fields are evaluated there, not in UTC.
ADMIN_TZ = ZoneInfo("Europe/Amsterdam")
CENT = Decimal("0.01")
UTC = dt.UTC


class ApiError(Exception):
    """A request the vendor refuses: the HTTP status plus the vendor's own JSON body."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body!r}")
        self.status = status
        self.body = body

    def message(self) -> str:
        """A short human-readable form, for control-API ValueErrors."""
        error = self.body.get("error") if isinstance(self.body, dict) else self.body
        if isinstance(error, dict):
            return "; ".join(f"{key} {', '.join(msgs)}" for key, msgs in error.items())
        return str(error)


# ---------------------------------------------------------------- error bodies


def symbolic_error(status: int, message: str, field: str, code: str) -> ApiError:
    """The vendor's "symbolic" error: a sentence plus a field -> code map."""
    return ApiError(status, {"error": message, "symbolic": {field: code}})


def not_found(field: str = "id") -> ApiError:
    return symbolic_error(404, "record not found", field, "not_found")


def bad_param(message: str) -> ApiError:
    """A parameter-level 400 (type coercion, paging): only an ``error`` sentence."""
    return ApiError(400, {"error": message})


def invalid_param(path: str) -> ApiError:
    return bad_param(f"{path} is invalid")


def invalid_record(errors: Mapping[str, list[tuple[str, str]]]) -> ApiError:
    """The vendor's 422: field -> messages, and the same as machine-readable details."""
    return ApiError(
        422,
        {
            "error": {field: [msg for msg, _ in items] for field, items in errors.items()},
            "details": {
                field: [{"error": code} for _, code in items] for field, items in errors.items()
            },
        },
    )


# ---------------------------------------------------------------- money and numbers


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """Render like Ruby's BigDecimal#to_s in Moneybird JSON: "300.0", "0.33", "-12.5"."""
    normal = value.normalize()
    if normal == normal.to_integral_value():
        return f"{int(normal)}.0"
    return format(normal, "f")


_NUMBER = re.compile(r"^-?[0-9]+([,.][0-9]*)?$")


def parse_decimal(value: Any, path: str) -> Decimal:
    """A money/number input: a JSON number or a string with ',' or '.' as separator."""
    if isinstance(value, bool) or value is None:
        raise invalid_param(path)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        try:
            return Decimal(value.strip().replace(",", ".").rstrip("."))
        except InvalidOperation:
            raise invalid_param(path) from None
    raise invalid_param(path)


_QUANTITY = re.compile(r"^\s*(-?[0-9]+(?:[.,][0-9]+)?)")


def parse_quantity(value: Any, path: str) -> tuple[str, Decimal]:
    """A detail ``amount``: free text such as "2", "1,5" or "3 stuks"; returns (text, number)."""
    if isinstance(value, bool) or value is None:
        raise invalid_param(path)
    if isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise invalid_param(path)
    match = _QUANTITY.match(text)
    if match is None:
        raise invalid_param(path)
    return text, Decimal(match.group(1).replace(",", "."))


# ---------------------------------------------------------------- times and dates


def truncate_ms(moment: dt.datetime) -> dt.datetime:
    """Moneybird keeps milliseconds; finer precision would break exclusive cursors."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def timestamp(moment: dt.datetime) -> str:
    """ISO 8601 UTC with milliseconds: 2026-08-21T13:48:42.191Z."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch(moment: dt.datetime) -> int:
    return int(moment.timestamp())


def local_today(now: dt.datetime) -> dt.date:
    return now.astimezone(ADMIN_TZ).date()


def date_or_none(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


_DATE = re.compile(r"^\s*(\d{4})-(\d{1,2})-(\d{1,2})")


def parse_date(value: Any, path: str) -> dt.date:
    """A date input; a full timestamp is cut to its date (payments accept both)."""
    if not isinstance(value, str):
        raise invalid_param(path)
    match = _DATE.match(value)
    if match is None:
        raise invalid_param(path)
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        raise invalid_param(path) from None


def parse_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (1, "1", "true", "True", "TRUE"):
        return True
    if value in (0, "0", "false", "False", "FALSE"):
        return False
    raise invalid_param(path)


def parse_id(value: Any, path: str) -> str:
    """Ids arrive as JSON numbers or digit strings; they are kept as strings."""
    if isinstance(value, bool):
        raise invalid_param(path)
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    raise invalid_param(path)


# ---------------------------------------------------------------- filters and periods


def parse_filter(raw: str | None) -> dict[str, str] | None:
    """``key:value,key2:value2``; None when no filter was given (the defaults apply).

    Values may contain colons (times), so each term splits on its first colon only.
    """
    if raw is None or not raw.strip():
        return None
    terms: dict[str, str] = {}
    for term in raw.split(","):
        key, sep, value = term.partition(":")
        if sep:
            terms[key.strip()] = value.strip()
    return terms


def filter_invalid(message: str) -> ApiError:
    return symbolic_error(400, message, "filter", "invalid")


def parse_filter_time(value: str, key: str) -> dt.datetime:
    """``2026-08-21 13:48:40 UTC``, ``2026-08-21T13:48:40Z`` or offset forms; naive = UTC."""
    text = value.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise filter_invalid(f"{key.replace('_', ' ').capitalize()} is invalid") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _month_end(year: int, month: int) -> dt.date:
    if month == 12:
        return dt.date(year, 12, 31)
    return dt.date(year, month + 1, 1) - dt.timedelta(days=1)


def _shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def _named_period(name: str, today: dt.date) -> tuple[dt.date, dt.date] | None:
    scope, _, unit = name.partition("_")
    offsets = {"this": 0, "prev": -1, "next": 1}
    if scope not in offsets:
        return None
    step = offsets[scope]
    if unit == "week":
        monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(weeks=step)
        return monday, monday + dt.timedelta(days=6)
    if unit == "month":
        year, month = _shift_month(today.year, today.month, step)
        return dt.date(year, month, 1), _month_end(year, month)
    if unit == "quarter":
        first = (today.month - 1) // 3 * 3 + 1
        year, month = _shift_month(today.year, first, 3 * step)
        end_year, end_month = _shift_month(year, month, 2)
        return dt.date(year, month, 1), _month_end(end_year, end_month)
    if unit == "year":
        return dt.date(today.year + step, 1, 1), dt.date(today.year + step, 12, 31)
    return None


def _period_bound(text: str, *, start: bool) -> dt.date:
    if len(text) == 8:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    if len(text) == 6:
        year, month = int(text[:4]), int(text[4:])
        return dt.date(year, month, 1) if start else _month_end(year, month)
    raise ValueError(text)


def parse_period(value: str, today: dt.date) -> tuple[dt.date, dt.date]:
    """A named period (``this_year``) or ``YYYYMM[DD]..YYYYMM[DD]``; inclusive bounds."""
    named = _named_period(value, today)
    if named is not None:
        return named
    low, sep, high = value.partition("..")
    if not sep:
        raise bad_param("Period is invalid")
    if not low or not high:
        raise bad_param("Period must have both a start and end date")
    if not (low.isdigit() and high.isdigit()):
        raise bad_param("Period is invalid")
    try:
        return _period_bound(low, start=True), _period_bound(high, start=False)
    except ValueError:
        raise bad_param("Period is invalid") from None


# ---------------------------------------------------------------- payment references


def _rf_check_digits(reference: str) -> str:
    digits = "".join(str(int(char, 36)) for char in reference + "RF00")
    return f"{98 - int(digits) % 97:02d}"


def rf_reference(code: str) -> tuple[str, str]:
    """An ISO 11649 creditor reference, long (zero-padded) and short, for ``code``."""
    check = _rf_check_digits(code)
    return f"RF{check}{code.rjust(21, '0')}", f"RF{check}{code}"
