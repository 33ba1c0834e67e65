"""Approved answers are released once; re-sends match exactly; SDK retries join, never multiply.

The real openai SDK through the gateway (Redis-backed queue, real policies) to the fake
upstream, whose request count is the number of model calls. A held call whose client times
out is retried by the SDK (``max_retries=2``): each retry must join the one pending approval
and wait on it, not create another approval and call the model again.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.approvals.fingerprint import fingerprint
from gateway.approvals.model import Status
from gateway.approvals.spec import ApprovalSpec
from gateway.errors import ApprovalMismatch, Conflict
from tests.approvals import test_approvals_e2e as e2e
from tests.approvals.conftest import FINANCE, OTHER_AGENT, chat_call
from tests.approvals.stage_harness import StageRig
from tests.approvals.test_approvals_e2e import ARGS, MESSAGES, TOOLS, _admin, _chat, _client
from tests.harness import TEST_KEY, RunningGateway
from tests.waiting import wait_until
from wardgate_mock import MockOverrides

prefix = e2e.prefix  # fixtures of the e2e module: gateways sharing one Redis prefix, like replicas
gateway_factory = e2e.gateway_factory


def _approvals(gw: RunningGateway, status: str | None = None) -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    return _admin(gw, "GET", f"/admin/approvals{query}").json()["data"]


# -- single use ----------------------------------------------------------------------------


def test_a_held_response_approval_is_released_once_and_a_resend_after_it_is_refused(
    gateway_factory, upstream
) -> None:
    gw = gateway_factory(hold_s=20)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(lambda: _chat(gw))
        approval_id = wait_until(lambda: [a["id"] for a in _approvals(gw, "pending")])[0]
        _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve")
        raw = future.result(10)
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    for stream in (False, True):
        with pytest.raises(openai.ConflictError) as used:
            _client(gw).chat.completions.create(
                model="gpt-test",
                messages=MESSAGES,
                tools=TOOLS,
                stream=stream,
                extra_headers={"X-Wardgate-Approval-Id": approval_id},
            )
        assert used.value.code == "approval_used"
        assert used.value.response.headers["x-should-retry"] == "false"
    assert _admin(gw, "GET", f"/admin/approvals/{approval_id}").json()["uses"] == 1
    assert upstream.request_count == 1


@pytest.mark.parametrize("phase", ["request", "response"])
async def test_an_approved_answer_is_single_use_in_both_phases_even_when_redeemed_concurrently(
    make_service, phase: str
) -> None:
    rig = StageRig(await make_service("redis"))
    if phase == "request":
        rig.policy_request.items = [{"reason": "every call needs a look", "mode": "defer"}]
        rig.forward.overrides = MockOverrides(text="done")  # no response-phase approval after it
    else:
        rig.policy_response.mode = "defer"
    with pytest.raises(Conflict) as pending:
        await rig.run(chat_call())
    approval_id = pending.value.extra["approval_id"]
    await rig.service.approve(approval_id, FINANCE, "ok")
    results = await asyncio.gather(
        *(rig.run(chat_call(headers={"x-wardgate-approval-id": approval_id})) for _ in range(8)),
        return_exceptions=True,
    )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(ok) == 1 and len(refused) == 7, results
    assert {r.code for r in refused} == {"approval_used"}
    assert rig.forward.calls == 1  # request phase: the one let through; response phase: the original
    assert (await rig.service.get(approval_id)).uses == 1


# -- exact re-sends ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changed",
    [{"temperature": 0.9}, {"max_tokens": 17}, {"metadata": {"k": "v"}}, {"tool_choice": "required"}],
)
async def test_a_resend_that_changes_anything_but_the_stream_flags_is_refused_naming_it(
    make_service, changed: dict[str, Any]
) -> None:
    rig = StageRig(await make_service("memory"))
    rig.policy_response.mode = "defer"
    base = chat_call().body
    with pytest.raises(Conflict) as pending:
        await rig.run(chat_call(base))
    approval_id = pending.value.extra["approval_id"]
    with pytest.raises(ApprovalMismatch) as mismatch:
        await rig.run(chat_call({**base, **changed}, headers={"x-wardgate-approval-id": approval_id}))
    name = next(iter(changed))
    assert f"(changed: {name})" in mismatch.value.message
    assert "only stream and stream_options may differ" in mismatch.value.message
    assert mismatch.value.param == name
    # The stream flags may change: the same request asked as a stream is still the same request.
    with pytest.raises(Conflict) as still:
        await rig.run(
            chat_call(
                {**base, "stream_options": {"include_usage": True}},
                stream=True,
                headers={"x-wardgate-approval-id": approval_id},
            )
        )
    assert still.value.code == "approval_pending"


def test_the_sdk_gets_403_for_a_resend_with_another_temperature(gateway_factory, upstream) -> None:
    gw = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(gw, temperature=0.2)
    approval_id = conflict.value.body["approval_id"]
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _chat(gw, temperature=0.3, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    assert refused.value.code == "approval_mismatch" and "temperature" in refused.value.message


# -- joining -------------------------------------------------------------------------------


def test_sdk_retries_of_a_held_call_make_one_approval_and_one_model_call(gateway_factory, upstream) -> None:
    gw = gateway_factory(hold_s=30)
    upstream.script_tool_call("transfer_funds", ARGS, times=3)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=1.0)  # max_retries=2 by default
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS)
    approvals = _approvals(gw)
    assert len(approvals) == 1 and approvals[0]["status"] == "pending"
    assert upstream.request_count == 1
    assert gw.ctx.registry.get_sample_value("wardgate_approvals_joined_total") == 2
    _admin(gw, "POST", f"/admin/approvals/{approvals[0]['id']}/deny", body={"comment": "cleanup"})


def test_a_retry_that_joined_the_approval_gets_the_answer_when_the_reviewer_approves(
    gateway_factory, upstream
) -> None:
    gw = gateway_factory(hold_s=30)
    upstream.script_tool_call("transfer_funds", ARGS, times=3)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=1.5, max_retries=2)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            lambda: client.chat.completions.with_raw_response.create(
                model="gpt-test", messages=MESSAGES, tools=TOOLS
            )
        )
        first = wait_until(lambda: _approvals(gw, "pending"))[0]
        # The SDK gave up waiting on its first attempt and retried: the retry took the approval over.
        wait_until(
            lambda: _admin(gw, "GET", f"/admin/approvals/{first['id']}").json()["holder"] != first["holder"]
        )
        _admin(gw, "POST", f"/admin/approvals/{first['id']}/approve")
        raw = future.result(15)
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert raw.headers["x-wardgate-approval-id"] == first["id"]
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    assert len(_approvals(gw)) == 1 and upstream.request_count == 1
    assert _admin(gw, "GET", f"/admin/approvals/{first['id']}").json()["uses"] == 1


def test_an_identical_resend_on_another_replica_joins_the_deferred_approval(
    gateway_factory, upstream
) -> None:
    gw1 = gateway_factory(default_mode="defer")
    gw2 = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=3)
    body = {"model": "gpt-test", "messages": MESSAGES, "tools": TOOLS}
    headers = {"authorization": f"Bearer {TEST_KEY}"}
    first = httpx.post(gw1.base_url + "/chat/completions", json=body, headers=headers, timeout=10)
    assert first.status_code == 409
    approval_id = first.json()["error"]["approval_id"]
    for gw in (gw2, gw1, gw2):  # a naive retry loop, without the approval header
        again = httpx.post(
            gw.base_url + "/chat/completions", json={**body, "stream": True}, headers=headers, timeout=10
        )
        assert again.status_code == 409 and again.json()["error"]["approval_id"] == approval_id
    assert upstream.request_count == 1
    assert len(_approvals(gw1)) == 1
    # Another request (a changed conversation) is not joined: it gets its own approval.
    other = httpx.post(
        gw2.base_url + "/chat/completions",
        headers=headers,
        timeout=10,
        json={**body, "messages": [*MESSAGES, {"role": "user", "content": "and again"}]},
    )
    assert other.status_code == 409 and other.json()["error"]["approval_id"] != approval_id
    assert upstream.request_count == 2


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_identical_requests_racing_to_create_make_one_approval(make_service, backend: str) -> None:
    replicas = (
        [await make_service(backend)]
        if backend == "memory"
        else [await make_service("redis") for _ in range(3)]
    )
    spec = ApprovalSpec(mode="defer", ttl_s=60, hold_s=1, approvals_required=1, groups=["finance"])
    call = chat_call()

    async def create(i: int) -> tuple[str, bool]:
        approval, created = await replicas[i % len(replicas)].create_or_join(
            call, "request", spec, fingerprint(call)
        )
        return approval.id, created

    results = await asyncio.gather(*(create(i) for i in range(12)))
    assert len({approval_id for approval_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    # Once decided, the next identical request makes a new one.
    await replicas[0].deny(results[0][0], FINANCE, "no")
    approval, created = await replicas[-1].create_or_join(call, "request", spec, fingerprint(call))
    assert created and approval.id != results[0][0] and approval.status is Status.PENDING


async def test_the_same_request_from_another_run_or_key_is_not_joined(make_service) -> None:
    service = await make_service("redis")
    spec = ApprovalSpec(mode="defer", ttl_s=60, hold_s=1, approvals_required=1, groups=["finance"])
    first = chat_call()
    approval, created = await service.create_or_join(first, "request", spec, fingerprint(first))
    assert created
    retry = chat_call()
    assert (await service.joinable(retry, fingerprint(retry))).id == approval.id
    other_run = chat_call()
    other_run.run_id = "run-other"
    other_key = chat_call(principal=OTHER_AGENT)
    for call in (other_run, other_key):
        assert await service.joinable(call, fingerprint(call)) is None
        made, created = await service.create_or_join(call, "request", spec, fingerprint(call))
        assert created and made.id != approval.id
