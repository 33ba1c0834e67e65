"""Prometheus metrics of the redaction stages, on the app's own registry (never the global one).

Engine counters (cache hits, Presidio calls, offloaded texts) are plain ints the engine bumps
on its hot path; a collector reads them at scrape time, so redaction pays nothing per call
for them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.redaction.engine import RedactionEngine


class RedactionMetrics:
    def __init__(self, registry: CollectorRegistry, engine: RedactionEngine) -> None:
        self.entities = Counter(
            "wardgate_redaction_entities_total",
            "Sensitive values found, by entity type and side (request/response).",
            ["type", "phase"],
            registry=registry,
        )
        self.blocked = Counter(
            "wardgate_redaction_blocked_total", "Requests refused for sensitive data.", registry=registry
        )
        self.answer_over_budget = Counter(
            "wardgate_redaction_answer_over_budget_total",
            "Answers whose scan went over the work budget: scanned in full and delivered (they are paid for).",
            registry=registry,
        )
        registry.register(_EngineCollector(engine))


class _EngineCollector(Collector):
    def __init__(self, engine: RedactionEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        e = self._engine
        yield CounterMetricFamily(
            "wardgate_redaction_cache_hits", "Texts whose analysis came from the cache.", value=e.cache.hits
        )
        yield CounterMetricFamily(
            "wardgate_redaction_cache_misses", "Texts analysed (not in the cache).", value=e.cache.misses
        )
        yield GaugeMetricFamily(
            "wardgate_redaction_cache_entries", "Analysis results cached.", value=len(e.cache)
        )
        yield CounterMetricFamily(
            "wardgate_redaction_presidio_calls", "Presidio analyze calls (windows).", value=e.presidio_calls
        )
        yield CounterMetricFamily(
            "wardgate_redaction_offloaded", "Texts analysed in a worker thread.", value=e.offloaded
        )
