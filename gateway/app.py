"""The app factory: ``create_app(settings)`` builds one Starlette app; nothing is module-level.

Everything that lives for the app's lifespan (HTTP pools, stores, engines, background tasks)
is created in the lifespan into one ``AppContext`` on ``app.state.ctx`` and closed there.
The components (``gateway/components.py``) give their routes when the app is built and start,
in their order, in the lifespan; ``Pipeline`` orders their stages by ``STAGE_ORDER``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route

from gateway import logs, startup
from gateway.call import Endpoint
from gateway.components import compose
from gateway.context import AppContext
from gateway.errors import GatewayError
from gateway.http import routes as core
from gateway.http.drain import Drain
from gateway.http.hotpath import HotPath
from gateway.http.intake import IntakeGuard
from gateway.http.openapi import openapi_route
from gateway.http.protocol import INTAKE_STATE
from gateway.http.proxy import ProxyEndpoint
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog
from gateway.pipeline import Pipeline
from gateway.registry import STAGE_ORDER, Component
from gateway.settings import Settings
from gateway.startup import ComponentStartError

log = logging.getLogger("wardgate")


_PROXY_PATHS = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/responses": Endpoint.RESPONSES,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
}


def _routes(proxies: dict[str, ProxyEndpoint], components: list[Component]) -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route(path, endpoint, methods=["POST"]) for path, endpoint in proxies.items()]
    routes += [
        Route("/v1/models", core.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", core.get_model, methods=["GET"]),
        Route("/healthz", core.healthz, methods=["GET"]),
        Route("/readyz", core.readyz, methods=["GET"]),
    ]
    detailed: dict[str, dict[str, object]] = {}
    for component in components:
        routes += component.routes()
        detailed.update(component.openapi_paths())
    routes.append(openapi_route(routes, detailed))
    return routes


async def build_context(
    settings: Settings, components: list[Component] | None = None, stage_order: Sequence[str] = STAGE_ORDER
) -> AppContext:
    """Open every resource the configured components need and assemble the pipeline."""
    keys = KeyStore.load(settings.policies_dir / "keys.yaml")
    models = ModelCatalog.load(settings.policies_dir / "models.yaml")
    ctx = AppContext(
        settings=settings,
        keys=keys,
        models=models,
        drain=Drain(settings.server.shutdown_grace_s, settings.server.shutdown_delay_s),
    )
    # Not reloadable (the router's sessions are built from it), but a changed version is read
    # at each reload: a deployment it drops is logged then, and a version a restart would
    # refuse is reported (/readyz degraded) before anyone restarts.
    models_path = settings.policies_dir / "models.yaml"

    def check_models() -> None:
        ModelCatalog.load(models_path)  # logs the deployments it drops; raises on a bad file

    ctx.start_files.add(models_path, check=check_models)
    if models.disabled:  # named in /readyz, not only in the start-up log (clients see a 404)
        status = models.status()

        async def models_check() -> str | None:
            return status

        ctx.ready_checks["models"] = models_check
    try:
        for component in compose() if components is None else components:
            try:
                await component.start(ctx)
            except Exception as exc:
                own = getattr(settings, component.name, None)
                section = own if isinstance(own, BaseModel) else None
                raise ComponentStartError(startup.describe(component.name, exc, section)) from exc
        ctx.pipeline = Pipeline(ctx.stages, stage_order)
    except BaseException:
        await ctx.close()
        raise
    return ctx


#: Allocations between two young-generation collections (CPython's default: 700). A young
#: collection scans every object in flight, and calls in flight hold thousands: measured
#: here at c=32, the default ran one every ~16 calls, ~6 µs of CPU per call. Garbage here is
#: almost all freed by reference counting, so fewer, larger scans cost far less in total.
_GC_YOUNG_THRESHOLD = 20_000


def create_app(
    settings: Settings | None = None,
    components: list[Component] | None = None,
    stage_order: Sequence[str] = STAGE_ORDER,
) -> HotPath:
    """The gateway as an ASGI app (a Starlette app behind the proxy endpoints' fast path).

    ``components`` and ``stage_order``: the gateway's own (``compose()``, ``STAGE_ORDER``)
    unless given (a test adding a guard, see docs/adding-a-guard.md)."""
    settings = settings or Settings()
    components = compose() if components is None else components
    proxies = {path: ProxyEndpoint(endpoint) for path, endpoint in _PROXY_PATHS.items()}

    failure: list[str] = []  # the paragraph shown instead of the traceback (gateway/startup.py)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, object]]:
        logs.configure(settings.server.log_level, settings.server.log_format)
        try:
            ctx = await build_context(settings, components, stage_order)
        except ComponentStartError as exc:
            failure.append(str(exc))
            raise
        app.state.ctx = ctx
        # Everything built at startup (Presidio, spaCy, policy engines, pools) lives as long as
        # the app: freeze it out of the cyclic GC, whose full collections over that heap
        # otherwise stall the event loop for tens of milliseconds (the p99 under load).
        gc.collect()
        gc.freeze()
        threshold = gc.get_threshold()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, *threshold[1:])
        log.info(
            "wardgate ready: %d models, stages %s",
            len(ctx.models.names()),
            [s.name for s in ctx.pipeline.stages] if ctx.pipeline else [],
        )
        # The connection limits of this worker: the HTTP protocol finds them in the lifespan state.
        guard = IntakeGuard(settings.server, ctx.registry, inflight=lambda: hot_path.inflight)
        guard.start()
        restore_signals = ctx.drain.install_signal_hooks()
        try:
            yield {INTAKE_STATE: guard}
        finally:
            await guard.stop()
            restore_signals()
            gc.set_threshold(*threshold)
            await ctx.close()

    app = Starlette(
        routes=_routes(proxies, components),
        lifespan=lifespan,
        exception_handlers={
            GatewayError: core.gateway_error_handler,
            HTTPException: core.http_error_handler,
            Exception: core.server_error_handler,
        },
    )
    # For tests and tools that look at what a component built; the gateway never looks it up.
    app.state.components = components
    # A trailing slash is an unknown path (OpenAI-shaped 404), not a redirect a client may not follow.
    app.router.redirect_slashes = False
    app.add_middleware(
        startup.CleanStartupFailure, paragraph=failure, debug=settings.server.log_level.lower() == "debug"
    )
    prefixes = {p: a for c in components for p, a in getattr(c, "hot_routes", dict)().items()}
    hot_path = HotPath(app, dict(proxies), settings.server.max_inflight_requests, prefixes)
    return hot_path
