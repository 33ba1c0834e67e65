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

What comes back, as the orchestrator acts on it (docs/mcp.md):

* a result → the tool's text (``ok``); an ``isError`` result → ``error: <text>`` for the model
  (a tool's own error, a rate limit, an unreachable server, an approval a reviewer denied);
* a refusal by policy: an ``isError`` result with ``_meta["io.wardgate/reasons"]`` raises
  ``PolicyDenied`` (the step ends denied, with the reasons, as for a model call);
* hold mode: the call waits while the gateway streams progress ("waiting for approval ID");
  the approval is reported, then the answer arrives as usual;
* defer mode: an ``isError`` result with ``_meta["io.wardgate/approval"]`` (pending): the
  approval is polled through ``GET /v1/approvals/{id}`` and the same call re-sent with
  ``X-Wardgate-Approval-Id``, like a model call;
* a JSON-RPC error from the gateway (``data.source`` ``wardgate``): -32003 raises
  ``PolicyDenied``; rate limits, an unavailable upstream or policy engine, a broken connection
  ``CallFailed`` (the step retries from its checkpoint); anything else ``BadCall``.
"""

from __future__ import annotations

import re
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
#: ``_meta`` keys of the gateway's tool results (gateway/mcp/approval.py, guards.py).
META_REASONS = "io.wardgate/reasons"
META_APPROVAL = "io.wardgate/approval"
_WAITING = re.compile(r"waiting for approval (\S+)")
#: JSON-RPC codes of the gateway's own refusals (gateway/mcp/jsonrpc.py).
FORBIDDEN = -32003
RATE_LIMITED = -32029
UPSTREAM_ERROR = -32010
POLICY_UNAVAILABLE = -32011
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
        deferred: str | None = None
        held: list[str] = []
        deadline = time.monotonic() + self.config.approval_wait_s

        async def on_hold(approval_id: str) -> None:
            if approval_id not in held:
                held.append(approval_id)
                await self.listener.approval_pending(identity.run_id, agent, approval_id, "hold")

        while True:
            headers = {"Authorization": f"Bearer {key}", **identity.headers(agent)}
            if deferred:
                headers[APPROVAL_HEADER] = deferred
            try:
                result = await self._send(server, headers, name, arguments, ctx, on_hold)
            except MCPError as exc:
                raise refusal(exc) from exc
            meta = result.meta if isinstance(result.meta, dict) else {}
            reasons = meta.get(META_REASONS)
            if result.is_error and isinstance(reasons, list):
                text = _text(result)
                raise PolicyDenied(text, status=403, code="policy_denied", reasons=[str(r) for r in reasons])
            found = meta.get(META_APPROVAL)
            note: dict[str, Any] = found if isinstance(found, dict) else {}
            if result.is_error and note.get("status") == "pending" and note.get("id") and not deferred:
                deferred = str(note["id"])
                await self._await_decision(key, agent, identity, deferred, deadline)
                continue  # approved (or denied: the re-send says so)
            approval_id = (
                deferred or (held[-1] if held else None) or (str(note["id"]) if note.get("id") else None)
            )
            approval: dict[str, Any] | None = None
            if approval_id:
                outcome = str(note.get("status") or "approved")
                approval = {"id": approval_id, "outcome": outcome, "mode": "defer" if deferred else "hold"}
                if held:
                    await self.listener.approval_decided(identity.run_id, agent, approval_id, outcome)
            return McpToolResult(_text(result), bool(result.is_error), approval)

    async def _await_decision(
        self, key: str, agent: str, identity: RunIdentity, approval_id: str, deadline: float
    ) -> None:
        """Poll a deferred approval until decided; ``ApprovalUnresolved`` when it never is."""
        await self.listener.approval_pending(identity.run_id, agent, approval_id, "defer")
        status = await self.poller.wait(key, approval_id, deadline)
        await self.listener.approval_decided(identity.run_id, agent, approval_id, status)
        if status in ("pending", "cancelled"):
            await self.poller.withdraw(key, approval_id)
            raise ApprovalUnresolved(
                f"approval {approval_id} was not decided within {self.config.approval_wait_s:.0f}s"
                if status == "pending"
                else f"approval {approval_id} was withdrawn",
                status=409,
                code="approval_pending",
                body={"approval_id": approval_id},
            )

    async def _send(
        self,
        server: str,
        headers: dict[str, str],
        name: str,
        arguments: dict[str, Any],
        ctx: ToolContext,
        on_hold: Callable[[str], Awaitable[None]],
    ) -> Any:
        timeout = httpx2.Timeout(30.0, read=self.config.call_timeout_s)
        http = httpx2.AsyncClient(headers=headers, timeout=timeout, transport=self._transport)
        transport = streamable_http_client(self.url(server), http_client=http)
        try:
            async with Client(
                transport, mode="legacy", read_timeout_seconds=self.config.call_timeout_s, cache=None
            ) as client:

                async def progress(progress: float, total: float | None, message: str | None) -> None:
                    found = _WAITING.search(message or "")
                    if found:
                        await on_hold(found.group(1))

                return await client.call_tool(
                    name,
                    arguments,
                    progress_callback=progress,
                    meta=ctx.meta(),  # type: ignore[arg-type]
                )
        except BaseException as exc:
            found = _first(exc)
            if isinstance(found, MCPError):
                raise found from exc
            if isinstance(found, httpx2.HTTPError | OSError):
                raise CallFailed(f"MCP call to {server!r} failed: {found}", code="connection") from exc
            raise
