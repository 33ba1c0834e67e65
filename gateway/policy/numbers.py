"""Tool-call arguments parsed once, with every number in the one form both engines compare alike.

regorus compares numbers as float64, OPA as arbitrary-precision decimals, so the same JSON
(``1000.0000000000000000001``, ``123456789012345678901``) could be decided differently by
the two. Arguments therefore reach the policy with every number a float64-representable JSON
number:

- a JSON number, or a string holding a plain decimal number (``-?digits[.digits][e±digits]``,
  no sign ``+``, no leading zero, no whitespace), becomes a number;
- an integral value within ±2**53 is an integer (``1000.0`` → ``1000``), one beyond it a float; a value float64 cannot hold exactly is rounded
  *away from zero* to the next float64, so a value just above a threshold stays above it
  (``"1000.0000000000000000001"`` → ``1000.0000000000001``): an "above N" rule errs towards
  asking;
- a value beyond float64's range (``1e400``) and any other string (``"NaN"``, ``"inf"``,
  ``"1,000"``, ``"0012"``, ``"+5"``) stays a string, which no numeric rule reads as a number
  (the shipped rules then ask for approval).

Both engines read such a number identically: it is printed as the shortest decimal that
round-trips, an exact decimal for OPA and the same float64 for regorus.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from gateway import dupkeys

MAX_RAW_ARGUMENTS = 8192
_EXACT_INT = 2**53
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
#: A JSON text with a number orjson may have rounded (16+ digits in a row, or an exponent).
_LONG_NUMBER = re.compile(r"[0-9](?:[0-9]{15}|[eE])")  # one leading class: ``re`` skips ahead fast


def parse_arguments(raw: Any) -> Any:
    """Tool-call arguments as the policy sees them; JSON that does not parse (or repeats a
    key: parsers disagree on which value counts) becomes
    ``{"_invalid_json": true, "raw": "<first 8 KiB>"}`` so a rule can still decide."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict | list):
        return normalise_numbers(raw)
    if not isinstance(raw, str):
        return {"_invalid_json": True, "raw": str(raw)[:MAX_RAW_ARGUMENTS]}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {"_invalid_json": True, "raw": raw[:MAX_RAW_ARGUMENTS]}
    if dupkeys.has_duplicate(raw.encode(), value):
        # {"amount": 5000, "amount": 5}: orjson reads 5, a first-wins executor moves 5000.
        return {"_invalid_json": True, "raw": raw[:MAX_RAW_ARGUMENTS]}
    if _LONG_NUMBER.search(raw) is not None:
        # orjson rounded long numbers to nearest; read them exactly to round away from zero.
        import json

        value = json.loads(raw, parse_float=Decimal, parse_constant=str)
    return normalise_numbers(value)


def normalise_numbers(value: Any) -> Any:
    """``value`` with every number and numeric string in the form described above."""
    kind = type(value)
    if kind is dict:
        return {k: normalise_numbers(v) for k, v in value.items()}
    if kind is str:
        return _from_string(value) if value and value[-1] in "0123456789" else value
    if kind is float:
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() and abs(value) <= _EXACT_INT else value
    if kind is int:
        return value if -_EXACT_INT <= value <= _EXACT_INT else _to_float(Decimal(value), str(value))
    if kind is list:
        return [normalise_numbers(v) for v in value]
    if kind is Decimal:
        return _to_float(value, str(value))
    return value  # None, bool


def _from_string(text: str) -> Any:
    if len(text) > 400 or _NUMBER.fullmatch(text) is None:
        return text
    try:
        exact = Decimal(text)
    except InvalidOperation:
        return text
    if "." not in text and "e" not in text and "E" not in text and abs(exact) <= _EXACT_INT:
        return int(text)
    return _to_float(exact, text)


def _to_float(exact: Decimal, text: str) -> Any:
    """The float64 nearest ``exact``, or the next one away from zero when the number it
    prints as (its shortest round-trip decimal, what OPA reads) is smaller in magnitude."""
    nearest = float(exact)
    if not math.isfinite(nearest):
        return text
    if abs(Decimal(repr(nearest))) < abs(exact):
        nearest = math.nextafter(nearest, math.inf if exact > 0 else -math.inf)
        if not math.isfinite(nearest):
            return text
    if nearest.is_integer() and abs(nearest) <= _EXACT_INT:
        return int(nearest)
    return nearest
