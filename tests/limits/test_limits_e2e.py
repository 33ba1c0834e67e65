"""Budgets and rate limits through the real gateway: real HTTP, the async openai SDK, real Redis.

Every call costs exactly its reservation (the fake upstream reports the token counts the
estimate reserved), so the number of calls a budget allows is known exactly: any overspend,
any lost settle and any over-strict denial shows up as a wrong count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

from gateway.call import Call, Endpoint
from gateway.limits import cli
from gateway.limits.component import Limits
from gateway.limits.config import EstimateSettings
from gateway.limits.estimate import prompt_upper_bound
from gateway.limits.pricing import PriceBook
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import LimitStore, nano_to_usd, usd_to_nano
from tests.harness import (
    ADMIN_KEY,
    PASS_THROUGH,
    TEST_KEY,
    GatewayProcess,
    gateway_settings,
    make_policies_dir,
    running_gateway,
    start_all,
    stop_all,
)
from tests.waiting import wait_until_async

REPO = Path(__file__).resolve().parents[2]
BUDGET = 0.05
MAX_TOKENS = 120
MESSAGES = [{"role": "user", "content": "Summarise the quarterly report for the board. " * 9}]


def _unit_cost(stream: bool) -> tuple[int, int]:
    """(prompt tokens, nano-USD) one call reserves: what the gateway's estimate gives its body."""
    body: dict[str, Any] = {"messages": MESSAGES, "model": "gpt-test", "max_tokens": MAX_TOKENS}
    if stream:
        body["stream"] = True
    call = Call(request_id="x", endpoint=Endpoint.CHAT, body=body, headers={}, model="gpt-test")
    prompt = prompt_upper_bound(call, EstimateSettings(), 128_000)
    price = PriceBook.load(REPO / "policies" / "pricing.yaml").lookup("gpt-test")
    return prompt, price.cost_nano(prompt, MAX_TOKENS)


def _limits_doc(budget: float = BUDGET) -> dict[str, Any]:
    return {"scopes": {"key": {"budget_usd": {"total": budget}}}, "run_guards": {}}


def _settings(
    root: Path, upstream_url: str, backend: str, redis_url: str, prefix: str, budget: float = BUDGET
) -> Any:
    overrides = {k: v for k, v in PASS_THROUGH.items() if k != "limits"}
    settings = gateway_settings(
        root,
        upstream_url,
        limits={"backend": backend, "redis_url": redis_url, "key_prefix": prefix},
        **overrides,
    )
    (settings.policies_dir / "limits.yaml").write_text(yaml.safe_dump(_limits_doc(budget)))
    return settings


@pytest.fixture
async def prefix(redis_url: str, key_prefix: str) -> Any:
    """This test's Redis key prefix; every key under it is deleted afterwards, pass or fail."""
    yield key_prefix
    reader = RedisStore(redis_url, prefix=key_prefix)
    await reader.delete_prefix()
    await reader.close()


async def _one(client: openai.AsyncOpenAI, stream: bool) -> str:
    try:
        if stream:
            got = await client.chat.completions.create(
                model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
            )
            chunks = [c async for c in got]
            return "ok" if chunks else "empty"
        await client.chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS)
        return "ok"
    except openai.RateLimitError as exc:
        return exc.body.get("code", "429") if isinstance(exc.body, dict) else "429"


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0, timeout=60)


async def _spent(store: LimitStore, team: str = "test", key: str = "test") -> int:
    """Total spend once every reservation is settled and the figure is stable."""
    last = -1
    for _ in range(200):  # settles finish right after the answers; give the last ones a moment
        st = await store.scope_state(team, "key", key)
        if st.reserved_nano == 0 and st.spent_nano["total"] == last:
            return last
        last = st.spent_nano["total"]
        await asyncio.sleep(0.05)
    raise AssertionError(f"reservations still open: {st}")


