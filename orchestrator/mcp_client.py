"""Tool calls through the gateway's ``/mcp/{server}``, with the official ``mcp`` SDK's client.

With ``mcp_server`` set in the config, a worker's tool calls are not run in this process:
each goes to the gateway as an MCP ``tools/call`` (Streamable HTTP) with the agent's virtual
key and its ``X-Agent-Id`` / ``X-Run-Id``, and the gateway applies its guards at the point of
action (policy, approvals, limits, redaction, audit) before the MCP server behind it runs
the tool. The call carries its ``ToolContext`` in ``_meta`` so the server deduplicates a
retried call by the same idempotency key as a local run.

One MCP session per call (initialize, ``tools/call``, session end), opened and closed in the
calling task: the SDK's transport lives in an anyio task group that must end where it began,
and the identity headers differ per agent and run. The connections under the sessions are
pooled (one shared httpx2 transport).

What comes back, as the orchestrator acts on it:

* a result → the tool's text (``ok``); an ``isError`` result → ``error: <text>`` for the model;
* a gateway refusal (a JSON-RPC error whose ``data.source`` is ``wardgate``): a policy
  denial raises ``PolicyDenied`` (the step ends denied, with the reasons); approval pending
  (defer mode) is polled through ``GET /v1/approvals/{id}`` and the call re-sent with the id,
  like a model call; rate limits, an unavailable upstream or policy engine, a broken
  connection raise ``CallFailed`` (the step retries from its checkpoint); anything else
  ``BadCall``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from orchestrator.approvals import ApprovalPoller
from orchestrator.config import OrchestratorConfig
from orchestrator.errors import ApprovalUnresolved, BadCall, CallFailed, GatewayRefusal, PolicyDenied
from orchestrator.events import Listener
from orchestrator.identity import RunIdentity
from orchestrator.tools import ToolContext

APPROVAL_HEADER = "X-Wardgate-Approval-Id"
#: JSON-RPC codes of the gateway's own refusals (gateway/mcp/jsonrpc.py).
FORBIDDEN = -32003
RATE_LIMITED = -32029
UPSTREAM_ERROR = -32010
POLICY_UNAVAILABLE = -32011
APPROVAL_PENDING = -32040
_TRANSIENT = frozenset({RATE_LIMITED, UPSTREAM_ERROR, POLICY_UNAVAILABLE})


@dataclass(frozen=True, slots=True)
class McpToolResult:
    text: str
    is_error: bool
    #: ``{"id", "outcome", "mode"}`` when the gateway asked a human first.
    approval: dict[str, Any] | None = None


def _first(exc: BaseException) -> BaseException:
    """The first MCP or HTTP error inside (nested) exception groups of the SDK's task groups."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first(inner)
            if isinstance(found, MCPError | httpx2.HTTPError | OSError):
                return found
        return exc.exceptions[0] if exc.exceptions else exc
    return exc


def _data(error: MCPError) -> dict[str, Any]:
    return error.data if isinstance(error.data, dict) else {}


def approval_id(error: MCPError) -> str | None:
    """The approval id of an 'approval pending' refusal (defer mode), else None."""
    data = _data(error)
    if error.code != APPROVAL_PENDING and data.get("type") != "approval_pending":
        return None
    found = data.get("approval_id") or (data.get("approval") or {}).get("id")
    return str(found) if found else None


def refusal(error: MCPError) -> GatewayRefusal:
    """The orchestrator's refusal for a JSON-RPC error from the gateway."""
    data = _data(error)
    kind = str(data.get("type") or "") or None
    raw = data.get("reasons")
    reasons = [str(r) for r in raw] if isinstance(raw, list) else []
    kwargs: dict[str, Any] = {"code": kind, "reasons": reasons, "body": data}
    if error.code == FORBIDDEN or kind in ("policy_denied", "forbidden"):
        return PolicyDenied(error.message, status=403, **{**kwargs, "code": kind or "policy_denied"})
    if error.code in _TRANSIENT:
        return CallFailed(error.message, status=None, **kwargs)
    return BadCall(error.message, status=None, **kwargs)


def _text(result: Any) -> str:
    parts = [getattr(c, "text", None) for c in result.content or ()]
    return "\n".join(p for p in parts if isinstance(p, str))


class McpToolClient:
    """Calls tools on the gateway's ``/mcp/{server}`` for the orchestrator's agents."""

    def __init__(self, config: OrchestratorConfig, listener: Listener, poller: ApprovalPoller) -> None:
        self.config = config
        self.listener = listener
        self.poller = poller
        self._transport = httpx2.AsyncHTTPTransport()

    def url(self, server: str) -> str:
        return f"{self.config.mcp_base_url()}/mcp/{server}"

    async def close(self) -> None:
        await self._transport.aclose()

    async def call(
        self,
        agent: str,
        identity: RunIdentity,
        server: str,
        name: str,
        arguments: dict[str, Any],
        ctx: ToolContext,
    ) -> McpToolResult:
        """One ``tools/call`` as ``agent`` of the run, approvals included; raises ``GatewayRefusal``."""
        key = self.config.key_for(agent)
        pending: str | None = None
        deadline = time.monotonic() + self.config.approval_wait_s
        while True:
            headers = {"Authorization": f"Bearer {key}", **identity.headers(agent)}
            if pending:
                headers[APPROVAL_HEADER] = pending
            try:
                result = await self._send(server, headers, name, arguments, ctx)
            except MCPError as exc:
                waiting = approval_id(exc)
                if waiting is None:
                    raise refusal(exc) from exc
                pending = waiting
                await self.listener.approval_pending(identity.run_id, agent, pending, "defer")
                status = await self.poller.wait(key, pending, deadline)
                await self.listener.approval_decided(identity.run_id, agent, pending, status)
                if status in ("pending", "cancelled"):
                    await self.poller.withdraw(key, pending)
                    raise ApprovalUnresolved(
                        f"approval {pending} was not decided within {self.config.approval_wait_s:.0f}s"
                        if status == "pending"
                        else f"approval {pending} was withdrawn",
                        status=409,
                        code="approval_pending",
                        body={"approval_id": pending},
                    ) from exc
                continue
            approval = {"id": pending, "outcome": "approved", "mode": "defer"} if pending else None
            return McpToolResult(_text(result), bool(result.is_error), approval)

    async def _send(
        self, server: str, headers: dict[str, str], name: str, arguments: dict[str, Any], ctx: ToolContext
    ) -> Any:
        timeout = httpx2.Timeout(30.0, read=self.config.call_timeout_s)
        http = httpx2.AsyncClient(headers=headers, timeout=timeout, transport=self._transport)
        transport = streamable_http_client(self.url(server), http_client=http)
        try:
            async with Client(
                transport, mode="legacy", read_timeout_seconds=self.config.call_timeout_s, cache=None
            ) as client:
                return await client.call_tool(name, arguments, meta=ctx.meta())  # type: ignore[arg-type]
        except BaseException as exc:
            found = _first(exc)
            if isinstance(found, MCPError):
                raise found from exc
            if isinstance(found, httpx2.HTTPError | OSError):
                raise CallFailed(f"MCP call to {server!r} failed: {found}", code="connection") from exc
            raise


Runner = Callable[[str, dict[str, Any], ToolContext], Awaitable[McpToolResult]]
