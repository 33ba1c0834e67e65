"""The built-in mock provider behaves like a well-behaved OpenAI model, deterministically."""

from __future__ import annotations

import base64
import math
import struct
import time
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.call import Endpoint
from gateway.providers.base import UpstreamRequest
from wardgate_mock import MockOverrides, MockProvider, generate

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by its id",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}
REFUND = {
    "type": "function",
    "function": {
        "name": "issue_refund",
        "description": "Issue a refund for an order",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {"type": "string"},
                "amount": {"type": "number", "minimum": 0},
                "reason": {"type": "string"},
            },
            "required": ["order_id", "amount", "reason"],
        },
    },
}
TRANSFER = {
    "type": "function",
    "function": {
        "name": "transfer_funds",
        "description": "Move money between accounts",
        "parameters": {
            "type": "object",
            "properties": {
                "to": {"type": "string"},
                "amount": {"type": "number"},
                "memo": {"type": "string"},
            },
            "required": ["to", "amount"],
        },
    },
}
KB = {
    "type": "function",
    "function": {
        "name": "kb_lookup",
        "description": "Search the knowledge base articles about shipping policies",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}
SCHEMAS = {
    t["function"]["name"]: t["function"]["parameters"] for t in (WEATHER, LOOKUP, REFUND, TRANSFER, KB)
}


def chat(messages: list[dict[str, Any]] | str, **body: Any) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    answer = generate(Endpoint.CHAT, {"model": "mock-chat", "messages": messages, **body})
    assert answer.status == 200, answer.json
    ChatCompletion.model_validate(answer.json)  # every field the SDK requires, with the right types
    return answer.json


def message(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["choices"][0]["message"]


def calls(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in message(answer).get("tool_calls", [])
    ]


def tool_round(history: list[dict[str, Any]], answer: dict[str, Any], output: str) -> list[dict[str, Any]]:
    """The history after the assistant's tool calls and a result for each."""
    msg = message(answer)
    results = [{"role": "tool", "tool_call_id": c["id"], "content": output} for c in msg["tool_calls"]]
    return [*history, {"role": "assistant", "content": None, "tool_calls": msg["tool_calls"]}, *results]


# ---- text ------------------------------------------------------------------------------------


def test_chat_answers_with_an_echo_of_the_last_user_message() -> None:
    answer = chat(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello, gateway!"}]
    )
    assert message(answer)["content"] == "Echo: Hello, gateway!"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["object"] == "chat.completion" and answer["model"] == "mock-chat"


def test_usage_counts_utf8_bytes_per_message_deterministically() -> None:
    answer = chat([{"role": "system", "content": "x" * 40}, {"role": "user", "content": "héllo"}])
    # (40 // 4 + 1) + (6 // 4 + 1); the answer "Echo: héllo" is 12 bytes → 12 // 4 + 1.
    assert answer["usage"]["prompt_tokens"] == 11 + 2
    assert answer["usage"]["completion_tokens"] == 4
    assert answer["usage"]["total_tokens"] == 17


def test_same_conversation_gets_the_same_answer_and_ids() -> None:
    first, second = (
        chat("What's the weather in Oslo?", tools=[WEATHER]),
        chat("What's the weather in Oslo?", tools=[WEATHER]),
    )
    assert first["id"] == second["id"]
    assert message(first)["tool_calls"] == message(second)["tool_calls"]
    assert message(first)["tool_calls"][0]["id"].startswith("call_")
    assert chat("What's the weather in Rome?", tools=[WEATHER])["id"] != first["id"]


def test_max_tokens_cuts_the_text_with_finish_reason_length() -> None:
    answer = chat("word " * 200, max_tokens=5)
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["completion_tokens"] == 5
    assert len(message(answer)["content"].encode()) <= 20


def test_json_schema_response_format_answers_valid_json() -> None:
    schema = {
        "type": "object",
        "properties": {
            "steps": {"type": "array", "items": {"type": "string"}, "minItems": 2},
            "done": {"type": "boolean"},
        },
        "required": ["steps", "done"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": True}}
    content = message(chat("Plan a trip to Lisbon", response_format=fmt))["content"]
    jsonschema.validate(orjson.loads(content), schema)
    assert "answer" in orjson.loads(message(chat("hi", response_format={"type": "json_object"}))["content"])


# ---- tools -----------------------------------------------------------------------------------


def test_auto_calls_the_tool_the_user_asks_for_with_arguments_from_the_message() -> None:
    answer = chat("What's the weather in Paris in fahrenheit?", tools=[WEATHER, LOOKUP])
    assert answer["choices"][0]["finish_reason"] == "tool_calls"
    assert message(answer)["content"] is None
    assert calls(answer) == [("get_weather", {"city": "Paris", "unit": "fahrenheit"})]


def test_auto_answers_in_text_when_no_tool_is_asked_for() -> None:
    answer = chat("Tell me a joke", tools=[WEATHER, LOOKUP, REFUND])
    assert calls(answer) == [] and message(answer)["content"] == "Echo: Tell me a joke"


def test_tool_choice_none_never_calls_a_tool() -> None:
    answer = chat("What's the weather in Paris?", tools=[WEATHER], tool_choice="none")
    assert calls(answer) == [] and message(answer)["content"].startswith("Echo:")


def test_tool_choice_required_calls_a_tool_even_unasked() -> None:
    answer = chat("Tell me a joke", tools=[WEATHER, LOOKUP], tool_choice="required")
    assert [name for name, _ in calls(answer)] == ["get_weather"]


def test_named_tool_choice_calls_that_tool() -> None:
    choice = {"type": "function", "function": {"name": "lookup_order"}}
    answer = chat(
        "What's the weather in Paris? Also order ORD-77.", tools=[WEATHER, LOOKUP], tool_choice=choice
    )
    assert calls(answer) == [("lookup_order", {"order_id": "ORD-77"})]


def test_allowed_tools_choice_restricts_the_candidates() -> None:
    choice = {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "lookup_order"}}],
        },
    }
    answer = chat("What's the weather in Paris?", tools=[WEATHER, LOOKUP], tool_choice=choice)
    assert [name for name, _ in calls(answer)] == ["lookup_order"]


