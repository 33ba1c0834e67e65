"""The route ``/mcp/{server}``: POSTs as a raw ASGI app ahead of Starlette (the hot path),
GET and DELETE through Starlette; ``McpGateway`` does the rest.

Why two doors: a ``tools/call`` POST is the MCP gateway's traffic, and Starlette's routing,
middleware and Request/Response objects cost a tenth of the gateway's CPU per call, as they
did on the proxy endpoints (``gateway/http/hotpath.py``). GET (a server's stream) and DELETE
are rare and keep the Starlette route.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.http.asgi import ASGIApp, Receive, Scope, Send, send_bytes
from gateway.http.routes import bind
from gateway.mcp.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, NOT_FOUND, McpError, error_body
from gateway.mcp.relay import Answer
from gateway.mcp.service import McpGateway
from gateway.registry import Provider

log = logging.getLogger("wardgate.mcp")

PREFIX = "/mcp/"


def _disabled() -> Answer:
    body = error_body(
        None, INTERNAL_ERROR, "The MCP gateway is disabled on this gateway (mcp.enabled).", "disabled"
    )
    return Answer(503, {"content-type": "application/json"}, body)


def _too_large(limit: int) -> McpError:
    return McpError(
        413,
        INVALID_REQUEST,
        f"The message is larger than {limit} bytes (mcp.max_body_bytes).",
        kind="too_large",
    )


def _declared_too_large(headers: Mapping[str, str], limit: int) -> bool:
    declared = headers.get("content-length")
    return declared is not None and declared.isdigit() and int(declared) > limit


async def mcp_endpoint(request: Request, get: Provider[McpGateway]) -> Response:
    """MCP (Streamable HTTP) to the configured server, with the gateway's keys, policies,
    approvals, redaction, limits and audit (docs/mcp.md)."""
    gateway = get()
    if gateway is None:
        return _response(_disabled())

    async def read_body(limit: int) -> bytes:
        if _declared_too_large(request.headers, limit):
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    answer = await gateway.handle(request.method, request.path_params["server"], request.headers, read_body)
    return _response(answer)


def _response(answer: Answer) -> Response:
    if answer.stream is not None:
        return StreamingResponse(answer.stream, status_code=answer.status, headers=answer.headers)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def hot_endpoint(get: Provider[McpGateway]) -> ASGIApp:
    """``POST /mcp/{server}`` as a raw ASGI app (the hot path gives it every POST under /mcp/)."""

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"][len(PREFIX) :]
        gateway = get()
        if not name or "/" in name:  # what the Starlette route would not match
            answer = Answer(
                404,
                {"content-type": "application/json"},
                error_body(None, NOT_FOUND, "Not found: the MCP endpoint is /mcp/{server}.", "not_found"),
            )
        elif gateway is None:
            answer = _disabled()
        else:
            headers = _headers(scope)
            try:
                answer = await gateway.handle("POST", name, headers, _body_reader(headers, receive))
            except Exception:  # a bug must still answer the agent with a JSON-RPC error
                log.exception("mcp request failed")
                answer = Answer(
                    500,
                    {"content-type": "application/json"},
                    error_body(None, INTERNAL_ERROR, "Internal error.", "internal_error"),
                )
        if answer.stream is not None:
            response = StreamingResponse(answer.stream, status_code=answer.status, headers=answer.headers)
            await response(scope, receive, send)
            return
        await send_bytes(send, answer.status, answer.body, answer.headers)

    return endpoint


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name; a repeated header counts once, its first
    value (as Starlette's ``Headers.get`` reads it), so every guard and the upstream see one."""
    out: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1")
        if name not in out:
            out[name] = value.decode("latin-1")
    return out


def _body_reader(headers: Mapping[str, str], receive: Receive) -> Callable[[int], Awaitable[bytes]]:
    async def read_body(limit: int) -> bytes:
        if _declared_too_large(headers, limit):
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise McpError(400, INVALID_REQUEST, "The client went away.", kind="disconnected")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    return read_body


def routes(gateway: Provider[McpGateway]) -> list[BaseRoute]:
    return [Route("/mcp/{server}", bind(mcp_endpoint, gateway), methods=["GET", "POST", "DELETE"])]
