"""When the engine cannot decide: fail closed (503) by default, fail open when configured."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.call import Endpoint
from gateway.errors import PolicyUnavailable
from gateway.policy.engines.embedded import RegorusEngine
from gateway.policy.stage import PolicyRequestStage, PolicyResponseStage
from gateway.sse import SSEEvent
from tests.opa_server import OpaServer
from tests.policy.helpers_policy import make_call, make_engine, metric


def chat() -> dict[str, Any]:
    return {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}


async def opa_service(
    make_service: Any, server: OpaServer, timeout_s: float = 0.05, kind: str = "opa", **settings: Any
) -> Any:
    return await make_service(make_engine(kind, server.url, timeout_s=timeout_s), **settings)


@pytest.mark.parametrize("kind", ["opa", "opa-aiohttp", "opa-wire"])
async def test_opa_server_down_fails_closed_with_503(make_service: Any, opa_servers: Any, kind: str) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, timeout_s=1.0, kind=kind)
    call = make_call(chat())
    await PolicyRequestStage(service).on_request(call)  # up: decided
    assert call.decisions[-1].outcome == "allow"
    server.stop()
    call = make_call(chat())
    with pytest.raises(PolicyUnavailable) as raised:
        await PolicyRequestStage(service).on_request(call)
    assert raised.value.status == 503 and raised.value.code == "policy_unavailable"
    decision = call.decisions[-1]
    assert decision.outcome == "error" and decision.detail["error_kind"] == "unavailable"
    assert decision.detail["fail_open"] is False
    assert call.response_headers["x-wardgate-decision"] == "error"
    labels = {"phase": "request", "engine": "opa", "kind": "unavailable", "fail_open": "false"}
    assert metric(service, "wardgate_policy_errors_total", labels) == 1


async def test_opa_server_down_fails_open_when_configured(make_service: Any, opa_servers: Any) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, fail_open=True)
    server.stop()
    call = make_call(chat())
    await PolicyRequestStage(service).on_request(call)
    decision = call.decisions[-1]
    assert decision.outcome == "allow" and decision.detail["fail_open"] is True
    assert decision.reasons[0].startswith("policy engine unavailable, failing open")
    labels = {"phase": "request", "engine": "opa", "kind": "unavailable", "fail_open": "true"}
    assert metric(service, "wardgate_policy_errors_total", labels) == 1


async def test_fail_open_can_be_limited_to_some_endpoints(make_service: Any, opa_servers: Any) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, fail_open_endpoints=["embeddings"])
    server.stop()
    await PolicyRequestStage(service).on_request(
        make_call({"model": "mock-embedding", "input": "x"}, Endpoint.EMBEDDINGS)
    )
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(make_call(chat()))


async def test_opa_restarted_empty_fails_closed_then_gets_the_policies_again(
    make_service: Any, opa_servers: Any
) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, timeout_s=1.0)
    server.store = type(server.store)()  # what a restart without bundles looks like
    call = make_call(chat())
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(call)
    assert call.decisions[-1].detail["error_kind"] == "undefined"
    # The gateway pushes the modules, then the data: wait for a decision, not for the modules
    # alone (a call between the two pushes is still refused, as it should be).
    for _ in range(100):
        later = make_call(chat())
        try:
            await PolicyRequestStage(service).on_request(later)
            break
        except PolicyUnavailable:
            await asyncio.sleep(0.05)
    assert later.decisions[-1].outcome == "allow"


@pytest.mark.parametrize("kind", ["opa", "opa-aiohttp", "opa-wire"])
async def test_slow_opa_answer_times_out_and_fails_closed(
    make_service: Any, opa_servers: Any, kind: str
) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, timeout_s=0.05, kind=kind)
    server.delay_s = 0.5
    call = make_call(chat())
    t0 = time.perf_counter()
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(call)
    assert time.perf_counter() - t0 < 0.4
    assert call.decisions[-1].detail["error_kind"] == "timeout"


async def test_opa_down_mid_stream_replaces_held_tool_calls_with_an_error_event(
    make_service: Any, opa_servers: Any
) -> None:
    server = opa_servers()
    service = await opa_service(make_service, server, timeout_s=1.0)
    server.stop()
    call = make_call(chat(), stream=True)
    stage = PolicyResponseStage(service)
    text = SSEEvent.from_json({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    finish = SSEEvent.from_json({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    assert list(await stage.on_chunk(call, text)) == [text]
    assert list(await stage.on_chunk(call, finish)) == []
    (error,) = await stage.on_chunk(call, SSEEvent.done())
    assert orjson.loads(error.data)["error"]["code"] == "policy_unavailable"


def write_set(root: Path, request_rego: str) -> tuple[Path, Path]:
    rego, policies = root / "rego", root / "policies"
    rego.mkdir()
    policies.mkdir()
    (rego / "request.rego").write_text(request_rego)
    return rego, policies


async def test_a_decision_of_the_wrong_shape_fails_closed(make_service: Any, tmp_path: Path) -> None:
    rego, policies = write_set(tmp_path, "package wardgate.request\n\ndecision := 5\n")
    service = await make_service(RegorusEngine(), rego, policies)
    call = make_call(chat())
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(call)
    assert call.decisions[-1].detail["error_kind"] == "malformed"


async def test_a_missing_decision_fails_closed(make_service: Any, tmp_path: Path) -> None:
    rego, policies = write_set(tmp_path, "package wardgate.request\n\nother := 1\n")
    service = await make_service(RegorusEngine(), rego, policies)
    call = make_call(chat())
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(call)
    assert call.decisions[-1].detail["error_kind"] == "undefined"


async def test_a_policy_runtime_error_fails_closed(make_service: Any, tmp_path: Path) -> None:
    rego, policies = write_set(
        tmp_path,
        'package wardgate.request\n\ndecision := {"allow": true} if {\n'
        '\tcount(input.request.model) > 0\n}\n\ndecision := {"allow": false}\n',
    )
    service = await make_service(RegorusEngine(), rego, policies)
    with pytest.raises(PolicyUnavailable):
        await PolicyRequestStage(service).on_request(make_call(chat()))


async def test_allow_false_without_reasons_is_a_denial_with_a_reason(
    make_service: Any, tmp_path: Path
) -> None:
    rego, policies = write_set(tmp_path, 'package wardgate.request\n\ndecision := {"allow": false}\n')
    service = await make_service(RegorusEngine(), rego, policies)
    from gateway.errors import Denied

    with pytest.raises(Denied) as raised:
        await PolicyRequestStage(service).on_request(make_call(chat()))
    assert raised.value.reasons == ["no policy rule allowed the call"]
