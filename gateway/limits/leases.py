"""``LeaseKeeper``: keeps the leases of this worker's calls in flight alive.

A reservation holds its budgets under a lease (``limits.lease_s``) so that a crashed worker's
reservations are released by themselves. A call that outlives the lease (a long stream, a
call held for human approval) would lose its hold, and the budget could be promised twice.
So each worker renews the leases of the reservations it still holds every ``lease_s / 3``,
in one store operation per store (one Redis round trip for all of them), and stops renewing
a reservation once it is settled. If the worker dies, renewal stops with it and the leases
lapse as designed.

One keeper per ``LimitsService`` (the app's lifespan); the task starts with the first lease
and is cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.limits.store import LimitStore, Reservation, StoreError

log = logging.getLogger("wardgate.limits")

#: Maps a reservation's ``store`` name to the store holding it (the shared one, or ``local``).
StoreOf = Callable[[Reservation], LimitStore]


class LeaseKeeper:
    def __init__(self, lease_s: float, store_of: StoreOf) -> None:
        self.interval_s = lease_s / 3
        self._store_of = store_of
        self._held: dict[str, Reservation] = {}
        self._task: asyncio.Task[None] | None = None
        #: Renewal rounds that failed (the next round retries; two misses still leave a margin).
        self.failures = 0

    def hold(self, res: Reservation) -> None:
        """Keep ``res``'s lease alive until ``release``."""
        if not res.has_lease:
            return
        self._held[res.rid] = res
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wardgate-lease-renewal")

    def release(self, res: Reservation) -> None:
        self._held.pop(res.rid, None)

    def __len__(self) -> int:
        return len(self._held)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.renew_once()

    async def renew_once(self) -> int:
        """Renew every held lease now; return how many reservations were still held."""
        if not self._held:
            return 0
        by_store: dict[int, tuple[LimitStore, list[Reservation]]] = {}
        for res in self._held.values():
            store = self._store_of(res)
            by_store.setdefault(id(store), (store, []))[1].append(res)
        held = 0
        for store, group in by_store.values():
            try:
                held += await store.renew(group)
            except StoreError as exc:
                self.failures += 1
                log.warning(
                    "limits: lease renewal of %d calls failed (retrying in %.0f s): %s",
                    len(group),
                    self.interval_s,
                    exc,
                )
        return held

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._held.clear()
