"""A reservation whose worker died is booked at the reserved amount when its lease lapses.

The call may have reached the provider (and been billed) before the worker died, so by default
(``limits.expired_reservations: book``) the lapsed hold becomes spend; a settle arriving after
all (the worker was only cut off from the store) books just what it cost beyond that. Both
stores, the same clock; then a real service whose lease keeper stops, as a killed replica's does.
"""

from __future__ import annotations

import pytest
from limits_helpers import TEAM, catalog, forwarded, make_call, make_service, request, reserve, scopes, settle

from gateway.call import Usage
from gateway.limits.memory import MemoryStore
from gateway.limits.redis_store import RedisStore
from gateway.limits.stage import LimitStage, RepriceStage
from gateway.limits.store import RESERVATION, LimitStore, nano_to_usd, usd_to_nano
from tests.limits.limits_support import FakeClock, StoreFactory
from tests.waiting import wait_until_async


async def test_a_lapsed_lease_is_booked_as_spent_and_a_late_settle_books_only_the_excess(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=0.01)
    _, crashed = await reserve(store, request(specs, est_usd=0.004))
    assert crashed is not None
    clock.advance(11)  # the worker died: nobody renews the lease
    after, res = await reserve(store, request(specs, est_usd=0.004))
    assert after.ok and res is not None
    assert min(b.remaining_nano for b in after.budgets) == usd_to_nano(
        0.006
    )  # 0.004 booked, before this call
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.spent_nano == {
        "day": usd_to_nano(0.004),
        "month": usd_to_nano(0.004),
        "total": usd_to_nano(0.004),
    }
    assert st.reserved_nano == usd_to_nano(0.004)  # only the live call
    # The cut-off worker's settle comes after all: cheaper than reserved, so nothing more is due.
    late = await store.settle(crashed, usd_to_nano(0.001), 10)
    assert late.applied and late.late
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == usd_to_nano(0.004)
    # Settled twice? Idempotent as ever.
    assert not (await store.settle(crashed, usd_to_nano(0.001), 10)).applied


async def test_a_late_settle_costing_more_than_its_lapsed_reservation_books_the_difference(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=1.0)
    _, crashed = await reserve(store, request(specs, est_usd=0.004))
    assert crashed is not None
    clock.advance(11)
    await reserve(store, request(specs, est_usd=0.001))  # any operation on the scope lapses the lease
    await store.settle(crashed, usd_to_nano(0.005), 10)
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == usd_to_nano(0.005)


