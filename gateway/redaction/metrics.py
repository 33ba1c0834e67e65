"""Prometheus metrics of the redaction stages, on the app's own registry (never the global one).

Engine counters (cache hits, Presidio calls, offloaded texts) are plain ints the engine bumps
on its hot path; a collector reads them at scrape time, so redaction pays nothing per call
for them. In Prometheus multiprocess mode a scrape reads files, never collectors: there the
same series are file-backed and each worker writes its ints into them every second
(``EngineSeries.sync``, run by ``gateway.observability.multiproc.follow``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.observability.labels import LabelledChildren
from gateway.observability.multiproc import CounterFeed, enabled
from gateway.redaction.engine import RedactionEngine

_CACHE_HITS = ("wardgate_redaction_cache_hits", "Texts whose analysis came from the cache.")
_CACHE_MISSES = ("wardgate_redaction_cache_misses", "Texts analysed (not in the cache).")
_CACHE_ENTRIES = ("wardgate_redaction_cache_entries", "Analysis results cached.")
_PRESIDIO_CALLS = ("wardgate_redaction_presidio_calls", "Presidio analyze calls (windows).")
_OFFLOADED = ("wardgate_redaction_offloaded", "Texts analysed in a worker thread.")


class RedactionMetrics:
    def __init__(self, registry: CollectorRegistry, engine: RedactionEngine) -> None:
        self.entities = Counter(
            "wardgate_redaction_entities_total",
            "Sensitive values found, by entity type and side (request/response).",
            ["type", "phase"],
            registry=registry,
        )
        #: ``entities``' children by (type, phase): ``labels()`` is a lock and tuple checks
        #: (a few us) on every call of both stages; the types are the recognizers' (bounded).
        self._child = LabelledChildren()
        self.blocked = Counter(
            "wardgate_redaction_blocked_total", "Requests refused for sensitive data.", registry=registry
        )
        self.answer_over_budget = Counter(
            "wardgate_redaction_answer_over_budget_total",
            "Answers whose scan went over the work budget: scanned in full and delivered (they are paid for).",
            registry=registry,
        )
        #: Multiprocess mode: the engine's ints as file-backed series (``sync`` writes them).
        self.engine_series: EngineSeries | None = None
        if enabled():
            self.engine_series = EngineSeries(registry, engine)
        else:
            registry.register(_EngineCollector(engine))

    def count(self, entities: Mapping[str, int], phase: str) -> None:
        """Add one call's values found, by type, to ``entities`` (``phase``: request/response)."""
        child, metric = self._child, self.entities
        for entity, n in entities.items():
            child(metric, entity, phase).inc(n)


class EngineSeries:
    """The engine's counters as file-backed series, for Prometheus multiprocess mode."""

    def __init__(self, registry: CollectorRegistry, engine: RedactionEngine) -> None:
        self._engine = engine
        self._hits = CounterFeed(Counter(*_CACHE_HITS, registry=registry))
        self._misses = CounterFeed(Counter(*_CACHE_MISSES, registry=registry))
        self._presidio = CounterFeed(Counter(*_PRESIDIO_CALLS, registry=registry))
        self._offloaded = CounterFeed(Counter(*_OFFLOADED, registry=registry))
        # Each worker has its own cache: the deployment's entries are the live workers' sum.
        self._entries = Gauge(*_CACHE_ENTRIES, registry=registry, multiprocess_mode="livesum")

    def sync(self) -> None:
        e = self._engine
        self._hits.update(e.cache.hits)
        self._misses.update(e.cache.misses)
        self._presidio.update(e.presidio_calls)
        self._offloaded.update(e.offloaded)
        self._entries.set(len(e.cache))


class _EngineCollector(Collector):
    def __init__(self, engine: RedactionEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        e = self._engine
        yield CounterMetricFamily(*_CACHE_HITS, value=e.cache.hits)
        yield CounterMetricFamily(*_CACHE_MISSES, value=e.cache.misses)
        yield GaugeMetricFamily(*_CACHE_ENTRIES, value=len(e.cache))
        yield CounterMetricFamily(*_PRESIDIO_CALLS, value=e.presidio_calls)
        yield CounterMetricFamily(*_OFFLOADED, value=e.offloaded)
