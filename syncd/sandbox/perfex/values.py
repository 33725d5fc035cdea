"""Value coercion and arithmetic the way Perfex (PHP + MySQL) does it, for the emulator."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SCRIPT_TAG = re.compile(r"<\s*/?\s*script\b[^>]*>", re.IGNORECASE)
_JS_URL = re.compile(r"javascript\s*:", re.IGNORECASE)
_EVENT_ATTR = re.compile(r"\bon[a-z]+\s*=", re.IGNORECASE)
_TRAILING_DIGITS = re.compile(r"^(.*?)(\d+)$")


class Invalid(Exception):
    """Input the vendor rejects; ``errors`` maps a field to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def q2(value: Decimal) -> Decimal:
    """Round like MySQL DECIMAL(15,2) does on insert (half away from zero)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """A DECIMAL(15,2) column as the API renders it: ``"1234.50"``."""
    return f"{q2(value):f}"


def dec(text: str | None) -> Decimal:
    """A stored decimal string back to Decimal (NULL reads as 0)."""
    return Decimal(text) if text not in (None, "") else Decimal(0)


def text_value(value: Any, field: str, errors: dict[str, str]) -> str | None:
    """PHP string context: scalars become text, arrays are an error."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (Decimal, float)):
        return format(Decimal(str(value)).normalize(), "f")
    errors[field] = f"The {field} field must be a string."
    return None


def decimal_value(value: Any, field: str, errors: dict[str, str]) -> Decimal | None:
    """A number given as JSON number or numeric string."""
    if isinstance(value, bool) or value is None:
        errors[field] = f"The {field} field must be a number."
        return None
    if isinstance(value, (int, Decimal)):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except InvalidOperation:
            parsed = None
        if parsed is not None and parsed.is_finite():
            return parsed
    errors[field] = f"The {field} field must be a number."
    return None


def int_value(value: Any, field: str, errors: dict[str, str]) -> int | None:
    """An integer given as JSON number or digit string."""
    if isinstance(value, bool) or value is None:
        errors[field] = f"The {field} field must be an integer."
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    errors[field] = f"The {field} field must be an integer."
    return None


def flag_value(value: Any, field: str, errors: dict[str, str]) -> str | None:
    """A tinyint(1) column: accepts 0/1, true/false and the form value "on"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) and value in (0, 1):
        return str(value)
    if isinstance(value, str) and value.strip().lower() in {"0", "1", "on", "off", "true", "false"}:
        return "1" if value.strip().lower() in {"1", "on", "true"} else "0"
    errors[field] = f"The {field} field must be 0 or 1."
    return None


def date_value(value: Any, field: str, errors: dict[str, str]) -> dt.date | None:
    """A DATE column given as ``YYYY-MM-DD``."""
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors[field] = f"The {field} field must be a valid date (YYYY-MM-DD)."
    return None


def email_ok(text: str) -> bool:
    return bool(_EMAIL.match(text))


def xss_clean(text: str) -> str:
    """The part of CodeIgniter's XSS filter that visibly changes ordinary text."""
    text = _SCRIPT_TAG.sub("[removed]", text)
    text = _JS_URL.sub("[removed]", text)
    return _EVENT_ATTR.sub("[removed]", text)


def php_serialize_strings(values: Iterable[str]) -> str:
    """A PHP ``serialize()`` of a list of strings (how allowed_payment_modes is stored)."""
    items = list(values)
    body = "".join(
        f'i:{index};s:{len(item.encode())}:"{item}";' for index, item in enumerate(items)
    )
    return f"a:{len(items)}:{{{body}}}"


def split_invoice_number(number: str) -> tuple[str, int, int] | None:
    """``"2024-0012"`` -> prefix ``"2024-"``, number 12, padding 4; None without digits."""
    match = _TRAILING_DIGITS.match(number.strip())
    if match is None:
        return None
    return match.group(1), int(match.group(2)), len(match.group(2))


@dataclass(frozen=True, slots=True)
class LineAmounts:
    qty: Decimal
    rate: Decimal
    taxes: Sequence[tuple[str, Decimal]]  # (name, percent)


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal: Decimal
    total_tax: Decimal
    discount_total: Decimal
    total: Decimal


def compute_totals(
    lines: Sequence[LineAmounts],
    discount_percent: Decimal,
    discount_type: str,
    adjustment: Decimal,
) -> Totals:
    """Invoice totals as Perfex computes them.

    Each line amount is rounded to cents; tax is summed per (name, rate) group and each group
    is rounded; a before-tax discount lowers the taxable amount of every line.
    """
    subtotal = Decimal(0)
    groups: dict[tuple[str, Decimal], Decimal] = {}
    pct = discount_percent if discount_type in {"before_tax", "after_tax"} else Decimal(0)
    for line in lines:
        amount = q2(line.qty * line.rate)
        subtotal += amount
        taxable = amount
        if discount_type == "before_tax" and pct:
            taxable = amount - amount * pct / 100
        for name, rate in line.taxes:
            groups[(name, rate)] = groups.get((name, rate), Decimal(0)) + taxable * rate / 100
    total_tax = sum((q2(value) for value in groups.values()), Decimal(0))
    if discount_type == "before_tax" and pct:
        discount_total = q2(subtotal * pct / 100)
    elif discount_type == "after_tax" and pct:
        discount_total = q2((subtotal + total_tax) * pct / 100)
    else:
        discount_total = Decimal(0)
    total = subtotal + total_tax - discount_total + adjustment
    return Totals(q2(subtotal), q2(total_tax), discount_total, q2(total))
