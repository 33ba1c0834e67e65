"""The limits service: estimate, reserve, settle, and what to do when the store is down.

The stages (stage.py) are thin; this is where a call meets the store. ``reserve`` prices the
call (unknown price: 403), bounds its cost, builds its scopes and makes the one store call;
``begin_settle`` books the real cost from ``call.usage`` and is safe to repeat.

Store failures follow ``limits.on_store_error``: ``deny`` (default) answers 503
``limits_unavailable``; ``local`` decides with an in-process ``MemoryStore`` (limits then hold
per replica, not globally) and ``allow`` lets calls through unlimited. Both degraded modes skip
the shared store for ``store_retry_s`` after a failure (so an outage costs one timeout per
interval, not one per call), count calls in ``wardgate_limits_fallback_total`` and set
``wardgate_limits_degraded``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from gateway.call import Call, Decision, Principal
from gateway.errors import LimitsUnavailable
from gateway.limits.booking import actual_cost, price_unbooked
from gateway.limits.config import LimitsSettings
from gateway.limits.estimate import fingerprint, output_upper_bound, prompt_upper_bound
from gateway.limits.headers import (
    budget_remaining_nano,
    denial_error,
    format_usd,
    rate_headers,
    reprice_error,
)
from gateway.limits.leases import LeaseKeeper
from gateway.limits.metrics import LimitsMetrics
from gateway.limits.pricing import Price, PriceBook, UnknownPrice
from gateway.limits.rules import LimitRules
from gateway.limits.store import (
    LimitStore,
    Reservation,
    ReserveRequest,
    ReserveResult,
    SettleResult,
    StoreError,
    nano_to_usd,
)
from gateway.models import ModelCatalog

if TYPE_CHECKING:
    from gateway.limits.admin import LimitsAdmin

log = logging.getLogger("wardgate.limits")

ANONYMOUS = Principal(key_id="anonymous", team="default")
_OUTCOMES = {
    "loop": "loop_detected",
    "calls": "run_call_limit",
    "budget": "budget_exceeded",
    "too_large": "request_too_large",
    "requests": "rate_limited",
    "tokens": "rate_limited",
    "reserved": "budget_reserved",
    "concurrent": "concurrency_limit",
}
_SETTLE_RETRIES = (0.2, 1.0, 5.0)
_DISBELIEVED = frozenset({"usage_negative", "usage_non_numeric", "usage_absurd"})


class LimitsService:
    def __init__(
        self,
        settings: LimitsSettings,
        store: LimitStore,
        rules: LimitRules,
        prices: PriceBook,
        models: ModelCatalog,
        metrics: LimitsMetrics,
        *,
        local: LimitStore | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.local = local
        self.rules = rules
        self.prices = prices
        self.models = models
        self.metrics = metrics
        self._down_until = 0.0
        self._last_error: str | None = None
        self._retries: set[asyncio.Task[None]] = set()
        self._models_cache: dict[str, tuple[float, tuple[list[Price], int | None, int | None]]] = {}
        self._timers = {
            (op, s.name): metrics.store_seconds.labels(op, s.name)
            for op in ("reserve", "settle")
            for s in (store, local)
            if s is not None
        }
        #: Reservation ids: a random per-instance prefix and a counter (unique across replicas
        #: without a syscall per call).
        self._rid_prefix = os.urandom(8).hex()
        self._rid_seq = itertools.count(1)
        #: Renews the leases of this worker's calls in flight.
        self.leases = LeaseKeeper(settings.lease_s, self._store_of)
        #: The admin operations (set by ``setup``; they need the key store).
        self.admin: LimitsAdmin | None = None

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

    # -- reserve ---------------------------------------------------------------------------

    def _model_info(self, model: str) -> tuple[list[Price], int | None, int | None]:
        """(prices, context window, max output) of a model; cached for a minute (prices can be dated)."""
        now = time.monotonic()
        hit = self._models_cache.get(model)
        if hit is not None and hit[0] > now:
            return hit[1]
        entry = self.models.get(model)
        upstream = tuple(d.model for d in entry.deployments) if entry else ()
        prices: list[Price] = self.prices.for_request(model, upstream)
        windows = [p.context_window for p in prices]
        context = max(windows) if windows and all(windows) else None  # type: ignore[type-var]  # all() above excluded None
        model_max = entry.max_output_tokens if entry and entry.max_output_tokens else None
        if model_max is None:
            maxima = [p.max_output_tokens for p in prices]
            model_max = max(maxima) if maxima and all(maxima) else None  # type: ignore[type-var]  # all() above excluded None
        if len(self._models_cache) > 1024:
            self._models_cache.clear()
        self._models_cache[model] = (now + 60.0, (prices, context, model_max))
        return prices, context, model_max

    def _estimate(self, call: Call, model: str) -> tuple[int, int, int]:
        """(input token bound, output token bound, cost bound in nano-USD) of ``call`` sent to
        ``model``; may edit call.body (an enforced output bound)."""
        prices, context, model_max = self._model_info(model)
        cfg = self.settings.estimate
        prompt = prompt_upper_bound(call, cfg, context)
        output = output_upper_bound(call, cfg, model_max)
        return prompt, output, max(p.cost_nano(prompt, output) for p in prices)

    async def reserve(self, call: Call) -> None:
        principal = call.principal or ANONYMOUS
        try:
            prompt, output, est_nano = self._estimate(call, call.model)
        except UnknownPrice as exc:
            call.decisions.append(
                Decision(
                    "limit", "request", "deny", [exc.message], detail={"code": exc.code, "rule": exc.code}
                )
            )
            raise
        scopes, team_index, run_index = self.rules.scopes_for(call, principal)
        max_calls, max_identical, max_run_cost = self.rules.run_guard_limits(principal.team)
        req = ReserveRequest(
            team=principal.team,
            rid=f"{self._rid_prefix}{next(self._rid_seq):x}",
            scopes=scopes,
            est_nano=est_nano,
            est_tokens=prompt + output,
            run_index=run_index,
            team_index=team_index,
            max_calls=max_calls,
            max_identical=max_identical,
            max_run_cost_nano=max_run_cost,
            fingerprint=fingerprint(call, self.settings.estimate.fingerprint_messages)
            if run_index >= 0
            else None,
        )
        estimate_usd = nano_to_usd(est_nano)
        state: dict[str, Any] = {
            "estimate": {"input_tokens": prompt, "output_tokens": output, "usd": estimate_usd},
            "reserved_usd": 0.0,
            "store": None,
        }
        call.state["limits"] = state
        try:
            store, result = await self._reserve(req)
        except LimitsUnavailable as exc:
            call.decisions.append(
                Decision(
                    "limit", "request", "error", [exc.message], detail={"code": exc.code, "rule": exc.code}
                )
            )
            raise
        if result is not None:
            self._count_lapsed(result.lapsed_booked_nano)
        if store is None or result is None:  # on_store_error: allow
            state["store"] = "none"
            call.state["cost"] = {"estimate_usd": estimate_usd, "remaining_usd": {}, "budget_usd": {}}
            call.decisions.append(
                Decision("limit", "request", "allow", ["limits store unavailable: allowed"])
            )
            return
        state["store"] = "local" if store is self.local else store.name
        call.state["cost"] = {
            "estimate_usd": estimate_usd,
            "remaining_usd": {
                scopes[b.scope].kind: nano_to_usd(max(b.remaining_nano, 0)) for b in result.budgets
            },
            "budget_usd": {scopes[b.scope].kind: nano_to_usd(b.budget_nano) for b in result.budgets},
        }
        if run_index >= 0:
            call.state["run"] = {
                "calls": result.run_calls,
                "spend_usd": nano_to_usd(result.run_spent_nano),
                "repeats": result.run_repeats,
            }
        if not result.ok and result.denial is not None:
            error = denial_error(result.denial, scopes[result.denial.scope], result, est_nano)
            call.decisions.append(
                Decision(
                    "limit",
                    "request",
                    "deny",
                    [error.message],
                    detail={
                        "code": error.code,
                        "rule": _OUTCOMES[result.denial.reason],
                        "scope": scopes[result.denial.scope].kind,
                    },
                )
            )
            raise error
        res = call.state["reservation"] = Reservation(
            principal.team,
            req.rid,
            scopes,
            result.flags,
            est_nano,
            req.est_tokens,
            result.now_ms,
            state["store"],
            model=call.model,
            run_index=run_index,
            team_index=team_index,
            max_run_cost_nano=req.max_run_cost_nano,
        )
        self.leases.hold(res)
        state["reserved_usd"] = estimate_usd
        headers = rate_headers(result)
        remaining = budget_remaining_nano(result, est_nano, reserved=True)
        if remaining is not None:
            headers["x-wardgate-budget-remaining"] = format_usd(remaining)
        call.response_headers.update(headers)
        call.decisions.append(Decision("limit", "request", "allow", detail={"estimate_usd": estimate_usd}))

    def _count_lapsed(self, nano: int) -> None:
        """Every store operation that purges lapsed leases (reserve, re-price) reports what it
        booked of them: all of it goes to ``wardgate_limits_lapsed_booked_usd``."""
        if nano:
            self.metrics.lapsed_booked.inc(nano_to_usd(nano))
            log.warning(
                "limits: $%.6f of lapsed reservations (a dead worker's calls) booked as spent",
                nano_to_usd(nano),
            )

    def _store_of(self, res: Reservation) -> LimitStore:
        return self.local if res.store == "local" and self.local is not None else self.store

    # -- re-price (the model changed after the reservation) --------------------------------

    async def reprice(self, call: Call) -> None:
        """Hold the budgets to the model the call is actually forwarded to.

        A request policy may route the call to another model after ``reserve`` priced it. If
        the routed model costs more, the difference is reserved on every budget (all or
        nothing; 429 budget_exceeded when one cannot cover it); if it costs less, the
        difference is released at once instead of at settle.
        """
        res = call.state.get("reservation")
        if not isinstance(res, Reservation) or res.settled:
            return
        routed = call.body.get("model")
        if not isinstance(routed, str) or not routed or routed == res.model:
            return
        try:
            prompt, output, est_nano = self._estimate(call, routed)
        except UnknownPrice as exc:
            call.decisions.append(
                Decision(
                    "limit",
                    "request",
                    "deny",
                    [exc.message],
                    detail={"code": exc.code, "rule": exc.code, "routed_model": routed},
                )
            )
            raise
        old_nano, asked = res.est_nano, res.model
        if est_nano != old_nano:
            try:
                result = await self._store_of(res).reprice(res, est_nano)
            except StoreError as exc:
                self.metrics.store_errors.labels("reprice").inc()
                log.error("limits store failed on re-price of %s: %s", res.rid, exc)
                if self.settings.on_store_error == "deny":
                    raise LimitsUnavailable(
                        "The limits store is unavailable, so this call's routed model cannot be checked "
                        "against its budgets (limits.on_store_error = deny).",
                        headers={"retry-after": "1"},
                    ) from exc
                return  # degraded modes keep the original reservation
            self._count_lapsed(result.lapsed_booked_nano)
            if not result.ok and result.denial is not None:
                spec = res.scopes[result.denial.scope]
                error = reprice_error(result.denial, spec, asked, routed, old_nano, est_nano)
                call.decisions.append(
                    Decision(
                        "limit",
                        "request",
                        "deny",
                        [error.message],
                        detail={
                            "code": error.code,
                            "rule": _OUTCOMES[result.denial.reason],
                            "scope": spec.kind,
                            "routed_model": routed,
                        },
                    )
                )
                raise error
            res.est_nano = est_nano
            res.booked_nano = result.booked_nano
            if result.remaining_nano is not None:
                call.response_headers["x-wardgate-budget-remaining"] = format_usd(
                    max(result.remaining_nano, 0)
                )
        res.model = routed
        estimate_usd = nano_to_usd(est_nano)
        state = call.state["limits"]
        state["estimate"] = {"input_tokens": prompt, "output_tokens": output, "usd": estimate_usd}
        state["reserved_usd"] = estimate_usd
        call.state["cost"]["estimate_usd"] = estimate_usd
        call.decisions.append(
            Decision(
                "limit",
                "request",
                "allow",
                detail={
                    "estimate_usd": estimate_usd,
                    "repriced_from_usd": nano_to_usd(old_nano),
                    "routed_model": routed,
                },
            )
        )

    async def _reserve(self, req: ReserveRequest) -> tuple[LimitStore | None, ReserveResult | None]:
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

    # -- settle ----------------------------------------------------------------------------

    def begin_settle(self, call: Call) -> Awaitable[None] | None:
        """Book the call's real cost: the store has the settle when this returns (see
        ``LimitStore.begin_settle``); the awaitable, if any, takes its reply and must be
        awaited (it times the store, counts late settles and retries a failed settle)."""
        res = call.state.get("reservation")
        if not isinstance(res, Reservation):
            price_unbooked(call, self.prices)
            return None
        if res.settled:
            return None
        actual_nano, tokens, basis = actual_cost(call, res, self.prices)
        if basis in _DISBELIEVED:
            self.metrics.usage_rejected.labels(basis.removeprefix("usage_")).inc()
            log.warning(
                "usage of call %s not believed (%s): booked at its reservation", call.request_id, basis
            )
        res.settled = True
        self.leases.release(res)
        call.cost_usd = nano_to_usd(actual_nano)
        state = call.state.setdefault("limits", {})
        state.update({"settled_usd": call.cost_usd, "settle_basis": basis})
        store = self._store_of(res)
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
        await self.leases.close()
        for task in list(self._retries):
            task.cancel()
        if self._retries:
            await asyncio.gather(*self._retries, return_exceptions=True)
        await self.store.close()
        if self.local is not None:
            await self.local.close()
