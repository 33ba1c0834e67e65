"""Prometheus metrics of the approval queue, on the app's own registry (never the global one).

``pending`` is the store's count (all replicas), refreshed by the sweep and after every
change this replica makes; the time-to-decision histogram and the outcome counter are
observed once per decision, by the replica that made it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ApprovalMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pending = Gauge(
            "wardgate_approvals_pending",
            "Approvals waiting for a reviewer (all replicas).",
            registry=registry,
            # Every worker reads the same store count: the deployment's value is the latest
            # one written, not the workers' sum (1 pending must not read 2 with two workers).
            multiprocess_mode="livemostrecent",
        )
        self.created = Counter(
            "wardgate_approvals_created_total", "Approvals created.", ["phase", "mode"], registry=registry
        )
        self.outcomes = Counter(
            "wardgate_approvals_outcomes_total",
            "Approvals decided, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.time_to_decision = Histogram(
            "wardgate_approvals_time_to_decision_seconds",
            "From creation to approval, denial or expiry.",
            ["outcome"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400),
            registry=registry,
        )
        self.joined = Counter(
            "wardgate_approvals_joined_total",
            "Identical re-sends (SDK retries) that joined a pending approval instead of a new one.",
            registry=registry,
        )
        self.held = Gauge(
            "wardgate_approvals_held_requests",
            "HTTP requests held open (summed over live workers in multiprocess mode).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.webhooks = Counter(
            "wardgate_approvals_webhooks_total",
            "Webhook deliveries, by outcome.",
            ["group", "outcome"],
            registry=registry,
        )
