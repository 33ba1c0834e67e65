"""Lease renewal: a call that outlives ``limits.lease_s`` keeps its budget hold while in flight."""

from __future__ import annotations

import asyncio

from limits_helpers import TEAM, forwarded, make_call, make_service, request, reserve, scopes, settle

from gateway.call import Usage
from gateway.limits.stage import LimitStage
from gateway.limits.store import RESERVATION, LimitStore, usd_to_nano
from tests.limits.limits_support import FakeClock, StoreFactory


async def test_renewed_lease_outlives_its_ttl_and_keeps_the_budget_held(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=0.0015)
    _, res = await reserve(store, request(specs, est_usd=0.001))
    assert res is not None
    for _ in range(3):  # 24 s in all, renewed every 8 s: more than twice the lease
        clock.advance(8)
        assert await store.renew([res]) == 1
    second, _ = await reserve(store, request(specs, est_usd=0.001))
    assert not second.ok and second.denial is not None and second.denial.reason == "reserved"
    settled = await store.settle(res, usd_to_nano(0.0009), 10)
    assert settled.applied and not settled.late
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0


async def test_lapsed_or_settled_leases_are_not_renewed(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=1.0)
    _, lapsed = await reserve(store, request(specs))
    _, settled = await reserve(store, request(specs))
    assert lapsed is not None and settled is not None
    await store.settle(settled, 0, 0)
    clock.advance(11)
    assert await store.renew([lapsed, settled]) == 0
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0  # the lapsed hold is gone


async def test_one_renewal_covers_every_team_in_flight(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(lease_s=10)
    held = []
    for team in ("acme", "globex"):
        req = request(scopes(key_budget=1.0))
        req.team = team
        _, res = await reserve(store, req)
        assert res is not None
        held.append(res)
    clock.advance(8)
    assert await store.renew(held) == 2
    clock.advance(8)
    for res in held:
        assert (await store.scope_state(res.team, "key", "k1")).reserved_nano == res.est_nano


async def test_worker_renews_its_calls_in_flight_on_a_short_real_lease(make_store: StoreFactory) -> None:
    """Real time, 0.6 s lease (renewed every 0.2 s): a 1.5 s call keeps its hold and settles on time."""
    store: LimitStore = await make_store(clock=None, lease_s=0.6)
    service = make_service(store, {"scopes": {"key": {"budget_usd": {"total": 1.0}}}}, lease_s=0.6)
    call = make_call()
    await LimitStage(service).on_request(call)
    held = RESERVATION.get(call).est_nano
    await asyncio.sleep(1.5)
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == held
    assert len(service.leases) == 1 and service.leases.failures == 0
    await settle(service, forwarded(call, Usage(10, 10)))
    assert len(service.leases) == 0
    assert service.metrics.late_settles._value.get() == 0
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0
    await service.close()
