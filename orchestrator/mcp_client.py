"""Tool calls through the gateway's ``/mcp/{server}``, with the official ``mcp`` SDK's client.

With ``mcp_server`` set in the config, a worker's tool calls are not run in this process:
each goes to the gateway as an MCP ``tools/call`` (Streamable HTTP) with the agent's virtual
key and its ``X-Agent-Id`` / ``X-Run-Id``, and the gateway applies its guards at the point of
action (policy, approvals, limits, redaction, audit) before the MCP server behind it runs
the tool. The call carries its ``ToolContext`` in ``_meta`` so the server deduplicates a
retried call by the same idempotency key as a local run.

One MCP session per agent, run and server (``initialize`` once, then every ``tools/call`` of
that agent in that run), closed when the run ends (``end_run``) or the client closes: the
agent's key and ``X-Agent-Id`` / ``X-Run-Id`` are the session's headers, a fresh
``traceparent`` span id is set per request, and a deferred call's re-send names its approval
in ``params._meta`` rather than a header. The SDK's transport lives in an anyio task group
that must end in the task that began it, so each session is owned by a task of its own
(``_Session``) and calls are made on it from the workers' tasks. A session whose connection
broke or that the gateway no longer knows is dropped and the next call opens a new one. The
connections under the sessions are pooled (one shared httpx2 transport).

What comes back, as the orchestrator acts on it (docs/mcp.md):

* a result → the tool's text (``ok``); an ``isError`` result → ``error: <text>`` for the model
  (a tool's own error, a rate limit, an unreachable server, an approval a reviewer denied);
* a refusal by policy: an ``isError`` result with ``_meta["io.wardgate/reasons"]`` raises
  ``PolicyDenied`` (the step ends denied, with the reasons, as for a model call);
* hold mode: the call waits while the gateway streams progress ("waiting for approval ID");
  the approval is reported, then the answer arrives as usual;
* defer mode: an ``isError`` result with ``_meta["io.wardgate/approval"]`` (pending): the
  approval is polled through ``GET /v1/approvals/{id}`` and the same call re-sent with
  ``_meta["io.wardgate/approval_id"]``, like a model call;
* a limit refusal: an ``isError`` result with ``_meta["io.wardgate/error"]`` (the chat path's
  error, e.g. ``budget_exceeded``) raises what that error raises for a model call
  (``RunHalted`` for a budget: the run stops);
* a JSON-RPC error from the gateway (``data.source`` ``wardgate``): -32003 raises
  ``PolicyDenied``; rate limits, an unavailable upstream or policy engine, a broken connection
  ``CallFailed`` (the step retries from its checkpoint); anything else ``BadCall``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
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
from orchestrator.errors import BadCall, CallFailed, GatewayRefusal, PolicyDenied, refusal_of
from orchestrator.events import Listener
from orchestrator.identity import RunIdentity
from orchestrator.tools import ToolContext

#: ``_meta`` keys of the gateway's tool results (gateway/mcp/approval.py, guards.py, charges.py).
META_REASONS = "io.wardgate/reasons"
META_APPROVAL = "io.wardgate/approval"
META_ERROR = "io.wardgate/error"
#: The ``params._meta`` key a re-send names its approval with.
META_APPROVAL_ID = "io.wardgate/approval_id"
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


class _Session:
    """One MCP session of one agent in one run on one server, owned by a task of its own (the
    SDK's task group must be left in the task that entered it); calls are made from any task."""

    def __init__(
        self, url: str, headers: dict[str, str], trace_id: str, transport: Any, timeout_s: float
    ) -> None:
        self._url = url
        self._headers = headers
        self._trace_id = trace_id
        self._transport = transport
        self._timeout_s = timeout_s
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._own(), name=f"mcp-session {url}")

    async def _traceparent(self, request: Any) -> None:
        request.headers["traceparent"] = f"00-{self._trace_id}-{secrets.token_hex(8)}-01"

    async def _own(self) -> None:
        timeout = httpx2.Timeout(30.0, read=self._timeout_s)
        http = httpx2.AsyncClient(
            headers=self._headers,
            timeout=timeout,
            transport=self._transport,
            event_hooks={"request": [self._traceparent]},
        )
        try:
            async with Client(
                streamable_http_client(self._url, http_client=http),
                mode="legacy",
                read_timeout_seconds=self._timeout_s,
                cache=None,
            ) as client:
                self._ready.set_result(client)
                await self._closing.wait()
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if not self._ready.done():
                self._ready.set_exception(CallFailed("the MCP session closed", code="connection"))

    async def client(self) -> Client:
        return await asyncio.shield(self._ready)

    @property
    def alive(self) -> bool:
        return not self._task.done()

    async def close(self) -> None:
        """End the session (its ``DELETE``), in its own task."""
        self._closing.set()
        with contextlib.suppress(Exception):
            await self._task


