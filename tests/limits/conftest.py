"""Fixtures of the limits tests: one suite, run against MemoryStore and RedisStore (real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.limits.memory import MemoryStore
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import LimitStore
from tests.limits.limits_support import T0, FakeClock, StoreFactory  # noqa: F401  (re-exported)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "redis"])
async def make_store(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[StoreFactory]:
    """Build stores of the parametrized kind on the test's clock; Redis keys are deleted after."""
    made: list[RedisStore] = []
    kind = request.param

    async def factory(**options: Any) -> LimitStore:
        options.setdefault("clock", clock)
        if kind == "memory":
            return MemoryStore(**options)
        url = request.getfixturevalue("redis_url")
        store = RedisStore(url, prefix=f"wgtest:{uuid.uuid4().hex[:12]}", **options)
        await store.start()
        made.append(store)
        return store

    yield factory
    for store in made:
        await store.delete_prefix()
        await store.close()


@pytest.fixture
async def store(make_store: StoreFactory) -> LimitStore:
    return await make_store()
