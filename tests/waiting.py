"""Waiting in tests without betting on the wall clock.

- ``wait_until`` / ``wait_until_async``: poll a condition until it holds, failing with a clear
  message after ``within`` seconds. The timeout is a ceiling, never the expected duration: a
  test returns as soon as the condition holds, so a slow (or busy, parallel) machine makes it
  slower, not flaky.
- ``FakeClock``: a clock a test advances, for code that takes one (approvals' TTLs and expiry,
  lock leases): time passes when the test says so, not while it sleeps.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], within: float = 10.0, interval: float = 0.01, message: str = ""
) -> T:
    """The first truthy value of ``predicate()``; ``TimeoutError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not reached within {within} s")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    within: float = 10.0,
    interval: float = 0.01,
    message: str = "",
) -> T:
    """``wait_until`` on the event loop; ``predicate`` may be a coroutine function."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]  # awaited above when it was awaitable
        if time.monotonic() > deadline:
            raise TimeoutError(message or f"condition not reached within {within} s")
        await asyncio.sleep(interval)


class FakeClock:
    """Seconds since the epoch, moved only by ``advance`` (starts at the real time)."""

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
