"""The providers component: the router over ``policies/models.yaml`` and the ``forward`` stage.

Reads the ``providers`` section (retries, backoff, circuit breaking, pools) and exports each
deployment's circuit state (``wardgate_circuit_state``, ``metrics.py``). It starts last
of all components: besides ``forward`` it adds ``stream_trust`` when a stage registered
before it reads streams (``Stage.reads_stream``), so a pure pass-through never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.providers.config import ProviderSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from gateway.context import AppContext
    from gateway.providers.router import Router


class Providers(BaseComponent):
    name = "providers"
    settings_model = ProviderSettings

    def __init__(self) -> None:
        #: Set at start: one pooled session per upstream, shared by every call.
        self.router: Router | None = None

    async def start(self, ctx: AppContext) -> None:
        from gateway.observability.multiproc import follow
        from gateway.providers.metrics import CircuitMetrics
        from gateway.providers.router import Router
        from gateway.providers.stage import ForwardStage
        from gateway.providers.stream_trust import StreamTrustStage

        settings = section(ctx.settings, self.name, ProviderSettings)
        router = self.router = Router.build(ctx.models, settings)
        ctx.closers.append(router.close)
        circuits = CircuitMetrics(ctx.registry, router.breakers)
        if circuits.multiprocess:
            follow(ctx, circuits.sync, "circuits")
        ctx.stages.append(ForwardStage(router, ctx.models, settings.timeout_s))
        if any(stage.reads_stream for stage in ctx.stages):
            ctx.stages.append(StreamTrustStage())
