"""The LimitStore contract, run against MemoryStore and RedisStore (real Redis) alike."""

from __future__ import annotations

import asyncio
import random

from limits_helpers import TEAM, request, reservation, reserve, scopes

from gateway.limits.store import LimitStore, nano_to_usd, usd_to_nano
from tests.limits.limits_support import FakeClock, StoreFactory

BUDGET = 0.05


async def _watch_invariant(
    store: LimitStore, budget_nano: int, stop: asyncio.Event, violations: list[str]
) -> int:
    """Sample spent + reserved while calls run: it must never exceed the budget."""
    samples = 0
    while not stop.is_set():
        st = await store.scope_state(TEAM, "key", "k1")
        if st.spent_nano["total"] + st.reserved_nano > budget_nano:
            violations.append(f"spent {st.spent_nano['total']} + reserved {st.reserved_nano} > {budget_nano}")
        samples += 1
        await asyncio.sleep(0)
    return samples


async def test_budget_never_overspent_under_200_concurrent_reservations(store: LimitStore) -> None:
    rng = random.Random(7)
    specs = scopes(key_budget=BUDGET)
    reqs = [request(specs, est_usd=rng.uniform(0.001, 0.003)) for _ in range(200)]
    results = await asyncio.gather(*(store.reserve(r) for r in reqs))
    accepted = [(r, res) for r, res in zip(reqs, results, strict=True) if res.ok]
    denied = [r for r, res in zip(reqs, results, strict=True) if not res.ok]
    reserved = sum(r.est_nano for r, _ in accepted)
    assert reserved <= usd_to_nano(BUDGET)
    # Maximal: every denied call's reservation would not fit even in what is left at the end.
    assert denied and all(r.est_nano > usd_to_nano(BUDGET) - reserved for r in denied)
    # Nothing is spent yet: only the calls in flight stand in the way, so each refusal says "retry".
    assert all(
        res.denial is not None and res.denial.reason == "reserved" and res.denial.retry_after_ms > 0
        for res in results
        if not res.ok
    )
    # Settle at real costs below the estimates: spend is the sum of actual costs, within budget.
    actual = [rng.randint(r.est_nano // 3, r.est_nano) for r, _ in accepted]
    await asyncio.gather(
        *(
            store.settle(reservation(r, res, store), a, 10)
            for (r, res), a in zip(accepted, actual, strict=True)
        )
    )
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.reserved_nano == 0
    assert st.spent_nano["total"] == sum(actual) <= usd_to_nano(BUDGET)


async def test_budget_invariant_holds_at_every_moment_with_interleaved_settles(store: LimitStore) -> None:
    rng = random.Random(11)
    specs = scopes(key_budget=BUDGET)
    budget = usd_to_nano(BUDGET)
    stop, violations = asyncio.Event(), []

    async def one(est: float, delay: float) -> tuple[bool, int]:
        req = request(specs, est_usd=est)
        _result, res = await reserve(store, req)
        if res is None:
            return False, req.est_nano
        await asyncio.sleep(delay)
        await store.settle(res, req.est_nano, 10)  # actual == estimate: no slack
        return True, req.est_nano

    watcher = asyncio.create_task(_watch_invariant(store, budget, stop, violations))
    outcomes = await asyncio.gather(
        *(one(rng.uniform(0.001, 0.003), rng.uniform(0, 0.01)) for _ in range(200))
    )
    stop.set()
    samples = await watcher
    assert samples > 0 and violations == []
    st = await store.scope_state(TEAM, "key", "k1")
    spent = st.spent_nano["total"]
    assert spent <= budget
    # Within one reservation's slack: what is left is less than the largest estimate denied.
    assert budget - spent < max(est for ok, est in outcomes if not ok)
    assert sum(est for ok, est in outcomes if ok) == spent


async def test_lease_expiry_frees_a_crashed_reservation_when_configured_to_release(
    make_store: StoreFactory, clock: FakeClock
) -> None:
    store = await make_store(lease_s=30, expired="release")
    specs = scopes(key_budget=0.01)
    crashed_req = request(specs, est_usd=0.008)
    first, crashed = await reserve(store, crashed_req)  # the worker dies: never settled
    assert first.ok and crashed is not None
    second, _ = await reserve(store, request(specs, est_usd=0.008))
    assert not second.ok and second.denial.reason == "reserved"
    clock.advance(31)
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0
    third, res3 = await reserve(store, request(specs, est_usd=0.008))
    assert third.ok and res3 is not None
    # The crashed worker's settle arriving after its lease is still booked once, and flagged.
    late = await store.settle(crashed, usd_to_nano(0.001), 5)
    assert late.applied and late.late
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.spent_nano["total"] == usd_to_nano(0.001)
    assert st.reserved_nano == usd_to_nano(0.008)


async def test_settle_is_idempotent_under_retries(store: LimitStore) -> None:
    specs = scopes(key_budget=1.0, tpm=10_000)
    req = request(specs, est_usd=0.01, tokens=1000)
    result, res = await reserve(store, req)
    assert result.ok and res is not None
    outcomes = await asyncio.gather(*(store.settle(res, usd_to_nano(0.004), 300) for _ in range(10)))
    assert sum(o.applied for o in outcomes) == 1
    st = await store.scope_state(TEAM, "key", "k1")
    assert (st.spent_nano["total"], st.reserved_nano) == (usd_to_nano(0.004), 0)
    # The token window was corrected once: 10,000 - 300 tokens are left for the next call.
    nxt = await store.reserve(request(specs, est_usd=0.0, tokens=9700))
    assert nxt.ok and nxt.tokens.remaining == 0


async def test_loop_detected_after_max_identical_requests_in_a_run(store: LimitStore) -> None:
    specs = scopes(run="r1")
    results = [await store.reserve(request(specs, max_identical=3, fingerprint="same")) for _ in range(4)]
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].denial.reason == "loop" and results[3].run_repeats == 3
    assert (await store.reserve(request(specs, max_identical=3, fingerprint="other"))).ok
    assert (await store.reserve(request(scopes(run="r2"), max_identical=3, fingerprint="same"))).ok


async def test_run_call_cap_refuses_the_call_after_max_calls(store: LimitStore) -> None:
    specs = scopes(run="r1")
    results = [await store.reserve(request(specs, max_calls=2)) for _ in range(3)]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].denial.reason == "calls" and results[2].run_calls == 2
    assert results[1].run_calls == 2


