"""The fake OpenAI upstream speaks real HTTP that the real SDKs accept, and fails on demand.

These tests point the openai SDK (and the Agents SDK) straight at the fake, no gateway in
between, so a gateway test that fails can trust its upstream.
"""

from __future__ import annotations

import base64
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.fake_openai import FakeOpenAI
from tests.waiting import wait_until

KEY = "sk-provider-key-for-the-fake"
MSGS = [{"role": "user", "content": "one two three four five six seven eight nine ten"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def fake(upstream: FakeOpenAI) -> FakeOpenAI:
    return upstream


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


# ---- behaving well ---------------------------------------------------------------------------


def test_chat_answers_and_the_request_is_recorded_with_its_headers(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    r = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, extra_headers={"X-Run-Id": "r1"})
    assert r.choices[0].message.content == "Echo: " + MSGS[0]["content"]
    assert r.model == "gpt-4o-mini" and r.usage is not None and r.usage.total_tokens > 0
    (req,) = fake.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {KEY}" and req.headers["x-run-id"] == "r1"
    assert req.json["messages"] == MSGS and req.completed and not req.disconnected


def test_stream_with_include_usage_ends_with_a_usage_chunk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="m", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "Echo: " + MSGS[0]["content"]
    )
    assert (
        chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    )
    plain = list(client.chat.completions.create(model="m", messages=MSGS, stream=True))
    assert all(c.usage is None for c in plain)


def test_tool_call_then_tool_result_gives_a_text_answer(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "What's the weather in Paris?"}]
    first = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and orjson.loads(call.function.arguments) == {"city": "Paris"}
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="m", messages=messages, tools=[WEATHER])
    assert second.choices[0].message.content == "Done. get_weather returned: sunny"


