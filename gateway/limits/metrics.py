"""Prometheus metrics of the limits component, registered on the app's registry (never global).

Per-call series (decisions by outcome, cost, tokens, budget remaining) are recorded by the
observability component from the finished ``Call`` (its ``decisions``, ``cost_usd`` and
``call.budget``); these are the store's own: latency, failures, fallback, late settles.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class LimitsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.store_seconds = Histogram(
            "wardgate_limits_store_seconds",
            "Latency of one limits store operation (one Redis round trip).",
            ["op", "store"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=registry,
        )
        self.store_errors = Counter(
            "wardgate_limits_store_errors", "Limits store operations that failed.", ["op"], registry=registry
        )
        self.fallback = Counter(
            "wardgate_limits_fallback",
            "Calls decided without the shared store (on_store_error = local or allow).",
            ["mode"],
            registry=registry,
        )
        self.degraded = Gauge(
            "wardgate_limits_degraded",
            "1 while the shared limits store is unreachable and limits are local or off.",
            registry=registry,
            multiprocess_mode="livemax",  # any live worker without the store degrades the deployment
        )
        self.late_settles = Counter(
            "wardgate_limits_late_settles",
            "Settles that arrived after their reservation's lease expired (raise limits.lease_s).",
            registry=registry,
        )
        self.usage_rejected = Counter(
            "wardgate_limits_usage_rejected",
            "Provider usage not believed (negative, non-numeric or absurd) and booked at the reservation.",
            ["reason"],
            registry=registry,
        )
        self.lapsed_booked = Counter(
            "wardgate_limits_lapsed_booked_usd",
            "Reservations whose lease lapsed (their worker died or lost the store) booked as spent, in USD (found by a reserve or a re-price).",
            registry=registry,
        )
