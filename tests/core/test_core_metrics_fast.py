"""The direct metric updates count exactly like prometheus-client's public methods."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.observability.fast import _count, _observe, fast_path

_BUCKETS = (0.001, 0.01, 0.1, 1.0, 10.0)


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str | None], float]:
    return {
        (s.name, s.labels.get("le")): s.value
        for m in registry.collect()
        for s in m.samples
        if not s.name.endswith("_created")
    }


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=40))
def test_direct_updates_equal_the_public_methods(values: list[float]) -> None:
    public, direct = CollectorRegistry(), CollectorRegistry()
    for registry, count, observe in ((public, None, None), (direct, _count, _observe)):
        counter = Counter("c", "c", ["l"], registry=registry).labels("x")
        histogram = Histogram("h", "h", ["l"], buckets=_BUCKETS, registry=registry).labels("x")
        unlabelled = Histogram("u", "u", buckets=_BUCKETS, registry=registry)
        for value in values:
            if count is None or observe is None:
                counter.inc(value)
                histogram.observe(value)
                unlabelled.observe(value)
            else:
                count(counter, value)
                observe(histogram, value)
                observe(unlabelled, value)
    assert _samples(direct) == _samples(public)


def test_the_installed_prometheus_client_gets_the_direct_path() -> None:
    assert fast_path() == (_count, _observe)
