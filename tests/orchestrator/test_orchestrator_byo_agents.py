"""The "bring your own agent" recipes of README.md, run against a real gateway.

Each recipe sets the identity headers, and the audit timeline shows them; the openai SDK
recipe also handles a deferred approval (409 → poll → re-send) and a budget stop.
Depends on approvals (defer), limits (budgets) and audit being wired.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import openai
import pytest

from orchestrator.admin_client import AdminClient
from tests.orchestrator.conftest import AGENT_KEYS, ORCH_ADMIN_KEY, TEAM
from tests.waiting import wait_until

REFUND_TOOL = {
    "type": "function",
    "function": {
        "name": "issue_refund",
        "description": "Refund an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
            "required": ["order_id", "amount"],
        },
    },
}


def create_with_approval(client: openai.OpenAI, headers: dict[str, str], **request: Any) -> Any:
    """The README's recipe: a deferred approval is polled, then the same request re-sent with its id."""
    try:
        return client.chat.completions.create(**request, extra_headers=headers)
    except openai.ConflictError as exc:
        if exc.code != "approval_pending":
            raise
        approval_id = exc.body["approval_id"]  # type: ignore[index]
    wait_until(
        lambda: client.get(f"/approvals/{approval_id}", cast_to=dict)["status"] != "pending",
        within=60,
        interval=0.05,
        message="the approval was never decided",
    )
    # approved: the stored answer; denied/expired: the tool call removed, the reason in the text
    return client.chat.completions.create(
        **request, extra_headers={**headers, "X-Wardgate-Approval-Id": approval_id}
    )


async def _approve_when_pending(admin: AdminClient, run_id: str) -> None:
    for _ in range(200):
        pending = await admin.pending_approvals(run_id)
        for approval in pending or []:
            await admin.decide(approval["id"], True, "ok")
            return
        await asyncio.sleep(0.05)


async def test_openai_sdk_recipe_handles_a_deferred_approval_and_a_budget_stop(defer_gateway):
    run_id = f"byo-{secrets.token_hex(4)}"
    trace = secrets.token_hex(16)
    headers = {
        "X-Agent-Id": "billing",
        "X-Run-Id": run_id,
        "traceparent": f"00-{trace}-{secrets.token_hex(8)}-01",
    }
    client = openai.OpenAI(base_url=defer_gateway.base_url, api_key=AGENT_KEYS["billing"], max_retries=2)
    admin = AdminClient(defer_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        approving = asyncio.create_task(_approve_when_pending(admin, run_id))
        answer = await asyncio.to_thread(
            create_with_approval,
            client,
            headers,
            model="mock-chat",
            tools=[REFUND_TOOL],
            messages=[{"role": "user", "content": "Use issue_refund to refund $250.00 for order ORD-1001."}],
        )
        await approving
        assert answer.choices[0].message.tool_calls[0].function.name == "issue_refund"

        assert await admin._call(
            "PUT", f"/admin/budgets/run/{run_id}", params={"team": TEAM}, body={"total": 0.0}
        )
        with pytest.raises(openai.RateLimitError) as info:
            client.chat.completions.create(
                model="mock-chat", messages=[{"role": "user", "content": "hi"}], extra_headers=headers
            )
        assert info.value.code == "budget_exceeded"  # x-should-retry: false, so the SDK did not retry
        timeline = await admin.run_timeline(run_id)
    finally:
        await admin.close()
    calls = [s for s in timeline["steps"] if s["kind"] == "call"]
    assert [s["decision"] for s in calls] == ["pending", "allow", "deny"]
    assert {s["agent_id"] for s in calls} == {"billing"} and {s["trace_id"] for s in calls} == {trace}


async def test_agents_sdk_and_langchain_recipes_carry_the_identity_headers(hold_gateway):
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from langchain_openai import ChatOpenAI

    set_tracing_disabled(True)
    run_id = f"byo-{secrets.token_hex(4)}"

    @function_tool
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id."""
        return f"order {order_id}: delivered"

    agent = Agent(
        name="researcher",
        instructions="Help the customer.",
        tools=[lookup_order],
        model=OpenAIChatCompletionsModel(
            model="mock-chat",
            openai_client=openai.AsyncOpenAI(
                base_url=hold_gateway.base_url, api_key=AGENT_KEYS["researcher"]
            ),
        ),
        model_settings=ModelSettings(extra_headers={"X-Agent-Id": "researcher", "X-Run-Id": run_id}),
    )
    result = await Runner.run(agent, "Please lookup order ORD-1001")
    assert "delivered" in result.final_output

    llm = ChatOpenAI(
        model="mock-chat",
        base_url=hold_gateway.base_url,
        api_key=AGENT_KEYS["writer"],
        default_headers={"X-Agent-Id": "writer", "X-Run-Id": run_id, "X-Parent-Run-Id": "ticket-1"},
    )
    assert (await llm.ainvoke("hello from langchain")).content == "Echo: hello from langchain"

    admin = AdminClient(hold_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        timeline = await admin.run_timeline(run_id)
    finally:
        await admin.close()
    agents = [s["agent_id"] for s in timeline["steps"] if s["kind"] == "call"]
    assert agents == ["researcher", "researcher", "writer"]
    assert timeline["parent_run_ids"] == ["ticket-1"]
