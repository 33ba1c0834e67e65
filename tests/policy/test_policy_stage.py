"""The policy stages on calls: denials, effects, approvals, headers, and stream gating."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from gateway.call import Endpoint, ModelResponse
from gateway.callstate import Budget
from gateway.errors import Denied
from gateway.pipeline import Pipeline
from gateway.policy.engines.embedded import RegorusEngine
from gateway.policy.service import PolicyService
from gateway.policy.stage import PolicyRequestStage, PolicyResponseStage
from gateway.sse import SSEEvent
from tests.policy.helpers_policy import build_service, make_call

SHELL_REASON = "tool 'shell_exec' is not allowed for this caller: shell access is reserved for the ops role"


@pytest.fixture(scope="module")
async def service() -> AsyncIterator[PolicyService]:
    """One service for the module: decisions leave nothing behind but metrics."""
    engine = RegorusEngine()
    yield await build_service(engine)
    await engine.close()


def chat(model: str = "mock-chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def tool_answer(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": name, "arguments": arguments},
                        }
                    ],
                },
            }
        ],
    }


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> SSEEvent:
    return SSEEvent.from_json(
        {
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        }
    )


def tool_stream(name: str, arguments: str) -> list[SSEEvent]:
    return [
        chunk({"role": "assistant", "content": "Working"}),
        chunk({"content": " on it."}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": name, "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]}),
        chunk(finish="tool_calls"),
        SSEEvent.done(),
    ]


async def feed(stage: PolicyResponseStage, call: Any, events: list[SSEEvent]) -> list[list[SSEEvent]]:
    """What the stage releases after each event, then at the stream's end."""
    out = [list(await stage.on_chunk(call, e)) for e in events]
    out.append(list(await stage.on_stream_end(call)))
    return out


async def test_denied_request_raises_policy_denied_with_every_reason(service: PolicyService) -> None:
    call = make_call(chat("gpt-4o", tools=[{"type": "function", "function": {"name": "shell_exec"}}]))
    with pytest.raises(Denied) as raised:
        await PolicyRequestStage(service).on_request(call)
    error = raised.value
    assert (error.status, error.code) == (403, "policy_denied")
    assert error.reasons == [
        SHELL_REASON,
        "model 'gpt-4o' is not allowed for team 'demo'",
    ] or error.reasons == sorted([SHELL_REASON, "model 'gpt-4o' is not allowed for team 'demo'"])
    body = error.to_dict()["error"]
    assert body["reasons"] == error.reasons and body["policy_revision"] == service.manager.engine.revision
    decision = call.decisions[-1]
    assert (decision.stage, decision.phase, decision.outcome) == ("policy_request", "request", "deny")
    assert decision.reasons == error.reasons and decision.revision == service.manager.engine.revision
    assert call.response_headers["x-wardgate-decision"] == "deny"
    assert call.response_headers["x-wardgate-policy-revision"] == service.manager.engine.revision


async def test_allowed_request_is_recorded_and_capped_to_the_team_max_tokens(service: PolicyService) -> None:
    call = make_call(chat(max_tokens=100_000))
    await PolicyRequestStage(service).on_request(call)
    assert call.body["max_tokens"] == 4096 and "max_completion_tokens" not in call.body
    assert call.decisions[-1].outcome == "allow"
    assert call.decisions[-1].detail["decision"]["limits"] == {"max_tokens": 4096}
    assert call.response_headers["x-wardgate-decision"] == "allow"


async def test_token_cap_is_added_when_the_caller_set_none(service: PolicyService) -> None:
    call = make_call(chat())
    await PolicyRequestStage(service).on_request(call)
    assert call.body["max_completion_tokens"] == 4096
    responses = make_call({"model": "mock-chat", "input": "hi", "max_output_tokens": 10}, Endpoint.RESPONSES)
    await PolicyRequestStage(service).on_request(responses)
    assert responses.body["max_output_tokens"] == 10  # below the cap: unchanged


