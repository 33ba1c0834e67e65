"""The audit component: the tamper-evident log, the ``audit`` stage and the audit admin API.

At start it builds the ``AuditService`` (``record(kind, payload)`` for the other areas, which
receive it as an ``AuditRecorder`` through ``recorder()``; ``.store`` for the queries), then
appends the ``audit`` stage, a closer and the ``audit`` readiness check. The stage also feeds
the observability component's metrics and tracer from the same finish hook. With
``audit.enabled: false`` the stage still records metrics and traces, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.audit.config import AuditSettings
from gateway.providers.registry import wire_system
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.routing import BaseRoute

    from gateway.audit.service import AuditService
    from gateway.audit.store.base import AuditStore
    from gateway.call import Call
    from gateway.context import AppContext
    from gateway.observability.component import Observability
    from gateway.recorder import AuditRecorder


def _system_of(ctx: AppContext) -> Callable[[Call], str | None]:
    # Each kind's system, once at start (a plugin kind's answer needs its entry point).
    systems = {dep.provider: "" for entry in ctx.models.entries() for dep in entry.deployments}
    for kind in systems:
        systems[kind] = wire_system(kind)

    def system(call: Call) -> str | None:
        entry = ctx.models.get(call.model) if call.model else None
        if entry is None:
            return None
        for dep in entry.deployments:
            if dep.name == call.deployment:
                return systems.get(dep.provider, dep.provider)
        return None

    return system


class Audit(BaseComponent):
    name = "audit"
    settings_model = AuditSettings
    commands = (("audit", "gateway.audit.cli"), ("runs", "gateway.audit.runs_cli"))

    def __init__(self, observability: Observability) -> None:
        self.observability = observability
        #: Set at start; ``None`` while the audit log is off.
        self.service: AuditService | None = None
        self.data_dir: Path | None = None

    def recorder(self) -> AuditRecorder | None:
        """What other areas record into (``None`` while the audit log is off)."""
        return self.service

    async def record_at_open(self, kind: str, payload: dict[str, Any]) -> None:
        """Record now, or first thing once a store that was down at start opens (see
        ``AuditService.record_at_open``); nothing while the audit log is off."""
        if self.service is not None:
            await self.service.record_at_open(kind, payload)

    def store(self) -> AuditStore | None:
        return self.service.store if self.service is not None else None

    async def spend_report(self, params: Any) -> dict[str, Any] | None:
        """``GET /admin/spend/report`` for these query parameters; ``None`` while the log is off."""
        from gateway.audit.spend import spend_report

        store = self.store()
        return None if store is None else await spend_report(store, params)

    def routes(self) -> list[BaseRoute]:
        from gateway.audit import api
        from gateway.audit.verify_api import Verifier

        return api.routes(self.store, self.recorder, Verifier(lambda: self.service, lambda: self.data_dir))

    async def start(self, ctx: AppContext) -> None:
        from gateway.audit.capture import CaptureStage
        from gateway.audit.service import AuditService
        from gateway.audit.stage import AuditReadyStage, AuditStage
        from gateway.audit.store import make_store

        settings = section(ctx.settings, self.name, AuditSettings)
        metrics = self.observability.metrics
        self.service = None
        self.data_dir = ctx.settings.data_dir
        if settings.enabled:
            service = AuditService(settings, make_store(settings, ctx.settings.data_dir), metrics=metrics)
            await service.start()
            self.service = service
            ctx.closers.append(service.close)
            ctx.ready_checks["audit"] = service.ready
            if not service.opened and settings.fail_closed:
                ctx.stages.append(AuditReadyStage(service))

        if self.service is not None and self.service.store.queryable:
            # Assembles streamed answers for calls whose policy asked for content capture.
            ctx.stages.append(CaptureStage())
        ctx.stages.append(
            AuditStage(
                self.service,
                metrics=metrics,
                tracer=self.observability.tracer,
                fail_closed=settings.fail_closed,
                system_of=_system_of(ctx),
            )
        )
