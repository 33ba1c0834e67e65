"""The pending approvals as this process knows them: what the inbox lists, without re-reading
every record from the store on each view.

Loading a thousand pending records from Redis and parsing them cost ~50 ms of CPU per inbox
view (bench/console.py); this view loads them once and then follows the approval change feed
(``ApprovalService.subscribe``: every change, from any replica), applied when the inbox is
next read, so a view costs a filter and a sort of what is in memory. It subscribes before it
loads, so no change between the two is lost. It loads again when its feed ended (it fell
behind while nobody looked, or the service closed) and at least every ``resync_s`` (a pub/sub
message Redis lost between replicas is then forgotten within that time). Only the list comes
from here: a detail page and every decision read the store.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from gateway.approvals.feed import Feed
from gateway.approvals.model import Approval, Status

if TYPE_CHECKING:
    from gateway.approvals.service import ApprovalService


class PendingView:
    def __init__(self, service: ApprovalService, resync_s: float = 30.0) -> None:
        self.service = service
        self.resync_s = resync_s
        self._items: dict[str, Approval] = {}
        self._sorted: list[Approval] | None = None
        self._feed: Feed | None = None
        self._loaded_at = float("-inf")
        self._lock = asyncio.Lock()

    async def approvals(self) -> list[Approval]:
        """The pending approvals not yet overdue, newest first."""
        self._drain()  # first: a feed that ended is known before deciding to load
        if self._feed is None or time.monotonic() - self._loaded_at >= self.resync_s:
            await self._load()
            self._drain()
        if self._sorted is None:
            self._sorted = sorted(self._items.values(), key=lambda a: (a.created_at, a.id), reverse=True)
        now = self.service.now()
        return [a for a in self._sorted if not a.overdue(now)]

    async def _load(self) -> None:
        async with self._lock:
            if self._feed is not None and time.monotonic() - self._loaded_at < self.resync_s:
                return  # another request loaded it meanwhile
            self.close()
            self._feed = self.service.subscribe()
            records = await self.service.pending()
            self._items = {a.id: a for a in records}
            self._sorted = None
            self._loaded_at = time.monotonic()

    def _drain(self) -> None:
        feed = self._feed
        while feed is not None and not feed.empty():
            item = feed.get_nowait()
            if item is None:  # the feed ended: load again next time
                self.close()
                return
            _, approval = item
            if approval.status is Status.PENDING:
                self._items[approval.id] = approval
            else:
                self._items.pop(approval.id, None)
            self._sorted = None

    def close(self) -> None:
        if self._feed is not None:
            self.service.unsubscribe(self._feed)
            self._feed = None
