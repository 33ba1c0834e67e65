"""Requests held in this process, waiting for their approval to be decided.

One future per waiting request, keyed by approval id. The store's listener (a pub/sub
message in Redis, a direct call in memory) resolves them with the changed record, so a
woken request needs no extra read. A waiter always registers *before* it reads the store,
so a decision landing between the read and the wait is never missed; ``wake_all`` (after a
pub/sub reconnect) makes every waiter re-read instead of trusting a silence that may hide a
lost message.
"""

from __future__ import annotations

import asyncio

from gateway.approvals.model import Approval


class Waiters:
    def __init__(self) -> None:
        self._futures: dict[str, set[asyncio.Future[Approval | None]]] = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self._futures.values())

    def register(self, approval_id: str) -> asyncio.Future[Approval | None]:
        future: asyncio.Future[Approval | None] = asyncio.get_running_loop().create_future()
        self._futures.setdefault(approval_id, set()).add(future)
        return future

    def discard(self, approval_id: str, future: asyncio.Future[Approval | None]) -> None:
        waiting = self._futures.get(approval_id)
        if waiting is None:
            return
        waiting.discard(future)
        if not waiting:
            del self._futures[approval_id]

    def notify(self, approval: Approval) -> None:
        """Wake the approval's waiters on any change: a decision, and also a newer identical
        request taking it over (its earlier holder then stops waiting)."""
        for future in self._futures.pop(approval.id, ()):
            if not future.done():
                future.set_result(approval)

    def wake_all(self) -> None:
        waiting, self._futures = self._futures, {}
        for futures in waiting.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)

    async def wait(self, future: asyncio.Future[Approval | None], within_s: float) -> Approval | None:
        """The changed record, or None on timeout or a resync (then re-read the store)."""
        if within_s <= 0:
            return None
        try:
            return await asyncio.wait_for(future, within_s)
        except TimeoutError:
            return None
