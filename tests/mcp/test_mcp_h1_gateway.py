"""The relay's connection slots through the gateway: an agent that leaves in the middle of a
streamed tools/call gives its upstream connection back at once (``mcp.max_connections`` is 1
here, so the next call would otherwise wait out its timeout behind a stream that never ends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.http.launch import serve_app
from tests.harness import PASS_THROUGH, TEST_KEY
from tests.mcp.conftest import mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer

pytestmark = pytest.mark.asyncio

NOTICE = b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n'


def _server() -> Starlette:
    async def drip(request: Request) -> Response:  # notifications every 50 ms, never the answer
        async def events() -> AsyncIterator[bytes]:
            for _ in range(400):
                yield NOTICE
                await asyncio.sleep(0.05)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def quick(request: Request) -> Response:
        return Response(b'{"jsonrpc":"2.0","id":2,"result":{"content":[]}}', media_type="application/json")

    return Starlette(
        routes=[Route("/drip", drip, methods=["POST"]), Route("/quick", quick, methods=["POST"])]
    )


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    with serve_app(_server(), lifespan="off") as upstream:
        doc = mcp_yaml(url)
        for name in ("drip", "quick"):  # one host and port: one pool of one connection
            doc["servers"][name] = {"url": f"{upstream.url}/{name}", "timeout_s": 2.0}
        overrides = {**PASS_THROUGH, "mcp": {"max_connections": 1}}
        with start_gateway(tmp_path_factory.mktemp("mcp-h1-gw"), doc, **overrides) as gw:
            yield gw


def _call(id_: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": "get_balance", "arguments": {}},
    }


_HEADERS = {"authorization": f"Bearer {TEST_KEY}", "accept": "application/json, text/event-stream"}


async def test_an_agent_that_leaves_mid_stream_frees_the_connection(gateway: Any) -> None:
    for _ in range(3):
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream(
                "POST", f"{gateway.url}/mcp/drip", headers=_HEADERS, json=_call(1)
            ) as resp:
                async for chunk in resp.aiter_bytes():
                    assert b"notifications/message" in chunk
                    break  # the agent leaves: its connection to the gateway is closed
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(timeout=10) as http:
            resp2 = await http.post(f"{gateway.url}/mcp/quick", headers=_HEADERS, json=_call(2))
        assert resp2.json() == {"jsonrpc": "2.0", "id": 2, "result": {"content": []}}, resp2.text
