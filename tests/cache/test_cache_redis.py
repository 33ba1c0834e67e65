"""The Redis store: two gateway processes share answers (stored compressed, with their TTL,
under hash-tagged keys), a purge through one is seen by the other, and a Redis that is down
is a miss, visible in the metrics, never a failed call."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis as redis_sync

from gateway.http.launch import serve_in_thread
from tests.cache.conftest import cache_settings
from tests.harness import ADMIN_KEY, TEST_KEY, GatewayProcess
from tests.waiting import wait_until

OFF = {
    "limits": {"enabled": False},
    "approvals": {"enabled": False},
    "audit": {"enabled": False},
    "redaction": {"enabled": False},
}


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"wgtest:{uuid.uuid4().hex[:12]}:cache"
    yield value
    client = redis_sync.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=value + ":*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def _settings(root: Path, upstream_url: str, cache: dict[str, Any]) -> Any:
    return cache_settings(root, upstream_url, cache=cache, **OFF)


def _chat(base_url: str, content: str, stream: bool = False) -> Any:
    client = openai.OpenAI(base_url=base_url, api_key=TEST_KEY, timeout=30)
    messages = [{"role": "user", "content": content}]
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=messages, temperature=0, stream=True
        ) as response:
            text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
            return response.headers["x-wardgate-cache"], text
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=messages, temperature=0)
    return raw.headers["x-wardgate-cache"], raw.parse().choices[0].message.content


def test_two_gateway_processes_share_answers_through_redis(
    tmp_path: Path, fake_upstream: Any, upstream: Any, redis_url: str, prefix: str
) -> None:
    cache = {"enabled": True, "store": "redis", "redis_url": redis_url, "redis_prefix": prefix}
    config = _settings(tmp_path, fake_upstream.base_url, cache).model_dump(mode="json")
    procs = [GatewayProcess(config, tmp_path).spawn() for _ in range(2)]
    store = redis_sync.Redis.from_url(redis_url)
    try:
        a, b = (p.wait_ready(120) for p in procs)
        content = f"Plan the week {uuid.uuid4().hex}"
        upstream.script_text("A long plan. " * 80, times=1)  # over compress_min_bytes
        status, first = _chat(a.base_url, content)
        assert status == "miss"
        keys = wait_until(lambda: list(store.scan_iter(match=prefix + ":*")), message="nothing stored")
        [key] = keys
        assert key.decode().startswith(prefix + ":{team:test}:gpt-test:")  # the scope is the hash tag
        raw = store.get(key)
        assert raw is not None and raw[:1] == b"z" and len(raw) < len(first)  # compressed
        assert 0 < store.pttl(key) <= 3600 * 1000
        assert _chat(b.base_url, content) == ("hit", first)
        assert _chat(b.base_url, content, stream=True) == ("hit", first)
        assert len(upstream.requests) == 1
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        r = httpx.post(b.url + "/admin/cache/purge", headers=admin, json={"scope": "team:test"}, timeout=10)
        assert r.json()["deleted"] == 1
        assert _chat(a.base_url, content)[0] == "miss"
    finally:
        store.close()
        for proc in procs:
            proc.stop()


def test_redis_down_is_a_miss_counted_in_the_metrics(
    tmp_path: Path, fake_upstream: Any, upstream: Any
) -> None:
    cache = {"enabled": True, "store": "redis", "redis_url": "redis://127.0.0.1:1/0", "redis_timeout_s": 0.2}
    with serve_in_thread(_settings(tmp_path, fake_upstream.base_url, cache)) as gw:
        content = f"Still answered {uuid.uuid4().hex}"
        for _ in range(2):
            status, text = _chat(gw.base_url, content)
            assert status == "miss" and text
        assert _chat(gw.base_url, content, stream=True)[0] == "miss"
        metrics = httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"}).text
        assert 'wardgate_cache_errors_total{op="get",store="redis"}' in metrics
        assert len(upstream.requests) == 3


def test_semantic_hits_across_two_gateway_processes_through_the_redis_feed(
    tmp_path: Path, fake_upstream: Any, upstream: Any, redis_url: str, prefix: str
) -> None:
    """Vectors stored beside entries and announced over pub/sub: a paraphrase asked of the
    other process hits what this one stored; a purge through one is forgotten by both."""
    cache = {
        "enabled": True,
        "store": "redis",
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "default_mode": "semantic",
        "semantic_preload": True,
    }
    settings = cache_settings(tmp_path, fake_upstream.base_url, cache=cache, policy={"enabled": False}, **OFF)
    procs = [GatewayProcess(settings.model_dump(mode="json"), tmp_path).spawn() for _ in range(2)]
    store = redis_sync.Redis.from_url(redis_url)
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    try:
        a, b = (p.wait_ready(120) for p in procs)
        topic = uuid.uuid4().hex[:8]
        status, first = _chat(a.base_url, f"Explain what a hash table is, topic {topic}.")
        assert status == "miss"
        [vec] = wait_until(lambda: list(store.scan_iter(match=prefix + ":vec:*")), message="no vector stored")
        assert vec.decode().startswith(prefix + ":vec:{team:test}:gpt-test:")
        assert 0 < store.pttl(vec) <= 3600 * 1000

        def indexed() -> bool:
            doc = httpx.get(b.url + "/admin/cache", headers=admin, timeout=10).json()
            return bool(doc["semantic"]["vectors"])

        wait_until(indexed, message="the other process never indexed the announced vector")
        paraphrase = f"Can you explain what a hash table is, topic {topic}?"
        assert _chat(b.base_url, paraphrase) == ("hit", first)
        assert _chat(b.base_url, paraphrase, stream=True) == ("hit", first)
        assert len(upstream.requests) == 1
        r = httpx.post(b.url + "/admin/cache/purge", headers=admin, json={"scope": "team:test"}, timeout=10)
        assert r.json()["deleted"] == 1 and not list(store.scan_iter(match=prefix + ":*"))
        assert _chat(a.base_url, paraphrase)[0] == "miss"
    finally:
        store.close()
        for proc in procs:
            proc.stop()
