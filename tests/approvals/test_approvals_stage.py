"""The approval stages fed with ``Call``s: hold, defer, re-send, streams, request phase."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion
from openai.types.responses import Response

from gateway.approvals.crypto import AnswerSealer
from gateway.approvals.model import Status
from gateway.approvals.service import ApprovalService
from gateway.approvals.stage import ApprovalResponseStage
from gateway.approvals.stream_answers import assemble
from gateway.call import Endpoint
from gateway.errors import (
    AlreadyDecided,
    ApprovalMismatch,
    ApprovalPending,
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
)
from gateway.sse import SSEEvent
from tests.approvals.conftest import FINANCE, OTHER_AGENT, RecordingAudit, chat_call
from tests.approvals.stage_harness import StageRig
from tests.approvals.test_approvals_answers import _chat_final, _responses_final

BACKENDS = ["memory", "redis"]


async def _rig(make_service, backend: str = "memory", **settings) -> StageRig:
    return StageRig(await make_service(backend, **settings))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_hold_then_approve_releases_the_original_answer_unchanged(make_service, backend: str) -> None:
    rig = await _rig(make_service, backend)
    call = chat_call()
    task = asyncio.create_task(rig.run(call))
    approval_id = await rig.pending_id()
    assert not task.done()
    await rig.service.approve(approval_id, FINANCE, "fine")
    response, _ = await asyncio.wait_for(task, 2)
    assert response.dirty is False
    message = ChatCompletion.model_validate(response.json).choices[0].message
    assert message.tool_calls[0].function.name == "transfer_funds"
    assert call.response_headers["x-wardgate-approval"] == "approved"
    assert call.response_headers["x-wardgate-approval-id"] == approval_id
    assert call.approval.fields["status"] == "approved"
    assert call.decisions[-1].outcome == "allow" and call.decisions[-1].detail["approval_id"] == approval_id


@pytest.mark.parametrize("endpoint", [Endpoint.CHAT, Endpoint.RESPONSES])
async def test_hold_then_deny_rewrites_the_answer_for_both_apis(make_service, endpoint: Endpoint) -> None:
    rig = await _rig(make_service)
    call = chat_call(endpoint=endpoint)
    task = asyncio.create_task(rig.run(call))
    await rig.service.deny(await rig.pending_id(), FINANCE, "over the monthly limit")
    response, _ = await asyncio.wait_for(task, 2)
    expected = "Action transfer_funds was denied by a reviewer: over the monthly limit"
    assert response.dirty is True
    if endpoint is Endpoint.CHAT:
        choice = ChatCompletion.model_validate(response.json).choices[0]
        assert choice.message.content == expected and not choice.message.tool_calls
        assert choice.finish_reason == "stop"
    else:
        assert Response.model_validate(response.json).output_text == expected
    assert call.response_headers["x-wardgate-approval"] == "denied"
    assert call.decisions[-1].outcome == "deny"


async def test_hold_timeout_is_treated_as_denied_and_expires_the_approval(make_service) -> None:
    rig = await _rig(make_service, hold_s=0.2)
    call = chat_call()
    response, _ = await rig.run(call)
    content = response.json["choices"][0]["message"]["content"]
    assert content == "Action transfer_funds was denied: approval timed out"
    approval = await rig.service.get(call.response_headers["x-wardgate-approval-id"])
    assert approval.status is Status.EXPIRED and approval.outcome_reason == "approval timed out"
    with pytest.raises(Conflict):
        await rig.service.approve(approval.id, FINANCE, "too late")


async def test_hold_timeout_can_leave_the_approval_pending_for_a_defer_pickup(make_service) -> None:
    rig = await _rig(make_service, hold_s=0.2, timeout_outcome="defer")
    call = chat_call()
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(call)
    approval_id = pending.value.extra["approval_id"]
    assert (await rig.service.get(approval_id)).status is Status.PENDING
    await rig.service.approve(approval_id, FINANCE, None)
    resend = chat_call(headers={"x-wardgate-approval-id": approval_id})
    response, _ = await rig.run(resend)
    assert response.json["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "transfer_funds"
    assert rig.forward.calls == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_defer_then_resend_returns_the_stored_answer_without_calling_the_model_again(
    make_service, backend: str
) -> None:
    rig = await _rig(make_service, backend)
    rig.policy_response.mode = "defer"
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(chat_call())
    error = pending.value
    approval_id = error.extra["approval_id"]
    assert error.status == 409 and error.code == "approval_pending" and error.type == "approval_pending"
    assert error.response_headers() == {"x-wardgate-approval-id": approval_id, "x-should-retry": "false"}
    original = await rig.service.answer(await rig.service.get(approval_id))

    still = chat_call(headers={"x-wardgate-approval-id": approval_id})
    with pytest.raises(ApprovalPending):
        await rig.run(still)
    await rig.service.approve(approval_id, FINANCE, "ok")

    resend = chat_call(headers={"x-wardgate-approval-id": approval_id})
    response, _ = await rig.run(resend)
    assert response.json == original["json"]
    assert resend.replayed is True
    assert resend.response_headers["x-wardgate-approval"] == "approved"
    assert rig.forward.calls == 1
    # The approved answer is released once: a second re-send (plain or streamed) is refused.
    stream_resend = chat_call(stream=True, headers={"x-wardgate-approval-id": approval_id})
    with pytest.raises(Conflict) as used:
        await rig.run(stream_resend)
    assert used.value.code == "approval_used" and used.value.response_headers()["x-should-retry"] == "false"
    assert rig.forward.calls == 1


async def test_defer_then_deny_gives_the_rewritten_answer_on_resend(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_response.mode = "defer"
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(chat_call(stream=True))
    approval_id = pending.value.extra["approval_id"]
    await rig.service.deny(approval_id, FINANCE, "wrong account")
    for stream in (True, False):
        resend = chat_call(stream=stream, headers={"x-wardgate-approval-id": approval_id})
        response, events = await rig.run(resend)
        body = _chat_final(events) if stream else ChatCompletion.model_validate(response.json)
        assert (
            body.choices[0].message.content == "Action transfer_funds was denied by a reviewer: wrong account"
        )
        assert not body.choices[0].message.tool_calls and body.choices[0].finish_reason == "stop"
        assert resend.response_headers["x-wardgate-approval"] == "denied"
    assert rig.forward.calls == 1


async def test_resend_is_refused_for_another_request_key_or_id(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_response.mode = "defer"
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(chat_call())
    approval_id = pending.value.extra["approval_id"]
    await rig.service.approve(approval_id, FINANCE, None)
    changed = chat_call(
        {"model": "gpt-test", "messages": [{"role": "user", "content": "pay EVIL"}]},
        headers={"x-wardgate-approval-id": approval_id},
    )
    with pytest.raises(ApprovalMismatch) as mismatch:
        await rig.run(changed)
    assert mismatch.value.status == 403
    with pytest.raises(ApprovalMismatch):
        await rig.run(chat_call(principal=OTHER_AGENT, headers={"x-wardgate-approval-id": approval_id}))
    with pytest.raises(NotFound):
        await rig.run(chat_call(headers={"x-wardgate-approval-id": "apr_" + "ab" * 12}))
    with pytest.raises(BadRequest):
        await rig.run(chat_call(headers={"x-wardgate-approval-id": "../../etc"}))
    assert rig.forward.calls == 1


async def test_stream_text_flows_but_tool_calls_wait_for_the_decision(make_service) -> None:
    rig = await _rig(make_service)
    rig.forward.prefix_text = "Paying ACME now."
    call = chat_call(stream=True)
    released: list = []
    task = asyncio.create_task(rig.run(call, released))
    approval_id = await rig.pending_id()
    await asyncio.sleep(0.05)
    deltas = [e.json["choices"][0]["delta"] for e in released]
    assert "Paying ACME now." in [d.get("content") for d in deltas]
    assert not any(d.get("tool_calls") for d in deltas)
    await rig.service.approve(approval_id, FINANCE, None)
    await asyncio.wait_for(task, 2)
    final = _chat_final(released)
    assert final.choices[0].message.content == "Paying ACME now."
    assert final.choices[0].message.tool_calls[0].function.name == "transfer_funds"
    assert final.choices[0].finish_reason == "tool_calls" and released[-1].is_done


@pytest.mark.parametrize("endpoint", [Endpoint.CHAT, Endpoint.RESPONSES])
async def test_stream_deny_rewrites_held_events_and_a_tool_only_answer_sends_nothing_before(
    make_service, endpoint: Endpoint
) -> None:
    rig = await _rig(make_service)
    call = chat_call(stream=True, endpoint=endpoint)
    released: list = []
    task = asyncio.create_task(rig.run(call, released))
    approval_id = await rig.pending_id()
    await asyncio.sleep(0.05)
    assert released == []  # nothing went out yet, so the header can still say "denied"
    await rig.service.deny(approval_id, FINANCE, "not today")
    await asyncio.wait_for(task, 2)
    expected = "Action transfer_funds was denied by a reviewer: not today"
    if endpoint is Endpoint.CHAT:
        final = _chat_final(released)
        assert final.choices[0].message.content == expected and not final.choices[0].message.tool_calls
    else:
        assert _responses_final(released).output_text == expected
    assert call.response_headers["x-wardgate-approval"] == "denied"


async def test_stream_defer_answers_409_before_anything_was_sent(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_response.mode = "defer"
    with pytest.raises(ApprovalPending):
        await rig.run(chat_call(stream=True))


async def test_stream_defer_after_text_went_out_says_so_in_the_answer(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_response.mode = "defer"
    rig.forward.prefix_text = "Let me pay that."
    call = chat_call(stream=True)
    _, events = await rig.run(call)
    approval_id = call.response_headers["x-wardgate-approval-id"]
    content = _chat_final(events).choices[0].message.content
    assert content.startswith(
        "Let me pay that.\n\nAction transfer_funds is waiting for a reviewer's approval"
    )
    assert approval_id in content
    assert (await rig.service.get(approval_id)).status is Status.PENDING


async def test_a_client_that_disconnects_during_a_hold_leaves_the_approval_pending(make_service) -> None:
    rig = await _rig(make_service)
    task = asyncio.create_task(rig.run(chat_call()))
    approval_id = await rig.pending_id()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await rig.service.get(approval_id)).status is Status.PENDING
    assert len(rig.service.waiters) == 0
    await rig.service.approve(approval_id, FINANCE, None)  # a later decision still works


async def test_request_phase_hold_approve_forwards_once(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_request.items = [{"reason": "estimated spend above 5 USD", "approvers": "finance"}]
    rig.forward.overrides.tool_calls = None
    task = asyncio.create_task(rig.run(chat_call()))
    approval_id = await rig.pending_id()
    assert rig.forward.calls == 0
    approval = await rig.service.get(approval_id)
    assert approval.phase == "request" and approval.reasons == ["estimated spend above 5 USD"]
    await rig.service.approve(approval_id, FINANCE, None)
    await asyncio.wait_for(task, 2)
    assert rig.forward.calls == 1
    assert (await rig.service.get(approval_id)).uses == 1


async def test_request_phase_defer_resend_is_single_use_and_denial_is_synthesized(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_request.items = [{"reason": "spend", "mode": "defer"}]
    rig.forward.overrides.tool_calls = None
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(chat_call())
    approval_id = pending.value.extra["approval_id"]
    await rig.service.approve(approval_id, FINANCE, None)
    await rig.run(chat_call(headers={"x-wardgate-approval-id": approval_id}))
    assert rig.forward.calls == 1
    with pytest.raises(Conflict) as used:
        await rig.run(chat_call(headers={"x-wardgate-approval-id": approval_id}))
    assert used.value.code == "approval_used"

    with pytest.raises(ApprovalPending) as second:
        await rig.run(chat_call(endpoint=Endpoint.RESPONSES))
    await rig.service.deny(second.value.extra["approval_id"], FINANCE, "budget frozen")
    resend = chat_call(
        endpoint=Endpoint.RESPONSES, headers={"x-wardgate-approval-id": second.value.extra["approval_id"]}
    )
    response, _ = await rig.run(resend)
    assert (
        Response.model_validate(response.json).output_text
        == "The request was denied by a reviewer: budget frozen"
    )
    assert resend.replayed is True and rig.forward.calls == 1


async def test_stage_changes_reach_the_audit_service(make_service) -> None:
    audit = RecordingAudit()
    rig = StageRig(await make_service("memory", audit=audit))
    task = asyncio.create_task(rig.run(chat_call()))
    approval_id = await rig.pending_id()
    await rig.service.approve(approval_id, FINANCE, None)
    await task
    assert audit.kinds(approval_id) == ["created", "approved", "used"]
    with pytest.raises(AlreadyDecided):
        await rig.service.deny(approval_id, FINANCE, None)


def _chat_stream(text_parts: list[str], arg_parts: list[str]) -> list[SSEEvent]:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def chunk(delta: dict, finish: str | None = None) -> SSEEvent:
        return SSEEvent.from_json(
            {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        )

    events = [chunk({"role": "assistant", "content": None})]
    events += [chunk({"content": t}) for t in text_parts]
    events.append(
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "transfer_funds", "arguments": ""},
                    }
                ]
            }
        )
    )
    events += [chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in arg_parts]
    events += [
        chunk({}, "tool_calls"),
        SSEEvent.from_json({**head, "choices": [], "usage": {"prompt_tokens": 1}}),
        SSEEvent.done(),
    ]
    return events


@settings(max_examples=60, deadline=None)
@given(
    text=st.lists(st.text(min_size=1, max_size=8), max_size=6),
    args=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=6),
)
async def test_without_an_approval_any_stream_passes_whole_and_in_order(
    text: list[str], args: list[str]
) -> None:
    stage = ApprovalResponseStage(service=None)  # type: ignore[arg-type]
    call = chat_call(stream=True)
    events = _chat_stream(text, args)
    out: list[SSEEvent] = []
    released_before_end = 0
    for event in events:
        out += await stage.on_chunk(call, event)
        released_before_end = len(out)
    out += await stage.on_stream_end(call)
    assert sorted(e.raw for e in out) == sorted(e.raw for e in events)
    assert out[-1].is_done and assemble("chat.completions", out) == assemble("chat.completions", events)
    # Text went out as it came; nothing of the tool call or the finish did before the end.
    assert released_before_end == (1 + len(text) if text else 0)


async def test_a_replica_without_the_shared_answer_key_says_so_instead_of_failing(make_service) -> None:
    rig = await _rig(make_service)
    rig.policy_response.mode = "defer"
    with pytest.raises(ApprovalPending) as pending:
        await rig.run(chat_call())
    approval_id = pending.value.extra["approval_id"]
    await rig.service.approve(approval_id, FINANCE, None)
    other = rig.service
    stranger = ApprovalService(
        other.settings, other.store, AnswerSealer([Fernet.generate_key()]), other.metrics, other.webhooks
    )
    with pytest.raises(ServiceUnavailable) as refused:
        await StageRig(stranger).run(chat_call(headers={"x-wardgate-approval-id": approval_id}))
    assert refused.value.code == "approval_answer_unavailable"
