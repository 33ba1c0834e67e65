"""Every store call of the limits service, and what to do when the store cannot answer.

Store failures follow ``limits.on_store_error``: ``deny`` (default) answers 503
``limits_unavailable``; ``local`` decides with an in-process ``MemoryStore`` (limits then hold
per replica, not globally) and ``allow`` lets calls through unlimited. Both degraded modes skip
the shared store for ``store_retry_s`` after a failure (so an outage costs one timeout per
interval, not one per call), count calls in ``wardgate_limits_fallback_total`` and set
``wardgate_limits_degraded``. A settle that fails is retried in the background (settling is
idempotent; the reservation's lease bounds what a lost settle holds).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

from gateway.errors import LimitsUnavailable
from gateway.limits.config import LimitsSettings
from gateway.limits.metrics import LimitsMetrics
from gateway.limits.store import (
    LimitStore,
    RepriceResult,
    Reservation,
    ReserveRequest,
    ReserveResult,
    SettleResult,
    StoreError,
)

log = logging.getLogger("wardgate.limits")

_SETTLE_RETRIES = (0.2, 1.0, 5.0)


class StoreAccess:
    """The shared store, its local fallback (``on_store_error: local``) and the degraded state."""

    def __init__(
        self, settings: LimitsSettings, store: LimitStore, local: LimitStore | None, metrics: LimitsMetrics
    ) -> None:
        self.settings = settings
        self.store = store
        self.local = local
        self.metrics = metrics
        self._down_until = 0.0
        self._last_error: str | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self._timers = {
            (op, s.name): metrics.store_seconds.labels(op, s.name)
            for op in ("reserve", "settle")
            for s in (store, local)
            if s is not None
        }

    # -- status ----------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self._down_until > time.monotonic()

    def status(self) -> str:
        if not self.degraded:
            return "ok"
        return f"degraded ({self.settings.on_store_error}): {self._last_error}"

    def _mark_down(self, error: str) -> None:
        self._last_error = error
        self._down_until = time.monotonic() + self.settings.store_retry_s
        self.metrics.degraded.set(1)

    def _mark_up(self) -> None:
        if self._down_until:
            self._down_until = 0.0
            self.metrics.degraded.set(0)

    def store_of(self, res: Reservation) -> LimitStore:
        """The store that holds ``res`` (the local one when it was made in a degraded mode)."""
        return self.local if res.store == "local" and self.local is not None else self.store

    def label(self, store: LimitStore) -> str:
        """What a reservation records as its store: ``local`` or the store's name."""
        return "local" if store is self.local else store.name

    # -- reserve and re-price --------------------------------------------------------------

    async def reserve(self, req: ReserveRequest) -> tuple[LimitStore | None, ReserveResult | None]:
        """The store's answer and the store that gave it; ``(None, None)``: allowed unchecked."""
        mode = self.settings.on_store_error
        if mode != "deny" and self.degraded:
            return await self._fallback(req, mode)
        t0 = time.perf_counter()
        try:
            result = await self.store.reserve(req)
        except StoreError as exc:
            self.metrics.store_errors.labels("reserve").inc()
            log.error("limits store failed on reserve: %s", exc)
            if mode == "deny":
                raise LimitsUnavailable(
                    "The limits store is unavailable, so this call cannot be checked against its rate "
                    "limits and budgets (limits.on_store_error = deny).",
                    headers={"retry-after": "1"},
                ) from exc
            self._mark_down(str(exc))
            return await self._fallback(req, mode)
        self._timers["reserve", self.store.name].observe(time.perf_counter() - t0)
        self._mark_up()
        return self.store, result

    async def _fallback(
        self, req: ReserveRequest, mode: str
    ) -> tuple[LimitStore | None, ReserveResult | None]:
        self.metrics.fallback.labels(mode).inc()
        if mode == "local" and self.local is not None:
            return self.local, await self.local.reserve(req)
        return None, None

    async def reprice(self, res: Reservation, est_nano: int) -> RepriceResult | None:
        """The store's answer to a re-price; None: it failed in a degraded mode (keep the
        original reservation). In ``deny`` mode a failure is ``LimitsUnavailable``."""
        try:
            return await self.store_of(res).reprice(res, est_nano)
        except StoreError as exc:
            self.metrics.store_errors.labels("reprice").inc()
            log.error("limits store failed on re-price of %s: %s", res.rid, exc)
            if self.settings.on_store_error == "deny":
                raise LimitsUnavailable(
                    "The limits store is unavailable, so this call's routed model cannot be checked "
                    "against its budgets (limits.on_store_error = deny).",
                    headers={"retry-after": "1"},
                ) from exc
            return None

    # -- settle ----------------------------------------------------------------------------

    def begin_settle(self, res: Reservation, actual_nano: int, tokens: int) -> Awaitable[None]:
        """Send the settle now (see ``LimitStore.begin_settle``); the awaitable takes its reply,
        times the store, counts a late settle and retries a failed one in the background."""
        store = self.store_of(res)
        t0 = time.perf_counter()
        return self._settled(
            store, res, actual_nano, tokens, store.begin_settle(res, actual_nano, tokens), t0
        )

    async def _settled(
        self,
        store: LimitStore,
        res: Reservation,
        actual_nano: int,
        tokens: int,
        reply: Awaitable[SettleResult],
        t0: float,
    ) -> None:
        try:
            self._booked(store, res, await reply, t0)
        except StoreError as exc:
            self.metrics.store_errors.labels("settle").inc()
            log.error("limits store failed on settle of %s (retrying in background): %s", res.rid, exc)
            task = asyncio.create_task(self._settle_later(store, res, actual_nano, tokens))
            self._retries.add(task)
            task.add_done_callback(self._retries.discard)

    def _booked(self, store: LimitStore, res: Reservation, result: SettleResult, t0: float) -> None:
        self._timers["settle", store.name].observe(time.perf_counter() - t0)
        if result.late:
            self.metrics.late_settles.inc()
            log.warning("settle of %s came after its lease expired (limits.lease_s too short?)", res.rid)

    async def _settle_later(self, store: LimitStore, res: Reservation, actual_nano: int, tokens: int) -> None:
        """Settle is idempotent, so retrying is safe; the lease bounds what a lost settle holds."""
        for delay in _SETTLE_RETRIES:
            await asyncio.sleep(delay)
            try:
                t0 = time.perf_counter()
                self._booked(store, res, await store.settle(res, actual_nano, tokens), t0)
                return
            except StoreError as exc:
                self.metrics.store_errors.labels("settle").inc()
                log.warning("settle retry of %s failed: %s", res.rid, exc)
        log.error("settle of %s abandoned: its reservation is released when its lease expires", res.rid)

    async def close(self) -> None:
        """Cancel the settle retries and close both stores."""
        for task in list(self._retries):
            task.cancel()
        if self._retries:
            await asyncio.gather(*self._retries, return_exceptions=True)
        await self.store.close()
        if self.local is not None:
            await self.local.close()
