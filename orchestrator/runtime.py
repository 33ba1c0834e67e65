"""What every agent of one run shares: the gateway client, the checkpoint store, the run's
identity, and one way to make a model call that leaves a trace in the run's event log.

Every call, answered or refused, becomes a ``call`` event; refusals and approvals get their
own events too, so the report of a resumed run still shows what happened before the crash.
Tool calls through the gateway's ``/mcp`` (``config.mcp_server``) leave ``denied`` and
``approval`` events the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.config import OrchestratorConfig
from orchestrator.errors import ApprovalUnresolved, GatewayRefusal, PolicyDenied, RunHalted
from orchestrator.gateway_client import GatewayClient, ModelReply
from orchestrator.identity import RunIdentity
from orchestrator.ledger import ToolRunner
from orchestrator.scenario import Scenario
from orchestrator.store import CheckpointStore
from orchestrator.tools import Tool, ToolContext


def is_mock(model: str) -> bool:
    """The built-in mock model cannot plan by itself: it gets the scenario's plan as a script."""
    return model.startswith("mock")


@dataclass
class RunContext:
    config: OrchestratorConfig
    client: GatewayClient
    store: CheckpointStore
    scenario: Scenario
    identity: RunIdentity

    @property
    def run_id(self) -> str:
        return self.identity.run_id

    async def event(self, kind: str, **data: Any) -> None:
        await self.store.add_event(self.run_id, kind, data)

    async def chat(self, agent: str, step: str, messages: list[dict[str, Any]], **kwargs: Any) -> ModelReply:
        try:
            reply = await self.client.chat(agent, self.identity, messages, **kwargs)
        except GatewayRefusal as exc:
            await self.event(
                "call", agent=agent, step=step, status=exc.status, code=exc.code, request_id=exc.request_id
            )
            if isinstance(exc, PolicyDenied):
                await self.event(
                    "denied",
                    agent=agent,
                    step=step,
                    code=exc.code,
                    reasons=exc.reasons or [exc.message],
                    request_id=exc.request_id,
                )
            elif isinstance(exc, RunHalted):
                await self.event("halted", agent=agent, step=step, code=exc.code, message=exc.message)
            raise
        await self.event(
            "call",
            agent=agent,
            step=step,
            status=200,
            usage=reply.usage,
            request_id=reply.request_id,
            tools=[c.name for c in reply.tool_calls],
        )
        if reply.approval:
            await self._approval_event(agent, step, reply)
        return reply

    def tool_runner(self, agent: str, step: str) -> ToolRunner | None:
        """How ``agent``'s tool calls are carried out: through ``/mcp/{server}``, or None (here)."""
        server = self.config.mcp_server
        if not server:
            return None

        async def run(tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[str, bool]:
            try:
                result = await self.client.mcp.call(agent, self.identity, server, tool.name, args, ctx)
            except PolicyDenied as exc:
                reasons = exc.reasons or [exc.message]
                await self.event(
                    "denied", agent=agent, step=step, code=exc.code, reasons=reasons, tool=tool.name
                )
                raise
            except ApprovalUnresolved as exc:
                approval_id = str(exc.body.get("approval_id") or "")
                await self.event(
                    "approval",
                    agent=agent,
                    step=step,
                    id=approval_id,
                    outcome="unresolved",
                    mode="defer",
                    tools=[tool.name],
                )
                raise
            if result.approval:
                await self._mcp_approval_event(agent, step, tool.name, result.approval)
            return (f"error: {result.text}" if result.is_error else result.text), not result.is_error

        return run

    async def _mcp_approval_event(self, agent: str, step: str, tool: str, approval: dict[str, Any]) -> None:
        doc = (
            await self.client.poller.fetch(self.config.key_for(agent), approval["id"])
            if approval.get("id")
            else None
        )
        info = dict(approval, tools=[tool])
        if doc:
            info.update({k: doc.get(k) for k in ("reasons", "tools", "comment", "outcome_reason", "status")})
            info["outcome"] = doc.get("status") or info.get("outcome")
        await self.event("approval", agent=agent, step=step, **info)

    async def _approval_event(self, agent: str, step: str, reply: ModelReply) -> None:
        """Record an approval with what the caller may know of it (reasons, tools, reviewer comment)."""
        approval = dict(reply.approval or {})
        doc = (
            await self.client.poller.fetch(self.config.key_for(agent), approval["id"])
            if approval.get("id")
            else None
        )
        if doc:
            approval.update(
                {k: doc.get(k) for k in ("reasons", "tools", "comment", "outcome_reason", "status")}
            )
            approval["outcome"] = doc.get("status") or approval.get("outcome")
        await self.event("approval", agent=agent, step=step, **approval)
