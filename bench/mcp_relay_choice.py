"""The MCP relay's choice: the official ``mcp`` SDK client vs a plain aiohttp JSON-RPC relay vs
the gateway's own HTTP/1.1 client (gateway/mcp/h1.py, what the relay uses).

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

from collections.abc import Awaitable, Callable, Mapping  # noqa: E402

import aiohttp  # noqa: E402
import orjson  # noqa: E402
import yarl  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from gateway.mcp.h1 import Client as H1Client  # noqa: E402
from tests.mcp.mcp_server import ToolServer  # noqa: E402


async def sdk_client(url: str, calls: int) -> float:
    async with Client(streamable_http_client(url), mode="legacy", cache=None) as client:  # type: ignore[arg-type]
        for _ in range(20):
            await client.call_tool("get_balance", {"account": "A"})
        t0 = time.thread_time()
        for _ in range(calls):
            await client.call_tool("get_balance", {"account": "A"})
        return (time.thread_time() - t0) / calls


#: One POST: (body, headers) -> (the answer's headers, its body).
Post = Callable[[bytes, dict[str, str]], Awaitable[tuple[Mapping[str, str], bytes]]]


async def relay(post: Post, calls: int) -> float:
    """``calls`` relayed ``tools/call`` POSTs of raw bytes over ``post``, CPU per call."""
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
    answer_headers, _ = await post(orjson.dumps(init), headers)
    headers["mcp-session-id"] = answer_headers["mcp-session-id"]
    headers["mcp-protocol-version"] = "2025-11-25"
    await post(orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}), headers)

    async def one(i: int) -> None:
        body = orjson.dumps(
            {
                "jsonrpc": "2.0",
                "id": i,
                "method": "tools/call",
                "params": {"name": "get_balance", "arguments": {"account": "A"}},
            }
        )
        _, raw = await post(body, headers)
        text = raw.decode()
        orjson.loads(text[text.index("{") : text.rindex("}") + 1])  # the SSE event's data

    for i in range(20):
        await one(i + 1)
    t0 = time.thread_time()
    for i in range(calls):
        await one(i + 100)
    return (time.thread_time() - t0) / calls


async def aiohttp_relay(url: str, calls: int) -> float:
    async with aiohttp.ClientSession() as http:

        async def post(body: bytes, headers: dict[str, str]) -> tuple[Mapping[str, str], bytes]:
            async with http.post(url, data=body, headers=headers) as resp:
                return resp.headers, await resp.read()

        return await relay(post, calls)


async def h1_relay(url: str, calls: int) -> float:
    """The gateway's own client (gateway/mcp/h1.py), as ``upstream.py`` drives it."""
    client, target = H1Client(4), yarl.URL(url)

    async def post(body: bytes, headers: dict[str, str]) -> tuple[Mapping[str, str], bytes]:
        resp = await client.request("POST", target, headers, body, 10.0)
        try:
            return resp.headers, b"".join([chunk async for chunk in resp.content.iter_any()])
        finally:
            resp.release()

    try:
        return await relay(post, calls)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    server = ToolServer()
    with server.running() as served:
        url = served.url + "/mcp"
        sdk = asyncio.run(sdk_client(url, args.calls))
        raw = asyncio.run(aiohttp_relay(url, args.calls))
        lean = asyncio.run(h1_relay(url, args.calls))
    print(f"CPU of the calling thread per tools/call, {args.calls} calls (time.thread_time):")
    print(f"  mcp SDK ClientSession (streamable HTTP): {sdk * 1e6:8.0f} µs")
    print(f"  aiohttp JSON-RPC relay (orjson):         {raw * 1e6:8.0f} µs")
    print(f"  gateway/mcp/h1.py relay (orjson):        {lean * 1e6:8.0f} µs")
    print(f"  ratios: SDK / aiohttp {sdk / raw:.1f}x, aiohttp / h1 {raw / lean:.1f}x")


if __name__ == "__main__":
    main()