async def _spent_in(gw: Any, backend: str, redis_url: str, prefix: str) -> int:
    if backend == "memory":  # the gateway's own store object (plain dicts, no event loop)
        return await _spent(gw.component(Limits).service.store)
    reader = RedisStore(redis_url, prefix=prefix)  # the gateway's pool belongs to its own loop
    try:
        return await _spent(reader)
    finally:
        await reader.close()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_budget_never_overspent_by_200_concurrent_sdk_calls(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str, backend: str, stream: bool
) -> None:
    prompt, unit = _unit_cost(stream)
    assert 0.001 < nano_to_usd(unit) < 0.003
    upstream.usage(prompt, MAX_TOKENS)  # every call costs exactly its reservation
    settings = _settings(tmp_path, upstream.base_url, backend, redis_url, prefix)
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        outcomes = await asyncio.gather(*(_one(client, stream) for _ in range(200)))
        await client.close()
        spent = await _spent_in(gw, backend, redis_url, prefix)
    allowed = usd_to_nano(BUDGET) // unit
    assert outcomes.count("ok") == allowed
    # A refusal while calls are in flight says "retry" (budget_reserved); once they are all
    # booked, what is left cannot cover a call: final (budget_exceeded).
    assert "budget_reserved" in outcomes and set(outcomes) <= {"ok", "budget_reserved", "budget_exceeded"}
    assert spent == allowed * unit <= usd_to_nano(BUDGET)


def _sequential_budget(stream: bool) -> tuple[int, int, float]:
    """(prompt tokens, real cost of one call, budget) such that calls made one after another,
    each reserving its full estimate but costing a third of it, fit exactly 21 times: the 21st
    fits only if every earlier call was settled before it was reserved."""
    prompt, unit = _unit_cost(stream)
    price = PriceBook.load(REPO / "policies" / "pricing.yaml").lookup("gpt-test")
    actual = price.cost_nano(prompt // 3, MAX_TOKENS // 3)
    assert actual * 3 <= unit
    return prompt // 3, actual, nano_to_usd(unit + 20 * actual + actual // 2)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_sequential_calls_see_the_previous_settle_and_spend_the_budget_to_the_end(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str, stream: bool
) -> None:
    """The answer goes out before the settle's reply is in (one round trip saved per call);
    the settle is still applied before the client's next call is reserved."""
    prompt, actual, budget = _sequential_budget(stream)
    upstream.usage(prompt, MAX_TOKENS // 3)
    settings = _settings(tmp_path, upstream.base_url, "redis", redis_url, prefix, budget)
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        outcomes = [await _one(client, stream) for _ in range(23)]
        await client.close()
        spent = await _spent_in(gw, "redis", redis_url, prefix)
    assert outcomes == ["ok"] * 21 + ["budget_exceeded"] * 2
    assert spent == 21 * actual


@contextlib.contextmanager
def _two_gateways(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str, budget: float
) -> Iterator[list[GatewayProcess]]:
    """Two gateway processes sharing one Redis and one key budget."""
    policies, rego = make_policies_dir(
        tmp_path,
        upstream.base_url,
        extra={
            "limits.yaml": {
                "scopes": {"key": {"budget_usd": {"total": budget}, "requests_per_minute": 1000}},
                "run_guards": {},
            }
        },
    )
    config = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": tmp_path / "data",
        "limits": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix},
        **{k: v for k, v in PASS_THROUGH.items() if k != "limits"},
    }
    gws = [GatewayProcess(config, tmp_path) for _ in range(2)]
    start_all(gws)
    try:
        yield gws
    finally:
        stop_all(gws)