async def test_run_cost_cap_is_a_total_budget_on_the_run(store: LimitStore) -> None:
    specs = scopes(run="r1")
    cap = usd_to_nano(0.01)
    first, res = await reserve(store, request(specs, est_usd=0.006, max_run_cost_nano=cap))
    assert first.ok and res is not None
    await store.settle(res, usd_to_nano(0.006), 10)
    second = await store.reserve(request(specs, est_usd=0.006, max_run_cost_nano=cap))
    assert not second.ok and second.denial.reason == "budget" and second.denial.scope == 2
    assert second.run_spent_nano == usd_to_nano(0.006)
    assert (await store.reserve(request(specs, est_usd=0.004, max_run_cost_nano=cap))).ok


async def test_denied_call_consumes_nothing(store: LimitStore) -> None:
    specs = scopes(key_budget=0.01, rpm=5)
    denied = await store.reserve(request(specs, est_usd=0.02))
    assert not denied.ok
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.reserved_nano == 0
    ok = await store.reserve(request(specs, est_usd=0.001))
    assert ok.ok and ok.requests.remaining == 4  # the denied call took no request slot


async def test_requests_limit_reports_when_a_slot_frees(store: LimitStore, clock: FakeClock) -> None:
    specs = scopes(rpm=2)
    assert (await store.reserve(request(specs))).ok
    clock.advance(10)
    second = await store.reserve(request(specs))
    assert second.ok and second.requests.remaining == 0 and second.requests.reset_ms == 50_000
    clock.advance(10)
    third = await store.reserve(request(specs))
    assert not third.ok and third.denial.reason == "requests"
    assert third.denial.retry_after_ms == 40_000  # the first call leaves the window then
    clock.advance(40)
    assert (await store.reserve(request(specs))).ok


async def test_tokens_limit_reserves_the_estimate_and_settle_corrects_it(store: LimitStore) -> None:
    specs = scopes(tpm=1000)
    first, res = await reserve(store, request(specs, tokens=600))
    assert first.ok and first.tokens.remaining == 400
    second = await store.reserve(request(specs, tokens=600))
    assert not second.ok and second.denial.reason == "tokens" and second.denial.retry_after_ms == 60_000
    await store.settle(res, 0, 100)
    assert (await store.reserve(request(specs, tokens=600))).ok
    too_big = await store.reserve(request(specs, tokens=1001))
    assert not too_big.ok and too_big.denial.reason == "too_large" and too_big.denial.retry_after_ms == -1