class McpToolClient:
    """Calls tools on the gateway's ``/mcp/{server}`` for the orchestrator's agents."""

    def __init__(self, config: OrchestratorConfig, listener: Listener, poller: ApprovalPoller) -> None:
        self.config = config
        self.listener = listener
        self.poller = poller
        self._transport = httpx2.AsyncHTTPTransport()
        #: (agent, run, server) -> its session, for the run's length.
        self._sessions: dict[tuple[str, str, str], _Session] = {}

    def url(self, server: str) -> str:
        return f"{self.config.mcp_base_url()}/mcp/{server}"

    async def end_run(self, run_id: str) -> None:
        """Close the run's sessions (one per agent and server)."""
        ended = [k for k in self._sessions if k[1] == run_id]
        await asyncio.gather(*(self._sessions.pop(k).close() for k in ended))

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions))
        await self._transport.aclose()

    def _session(self, agent: str, identity: RunIdentity, server: str) -> _Session:
        key = (agent, identity.run_id, server)
        session = self._sessions.get(key)
        if session is None or not session.alive:
            headers = {"Authorization": f"Bearer {self.config.key_for(agent)}", **identity.headers(agent)}
            headers.pop("traceparent", None)  # a new span id per request (the session's hook)
            session = self._sessions[key] = _Session(
                self.url(server), headers, identity.trace_id, self._transport, self.config.call_timeout_s
            )
        return session

    async def _drop(self, agent: str, identity: RunIdentity, server: str, session: _Session) -> None:
        key = (agent, identity.run_id, server)
        if self._sessions.get(key) is session:
            del self._sessions[key]
        await session.close()

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
            meta = ctx.meta()
            if deferred:
                meta = {**meta, META_APPROVAL_ID: deferred}
            try:
                result = await self._send(agent, identity, server, name, arguments, meta, on_hold)
            except MCPError as exc:
                raise refusal(exc) from exc
            found_meta = result.meta if isinstance(result.meta, dict) else {}
            reasons = found_meta.get(META_REASONS)
            if result.is_error and isinstance(reasons, list):
                text = _text(result)
                raise PolicyDenied(text, status=403, code="policy_denied", reasons=[str(r) for r in reasons])
            error = found_meta.get(META_ERROR)
            if result.is_error and isinstance(error, dict):  # a limit: as the same error on a model call
                status = error.get("status")
                raise refusal_of(status if isinstance(status, int) else 429, error, _text(result))
            found = found_meta.get(META_APPROVAL)
            note: dict[str, Any] = found if isinstance(found, dict) else {}
            if result.is_error and note.get("status") == "pending" and note.get("id") and not deferred:
                deferred = str(note["id"])
                await self.poller.await_decision(
                    self.listener, key, agent, identity.run_id, deferred, deadline
                )
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

    async def _send(
        self,
        agent: str,
        identity: RunIdentity,
        server: str,
        name: str,
        arguments: dict[str, Any],
        meta: dict[str, Any],
        on_hold: Callable[[str], Awaitable[None]],
    ) -> Any:
        session = self._session(agent, identity, server)

        async def progress(progress: float, total: float | None, message: str | None) -> None:
            found = _WAITING.search(message or "")
            if found:
                await on_hold(found.group(1))

        try:
            client = await session.client()
            return await client.call_tool(
                name,
                arguments,
                progress_callback=progress,
                meta=meta,  # type: ignore[arg-type]
            )
        except BaseException as exc:
            found = _first(exc)
            if isinstance(found, MCPError):
                if found.code == -32004:  # the gateway no longer knows the session: a new one next time
                    await self._drop(agent, identity, server, session)
                raise found from exc
            if isinstance(found, httpx2.HTTPError | OSError | CallFailed):
                await self._drop(agent, identity, server, session)
                if isinstance(found, CallFailed):
                    raise found from exc
                raise CallFailed(f"MCP call to {server!r} failed: {found}", code="connection") from exc
            raise
