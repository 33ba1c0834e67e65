"""Agent frameworks keep their code and only change base_url: OpenAI Agents SDK, LangChain."""

from __future__ import annotations

import openai
import pytest

from tests.harness import TEST_KEY


@pytest.fixture
def agents_client(gateway):
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)


@pytest.mark.parametrize("mode", ["responses", "chat_completions"])
async def test_openai_agents_runner_calls_a_function_tool_through_the_gateway(agents_client, upstream, mode):
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    calls: list[str] = []

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id."""
        calls.append(order_id)
        return f"order {order_id} shipped"

    model_cls = OpenAIResponsesModel if mode == "responses" else OpenAIChatCompletionsModel
    agent = Agent(
        name="support",
        instructions="Help the customer.",
        tools=[lookup_order],
        model=model_cls(model="gpt-test", openai_client=agents_client),
    )
    result = await Runner.run(agent, "Please lookup order ORD-1001")
    assert calls == ["ORD-1001"]
    assert "shipped" in result.final_output
    paths = [r.path for r in upstream.requests]
    expected = "/v1/responses" if mode == "responses" else "/v1/chat/completions"
    assert paths == [expected, expected]


def test_langchain_chat_openai_invoke_stream_and_bind_tools(gateway, upstream):
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="gpt-test", base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    assert llm.invoke("hello langchain").content == "Echo: hello langchain"
    streamed = "".join(chunk.content for chunk in llm.stream("streaming langchain"))
    assert streamed == "Echo: streaming langchain"

    @tool
    def get_weather(city: str) -> str:
        """Get the weather for a city."""
        return "sunny"

    msg = llm.bind_tools([get_weather]).invoke("use get_weather for Paris")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "get_weather"
    assert "city" in msg.tool_calls[0]["args"]
