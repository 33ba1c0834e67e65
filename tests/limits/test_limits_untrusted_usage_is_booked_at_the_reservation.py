"""The budget does not trust the provider's usage blindly: negative, non-numeric or absurd
counts are booked at the call's reservation and counted in a metric, on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from limits_helpers import TEAM, forwarded, make_call, make_service, settle

from gateway.call import Usage
from gateway.limits.stage import LimitStage
from gateway.limits.store import RESERVATION, LimitStore

LIMITS = {"scopes": {"key": {"budget_usd": {"total": 1.0}}}}


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        ({"prompt_tokens": -100_000, "completion_tokens": 5}, "negative"),
        ({"prompt_tokens": 10, "completion_tokens": -1}, "negative"),
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": -3}},
            "negative",
        ),
        ({"prompt_tokens": "12", "completion_tokens": 5}, "non_numeric"),
        ({"prompt_tokens": 1.5, "completion_tokens": 5}, "non_numeric"),
        ({"prompt_tokens": True, "completion_tokens": 5}, "non_numeric"),
        ({"input_tokens": [1], "output_tokens": 5}, "non_numeric"),
        ({"prompt_tokens": 10**12, "completion_tokens": 5}, "absurd"),
        ({"prompt_tokens": 10, "completion_tokens": 2.0e9}, "absurd"),
    ],
)
async def test_usage_that_cannot_be_true_is_booked_at_the_reservation(
    store: LimitStore, usage: dict[str, Any], reason: str
) -> None:
    service = make_service(store, LIMITS)
    call = make_call()
    await LimitStage(service).on_request(call)
    reserved = RESERVATION.get(call).est_nano
    await settle(service, forwarded(call, Usage.from_openai(usage)))
    st = await store.scope_state(TEAM, "key", "k1")
    assert st.spent_nano["total"] == reserved and st.reserved_nano == 0
    assert call.limits.settle_basis == f"usage_{reason}"
    assert service.metrics.usage_rejected.labels(reason)._value.get() == 1


async def test_plausible_usage_is_booked_as_reported(store: LimitStore) -> None:
    service = make_service(store, LIMITS)
    call = make_call()  # max_tokens 100: 150 output tokens is beyond it but within the margin: believed
    await LimitStage(service).on_request(call)
    await settle(service, forwarded(call, Usage.from_openai({"prompt_tokens": 20, "completion_tokens": 150})))
    assert call.limits.settle_basis == "usage"
    spent = (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"]
    assert spent == service.prices.lookup("mock-chat").cost_nano(20, 150)  # type: ignore[union-attr]


async def test_negative_usage_can_never_bring_the_spend_below_zero(store: LimitStore) -> None:
    service = make_service(store, LIMITS)
    for _ in range(5):
        call = make_call()
        await LimitStage(service).on_request(call)
        await settle(service, forwarded(call, Usage(-(10**9), -(10**9))))
    assert (await store.scope_state(TEAM, "key", "k1")).spent_nano["total"] > 0
