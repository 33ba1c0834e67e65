"""Reading, rewriting and replaying answers: the openai SDK's own parsers must accept every rewrite."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai import NOT_GIVEN
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.approvals.answers import denial_text, deny_json, synth_json, tool_calls_of
from gateway.approvals.fingerprint import fingerprint_body
from gateway.approvals.stream_answers import (
    FINAL,
    LEAD,
    TEXT,
    TOOL,
    assemble,
    classify,
    classify_parsed,
    deny_events,
    json_to_events,
)
from gateway.call import Endpoint
from gateway.sse import SSEEvent
from wardgate_mock import MockOverrides, generate

CHAT_BODY = {
    "model": "gpt-test",
    "messages": [{"role": "user", "content": "pay ACME"}],
    "tools": [{"type": "function", "function": {"name": "transfer_funds", "parameters": {}}}],
    "stream_options": {"include_usage": True},
}
RESP_BODY = {
    "model": "gpt-test",
    "input": "pay ACME",
    "tools": [{"type": "function", "name": "transfer_funds", "parameters": {}}],
}
TRANSFER = MockOverrides(tool_calls=[("transfer_funds", {"amount": 5000, "to": "ACME"})])
DENIAL = "Action transfer_funds was denied by a reviewer: over the limit"
_RESP_EVENT = TypeAdapter(ResponseStreamEvent)


def _answer(endpoint: Endpoint, stream: bool) -> Any:
    answer = generate(
        endpoint,
        CHAT_BODY if endpoint is Endpoint.CHAT else RESP_BODY,
        stream=stream,
        overrides=TRANSFER,
        created=1_700_000_000,
    )
    return answer.events if stream else answer.json


def _chat_final(events: list[SSEEvent]) -> Any:
    state = ChatCompletionStreamState(input_tools=NOT_GIVEN, response_format=NOT_GIVEN)
    for e in events:
        if not e.is_done:
            state.handle_chunk(ChatCompletionChunk.model_validate(e.json))
    return state.get_final_completion()


def _responses_final(events: list[SSEEvent]) -> Response:
    state = ResponseStreamState(input_tools=NOT_GIVEN, text_format=NOT_GIVEN)
    seqs = []
    final = None
    for e in events:
        event = _RESP_EVENT.validate_python(e.json)
        seqs.append(event.sequence_number)
        state.handle_event(event)
        if event.type == "response.completed":
            final = event.response
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert final is not None
    return final


def test_tool_calls_are_read_with_parsed_arguments_from_both_apis() -> None:
    for endpoint in (Endpoint.CHAT, Endpoint.RESPONSES):
        calls = tool_calls_of(endpoint.value, _answer(endpoint, stream=False))
        assert [(c["name"], c["arguments"]) for c in calls] == [
            ("transfer_funds", {"amount": 5000, "to": "ACME"})
        ]
        assert calls[0]["id"].startswith("call_")


def test_chat_denial_removes_the_tool_call_and_the_sdk_parses_it() -> None:
    body = deny_json("chat.completions", _answer(Endpoint.CHAT, stream=False), DENIAL)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.tool_calls is None
    assert parsed.choices[0].message.content == DENIAL
    assert parsed.choices[0].finish_reason == "stop"


def test_responses_denial_replaces_the_function_call_with_a_message() -> None:
    body = deny_json("responses", _answer(Endpoint.RESPONSES, stream=False), DENIAL)
    parsed = Response.model_validate(body)
    assert [item.type for item in parsed.output] == ["message"]
    assert parsed.output_text == DENIAL


def test_stream_events_assemble_to_the_same_answer_as_the_plain_call() -> None:
    for endpoint in (Endpoint.CHAT, Endpoint.RESPONSES):
        assembled = assemble(endpoint.value, _answer(endpoint, stream=True))
        assert tool_calls_of(endpoint.value, assembled) == tool_calls_of(
            endpoint.value, _answer(endpoint, False)
        )


def test_events_are_classified_for_holding() -> None:
    chat = _answer(Endpoint.CHAT, stream=True)
    assert [classify("chat.completions", e) for e in chat] == [
        LEAD,
        TOOL,
        TOOL,
        TOOL,
        TOOL,
        FINAL,
        FINAL,
        FINAL,
    ]
    text = SSEEvent.from_json({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]})
    assert classify("chat.completions", text) == TEXT
    kinds = [classify("responses", e) for e in _answer(Endpoint.RESPONSES, stream=True)]
    assert kinds[:2] == [LEAD, LEAD] and kinds[-1] == FINAL and set(kinds[2:-1]) == {TOOL}


def test_chat_stream_denial_parses_with_the_sdk_accumulator() -> None:
    events = deny_events("chat.completions", _answer(Endpoint.CHAT, stream=True), DENIAL, text_before=False)
    final = _chat_final(events)
    assert final.choices[0].message.tool_calls in (None, [])
    assert final.choices[0].message.content == DENIAL
    assert final.choices[0].finish_reason == "stop"
    assert final.usage is not None and events[-1].is_done


def test_chat_stream_denial_after_streamed_text_starts_a_new_paragraph() -> None:
    head = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    text = SSEEvent.from_json(
        {
            **head,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": "Paying."}, "finish_reason": None}
            ],
        }
    )
    held = list(_answer(Endpoint.CHAT, stream=True))[1:]
    events = [text, *deny_events("chat.completions", held, DENIAL, text_before=True)]
    assert _chat_final(events).choices[0].message.content == "Paying.\n\n" + DENIAL


def test_responses_stream_denial_parses_with_the_sdk_accumulator() -> None:
    events = deny_events("responses", _answer(Endpoint.RESPONSES, stream=True), DENIAL, text_before=False)
    final = _responses_final(events)
    assert [item.type for item in final.output] == ["message"]
    assert final.output_text == DENIAL


@pytest.mark.parametrize("endpoint", [Endpoint.CHAT, Endpoint.RESPONSES])
def test_a_stored_plain_answer_replays_as_a_stream_the_sdk_accepts(endpoint: Endpoint) -> None:
    body = _answer(endpoint, stream=False)
    events = json_to_events(endpoint.value, body, include_usage=True)
    if endpoint is Endpoint.CHAT:
        final = _chat_final(events)
        assert final.choices[0].message.tool_calls[0].function.arguments == '{"amount":5000,"to":"ACME"}'
        assert final.choices[0].finish_reason == "tool_calls"
    else:
        final = _responses_final(events)
        assert final.output[0].type == "function_call" and final.output[0].name == "transfer_funds"
    assert tool_calls_of(endpoint.value, assemble(endpoint.value, events)) == tool_calls_of(
        endpoint.value, body
    )


def test_synthesized_answers_parse_for_both_apis() -> None:
    text = denial_text([], "too expensive", by_reviewer=True, phase="request")
    assert text == "The request was denied by a reviewer: too expensive"
    assert (
        ChatCompletion.model_validate(synth_json("chat.completions", "m", text)).choices[0].message.content
        == text
    )
    assert Response.model_validate(synth_json("responses", "m", text)).output_text == text


def test_fingerprint_ignores_only_stream_flags_and_null_fields() -> None:
    base = fingerprint_body("chat.completions", "gpt-test", CHAT_BODY)
    same = {**CHAT_BODY, "stream": True, "stream_options": {"include_usage": True}, "temperature": None}
    same["messages"] = [{"role": "user", "content": "pay ACME", "name": None}]
    assert fingerprint_body("chat.completions", "gpt-test", same) == base
    for changed in (
        {"temperature": 0.2},
        {"max_tokens": 5},
        {"metadata": {"x": "1"}},
        {"user": "u"},
        {"seed": 1},
    ):
        assert fingerprint_body("chat.completions", "gpt-test", {**CHAT_BODY, **changed}) != base, changed
    other = {**CHAT_BODY, "messages": [{"role": "user", "content": "pay EVIL"}]}
    assert fingerprint_body("chat.completions", "gpt-test", other) != base
    assert fingerprint_body("chat.completions", "gpt-other", CHAT_BODY) != base
    assert fingerprint_body("responses", "gpt-test", CHAT_BODY) != base
    reordered = orjson.loads(orjson.dumps(CHAT_BODY, option=orjson.OPT_SORT_KEYS))
    assert fingerprint_body("chat.completions", "gpt-test", reordered) == base


_TEXTS = st.text(
    alphabet=st.sampled_from([*'ab "\\:{}tool_calls,finish_reason:null', "é", "\n"]), max_size=40
)


@given(
    content=st.one_of(st.none(), _TEXTS),
    finish=st.sampled_from([None, "stop", "tool_calls"]),
    tools=st.booleans(),
    usage=st.booleans(),
    choices=st.integers(1, 2),
)
def test_the_byte_fast_path_classifies_chat_chunks_like_the_json_path(
    content, finish, tools, usage, choices
) -> None:
    delta: dict[str, Any] = {"content": content}
    if tools:
        delta["tool_calls"] = [{"index": 0, "function": {"arguments": "{}"}}]
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": i, "delta": delta, "finish_reason": finish} for i in range(choices)],
        "usage": {"prompt_tokens": 1} if usage else None,
    }
    event = SSEEvent.parse(b"data: " + orjson.dumps(chunk) + b"\n\n")
    assert classify("chat.completions", event) == classify_parsed("chat.completions", event)
