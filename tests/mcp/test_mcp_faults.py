"""Upstream faults (down is in test_mcp_relay.py): slow, garbage, compressed, a body gone
silent, a stream that ends without the answer; rate limits per tool and scope; the cost of a call from pricing.yaml; a policy
engine that cannot decide (fail closed); the metrics."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.http.launch import serve_app
from tests.harness import AUDITOR_KEY, PASS_THROUGH, TEST_KEY
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer

pytestmark = pytest.mark.asyncio


def _bad_server() -> Starlette:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(5)
        return Response(b"{}", media_type="application/json")

    async def garbage(request: Request) -> Response:
        return Response(b"<html>oops</html>", media_type="text/html")

    async def cut(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b'data: {"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    async def huge(request: Request) -> Response:
        body = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "x" * 100_000}]}}
        return Response(orjson.dumps(body), media_type="application/json")

    async def failing(request: Request) -> Response:
        return Response(b"internal", status_code=500)

    async def gzipped(request: Request) -> Response:  # compressed though the gateway asked for identity
        body = gzip.compress(b'{"jsonrpc":"2.0","id":1,"result":{"content":[]}}')
        return Response(body, media_type="application/json", headers={"content-encoding": "gzip"})

    async def stall(request: Request) -> Response:  # the head at once, then the body goes silent
        async def body() -> AsyncIterator[bytes]:
            yield b'{"jsonrpc":"2.0",'
            await asyncio.sleep(5)
            yield b'"id":1,"result":{}}'

        return StreamingResponse(body(), media_type="application/json")

    return Starlette(
        routes=[
            Route("/slow", slow, methods=["POST"]),
            Route("/garbage", garbage, methods=["POST"]),
            Route("/cut", cut, methods=["POST"]),
            Route("/failing", failing, methods=["POST"]),
            Route("/huge", huge, methods=["POST"]),
            Route("/gzipped", gzipped, methods=["POST"]),
            Route("/stall", stall, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    with serve_app(_bad_server(), lifespan="off") as bad:
        doc = mcp_yaml(url, limits=[{"tools": ["get_balance"], "scope": "run", "calls_per_minute": 2}])
        for name in ("slow", "garbage", "cut", "failing", "huge", "gzipped", "stall"):
            doc["servers"][name] = {"url": f"{bad.url}/{name}", "timeout_s": 0.5}

        def prepare(policies: Path) -> None:
            pricing = policies / "pricing.yaml"
            priced = yaml.safe_load(pricing.read_text())
            priced["mcp_tools"] = {"payments/get_balance": 0.002}
            pricing.write_text(yaml.safe_dump(priced))

        overrides = {
            **PASS_THROUGH,
            "limits": {"enabled": True},
            "audit": {"enabled": True},
            "mcp": {"max_response_bytes": 64 * 1024},
        }
        with start_gateway(tmp_path_factory.mktemp("mcp-faults"), doc, prepare, **overrides) as gw:
            yield gw


def _call(tool: str = "get_balance", id_: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"account": "A"}},
    }


_HEADERS = {"authorization": f"Bearer {TEST_KEY}", "accept": "application/json, text/event-stream"}


@pytest.mark.parametrize(
    ("server", "kind"),
    [
        ("slow", "timeout"),
        ("garbage", "garbage"),
        ("failing", "status"),
        ("gzipped", "garbage"),
        ("stall", "timeout"),
    ],
)
async def test_a_bad_upstream_gives_a_clean_error_result(gateway: Any, server: str, kind: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{gateway.url}/mcp/{server}", headers=_HEADERS, json=_call())
        assert resp.status_code == 200
        result = resp.json()["result"]
        assert result["isError"] is True and kind in result["content"][0]["text"]
        listed = await http.post(
            f"{gateway.url}/mcp/{server}",
            headers=_HEADERS,
            json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        )
        assert listed.json()["error"]["data"]["type"] == f"upstream_{kind}"


async def test_a_stream_that_ends_without_the_answer_is_closed_with_one(gateway: Any) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.post(f"{gateway.url}/mcp/cut", headers=_HEADERS, json=_call(id_=9))
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in resp.text.splitlines() if line.startswith("data: ")]
    assert "notifications/message" in events[0]  # what the server sent passes through
    assert '"id":9' in events[-1] and '"isError":true' in events[-1]


async def test_calls_per_minute_per_tool_and_run(gateway: Any, tool_server: tuple[ToolServer, str]) -> None:
    server, _ = tool_server
    before = server.calls["get_balance"]
    async with mcp_client(f"{gateway.url}/mcp/payments", headers={"x-run-id": "run-limited"}) as client:
        results = [await client.call_tool("get_balance", {"account": "A"}) for _ in range(3)]
        assert [r.is_error for r in results] == [False, False, True]
        assert "2 calls per minute" in results[2].content[0].text
        assert not (await client.call_tool("echo", {"text": "other tools are not counted"})).is_error
    async with mcp_client(f"{gateway.url}/mcp/payments", headers={"x-run-id": "run-other"}) as client:
        assert not (await client.call_tool("get_balance", {"account": "A"})).is_error  # another run
    assert server.calls["get_balance"] == before + 3


async def test_the_cost_of_a_call_and_the_metrics(gateway: Any) -> None:
    async with mcp_client(f"{gateway.url}/mcp/payments", headers={"x-run-id": "run-priced"}) as client:
        await client.call_tool("get_balance", {"account": "A"})
    async with httpx.AsyncClient() as http:
        timeline = await http.get(
            gateway.url + "/admin/runs/run-priced", headers={"authorization": f"Bearer {AUDITOR_KEY}"}
        )
        metrics = await http.get(gateway.url + "/metrics")
    steps = [s["data"]["mcp"] for s in timeline.json()["steps"] if s.get("kind") == "mcp"]
    assert [s.get("cost_usd") for s in steps if s["method"] == "tools/call"] == [0.002]
    assert (
        'wardgate_mcp_requests_total{method="tools/call",outcome="allow",server="payments",tool="get_balance"}'
        in metrics.text
    )


async def test_fail_closed_when_the_policy_engine_cannot_decide(
    tool_server: tuple[ToolServer, str], tmp_path: Path
) -> None:
    server, url = tool_server
    before = server.calls["get_balance"]

    def without_mcp_policy(policies: Path) -> None:
        (policies.parent / "rego" / "mcp.rego").unlink()
        (policies.parent / "rego" / "mcp_test.rego").unlink()

    overrides = {**PASS_THROUGH, "policy": {"enabled": True, "watch": False}}
    with start_gateway(tmp_path, mcp_yaml(url), without_mcp_policy, **overrides) as gw:
        async with mcp_client(f"{gw.url}/mcp/payments") as client:
            result = await client.call_tool("get_balance", {"account": "A"})
            assert result.is_error and "could not decide" in result.content[0].text
            with pytest.raises(MCPError, match="could not decide"):
                await client.list_tools()
    assert server.calls["get_balance"] == before
