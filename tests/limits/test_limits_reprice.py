"""Re-pricing a reservation when a policy routes the call to another model after ``limit``."""

from __future__ import annotations

import pytest
from limits_helpers import TEAM, catalog, forwarded, make_call, make_service, request, reserve, scopes, settle

from gateway.call import Call, Usage
from gateway.errors import BudgetExceeded
from gateway.limits.service import LimitsService
from gateway.limits.stage import LimitStage, RepriceStage
from gateway.limits.store import RESERVATION, LimitStore, usd_to_nano

MODELS = catalog("gpt-test", "gpt-test-cheap")


async def test_store_reserves_the_difference_only_if_every_budget_covers_it(store: LimitStore) -> None:
    specs = scopes(key_budget=0.01)
    _, res = await reserve(store, request(specs, est_usd=0.004))
    assert res is not None
    denied = await store.reprice(res, usd_to_nano(0.011))
    assert not denied.ok and denied.denial is not None and denied.denial.reason == "budget"
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == usd_to_nano(0.004)  # unchanged
    moved = await store.reprice(res, usd_to_nano(0.009))
    assert moved.ok and moved.remaining_nano == usd_to_nano(0.001)
    res.est_nano = usd_to_nano(0.009)
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == usd_to_nano(0.009)
    assert (await store.reprice(res, usd_to_nano(0.002))).ok  # cheaper: released at once
    res.est_nano = usd_to_nano(0.002)
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == usd_to_nano(0.002)
    settled = await store.settle(res, usd_to_nano(0.0015), 10)
    assert settled.applied and not settled.late
    state = await store.scope_state(TEAM, "key", "k1")
    assert (state.reserved_nano, state.spent_nano["total"]) == (0, usd_to_nano(0.0015))


async def test_a_reprice_refused_only_by_other_calls_in_flight_says_retry(store: LimitStore) -> None:
    specs = scopes(key_budget=0.01)
    _, res = await reserve(store, request(specs, est_usd=0.004))
    _, other = await reserve(store, request(specs, est_usd=0.005))  # another call in flight
    assert res is not None and other is not None
    held = await store.reprice(res, usd_to_nano(0.008))  # fits the budget, not beside the other hold
    assert not held.ok and held.denial is not None
    assert (held.denial.reason, held.denial.retry_after_ms) == ("reserved", 1000)
    await store.settle(other, usd_to_nano(0.003), 10)  # the other call is booked: now it is final
    final = await store.reprice(res, usd_to_nano(0.008))
    assert not final.ok and final.denial is not None and final.denial.reason == "budget"


def _routed_call(budget_usd: float, store: LimitStore) -> tuple[LimitsService, Call]:
    service = make_service(store, {"scopes": {"key": {"budget_usd": {"total": budget_usd}}}}, models=MODELS)
    call = make_call("gpt-test-cheap")
    return service, call


async def test_policy_route_to_a_pricier_model_reserves_more(store: LimitStore) -> None:
    service, call = _routed_call(1.0, store)
    await LimitStage(service).on_request(call)
    cheap = RESERVATION.get(call).est_nano
    call.body["model"] = "gpt-test"  # what a policy route does
    await RepriceStage(service).on_request(call)
    res = RESERVATION.get(call)
    assert res.model == "gpt-test" and res.est_nano > 10 * cheap
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == res.est_nano
    assert call.limits.reserved_usd == pytest.approx(res.est_nano / 1e9)
    await settle(service, forwarded(call, Usage(100, 10)))
    state = await store.scope_state(TEAM, "key", "k1")
    assert (
        state.reserved_nano == 0 and state.spent_nano["total"] == 100 * 2500 + 10 * 10_000
    )  # gpt-test prices


async def test_policy_route_beyond_the_budget_is_429_budget_exceeded_and_releases_the_hold(
    store: LimitStore,
) -> None:
    service, call = _routed_call(0.001, store)  # covers gpt-test-cheap, not gpt-test
    await LimitStage(service).on_request(call)
    call.body["model"] = "gpt-test"
    with pytest.raises(BudgetExceeded) as err:
        await RepriceStage(service).on_request(call)
    assert err.value.status == 429 and err.value.response_headers()["x-should-retry"] == "false"
    assert "routed this call from model 'gpt-test-cheap' to 'gpt-test'" in err.value.message
    assert err.value.to_dict()["error"]["routed_model"] == "gpt-test"
    await settle(service, call)  # not forwarded: nothing spent
    state = await store.scope_state(TEAM, "key", "k1")
    assert (state.reserved_nano, state.spent_nano["total"]) == (0, 0)


async def test_unrouted_call_is_not_repriced(store: LimitStore) -> None:
    service, call = _routed_call(1.0, store)
    await LimitStage(service).on_request(call)
    decisions = len(call.decisions)
    await RepriceStage(service).on_request(call)
    assert len(call.decisions) == decisions
