"""A held call whose client went away must not spend its single-use approval.

A raw client sends a call that is held for a reviewer (non-stream, ``hold`` mode) and closes
its socket. The hold stops at once (nobody would read the answer); the reviewer approves
later, while nobody waits; the re-send with ``X-Wardgate-Approval-Id`` then gets the
approved answer, exactly once, and the model was called once.
"""

from __future__ import annotations

import openai
import orjson
import pytest

from tests import raw_http
from tests.approvals import test_approvals_e2e as e2e
from tests.approvals.test_approvals_e2e import ARGS, MESSAGES, TOOLS, _admin, _client
from tests.harness import TEST_KEY, RunningGateway
from tests.waiting import wait_until

prefix = e2e.prefix
gateway_factory = e2e.gateway_factory


def _pending_ids(gw: RunningGateway) -> list[str]:
    return [a["id"] for a in _admin(gw, "GET", "/admin/approvals?status=pending").json()["data"]]


def _held(gw: RunningGateway) -> float:
    return gw.ctx.registry.get_sample_value("wardgate_approvals_held_requests") or 0.0


def _resend(gw: RunningGateway, approval_id: str):  # type: ignore[no-untyped-def]
    return _client(gw).chat.completions.with_raw_response.create(
        model="gpt-test",
        messages=MESSAGES,
        tools=TOOLS,
        extra_headers={"X-Wardgate-Approval-Id": approval_id},
    )


def test_an_approval_decided_after_its_client_left_is_redeemed_once_by_the_resend(
    gateway_factory, upstream
) -> None:
    gw = gateway_factory(hold_s=20)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    body = orjson.dumps({"model": "gpt-test", "messages": MESSAGES, "tools": TOOLS})
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    sock = raw_http.connect(gw.url)
    sock.sendall(raw_http.head("POST", "/v1/chat/completions", headers, len(body)) + body)
    approval_id = wait_until(lambda: _pending_ids(gw))[0]
    wait_until(lambda: _held(gw) == 1)
    sock.close()  # the client gives up
    wait_until(lambda: _held(gw) == 0, within=5)  # the hold noticed, without any decision
    assert _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve").status_code == 200
    record = _admin(gw, "GET", f"/admin/approvals/{approval_id}").json()
    assert (record["status"], record["uses"]) == ("approved", 0)
    raw = _resend(gw, approval_id)
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    with pytest.raises(openai.ConflictError) as used:
        _resend(gw, approval_id)
    assert used.value.code == "approval_used"
    assert _admin(gw, "GET", f"/admin/approvals/{approval_id}").json()["uses"] == 1
    assert upstream.request_count == 1
