"""The observability component: Prometheus metrics, the GC watch, tracing and ``GET /metrics``.

Reads the ``observability`` section. It builds the per-call ``Metrics`` (when
``metrics.enabled``), the GC pause watch that goes with them, and the ``CallTracer`` (when
``tracing.enabled``; OpenTelemetry is imported only then). It registers no stage: the audit
stage's one finish hook feeds the event, the metrics and the spans from the finished call, so
it receives ``metrics`` and ``tracer`` from this component (``gateway/components.py``).
``/metrics`` renders ``ctx.registry``, where every area registers its own series.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from gateway.observability.config import ObservabilitySettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.context import AppContext
    from gateway.observability.metrics import Metrics
    from gateway.observability.tracing import CallTracer


class Observability(BaseComponent):
    name = "observability"
    settings_model = ObservabilitySettings

    def __init__(self) -> None:
        #: Set at start: ``None`` while metrics (tracing) are disabled.
        self.metrics: Metrics | None = None
        self.tracer: CallTracer | None = None

    def routes(self) -> list[BaseRoute]:
        from gateway.observability.metrics import metrics_route

        return [metrics_route()]

    async def start(self, ctx: AppContext) -> None:
        from gateway.observability import buffered
        from gateway.observability.gcwatch import GCWatch
        from gateway.observability.metrics import Metrics

        settings = section(ctx.settings, self.name, ObservabilitySettings)
        self.metrics = self.tracer = None
        # Multiprocess mode: every area's values are written to their files in batches from
        # here on; this closer, the first registered, runs last and writes what is left.
        detach = buffered.attach(asyncio.get_running_loop())

        async def write_values() -> None:
            detach()

        ctx.closers.append(write_values)
        if settings.metrics.enabled:
            self.metrics = Metrics(ctx.registry, settings.metrics, ctx.models.get)
            gc_watch = GCWatch(ctx.registry)
            gc_watch.install()
            ctx.closers.append(gc_watch.close)
        if settings.tracing.enabled:
            from gateway.observability.tracing import CallTracer

            self.tracer = CallTracer(settings.tracing)
            ctx.closers.append(self.tracer.close)
