"""Redis key hygiene: every key a script writes carries the scope's idle TTL, and nothing else is left behind."""

from __future__ import annotations

import uuid

import redis.asyncio as aioredis

from gateway.limits.redis_store import RedisStore
from gateway.limits.store import ScopeSpec, usd_to_nano
from tests.limits.limits_helpers import TEAM, request, reserve

RETENTION_MS = 3_600_000


async def test_every_written_key_gets_the_retention_ttl_and_settle_keeps_it(redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"wgtest:{uuid.uuid4().hex[:12]}")
    await store.start()
    client = aioredis.from_url(redis_url, decode_responses=True)
    specs = (
        ScopeSpec(
            "run", "r1", rpm=100, budget_nano=(None, None, usd_to_nano(1.0)), retention_ms=RETENTION_MS
        ),
        ScopeSpec("agent", "a1", retention_ms=RETENTION_MS),  # no limits: reserve writes none of its keys
    )
    try:
        result, res = await reserve(store, request(specs))
        assert result.ok and res is not None
        run = store.keys.scope(TEAM, "run", "r1")
        for suffix in (":h", ":l", ":w"):
            assert 0 < await client.pttl(run + suffix) <= RETENTION_MS
        assert await client.exists(store.keys.record(TEAM, res.rid)) == 0  # reserve leaves no record
        settled = await store.settle(res, usd_to_nano(0.0005), 10)
        assert settled.applied
        agent = store.keys.scope(TEAM, "agent", "a1")
        for key in (run + ":h", run + ":w", agent + ":h"):
            assert 0 < await client.pttl(key) <= RETENTION_MS
        assert await client.pttl(store.keys.record(TEAM, res.rid)) > 0
        assert not (await store.settle(res, usd_to_nano(0.0005), 10)).applied
    finally:
        await store.delete_prefix()
        await store.close()
        await client.aclose()
