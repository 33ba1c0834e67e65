"""Shapes the fuzzers found that broke the gateway: the fixes, and the bugs still open.

Fixed in ``gateway/http/validate.py``: malformed tool calls and tool definitions are refused
with a 400 naming the field (they crashed the built-in mock, and every guard reads them), and
bodies nested deeper than the guards can evaluate are refused (the policy engine failed
closed with a 503 on them).

Fixed since in the scripted mock (``wardgate_mock/args.py`` and its helpers): hostile
tool schemas (a ``properties`` that is not an object, at any depth) gave a 500, long unbroken
words stalled it (quadratic fact regexes) and it ran clients' catastrophic ``pattern`` regexes
with ``re``; and in the limits estimator (``gateway/limits/estimate.py``), a ``type`` field that
is a list or an object anywhere in the body gave a 500.

No bug is open. Pin the next one found as ``xfail(strict=True)``: when it is fixed, its test
passes and fails the run, so the marker is removed in the same change.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from gateway.call import Endpoint
from tests.fuzz.fuzz_helpers import JSON_HEADERS, assert_error, nested
from tests.harness import PASS_THROUGH, RunningGateway, gateway_settings, running_gateway
from wardgate_mock import generate

_FN = {
    "name": "lookup_order",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
}
_ASK = [{"role": "user", "content": "look up order ORD-1"}]


@pytest.fixture(scope="module")
def client(fuzz_gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_gateway.base_url, timeout=30) as c:
        yield c


def post(client: httpx.Client, body: dict[str, Any], path: str = "/chat/completions") -> httpx.Response:
    return client.post(path, content=orjson.dumps(body), headers=JSON_HEADERS)


# ---- tool shapes (fixed) ----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-test", "mock-chat"])
@pytest.mark.parametrize("calls", [352, "call", {"id": "c"}, [1], [None]])
def test_tool_calls_that_are_not_an_array_of_objects_are_400(
    client: httpx.Client, upstream: Any, model: str, calls: Any
) -> None:
    messages = [*_ASK, {"role": "assistant", "content": None, "tool_calls": calls}]
    assert_error(post(client, {"model": model, "messages": messages}), 400, param="messages[1].tool_calls")
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "function", "function": []}, "tools[0].function"),
        ({"type": "function"}, "tools[0].function"),
        ({"type": "function", "function": {"parameters": {}}}, "tools[0].function.name"),
        ({"type": "function", "function": {**_FN, "parameters": "object"}}, "tools[0].function.parameters"),
    ],
)
def test_chat_function_tool_of_the_wrong_shape_is_400(client: httpx.Client, tool: dict, param: str) -> None:
    assert_error(post(client, {"model": "mock-chat", "messages": _ASK, "tools": [tool]}), 400, param=param)


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "function", "parameters": {}}, "tools[0].name"),
        ({"type": "function", "name": "f", "parameters": [1]}, "tools[0].parameters"),
    ],
)
def test_responses_function_tool_of_the_wrong_shape_is_400(
    client: httpx.Client, tool: dict, param: str
) -> None:
    body = {"model": "mock-chat", "input": "look up order ORD-1", "tools": [tool]}
    assert_error(post(client, body, "/responses"), 400, param=param)


def test_tools_of_other_types_and_null_parameters_pass_through(client: httpx.Client, upstream: Any) -> None:
    chat_tools = [
        {"type": "custom", "custom": {"name": "grammar"}},
        {"type": "function", "function": {"name": "f"}},
    ]
    assert post(client, {"model": "gpt-test", "messages": _ASK, "tools": chat_tools}).status_code == 200
    assert upstream.requests[-1].json["tools"] == chat_tools
    responses_tools = [{"type": "web_search"}, {"type": "function", "name": "f", "parameters": None}]
    body = {"model": "gpt-test", "input": "hi", "tools": responses_tools}
    assert post(client, body, "/responses").status_code == 200
    assert upstream.requests[-1].json["tools"] == responses_tools


# ---- guards on: nesting and the estimator -----------------------------------------------------


@pytest.fixture(scope="module")
def guarded_client(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Policy (embedded regorus) and limits (memory backend) on: no external service needed."""
    overrides = {**PASS_THROUGH, "policy": {"enabled": True}, "limits": {"enabled": True}}
    settings = gateway_settings(tmp_path_factory.mktemp("guarded"), fake_upstream.base_url, **overrides)
    with running_gateway(settings) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as c:
        yield c


