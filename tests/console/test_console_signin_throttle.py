"""The sign-in throttle on its own (gateway/console/throttle.py), on memory and on a real Redis:
failures counted per client address and per key prefix, refused at the limit with the seconds
until the oldest counted failure leaves the window, open again afterwards. (The gateway-level
test, shared by two replicas and audited, is in test_console_replicas_real_values.py.)"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.console.throttle import MemoryThrottleStore, RedisThrottleStore, SignInThrottle

KEY = "wg-admin-610b16c1e53e120636d9738679f735fa"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_counts_per_address_and_per_key_prefix() -> None:
    clock = Clock()
    throttle = SignInThrottle(MemoryThrottleStore(clock), per_ip=3, per_key_prefix=5, window_s=60)
    for i in range(3):
        assert (await throttle.check("10.0.0.1", f"wg-guess-{i}")).allowed
        clock.now += 1
        verdict = await throttle.failed("10.0.0.1", f"wg-guess-{i}")
    assert verdict.refused == ("ip",) and verdict.counts == (3, 1)
    refused = await throttle.check("10.0.0.1", KEY)  # the right key is refused too (not checked)
    assert refused.refused == ("ip",) and refused.retry_after_s == pytest.approx(58.0)
    assert refused.retry_after == "58"
    assert (await throttle.check("10.0.0.2", KEY)).allowed  # another address is not
    # one key prefix guessed from many addresses
    for i in range(5):
        await throttle.failed(f"10.1.0.{i}", KEY[:12] + f"guess{i}")
    spread = await throttle.check("10.9.9.9", KEY)
    assert spread.refused == ("key_prefix",) and spread.counts == (0, 5)
    assert (await throttle.check("10.9.9.9", "wg-admin-other")).allowed
    # after the window the legitimate user gets in again
    clock.now += 61
    assert (await throttle.check("10.0.0.1", KEY)).allowed and (await throttle.check("10.9.9.9", KEY)).allowed


@pytest.fixture
async def redis_throttle(redis_url: str) -> AsyncIterator[SignInThrottle]:
    store = RedisThrottleStore.from_url(redis_url, "standalone", f"wgtest:{uuid.uuid4().hex[:12]}")
    throttle = SignInThrottle(store, per_ip=2, per_key_prefix=10, window_s=0.4)
    yield throttle
    await throttle.close()


async def test_redis_refuses_at_the_limit_and_opens_after_the_window(redis_throttle: SignInThrottle) -> None:
    import asyncio

    assert (await redis_throttle.failed("10.0.0.1", "wg-a")).allowed
    second = await redis_throttle.failed("10.0.0.1", "wg-b")
    assert second.refused == ("ip",) and 0 < second.retry_after_s <= 0.4 and second.retry_after == "1"
    refused = await redis_throttle.check("10.0.0.1", KEY)
    assert refused.refused == ("ip",) and refused.counts == (2, 0)
    assert (await redis_throttle.check("10.0.0.2", KEY)).allowed
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await redis_throttle.check("10.0.0.1", KEY)).allowed


def test_where_the_counts_live() -> None:
    from types import SimpleNamespace

    from gateway.console.config import ConsoleSettings, session_store_of, throttle_store_of

    console = ConsoleSettings()
    approvals_redis = SimpleNamespace(
        enabled=True, backend="redis", redis_url="redis://a:1/0", key_prefix="ap"
    )
    limits_redis = SimpleNamespace(
        enabled=True, backend="redis", redis_url="redis://l:2/0", redis_mode="cluster", key_prefix="lim"
    )
    limits_memory = SimpleNamespace(enabled=True, backend="memory")
    # limits on Redis: their Redis (every worker and replica shares the counts)
    sessions = session_store_of(console, None)
    assert throttle_store_of(console, limits_redis, sessions) == ("redis", "redis://l:2/0", "cluster", "lim")
    # else the sessions' Redis when they are on Redis, else memory
    sessions = session_store_of(console, approvals_redis)
    assert throttle_store_of(console, limits_memory, sessions) == (
        "redis",
        "redis://a:1/0",
        "standalone",
        "ap",
    )
    assert throttle_store_of(console, None, session_store_of(console, None))[0] == "memory"
    pinned = ConsoleSettings(signin_throttle_backend="memory")
    assert throttle_store_of(pinned, limits_redis, sessions)[0] == "memory"
