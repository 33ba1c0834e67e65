"""Test doubles of the limits tests, importable by module path (a ``conftest`` is not: with
several test directories in one run, ``from conftest import ...`` picks whichever came first)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a round instant, so window arithmetic is readable


class FakeClock:
    """An injectable clock (seconds); both stores take their time from it in tests."""

    def __init__(self, t: float = T0 + 3600) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


StoreFactory = Callable[..., Any]
