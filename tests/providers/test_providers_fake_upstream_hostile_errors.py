"""The fake upstream's hostile error and duplicate-key faults, straight from the openai SDK (no
gateway in between), so the gateway tests that rely on them can trust what the fake sends."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from gateway.dupkeys import has_duplicate
from tests.fake_openai import FakeOpenAI

KEY = "sk-provider-key-for-the-fake-0123456789"
MSGS = [{"role": "user", "content": "hello"}]


@pytest.fixture
def fake(upstream: FakeOpenAI) -> FakeOpenAI:
    return upstream


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key=KEY, max_retries=0, timeout=10) as c:
        yield c


def test_status_fault_can_quote_the_callers_key_and_name_a_param(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.fault(
        "status",
        times=1,
        status=400,
        message="bad",
        param="temperature",
        code="invalid_value",
        echo_auth=True,
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert caught.value.body["message"] == f"bad (you sent: Bearer {KEY})"
    assert (caught.value.param, caught.value.code) == ("temperature", "invalid_value")


def test_chat_stream_error_fault_sends_events_then_the_providers_error_event(
    fake: FakeOpenAI, client: openai.OpenAI
) -> None:
    fake.fault("stream_error", times=1, after=2, message="boom", echo_auth=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
            received.append(chunk)
    assert len(received) == 2 and caught.value.message == f"boom (you sent: Bearer {KEY})"


def test_responses_stream_error_fault_sends_an_error_event(fake: FakeOpenAI) -> None:
    fake.fault("stream_error", times=1, after=1, message="boom", code="server_error")
    resp = httpx.post(
        fake.base_url + "/responses", json={"model": "gpt-4o-mini", "input": "hi", "stream": True}
    )
    blocks = [b for b in resp.text.split("\n\n") if b.strip()]
    assert len(blocks) == 2 and blocks[-1].startswith("event: error\n")
    assert orjson.loads(blocks[-1].split("data: ", 1)[1])["message"] == "boom"


def test_duplicate_keys_fault_repeats_a_top_level_key_of_the_answer(fake: FakeOpenAI) -> None:
    fake.fault("duplicate_keys", times=1)
    resp = httpx.post(fake.base_url + "/chat/completions", json={"model": "gpt-4o-mini", "messages": MSGS})
    assert resp.content.startswith(b'{"object":"duplicate",') and has_duplicate(resp.content)
    assert orjson.loads(resp.content)["object"] == "chat.completion"  # last wins: what orjson reads


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        ("/chat/completions", {"model": "m", "messages": MSGS, "stream": True}, b'"object"'),
        ("/responses", {"model": "m", "input": "hi", "stream": True}, b'"type"'),
    ],
)
def test_duplicate_keys_fault_in_a_stream_repeats_a_key_in_one_event(
    fake: FakeOpenAI, path: str, body: dict, key: bytes
) -> None:
    fake.fault("duplicate_keys", times=1, at=1)
    resp = httpx.post(fake.base_url + path, json=body)
    datas = [line[6:].encode() for line in resp.text.splitlines() if line.startswith("data: {")]
    assert [has_duplicate(d) for d in datas].count(True) == 1 and has_duplicate(datas[1])
    assert datas[1].startswith(b"{" + key + b':"duplicate",')


def test_a_scripted_tool_call_can_carry_arguments_verbatim(fake: FakeOpenAI, client: openai.OpenAI) -> None:
    raw = '{"amount": 5000, "amount": 5}'
    fake.script_tool_call("transfer_funds", raw)
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert resp.choices[0].message.tool_calls[0].function.arguments == raw