def test_a_word_of_the_tool_name_is_enough_when_no_tool_matches_fully() -> None:
    answer = chat("Please transfer $250.50 to Bob for the rent", tools=[TRANSFER, LOOKUP])
    assert calls(answer) == [("transfer_funds", {"to": "Bob", "amount": 250.5})]


def test_full_name_matches_win_over_partial_ones() -> None:
    answer = chat("Look up order ORD-1001 for me", tools=[REFUND, LOOKUP])
    assert calls(answer) == [("lookup_order", {"order_id": "ORD-1001"})]


def test_description_words_pick_a_tool_when_names_do_not() -> None:
    answer = chat("What are your shipping policies?", tools=[WEATHER, KB])
    assert calls(answer) == [("kb_lookup", {"query": "What are your shipping policies?"})]


def test_a_tool_result_after_the_user_message_turns_the_answer_into_a_summary() -> None:
    history = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = chat(history, tools=[WEATHER])
    history = tool_round(history, first, '{"temp": 21, "sky": "clear"}')
    second = chat(history, tools=[WEATHER])
    assert calls(second) == []
    assert message(second)["content"] == 'Done. get_weather returned: {"temp": 21, "sky": "clear"}'


def test_parallel_tool_calls_call_every_requested_tool_in_mention_order() -> None:
    ask = "Look up order ORD-9 and then issue a refund of 30 EUR because it broke"
    answer = chat(ask, tools=[REFUND, LOOKUP])
    assert [name for name, _ in calls(answer)] == ["lookup_order", "issue_refund"]
    for name, args in calls(answer):
        jsonschema.validate(args, SCHEMAS[name])
    assert calls(answer)[1][1]["amount"] == 30


