"""Serve a ``ToolBox`` as an MCP server (Streamable HTTP) with the official ``mcp`` SDK.

The sample servers (``crm``, ``payments``) are the systems an agent acts on, standing behind
Wardgate's ``/mcp/{server}``. They run the very ``Tool`` functions the orchestrator runs
locally, so a scenario behaves the same whichever way its tools are reached, and they count
every ``tools/call`` that reaches them by tool name (``calls``): a test can prove that a
denied call never arrived and that an approved one ran exactly once.

Idempotency over MCP: the caller may put its tool-call identity in the request's ``_meta``
under ``dev.wardgate/tool-context`` (``run_id``, ``step_id``, ``tool_call_id``); the tool then
sees the same ``ToolContext`` (and idempotency key) as when the orchestrator runs it locally,
so a retried call is recognised by the system behind it. Without it every call gets a fresh key.

Errors are tool results with ``isError`` (what MCP prescribes for a tool that refused or
failed, so the model can read them), never JSON-RPC errors: a ``ToolError``'s message as it
is, any other exception as "the tool failed (...)".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import mcp_types as types
import orjson
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from starlette.applications import Starlette

from orchestrator.tools import TOOL_CONTEXT_META, Tool, ToolBox, ToolContext, ToolError

log = logging.getLogger("orchestrator.mcp_servers")
#: Path of the Streamable HTTP endpoint on a sample server.
MCP_PATH = "/mcp"


def _annotations(tool: Tool) -> types.ToolAnnotations:
    return types.ToolAnnotations(
        read_only_hint=not tool.side_effect,
        destructive_hint=tool.side_effect,
        idempotent_hint=tool.idempotent or not tool.side_effect,
    )


def _context(meta: Any) -> ToolContext:
    """The caller's ``ToolContext`` from ``_meta``, or a fresh one (a key no retry will share)."""
    given = meta.get(TOOL_CONTEXT_META) if isinstance(meta, dict) else None
    if isinstance(given, dict) and all(isinstance(given.get(k), str) for k in ("run_id", "tool_call_id")):
        return ToolContext(given["run_id"], str(given.get("step_id") or ""), given["tool_call_id"])
    return ToolContext("mcp", "", uuid.uuid4().hex)


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class ToolBoxServer:
    """An MCP server for the tools of a ``ToolBox``; ``backend`` is the fake system behind them."""

    def __init__(
        self, name: str, tools: ToolBox, backend: Any = None, *, instructions: str | None = None
    ) -> None:
        self.name = name
        self.tools = tools
        self.backend = backend
        #: ``tools/call`` requests that reached this server, by tool name (unknown names too).
        self.calls: Counter[str] = Counter()
        #: ``Authorization`` header values seen on tool calls (a proxy must never pass the agent's key).
        self.authorizations: set[str] = set()
        self._lock = threading.Lock()
        self.server: Server[Any] = Server(
            name,
            version="1.0",
            instructions=instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )

    def count(self, tool: str) -> int:
        """How many ``tools/call`` for ``tool`` reached the server."""
        with self._lock:
            return self.calls[tool]

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.authorizations.clear()

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=tool.name,
                    description=tool.description,
                    input_schema=tool.parameters,
                    annotations=_annotations(tool),
                )
                for name in self.tools.names()
                if (tool := self.tools.get(name)) is not None
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request = ctx.request
        headers = getattr(request, "headers", None)
        with self._lock:
            self.calls[params.name] += 1
            if headers is not None and headers.get("authorization"):
                self.authorizations.add(str(headers["authorization"]))
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(f"unknown tool {params.name!r}")
        try:
            result = await tool(dict(params.arguments or {}), _context(params.meta))
        except ToolError as exc:
            return _error(str(exc))
        except Exception as exc:  # a broken tool is a tool result, like in the orchestrator's ledger
            log.warning("tool %s of server %s failed: %r", params.name, self.name, exc)
            return _error(f"the tool failed ({type(exc).__name__}: {exc})")
        # Text only, as the orchestrator's ledger writes a local tool's result: the model reads the
        # same JSON either way (and there is one copy of the data for a gateway to redact).
        text = result if isinstance(result, str) else orjson.dumps(result, default=str).decode()
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    def app(self, *, json_response: bool = False, stateless: bool = False) -> Starlette:
        """The Streamable HTTP ASGI app, endpoint ``/mcp`` (SSE answers unless ``json_response``)."""
        return self.server.streamable_http_app(
            streamable_http_path=MCP_PATH, json_response=json_response, stateless_http=stateless
        )

    @contextlib.contextmanager
    def serve(self, *, json_response: bool = False, stateless: bool = False) -> Iterator[str]:
        """Serve on a free local port from a background thread; yields the endpoint URL."""
        from gateway.http.launch import serve_app

        with serve_app(self.app(json_response=json_response, stateless=stateless)) as served:
            yield served.url + MCP_PATH