async def test_runtime_override_wins_and_null_means_no_limit(store: LimitStore) -> None:
    specs = scopes(key_budget=0.001, rpm=1)
    assert not (await store.reserve(request(specs, est_usd=0.002))).ok
    await store.set_override(TEAM, "key", "k1", "budgets", {"total": usd_to_nano(1.0)})
    await store.set_override(TEAM, "key", "k1", "limits", {"rpm": None})
    results = [await store.reserve(request(specs, est_usd=0.002)) for _ in range(3)]
    assert all(r.ok for r in results) and results[0].requests is None
    assert (await store.scope_state(TEAM, "key", "k1")).override == {"total": usd_to_nano(1.0), "rpm": None}
    # Replacing the budgets section with nothing falls back to the configured budget.
    assert await store.set_override(TEAM, "key", "k1", "budgets", {}) == {"rpm": None}
    assert not (await store.reserve(request(specs, est_usd=0.002))).ok


async def test_team_override_changes_run_guards(store: LimitStore) -> None:
    specs = scopes(run="r1")
    await store.set_override(TEAM, "team", TEAM, "limits", {"run_max_calls": 1})
    assert (await store.reserve(request(specs, max_calls=100))).ok
    denied = await store.reserve(request(specs, max_calls=100))
    assert not denied.ok and denied.denial.reason == "calls" and denied.denial.limit == 1


async def test_day_budget_resets_at_utc_midnight_and_month_keeps_counting(
    store: LimitStore, clock: FakeClock
) -> None:
    clock.t = 1_767_311_990.0  # 2026-01-01T23:59:50Z
    specs = scopes(day=0.01, month=0.015)
    _first, res = await reserve(store, request(specs, est_usd=0.008))
    await store.settle(res, usd_to_nano(0.008), 10)
    assert not (await store.reserve(request(specs, est_usd=0.008))).ok  # day budget used up
    clock.advance(20)  # 2026-01-02T00:00:10Z
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.spent_nano == {"day": 0, "month": usd_to_nano(0.008), "total": usd_to_nano(0.008)}
    second = await store.reserve(request(specs, est_usd=0.008))
    assert not second.ok and second.denial.window == "month"
    assert (await store.reserve(request(specs, est_usd=0.005))).ok


async def test_spend_state_tracks_burn_rate_and_activity(store: LimitStore, clock: FakeClock) -> None:
    specs = scopes(run="r9")
    for _ in range(3):
        _, res = await reserve(store, request(specs, est_usd=0.01))
        await store.settle(res, usd_to_nano(0.01), 10)
        clock.advance(600)
    st = await store.scope_state(TEAM, "team", TEAM)
    assert nano_to_usd(st.burn_nano_last_hour) == 0.03
    clock.advance(3600)
    assert (await store.scope_state(TEAM, "team", TEAM)).burn_nano_last_hour == 0
    assert await store.list_scopes(TEAM, "run") == ["r9"]
    assert (await store.scope_state(TEAM, "run", "r9")).calls == 3


async def test_a_budget_only_reservation_meets_budgets_and_the_run_cap_but_no_rate_or_call_count(
    store: LimitStore,
) -> None:
    """A priced action that is not a model call (an MCP tool call): the key's rpm of 1 and the
    run's max_calls of 1 neither refuse it nor count it, the budget and the run's cost cap do."""
    specs = scopes(key_budget=0.01, rpm=1, run="r1")
    cap = usd_to_nano(0.012)
    model = await store.reserve(request(specs, est_usd=0.001, max_calls=1, max_run_cost_nano=cap))
    assert model.ok and model.run_calls == 1
    tools = []
    for _ in range(3):
        result, res = await reserve(
            store,
            request(specs, est_usd=0.003, tokens=0, max_calls=1, max_run_cost_nano=cap, budget_only=True),
        )
        tools.append(result)
        if res is not None:
            await store.settle(res, usd_to_nano(0.003), 0)
    assert [r.ok for r in tools] == [True, True, True]  # no rpm, no run-call cap
    assert all(r.run_calls == 1 for r in tools)  # and not counted as run calls
    over = await store.reserve(
        request(specs, est_usd=0.003, tokens=0, max_run_cost_nano=cap, budget_only=True)
    )
    assert not over.ok and over.denial.reason == "budget"  # 0.001 held + 0.009 spent + 0.003 > 0.01
    state = await store.scope_state(TEAM, "key", "k1")
    assert state.spent_nano["total"] == usd_to_nano(0.009)
