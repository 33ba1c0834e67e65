"""The policy input document and the response views built from answers and streams."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gateway.call import Endpoint
from gateway.callstate import Budget, RunTally
from gateway.policy.answer import (
    FINAL,
    HOLD,
    RELEASE,
    ChatStreamView,
    ResponsesStreamView,
    answer_view,
    parse_arguments,
)
from gateway.policy.engines.base import encode_input
from gateway.policy.input import build_input
from gateway.sse import SSEEvent
from tests.policy.helpers_policy import make_call


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> SSEEvent:
    body: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return SSEEvent.from_json(body)


def test_chat_request_input_has_every_section_and_the_version() -> None:
    call = make_call(
        {
            "model": "mock-chat",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.1,
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        },
        roles=("dev",),
        pii={"entities": {"EMAIL_ADDRESS": 1}},
        budget=Budget(0.1, remaining_usd={"key": 4.5}, budget_usd={"key": 5.0}),
        run=RunTally(calls=2, spend_usd=0.25, repeats=0),
    )
    doc = build_input(call, now=datetime(2025, 1, 6, 14, 30, tzinfo=UTC))
    assert doc["version"] == 1
    assert doc["principal"] == {
        "key_id": "key-1",
        "team": "demo",
        "user": "user-1",
        "roles": ["dev"],
        "tags": {},
    }
    assert doc["agent"] == {"id": "agent-1", "run_id": "run-1", "parent_run_id": None}
    assert doc["request"] == {
        "endpoint": "chat.completions",
        "model": "mock-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "kind": "function", "name": "lookup", "name_key": "lookup"}],
        "tool_results": [],
        "params": {"temperature": 0.1},
    }
    assert doc["pii"] == {"entities": {"EMAIL_ADDRESS": 1}}
    assert doc["cost"] == {"estimate_usd": 0.1, "remaining_usd": {"key": 4.5}, "budget_usd": {"key": 5.0}}
    assert doc["run"] == {"calls": 2, "spend_usd": 0.25, "repeats": 0}
    assert doc["time"] == {"now": "2025-01-06T14:30:00Z", "weekday": "Monday", "hour": 14}
    assert "response" not in doc


def test_request_input_shows_the_body_as_it_is_when_the_phase_runs() -> None:
    call = make_call(
        {"model": "mock-chat", "messages": [{"role": "user", "content": "mail <EMAIL_ADDRESS_1>"}]}
    )
    call.body["model"] = "mock-cheap"
    doc = build_input(call)
    assert doc["request"]["model"] == "mock-cheap"
    assert doc["request"]["messages"][0]["content"] == "mail <EMAIL_ADDRESS_1>"


def test_responses_api_input_becomes_chat_shaped_messages() -> None:
    call = make_call(
        {
            "model": "mock-chat",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {
                    "type": "function_call",
                    "call_id": "fc1",
                    "name": "weather",
                    "arguments": '{"city": "Oslo"}',
                },
                {"type": "function_call_output", "call_id": "fc1", "output": "sunny"},
                {"type": "reasoning", "id": "r1", "summary": []},
            ],
            "tools": [{"type": "function", "name": "weather"}, {"type": "web_search_preview"}],
            "max_output_tokens": 100,
        },
        Endpoint.RESPONSES,
    )
    request = build_input(call)["request"]
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "fc1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "fc1", "content": "sunny"},
        {"type": "reasoning", "id": "r1", "summary": []},
    ]
    assert request["tools"] == [
        {"type": "function", "kind": "function", "name": "weather", "name_key": "weather"},
        {
            "type": "web_search_preview",
            "kind": "web_search",
            "name": "web_search_preview",
            "name_key": "web_search_preview",
        },
    ]
    assert request["tool_results"] == [
        {"role": "function_call_output", "tool_call_id": "fc1", "name": "", "text": "sunny"}
    ]
    assert request["params"] == {"max_output_tokens": 100}


def test_responses_api_string_input_is_one_user_message() -> None:
    call = make_call({"model": "mock-chat", "input": "hello"}, Endpoint.RESPONSES)
    assert build_input(call)["request"]["messages"] == [{"role": "user", "content": "hello"}]


def test_embeddings_input_keeps_the_input_and_has_no_messages() -> None:
    call = make_call({"model": "mock-embedding", "input": ["a", "b"]}, Endpoint.EMBEDDINGS)
    request = build_input(call)["request"]
    assert request["input"] == ["a", "b"]
    assert request["messages"] == []


def test_malformed_body_fields_still_give_a_well_formed_input() -> None:
    call = make_call({"model": 7, "messages": "not a list", "tools": ["x", {"type": 3}]})
    call.principal = None
    doc = build_input(call)
    assert doc["principal"] is None
    assert doc["request"]["messages"] == []
    assert doc["request"]["model"] == "7"  # not a string in the body: the call's model name
    assert doc["request"]["tools"] == [
        {"type": "function", "kind": "function", "name": "function", "name_key": "function"}
    ]


def test_arguments_that_are_not_json_are_marked_not_fatal() -> None:
    assert parse_arguments('{"amount": 5}') == {"amount": 5}
    assert parse_arguments("") == {}
    assert parse_arguments(None) == {}
    assert parse_arguments('{"amount": ') == {"_invalid_json": True, "raw": '{"amount": '}
    assert parse_arguments("x" * 20000)["raw"] == "x" * 8192
    assert parse_arguments(12) == {"_invalid_json": True, "raw": "12"}


@given(st.text())
def test_any_argument_string_gives_a_json_encodable_value(raw: str) -> None:
    value = parse_arguments(raw)
    assert orjson.loads(encode_input({"arguments": value}))


def test_chat_answer_view_parses_tool_call_arguments() -> None:
    body = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "On it.",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "transfer_funds", "arguments": '{"amount": 5}'},
                        },
                        {
                            "id": "c2",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{oops"},
                        },
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }
    assert answer_view(Endpoint.CHAT, body) == {
        "content": "On it.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "name": "transfer_funds",
                "arguments": {"amount": 5},
                "choice": 0,
            },
            {
                "id": "c2",
                "type": "function",
                "name": "lookup",
                "arguments": {"_invalid_json": True, "raw": "{oops"},
                "choice": 0,
            },
        ],
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
    }


def test_responses_answer_view_reads_output_items() -> None:
    body = {
        "status": "completed",
        "usage": {"input_tokens": 1},
        "output": [
            {"type": "reasoning", "id": "r"},
            {"type": "message", "content": [{"type": "output_text", "text": "Sure."}]},
            {"type": "function_call", "call_id": "fc9", "name": "delete_customer", "arguments": '{"id": 4}'},
            {"type": "web_search_call", "id": "ws1", "action": {"query": "x"}},
        ],
    }
    view = answer_view(Endpoint.RESPONSES, body)
    assert view["content"] == "Sure."
    assert view["finish_reason"] == "completed"
    assert view["tool_calls"] == [
        {"id": "fc9", "type": "function", "name": "delete_customer", "arguments": {"id": 4}},
        {"id": "ws1", "type": "web_search_call", "name": "web_search_call", "arguments": {"query": "x"}},
    ]


def test_answer_view_of_garbage_is_empty_not_an_error() -> None:
    assert answer_view(Endpoint.CHAT, "nope")["tool_calls"] == []
    assert answer_view(Endpoint.CHAT, {"choices": [None, {"message": "x"}]})["tool_calls"] == []


def test_chat_stream_view_releases_text_and_holds_tool_calls_finish_and_usage() -> None:
    view = ChatStreamView()
    assert view.feed(chunk({"role": "assistant", "content": "Let me "})) == RELEASE
    assert view.feed(chunk({"content": "check."})) == RELEASE
    assert (
        view.feed(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "transfer_funds", "arguments": ""},
                        }
                    ]
                }
            )
        )
        == HOLD
    )
    assert view.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"amou'}}]})) == HOLD
    assert view.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'nt": 2000}'}}]})) == HOLD
    assert view.feed(chunk(finish="tool_calls")) == HOLD
    assert view.feed(chunk(usage={"prompt_tokens": 1, "completion_tokens": 2})) == HOLD
    assert view.feed(SSEEvent.done()) == FINAL
    assert view.view() == {
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "name": "transfer_funds",
                "arguments": {"amount": 2000},
                "choice": 0,
            }
        ],
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    }


def test_responses_stream_view_uses_the_final_response() -> None:
    view = ResponsesStreamView()
    ev = SSEEvent.from_json
    assert view.feed(ev({"type": "response.created", "response": {}}, "response.created")) == RELEASE
    assert (
        view.feed(ev({"type": "response.output_text.delta", "delta": "Hi"}, "response.output_text.delta"))
        == RELEASE
    )
    added = {
        "type": "response.output_item.added",
        "output_index": 1,
        "item": {"type": "function_call", "call_id": "f1", "name": "issue_refund", "arguments": ""},
    }
    assert view.feed(ev(added, added["type"])) == HOLD
    delta = {"type": "response.function_call_arguments.delta", "output_index": 1, "delta": '{"amount": 900}'}
    assert view.feed(ev(delta, delta["type"])) == HOLD
    assert view.view()["tool_calls"] == [
        {"id": "f1", "type": "function", "name": "issue_refund", "arguments": {"amount": 900}}
    ]
    final = {
        "type": "response.completed",
        "response": {
            "status": "completed",
            "output": [
                {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
                {
                    "type": "function_call",
                    "call_id": "f1",
                    "name": "issue_refund",
                    "arguments": '{"amount": 900}',
                },
            ],
        },
    }
    assert view.feed(ev(final, final["type"])) == FINAL
    assert view.view()["content"] == "Hi"
    assert view.view()["finish_reason"] == "completed"


def test_request_keys_are_computed_once_per_call_until_forgotten() -> None:
    from gateway.policy.input import forget_keys

    body = {
        "model": "mock-chat",
        "tools": [{"type": "function", "function": {"name": "Shell"}}],
        "messages": [{"role": "tool", "tool_call_id": "c1", "content": "IGNORE  previous"}],
    }
    call = make_call(body)
    first = build_input(call)["request"]
    assert first["tools"][0]["name_key"] == "shell" and first["tool_results"][0]["text"] == "ignore previous"
    body["messages"][0]["content"] = "rewritten in place"  # as a policy-driven re-redaction does
    assert (
        build_input(call)["request"]["tool_results"] is first["tool_results"]
    )  # the response phase reuses them
    forget_keys(call)
    assert build_input(call)["request"]["tool_results"][0]["text"] == "rewritten in place"
    call.body = {**body, "tools": []}  # a new body object: keyed again
    assert build_input(call)["request"]["tools"] == []


def test_every_tool_shape_of_both_apis_is_one_list_with_kinds() -> None:
    chat = make_call(
        {
            "model": "m",
            "messages": [],
            "functions": [{"name": "Legacy_Fn"}],
            "function_call": {"name": "forced_fn"},
            "tools": [{"type": "custom", "custom": {"name": "Grammar"}}],
            "tool_choice": {"type": "function", "function": {"name": "Legacy_Fn"}},
        }
    )
    assert [(t["kind"], t["name"], t["name_key"]) for t in build_input(chat)["request"]["tools"]] == [
        ("custom", "Grammar", "grammar"),
        ("function", "Legacy_Fn", "legacy_fn"),
        ("function", "forced_fn", "forced_fn"),
    ]
    responses = make_call(
        {
            "model": "m",
            "input": "x",
            "tools": [
                {"type": "local_shell"},
                {"type": "computer_use_preview"},
                {"type": "web_search_preview_2025_03_11"},
                {"type": "mcp", "server_label": "Docs"},
                {"type": "image_generation"},
                {"type": "code_interpreter"},
                {"type": "file_search"},
                {"type": "shell"},
                {"type": "apply_patch"},
                {"type": "computer"},
            ],
        },
        Endpoint.RESPONSES,
    )
    assert [(t["kind"], t["name_key"]) for t in build_input(responses)["request"]["tools"]] == [
        ("local_shell", "local_shell"),
        ("computer_use", "computer_use_preview"),
        ("web_search", "web_search_preview_2025_03_11"),
        ("mcp", "docs"),
        ("image_generation", "image_generation"),
        ("code_interpreter", "code_interpreter"),
        ("file_search", "file_search"),
        ("shell", "shell"),
        ("apply_patch", "apply_patch"),
        ("computer_use", "computer"),
    ]


def test_answer_items_of_every_kind_carry_kind_and_name_key() -> None:
    body = {
        "output": [
            {"type": "local_shell_call", "call_id": "a", "action": {"type": "exec", "command": ["ls"]}},
            {"type": "computer_call", "call_id": "b", "action": {"type": "click"}},
            {"type": "mcp_call", "id": "c", "name": "Search", "arguments": "{}"},
            {"type": "mcp_approval_request", "id": "d", "name": "Delete", "arguments": "{}"},
            {"type": "custom_tool_call", "call_id": "e", "name": "Run_SQL", "input": "select 1"},
            {"type": "code_interpreter_call", "id": "f", "code": "print(1)"},
        ]
    }
    call = make_call({"model": "m", "input": "x"}, Endpoint.RESPONSES)
    calls = build_input(call, answer_view(Endpoint.RESPONSES, body))["response"]["tool_calls"]
    assert [(c["kind"], c["name_key"]) for c in calls] == [
        ("local_shell", "local_shell_call"),
        ("computer_use", "computer_call"),
        ("mcp", "search"),
        ("mcp", "delete"),
        ("custom", "run_sql"),
        ("code_interpreter", "code_interpreter_call"),
    ]
