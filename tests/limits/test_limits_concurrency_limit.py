"""Calls in flight per key (``max_concurrent_requests``): counted atomically inside the one
reserve, freed by settle on every path and by a lapsed lease, on both stores."""

from __future__ import annotations

import asyncio

import pytest
from limits_helpers import TEAM, forwarded, make_call, make_service, request, reserve, settle

from gateway.call import Usage
from gateway.errors import RateLimited, UpstreamError
from gateway.limits.stage import LimitStage
from gateway.limits.store import LimitStore, ScopeSpec
from tests.limits.limits_support import FakeClock, StoreFactory


def _specs(
    concurrent: int | None = 2, budget: tuple[int | None, int | None, int | None] = (None, None, None)
) -> tuple[ScopeSpec, ...]:
    return (ScopeSpec("key", "k1", budget_nano=budget, concurrent=concurrent), ScopeSpec("team", TEAM))


async def test_calls_beyond_the_limit_in_flight_are_refused_until_one_settles(store: LimitStore) -> None:
    held = [await reserve(store, request(_specs())) for _ in range(2)]
    assert all(r.ok for r, _ in held)
    third, _ = await reserve(store, request(_specs()))
    assert not third.ok and third.denial is not None
    assert (third.denial.reason, third.denial.limit, third.denial.retry_after_ms) == ("concurrent", 2, 1000)
    await store.settle(held[0][1], 0, 0)  # type: ignore[arg-type]
    fourth, _ = await reserve(store, request(_specs()))
    assert fourth.ok


async def test_200_concurrent_reserves_admit_exactly_the_limit(store: LimitStore) -> None:
    results = await asyncio.gather(*(store.reserve(request(_specs(concurrent=7))) for _ in range(200)))
    assert sum(r.ok for r in results) == 7


async def test_a_dead_workers_slot_frees_when_its_lease_lapses(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    await reserve(store, request(_specs(concurrent=1)))
    assert not (await reserve(store, request(_specs(concurrent=1))))[0].ok
    clock.advance(11)
    assert (await reserve(store, request(_specs(concurrent=1))))[0].ok


async def test_a_runtime_override_sets_and_lifts_the_limit(store: LimitStore) -> None:
    await store.set_override(TEAM, "key", "k1", "limits", {"concurrent": 1})
    await reserve(store, request(_specs(concurrent=None)))
    assert not (await reserve(store, request(_specs(concurrent=None))))[0].ok
    await store.set_override(TEAM, "key", "k1", "limits", {"concurrent": None})  # null: no limit
    assert (await reserve(store, request(_specs(concurrent=1))))[0].ok


async def test_a_concurrency_refusal_is_429_with_retry_headers(store: LimitStore) -> None:
    service = make_service(store, {"scopes": {"key": {"max_concurrent_requests": 1}}})
    await LimitStage(service).on_request(make_call())
    with pytest.raises(RateLimited) as err:
        await LimitStage(service).on_request(make_call())
    headers = err.value.response_headers()
    assert err.value.status == 429 and err.value.code == "concurrency_limit_exceeded"
    assert headers["retry-after"] == "1" and headers["x-should-retry"] == "true"
    assert "at most 1 calls in flight" in err.value.message


@pytest.mark.parametrize("ending", ["answered", "upstream_error", "not_forwarded"])
async def test_the_slot_is_released_however_the_call_ends(store: LimitStore, ending: str) -> None:
    service = make_service(store, {"teams": {TEAM: {"scopes": {"key": {"max_concurrent_requests": 1}}}}})
    for _ in range(3):  # one slot, three calls one after another: each frees it
        call = make_call()
        await LimitStage(service).on_request(call)
        if ending == "answered":
            forwarded(call, Usage(10, 5))
        elif ending == "upstream_error":
            forwarded(call, None).upstream_status = 500
            call.error = UpstreamError("provider failed")
        await settle(service, call)
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0


async def test_a_budget_and_a_concurrency_limit_on_one_scope_share_its_lease(store: LimitStore) -> None:
    specs = _specs(concurrent=1, budget=(None, None, 10**9))
    first, res = await reserve(store, request(specs, est_usd=0.1))
    denied, _ = await reserve(store, request(specs, est_usd=0.1))
    assert first.ok and not denied.ok and denied.denial is not None and denied.denial.reason == "concurrent"
    await store.settle(res, 50_000_000, 10)  # type: ignore[arg-type]
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.reserved_nano == 0 and st.spent_nano["total"] == 50_000_000


def test_limits_yaml_refuses_a_concurrency_limit_out_of_range() -> None:
    from pydantic import ValidationError

    from gateway.limits.rules import LimitsFile

    for bad in (-1, 2**53, 1.5, "8", True):
        with pytest.raises(ValidationError):
            LimitsFile.model_validate({"scopes": {"key": {"max_concurrent_requests": bad}}})
    assert LimitsFile.model_validate({"scopes": {"key": {"max_concurrent_requests": 8}}})
