"""The expiry sweep: overdue approvals expire even when nobody waits on them.

A hold notices its own approval's expiry, but a deferred one has nobody waiting; the sweep
expires what is due (with the same side effects as any change: audit, metrics), purges
records past ``retention_s`` and refreshes the pending gauge. Every replica runs the loop;
a short store lock makes one replica per interval do the work.
"""

from __future__ import annotations

import asyncio
import logging
import time

from gateway.approvals import rules
from gateway.approvals.config import ApprovalSettings
from gateway.approvals.effects import Effects
from gateway.approvals.model import Clock
from gateway.approvals.store import ApprovalStore
from gateway.approvals.tasks import stop
from gateway.errors import NotFound

log = logging.getLogger("wardgate.approvals")


class Sweeper:
    def __init__(
        self, settings: ApprovalSettings, store: ApprovalStore, effects: Effects, clock: Clock = time.time
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._store = store
        self._effects = effects
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def once(self) -> int:
        """Expire what is overdue; runs on one replica per interval (the others skip)."""
        interval = self._settings.sweep_interval_s
        if not await self._store.try_lock("sweep", max(0.05, interval * 0.9)):
            return 0
        now = self._clock()
        expired = 0
        for approval_id in await self._store.due(now):
            try:
                _, changed = await self._effects.apply(
                    approval_id, rules.expire(rules.EXPIRED, now, only_if_due=True)
                )
            except NotFound:
                continue
            expired += changed
        await self._store.purge(now - self._settings.retention_s)
        return expired

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="approvals-sweeper")

    async def stop(self) -> None:
        self._stopping = True
        await stop(self._task)

    async def _forever(self) -> None:
        while not self._stopping:
            try:
                await self.once()
                await self._effects.count_pending()
            except Exception:  # the sweep must outlive a Redis hiccup
                log.exception("approvals expiry sweep failed; retrying next interval")
            await asyncio.sleep(self._settings.sweep_interval_s)
