"""The documented range of every number a limit or budget can take, checked in one place.

The stores count money in integer nano-USD and the Redis scripts do their arithmetic in Lua
doubles, which hold integers exactly only below 2^53 (and ``string.format('%d')`` overflows
past 2^63). A budget of ``1e10`` USD is 1e19 nano-USD: out of both ranges, it showed as $0
remaining on every call and silently fed the low-budget routing rule. So:

    budgets, run cost caps     0 .. 1,000,000 USD   (1e15 nano-USD: sums of a budget, its spend
                                                     and its reservations stay below 2^53)
    counts (requests/min, tokens/min, run calls, identical requests, concurrent requests)
                               0 .. 2^53 - 1        (whole numbers)

The admin API answers anything else with 400 naming the field (``param``); limits.yaml and
keys.yaml are held to the same ranges when they are loaded. Kept free of app imports:
``gateway.keys.store`` uses it while parsing keys.yaml.
"""

from __future__ import annotations

import math
from typing import Any

MAX_COUNT = 2**53 - 1
MAX_BUDGET_USD = 1_000_000.0


class OutOfRange(ValueError):
    """A value outside its documented range; ``param`` names the field."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_usd(value: Any, param: str) -> float | None:
    """A budget in USD: a finite number in [0, MAX_BUDGET_USD], or None (no limit)."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_BUDGET_USD
    ):
        raise OutOfRange(
            f"'{param}' must be a number of USD from 0 to {MAX_BUDGET_USD:,.0f}, or null.", param
        )
    return float(value)


def check_count(value: Any, param: str) -> int | None:
    """A count: a whole number in [0, MAX_COUNT] (``3.0`` is accepted as 3), or None (no limit)."""
    if value is None:
        return None
    ok = not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
    )
    if not ok or not 0 <= value <= MAX_COUNT:
        raise OutOfRange(
            f"'{param}' must be a whole number from 0 to {MAX_COUNT} (2^53 - 1), or null.", param
        )
    return int(value)


_KEY_LIMITS = {
    "requests_per_minute": "rpm",
    "tokens_per_minute": "tpm",
    "max_concurrent_requests": "concurrent",
}


def check_key_limits(limits: Any, budgets: Any, where: str) -> None:
    """The ``limits:`` and ``budgets:`` of one keys.yaml entry (raises ``OutOfRange``)."""
    if limits:
        if not isinstance(limits, dict):
            raise OutOfRange(f"{where}: 'limits' must be a mapping", "limits")
        for name, value in limits.items():
            if name in _KEY_LIMITS or name in _KEY_LIMITS.values():
                check_count(value, f"{where}.limits.{name}")
    if budgets:
        if not isinstance(budgets, dict):
            raise OutOfRange(f"{where}: 'budgets' must be a mapping", "budgets")
        usd = budgets.get("usd", budgets)
        if not isinstance(usd, dict):
            raise OutOfRange(f"{where}: 'budgets.usd' must be a mapping", "budgets")
        for window, value in usd.items():
            if window in ("day", "month", "total"):
                check_usd(value, f"{where}.budgets.{window}")