async def test_low_budget_routes_the_call_to_the_cheaper_model(service: PolicyService) -> None:
    call = make_call(chat("gpt-4o"), team="test", budget=Budget(0.01, remaining_usd={"run": 0.3, "key": 40}))
    await PolicyRequestStage(service).on_request(call)
    assert call.body["model"] == "gpt-4o-mini"
    assert call.model == "gpt-4o"
    assert call.routed_model == "gpt-4o-mini"


async def test_policy_redaction_actions_are_handed_to_the_redaction_stage(service: PolicyService) -> None:
    call = make_call(chat("gpt-4o-mini"), team="support")
    await PolicyRequestStage(service).on_request(call)
    assert call.policy_redact == {"EMAIL_ADDRESS": "mask"}
    assert call.body["max_completion_tokens"] == 1024


async def test_response_with_denied_tool_call_raises_policy_denied(service: PolicyService) -> None:
    call = make_call(chat())
    with pytest.raises(Denied) as raised:
        await PolicyResponseStage(service).on_response(
            call, ModelResponse(200, {}, json=tool_answer("shell_exec", "{}"))
        )
    assert raised.value.reasons == [SHELL_REASON]
    assert call.decisions[-1].phase == "response"


async def test_required_approval_without_an_approval_stage_is_a_denial(service: PolicyService) -> None:
    call = make_call(chat())
    answer = ModelResponse(200, {}, json=tool_answer("transfer_funds", '{"amount": 5000}'))
    with pytest.raises(Denied) as raised:
        await PolicyResponseStage(service).on_response(call, answer)
    assert raised.value.reasons == [
        "approval required: transfers above the limit need a finance approver: amount=5000 needs approval above 1000"
    ]
    assert call.approval_ask is None


async def test_required_approval_is_handed_to_the_approval_stage(make_service: Any) -> None:
    service = await make_service(RegorusEngine(), approvals=True)
    call = make_call(chat())
    await PolicyResponseStage(service).on_response(
        call, ModelResponse(200, {}, json=tool_answer("transfer_funds", '{"amount": 5000}'))
    )
    assert call.approval_ask is not None
    approval = call.approval_ask.as_dict()
    assert approval["phase"] == "response"
    assert approval["items"] == [
        {
            "reason": "transfers above the limit need a finance approver: amount=5000 needs "
            "approval above 1000",
            "tool_call_id": "call_1",
            "approvers": ["finance"],
            "ttl_s": 3600,
        }
    ]
    assert approval["revision"] == service.manager.engine.revision
    assert call.decisions[-1].outcome == "approval"
    assert call.response_headers["x-wardgate-decision"] == "approval"


async def test_upstream_error_answers_are_not_policed(service: PolicyService) -> None:
    call = make_call(chat())
    await PolicyResponseStage(service).on_response(call, ModelResponse(500, {}, json={"error": {}}))
    assert call.decisions == []


async def test_stream_text_flows_ahead_and_a_denied_tool_call_becomes_one_error_event(
    service: PolicyService,
) -> None:
    call = make_call(chat(), stream=True)
    stage = PolicyResponseStage(service)
    events = tool_stream("delete_customer", '{"customer_id": 1}')
    out = await feed(stage, call, [*events[:-1], events[-1], chunk({"content": "late"})])
    assert out[0] == [events[0]] and out[1] == [events[1]]  # text is not held
    assert out[2] == out[3] == out[4] == []  # tool call and finish wait for the decision
    (error,) = out[5]
    body = orjson.loads(error.data)["error"]
    assert body["code"] == "policy_denied"
    assert body["reasons"] == [
        "tool 'delete_customer' is never allowed: deleting customer records is never done by an agent"
    ]
    assert out[6] == [] and out[7] == []  # nothing after the error
    assert call.decisions[-1].outcome == "deny"


async def test_stream_with_allowed_tool_call_releases_every_held_event_in_order(
    service: PolicyService,
) -> None:
    call = make_call(chat(), stream=True)
    events = tool_stream("transfer_funds", '{"amount": 20}')
    released = [e for batch in await feed(PolicyResponseStage(service), call, events) for e in batch]
    assert released == events
    assert call.decisions[-1].outcome == "allow"


