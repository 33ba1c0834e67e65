"""Model calls through the gateway with the real ``openai`` SDK, one client per virtual key.

Retries are the SDK's: it retries 429s after the ``retry-after(-ms)`` the gateway sends, and
5xx and network errors with backoff, and it stops at once where the gateway says
``x-should-retry: false`` (budget, loop, approval pending). What the SDK raises at the end is
translated into the orchestrator's own refusals (``errors.py``).

Approvals: in ``hold`` mode the gateway keeps the request open until a reviewer decides, so
nothing is needed here but a long enough timeout. In ``defer`` mode it answers 409
``approval_pending`` with an ``approval_id``; the client then polls ``GET /v1/approvals/{id}``
with the same key and, once decided, re-sends the identical request with
``X-Wardgate-Approval-Id``, which returns the stored (approved) or rewritten (denied) answer
without a second model call.

Cost per call: this client is the gateway's most demanding user (load mode drives 10,000+
calls a minute from one core), so it uses the SDK's aiohttp transport (``openai[aiohttp]``;
httpx's pool scans every idle connection per request) and sends the chat body with the SDK's
generic ``post`` instead of ``chat.completions.create``: the body is already plain JSON, and
``create`` would walk it against the typed params and build pydantic models of the answer,
about a third of the client's CPU per call. Auth, retries, ``retry-after`` and the error classes
are the SDK's either way. ``create`` is what the README shows for your own agents.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
import orjson

from orchestrator.approvals import ApprovalPoller
from orchestrator.config import OrchestratorConfig
from orchestrator.errors import CallFailed, GatewayRefusal, refusal_of
from orchestrator.events import CallRecord, Listener
from orchestrator.identity import RunIdentity

if TYPE_CHECKING:  # the mcp SDK is imported only when tools go through /mcp
    from orchestrator.mcp_client import McpToolClient

try:  # the HTTP library under the SDK: httpx2 from openai 3, httpx before
    from httpx2 import Response as HTTPResponse
except ImportError:  # pragma: no cover - older openai
    from httpx import Response as HTTPResponse  # type: ignore[assignment]  # same class, other package

APPROVAL_HEADER = "X-Wardgate-Approval-Id"


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class ModelReply:
    agent: str
    content: str | None
    tool_calls: list[ToolCall]
    usage: dict[str, Any] | None
    request_id: str | None
    finish_reason: str | None
    #: ``{"id", "outcome": approved|denied|expired, "mode": hold|defer}`` when an approval was involved.
    approval: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation."""
        msg: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            msg["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        return msg


def _refusal(exc: openai.APIStatusError) -> GatewayRefusal:
    body = exc.body if isinstance(exc.body, dict) else {}
    return refusal_of(exc.status_code, body, exc.message, exc.response.headers.get("x-request-id"))


def _approval_id(exc: openai.APIStatusError) -> str | None:
    body = exc.body if isinstance(exc.body, dict) else {}
    if exc.status_code != 409 or body.get("code") != "approval_pending":
        return None
    return str(body.get("approval_id") or exc.response.headers.get("x-wardgate-approval-id") or "") or None


def _http_client(timeout_s: float) -> openai.DefaultAsyncHttpxClient:
    """The SDK's aiohttp transport when installed (far less CPU per call), else its httpx default."""
    aiohttp_client = getattr(openai, "DefaultAioHttpClient", None)
    if aiohttp_client is not None:
        try:
            return aiohttp_client(timeout=timeout_s)
        except RuntimeError:  # the openai[aiohttp] extra is missing
            pass
    return openai.DefaultAsyncHttpxClient(timeout=timeout_s)


def _read_completion(completion: Any) -> tuple[str | None, list[ToolCall], dict[str, Any] | None, str | None]:
    """Content, tool calls, usage and finish reason of a chat completion (plain JSON)."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message") or {}
    calls = [
        ToolCall(str(tc.get("id") or ""), fn["name"], fn.get("arguments") or "{}")
        for tc in msg.get("tool_calls") or ()
        if isinstance(fn := tc.get("function"), dict) and fn.get("name")
    ]
    usage = completion.get("usage") if isinstance(completion, dict) else None
    usage = {k: v for k, v in usage.items() if v is not None} if isinstance(usage, dict) else None
    return msg.get("content"), calls, usage, choice.get("finish_reason")


class GatewayClient:
    def __init__(self, config: OrchestratorConfig, listener: Listener | None = None) -> None:
        self.config = config
        self.listener = listener or Listener()
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._http = _http_client(config.call_timeout_s)
        self.poller = ApprovalPoller(config)
        self._mcp: McpToolClient | None = None

    @property
    def mcp(self) -> McpToolClient:
        """The MCP client for tool calls through ``/mcp/{server}`` (made on first use)."""
        if self._mcp is None:
            from orchestrator.mcp_client import McpToolClient

            self._mcp = McpToolClient(self.config, self.listener, self.poller)
        return self._mcp

    def client(self, key: str) -> openai.AsyncOpenAI:
        c = self._clients.get(key)
        if c is None:
            c = self._clients[key] = openai.AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=key,
                max_retries=self.config.max_retries,
                timeout=self.config.call_timeout_s,
                http_client=self._http,
            )
        return c

    async def end_run(self, run_id: str) -> None:
        """The run is over: close its MCP sessions (one per agent and server)."""
        if self._mcp is not None:
            await self._mcp.end_run(run_id)

    async def close(self) -> None:
        await self._http.aclose()
        await self.poller.close()
        if self._mcp is not None:
            await self._mcp.close()

    async def chat(
        self,
        agent: str,
        identity: RunIdentity,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        response_format: dict[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
    ) -> ModelReply:
        """One model call for ``agent`` in the run, approvals included; raises ``GatewayRefusal``."""
        key = self.config.key_for(agent)
        body: dict[str, Any] = {"model": self.config.model_for(agent), "messages": messages}
        if tools:
            body["tools"] = tools
            if parallel_tool_calls is not None:
                body["parallel_tool_calls"] = parallel_tool_calls
        if response_format:
            body["response_format"] = response_format
        approval_id: str | None = None
        deadline = time.monotonic() + self.config.approval_wait_s
        while True:
            extra = identity.headers(agent)
            if approval_id:
                extra[APPROVAL_HEADER] = approval_id
            try:
                return await self._send(key, agent, identity, body, extra, approval_id)
            except openai.APIStatusError as exc:
                pending = _approval_id(exc)
                if pending is None:
                    raise _refusal(exc) from exc
                approval_id = pending
                await self.poller.await_decision(
                    self.listener, key, agent, identity.run_id, approval_id, deadline
                )

    async def _send(
        self,
        key: str,
        agent: str,
        identity: RunIdentity,
        body: dict[str, Any],
        extra: dict[str, str],
        approval_id: str | None,
    ) -> ModelReply:
        started = time.perf_counter()
        record = CallRecord(agent=agent, run_id=identity.run_id, model=body["model"])
        try:
            raw = await self.client(key).post(
                "/chat/completions", cast_to=HTTPResponse, body=body, options={"headers": extra}
            )
        except openai.APIStatusError as exc:
            code = exc.body.get("code") if isinstance(exc.body, dict) else None
            record.finish(started, exc.status_code, code, request_id=exc.response.headers.get("x-request-id"))
            self.listener.call_finished(record)
            raise
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            record.finish(
                started, None, "timeout" if isinstance(exc, openai.APITimeoutError) else "connection"
            )
            self.listener.call_finished(record)
            raise CallFailed(f"gateway unreachable: {exc}", code=record.code) from exc
        headers = {k.lower(): v for k, v in raw.headers.items() if k.lower().startswith("x-")}
        try:
            completion = orjson.loads(raw.content)
        except orjson.JSONDecodeError as exc:
            record.finish(started, raw.status_code, "bad_response", request_id=headers.get("x-request-id"))
            self.listener.call_finished(record)
            raise CallFailed(
                f"the gateway answered {raw.status_code} with a body that is not JSON",
                status=raw.status_code,
                code="bad_response",
            ) from exc
        content, calls, usage, finish_reason = _read_completion(completion)
        approval: dict[str, str] | None = None
        outcome = headers.get("x-wardgate-approval")
        if outcome or approval_id:
            approval = {
                "id": headers.get("x-wardgate-approval-id") or approval_id or "",
                "outcome": outcome or "approved",
                "mode": "defer" if approval_id else "hold",
            }
        record.finish(
            started,
            raw.status_code,
            None,
            request_id=headers.get("x-request-id"),
            usage=usage,
            approval=approval,
        )
        self.listener.call_finished(record)
        if approval and not approval_id:
            await self.listener.approval_decided(identity.run_id, agent, approval["id"], approval["outcome"])
        return ModelReply(
            agent, content, calls, usage, headers.get("x-request-id"), finish_reason, approval, headers
        )
