"""A Rego route to a pricier model, through the real gateway on real Redis: the budget holds.

The shipped request policy routes ``routing.cheaper[model]`` when a budget runs low; this test
configures it "backwards" (gpt-test-cheap → gpt-test, 16× the price, always), so the call is
reserved for one model and forwarded to a pricier one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from gateway.limits.redis_store import RedisStore
from tests.harness import PASS_THROUGH, TEST_KEY, gateway_settings, running_gateway

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report for the board."}]


def _settings(root: Path, upstream_url: str, redis_url: str, prefix: str, budget_usd: float) -> Any:
    overrides = {k: v for k, v in PASS_THROUGH.items() if k not in ("limits", "policy")}
    settings = gateway_settings(
        root,
        upstream_url,
        limits={"backend": "redis", "redis_url": redis_url, "key_prefix": prefix},
        **overrides,
    )
    policies = settings.policies_dir
    (policies / "limits.yaml").write_text(
        yaml.safe_dump({"scopes": {"key": {"budget_usd": {"total": budget_usd}}}})
    )
    doc = yaml.safe_load((policies / "policy.yaml").read_text())
    doc["routing"] = {"low_budget_usd": 1e9, "cheaper": {"gpt-test-cheap": "gpt-test"}}
    (policies / "policy.yaml").write_text(yaml.safe_dump(doc))
    return settings


async def _key_state(redis_url: str, prefix: str) -> Any:
    reader = RedisStore(redis_url, prefix=prefix)
    try:
        return await reader.scope_state("test", "key", "test")
    finally:
        await reader.delete_prefix()
        await reader.close()


async def _ask(base_url: str) -> Any:
    client = openai.AsyncOpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0, timeout=30)
    try:
        return await client.chat.completions.create(model="gpt-test-cheap", messages=MESSAGES, max_tokens=100)
    finally:
        await client.close()


async def test_route_to_a_pricier_model_is_refused_when_the_budget_cannot_cover_it(
    upstream: Any, tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    settings = _settings(tmp_path, upstream.base_url, redis_url, key_prefix, budget_usd=0.0005)
    with running_gateway(settings) as gw:
        with pytest.raises(openai.RateLimitError) as err:
            await _ask(gw.base_url)
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == "budget_exceeded" and body["routed_model"] == "gpt-test"
    assert err.value.response.headers["x-should-retry"] == "false"
    assert not upstream.requests  # nothing was forwarded
    state = await _key_state(redis_url, key_prefix)
    assert (state.reserved_nano, state.spent_nano["total"]) == (0, 0)


async def test_route_to_a_pricier_model_is_reserved_and_settled_at_the_routed_price(
    upstream: Any, tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    upstream.usage(40, 20)
    settings = _settings(tmp_path, upstream.base_url, redis_url, key_prefix, budget_usd=1.0)
    with running_gateway(settings) as gw:
        raw = await _ask(gw.base_url)
    assert raw.choices
    assert upstream.requests[-1].json["model"] == "gpt-test"
    state = await _key_state(redis_url, key_prefix)
    assert state.reserved_nano == 0
    assert state.spent_nano["total"] == 40 * 2500 + 20 * 10_000  # gpt-test's price, not the cheap one