async def test_stream_through_the_pipeline_keeps_order_and_decides_once(service: PolicyService) -> None:
    call = make_call(chat(), stream=True)
    events = tool_stream("search_orders", '{"q": "x"}')

    async def upstream() -> AsyncIterator[SSEEvent]:
        for e in events:
            yield e

    pipeline = Pipeline([PolicyResponseStage(service)])
    assert [e async for e in pipeline.iter_stream(call, upstream())] == events
    assert len(call.decisions) == 1


async def test_stream_without_done_is_decided_when_it_ends(service: PolicyService) -> None:
    call = make_call(chat(), stream=True)
    events = tool_stream("shell_exec", "{}")[:-1]
    out = await feed(PolicyResponseStage(service), call, events)
    (error,) = out[-1]
    assert orjson.loads(error.data)["error"]["reasons"] == [SHELL_REASON]


async def test_stream_approval_without_approval_stage_is_an_error_event(service: PolicyService) -> None:
    call = make_call(chat(), stream=True)
    out = await feed(PolicyResponseStage(service), call, tool_stream("issue_refund", '{"amount": 900}'))
    body = orjson.loads(out[5][0].data)["error"]
    assert body["reasons"][0].startswith("approval required: large refunds need a support lead")


async def test_stream_text_is_held_too_when_configured(make_service: Any) -> None:
    service = await make_service(RegorusEngine(), stream_hold_text=True)
    call = make_call(chat(), stream=True)
    events = [chunk({"content": "secret"}), chunk(finish="stop"), SSEEvent.done()]
    out = await feed(PolicyResponseStage(service), call, events)
    assert out[0] == [] and out[1] == [] and out[2] == events


async def test_responses_stream_denial_is_a_responses_error_event(service: PolicyService) -> None:
    call = make_call({"model": "mock-chat", "input": "go", "stream": True}, Endpoint.RESPONSES, stream=True)
    item = {"type": "function_call", "call_id": "fc1", "name": "delete_customer", "arguments": '{"id": 3}'}
    events = [
        SSEEvent.from_json({"type": "response.created", "response": {}}, "response.created"),
        SSEEvent.from_json(
            {"type": "response.output_text.delta", "delta": "Ok"}, "response.output_text.delta"
        ),
        SSEEvent.from_json(
            {"type": "response.output_item.added", "output_index": 1, "item": {**item, "arguments": ""}},
            "response.output_item.added",
        ),
        SSEEvent.from_json(
            {"type": "response.completed", "response": {"status": "completed", "output": [item]}},
            "response.completed",
        ),
    ]
    out = await feed(PolicyResponseStage(service), call, events)
    assert out[0] == [events[0]] and out[1] == [events[1]] and out[2] == []
    (error,) = out[3]
    assert error.event == "error"
    body = orjson.loads(error.data)
    assert body["type"] == "error" and body["code"] == "policy_denied"
    assert body["error"]["reasons"] == [
        "tool 'delete_customer' is never allowed: deleting customer records is never done by an agent"
    ]


async def test_both_phases_of_a_call_are_decided_by_the_revision_it_started_with(
    make_service: Any, policy_dirs: Any
) -> None:
    rego, policies = policy_dirs
    service = await make_service(RegorusEngine(), rego, policies)
    first = service.manager.engine.revision
    call = make_call(chat())
    await PolicyRequestStage(service).on_request(call)
    (policies / "policy.yaml").write_text((policies / "policy.yaml").read_text().replace("shell_*", "shell*"))
    assert (await service.manager.reload()).result == "loaded"
    await PolicyResponseStage(service).on_response(
        call, ModelResponse(200, {}, json=tool_answer("lookup", "{}"))
    )
    assert [d.revision for d in call.decisions] == [first, first]
    later = make_call(chat())
    await PolicyRequestStage(service).on_request(later)
    assert later.decisions[-1].revision == service.manager.engine.revision != first