def test_without_parallel_calls_the_tools_come_one_per_answer_then_text() -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "Look up order ORD-9 and then issue a refund"}
    ]
    seen = []
    for _ in range(4):
        answer = chat(history, tools=[REFUND, LOOKUP], parallel_tool_calls=False)
        if not calls(answer):
            break
        assert len(calls(answer)) == 1
        seen.append(calls(answer)[0][0])
        history = tool_round(history, answer, "ok")
    assert seen == ["lookup_order", "issue_refund"]
    assert message(answer)["content"] == "Done. lookup_order returned: ok issue_refund returned: ok"


def test_a_new_user_message_asks_again() -> None:
    history = [{"role": "user", "content": "What's the weather in Paris?"}]
    history = tool_round(history, chat(history, tools=[WEATHER]), "sunny")
    history += [
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "And the weather in Rome?"},
    ]
    assert calls(chat(history, tools=[WEATHER]))[0][1]["city"] == "Rome"


COMPLEX = {
    "type": "object",
    "properties": {
        "customer": {"$ref": "#/$defs/Customer"},
        "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1, "maxItems": 3},
        "priority": {"type": "string", "enum": ["low", "high"]},
        "note": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]},
        "count": {"type": "integer", "minimum": 2, "maximum": 5},
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"},
        "urgent": {"type": "boolean"},
        "kind": {"const": "order"},
        "meta": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}]},
    },
    "required": ["customer", "items", "priority", "note", "count", "ratio", "code", "urgent", "kind", "meta"],
    "additionalProperties": False,
    "$defs": {
        "Customer": {
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "name": {"type": "string", "minLength": 2},
            },
            "required": ["email", "name"],
        },
        "Item": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            "required": ["sku", "qty"],
        },
    },
}
COMPLEX_TOOL = {
    "type": "function",
    "function": {"name": "create_ticket", "description": "", "parameters": COMPLEX},
}


def test_arguments_are_valid_against_a_nested_schema_with_refs_enums_and_bounds() -> None:
    answer = chat(
        "Create a ticket for Jane Doe <jane@example.com>, code ABC-42, high priority, 3 items",
        tools=[COMPLEX_TOOL],
    )
    ((_, args),) = calls(answer)
    jsonschema.validate(args, COMPLEX, format_checker=jsonschema.FormatChecker())
    assert args["customer"]["email"] == "jane@example.com"
    assert args["priority"] == "high" and args["code"] == "ABC-42" and args["count"] == 3


def test_redaction_placeholders_are_copied_into_arguments_so_the_gateway_can_restore_them() -> None:
    props = {"to": {"type": "string"}, "phone": {"type": "string"}, "body": {"type": "string"}}
    email = {
        "type": "function",
        "function": {"name": "send_email", "parameters": {"type": "object", "properties": props}},
    }
    ask = "Send an email to <EMAIL_ADDRESS_1> (phone <PHONE_NUMBER_1>) about card <CREDIT_CARD_1>"
    ((_, args),) = calls(chat(ask, tools=[email]))
    assert args == {"to": "<EMAIL_ADDRESS_1>", "phone": "<PHONE_NUMBER_1>", "body": ask}


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=120))
def test_arguments_validate_for_any_user_message(text: str) -> None:
    answer = chat(f"create ticket {text}", tools=[COMPLEX_TOOL, REFUND, TRANSFER], tool_choice="required")
    for name, args in calls(answer):
        jsonschema.validate(args, COMPLEX if name == "create_ticket" else SCHEMAS[name])


# ---- directives and overrides ----------------------------------------------------------------