async def test_the_admin_view_counts_a_lapsed_lease_as_spent_before_anything_purges_it(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    _, crashed = await reserve(store, request(scopes(key_budget=1.0), est_usd=0.004))
    assert crashed is not None
    clock.advance(11)
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.reserved_nano == 0 and st.spent_nano["total"] == usd_to_nano(0.004)


async def test_release_mode_frees_a_lapsed_lease_unbooked(make_store: StoreFactory, clock: FakeClock) -> None:
    store = await make_store(lease_s=10, expired="release")
    specs = scopes(key_budget=0.01)
    await reserve(store, request(specs, est_usd=0.004))
    clock.advance(11)
    after, _ = await reserve(store, request(specs, est_usd=0.004))
    assert min(b.remaining_nano for b in after.budgets) == usd_to_nano(0.01)
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == 0


async def test_a_killed_replicas_calls_in_flight_are_booked_at_their_reservation(
    make_store: StoreFactory,
) -> None:
    """Real time: replica A reserves two calls and dies (its lease keeper stops, nothing is
    settled); within its 0.5 s lease replica B sees the hold, after it the spend."""
    store: LimitStore = await make_store(clock=None, lease_s=0.5)
    limits = {"scopes": {"key": {"budget_usd": {"total": 1.0}}}}
    replica_a = make_service(store, limits, lease_s=0.5)
    replica_b = make_service(store, limits, lease_s=0.5)
    calls = [make_call(), make_call()]
    for call in calls:
        await LimitStage(replica_a).on_request(call)
    held = sum(RESERVATION.get(call).est_nano for call in calls)
    await replica_a.leases.close()  # the replica is gone: no renewal, no settle
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == held

    async def booked() -> bool:
        return (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == held

    await wait_until_async(booked)
    survivor = make_call()
    await LimitStage(replica_b).on_request(survivor)  # purges the lapsed leases: booked for good
    assert replica_b.metrics.lapsed_booked._value.get() == nano_to_usd(held)  # what crashes cost, in a metric
    await settle(replica_b, forwarded(survivor, Usage(10, 10)))
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.reserved_nano == 0 and st.spent_nano["total"] > held
    await replica_b.close()


async def _marks(store: LimitStore) -> list[str]:
    """The lapsed-lease marks ('x:<rid>' fields) in scope key:k1's hash."""
    if isinstance(store, RedisStore):
        fields = await store._redis.hkeys(store.keys.scope(TEAM, "key", "k1") + ":h")
    else:
        assert isinstance(store, MemoryStore)
        fields = list(store._scopes[TEAM, "key:k1"].h)
    return [f for f in fields if f.startswith("x:")]


async def test_the_marks_of_lapsed_leases_are_pruned_so_the_scope_does_not_grow(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """A dead worker's call never settles: its mark must not stay for ever. 200 calls lapse,
    10 at a time, one round every 11 s (2,200 s, the marks are kept 30 s): the hash holds at
    most the last few rounds' marks, never the 200."""
    store = await make_store(lease_s=10, settled_ttl_s=30)
    specs = scopes(key_budget=1000.0)
    most = 0
    for _ in range(20):
        for _ in range(10):
            await reserve(store, request(specs, est_usd=0.001))
        clock.advance(11)
        most = max(most, len(await _marks(store)))
    assert 10 <= most <= 50  # 30 s to 37.5 s of marks: 3 or 4 rounds of 10
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == usd_to_nano(0.2)
    for _ in range(2):  # nobody crashes any more: every mark goes
        clock.advance(60)
        _, probe = await reserve(store, request(specs, est_usd=0.001))
        assert probe is not None
        await store.settle(probe, 0, 0)
    assert await _marks(store) == []


async def test_a_settle_after_its_mark_was_pruned_books_its_whole_cost_again(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Past the marks' lifetime the gateway can no longer tell what was booked: it books the
    settle in full (over, never under, what the provider may have billed)."""
    store = await make_store(lease_s=10, settled_ttl_s=30)
    specs = scopes(key_budget=1.0)
    _, crashed = await reserve(store, request(specs, est_usd=0.004))
    assert crashed is not None
    clock.advance(11)
    marks = []
    for _ in range(2):  # the first lapses and marks it, the second (60 s later) prunes the mark
        _, probe = await reserve(store, request(specs, est_usd=0.001))
        assert probe is not None
        marks.append(len(await _marks(store)))
        await store.settle(probe, 0, 0)
        clock.advance(60)
    assert marks == [1, 0]
    await store.settle(crashed, usd_to_nano(0.003), 10)
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == usd_to_nano(0.007)


async def _spent_reserved(store: LimitStore) -> tuple[int, int]:
    st = await store.scope_state(TEAM, "key", "k1")
    return st.spent_nano["total"], st.reserved_nano


@pytest.mark.parametrize("lapsed_by", ["reserve", "reprice"])
async def test_a_reprice_after_a_booked_lapse_holds_and_books_only_the_difference(
    make_store: StoreFactory, clock: FakeClock, lapsed_by: str
) -> None:
    """The call lost its lease (its worker could not reach the store for a whole lease) while
    held, say for approval; its lapse was booked ($0.004). Re-priced to $0.006 after that, it
    holds only the $0.002 not booked yet, and its settle books only what it cost beyond the
    $0.004: $0.005 in all, not $0.004 + $0.005."""
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=1.0)
    _, res = await reserve(store, request(specs, est_usd=0.004))
    assert res is not None
    clock.advance(11)
    if lapsed_by == "reserve":  # another call's reserve purges the lapsed lease first
        _, probe = await reserve(store, request(specs, est_usd=0.001))
        assert probe is not None
        await store.settle(probe, 0, 0)
    moved = await store.reprice(res, usd_to_nano(0.006))
    assert moved.ok and moved.booked_nano == usd_to_nano(0.004)
    assert await _spent_reserved(store) == (usd_to_nano(0.004), usd_to_nano(0.002))
    res.est_nano, res.booked_nano = usd_to_nano(0.006), moved.booked_nano
    clock.advance(8)
    assert await store.renew([res]) == 1  # the re-held lease is renewed like any other
    clock.advance(8)
    settled = await store.settle(res, usd_to_nano(0.005), 10)
    assert settled.applied and not settled.late
    assert await _spent_reserved(store) == (usd_to_nano(0.005), 0)


async def test_a_reprice_below_what_its_lapse_booked_holds_nothing_and_books_nothing_more(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=10)
    _, res = await reserve(store, request(scopes(key_budget=1.0), est_usd=0.004))
    assert res is not None
    clock.advance(11)
    moved = await store.reprice(res, usd_to_nano(0.003))
    assert moved.ok
    assert await _spent_reserved(store) == (usd_to_nano(0.004), 0)
    res.est_nano, res.booked_nano = usd_to_nano(0.003), moved.booked_nano
    await store.settle(res, usd_to_nano(0.003), 10)
    assert await _spent_reserved(store) == (usd_to_nano(0.004), 0)


async def test_a_re_held_lease_that_lapses_again_is_booked_once_in_all(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Lapsed ($0.004 booked), re-priced to $0.006 ($0.002 held), lapsed again ($0.002 more:
    the mark adds up to $0.006); a settle of $0.005 then books nothing more."""
    store = await make_store(lease_s=10)
    specs = scopes(key_budget=1.0)
    _, res = await reserve(store, request(specs, est_usd=0.004))
    assert res is not None
    clock.advance(11)
    moved = await store.reprice(res, usd_to_nano(0.006))
    res.est_nano, res.booked_nano = usd_to_nano(0.006), moved.booked_nano
    clock.advance(11)
    _, probe = await reserve(store, request(specs, est_usd=0.001))
    assert probe is not None
    await store.settle(probe, 0, 0)
    assert await _spent_reserved(store) == (usd_to_nano(0.006), 0)
    late = await store.settle(res, usd_to_nano(0.005), 10)
    assert late.late
    assert await _spent_reserved(store) == (usd_to_nano(0.006), 0)


async def test_every_lapse_booking_is_counted_also_the_ones_a_reprice_finds(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    """Replica A dies with a call in flight; the first operation on the scope after its lease
    is a re-price on replica B (a call held before, then routed): that re-price books the
    lapse, and the metric says so (it counted only what a reserve found)."""
    models = catalog("gpt-test", "gpt-test-cheap")
    limits = {"scopes": {"key": {"budget_usd": {"total": 1.0}}}}
    store = await make_store(lease_s=10)
    replica_a = make_service(store, limits, lease_s=10, models=models)
    replica_b = make_service(store, limits, lease_s=10, models=models)
    routed = make_call("gpt-test-cheap")
    await LimitStage(replica_b).on_request(routed)
    dead = make_call("gpt-test-cheap")
    await LimitStage(replica_a).on_request(dead)
    lost = RESERVATION.get(dead).est_nano
    await replica_a.leases.close()
    await replica_b.leases.renew_once()
    clock.advance(8)
    await replica_b.leases.renew_once()  # B's call keeps its hold, A's does not
    clock.advance(3)
    routed.body["model"] = "gpt-test"
    await RepriceStage(replica_b).on_request(routed)
    assert replica_b.metrics.lapsed_booked._value.get() == pytest.approx(nano_to_usd(lost))
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] == lost
    await replica_b.close()
