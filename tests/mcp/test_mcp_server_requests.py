"""What the server gets besides the body, and what it may ask the agent: ``Mcp-Param-*`` headers
rebuilt from the redacted arguments (no raw value in a header), and sampling / elicitation
refused (not offered, never relayed), with the official SDK client and server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.harness import PASS_THROUGH, TEST_KEY
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer

pytestmark = pytest.mark.asyncio

SECRET = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0" * 2


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    guards = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with start_gateway(tmp_path_factory.mktemp("mcp-server-requests"), mcp_yaml(url), **guards) as gw:
        yield gw


async def test_param_headers_are_rebuilt_from_the_redacted_arguments(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["notify"]
    server.headers.clear()
    async with mcp_client(gateway.url + "/mcp/payments", mode="auto") as client:
        await client.list_tools()  # the client learns which argument the header mirrors
        result = await client.call_tool("notify", {"to": f"ops {SECRET}", "text": "deploy done"})
    assert not result.is_error, result.content
    # The server checked Mcp-Param-To against the body (2026-07-28) and accepted the call.
    assert server.calls["notify"] == before + 1
    sent = [args for name, args in server.seen if name == "notify"][-1]["to"]
    assert SECRET not in sent and "ops " in sent
    calls = [h for h in server.headers if h.get("mcp-method") == "tools/call"]
    assert calls and "mcp-param-to" in calls[-1]
    for headers in server.headers:
        assert SECRET not in str(headers) and SECRET[8:30] not in str(headers)


async def test_a_param_header_that_mirrors_no_argument_is_refused(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["notify"]
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "notify", "arguments": {"to": "ops", "text": "x"}},
    }
    headers = {
        "authorization": f"Bearer {TEST_KEY}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-param-to": SECRET,
    }
    async with httpx.AsyncClient() as http:
        resp = await http.post(gateway.url + "/mcp/payments", json=body, headers=headers)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == -32020 and "does not mirror an argument" in error["message"]
    assert server.calls["notify"] == before


async def test_sampling_and_elicitation_are_neither_offered_nor_relayed(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    asked: list[str] = []

    async def sampling(context: Any, params: Any) -> Any:
        asked.append("sampling")
        raise AssertionError("the gateway relayed a sampling request")

    async def elicitation(context: Any, params: Any) -> Any:
        asked.append("elicitation")
        raise AssertionError("the gateway relayed an elicitation request")

    http = create_mcp_http_client(headers={"authorization": f"Bearer {TEST_KEY}"})
    async with http:
        transport = streamable_http_client(gateway.url + "/mcp/payments", http_client=http)
        async with Client(
            transport,  # type: ignore[arg-type]
            mode="legacy",
            cache=None,
            sampling_callback=sampling,
            elicitation_callback=elicitation,
        ) as client:
            model = await client.call_tool("ask_model", {"question": "what is 2+2?"})
            user = await client.call_tool("ask_user", {"question": "your name?"})
    assert asked == []
    # The server's request was answered by the gateway with an error, so the tool did not hang.
    assert "sampling refused" in model.content[0].text, model.content
    assert "Wardgate does not relay sampling/createMessage" in model.content[0].text
    assert "elicitation refused" in user.content[0].text, user.content
    assert server.calls["ask_model"] >= 1 and server.calls["ask_user"] >= 1