def test_tool_directive_calls_that_tool_with_exactly_those_arguments_once() -> None:
    ask = 'Clean up please [[mock:tool=delete_customer args={"customer_id": "C-1", "hard": true}]]'
    history = [{"role": "user", "content": ask}]
    answer = chat(history, tools=[LOOKUP], tool_choice="none")
    assert calls(answer) == [("delete_customer", {"customer_id": "C-1", "hard": True})]
    after = chat(tool_round(history, answer, "deleted"))
    assert message(after)["content"] == "Done. delete_customer returned: deleted"


def test_text_directive_answers_exactly_after_the_directed_calls() -> None:
    ask = '[[mock:tool=lookup_order args={"order_id": "A]]1"}]] Go. [[mock:text=All done, {ok}.]]'
    history = [{"role": "user", "content": ask}]
    answer = chat(history, tools=[LOOKUP])
    assert calls(answer) == [("lookup_order", {"order_id": "A]]1"})]
    assert message(chat(tool_round(history, answer, "found"), tools=[LOOKUP]))["content"] == "All done, {ok}."
    assert message(chat("[[mock:text=Exactly this]] ignored"))["content"] == "Exactly this"


def test_directives_are_removed_from_the_text_the_mock_reads() -> None:
    assert message(chat("Hi [[mock:tool=x]] there"))["tool_calls"][0]["function"]["name"] == "x"
    assert message(chat("Hi [[mock:unknown]] there"))["content"] == "Echo: Hi there"
    assert message(chat("Hi [[mock:text=never closed"))["content"] == "Echo: Hi [[mock:text=never closed"


def test_overrides_force_tool_calls_text_and_usage() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    forced = generate(
        Endpoint.CHAT, body, overrides=MockOverrides(usage=(1000, 7), tool_calls=[("t", {"a": 1})])
    ).json
    assert calls(forced) == [("t", {"a": 1})]
    assert (forced["usage"]["prompt_tokens"], forced["usage"]["completion_tokens"]) == (1000, 7)
    assert message(generate(Endpoint.CHAT, body, overrides=MockOverrides(text="X")).json)["content"] == "X"


# ---- chat streams ----------------------------------------------------------------------------


def chunks(body: dict[str, Any]) -> list[dict[str, Any] | None]:
    events = generate(Endpoint.CHAT, {"model": "mock-chat", "stream": True, **body}, stream=True).events
    assert events is not None
    assert all(e.raw.startswith(b"data: ") and e.raw.endswith(b"\n\n") for e in events)
    assert events[-1].is_done
    parsed = [e.json for e in events[:-1]]
    for c in parsed:
        ChatCompletionChunk.model_validate(c)
    return parsed


def test_stream_sends_role_first_then_content_in_several_chunks_then_finish() -> None:
    text = "one two three four five six seven eight"
    parsed = chunks({"messages": [{"role": "user", "content": text}]})
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    contents = [c["choices"][0]["delta"].get("content") for c in parsed[1:-1]]
    assert len(contents) >= 3 and "".join(contents) == "Echo: " + text
    assert parsed[-1]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in parsed)


def test_stream_usage_chunk_only_when_include_usage_is_true() -> None:
    msgs = [{"role": "user", "content": "hello there"}]
    with_usage = chunks({"messages": msgs, "stream_options": {"include_usage": True}})
    assert with_usage[-1]["choices"] == [] and with_usage[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in with_usage[:-1])
    assert with_usage[-1]["usage"] == chat(msgs)["usage"]
    assert all(
        "usage" not in c for c in chunks({"messages": msgs, "stream_options": {"include_usage": False}})
    )


