"""The sample MCP servers (orchestrator/mcp_servers/) with the official ``mcp`` SDK as client.

They are what tests and the demo put behind ``/mcp/{server}``, so what they promise is
checked here directly: the support tools and data are the scenario's, errors are
``isError`` results, every ``tools/call`` is counted by name, a call carrying the caller's
tool context is idempotent, and ``python -m orchestrator.mcp_servers`` serves on a port.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from mcp import Client

from gateway.http.launch import free_port
from orchestrator.mcp_servers import TOOL_CONTEXT_META, ToolBoxServer, crm_server, payments_server
from orchestrator.scenario import get_scenario
from tests.harness import REPO
from tests.waiting import wait_until_async


@pytest.fixture(scope="module")
def crm() -> Iterator[tuple[ToolBoxServer, str]]:
    server = crm_server()
    with server.serve() as url:
        yield server, url


@pytest.fixture(scope="module")
def payments() -> Iterator[tuple[ToolBoxServer, str]]:
    server = payments_server()
    with server.serve(json_response=True) as url:
        yield server, url


def _json(result: Any) -> Any:
    assert not result.is_error, result.content[0].text
    return orjson.loads(result.content[0].text)


async def test_crm_lists_the_support_tools_with_the_scenarios_schemas_and_hints(crm):
    _, url = crm
    scenario = get_scenario("support")
    async with Client(url, mode="legacy") as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
    assert (
        set(listed)
        == set(scenario.tools.names())
        >= {
            "lookup_customer",
            "lookup_order",
            "search_kb",
            "issue_refund",
            "delete_customer",
            "send_email",
        }
    )
    for name, tool in listed.items():
        local = scenario.tools.get(name)
        assert local is not None and tool.input_schema == local.parameters
        assert tool.annotations is not None and tool.annotations.read_only_hint is (not local.side_effect)
    assert listed["delete_customer"].annotations.destructive_hint is True


async def test_crm_answers_like_the_local_tools_and_counts_every_call(crm):
    server, url = crm
    server.reset()
    local = get_scenario("support").backend
    async with Client(url, mode="legacy") as client:
        order = _json(await client.call_tool("lookup_order", {"order_id": "ORD-1001"}))
        customer = _json(await client.call_tool("lookup_customer", {"customer_id": "cust-1042"}))
        missing = await client.call_tool("lookup_order", {"order_id": "ORD-9"})
        nope = await client.call_tool("no_such_tool", {})
    assert order == local.lookup_order("ORD-1001")
    assert customer["email"] == "jane.doe@example.com" and customer["customer_id"] == "CUST-1042"
    assert missing.is_error and missing.content[0].text == "no order 'ORD-9'"
    assert nope.is_error and "unknown tool" in nope.content[0].text
    assert server.count("lookup_order") == 2 and server.count("lookup_customer") == 1
    assert server.count("no_such_tool") == 1 and server.count("issue_refund") == 0


async def test_a_call_carrying_its_tool_context_is_idempotent_at_the_backend(crm):
    server, url = crm
    server.reset()
    meta = {TOOL_CONTEXT_META: {"run_id": "run-idem", "step_id": "refund", "tool_call_id": "call_1"}}
    args = {"order_id": "ORD-1001", "amount": 20.0, "reason": "cracked jar"}
    async with Client(url, mode="legacy") as client:
        first = _json(await client.call_tool("issue_refund", args, meta=meta))
        again = _json(await client.call_tool("issue_refund", args, meta=meta))
        other = _json(await client.call_tool("issue_refund", args))  # no context: a new refund
    backend = server.backend
    assert first == again and other["refund_id"] != first["refund_id"]
    assert server.count("issue_refund") == 3  # three calls reached the server ...
    assert len(backend.refunds) == 2  # ... and the retry paid nothing
    assert backend.invocations[("issue_refund", "run-idem:call_1")] == 2


async def test_payments_transfers_once_per_key_and_refuses_bad_transfers(payments):
    server, url = payments
    server.reset()
    meta = {TOOL_CONTEXT_META: {"run_id": "run-pay", "step_id": "s", "tool_call_id": "call_9"}}
    args = {"amount": 1500, "currency": "EUR", "to_account": "ACC-2001"}
    async with Client(url, mode="legacy") as client:
        before = _json(await client.call_tool("get_balance", {"account": "ACC-OPS"}))
        done = _json(await client.call_tool("transfer_funds", args, meta=meta))
        _json(await client.call_tool("transfer_funds", args, meta=meta))
        after = _json(await client.call_tool("get_balance", {"account": "acc-ops"}))
        refused = [
            await client.call_tool("transfer_funds", {**args, "to_account": "ACC-404"}),
            await client.call_tool("transfer_funds", {**args, "currency": "USD"}),
            await client.call_tool("transfer_funds", {**args, "amount": -5}),
            await client.call_tool("transfer_funds", {**args, "amount": 10**9}),
        ]
    assert done["status"] == "executed" and done["to_account"] == "ACC-2001"
    assert before["balance"] - after["balance"] == 1500
    assert [r.is_error for r in refused] == [True] * 4
    assert "insufficient funds" in refused[3].content[0].text
    assert server.count("transfer_funds") == 6 and server.count("get_balance") == 2


def test_python_m_serves_a_sample_server_on_a_port():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.mcp_servers", "payments", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/mcp"

    async def names() -> list[str] | None:
        try:
            async with Client(url, mode="legacy") as client:
                return [t.name for t in (await client.list_tools()).tools]
        except Exception:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            return None

    try:
        listed = asyncio.run(wait_until_async(names, within=60, interval=0.2))
        assert listed == ["transfer_funds", "get_balance"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
