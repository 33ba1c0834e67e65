"""GC pauses are measured per generation, long ones are logged, and the watch can be removed."""

from __future__ import annotations

import gc
import logging

from prometheus_client import CollectorRegistry

from gateway.observability.gcwatch import GCWatch
from tests.harness import PASS_THROUGH, gateway_settings, running_gateway


def _count(registry: CollectorRegistry, generation: str) -> float:
    value = registry.get_sample_value("wardgate_gc_pause_seconds_count", {"generation": generation})
    return value or 0.0


async def test_a_full_collection_is_observed_and_a_slow_one_is_logged(caplog) -> None:
    registry = CollectorRegistry()
    watch = GCWatch(registry, slow_s=0.0)  # every pause counts as slow here
    watch.install()
    try:
        with caplog.at_level(logging.WARNING, logger="wardgate.gc"):
            gc.collect()
        assert _count(registry, "2") >= 1
        assert any("gc generation 2 paused" in r.getMessage() for r in caplog.records)
    finally:
        await watch.close()
    assert watch not in gc.callbacks
    before = _count(registry, "2")
    gc.collect()
    assert _count(registry, "2") == before


def test_the_gateway_collects_its_young_generation_less_often_while_it_runs(tmp_path, upstream) -> None:
    """A young collection scans every object of every call in flight: the lifespan raises its
    threshold from CPython's 700 and puts the interpreter's setting back when the app stops."""
    before = gc.get_threshold()
    with running_gateway(gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)):
        during = gc.get_threshold()
    assert during[0] == 20_000 and during[1:] == before[1:]
    assert gc.get_threshold() == before
