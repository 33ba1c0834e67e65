"""Subscribers to the approval change feed (the admin SSE stream), bounded per subscriber.

Each subscriber gets a queue of ``(kind, approval)``; ``None`` marks the end of its feed. A
subscriber that falls ``QUEUE_SIZE`` changes behind is dropped (and told so) rather than
letting its queue grow: a stalled admin client must not hold memory for every change.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from gateway.approvals.model import Approval

QUEUE_SIZE = 1000

Feed = asyncio.Queue[tuple[str, Approval] | None]


class Subscribers:
    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: set[Feed] = set()

    def subscribe(self) -> Feed:
        queue: Feed = asyncio.Queue(maxsize=QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: Feed) -> None:
        self._queues.discard(queue)

    def publish(self, kind: str, approval: Approval) -> None:
        for queue in list(self._queues):
            if not _offer(queue, (kind, approval)):
                self._queues.discard(queue)
                _offer_end(queue)

    def end_all(self) -> None:
        """The service is closing: every feed ends."""
        for queue in list(self._queues):
            _offer(queue, None)


def _offer(queue: asyncio.Queue[Any], item: Any) -> bool:
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        return False


def _offer_end(queue: asyncio.Queue[Any]) -> None:
    """Tell a subscriber that fell behind that its feed ended (make room for the marker)."""
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    _offer(queue, None)
