"""Money booked conservatively and calls in flight bounded, through the real gateway over HTTP
with the async openai SDK (fake upstream, real Redis): hostile usage, bursts held only by
reservations, a per-key concurrency limit, and a replica killed with a call in flight."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from test_limits_e2e import MAX_TOKENS, MESSAGES, REPO, _client, _one, _settings, _spent_in, _unit_cost

from gateway.limits.pricing import PriceBook
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import nano_to_usd
from tests.harness import PASS_THROUGH, TEST_KEY, GatewayProcess, make_policies_dir, running_gateway
from tests.waiting import wait_until_async


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def prefix(redis_url: str, key_prefix: str) -> Any:
    yield key_prefix
    reader = RedisStore(redis_url, prefix=key_prefix)
    await reader.delete_prefix()
    await reader.close()


@pytest.mark.parametrize("usage", [(-50_000, 10), (10, 10**9)], ids=["negative", "absurd"])
async def test_provider_usage_that_cannot_be_true_is_booked_at_the_reservation(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str, backend: str, usage: tuple[int, int]
) -> None:
    _prompt, unit = _unit_cost(False)
    upstream.usage(*usage)
    settings = _settings(tmp_path, upstream.base_url, backend, redis_url, prefix, budget=1.0)
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        assert await _one(client, False) == "ok"
        await client.close()
        spent = await _spent_in(gw, backend, redis_url, prefix)
        metrics = (await asyncio.to_thread(httpx.get, gw.url + "/metrics")).text
    assert spent == unit  # never below zero, never an absurd bill: the most the call could cost
    reason = "negative" if usage[0] < 0 else "absurd"
    assert f'wardgate_limits_usage_rejected_total{{reason="{reason}"}} 1.0' in metrics


async def test_a_burst_refused_only_by_reservations_in_flight_is_told_to_retry_and_then_fits(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """The budget fits 4 reservations; each call really costs about a third of one. A burst of
    16 is admitted while reservations allow; the others hear "budget_reserved, retry" (not a
    final budget_exceeded), and afterwards calls keep fitting one after another until the real
    spend leaves less than one reservation: exactly as many calls in all as the money allows."""
    prompt, unit = _unit_cost(False)
    upstream.usage(prompt // 3, MAX_TOKENS // 3)
    actual = (
        PriceBook.load(REPO / "policies" / "pricing.yaml")
        .lookup("gpt-test")
        .cost_nano(
            prompt // 3,  # type: ignore[union-attr]
            MAX_TOKENS // 3,
        )
    )
    budget_nano = 4 * unit + unit // 2
    fits, spent_then = 0, 0
    while budget_nano - spent_then >= unit:
        fits, spent_then = fits + 1, spent_then + actual
    settings = _settings(
        tmp_path, upstream.base_url, "redis", redis_url, prefix, budget=nano_to_usd(budget_nano)
    )
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        upstream.fault("slow", delay_s=1.0, times=4)  # the first four stay in flight while the burst lands
        burst = await asyncio.gather(*(_one(client, False) for _ in range(16)))
        later = [await _one(client, False) for _ in range(fits + 2 - burst.count("ok"))]
        await client.close()
        spent = await _spent_in(gw, "redis", redis_url, prefix)
    assert burst.count("ok") >= 4 and "budget_reserved" in burst and set(burst) <= {"ok", "budget_reserved"}
    ok_later = fits - burst.count("ok")
    assert later == ["ok"] * ok_later + ["budget_exceeded"] * 2
    assert spent == fits * actual <= budget_nano


async def test_the_reserved_refusal_carries_retry_headers_the_sdk_honours(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    prompt, unit = _unit_cost(False)
    upstream.usage(prompt // 3, MAX_TOKENS // 3)
    settings = _settings(
        tmp_path, upstream.base_url, "redis", redis_url, prefix, budget=nano_to_usd(unit + unit // 2)
    )
    with running_gateway(settings) as gw:
        plain = _client(gw.base_url)
        retrying = openai.AsyncOpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=2, timeout=30)
        upstream.fault("slow", delay_s=0.5, times=1)
        first = asyncio.create_task(_one(plain, False))
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        with pytest.raises(openai.RateLimitError) as err:
            await plain.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS)
        # The SDK's own retry honours retry-after and x-should-retry: once the first call is
        # booked (at a third of its reservation), the retried call fits.
        second = await _one(retrying, False)
        assert await first == "ok"
        await plain.close()
        await retrying.close()
    headers = err.value.response.headers
    assert err.value.body["code"] == "budget_reserved"  # type: ignore[index]
    assert headers["x-should-retry"] == "true" and headers["retry-after"] == "1"
    assert second == "ok"


async def test_a_key_over_its_concurrency_limit_is_429_and_its_slots_free_on_every_ending(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str, backend: str
) -> None:
    settings = _settings(tmp_path, upstream.base_url, backend, redis_url, prefix, budget=10.0)
    path = settings.policies_dir / "limits.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["scopes"]["key"]["max_concurrent_requests"] = 2
    path.write_text(yaml.safe_dump(doc))
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        upstream.fault("slow", delay_s=1.0, times=2)
        outcomes = await asyncio.gather(*(_one(client, False) for _ in range(6)))
        assert sorted(outcomes) == ["concurrency_limit_exceeded"] * 4 + ["ok"] * 2
        # Failures free their slot too: an upstream 500, a stream the client drops.
        upstream.fault("status", status=500, times=4)
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS)
        upstream.clear_faults()
        upstream.fault("slow", chunk_delay_s=0.2, times=2)
        for _ in range(2):
            stream = await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
            )
            async for _chunk in stream:
                break
            await stream.close()
        upstream.clear_faults()

        async def both_ok() -> bool:  # the dropped streams' settles land right after
            return await asyncio.gather(*(_one(client, False) for _ in range(2))) == ["ok", "ok"]

        await wait_until_async(both_ok, within=5, interval=0.05)
        await client.close()


async def test_a_killed_replicas_call_in_flight_is_booked_at_its_reservation_after_its_lease(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """SIGKILL a gateway process while its call waits on the provider: nothing settles it, its
    lease (1 s) lapses, and the reservation is booked as spent, not released."""
    _prompt, unit = _unit_cost(False)
    policies, rego = make_policies_dir(
        tmp_path,
        upstream.base_url,
        extra={"limits.yaml": {"scopes": {"key": {"budget_usd": {"total": 1.0}}}, "run_guards": {}}},
    )
    config = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": tmp_path / "data",
        "limits": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix, "lease_s": 1.0},
        **{k: v for k, v in PASS_THROUGH.items() if k != "limits"},
    }
    gw = GatewayProcess(config, tmp_path).start()
    upstream.fault("hang", times=1)
    caller = threading.Thread(target=_call_quietly, args=(gw.base_url,), daemon=True)
    try:
        caller.start()
        await asyncio.to_thread(upstream.wait_for_requests, 1)
        reader = RedisStore(redis_url, prefix=prefix)
        held = await reader.scope_state("test", "key", "test")
        assert held.reserved_nano == unit
        gw.kill()

        async def booked() -> bool:
            return (await reader.scope_state("test", "key", "test")).spent_nano["total"] == unit

        await wait_until_async(booked, interval=0.1, message="the lapsed reservation was not booked")
        st = await reader.scope_state("test", "key", "test")
        await reader.close()
    finally:
        gw.kill()
        upstream.clear_faults()
    assert st.reserved_nano == 0 and st.spent_nano["total"] == unit


def _call_quietly(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0, timeout=30)
    try:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS)
    except openai.APIError:
        pass  # the gateway was killed under it
