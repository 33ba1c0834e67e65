"""Requests held in this process, waiting for their approval to be decided.

One future per waiting request, keyed by approval id. The store's listener (a pub/sub
message in Redis, a direct call in memory) resolves them with the changed record, so a
woken request needs no extra read. A waiter always registers *before* it reads the store,
so a decision landing between the read and the wait is never missed; ``wake_all`` (after a
pub/sub reconnect) makes every waiter re-read instead of trusting a silence that may hide a
lost message. ``while_connected`` ends a hold whose client went away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from gateway.approvals.model import Approval
from gateway.call import Call


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


async def while_connected(call: Call, waiting: Coroutine[Any, Any, Approval]) -> Approval:
    """Await a hold unless the client goes first. A client that went away must not redeem its
    approval: nobody would read the answer, and the single use would be spent. So the hold
    stops (the approval stays as it is: pending, or decided and unused, for the re-send with
    ``X-Wardgate-Approval-Id``) and ``ClientDisconnected`` ends the call (settled, audited).
    A decision and a disconnect seen together count as the disconnect."""
    if call.until_disconnect is None:  # not a live HTTP request, or a stream's relay guards it
        return await waiting
    hold = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(call.until_disconnect())
    try:
        await asyncio.wait((hold, gone), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        hold.cancel()
        gone.cancel()
        raise
    if not gone.done():
        gone.cancel()
        return hold.result()
    hold.cancel()  # a cancelled wait changes nothing (ApprovalService.wait)
    await asyncio.gather(hold, return_exceptions=True)
    gone.result()  # raises ClientDisconnected
    raise AssertionError("until_disconnect returned without the client going away")
