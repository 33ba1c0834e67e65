"""The pass-through: the SDK client reaches the SDK server through ``/mcp/{server}``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import OTHER_TEAM_KEY, PASS_THROUGH, TEST_KEY, free_port
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    with start_gateway(tmp_path_factory.mktemp("mcp"), mcp_yaml(url), **PASS_THROUGH) as gw:
        yield gw


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_list_and_call_through_the_gateway(
    gateway: Any, tool_server: tuple[ToolServer, str], mode: str
) -> None:
    server, _ = tool_server
    before = server.calls["get_balance"]
    async with mcp_client(gateway.url + "/mcp/payments", mode=mode) as client:
        tools = await client.list_tools()
        assert "get_balance" in {t.name for t in tools.tools}
        resources = await client.list_resources()
        assert "secret://vault" in {str(r.uri) for r in resources.resources}  # policy off: all listed
        result = await client.call_tool("get_balance", {"account": "A-1"})
        assert not result.is_error
        assert result.content[0].text == "balance of A-1: 100.00"
    assert server.calls["get_balance"] == before + 1


async def test_the_upstream_never_sees_the_virtual_key(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    server.headers.clear()
    async with mcp_client(gateway.url + "/mcp/payments", mode="auto") as client:
        await client.call_tool("get_balance", {"account": "A-1"})
    assert server.headers
    for headers in server.headers:
        assert TEST_KEY not in str(headers)
        assert "authorization" not in headers
    methods = {h.get("mcp-method") for h in server.headers}
    assert "tools/call" in methods  # 2026-07-28 routing headers written from the body


async def test_a_session_belongs_to_the_key_that_opened_it(gateway: Any) -> None:
    url = gateway.url + "/mcp/payments"
    async with httpx.AsyncClient() as http:
        init = await http.post(url, headers=_headers(TEST_KEY), json=_initialize())
        assert init.status_code == 200, init.text
        session = init.headers["mcp-session-id"]
        mine = await http.post(url, headers=_headers(TEST_KEY, session), json=_ping())
        assert mine.status_code == 200, mine.text
        theirs = await http.post(url, headers=_headers(OTHER_TEAM_KEY, session), json=_ping())
        assert theirs.status_code == 404
        assert "belongs to the key that opened it" in theirs.json()["error"]["message"]
        forged = await http.post(
            url, headers=_headers(TEST_KEY, session.rpartition(".")[0] + ".x" * 16), json=_ping()
        )
        assert forged.status_code == 404
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        accepted = await http.post(url, headers=_headers(TEST_KEY, session), json=note)
        assert accepted.status_code == 202
        async with http.stream(
            "GET", url, headers={**_headers(TEST_KEY, session), "accept": "text/event-stream"}
        ) as get:
            assert get.status_code == 200 and get.headers["content-type"].startswith("text/event-stream")
        other_get = await http.get(
            url, headers={**_headers(OTHER_TEAM_KEY, session), "accept": "text/event-stream"}
        )
        assert other_get.status_code == 404
        gone = await http.delete(url, headers=_headers(TEST_KEY, session))
        assert gone.status_code == 200


def _headers(key: str, session: str | None = None) -> dict[str, str]:
    out = {"authorization": f"Bearer {key}", "accept": "application/json, text/event-stream"}
    if session:
        out["mcp-session-id"] = session
    return out


def _initialize() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {"experimental": {"x": {}}, "roots": {}},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }


def _ping(id_: int = 2) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": "ping"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', 400, -32600),
        (b"[]", 400, -32600),
        (b'"ping"', 400, -32600),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/destroy"}', 200, -32601),
        (b'{"jsonrpc":"2.0","method":"notifications/bogus"}', 400, -32601),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}', 400, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["transfer_funds"]}}', 200, -32602),
        (
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"amount=5"}}',
            200,
            -32602,
        ),
        (b'{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{}}', 200, -32602),
    ],
)
async def test_bad_json_rpc_is_refused_with_a_clear_error(
    gateway: Any, body: bytes, status: int, code: int
) -> None:
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            gateway.url + "/mcp/payments",
            headers={**_headers(TEST_KEY), "content-type": "application/json"},
            content=body,
        )
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code
    assert error["data"]["source"] == "wardgate"


async def test_transport_refusals(gateway: Any) -> None:
    url = gateway.url + "/mcp/"
    async with httpx.AsyncClient() as http:
        no_key = await http.post(url + "payments", headers={"accept": "application/json"}, json=_ping())
        assert no_key.status_code == 401 and no_key.headers["www-authenticate"] == "Bearer"
        bad_key = await http.post(url + "payments", headers=_headers("wg-nope"), json=_ping())
        assert bad_key.status_code == 401
        unknown = await http.post(url + "nope", headers=_headers(TEST_KEY), json=_ping())
        assert unknown.status_code == 404 and "Unknown MCP server" in unknown.json()["error"]["message"]
        team = await http.post(url + "crm", headers=_headers(OTHER_TEAM_KEY), json=_ping())
        assert team.status_code == 403
        big = await http.post(
            url + "payments", headers=_headers(TEST_KEY), json={**_ping(), "params": {"pad": "x" * (2 << 20)}}
        )
        assert big.status_code == 413
        text = await http.post(
            url + "payments", headers={**_headers(TEST_KEY), "content-type": "text/plain"}, content=b"{}"
        )
        assert text.status_code == 415
        bad_run = await http.post(
            url + "payments", headers={**_headers(TEST_KEY), "x-run-id": "sk-" + "a" * 40}, json=_ping()
        )
        assert bad_run.status_code == 400


async def test_capabilities_are_filtered_both_ways(gateway: Any, tool_server: tuple[ToolServer, str]) -> None:
    async with httpx.AsyncClient() as http:
        init = await http.post(gateway.url + "/mcp/payments", headers=_headers(TEST_KEY), json=_initialize())
    text = init.text
    payload = orjson.loads(text[text.index("{") : text.rindex("}") + 1]) if "data:" in text else init.json()
    caps = payload["result"]["capabilities"]
    assert set(caps) <= {"tools", "resources", "prompts", "logging", "completions"}
    assert "tools" in caps


async def test_an_upstream_that_is_down_gives_a_clean_error_result(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    with start_gateway(tmp_path, mcp_yaml(dead), **PASS_THROUGH) as gw:
        async with httpx.AsyncClient() as http:
            resp = await http.post(
                gw.url + "/mcp/payments",
                headers=_headers(TEST_KEY),
                json={
                    "jsonrpc": "2.0",
                    "id": 7,
                    "method": "tools/call",
                    "params": {"name": "get_balance", "arguments": {}},
                },
            )
            assert resp.status_code == 200
            result = resp.json()["result"]
            assert result["isError"] is True and "unreachable" in result["content"][0]["text"]
            listed = await http.post(
                gw.url + "/mcp/payments",
                headers=_headers(TEST_KEY),
                json={"jsonrpc": "2.0", "id": 8, "method": "tools/list"},
            )
            assert listed.json()["error"]["data"]["type"] == "upstream_unreachable"


async def test_server_progress_passes_through(gateway: Any) -> None:
    seen: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(message or "")

    async with mcp_client(gateway.url + "/mcp/payments") as client:
        result = await client.call_tool("slow", {"seconds": 0.01}, progress_callback=on_progress)
    assert result.content[0].text == "done"
    assert seen == ["half way"]


async def test_spans_carry_the_mcp_attributes(tool_server: tuple[ToolServer, str], tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from gateway.observability.component import Observability

    _, url = tool_server
    tracing = {"tracing": {"enabled": True, "exporter": "none"}}
    with start_gateway(tmp_path, mcp_yaml(url), **PASS_THROUGH, observability=tracing) as gw:
        exporter = InMemorySpanExporter()
        tracer = gw.component(Observability).tracer
        assert tracer is not None
        tracer.provider.add_span_processor(SimpleSpanProcessor(exporter))
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        async with mcp_client(
            gw.url + "/mcp/payments", headers={"traceparent": parent, "x-agent-id": "a1"}
        ) as client:
            await client.call_tool("get_balance", {"account": "A"})
        spans = [
            s for s in exporter.get_finished_spans() if s.attributes.get("mcp.method.name") == "tools/call"
        ]
    assert len(spans) == 1
    span = spans[0]
    assert span.name == "tools/call get_balance"
    assert span.attributes["gen_ai.tool.name"] == "get_balance"
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["gen_ai.agent.id"] == "a1"
    assert "mcp.session.id" in span.attributes and "jsonrpc.request.id" in span.attributes
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