def test_stream_tool_call_deltas_open_with_id_and_name_then_argument_fragments() -> None:
    msgs = [{"role": "user", "content": "Look up order ORD-9 and issue a refund of $12"}]
    parsed = chunks({"messages": msgs, "tools": [LOOKUP, REFUND]})
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in parsed if "tool_calls" in c["choices"][0]["delta"]
    ]
    by_index: dict[int, dict[str, Any]] = {}
    for d in deltas:
        if d["index"] not in by_index:
            assert (
                d["id"].startswith("call_") and d["type"] == "function" and d["function"]["arguments"] == ""
            )
            by_index[d["index"]] = {"name": d["function"]["name"], "args": "", "fragments": 0}
        else:
            assert set(d) == {"index", "function"} and set(d["function"]) == {"arguments"}
            by_index[d["index"]]["args"] += d["function"]["arguments"]
            by_index[d["index"]]["fragments"] += 1
    assert [v["name"] for v in by_index.values()] == ["lookup_order", "issue_refund"]
    assert all(v["fragments"] > 1 for v in by_index.values())
    assert orjson.loads(by_index[1]["args"])["amount"] == 12
    assert parsed[-1]["choices"][0]["finish_reason"] == "tool_calls"


# ---- responses -------------------------------------------------------------------------------

FLAT_WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "weather",
    "parameters": WEATHER["function"]["parameters"],
    "strict": True,
}


def responses(body: dict[str, Any], stream: bool = False) -> Any:
    answer = generate(Endpoint.RESPONSES, {"model": "mock-chat", **body}, stream=stream)
    assert answer.status == 200, answer.json
    return answer.events if stream else Response.model_validate(answer.json)


def test_responses_answers_a_string_input_with_an_output_text_message() -> None:
    r = responses({"input": "Hello there", "instructions": "Be nice."})
    assert r.status == "completed" and r.object == "response" and r.output_text == "Echo: Hello there"
    assert r.output[0].type == "message" and r.output[0].content[0].type == "output_text"
    assert r.usage.input_tokens == (8 // 4 + 1) + (11 // 4 + 1)
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens


def test_responses_calls_function_tools_and_reads_their_outputs_back() -> None:
    r = responses({"input": "What's the weather in Paris?", "tools": [FLAT_WEATHER]})
    (call,) = r.output
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id.startswith("call_")
    jsonschema.validate(orjson.loads(call.arguments), FLAT_WEATHER["parameters"])
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "What's the weather in Paris?"}]},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    after = responses({"input": items, "tools": [FLAT_WEATHER]})
    assert after.output_text == "Done. get_weather returned: sunny"


def test_responses_named_tool_choice_and_max_output_tokens() -> None:
    r = responses(
        {"input": "hi", "tools": [FLAT_WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}}
    )
    assert r.output[0].name == "get_weather"
    cut = responses({"input": "word " * 100, "max_output_tokens": 3})
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"


def test_responses_stream_events_come_in_order_with_consecutive_sequence_numbers() -> None:
    events = responses({"input": "one two three four five six seven"}, stream=True)
    adapter = TypeAdapter(ResponseStreamEvent)
    parsed = [adapter.validate_python(e.json) for e in events]
    assert [e.sequence_number for e in parsed] == list(range(len(parsed)))
    assert all(e.event == e.json["type"] and e.raw.startswith(b"event: ") for e in events)
    kinds = [e.type for e in parsed]
    deltas = kinds.count("response.output_text.delta")
    assert deltas >= 2
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    text = "".join(e.delta for e in parsed if e.type == "response.output_text.delta")
    assert text == parsed[-1].response.output_text == "Echo: one two three four five six seven"
    assert parsed[0].response.status == "in_progress" and parsed[-1].response.usage.output_tokens > 0


def test_responses_stream_function_call_events_carry_argument_deltas() -> None:
    events = responses({"input": "What's the weather in Paris?", "tools": [FLAT_WEATHER]}, stream=True)
    kinds = [e.json["type"] for e in events]
    assert kinds[2] == "response.output_item.added" and events[2].json["item"]["type"] == "function_call"
    args = "".join(
        e.json["delta"] for e in events if e.json["type"] == "response.function_call_arguments.delta"
    )
    done = next(e.json for e in events if e.json["type"] == "response.function_call_arguments.done")
    assert args == done["arguments"] == events[-1].json["response"]["output"][0]["arguments"]
    assert kinds[-2:] == ["response.output_item.done", "response.completed"]


