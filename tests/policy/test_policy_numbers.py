"""Tool-call arguments as the policy sees them: parsed once, numbers in one float64 form."""

from __future__ import annotations

import math
from decimal import Decimal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.numbers import normalise_numbers, parse_arguments


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"amount": 1000}', 1000),
        ('{"amount": "1000"}', 1000),
        ('{"amount": 1000.0}', 1000),
        ('{"amount": "1E+3"}', 1000),
        ('{"amount": -5000}', -5000),
        ('{"amount": "-5000.50"}', -5000.5),
        ('{"amount": 1000.0000000000000000001}', 1000.0000000000001),
        ('{"amount": "1000.0000000000000000001"}', 1000.0000000000001),
        ('{"amount": -1000.0000000000000000001}', -1000.0000000000001),
        ('{"amount": 999.99999999999999999999}', 1000),  # nearest float64 is 1000; away from zero too
        ('{"amount": 9007199254740993}', 9007199254740994.0),
        (
            '{"amount": 123456789012345678901234567890}',
            1.2345678901234568e29,
        ),  # prints as ...680000..., above it
        ('{"amount": 1e-400}', 5e-324),
        ('{"amount": -1e-400}', -5e-324),
        ('{"amount": "1e400"}', "1e400"),
        ('{"amount": "NaN"}', "NaN"),
        ('{"amount": "inf"}', "inf"),
        ('{"amount": "1,000"}', "1,000"),
        ('{"amount": "0012"}', "0012"),
        ('{"amount": "+5"}', "+5"),
        ('{"amount": " 5"}', " 5"),
        ('{"amount": true}', True),
        ('{"amount": null}', None),
    ],
)
def test_numbers_and_numeric_strings_reach_the_policy_as_float64_numbers(raw: str, expected: object) -> None:
    value = parse_arguments(raw)["amount"]
    assert value == expected and type(value) is type(expected)


def test_a_value_float64_cannot_hold_is_rounded_away_from_zero() -> None:
    above = parse_arguments('{"a": "1000.0000000000000000001"}')["a"]
    assert above > 1000 and above == math.nextafter(1000.0, math.inf)
    for text in ("0.1", "0.3", "129.9", "-2.675"):  # prints as itself: read the same by both engines
        assert parse_arguments(f'{{"a": "{text}"}}')["a"] == float(text)


def test_nested_arguments_are_normalised_too() -> None:
    assert parse_arguments('{"p": {"amounts": ["5", 2e0, {"x": "-0.5"}]}}') == {
        "p": {"amounts": [5, 2, {"x": -0.5}]}
    }


def test_arguments_that_are_not_json_keep_their_first_8_kib() -> None:
    assert parse_arguments("{amount: 5") == {"_invalid_json": True, "raw": "{amount: 5"}
    assert parse_arguments("x" * 10000)["raw"] == "x" * 8192


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.integers(), st.decimals(allow_nan=False, allow_infinity=False)))
def test_every_number_becomes_a_finite_float64_no_smaller_in_magnitude(value: int | Decimal) -> None:
    text = str(value)
    got = normalise_numbers(text)
    if isinstance(got, str):  # beyond float64's range, or a form no plain decimal has
        assert (
            abs(Decimal(text)) > Decimal("1e308")
            or "E" in text
            or text.startswith("-0")
            or text.startswith("0")
        )
        return
    assert math.isfinite(got)
    assert abs(Decimal(repr(got))) >= abs(Decimal(text))  # what OPA reads: never smaller
    assert float(repr(got)) == got  # and regorus reads the same float64
    assert orjson.loads(orjson.dumps(got)) == got  # one JSON form, read back as the same float64
