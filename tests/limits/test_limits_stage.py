"""The limit and settle stages on real Calls, over both stores."""

from __future__ import annotations

import pytest
from limits_helpers import TEAM, catalog, forwarded, make_call, make_service, settle

from gateway.call import Endpoint, Usage
from gateway.errors import BudgetExceeded, LoopDetected, RateLimited, UpstreamError, UpstreamTimeout
from gateway.limits.pricing import UnknownPrice
from gateway.limits.stage import LimitStage
from gateway.limits.store import LimitStore, usd_to_nano
from tests.limits.limits_support import FakeClock, StoreFactory

LIMITS = {
    "scopes": {"key": {"requests_per_minute": 2, "tokens_per_minute": 100_000, "budget_usd": {"day": 1.0}}}
}


async def test_allowed_call_gets_headers_state_and_a_reservation(store: LimitStore) -> None:
    service = make_service(store, LIMITS)
    call = make_call(run_id="r1")
    await LimitStage(service).on_request(call)
    h = call.response_headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert h["x-ratelimit-reset-requests"] == "1m0s"
    assert h["x-ratelimit-limit-tokens"] == "100000"
    est = call.budget.estimate_usd
    assert 0.001 < est < 0.002  # ~70 prompt tokens at $2.50/M + 100 output tokens at $10/M
    assert float(h["x-wardgate-budget-remaining"]) == pytest.approx(1.0 - est, abs=1e-6)
    assert call.budget.remaining_usd == {"key": 1.0}
    assert call.budget.budget_usd == {"key": 1.0}
    assert call.run.as_input() == {"calls": 1, "spend_usd": 0.0, "repeats": 0}
    assert call.limits.reserved_usd == est
    assert call.decisions[-1].stage == "limit" and call.decisions[-1].outcome == "allow"


