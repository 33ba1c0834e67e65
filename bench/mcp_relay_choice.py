"""The MCP relay's choice: the official ``mcp`` SDK client vs a plain aiohttp JSON-RPC relay.

    .venv/bin/python bench/mcp_relay_choice.py [--calls 300]

The gateway relays each ``tools/call`` to the server. Built on the SDK, each relayed call would
go through its ``ClientSession`` (``streamable_http_client``: a task group, memory streams, the
message parsed into pydantic types and validated, the answer validated again) before the
gateway could even look at it; built on aiohttp, it is one POST of the agent's own bytes and
one ``orjson.loads`` of the answer (what ``gateway/mcp/upstream.py`` + ``relay.py`` do). This
measures what each costs the *calling* thread per call, against the same SDK server (served
from another thread): ``time.thread_time()`` around N sequential calls, so a loaded machine
does not inflate it (wall time would). Same server, same tool, same session, warmed up first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

# bench/mcp.py would shadow the ``mcp`` package: the repository root instead of bench/.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import aiohttp  # noqa: E402
import orjson  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.mcp.mcp_server import ToolServer  # noqa: E402


async def sdk_client(url: str, calls: int) -> float:
    async with Client(streamable_http_client(url), mode="legacy", cache=None) as client:  # type: ignore[arg-type]
        for _ in range(20):
            await client.call_tool("get_balance", {"account": "A"})
        t0 = time.thread_time()
        for _ in range(calls):
            await client.call_tool("get_balance", {"account": "A"})
        return (time.thread_time() - t0) / calls


async def aiohttp_relay(url: str, calls: int) -> float:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "b", "version": "1"},
        },
    }
    async with aiohttp.ClientSession() as http:
        async with http.post(url, data=orjson.dumps(init), headers=headers) as resp:
            await resp.read()
            headers["mcp-session-id"] = resp.headers["mcp-session-id"]
            headers["mcp-protocol-version"] = "2025-11-25"
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        async with http.post(url, data=orjson.dumps(note), headers=headers) as resp:
            await resp.read()

        async def one(i: int) -> None:
            body = orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": i,
                    "method": "tools/call",
                    "params": {"name": "get_balance", "arguments": {"account": "A"}},
                }
            )
            async with http.post(url, data=body, headers=headers) as resp:
                raw = await resp.read()
            text = raw.decode()
            orjson.loads(text[text.index("{") : text.rindex("}") + 1])  # the SSE event's data

        for i in range(20):
            await one(i + 1)
        t0 = time.thread_time()
        for i in range(calls):
            await one(i + 100)
        return (time.thread_time() - t0) / calls


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    server = ToolServer()
    with server.running() as served:
        url = served.url + "/mcp"
        sdk = asyncio.run(sdk_client(url, args.calls))
        raw = asyncio.run(aiohttp_relay(url, args.calls))
    print(f"CPU of the calling thread per tools/call, {args.calls} calls (time.thread_time):")
    print(f"  mcp SDK ClientSession (streamable HTTP): {sdk * 1e6:8.0f} µs")
    print(f"  aiohttp JSON-RPC relay (orjson):         {raw * 1e6:8.0f} µs")
    print(f"  ratio: {sdk / raw:.1f}x")


if __name__ == "__main__":
    main()