# ---- embeddings ------------------------------------------------------------------------------


def embed(**body: Any) -> dict[str, Any]:
    answer = generate(Endpoint.EMBEDDINGS, {"model": "mock-embedding", **body})
    assert answer.status == 200, answer.json
    return answer.json


def test_embeddings_are_deterministic_unit_vectors_of_8_dimensions() -> None:
    a = embed(input=["alpha", "beta"])
    vectors = [d["embedding"] for d in a["data"]]
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5 for v in vectors)
    assert embed(input="alpha")["data"][0]["embedding"] == vectors[0]
    assert a["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


def test_base64_embeddings_decode_to_the_float_ones() -> None:
    floats = embed(input="hello", dimensions=16)["data"][0]["embedding"]
    encoded = embed(input="hello", dimensions=16, encoding_format="base64")["data"][0]["embedding"]
    assert list(struct.unpack("<16f", base64.b64decode(encoded))) == floats


def test_embeddings_accept_token_arrays() -> None:
    assert len(embed(input=[1, 2, 3])["data"]) == 1
    assert embed(input=[[1, 2], [3]])["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        (Endpoint.CHAT, {"model": "m"}, "messages"),
        (
            Endpoint.CHAT,
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "sometimes"},
            "tool_choice",
        ),
        (Endpoint.RESPONSES, {"model": "m"}, "input"),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": ""}, "input"),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": "x", "encoding_format": "int8"}, "encoding_format"),
        (Endpoint.EMBEDDINGS, {"model": "m", "input": "x", "dimensions": 0}, "dimensions"),
    ],
)
def test_malformed_requests_get_an_openai_shaped_400(
    endpoint: Endpoint, body: dict[str, Any], param: str
) -> None:
    answer = generate(endpoint, body)
    assert answer.status == 400
    assert answer.json["error"]["type"] == "invalid_request_error" and answer.json["error"]["param"] == param


# ---- the provider seam -----------------------------------------------------------------------


async def test_provider_returns_a_json_response_for_non_stream_requests() -> None:
    provider = MockProvider()
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    response = await provider.send(UpstreamRequest(Endpoint.CHAT, body))
    assert response.status == 200 and response.headers == {"content-type": "application/json"}
    assert orjson.loads(response.body) == response.json and not response.is_stream
    await provider.close()


async def test_provider_returns_sse_events_for_stream_requests() -> None:
    provider = MockProvider(chunk_delay_s=0.001)
    body = {"model": "mock-chat", "input": "hi there", "stream": True}
    response = await provider.send(UpstreamRequest(Endpoint.RESPONSES, body, stream=True))
    assert response.status == 200 and response.headers["content-type"] == "text/event-stream"
    events = [e async for batch in response.events for e in batch]  # type: ignore[union-attr]
    assert events[0].event == "response.created" and events[-1].event == "response.completed"


async def test_provider_ids_differ_per_run_header() -> None:
    provider = MockProvider()
    body = {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}
    a = await provider.send(UpstreamRequest(Endpoint.CHAT, body, headers={"x-run-id": "run-a"}))
    b = await provider.send(UpstreamRequest(Endpoint.CHAT, body, headers={"x-run-id": "run-b"}))
    assert a.json["id"] != b.json["id"]


def test_a_non_stream_chat_answer_costs_well_under_100_microseconds_of_cpu() -> None:
    body = {
        "model": "m",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello " * 40}],
    }
    n = 2000
    start = time.process_time()
    for _ in range(n):
        orjson.dumps(generate(Endpoint.CHAT, body).json)
    per_call_us = (time.process_time() - start) / n * 1e6
    assert per_call_us < 100, f"{per_call_us:.1f} µs per answer"
