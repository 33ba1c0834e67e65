"""Wiring of the policy subsystem into the app (``setup(ctx)``, see the team brief).

Builds the engine named by ``policy.engine``, loads and checks ``rego/`` + ``policies/`` once
(the gateway refuses to start on a set that does not compile or fails its tests: better a
clear start-up error than a gateway that denies everything), registers both stages, the
readiness check, the file watcher and the closers, and publishes ``ctx.services["policy"]``.
Every loaded or refused revision is recorded in the audit log (kind ``policy``) when the audit
component is set up (it is, before this one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from gateway.context import AppContext
from gateway.policy import textkey
from gateway.policy.engines import create_engine
from gateway.policy.metrics import PolicyMetrics
from gateway.policy.reload import PolicyManager
from gateway.policy.service import PolicyService
from gateway.policy.stage import PolicyRequestStage, PolicyResponseStage

log = logging.getLogger("wardgate.policy")


class PolicyStartupError(RuntimeError):
    """The policy set on disk cannot be loaded at start-up."""


async def setup(ctx: AppContext) -> None:
    settings = ctx.settings.policy
    if not settings.enabled:
        return
    metrics = PolicyMetrics(ctx.registry)
    # The invisible-character table of name and text keys, built before the first call needs it.
    warming = asyncio.create_task(asyncio.to_thread(textkey.warm), name="wardgate-textkey-warm")
    engine = create_engine(settings)
    ctx.closers.append(engine.close)
    audit = ctx.services.get("audit")

    async def record(payload: dict[str, Any]) -> None:
        if audit is not None:
            await audit.record("policy", payload)

    manager = PolicyManager(
        engine,
        ctx.settings.rego_dir,
        ctx.settings.policies_dir,
        metrics=metrics,
        run_tests=settings.test_on_reload,
        on_change=record,
    )
    result = await manager.reload(reason="start")
    await warming
    if result.result != "loaded":
        raise PolicyStartupError("policy set refused at start-up:\n  " + "\n  ".join(result.errors))
    service = PolicyService(manager, settings, metrics, ctx.services)
    ctx.services["policy"] = service
    ctx.stages.append(PolicyRequestStage(service))
    ctx.stages.append(PolicyResponseStage(service))
    ctx.ready_checks["policy"] = service.ready
    if settings.watch:
        task = asyncio.create_task(manager.watch(settings.watch_debounce_ms), name="wardgate-policy-watch")

        async def stop_watching() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        ctx.closers.append(stop_watching)
