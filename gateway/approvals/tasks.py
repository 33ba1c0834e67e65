"""Stopping background tasks reliably, and noticing a cancellation a library swallowed.

Why this exists: measured here, redis-py 8.1's asyncio client swallows a ``CancelledError``
that lands while a command is in flight in more than half of the attempts (the command
returns normally and the task carries on, still marked as cancelling; see
redis/redis-py#2028 for the same class of bug). A loop that relies on ``task.cancel()``
alone may then never stop, and a request whose client went away may keep waiting. So loops
also check a flag, ``stop`` cancels until the task is really done, and long waits call
``raise_if_cancelling`` after each Redis call.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("wardgate.approvals")


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that was requested but swallowed on the way."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop(task: asyncio.Task[object] | None, attempts: int = 50) -> None:
    """Cancel ``task`` and wait for it to end, cancelling again if a cancel was swallowed."""
    if task is None:
        return
    for _ in range(attempts):
        if task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if not task.done():
        log.error("background task %s did not stop after %d cancellations", task.get_name(), attempts)
        return
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s had failed: %r", task.get_name(), task.exception())
