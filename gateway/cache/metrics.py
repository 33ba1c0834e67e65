"""Prometheus metrics of the response cache (on the app's registry).

Labels are bounded: the result, the team and the model (teams and models come from
configuration), never a key, agent or run (those are in ``/admin/spend/report``, from the
audit log). Children are kept in a dict: ``labels()`` costs a few µs per call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from gateway.observability.labels import LabelledChildren


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "wardgate_cache_lookups_total",
            "Calls by cache result (hit, miss, bypass, store), team and model.",
            ("result", "team", "model"),
            registry=registry,
        )
        self.saved = Counter(
            "wardgate_cache_saved_usd_total",
            "What the answers served from the cache cost when they were stored (USD).",
            ("team", "model"),
            registry=registry,
        )
        self.stores = Counter(
            "wardgate_cache_stores_total",
            "Answers offered to the cache: stored, or why not.",
            ("outcome",),
            registry=registry,
        )
        self.errors = Counter(
            "wardgate_cache_errors_total",
            "Store failures, each served as a miss (get) or not stored (put).",
            ("store", "op"),
            registry=registry,
        )
        self.semantic_unavailable = Counter(
            "wardgate_cache_semantic_unavailable_total",
            "Calls a policy asked to cache semantically, served as exact (semantic off, or its model not loaded yet).",
            registry=registry,
        )
        self._child = LabelledChildren()
        #: This process's totals, for ``GET /admin/cache`` (the counters above are per label).
        self.totals: dict[str, int] = {"hit": 0, "miss": 0, "bypass": 0, "store": 0}
        self.saved_total_usd = 0.0

    def looked_up(self, result: str, team: str, model: str) -> None:
        self._child(self.lookups, result, team, model).inc()
        self.totals[result] += 1

    def saved_usd(self, team: str, model: str, usd: float) -> None:
        if usd > 0:
            self._child(self.saved, team, model).inc(usd)
            self.saved_total_usd += usd

    def stored(self, outcome: str) -> None:
        self._child(self.stores, outcome).inc()

    def error(self, store: str, op: str) -> None:
        self._child(self.errors, store, op).inc()
