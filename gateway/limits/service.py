"""The limits service: estimate, reserve, re-price and settle a call.

The stages (stage.py) are thin; this is where a call meets the store. ``reserve`` prices the
call (unknown price: 403), bounds its cost, builds its scopes and makes the one store call;
``begin_settle`` books the real cost from ``call.usage`` and is safe to repeat.

The bounds of a call come from ``quote.py``; every store call, and what happens when the
store cannot answer (``limits.on_store_error``: deny, allow or local), from
``store_access.py``. This module turns their answers into the call's decisions, state and
headers.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING

from gateway.call import Call, Decision, Principal
from gateway.callstate import Budget, LimitsView, RunTally
from gateway.errors import LimitsUnavailable
from gateway.limits.booking import actual_cost, price_unbooked
from gateway.limits.config import LimitsSettings
from gateway.limits.estimate import fingerprint
from gateway.limits.headers import (
    budget_remaining_nano,
    charge_error,
    denial_error,
    format_usd,
    rate_headers,
    reprice_error,
)
from gateway.limits.leases import LeaseKeeper
from gateway.limits.metrics import LimitsMetrics
from gateway.limits.pricing import PriceBook, UnknownPrice
from gateway.limits.quote import Quotes
from gateway.limits.rules import LimitRules
from gateway.limits.store import (
    RESERVATION,
    LimitStore,
    Reservation,
    ReserveRequest,
    nano_to_usd,
    usd_to_nano,
)
from gateway.limits.store_access import StoreAccess
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
        self._stores = StoreAccess(settings, store, local, metrics)
        self._quotes = Quotes(prices, models, settings)
        #: Reservation ids: a random per-instance prefix and a counter (unique across replicas
        #: without a syscall per call).
        self._rid_prefix = os.urandom(8).hex()
        self._rid_seq = itertools.count(1)
        #: Renews the leases of this worker's calls in flight.
        self.leases = LeaseKeeper(settings.lease_s, self._stores.store_of)
        #: The admin operations (set by ``setup``; they need the key store).
        self.admin: LimitsAdmin | None = None

    # -- status ----------------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self._stores.degraded

    def status(self) -> str:
        return self._stores.status()

    # -- reserve ---------------------------------------------------------------------------

    async def reserve(self, call: Call) -> None:
        principal = call.principal or ANONYMOUS
        try:
            prompt, output, est_nano = self._quotes.estimate(call, call.model)
        except UnknownPrice as exc:
            call.decisions.append(
                Decision(
                    "limit", "request", "deny", [exc.message], detail={"code": exc.code, "rule": exc.code}
                )
            )
            raise
        rules = self.rules  # read once: a reload (limits.yaml) swaps it, a call sees one version
        scopes, team_index, run_index = rules.scopes_for(call, principal)
        max_calls, max_identical, max_run_cost = rules.run_guard_limits(principal.team)
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
        state = call.limits = LimitsView(
            estimate={"input_tokens": prompt, "output_tokens": output, "usd": estimate_usd}
        )
        try:
            store, result = await self._stores.reserve(req)
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
            state.store = "none"
            call.budget = Budget(estimate_usd)
            call.decisions.append(
                Decision("limit", "request", "allow", ["limits store unavailable: allowed"])
            )
            return
        store_name = state.store = self._stores.label(store)
        call.budget = Budget(
            estimate_usd,
            remaining_usd={
                scopes[b.scope].kind: nano_to_usd(max(b.remaining_nano, 0)) for b in result.budgets
            },
            budget_usd={scopes[b.scope].kind: nano_to_usd(b.budget_nano) for b in result.budgets},
        )
        if run_index >= 0:
            call.run = RunTally(result.run_calls, nano_to_usd(result.run_spent_nano), result.run_repeats)
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
        res = Reservation.made(req, result, store_name, call.model)
        RESERVATION.put(call, res)
        self.leases.hold(res)
        state.reserved_usd = estimate_usd
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

    # -- re-price (the model changed after the reservation) --------------------------------

    async def reprice(self, call: Call) -> None:
        """Hold the budgets to the model the call is actually forwarded to.

        A request policy may route the call to another model after ``reserve`` priced it. If
        the routed model costs more, the difference is reserved on every budget (all or
        nothing; 429 budget_exceeded when one cannot cover it); if it costs less, the
        difference is released at once instead of at settle.
        """
        res = RESERVATION.get(call)
        if res is None or res.settled:
            return
        routed = call.body.get("model")
        if not isinstance(routed, str) or not routed or routed == res.model:
            return
        try:
            prompt, output, est_nano = self._quotes.estimate(call, routed)
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
            result = await self._stores.reprice(res, est_nano)
            if result is None:
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
        state = call.limits
        if state is not None:
            state.estimate = {"input_tokens": prompt, "output_tokens": output, "usd": estimate_usd}
            state.reserved_usd = estimate_usd
        if call.budget is not None:
            call.budget = replace(call.budget, estimate_usd=estimate_usd)
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

    # -- a priced action that is not a model call (an MCP tool call) ---------------------

    async def reserve_charge(
        self, principal: Principal, agent_id: str | None, run_id: str | None, usd: float, what: str
    ) -> Reservation | None:
        """Reserve ``usd`` on every budget of the caller (key, team, user, agent, run and their
        combinations; the run's cost cap too), atomically, as ``reserve`` does for a model call
        but without rate, concurrency or run-call counting. None: nothing reserved (the store
        is down and ``on_store_error`` lets calls through). Raises the same errors as a model
        call's reservation: ``BudgetExceeded``, ``RateLimited`` (budget_reserved),
        ``LimitsUnavailable``."""
        scopes, team_index, run_index = self.rules.scopes_of(principal, agent_id, run_id)
        _, _, max_run_cost = self.rules.run_guard_limits(principal.team)
        est_nano = usd_to_nano(usd)
        req = ReserveRequest(
            team=principal.team,
            rid=f"{self._rid_prefix}{next(self._rid_seq):x}",
            scopes=scopes,
            est_nano=est_nano,
            est_tokens=0,
            run_index=run_index,
            team_index=team_index,
            max_run_cost_nano=max_run_cost,
            budget_only=True,
        )
        store, result = await self._stores.reserve(req)
        if store is None or result is None:
            return None
        self._count_lapsed(result.lapsed_booked_nano)
        if not result.ok and result.denial is not None:
            raise charge_error(result.denial, scopes[result.denial.scope], est_nano, what)
        res = Reservation.made(req, result, self._stores.label(store))
        self.leases.hold(res)
        return res

    def settle_charge(self, res: Reservation, usd: float) -> Awaitable[None] | None:
        """Book what the action cost (``usd``: 0 when it did not run) and release its
        reservation; the awaitable takes the store's reply (see ``begin_settle``)."""
        if res.settled:
            return None
        res.settled = True
        self.leases.release(res)
        return self._stores.begin_settle(res, usd_to_nano(usd), 0)

    # -- settle ----------------------------------------------------------------------------

    def begin_settle(self, call: Call) -> Awaitable[None] | None:
        """Book the call's real cost: the store has the settle when this returns (see
        ``LimitStore.begin_settle``); the awaitable, if any, takes its reply and must be
        awaited (it times the store, counts late settles and retries a failed settle)."""
        res = RESERVATION.get(call)
        if res is None:
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
        state = call.limits
        if state is None:
            state = call.limits = LimitsView(estimate={})
        state.settled_usd, state.settle_basis = call.cost_usd, basis
        return self._stores.begin_settle(res, actual_nano, tokens)

    async def close(self) -> None:
        await self.leases.close()
        await self._stores.close()
