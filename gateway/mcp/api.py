"""The route ``/mcp/{server}`` (POST, GET, DELETE): Starlette in, ``McpGateway`` does the rest."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.http.routes import bind
from gateway.mcp.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, McpError, error_body
from gateway.mcp.service import McpGateway
from gateway.registry import Provider


async def mcp_endpoint(request: Request, get: Provider[McpGateway]) -> Response:
    """MCP (Streamable HTTP) to the configured server, with the gateway's keys, policies,
    approvals, redaction, limits and audit (docs/mcp.md)."""
    gateway = get()
    if gateway is None:
        body = error_body(
            None, INTERNAL_ERROR, "The MCP gateway is disabled on this gateway (mcp.enabled).", "disabled"
        )
        return Response(body, status_code=503, media_type="application/json")

    async def read_body(limit: int) -> bytes:
        declared = request.headers.get("content-length")
        too_large = McpError(
            413,
            INVALID_REQUEST,
            f"The message is larger than {limit} bytes (mcp.max_body_bytes).",
            kind="too_large",
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    answer = await gateway.handle(request.method, request.path_params["server"], request.headers, read_body)
    if answer.stream is not None:
        return StreamingResponse(answer.stream, status_code=answer.status, headers=answer.headers)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


def routes(gateway: Provider[McpGateway]) -> list[BaseRoute]:
    return [Route("/mcp/{server}", bind(mcp_endpoint, gateway), methods=["GET", "POST", "DELETE"])]