def _nested_chat(levels: int) -> bytes:
    return (
        b'{"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}], "extra": '
        + nested(levels - 1)
        + b"}"
    )


def test_deepest_allowed_body_is_decided_by_the_policy_engine(guarded_client: httpx.Client) -> None:
    """Regorus gave up near 126 levels (a 503, fail closed); 64 leaves room for its wrappers."""
    resp = guarded_client.post("/chat/completions", content=_nested_chat(64), headers=JSON_HEADERS)
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("levels", [65, 126, 200])
def test_body_too_deep_for_the_policy_engine_is_400_not_503(
    guarded_client: httpx.Client, levels: int
) -> None:
    resp = guarded_client.post("/chat/completions", content=_nested_chat(levels), headers=JSON_HEADERS)
    assert_error(resp, 400)


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-test", "messages": [{"role": "user", "content": [{"type": {"x": 1}, "text": "hi"}]}]},
        {
            "model": "gpt-test",
            "messages": _ASK,
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": {"type": [], "properties": {}}}}
            ],
        },
    ],
    ids=["content-part", "tool-schema"],
)
def test_non_string_type_field_is_answered_not_a_500_with_limits_on(
    guarded_client: httpx.Client, body: dict
) -> None:
    resp = guarded_client.post("/chat/completions", content=orjson.dumps(body), headers=JSON_HEADERS)
    assert resp.status_code == 200, resp.text


# ---- the built-in mock (fixed) ----------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-test", "mock-chat"])
@pytest.mark.parametrize(
    "parameters",
    [
        {"type": "object", "properties": 5},
        {"type": "object", "properties": ["a"], "required": {"a": 1}},
        {"type": "object", "properties": {"a": {"type": "object", "properties": True}}, "required": ["a"]},
    ],
)
def test_mock_answers_a_hostile_tool_schema_with_a_tool_call_not_a_500(
    client: httpx.Client, parameters: dict, model: str
) -> None:
    """A schema the mock cannot fully honour is read as far as it makes sense: a call, not an error."""
    tool = {"type": "function", "function": {"name": "lookup_order", "parameters": parameters}}
    body = {"model": model, "messages": _ASK, "tools": [tool], "tool_choice": "required"}
    resp = post(client, body)
    assert resp.status_code == 200, resp.text
    (call,) = resp.json()["choices"][0]["message"]["tool_calls"]
    assert isinstance(orjson.loads(call["function"]["arguments"]), dict)


_WIDE = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "email": {"type": "string"},
                "amount": {"type": "number"},
                "city": {"type": "string"},
                "ref": {"type": "string", "pattern": "^[A-Z]+-\\d+$"},
            },
        },
    },
}


@pytest.mark.parametrize(
    "word", ["x" * 10_000, "x" * 40_000, "a." * 20_000, "<EMAIL" + "_" * 40_000, "“" * 40_000]
)
def test_mock_fills_tool_arguments_from_a_long_word_in_linear_time(word: str) -> None:
    """The fact regexes were quadratic on one long word: 10k chars 0.7 s, 40k chars 11 s."""
    body = {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": word}],
        "tools": [_WIDE],
        "tool_choice": "required",
    }
    started = time.process_time()  # CPU of this process: a busy machine does not inflate it
    answer = generate(Endpoint.CHAT, body)
    assert time.process_time() - started < 0.2
    assert answer.status == 200


@pytest.mark.parametrize(
    "pattern", ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "^(\\w+\\s?)*$", "\\w*" * 30 + "!", "(a|a)" * 40 + "b"]
)
def test_mock_does_not_run_a_catastrophic_client_pattern(pattern: str) -> None:
    """``re`` takes a second on ``^(a+)+$`` and 24 chars; the mock's bounded matcher a millisecond."""
    code = {"type": "string", "pattern": pattern}
    tool = {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "parameters": {"type": "object", "properties": {"code": code}, "required": ["code"]},
        },
    }
    words = " ".join(["a" * 60 + "!"] * 300)
    body = {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": "code " + "a" * 24 + "! " + words}],
        "tools": [tool],
        "tool_choice": "required",
    }
    started = time.process_time()  # CPU of this process: a busy machine does not inflate it
    answer = generate(Endpoint.CHAT, body)
    assert time.process_time() - started < 0.2
    assert answer.status == 200
