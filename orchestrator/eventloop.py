"""One way to run the orchestrator's top-level coroutine: on uvloop where it is installed.

The load generator spends much of its CPU in the event loop (every model call is a socket
write, a read and a handful of task switches), and uvloop does that for less; the CLI, the
load mode's child processes and the benchmark all start their loops here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.run(coro)
    return uvloop.run(coro)
