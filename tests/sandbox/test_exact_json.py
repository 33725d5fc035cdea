"""The one JSON writer the emulators share: exact decimals, vendor-specific number forms."""

from __future__ import annotations

import json
import types
from decimal import Decimal

import pytest

from syncd.sandbox.common import exact_json
from syncd.sandbox.simplbooks import render_json
from syncd.sandbox.simplicate.query import dumps

AMOUNTS = [
    Decimal("0"),
    Decimal("-0.00"),
    Decimal("13.70"),
    Decimal("100.00"),
    Decimal("1E+3"),
    Decimal("-2.5"),
    Decimal("0.1"),
    Decimal("1234567890123456789.0123456789"),  # beyond a float's 17 digits
    Decimal("1E-9"),
]


def test_only_decimals_go_through_the_number_format() -> None:
    seen: list[Decimal] = []

    def mark(value: Decimal) -> str:
        seen.append(value)
        return "7"

    text = exact_json({"a": Decimal("1.50"), "b": 2, "c": [True, None, "x"], "d": False}, mark)
    assert seen == [Decimal("1.50")]
    assert json.loads(text) == {"a": 7, "b": 2, "c": [True, None, "x"], "d": False}


def test_keys_become_strings_and_any_mapping_or_tuple_is_accepted() -> None:
    value = types.MappingProxyType({1: ("é", "\u2028"), "k": {}})
    text = exact_json(value, str)
    assert json.loads(text) == {"1": ["é", "\u2028"], "k": {}}
    assert "é" in text  # written as UTF-8 text, not \\u escapes


@pytest.mark.parametrize("bad", [1.5, {1, 2}, b"raw", object()])
def test_values_without_an_exact_json_form_are_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="as JSON"):
        exact_json({"x": [bad]}, str)


@pytest.mark.parametrize("write", [render_json, dumps], ids=["simplbooks", "simplicate"])
@pytest.mark.parametrize("amount", AMOUNTS, ids=str)
def test_each_vendor_form_reads_back_as_the_same_decimal(write: object, amount: Decimal) -> None:
    assert callable(write)
    text = write({"amount": amount})
    assert json.loads(text, parse_float=Decimal, parse_int=Decimal)["amount"] == amount


@pytest.mark.parametrize(
    ("amount", "simplbooks", "simplicate"),
    [
        (Decimal("13.70"), "13.7", "13.7"),
        (Decimal("100.00"), "100", "100.0"),
        (Decimal("-0.00"), "0", "-0.0"),
        (Decimal("1E+3"), "1000", "1000.0"),
    ],
)
def test_the_vendors_differ_only_in_how_a_number_looks(
    amount: Decimal, simplbooks: str, simplicate: str
) -> None:
    # SimplBooks prints like PHP's json_encode (no trailing zeros); Simplicate keeps a
    # float's ".0" on whole amounts.
    assert render_json([amount, "s", 3]) == f'[{simplbooks},"s",3]'
    assert dumps([amount, "s", 3]) == f'[{simplicate},"s",3]'
