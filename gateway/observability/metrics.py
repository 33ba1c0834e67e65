"""Prometheus metrics of the request path and the audit log, on ``ctx.registry``.

Everything per call is recorded from the finished ``Call`` in one place (``observe_call``,
called by the audit stage's finish hook), so stages do not each pay for metrics on the hot
path. Labels are bounded: names from config pass through ``BoundedValues``; run, request and
event ids are never labels. Other areas register their own series on the same
``ctx.registry`` and are not duplicated here: approvals pending and time to decision
(``wardgate_approvals_*``), redactions by entity type (``wardgate_redaction_entities_total``),
policy evaluations (``wardgate_policy_*``), limits store health (``wardgate_limits_*``).

Multi-worker: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the workers start, as
prometheus-client requires), values live in per-process files and ``GET /metrics`` merges them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.call import Call
from gateway.errors import GatewayError, RateLimited, UpstreamError
from gateway.http.ops_auth import require_ops_token
from gateway.observability import buffered
from gateway.observability.config import MetricsSettings
from gateway.observability.fast import PROBE, fast_path
from gateway.observability.labels import NONE, UNKNOWN, BoundedValues, LabelledChildren

_FAST = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LIMIT_CODES = frozenset({"rate_limit_exceeded", "budget_exceeded", "loop_detected", "upstream_rate_limited"})
#: Budget scopes with unbounded values (one per run / agent) are not exported as gauges.
_UNBOUNDED_SCOPES = ("run", "agent", "request")


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry,
        settings: MetricsSettings | None = None,
        known_model: Callable[[str], object] | None = None,
    ) -> None:
        """``known_model(name)`` is truthy for a configured model (the catalog's ``get``)."""
        limit = (settings or MetricsSettings()).max_label_values
        self._known_model = known_model
        self.team, self.model, self.deployment = (
            BoundedValues(limit),
            BoundedValues(limit),
            BoundedValues(limit),
        )
        self.rule, self.scope = BoundedValues(limit), BoundedValues(limit)
        self.stage = BoundedValues(64)
        #: Label children by (metric, values); label values are bounded, so this is too.
        self._child = LabelledChildren()
        #: The per-call hot path skips the generic lookup for what every call records: the
        #: request counter and latency by (endpoint, model, status), the stage latencies.
        self._heads: dict[tuple[str, str, int | None], tuple[Any, Any]] = {}
        self._stages: dict[str, Any] = {}
        self._count, self._observe = fast_path()
        r = registry
        self.requests = Counter(
            "wardgate_requests",
            "Calls by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "wardgate_request_duration_seconds",
            "Whole-call latency.",
            ["endpoint"],
            buckets=_SLOW,
            registry=r,
        )
        self.decisions = Counter(
            "wardgate_decisions",
            "Guard decisions by stage, phase, outcome and rule.",
            ["stage", "phase", "outcome", "rule"],
            registry=r,
        )
        self.stage_seconds = Histogram(
            "wardgate_stage_duration_seconds",
            "Time spent per pipeline stage.",
            ["stage"],
            buckets=_FAST,
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "wardgate_upstream_duration_seconds",
            "Upstream (forward) latency.",
            ["model", "deployment"],
            buckets=_SLOW,
            registry=r,
        )
        self.upstream_errors = Counter(
            "wardgate_upstream_errors",
            "Upstream failures by deployment and code.",
            ["deployment", "code"],
            registry=r,
        )
        self.failed_attempts = Counter(
            "wardgate_upstream_failed_attempts",
            "Deployment attempts that failed, by deployment and code, also when a retry or a "
            "fallback to another deployment then answered the call.",
            ["deployment", "code"],
            registry=r,
        )
        self.tokens = Counter(
            "wardgate_tokens",
            "Tokens by team, model and direction (input/output).",
            ["team", "model", "direction"],
            registry=r,
        )
        self.cost = Counter(
            "wardgate_cost_usd", "Settled cost in USD by team and model.", ["team", "model"], registry=r
        )
        self.limit_rejections = Counter(
            "wardgate_limit_rejections", "Calls refused by rate limits or budgets.", ["code"], registry=r
        )
        self.budget_remaining = Gauge(
            "wardgate_budget_remaining_usd",
            "Budget left per scope (last seen).",
            ["scope"],
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.audit_events = Counter(
            "wardgate_audit_events", "Audit events made durable, by kind.", ["kind"], registry=r
        )
        self.audit_record_seconds = Histogram(
            "wardgate_audit_record_seconds",
            "record() latency: queued until durable.",
            buckets=_FAST,
            registry=r,
        )
        self.audit_commit_seconds = Histogram(
            "wardgate_audit_commit_seconds", "One group commit.", buckets=_FAST, registry=r
        )
        self.audit_batch = Histogram(
            "wardgate_audit_batch_events", "Events per group commit.", buckets=_BATCH, registry=r
        )
        self.audit_failures = Counter("wardgate_audit_write_failures", "Failed audit commits.", registry=r)
        self.audit_rejections = Counter(
            "wardgate_audit_rejected_events", "Events that could not be recorded.", ["kind"], registry=r
        )

    # --- the audit log -----------------------------------------------------------------
    def audit_recorded(self, kind: str, seconds: float) -> None:
        self._count(self._child(self.audit_events, self.rule(kind)), 1.0)
        self._observe(self.audit_record_seconds, max(seconds, 0.0))

    def audit_committed(self, n: int, seconds: float) -> None:
        self._observe(self.audit_commit_seconds, max(seconds, 0.0))
        self._observe(self.audit_batch, n)

    def audit_failed(self) -> None:
        self.audit_failures.inc()

    def audit_rejected(self, kind: str) -> None:
        self._child(self.audit_rejections, self.rule(kind)).inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        self._child(self.stage_seconds, self.stage(stage)).observe(seconds)

    # --- one finished call -------------------------------------------------------------
    def observe_call(self, call: Call, status: int | None, total_s: float) -> None:
        count, observe = self._count, self._observe
        endpoint = call.endpoint.value
        model = self._model_label(call)
        key = (endpoint, model, status)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                self.requests.labels(endpoint, model, str(status or 0)),
                self._child(self.request_seconds, endpoint),
            )
        count(head[0], 1.0)
        observe(head[1], total_s)
        for d in call.decisions:
            count(
                self._child(self.decisions, d.stage, d.phase, d.outcome, self.rule(d.detail.get("rule", ""))),
                1.0,
            )
        stages = self._stages
        for stage, seconds in call.timings.items():
            child = stages.get(stage)
            if child is None:
                child = stages[stage] = self._child(self.stage_seconds, self.stage(stage))
            observe(child, seconds)
        deployment = self.deployment(call.deployment)
        if call.deployment is not None and "forward" in call.timings:
            observe(self._child(self.upstream_seconds, model, deployment), call.timings["forward"])
        for attempt in call.upstream_attempts:
            if attempt.error is not None:
                self._child(self.failed_attempts, self.deployment(attempt.deployment), attempt.error).inc()
        err = call.error
        if err is not None:
            if isinstance(err, UpstreamError):
                self._child(self.upstream_errors, deployment, err.code).inc()
            if isinstance(err, GatewayError) and (isinstance(err, RateLimited) or err.code in _LIMIT_CODES):
                self._child(self.limit_rejections, err.code).inc()
        if call.usage is not None or call.cost_usd:
            self._observe_spend(call, model)
        budget = call.budget
        if budget is not None:
            for scope, left in budget.remaining_usd.items():
                if isinstance(left, int | float) and not str(scope).startswith(_UNBOUNDED_SCOPES):
                    self._child(self.budget_remaining, self.scope(scope)).set(left)

    def _model_label(self, call: Call) -> str:
        """The requested model, only when an authenticated caller named a configured model:
        anything else is a name a client made up, and would otherwise take one of the bounded
        label slots (first come, first kept) from a real model for the process's lifetime."""
        name = call.model
        if not name:
            return NONE
        if call.principal is None or (self._known_model is not None and not self._known_model(name)):
            return UNKNOWN
        return self.model(name)

    def _observe_spend(self, call: Call, model: str) -> None:
        team = self.team(call.principal.team if call.principal else None)
        usage = call.usage
        if usage is not None:
            self._count(self._child(self.tokens, team, model, "input"), max(usage.input_tokens, 0))
            self._count(self._child(self.tokens, team, model, "output"), max(usage.output_tokens, 0))
        if call.cost_usd and call.cost_usd > 0:
            self._count(self._child(self.cost, team, model), call.cost_usd)


class _Merged(Collector):
    """Every worker's values from the multiprocess files, without the fast-path probe's series
    (``fast.PROBE``: written there by each process's start-up check, not a metric of ours)."""

    def __init__(self) -> None:
        from prometheus_client import multiprocess

        self._files = multiprocess.MultiProcessCollector(None)

    def collect(self) -> Iterator[Metric]:
        for family in self._files.collect():
            if not family.name.startswith(PROBE):
                yield family


def render(registry: CollectorRegistry) -> bytes:
    """The exposition text; merges every worker's values in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        buffered.flush()  # this worker's own values exactly (the others' at most 0.1 s old)
        merged = CollectorRegistry()
        merged.register(_Merged())
        return generate_latest(merged)
    return generate_latest(registry)


async def _metrics(request: Request) -> Response:
    """Prometheus metrics of this gateway (all workers)."""
    require_ops_token(request)
    return Response(render(request.app.state.ctx.registry), media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    """``GET /metrics``: open like most Prometheus targets unless ``server.metrics_token`` is set."""
    return Route("/metrics", _metrics, methods=["GET"], name="metrics")
