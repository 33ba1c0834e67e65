"""Prometheus metrics of the policy subsystem (on the app's registry, never the global one).

The hot-path metrics keep their labelled children in a dict: ``labels()`` costs a few µs per
call (lock, tuple checks), which is most of what metrics would add to a decision.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.observability.labels import LabelledChildren

_LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "wardgate_policy_decisions_total",
            "Policy decisions by phase and outcome.",
            ("phase", "outcome"),
            registry=registry,
        )
        self.errors = Counter(
            "wardgate_policy_errors_total",
            "Calls the policy engine could not decide (timeout, unavailable, error, malformed).",
            ("phase", "engine", "kind", "fail_open"),
            registry=registry,
        )
        self.latency = Histogram(
            "wardgate_policy_eval_seconds",
            "Time to evaluate one policy decision.",
            ("phase", "engine"),
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.reloads = Counter(
            "wardgate_policy_reloads_total",
            "Policy reload attempts by result.",
            ("result",),
            registry=registry,
        )
        self.loaded_at = Gauge(
            "wardgate_policy_loaded_timestamp_seconds",
            "When the active policy revision was loaded.",
            registry=registry,
            multiprocess_mode="livemax",  # the latest load among the live workers
        )
        self._child = LabelledChildren()

    def decided(self, phase: str, outcome: str) -> None:
        self._child(self.decisions, phase, outcome).inc()

    def observe(self, phase: str, engine: str, seconds: float) -> None:
        self._child(self.latency, phase, engine).observe(seconds)
