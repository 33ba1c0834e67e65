"""Wire the audit log, metrics and tracing into the app (``setup(ctx)``).

Publishes ``ctx.services["audit"]`` (an ``AuditService``: ``await record(kind, payload)``,
``.store`` for queries) and ``ctx.services["metrics"]`` (the ``Metrics`` holder), appends the
``audit`` stage, a closer and the ``audit`` readiness check. With ``audit.enabled: false`` the
stage still records metrics and traces, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.audit.config import AuditSettings
from gateway.audit.service import AuditService
from gateway.audit.stage import AuditStage
from gateway.audit.store import make_store
from gateway.call import Call
from gateway.context import AppContext
from gateway.observability.gcwatch import GCWatch
from gateway.observability.metrics import Metrics


def _system_of(ctx: AppContext) -> Callable[[Call], str | None]:
    def system(call: Call) -> str | None:
        entry = ctx.models.get(call.model) if call.model else None
        if entry is None:
            return None
        for dep in entry.deployments:
            if dep.name == call.deployment:
                return "openai" if dep.provider in ("openai", "mock") else dep.provider
        return None

    return system


async def setup(ctx: AppContext) -> None:
    settings: AuditSettings = ctx.settings.audit
    metrics = Metrics(ctx.registry, settings.metrics, ctx.models.get) if settings.metrics.enabled else None
    if metrics is not None:
        ctx.services["metrics"] = metrics
        gc_watch = GCWatch(ctx.registry)
        gc_watch.install()
        ctx.closers.append(gc_watch.close)

    tracer = None
    if settings.tracing.enabled:
        from gateway.observability.tracing import CallTracer

        tracer = CallTracer(settings.tracing)
        ctx.closers.append(tracer.close)

    service = None
    if settings.enabled:
        service = AuditService(settings, make_store(settings, ctx.settings.data_dir), metrics=metrics)
        await service.start()
        ctx.services["audit"] = service
        ctx.closers.append(service.close)
        ctx.ready_checks["audit"] = service.ready

    ctx.stages.append(
        AuditStage(
            service,
            metrics=metrics,
            tracer=tracer,
            fail_closed=settings.fail_closed,
            system_of=_system_of(ctx),
        )
    )
