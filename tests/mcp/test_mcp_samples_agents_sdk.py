"""The OpenAI Agents SDK's MCP integration (``MCPServerStreamableHttp``) through ``/mcp/crm``.

The agent's model is the gateway's built-in mock (a ``[[mock:tool=...]]`` directive makes it
call the tool), its MCP server the gateway's ``/mcp/crm`` with the agent's virtual key and
identity headers: an allowed call reaches the sample server once and its result reaches
the model; a tool the policy refuses outright is not even listed; a held refund the reviewer
denies never reaches the server and the agent's model reads why; one approved runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import openai
import orjson

from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from tests.harness import TEST_KEY
from tests.mcp.samples_gateway import LEAD_KEY, Samples, samples_fixture  # noqa: F401  (fixture `samples`)


def _directive(tool: str, args: dict[str, Any]) -> str:
    return f"[[mock:tool={tool} args={orjson.dumps(args).decode()}]]"


async def _run_agent(samples: Samples, prompt: str, run_id: str) -> Any:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from agents.mcp import MCPServerStreamableHttp

    set_tracing_disabled(True)
    identity = {"X-Agent-Id": "sdk-agent", "X-Run-Id": run_id}
    server = MCPServerStreamableHttp(
        params={"url": samples.url("crm"), "headers": {"Authorization": f"Bearer {TEST_KEY}", **identity}},
        name="crm",
        cache_tools_list=True,
        failure_error_function=lambda ctx, error: f"error: {error}",
    )
    async with server:
        agent = Agent(
            name="support-agent",
            instructions="Help the customer with your tools.",
            mcp_servers=[server],
            model=OpenAIChatCompletionsModel(
                model="mock-chat",
                openai_client=openai.AsyncOpenAI(
                    base_url=samples.gateway.base_url, api_key=TEST_KEY, default_headers=identity
                ),
            ),
        )
        return await Runner.run(agent, prompt, max_turns=4)


@contextlib.asynccontextmanager
async def reviewing(samples: Samples, run_id: str, *, deny: bool = False) -> AsyncIterator[AutoApprover]:
    """A support lead deciding the run's approvals through the admin API while the block runs."""
    admin = AdminClient(samples.gateway.base_url, LEAD_KEY)
    approver = AutoApprover(admin, run_id=run_id, deny=deny, poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(approver.run(stop))
    try:
        yield approver
    finally:
        stop.set()
        await task
        await admin.close()


def _tool_outputs(result: Any) -> list[str]:
    return [str(item.output) for item in result.new_items if type(item).__name__ == "ToolCallOutputItem"]


async def test_an_allowed_call_reaches_the_server_once_and_its_result_the_model(samples: Samples):
    samples.crm.reset()
    result = await _run_agent(
        samples, "Where is my order? " + _directive("lookup_order", {"order_id": "ORD-1001"}), "sdk-ok"
    )
    (output,) = _tool_outputs(result)
    assert "Blender Pro 500" in output and "delivered" in output
    assert samples.crm.count("lookup_order") == 1
    assert result.final_output  # the mock's summary of the tool result
    assert not any(TEST_KEY in auth for auth in samples.crm.authorizations)


async def test_the_agent_sees_only_the_tools_it_may_call(samples: Samples):
    from agents.mcp import MCPServerStreamableHttp

    server = MCPServerStreamableHttp(
        params={"url": samples.url("crm"), "headers": {"Authorization": f"Bearer {TEST_KEY}"}}, name="crm"
    )
    async with server:
        listed = {t.name for t in await server.list_tools()}
    assert "delete_customer" not in listed  # refused outright by policy.yaml: not even shown
    assert {"lookup_order", "issue_refund", "send_email"} <= listed


async def test_a_held_refund_denied_by_the_reviewer_never_runs_and_the_model_reads_why(samples: Samples):
    samples.crm.reset()
    run_id = f"sdk-held-{secrets.token_hex(3)}"
    args = {"order_id": "ORD-1001", "amount": 250.0, "reason": "cracked jar"}
    async with reviewing(samples, run_id, deny=True) as approver:
        result = await _run_agent(samples, "Refund me. " + _directive("issue_refund", args), run_id)
    (output,) = _tool_outputs(result)
    (decided,) = approver.decided
    assert decided["status"] == "denied" and decided["id"] in output
    assert "denied" in output and "did not run" in output  # the gateway's words, read by the model
    assert samples.crm.count("issue_refund") == 0 and not samples.crm.backend.refunds


async def test_a_held_refund_approved_by_the_reviewer_runs_once(samples: Samples):
    samples.crm.reset()
    run_id = f"sdk-ok-{secrets.token_hex(3)}"
    args = {"order_id": "ORD-1001", "amount": 250.0, "reason": "cracked jar"}
    async with reviewing(samples, run_id) as approver:
        result = await _run_agent(samples, "Refund me. " + _directive("issue_refund", args), run_id)
    (output,) = _tool_outputs(result)
    assert [d["status"] for d in approver.decided] == ["approved"]
    assert "RF-" in output and samples.crm.count("issue_refund") == 1
