"""The OpenAI Agents SDK's MCP integration (``MCPServerStreamableHttp``) through ``/mcp/crm``.

The agent's model is the gateway's built-in mock (a ``[[mock:tool=...]]`` directive makes it
call the tool), its MCP server the gateway's ``/mcp/crm`` with the agent's virtual key and
identity headers: an allowed call reaches the sample server once and its result reaches
the model; a call the policy refuses never reaches the server, and the agent's model reads
the reason.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson

from tests.harness import TEST_KEY
from tests.mcp.samples_gateway import Samples, samples_fixture  # noqa: F401  (the module fixture `samples`)


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
