"""Periodic checkpoints witness the other chains; tracing exporters build from settings."""

from __future__ import annotations

import asyncio

from gateway.audit.store.base import Filters
from gateway.audit.verify import verify
from gateway.observability.config import TracingSettings
from gateway.observability.tracing import CallTracer
from tests.waiting import wait_until_async


async def _checkpoints(service) -> list[dict]:
    return await service.store.query(Filters(kind="checkpoint"), limit=100)


async def test_a_checkpoint_follows_every_n_events_and_witnesses_the_other_chains(make_service):
    other = await make_service()
    await other.record("admin", {"action": "warm"})
    service = await make_service(checkpoint_every=5, checkpoint_interval_s=3600)
    for i in range(5):
        await service.record("admin", {"n": i})
    await wait_until_async(lambda: _checkpoints(service))
    [cp] = await _checkpoints(service)
    assert cp["shard"] == service.shard and cp["data"]["events_since_last"] >= 5
    witnessed = cp["data"]["witness"][other.shard]
    assert witnessed["seq"] == 2 and len(witnessed["hash"]) == 64
    assert (await verify(service.store)).ok


async def test_an_idle_chain_writes_no_empty_checkpoints(make_service):
    service = await make_service(checkpoint_interval_s=0.05)
    await asyncio.sleep(0.3)
    assert await _checkpoints(service) == []  # only chain_open so far: nothing to checkpoint
    await service.record("admin", {"n": 1})
    await wait_until_async(lambda: _checkpoints(service))
    assert len(await _checkpoints(service)) == 1


async def test_the_otlp_and_console_exporters_build_from_settings():
    for settings in (
        TracingSettings(
            enabled=True, otlp_endpoint="http://127.0.0.1:9/v1/traces", otlp_headers={"x-tenant": "wardgate"}
        ),
        TracingSettings(enabled=True, exporter="console", sample_ratio=0.5),
    ):
        tracer = CallTracer(settings)
        assert tracer.provider.resource.attributes["service.name"] == "wardgate"
        await tracer.close()
