"""The floor of an MCP hop: the least a proxy can do for a ``tools/call``, served by ``bench/mcp.py``.

    MCP_UPSTREAM=http://127.0.0.1:8111/mcp uvicorn bench.mcp_floor:app --loop uvloop --http httptools

Accept the POST, forward its body to the upstream over one pooled keep-alive aiohttp session
(the client library the gateway uses) with the headers a session needs (``Mcp-Session-Id``,
``Mcp-Protocol-Version``), return the answer with its status, content type and session id.
No key, no parsing, no guard, no audit: the latency this adds is what any Python proxy on the
gateway's server stack (uvicorn + httptools + uvloop) and client costs on this machine, so the
gateway's own share is the gateway's added latency minus this one's.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp

_UPSTREAM = os.environ.get("MCP_UPSTREAM", "http://127.0.0.1:9/mcp")
_STATE: dict[str, Any] = {}
_FORWARDED = (b"content-type", b"accept", b"mcp-session-id", b"mcp-protocol-version")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _STATE["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
                await send({"type": "lifespan.startup.complete"})
            else:
                await _STATE["session"].close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {k.decode(): v.decode() for k, v in scope["headers"] if k in _FORWARDED}
    async with _STATE["session"].post(_UPSTREAM, data=body, headers=headers) as resp:
        out = await resp.read()
        answer = [
            (b"content-type", resp.headers.get("content-type", "application/json").encode()),
            (b"content-length", str(len(out)).encode()),
        ]
        session = resp.headers.get("mcp-session-id")
        if session:
            answer.append((b"mcp-session-id", session.encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": answer})
        await send({"type": "http.response.body", "body": out})
