"""The gateway client's own wire handling, against a tiny stand-in server: what it reads from
an answer (content, tool calls, usage, approval headers), what each call reports, and how a
body that is not JSON or a refusal comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from orchestrator.config import OrchestratorConfig
from orchestrator.errors import BadCall, CallFailed, PolicyDenied
from orchestrator.events import CallRecord, Listener
from orchestrator.gateway_client import GatewayClient
from orchestrator.identity import RunIdentity

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "mock-chat",
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
                        "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'},
                    }
                ],
            },
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "prompt_tokens_details": None},
}


class Recorder(Listener):
    def __init__(self) -> None:
        self.calls: list[CallRecord] = []

    def call_finished(self, record: CallRecord) -> None:
        self.calls.append(record)


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """Answers by the request's last user message: ``tools``, ``garbage`` or ``deny``."""
    seen: list[dict[str, Any]] = []

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({"body": body, "headers": {k.lower(): v for k, v in request.headers.items()}})
        ask = body["messages"][-1]["content"]
        if ask == "garbage":
            return web.Response(text="<html>oops</html>", headers={"x-request-id": "req-garbage"})
        if ask == "authfail":
            error = {
                "code": "upstream_auth_failed",
                "message": "The model provider refused the gateway's credentials",
            }
            return web.json_response({"error": error}, status=502, headers={"x-should-retry": "false"})
        if ask == "deny":
            return web.json_response(
                {"code": "policy_denied", "message": "no", "reasons": ["not allowed"]},
                status=403,
                headers={"x-request-id": "req-deny"},
            )
        return web.Response(
            body=orjson.dumps(COMPLETION),
            content_type="application/json",
            headers={
                "x-request-id": "req-1",
                "x-wardgate-approval": "approved",
                "x-wardgate-approval-id": "apr-1",
            },
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/v1", seen
    await runner.cleanup()


def _client(base_url: str, listener: Listener) -> GatewayClient:
    return GatewayClient(
        OrchestratorConfig(base_url=base_url, api_key="wg-test", model="mock-chat", max_retries=0), listener
    )


async def test_an_answer_is_read_into_a_reply_and_reported_once(server: tuple[str, list[dict[str, Any]]]):
    base_url, seen = server
    recorder = Recorder()
    client = _client(base_url, recorder)
    try:
        reply = await client.chat(
            "billing",
            RunIdentity("run-1", "0" * 32),
            [{"role": "user", "content": "tools"}],
            tools=[{"type": "function", "function": {"name": "lookup_order"}}],
        )
    finally:
        await client.close()
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1", "lookup_order", '{"order_id": "A1"}')
    ]
    assert reply.content is None and reply.finish_reason == "tool_calls"
    assert reply.usage == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert reply.request_id == "req-1"
    assert reply.approval == {"id": "apr-1", "outcome": "approved", "mode": "hold"}
    # the body went out as sent, with the run's headers and the key
    assert seen[0]["body"]["tools"][0]["function"]["name"] == "lookup_order"
    assert (seen[0]["headers"]["x-agent-id"], seen[0]["headers"]["x-run-id"]) == ("billing", "run-1")
    assert seen[0]["headers"]["authorization"] == "Bearer wg-test"
    [record] = recorder.calls
    assert (record.status, record.code, record.request_id) == (200, None, "req-1")
    assert record.latency_s > 0


async def test_a_body_that_is_not_json_fails_the_call_transiently(server: tuple[str, list[dict[str, Any]]]):
    recorder = Recorder()
    client = _client(server[0], recorder)
    try:
        with pytest.raises(CallFailed) as info:
            await client.chat(
                "billing", RunIdentity("run-1", "0" * 32), [{"role": "user", "content": "garbage"}]
            )
    finally:
        await client.close()
    assert info.value.code == "bad_response"
    assert [(r.status, r.code, r.request_id) for r in recorder.calls] == [
        (200, "bad_response", "req-garbage")
    ]


async def test_a_refusal_keeps_its_code_reasons_and_request_id(server: tuple[str, list[dict[str, Any]]]):
    recorder = Recorder()
    client = _client(server[0], recorder)
    try:
        with pytest.raises(PolicyDenied) as info:
            await client.chat(
                "billing", RunIdentity("run-1", "0" * 32), [{"role": "user", "content": "deny"}]
            )
    finally:
        await client.close()
    assert (info.value.status, info.value.code, info.value.reasons) == (403, "policy_denied", ["not allowed"])
    assert info.value.request_id == "req-deny"
    assert [(r.status, r.code) for r in recorder.calls] == [(403, "policy_denied")]


async def test_the_gateways_provider_credentials_failing_is_not_retried(
    server: tuple[str, list[dict[str, Any]]],
):
    client = _client(server[0], Recorder())
    try:
        with pytest.raises(BadCall) as info:
            await client.chat(
                "billing", RunIdentity("run-1", "0" * 32), [{"role": "user", "content": "authfail"}]
            )
    finally:
        await client.close()
    assert (info.value.status, info.value.code) == (502, "upstream_auth_failed")