def test_streamed_tool_calls_accumulate_in_the_sdk(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model="m", messages=[{"role": "user", "content": "weather in Oslo?"}], tools=[WEATHER]
    ) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert orjson.loads(call.function.arguments) == {"city": "Oslo"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_responses_non_stream_and_stream(client: openai.OpenAI) -> None:
    r = client.responses.create(model="m", input="Hello there", instructions="Be nice.")
    assert r.output_text == "Echo: Hello there" and r.status == "completed" and r.usage is not None
    with client.responses.stream(model="m", input="Hello there, streaming") as s:
        kinds = [e.type for e in s]
        final = s.get_final_response()
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert final.output_text == "Echo: Hello there, streaming"
    raw = client.responses.create(model="m", input="x", stream=True)
    assert [e.sequence_number for e in raw] == list(range(len(kinds) - 1))


def test_embeddings_float_and_base64_agree(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    sdk_default = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"]
    )  # asks for base64
    assert fake.requests[-1].json["encoding_format"] == "base64"
    assert [d.embedding for d in sdk_default.data] == [d.embedding for d in floats.data]
    raw = httpx.post(
        f"{fake.base_url}/embeddings",
        json={"model": "e", "input": "a", "encoding_format": "base64", "dimensions": 4},
    )
    decoded = struct.unpack("<4f", base64.b64decode(raw.json()["data"][0]["embedding"]))
    assert len(decoded) == 4


def test_models_are_listed(client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]
    assert client.models.retrieve("gpt-4o").id == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_unknown_paths_and_bad_json_get_openai_shaped_errors(fake: FakeOpenAI) -> None:
    missing = httpx.post(f"{fake.base_url}/nothing", json={})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    bad = httpx.post(
        f"{fake.base_url}/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "error" in bad.json()


def test_a_configured_api_key_is_required() -> None:
    with FakeOpenAI(api_key="sk-right") as fake:
        wrong = openai.OpenAI(base_url=fake.base_url, api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="m", messages=MSGS)
        right = openai.OpenAI(base_url=fake.base_url, api_key="sk-right", max_retries=0)
        assert right.chat.completions.create(model="m", messages=MSGS).choices[0].message.content


async def test_async_client_and_agents_sdk_run_a_tool_loop(fake: FakeOpenAI) -> None:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    cities: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        cities.append(city)
        return f"Sunny in {city}"

    client = openai.AsyncOpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0)
    for model in (
        OpenAIResponsesModel("gpt-4o-mini", client),
        OpenAIChatCompletionsModel("gpt-4o-mini", client),
    ):
        agent = Agent(name="weather", instructions="Be brief.", tools=[get_weather], model=model)
        result = await Runner.run(agent, "What's the weather in Paris?")
        assert result.final_output == "Done. get_weather returned: Sunny in Paris"
        streamed = Runner.run_streamed(agent, "What's the weather in Lima?")
        async for _ in streamed.stream_events():
            pass
        assert streamed.final_output == "Done. get_weather returned: Sunny in Lima"
    assert cities == ["Paris", "Lima", "Paris", "Lima"]
    await client.close()


# ---- misbehaving -----------------------------------------------------------------------------


def test_slow_fault_delays_the_answer(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.fault("slow", times=1, delay_s=0.3)
    start = time.perf_counter()
    client.chat.completions.create(model="m", messages=MSGS)
    slow = time.perf_counter() - start
    assert slow >= 0.3
    start = time.perf_counter()
    client.chat.completions.create(model="m", messages=MSGS)
    assert time.perf_counter() - start < slow  # the fault was used up (a lower bound above)


@pytest.mark.parametrize(
    ("status", "error"),
    [(500, openai.InternalServerError), (503, openai.InternalServerError), (400, openai.BadRequestError)],
)
def test_status_fault_answers_an_openai_shaped_error(
    fake: FakeOpenAI, client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    fake.fault("status", times=1, status=status, headers={"x-should-retry": "true"})
    with pytest.raises(error) as caught:
        client.chat.completions.create(model="m", messages=MSGS)
    assert caught.value.status_code == status and caught.value.response.headers["x-should-retry"] == "true"
    assert set(caught.value.body) == {"message", "type", "param", "code"}  # type: ignore[arg-type]


def test_429_fault_carries_retry_headers(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.fault("429", times=1, retry_after="2", retry_after_ms="1500")
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="m", messages=MSGS)
    headers = caught.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "1500")
    assert caught.value.code == "rate_limit_exceeded"


def test_the_sdk_retries_a_429_after_retry_after_ms(fake: FakeOpenAI) -> None:
    fake.fault("429", times=2, retry_after_ms="50", retry_after=None)
    retrying = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=2)
    assert retrying.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
    assert len(fake.requests) == 3


def test_invalid_json_fault_breaks_the_body(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.fault("invalid_json", times=1)
    raw = client.chat.completions.with_raw_response.create(model="m", messages=MSGS)
    assert raw.status_code == 200
    with pytest.raises(ValueError):
        orjson.loads(raw.content)


def test_cut_stream_fault_drops_the_connection_mid_stream(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.fault("cut_stream", times=1, after=3)
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in client.chat.completions.create(model="m", messages=MSGS, stream=True):
            received.append(chunk)
    assert len(received) == 3
    fake.fault("cut_stream", times=1)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=MSGS)


def test_broken_sse_fault_sends_garbage_instead_of_events(fake: FakeOpenAI) -> None:
    fake.fault("broken_sse", times=1)
    r = httpx.post(f"{fake.base_url}/chat/completions", json={"model": "m", "messages": MSGS, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert b"data:" not in r.content and not r.content.endswith(b"\n\n")


def test_hang_fault_never_answers_and_sees_the_client_leave(fake: FakeOpenAI) -> None:
    fake.fault("hang", times=1)
    impatient = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model="m", messages=MSGS)
    wait_until(lambda: fake.requests[-1].disconnected, within=5)
    assert fake.requests[-1].disconnected and not fake.requests[-1].completed


def test_hang_mid_stream_stalls_after_some_events(fake: FakeOpenAI) -> None:
    fake.fault("hang", times=1, after=2)
    impatient = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=0.3)
    received = []
    with pytest.raises(openai.APITimeoutError):
        for chunk in impatient.chat.completions.create(model="m", messages=MSGS, stream=True):
            received.append(chunk)
    assert len(received) == 2


def test_a_client_leaving_a_slow_stream_is_recorded_as_disconnected(fake: FakeOpenAI) -> None:
    fake.fault("slow", times=1, chunk_delay_s=0.05)
    body = {"model": "m", "messages": MSGS, "stream": True}
    with httpx.stream("POST", f"{fake.base_url}/chat/completions", json=body) as r:
        first = next(r.iter_raw())
        # The first event came while the rest was still being written: streamed, not buffered.
        assert first.startswith(b"data: ") and not fake.requests[-1].completed
    wait_until(lambda: fake.requests[-1].disconnected, within=5)
    assert not fake.requests[-1].completed


def test_usage_fault_forces_exact_token_counts_everywhere(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.usage(1234, 56)
    chat = client.chat.completions.create(model="m", messages=MSGS)
    assert chat.usage is not None and (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (1234, 56)
    stream = list(
        client.chat.completions.create(
            model="m", messages=MSGS, stream=True, stream_options={"include_usage": True}
        )
    )
    assert stream[-1].usage is not None and stream[-1].usage.total_tokens == 1290
    resp = client.responses.create(model="m", input="hi")
    assert resp.usage is not None and (resp.usage.input_tokens, resp.usage.output_tokens) == (1234, 56)
    assert client.embeddings.create(model="e", input="hi").usage.prompt_tokens == 1234


def test_scripted_tool_call_answers_the_next_request_only(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.script_tool_call("issue_refund", {"order_id": "A-1", "amount": 5})
    first = client.chat.completions.create(model="m", messages=MSGS)
    (call,) = first.choices[0].message.tool_calls or []
    assert call.function.name == "issue_refund" and orjson.loads(call.function.arguments) == {
        "order_id": "A-1",
        "amount": 5,
    }
    assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.tool_calls is None
    fake.script_tool_call("send_email", {"to": "a@b.c"})
    r = client.responses.create(model="m", input="hi")
    assert r.output[0].type == "function_call" and r.output[0].name == "send_email"
    fake.script_text("Scripted.", times=None)
    assert client.chat.completions.create(model="m", messages=MSGS).choices[0].message.content == "Scripted."
    assert client.responses.create(model="m", input="x").output_text == "Scripted."


def test_faults_can_target_one_path_and_reset_clears_them(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    fake.fault("status", status=500, path="/v1/embeddings")
    assert client.chat.completions.create(model="m", messages=MSGS).choices
    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="e", input="x")
    fake.reset()
    assert client.embeddings.create(model="e", input="x").data and len(fake.requests) == 1
    with pytest.raises(ValueError):
        fake.fault("explode")


def test_fast_mode_serves_prerendered_answers_without_recording() -> None:
    with FakeOpenAI(fast=True) as fake:
        c = openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0)
        assert c.chat.completions.create(model="m", messages=MSGS).choices[0].message.content
        chunks = list(c.chat.completions.create(model="m", messages=MSGS, stream=True))
        assert chunks[-1].usage is not None
        with c.responses.stream(model="m", input="x") as s:
            assert s.get_final_response().output_text
        assert len(c.embeddings.create(model="e", input="x").data) == 1
        assert [m.id for m in c.models.list()]
        assert fake.requests == [] and fake.request_count == 5


def test_runs_as_a_script_on_a_given_port() -> None:
    script = Path(__file__).resolve().parents[1] / "fake_openai.py"
    proc = subprocess.Popen(
        [sys.executable, str(script), "--port", "0", "--fast"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("fake-openai listening on http://127.0.0.1:")
        base_url = line.rsplit(" ", 1)[1].strip()
        assert httpx.get(f"{base_url}/models").json()["object"] == "list"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
