"""The approval store unreachable while a call needs it: a clear 503, never a 500.

A call whose policy asks for an approval cannot be judged without the store; it fails
closed with ``approvals_unavailable`` (OpenAI-shaped, retryable), naming where the store
is. A Redis that never answers plays the outage: a free port nobody listens on.
"""

from __future__ import annotations

import pytest

from gateway.approvals.redis_store import RedisApprovalStore
from gateway.errors import ApprovalsUnavailable
from gateway.http.launch import free_port
from tests.approvals.conftest import new_approval


@pytest.fixture
async def dead_store():
    port = free_port()
    store = RedisApprovalStore.from_url(f"redis://127.0.0.1:{port}/0", "wgtest:dead", 60)
    yield store, port
    await store.close()


async def test_every_store_primitive_refuses_with_a_503_naming_the_server(dead_store) -> None:
    store, port = dead_store
    calls = [
        store.get("apr_x"),
        store.get_answer("apr_x"),
        store.get_values("apr_x"),
        store.due(0.0),
        store.count_pending(),
        store.try_lock("sweep", 1.0),
        store.purge(0.0),
    ]
    for pending in calls:
        with pytest.raises(ApprovalsUnavailable) as caught:
            await pending
        err = caught.value
        assert err.status == 503 and err.code == "approvals_unavailable"
        assert f"127.0.0.1:{port}" in err.message and "redis://" not in err.message


async def test_creating_an_approval_on_a_dead_store_fails_closed(make_service, dead_store) -> None:
    store, _ = dead_store
    service = await make_service("redis", store=store)
    with pytest.raises(ApprovalsUnavailable):
        await new_approval(service)
