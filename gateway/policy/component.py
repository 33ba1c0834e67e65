"""The policy component: Rego decisions on the request and on the answer, and their admin API.

Builds the engine named by ``policy.engine``, loads and checks ``rego/`` + ``policies/`` once
(the gateway refuses to start on a set that does not compile or fails its tests: better a
clear start-up error than a gateway that denies everything), registers both stages, the
readiness check, the file watcher and the closers. It is given the components it works with:
``Audit`` (every loaded or refused revision is recorded, kind ``policy``), ``Redaction`` (a
decision's ``redact`` re-redacts the request) and ``Approvals`` (a ``require_approval``
without an approval stage fails closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from gateway.policy.config import PolicySettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.approvals.component import Approvals
    from gateway.audit.component import Audit
    from gateway.context import AppContext
    from gateway.policy.service import PolicyService
    from gateway.redaction.component import Redaction

log = logging.getLogger("wardgate.policy")


class PolicyStartupError(RuntimeError):
    """The policy set on disk cannot be loaded at start-up."""


class Policy(BaseComponent):
    name = "policy"
    settings_model = PolicySettings
    commands = (("policy", "gateway.policy.cli"),)

    def __init__(self, audit: Audit, redaction: Redaction, approvals: Approvals) -> None:
        self.audit = audit
        self.redaction = redaction
        self.approvals = approvals
        #: Set at start; ``None`` while the policy engine is off.
        self.service: PolicyService | None = None

    def routes(self) -> list[BaseRoute]:
        from gateway.policy import api

        return api.routes(lambda: self.service)

    async def start(self, ctx: AppContext) -> None:
        from gateway.policy import textkey
        from gateway.policy.engines import create_engine
        from gateway.policy.metrics import PolicyMetrics
        from gateway.policy.reload import PolicyManager
        from gateway.policy.service import PolicyService
        from gateway.policy.stage import PolicyRequestStage, PolicyResponseStage

        self.service = None
        settings = section(ctx.settings, self.name, PolicySettings)
        if not settings.enabled:
            return
        metrics = PolicyMetrics(ctx.registry)
        # The invisible-character table of name and text keys, built before the first call needs it.
        warming = asyncio.create_task(asyncio.to_thread(textkey.warm), name="wardgate-textkey-warm")
        engine = create_engine(settings)
        ctx.closers.append(engine.close)
        recorder = self.audit.recorder

        async def record(payload: dict[str, Any]) -> None:
            if payload.get("reason") == "start":  # an audit store down at start gets it when it opens
                await self.audit.record_at_open("policy", payload)
                return
            audit = recorder()
            if audit is not None:
                await audit.record("policy", payload)

        manager = PolicyManager(
            engine,
            ctx.settings.rego_dir,
            ctx.settings.policies_dir,
            metrics=metrics,
            run_tests=settings.test_on_reload,
            on_change=record,
            start_files=ctx.start_files,
        )
        result = await manager.reload(reason="start")
        await warming
        if result.result != "loaded":
            raise PolicyStartupError("policy set refused at start-up:\n  " + "\n  ".join(result.errors))
        service = PolicyService(
            manager,
            settings,
            metrics,
            redaction=lambda: self.redaction.redactor,
            approvals=lambda: self.approvals.enabled,
        )
        self.service = service
        ctx.stages.append(PolicyRequestStage(service))
        ctx.stages.append(PolicyResponseStage(service))
        ctx.ready_checks["policy"] = service.ready
        if settings.watch:
            task = asyncio.create_task(
                manager.watch(settings.watch_debounce_ms), name="wardgate-policy-watch"
            )

            async def stop_watching() -> None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

            ctx.closers.append(stop_watching)
