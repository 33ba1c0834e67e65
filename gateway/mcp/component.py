"""The MCP component: ``/mcp/{server}``, the gateway in front of the agents' MCP servers.

Reads ``mcp:`` and ``policies/mcp.yaml`` at start, opens one upstream HTTP pool (closed at
shutdown), and answers ``/readyz`` with the servers it serves. It is given the components
whose guards it applies to MCP calls: the keys are the core's (``ctx.keys``), the limits,
redaction, approvals and policy components are asked for what they built, per request, so a
guard switched off is simply not applied; the audit component's recorder gets one event per
request and observability's tracer a span. It registers no pipeline stage: an MCP request is
not a model call, and runs its own short sequence (``service.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.mcp.config import McpSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.approvals.component import Approvals
    from gateway.audit.component import Audit
    from gateway.context import AppContext
    from gateway.limits.component import Limits
    from gateway.mcp.exchange import Exchange
    from gateway.mcp.service import McpGateway
    from gateway.observability.component import Observability
    from gateway.policy.component import Policy
    from gateway.redaction.component import Redaction


class Mcp(BaseComponent):
    name = "mcp"
    settings_model = McpSettings

    def __init__(
        self,
        observability: Observability,
        audit: Audit,
        limits: Limits,
        redaction: Redaction,
        approvals: Approvals,
        policy: Policy,
    ) -> None:
        self.observability = observability
        self.audit = audit
        self.limits = limits
        self.redaction = redaction
        self.approvals = approvals
        self.policy = policy
        #: Set at start; ``None`` while the MCP gateway is off.
        self.gateway: McpGateway | None = None

    def _price(self, server: str, tool: str) -> float | None:
        """One call's cost from pricing.yaml ``mcp_tools`` (None while limits are off)."""
        service = self.limits.service
        return service.prices.tool_call_usd(server, tool) if service is not None else None

    def routes(self) -> list[BaseRoute]:
        from gateway.mcp.api import routes

        return routes(lambda: self.gateway)

    def hot_routes(self) -> dict[str, Callable[..., Any]]:
        from gateway.mcp.api import PREFIX, hot_endpoint

        return {PREFIX: hot_endpoint(lambda: self.gateway)}

    async def start(self, ctx: AppContext) -> None:
        from gateway.mcp.approval import McpApprovals
        from gateway.mcp.charges import McpCharges
        from gateway.mcp.config import load_servers
        from gateway.mcp.guards import McpGuards
        from gateway.mcp.limiter import McpLimiter, RedisWindows
        from gateway.mcp.service import McpGateway
        from gateway.mcp.telemetry import McpTelemetry
        from gateway.mcp.upstream import UpstreamPool

        self.gateway = None
        settings = section(ctx.settings, self.name, McpSettings)
        if not settings.enabled:
            return
        path = ctx.settings.policies_dir / settings.servers_file
        servers = load_servers(path)

        def check() -> None:
            load_servers(path)  # a changed file is checked at the next reload; applied at a restart

        ctx.start_files.add(path, check=check)
        pool = UpstreamPool(settings.max_connections)
        ctx.closers.append(pool.close)
        telemetry = McpTelemetry(ctx.registry, self.audit.recorder, self.observability.tracer)
        keys = ctx.keys
        limiter = McpLimiter()
        limits = self.limits.service
        if limits is not None and limits.settings.backend == "redis":
            cfg = limits.settings
            windows = RedisWindows(cfg.redis_url, cfg.redis_timeout_s, cfg.on_store_error)
            ctx.closers.append(windows.close)
            limiter = McpLimiter(windows, cfg.key_prefix)
        charges = McpCharges(lambda: self.limits.service, self._price)
        guards = McpGuards(
            lambda: self.policy.service,
            lambda: self.redaction.redactor,
            McpApprovals(self.approvals, settings.approval_progress_s),
            telemetry.learn_tools,
            limiter,
            self._price,
            charges,
            binary_blobs=settings.binary_blobs,
        )

        async def finish(ex: Exchange) -> None:
            await charges.settle(ex)  # booked before the event that records it
            await telemetry.finish(ex)

        self.gateway = McpGateway(settings, servers, pool, lambda: keys, finish, guards)
        names = ", ".join(sorted(servers)) or "none configured"

        async def ready() -> str | None:
            return f"ok: servers {names}"

        ctx.ready_checks[self.name] = ready