async def test_rate_limited_call_is_429_with_retry_after(store: LimitStore, clock: FakeClock) -> None:
    service = make_service(store, LIMITS)
    for _ in range(2):
        await LimitStage(service).on_request(make_call())
        clock.advance(1)
    call = make_call()
    with pytest.raises(RateLimited) as err:
        await LimitStage(service).on_request(call)
    headers = err.value.response_headers()
    assert err.value.status == 429 and err.value.code == "rate_limit_exceeded"
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("58", "58000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert "x-should-retry" not in headers
    assert call.decisions[-1].outcome == "deny"


async def test_budget_exhaustion_is_429_budget_exceeded_and_not_retryable(store: LimitStore) -> None:
    service = make_service(store, {"scopes": {"team": {"budget_usd": {"month": 0.0015}}}})
    first = make_call()
    await LimitStage(service).on_request(first)
    await settle(service, forwarded(first, None))  # booked at its reservation: the rest cannot cover a call
    with pytest.raises(BudgetExceeded) as err:
        await LimitStage(service).on_request(make_call())
    assert err.value.status == 429 and err.value.code == "budget_exceeded"
    assert err.value.response_headers()["x-should-retry"] == "false"
    assert err.value.to_dict()["error"]["window"] == "month"
    assert f"team '{TEAM}'" in err.value.message


async def test_repeating_the_same_request_in_a_run_is_loop_detected(store: LimitStore) -> None:
    service = make_service(store, {"run_guards": {"max_identical_requests": 2}})
    for _ in range(2):
        await LimitStage(service).on_request(make_call(run_id="r1"))
    with pytest.raises(LoopDetected) as err:
        await LimitStage(service).on_request(make_call(run_id="r1"))
    assert err.value.status == 429 and err.value.code == "loop_detected"
    assert err.value.response_headers()["x-should-retry"] == "false"
    other = make_call(
        run_id="r1", body={"model": "mock-chat", "messages": [{"role": "user", "content": "new"}]}
    )
    await LimitStage(service).on_request(other)
    assert other.run.calls == 3


async def test_run_call_cap_is_configurable_per_team(store: LimitStore) -> None:
    service = make_service(
        store, {"run_guards": {"max_calls": 100}, "teams": {TEAM: {"run_guards": {"max_calls": 1}}}}
    )
    await LimitStage(service).on_request(make_call(run_id="r1"))
    with pytest.raises(RateLimited) as err:
        await LimitStage(service).on_request(
            make_call(run_id="r1", body={"model": "mock-chat", "messages": []})
        )
    assert err.value.code == "run_call_limit" and err.value.response_headers()["x-should-retry"] == "false"


async def test_model_without_a_price_is_refused(store: LimitStore) -> None:
    service = make_service(store, models=catalog("mock-chat", "house-model"))
    with pytest.raises(UnknownPrice) as err:
        await LimitStage(service).on_request(make_call("house-model"))
    assert err.value.status == 403 and err.value.code == "model_price_unknown"
    free = make_service(store, models=catalog("house-model"), unknown_price="free")
    call = make_call("house-model")
    await LimitStage(free).on_request(call)
    assert call.budget.estimate_usd == 0


async def test_settle_books_the_real_cost_from_usage(store: LimitStore) -> None:
    service = make_service(store, LIMITS)
    call = make_call()
    await LimitStage(service).on_request(call)
    await settle(service, forwarded(call, Usage(input_tokens=1000, output_tokens=50)))
    expected = (1000 * 2.5 + 50 * 10) / 1e6
    assert call.cost_usd == pytest.approx(expected)
    assert call.limits.settle_basis == "usage"
    st = await store.scope_state(TEAM, "key", "k1")
    assert (st.spent_nano["day"], st.reserved_nano) == (usd_to_nano(expected), 0)
    await settle(service, call)  # the finish hook again: nothing more is booked
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["day"] == usd_to_nano(expected)


async def test_streamed_and_plain_calls_cost_the_same_for_the_same_usage(store: LimitStore) -> None:
    service = make_service(store)
    costs = []
    for stream in (False, True):
        call = make_call()
        call.stream = stream
        await LimitStage(service).on_request(call)
        await settle(service, forwarded(call, Usage(input_tokens=321, output_tokens=45)))
        costs.append(call.cost_usd)
    assert costs[0] == costs[1] > 0


async def test_stream_cut_without_usage_settles_at_the_reservation(store: LimitStore) -> None:
    service = make_service(store)
    call = make_call()
    call.stream = True
    await LimitStage(service).on_request(call)
    call.client_disconnected = True
    await settle(service, forwarded(call, None))
    assert call.cost_usd == call.limits.reserved_usd > 0
    assert call.limits.settle_basis == "reservation"


async def test_call_refused_before_forwarding_costs_nothing(store: LimitStore) -> None:
    service = make_service(store, LIMITS)
    call = make_call()
    await LimitStage(service).on_request(call)
    await settle(service, call)  # e.g. the policy denied it: forward never ran
    assert call.cost_usd == 0
    assert (await store.scope_state(TEAM, "key", "k1")).reserved_nano == 0


@pytest.mark.parametrize(
    ("error", "costs_reservation"), [(UpstreamError("502"), False), (UpstreamTimeout("t"), True)]
)
async def test_upstream_failures_settle_by_what_the_provider_may_bill(
    store: LimitStore, error: Exception, costs_reservation: bool
) -> None:
    service = make_service(store)
    call = make_call()
    await LimitStage(service).on_request(call)
    call.timings["forward"] = 0.1
    call.error = error
    await settle(service, call)
    assert call.cost_usd == (call.limits.reserved_usd if costs_reservation else 0)


async def test_max_tokens_is_enforced_when_the_client_sets_none(store: LimitStore) -> None:
    service = make_service(store, models=catalog("mock-chat"), estimate={"max_output_tokens_cap": 256})
    call = make_call(body={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]})
    await LimitStage(service).on_request(call)
    assert call.body["max_tokens"] == 256
    assert call.limits.estimate["output_tokens"] == 256


async def test_embeddings_reserve_input_only(store: LimitStore) -> None:
    service = make_service(store)
    call = make_call(
        "mock-embedding", endpoint=Endpoint.EMBEDDINGS, body={"model": "mock-embedding", "input": "hi"}
    )
    await LimitStage(service).on_request(call)
    assert call.limits.estimate["output_tokens"] == 0
    await settle(service, forwarded(call, Usage(input_tokens=1)))
    assert call.cost_usd == pytest.approx(0.02 / 1e6, abs=1e-9)


async def test_agent_and_run_scopes_are_counted_per_team(make_store: StoreFactory) -> None:
    store = await make_store()
    service = make_service(store, {"scopes": {"run": {"budget_usd": {"total": 0.0015}}}})
    from gateway.call import Principal

    other = Principal(key_id="k2", team="other-team")
    first = make_call(run_id="shared-run")
    await LimitStage(service).on_request(first)
    await settle(service, forwarded(first, None))
    # The same run id in another team is another run: its budget is untouched.
    await LimitStage(service).on_request(make_call(run_id="shared-run", principal=other))
    with pytest.raises(BudgetExceeded):
        await LimitStage(service).on_request(make_call(run_id="shared-run"))
