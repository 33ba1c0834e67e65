"""End to end: the real openai SDK through the gateway (Redis-backed queue) to the fake upstream.

The upstream answers with a ``transfer_funds`` call above the threshold; the real response
policy (rego) asks for a finance approval; reviewers act through the admin API over HTTP.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis as redis_sync

from gateway.approvals.webhooks import verify_signature
from gateway.http.launch import healthy
from tests.approvals.e2e_app import SELF_APPROVER_KEY, approvals_settings
from tests.approvals.e2e_app import TRANSFER_ARGS as ARGS
from tests.approvals.e2e_app import TRANSFER_MESSAGES as MESSAGES
from tests.approvals.e2e_app import TRANSFER_TOOLS as TOOLS
from tests.harness import ADMIN_KEY, APPROVER_KEY, TEST_KEY, RunningGateway, running_gateway
from tests.waiting import wait_until


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    value = f"wgtest:{uuid.uuid4().hex[:12]}"
    yield value
    client = redis_sync.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="{" + value + ":apr}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def gateway_factory(
    tmp_path: Path, upstream: Any, redis_url: str, prefix: str
) -> Iterator[Callable[..., Any]]:
    """Start gateways sharing one Redis prefix and one data dir (so one answer key), like replicas."""
    stack: list[Any] = []

    def start(approval_ttl_s: float | None = None, **approvals: Any) -> RunningGateway:
        root = tmp_path / f"gw{len(stack)}"
        settings = approvals_settings(
            root,
            upstream.base_url,
            approval_ttl_s=approval_ttl_s,
            backend="redis",
            redis_url=redis_url,
            key_prefix=prefix,
            **approvals,
        )
        settings.data_dir = tmp_path / "data"
        cm = running_gateway(settings)
        gw = cm.__enter__()
        stack.append(cm)
        return gw

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=30)


def _admin(
    gw: RunningGateway, method: str, path: str, key: str = APPROVER_KEY, body: Any = None
) -> httpx.Response:
    return httpx.request(
        method, gw.url + path, headers={"authorization": f"Bearer {key}"}, json=body, timeout=10
    )


def _pending(gw: RunningGateway) -> str:
    data = wait_until(
        lambda: _admin(gw, "GET", "/admin/approvals?status=pending").json()["data"],
        message="no approval became pending",
    )
    return data[0]["id"]


def _chat(gw: RunningGateway, **kw: Any) -> Any:
    return _client(gw).chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, tools=TOOLS, **kw
    )


def _stream_calls(stream: Any) -> tuple[str, dict[int, dict[str, str]], str | None]:
    content, calls, finish = "", {}, None
    for chunk in stream:
        for choice in chunk.choices:
            content += choice.delta.content or ""
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"name": "", "arguments": ""})
                slot["name"] += (tc.function.name or "") if tc.function else ""
                slot["arguments"] += (tc.function.arguments or "") if tc.function else ""
            finish = choice.finish_reason or finish
    return content, calls, finish


def _held(pool: ThreadPoolExecutor, fn: Callable[[], Any], gw: RunningGateway) -> tuple[Future[Any], str]:
    future = pool.submit(fn)
    return future, _pending(gw)


def test_hold_then_approve_releases_the_answer_unchanged_plain_and_streamed(
    gateway_factory, upstream
) -> None:
    gw = gateway_factory(hold_s=20)
    upstream.script_tool_call("transfer_funds", ARGS, times=2)
    with ThreadPoolExecutor(2) as pool:
        future, approval_id = _held(pool, lambda: _chat(gw), gw)
        time.sleep(0.1)
        assert not future.done()
        assert (
            _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve", body={"comment": "ok"}).status_code
            == 200
        )
        raw = future.result(10)
        assert raw.headers["x-wardgate-approval"] == "approved"
        assert raw.headers["x-wardgate-approval-id"] == approval_id
        call = raw.parse().choices[0].message.tool_calls[0]
        assert call.function.name == "transfer_funds" and orjson.loads(call.function.arguments) == ARGS

        def streamed() -> Any:
            return _stream_calls(
                _client(gw).chat.completions.create(
                    model="gpt-test", messages=MESSAGES, tools=TOOLS, stream=True
                )
            )

        future, approval_id = _held(pool, streamed, gw)
        assert _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve").status_code == 200
        _, calls, finish = future.result(10)
        assert calls[0]["name"] == "transfer_funds" and orjson.loads(calls[0]["arguments"]) == ARGS
        assert finish == "tool_calls"
    assert upstream.request_count == 2


def test_hold_then_deny_gives_an_answer_the_sdk_parses(gateway_factory, upstream) -> None:
    gw = gateway_factory(hold_s=20)
    upstream.script_tool_call("transfer_funds", ARGS, times=2)
    with ThreadPoolExecutor(1) as pool:
        future, approval_id = _held(pool, lambda: _chat(gw), gw)
        _admin(gw, "POST", f"/admin/approvals/{approval_id}/deny", body={"comment": "vendor not verified"})
        raw = future.result(10)
        assert raw.headers["x-wardgate-approval"] == "denied"
        choice = raw.parse().choices[0]
        assert choice.message.content == "Action transfer_funds was denied by a reviewer: vendor not verified"
        assert not choice.message.tool_calls and choice.finish_reason == "stop"

        def responses_stream() -> str:
            stream = _client(gw).responses.create(
                model="gpt-test",
                input="Pay the ACME invoice",
                stream=True,
                tools=[
                    {
                        "type": "function",
                        "name": "transfer_funds",
                        "parameters": TOOLS[0]["function"]["parameters"],
                    }
                ],
            )
            return next(e.response.output_text for e in stream if e.type == "response.completed")

        future, approval_id = _held(pool, responses_stream, gw)
        _admin(gw, "POST", f"/admin/approvals/{approval_id}/deny", body={"comment": "no"})
        assert future.result(10) == "Action transfer_funds was denied by a reviewer: no"


def test_hold_timeout_answers_as_denied(gateway_factory, upstream) -> None:
    gw = gateway_factory(hold_s=0.5)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    raw = _chat(gw)
    assert raw.headers["x-wardgate-approval"] == "denied"
    assert raw.parse().choices[0].message.content == "Action transfer_funds was denied: approval timed out"
    got = _admin(gw, "GET", f"/admin/approvals/{raw.headers['x-wardgate-approval-id']}").json()
    assert got["status"] == "expired" and got["outcome_reason"] == "approval timed out"


def test_defer_then_poll_then_approve_calls_the_upstream_exactly_once(gateway_factory, upstream) -> None:
    gw = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(gw)  # the SDK would retry a 409 unless told not to
    error = conflict.value
    approval_id = error.body["approval_id"]
    assert error.code == "approval_pending" and error.response.headers["x-should-retry"] == "false"
    assert error.response.headers["x-wardgate-approval-id"] == approval_id
    assert upstream.request_count == 1

    poll = httpx.get(
        f"{gw.base_url}/approvals/{approval_id}", headers={"authorization": f"Bearer {TEST_KEY}"}
    )
    assert poll.status_code == 200 and poll.json()["status"] == "pending"
    with pytest.raises(openai.ConflictError):
        _chat(gw, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve", body={"comment": "fine"})
    poll = httpx.get(
        f"{gw.base_url}/approvals/{approval_id}", headers={"authorization": f"Bearer {TEST_KEY}"}
    )
    assert poll.json()["status"] == "approved"

    raw = _chat(gw, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    with pytest.raises(openai.ConflictError) as used:  # released once: not again, not as a stream either
        _client(gw).chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            tools=TOOLS,
            stream=True,
            extra_headers={"X-Wardgate-Approval-Id": approval_id},
        )
    assert used.value.code == "approval_used"
    assert upstream.request_count == 1


def test_resend_with_another_request_is_refused(gateway_factory, upstream) -> None:
    gw = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(gw)
    approval_id = conflict.value.body["approval_id"]
    _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve")
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(gw).chat.completions.create(
            model="gpt-test",
            tools=TOOLS,
            messages=[{"role": "user", "content": "Pay EVIL corp"}],
            extra_headers={"X-Wardgate-Approval-Id": approval_id},
        )
    assert refused.value.code == "approval_mismatch"
    assert upstream.request_count == 1


def test_four_eyes_and_concurrent_decisions_over_http(gateway_factory, upstream) -> None:
    gw = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(gw)
    approval_id = conflict.value.body["approval_id"]
    mine = _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve", key=SELF_APPROVER_KEY)
    assert mine.status_code == 403 and mine.json()["error"]["code"] == "self_approval_forbidden"
    with ThreadPoolExecutor(2) as pool:
        approve = pool.submit(_admin, gw, "POST", f"/admin/approvals/{approval_id}/approve", APPROVER_KEY)
        deny = pool.submit(_admin, gw, "POST", f"/admin/approvals/{approval_id}/deny", ADMIN_KEY)
        statuses = sorted([approve.result().status_code, deny.result().status_code])
    assert statuses == [200, 409]


def test_a_request_held_on_one_gateway_is_released_by_an_approval_through_another(
    gateway_factory, upstream
) -> None:
    first = gateway_factory(hold_s=20)
    second = gateway_factory(hold_s=20)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        future, approval_id = _held(pool, lambda: _chat(first), second)
        t0 = time.perf_counter()
        assert _admin(second, "POST", f"/admin/approvals/{approval_id}/approve").status_code == 200
        raw = future.result(10)
        assert time.perf_counter() - t0 < 2
    assert raw.headers["x-wardgate-approval"] == "approved"


def test_deferred_approvals_survive_a_gateway_restart(gateway_factory, upstream, tmp_path: Path) -> None:
    first = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(first)
    approval_id = conflict.value.body["approval_id"]
    first.server.should_exit = True
    wait_until(lambda: not healthy(first.url), message="the first gateway did not stop")
    restarted = gateway_factory(default_mode="defer")
    assert _admin(restarted, "POST", f"/admin/approvals/{approval_id}/approve").status_code == 200
    raw = _chat(restarted, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    assert upstream.request_count == 1


def test_overdue_approvals_expire_and_can_no_longer_be_approved(gateway_factory, upstream) -> None:
    gw = gateway_factory(default_mode="defer", approval_ttl_s=0.3, sweep_interval_s=0.05)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with pytest.raises(openai.ConflictError) as conflict:
        _chat(gw)
    approval_id = conflict.value.body["approval_id"]
    wait_until(lambda: _admin(gw, "GET", f"/admin/approvals/{approval_id}").json()["status"] == "expired")
    late = _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve")
    assert late.status_code == 409 and late.json()["error"]["code"] == "approval_expired"
    raw = _chat(gw, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    assert raw.parse().choices[0].message.content == "Action transfer_funds was denied: approval expired"


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_webhook_is_delivered_and_signed_when_a_held_request_creates_an_approval(
    gateway_factory, upstream, monkeypatch
) -> None:
    monkeypatch.setenv("WG_E2E_HOOK_SECRET", "e2e-secret")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = {"url": f"http://127.0.0.1:{server.server_port}/", "secret_env": "WG_E2E_HOOK_SECRET"}
        gw = gateway_factory(default_mode="defer", groups={"finance": {"webhook": hook}})
        upstream.script_tool_call("transfer_funds", ARGS, times=1)
        with pytest.raises(openai.ConflictError) as conflict:
            _chat(gw)
        wait_until(lambda: _Hook.received, message="the webhook never arrived")
        headers, body = _Hook.received[0]
        assert verify_signature(
            b"e2e-secret", headers["x-wardgate-timestamp"], body, headers["x-wardgate-signature"]
        )
        assert orjson.loads(body)["approval"]["id"] == conflict.value.body["approval_id"]
    finally:
        server.shutdown()


def test_a_deferred_answer_is_charged_once_with_limits_on(
    tmp_path: Path, upstream, redis_url: str, prefix: str
) -> None:
    settings = approvals_settings(
        tmp_path,
        upstream.base_url,
        backend="redis",
        redis_url=redis_url,
        key_prefix=prefix,
        default_mode="defer",
    )
    settings.limits.enabled = True
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    upstream.usage(1000, 200, times=1)
    with running_gateway(settings) as gw:

        def spend() -> dict[str, float]:
            doc = _admin(gw, "GET", "/admin/spend?scope=key&id=test", key=ADMIN_KEY).json()
            return {name: w["spent_usd"] for name, w in doc["windows"].items()}

        with pytest.raises(openai.ConflictError) as conflict:
            _chat(gw)
        approval_id = conflict.value.body["approval_id"]
        after_model_call = spend()
        assert after_model_call["total"] > 0
        _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve")
        list(
            _client(gw).chat.completions.create(
                model="gpt-test",
                messages=MESSAGES,
                tools=TOOLS,
                stream=True,
                extra_headers={"X-Wardgate-Approval-Id": approval_id},
            )
        )
        with pytest.raises(openai.ConflictError):  # released once
            _chat(gw, extra_headers={"X-Wardgate-Approval-Id": approval_id})
        assert spend() == after_model_call
    assert upstream.request_count == 1


def test_approval_changes_and_the_call_land_in_the_audit_log(
    tmp_path: Path, upstream, redis_url: str, prefix: str
) -> None:
    settings = approvals_settings(
        tmp_path, upstream.base_url, backend="redis", redis_url=redis_url, key_prefix=prefix, hold_s=20
    )
    settings.audit.enabled = True
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with running_gateway(settings) as gw, ThreadPoolExecutor(1) as pool:
        future, approval_id = _held(pool, lambda: _chat(gw, extra_headers={"X-Run-Id": "run-audit-1"}), gw)
        _admin(gw, "POST", f"/admin/approvals/{approval_id}/deny", body={"comment": "wrong vendor"})
        future.result(10)

        def mine_of() -> list[dict[str, Any]]:
            events = _admin(gw, "GET", "/admin/audit?kind=approval&limit=50", key=ADMIN_KEY).json()["data"]
            return [e for e in events if e["data"]["id"] == approval_id]

        mine = wait_until(lambda: len(found := mine_of()) >= 2 and found)
        assert sorted(e["data"]["event"] for e in mine) == ["created", "denied"]
        denied = next(e for e in mine if e["data"]["event"] == "denied")
        assert denied["data"]["reviewer"] == "reviewer" and denied["data"]["comment"] == "wrong vendor"
        assert denied["agent"]["run_id"] == "run-audit-1"
        assert all(c["arguments"] == "[omitted]" for e in mine for c in e["data"]["tool_calls"])
        calls = _admin(gw, "GET", "/admin/audit?kind=call&run=run-audit-1", key=ADMIN_KEY).json()["data"]
        assert calls[0]["approval"]["id"] == approval_id and calls[0]["approval"]["status"] == "denied"


def test_a_deferred_stream_answers_409_before_any_byte_and_the_resend_streams_the_answer(
    gateway_factory, upstream
) -> None:
    gw = gateway_factory(default_mode="defer")
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    client = _client(gw)
    with pytest.raises(openai.ConflictError) as conflict:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS, stream=True)
    approval_id = conflict.value.body["approval_id"]
    _admin(gw, "POST", f"/admin/approvals/{approval_id}/approve")
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=MESSAGES,
        tools=TOOLS,
        stream=True,
        extra_headers={"X-Wardgate-Approval-Id": approval_id},
    )
    _, calls, finish = _stream_calls(stream)
    assert orjson.loads(calls[0]["arguments"]) == ARGS and finish == "tool_calls"
    assert upstream.request_count == 1
