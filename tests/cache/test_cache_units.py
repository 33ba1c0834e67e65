"""The cache's parts on their own: the key, the memory store's bounds and lifetimes, what may
be stored, and the stage's decisions (semantic served as exact, provider state, no-store)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.cache.config import CacheSettings
from gateway.cache.entry import Entry, refusal
from gateway.cache.key import CacheKey, cache_key
from gateway.cache.metrics import CacheMetrics
from gateway.cache.stage import CacheStage
from gateway.cache.store import MemoryStore
from gateway.call import Call, Endpoint, Principal
from gateway.callstate import CacheDirective
from tests.waiting import FakeClock

ALICE = Principal(key_id="k-alice", team="red", user="alice")
BOB = Principal(key_id="k-bob", team="red", user="bob")
EVE = Principal(key_id="k-eve", team="blue", user="eve")
BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def _call(body: dict[str, Any] | None = None, principal: Principal = ALICE, **kw: Any) -> Call:
    body = dict(BODY if body is None else body)
    endpoint = kw.pop("endpoint", Endpoint.CHAT)
    return Call(
        request_id="req_1",
        endpoint=endpoint,
        body=body,
        headers=kw.pop("headers", {}),
        principal=principal,
        model=body.get("model", ""),
        **kw,
    )


def test_the_key_ignores_delivery_and_caller_labels_and_keys_everything_else() -> None:
    base = cache_key(_call(), "team:red")
    same = {
        **BODY,
        "stream": True,
        "stream_options": {"include_usage": True},
        "user": "x",
        "metadata": {"a": 1},
    }
    assert cache_key(_call(same), "team:red") == base
    for change in ({"temperature": 0.0}, {"max_tokens": 9}, {"new_param": 1}, {"model": "gpt-test-cheap"}):
        assert cache_key(_call({**BODY, **change}), "team:red").digest != base.digest, change
    assert cache_key(_call(), "team:blue").digest != base.digest
    assert cache_key(_call(endpoint=Endpoint.RESPONSES), "team:red").digest != base.digest
    reordered = {"temperature": 0, "messages": BODY["messages"], "model": "gpt-test"}
    assert cache_key(_call(reordered), "team:red") == base  # key order is not content


async def test_memory_store_is_bounded_by_bytes_and_expires() -> None:
    clock = FakeClock()
    store = MemoryStore(max_bytes=4096, clock=clock)
    keys = [CacheKey("team:red", "m", f"{i:040x}") for i in range(10)]
    for key in keys:
        await store.put(key, b"x" * 1000, ttl_s=60)
    assert store.bytes <= 4096 and store.evictions > 0
    assert await store.get(keys[0]) is None and await store.get(keys[-1]) == b"x" * 1000
    await store.put(CacheKey("team:red", "m", "f" * 40), b"y" * 10_000, ttl_s=60)  # bigger than the bound
    assert store.bytes <= 4096
    clock.advance(61)
    assert await store.get(keys[-1]) is None
    await store.put(keys[1], b"z", 60)
    await store.put(CacheKey("team:blue", "m", "a" * 40), b"z", 60)
    assert await store.purge("team:red", None) >= 1  # expired entries of the scope go too
    assert await store.get(keys[1]) is None
    assert await store.get(CacheKey("team:blue", "m", "a" * 40)) == b"z"
    assert (await store.stats())["entries"] == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ({"error": {"message": "x"}}, "error"),
        ({"choices": [{"finish_reason": "length", "message": {}}]}, "truncated"),
        ({"choices": [{"finish_reason": "content_filter", "message": {}}]}, "content_filtered"),
        ({"choices": []}, "empty"),
        ({"choices": [{"finish_reason": "stop", "message": {"content": "ok"}}]}, None),
        ({"choices": [{"finish_reason": "tool_calls", "message": {}}]}, None),
    ],
)
def test_what_is_never_stored(answer: dict[str, Any], why: str | None) -> None:
    assert refusal(Endpoint.CHAT, answer) == why


def test_responses_must_be_complete() -> None:
    assert refusal(Endpoint.RESPONSES, {"status": "incomplete", "output": [{}]}) == "incomplete"
    assert refusal(Endpoint.RESPONSES, {"status": "completed", "output": [{"type": "message"}]}) is None
    assert Entry.decode(b"not json") is None and Entry.decode(b'{"v": 99, "answer": {}}') is None


def _stage(**settings: Any) -> CacheStage:
    cfg = CacheSettings(enabled=True, **settings)
    return CacheStage(cfg, MemoryStore(cfg.max_bytes), CacheMetrics(CollectorRegistry()))


async def test_semantic_is_served_as_exact_and_counted() -> None:
    stage = _stage()
    call = _call(cache_directive=CacheDirective("semantic", 60, "team"))
    await stage.on_request(call)
    assert call.cache is not None and call.cache.mode == "exact" and call.cache.status == "miss"
    assert call.cache.reason == "semantic_unavailable"
    assert stage.metrics.semantic_unavailable._value.get() == 1


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        ({**BODY, "previous_response_id": "resp_1"}, {}, "provider_state:previous_response_id"),
        ({**BODY, "store": True}, {}, "provider_state:store"),
        (BODY, {"cache-control": "max-age=0, no-store"}, "no_store"),
    ],
)
async def test_bypasses(body: dict[str, Any], headers: dict[str, str], reason: str) -> None:
    stage = _stage(default_mode="exact")
    call = _call(body, headers=headers)
    await stage.on_request(call)
    assert call.cache is not None and (call.cache.status, call.cache.reason) == ("bypass", reason)
    assert call.response_headers["x-wardgate-cache"] == "bypass"


async def test_off_without_a_decision_unless_configured() -> None:
    call = _call()
    await _stage().on_request(call)
    assert call.cache is not None and call.cache.status == "bypass" and call.cache.reason == "off"
    call = _call()
    await _stage(default_mode="exact", default_scope="key").on_request(call)
    assert call.cache is not None and call.cache.status == "miss" and call.cache.scope == "key"


@pytest.mark.parametrize(
    "cache",
    [
        {"mode": "fuzzy"},
        {"mode": "exact", "ttl_s": 0},
        {"mode": "exact", "ttl_s": True},
        {"mode": "exact", "scope": "world"},
        {"mode": "exact", "typo": 1},
        "exact",
    ],
)
def test_a_malformed_cache_decision_fails_closed(cache: Any) -> None:
    from gateway.policy.decision import MalformedDecision, PolicyDecision

    with pytest.raises(MalformedDecision):
        PolicyDecision.from_result({"allow": True, "cache": cache})
    ok = PolicyDecision.from_result({"allow": True, "cache": {"mode": "exact", "ttl_s": 60}})
    assert ok.cache == {"mode": "exact", "ttl_s": 60, "scope": "team"}