@pytest.fixture
def two_gateways(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> Iterator[list[GatewayProcess]]:
    with _two_gateways(upstream, tmp_path, redis_url, prefix, BUDGET) as gws:
        yield gws


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_budget_holds_across_two_gateway_processes_sharing_redis(
    two_gateways: list[GatewayProcess], upstream: Any, redis_url: str, prefix: str, stream: bool
) -> None:
    prompt, unit = _unit_cost(stream)
    upstream.usage(prompt, MAX_TOKENS)
    clients = [_client(gw.base_url) for gw in two_gateways]
    outcomes = await asyncio.gather(*(_one(clients[i % 2], stream) for i in range(200)))
    for c in clients:
        await c.close()
    reader = RedisStore(redis_url, prefix=prefix)
    try:
        spent = await _spent(reader)
    finally:
        await reader.close()
    allowed = usd_to_nano(BUDGET) // unit
    assert outcomes.count("ok") == allowed and set(outcomes) <= {"ok", "budget_reserved", "budget_exceeded"}
    assert spent == allowed * unit


async def test_sequential_calls_alternating_between_two_gateways_see_each_others_settles(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    prompt, _actual, budget = _sequential_budget(False)
    upstream.usage(prompt, MAX_TOKENS // 3)
    with _two_gateways(upstream, tmp_path, redis_url, prefix, budget) as gws:
        clients = [_client(gw.base_url) for gw in gws]
        outcomes = [await _one(clients[i % 2], False) for i in range(23)]
        for c in clients:
            await c.close()
    assert outcomes == ["ok"] * 21 + ["budget_exceeded"] * 2


async def test_rate_limit_holds_globally_across_two_gateway_processes(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    policies, rego = make_policies_dir(
        tmp_path,
        upstream.base_url,
        extra={"limits.yaml": {"scopes": {"key": {"requests_per_minute": 10}}, "run_guards": {}}},
    )
    config = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": tmp_path / "data",
        "limits": {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix},
        **{k: v for k, v in PASS_THROUGH.items() if k != "limits"},
    }
    gws = [GatewayProcess(config, tmp_path) for _ in range(2)]
    start_all(gws)
    try:
        clients = [_client(gw.base_url) for gw in gws]
        outcomes = await asyncio.gather(*(_one(clients[i % 2], False) for i in range(30)))
        with pytest.raises(openai.RateLimitError) as err:
            await clients[1].chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=5)
        headers = err.value.response.headers
        for c in clients:
            await c.close()
    finally:
        stop_all(gws)
    assert outcomes.count("ok") == 10 and outcomes.count("rate_limit_exceeded") == 20
    assert int(headers["retry-after-ms"]) > 0 and int(headers["retry-after"]) >= 1
    assert headers["x-ratelimit-remaining-requests"] == "0"


async def test_a_stream_cut_by_the_client_still_settles(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    _prompt, unit = _unit_cost(True)
    upstream.fault("slow", chunk_delay_s=0.2)
    settings = _settings(tmp_path, upstream.base_url, "redis", redis_url, prefix)
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        stream = await client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS, stream=True
        )
        async for _chunk in stream:
            break
        await stream.close()
        await client.close()
        reader = RedisStore(redis_url, prefix=prefix)
        try:

            async def booked() -> Any:
                state = await reader.scope_state("test", "key", "test")
                return state if state.spent_nano["total"] else None

            st = await wait_until_async(booked, within=10, interval=0.05, message="the call was never booked")
        finally:
            await reader.close()
    assert st.spent_nano["total"] == unit and st.reserved_nano == 0


async def test_admin_spend_api_cli_and_readiness_through_the_gateway(
    upstream: Any, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    prompt, unit = _unit_cost(False)
    upstream.usage(prompt, MAX_TOKENS)
    settings = _settings(tmp_path, upstream.base_url, "redis", redis_url, prefix)
    with running_gateway(settings) as gw:
        client = _client(gw.base_url)
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=MESSAGES, max_tokens=MAX_TOKENS
        )
        await client.close()
        assert float(raw.headers["x-wardgate-budget-remaining"]) == pytest.approx(
            BUDGET - nano_to_usd(unit), abs=1e-6
        )
        env = {"WARDGATE_URL": gw.url, "WARDGATE_ADMIN_KEY": ADMIN_KEY, "COLUMNS": "200"}
        shown = await asyncio.to_thread(
            CliRunner().invoke, cli.app, ["--scope", "key", "--id", "test", "--json"], env=env
        )
        ready = await asyncio.to_thread(httpx.get, gw.url + "/readyz")
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)
    assert doc["windows"]["total"]["spent_usd"] == nano_to_usd(unit)
    assert doc["windows"]["total"]["budget_usd"] == BUDGET
    assert ready.json()["checks"]["limits"] == "ok"
