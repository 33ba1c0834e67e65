"""The real openai SDK (sync and async) through the gateway to the fake upstream."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from tests.harness import LIMITED_KEY, PROVIDER_KEY, TEST_KEY

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
def client(gateway, upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)


@pytest.fixture
def aclient(gateway, upstream) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)


def test_chat_non_stream_uses_provider_key_and_never_forwards_client_key(client, upstream):
    resp = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hello"}])
    assert resp.choices[0].message.content == "Echo: hello"
    assert resp.usage is not None and resp.usage.total_tokens > 0
    sent = upstream.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert TEST_KEY not in sent.body.decode()
    assert all(TEST_KEY not in v for v in sent.headers.values())


def test_every_response_carries_a_request_id(client):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-request-id"].startswith("req_")


def test_unknown_request_fields_pass_through_untouched(client, upstream):
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"vendor_knob": {"a": [1, 2]}, "seed": 7},
    )
    sent = upstream.requests[-1].json
    assert sent["vendor_knob"] == {"a": [1, 2]}
    assert sent["seed"] == 7


async def test_async_chat_stream_with_include_usage_delivers_usage_chunk(aclient, upstream):
    stream = await aclient.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Echo: stream me"
    assert usage is not None and usage.completion_tokens > 0


def test_stream_without_include_usage_gets_no_usage_chunk_but_gateway_asked_for_it(client, upstream):
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "no usage please"}], stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks), "the usage-only chunk must be stripped"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: no usage please"
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}


def test_tool_call_non_stream_and_sending_the_result_back(client):
    messages = [{"role": "user", "content": "What is the weather in Paris? use get_weather"}]
    first = client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)
    call = first.choices[0].message.tool_calls[0]
    assert first.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"})
    second = client.chat.completions.create(model="gpt-test", messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert "sunny" in second.choices[0].message.content


def test_tool_call_stream_reassembles_into_a_valid_call(client):
    stream = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "get_weather for Berlin"}],
        tools=TOOLS,
        stream=True,
    )
    name, args, finish = "", "", None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                name += tc.function.name or ""
                args += tc.function.arguments or ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert '"city"' in args
    assert finish == "tool_calls"


def test_responses_non_stream(client):
    resp = client.responses.create(model="gpt-test", input="hello responses")
    assert resp.output_text == "Echo: hello responses"
    assert resp.usage.input_tokens > 0


def test_responses_stream_preserves_event_names_and_sequence_numbers(client):
    with client.responses.stream(model="gpt-test", input="stream responses") as stream:
        events = list(stream)
        final = stream.get_final_response()
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    seqs = [e.sequence_number for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert final.output_text == "Echo: stream responses"


def test_embeddings_float_and_base64(client):
    floats = client.embeddings.create(model="embed-test", input=["a", "b"], encoding_format="float")
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 8
    raw = client.embeddings.with_raw_response.create(model="embed-test", input="a", encoding_format="base64")
    b64 = raw.http_response.json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(b64))
    assert decoded == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_models_lists_only_models_the_key_may_use(gateway):
    full = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY).models.list()
    limited = openai.OpenAI(base_url=gateway.base_url, api_key=LIMITED_KEY).models.list()
    assert {"gpt-test", "mock-chat", "embed-test"} <= {m.id for m in full.data}
    assert [m.id for m in limited.data] == ["mock-chat"]


def test_builtin_mock_provider_answers_without_network(client, upstream):
    resp = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "offline"}]
    )
    assert resp.choices[0].message.content == "Echo: offline"
    assert upstream.requests == []


def test_agent_identity_headers_are_accepted(client, gateway):
    resp = client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "who am i"}],
        extra_headers={"X-Agent-Id": "planner", "X-Run-Id": "run-1", "X-Parent-Run-Id": "run-0"},
    )
    assert resp.choices[0].message.content == "Echo: who am i"
