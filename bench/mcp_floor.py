"""The floor of an MCP hop: the least a proxy can do for a ``tools/call``, served by ``bench/mcp.py``.

    MCP_UPSTREAM=http://127.0.0.1:8111/mcp uvicorn bench.mcp_floor:app --loop uvloop --http httptools

Accept the POST, forward its body to the upstream over a kept-alive connection of the client
the gateway's relay uses (``gateway/mcp/h1.py``, the leanest this stack has) with the headers a
session needs (``Mcp-Session-Id``, ``Mcp-Protocol-Version``), return the answer with its status,
content type and session id. No key, no parsing, no guard, no audit: the latency this adds is
what any Python proxy on the gateway's server stack (uvicorn + httptools + uvloop) and client
costs on this machine, so the gateway's own share is the gateway's added latency minus this one's.
"""

from __future__ import annotations

import os
from typing import Any

import yarl

from bench.asgi_floor import lifespan, read_body
from gateway.mcp.h1 import Client

_UPSTREAM = yarl.URL(os.environ.get("MCP_UPSTREAM", "http://127.0.0.1:9/mcp"))
_STATE: dict[str, Any] = {}
_FORWARDED = (b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version")


def _open() -> None:
    _STATE["client"] = Client(256)


async def _close() -> None:
    _STATE["client"].close()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _open, _close)
        return
    body = await read_body(receive)
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in _FORWARDED}
    resp = await _STATE["client"].request("POST", _UPSTREAM, headers, body, 30.0)
    try:
        out = b"".join([chunk async for chunk in resp.content.iter_any()])
    finally:
        resp.release()
    answer = [
        (b"content-type", resp.headers.get("content-type", "application/json").encode()),
        (b"content-length", str(len(out)).encode()),
    ]
    session = resp.headers.get("mcp-session-id")
    if session:
        answer.append((b"mcp-session-id", session.encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": answer})
    await send({"type": "http.response.body", "body": out})
