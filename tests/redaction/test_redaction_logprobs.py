"""Logprobs never carry text redaction did not judge (``gateway/redaction/logprob_check.py``).

Through the real gateway with the openai SDK and the fake upstream: honest logprobs of a clean
answer are kept; tokens that spell other text than the answer, a ``top_logprobs`` alternative
holding a secret, ``refusal`` logprobs, or a shape the gateway does not know are dropped, in
chat and responses answers, whole and streamed. The raw wire the client reads is checked, so a
field the SDK's models would not show still counts."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.harness import TEST_KEY, RunningGateway

EMAIL = "ana.lopez@example.com"


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _tok(token: str, alts: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    top = [{"token": a, "logprob": -1.0, "bytes": list(a.encode())} for a in alts]
    return {"token": token, "logprob": -0.1, "bytes": list(token.encode()), "top_logprobs": top, **extra}


HONEST = [_tok("Hello", ("Hi",)), _tok(" there", (" world",))]


def _chat_body(content: str | None, logprobs: Any, refusal: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return {
        "id": "chatcmpl-lp",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": "stop"}],
    }


def _chat(gw: RunningGateway) -> dict[str, Any]:
    raw = (
        _client(gw)
        .chat.completions.with_raw_response.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], logprobs=True, top_logprobs=1
        )
        .http_response
    )
    assert EMAIL.encode() not in raw.content
    return orjson.loads(raw.content)


def test_honest_logprobs_of_a_clean_chat_answer_are_kept(gw, upstream) -> None:
    upstream.script_answer(_chat_body("Hello there", {"content": HONEST, "refusal": None}))
    assert _chat(gw)["choices"][0]["logprobs"] == {"content": HONEST, "refusal": None}


@pytest.mark.parametrize(
    "logprobs",
    [
        pytest.param({"content": [_tok(EMAIL)]}, id="token spells other text"),
        pytest.param({"content": [_tok("Hello there", (EMAIL,))]}, id="top_logprobs alternative"),
        pytest.param({"content": [_tok("Hello", bytes=list(EMAIL.encode())), _tok(" there")]}, id="bytes"),
        pytest.param({"content": HONEST, "refusal": [_tok(EMAIL)]}, id="refusal"),
        pytest.param({"content": HONEST, "note": EMAIL}, id="unknown key"),
        pytest.param(EMAIL, id="not an object"),
        pytest.param({"content": [_tok("Hello", note=EMAIL), _tok(" there")]}, id="extra entry field"),
    ],
)
def test_chat_logprobs_the_gateway_cannot_vouch_for_are_dropped(gw, upstream, logprobs: Any) -> None:
    upstream.script_answer(_chat_body("Hello there", logprobs))
    body = _chat(gw)
    assert body["choices"][0]["logprobs"] is None
    assert body["choices"][0]["message"]["content"] == "Hello there"


def _chunk(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return {
        "id": "chatcmpl-lp",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [choice],
    }


def _chat_stream(gw: RunningGateway) -> tuple[str, list[Any]]:
    text, logprobs = "", []
    with _client(gw).chat.completions.with_streaming_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True, logprobs=True
    ) as response:
        for line in response.iter_lines():
            assert EMAIL not in line
            if not line.startswith("data: {"):
                continue
            for choice in orjson.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
                if choice.get("logprobs"):
                    logprobs.append(choice["logprobs"])
    return text, logprobs


def test_honest_streamed_logprobs_are_kept(gw, upstream) -> None:
    upstream.script_answer(
        events=[
            _chunk({"role": "assistant", "content": "Hello"}, {"content": HONEST[:1]}),
            _chunk({"content": " there"}, {"content": HONEST[1:]}),
            _chunk({}, None, "stop"),
        ]
    )
    text, logprobs = _chat_stream(gw)
    assert text == "Hello there"
    assert logprobs == [{"content": HONEST}]


@pytest.mark.parametrize(
    "second",
    [
        pytest.param({"content": [_tok(" there", (EMAIL,))]}, id="top_logprobs alternative"),
        pytest.param({"content": [_tok(EMAIL)]}, id="token spells other text"),
        pytest.param({"refusal": [_tok(EMAIL)]}, id="refusal"),
        pytest.param([EMAIL], id="not an object"),
    ],
)
def test_streamed_logprobs_the_gateway_cannot_vouch_for_are_dropped(gw, upstream, second: Any) -> None:
    upstream.script_answer(
        events=[
            _chunk({"role": "assistant", "content": "Hello"}, {"content": HONEST[:1]}),
            _chunk({"content": " there"}, second),
            _chunk({}, None, "stop"),
        ]
    )
    text, logprobs = _chat_stream(gw)
    assert text == "Hello there"
    assert logprobs == []


def _responses_body(text: str, logprobs: list[Any]) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs}
    item = {"id": "m1", "type": "message", "role": "assistant", "status": "completed", "content": [part]}
    return {
        "id": "resp_lp",
        "object": "response",
        "created_at": 1700000000,
        "model": "gpt-test",
        "status": "completed",
        "output": [item],
    }


@pytest.mark.parametrize(
    ("logprobs", "kept"),
    [
        pytest.param(HONEST, True, id="honest"),
        pytest.param([_tok("Hello there", (EMAIL,))], False, id="top_logprobs alternative"),
        pytest.param([_tok(EMAIL)], False, id="token spells other text"),
    ],
)
def test_responses_output_text_logprobs(gw, upstream, logprobs: list[Any], kept: bool) -> None:
    upstream.script_answer(_responses_body("Hello there", logprobs))
    raw = _client(gw).responses.with_raw_response.create(model="gpt-test", input="hi").http_response
    assert EMAIL.encode() not in raw.content
    part = orjson.loads(raw.content)["output"][0]["content"][0]
    assert part["text"] == "Hello there"
    assert part["logprobs"] == (logprobs if kept else [])


_ITEM = {"id": "m1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}


def _rev(kind: str, seq: int, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "sequence_number": seq,
        "item_id": "m1",
        "output_index": 0,
        "content_index": 0,
        **fields,
    }


@pytest.mark.parametrize(
    ("second", "kept"),
    [
        pytest.param(HONEST[1:], True, id="honest"),
        pytest.param([_tok(" there", (EMAIL,))], False, id="top_logprobs alternative"),
        pytest.param([_tok(EMAIL)], False, id="token spells other text"),
    ],
)
def test_responses_stream_delta_logprobs(gw, upstream, second: list[Any], kept: bool) -> None:
    upstream.script_answer(
        events=[
            {"type": "response.output_item.added", "sequence_number": 0, "output_index": 0, "item": _ITEM},
            _rev("response.output_text.delta", 1, delta="Hello", logprobs=HONEST[:1]),
            _rev("response.output_text.delta", 2, delta=" there", logprobs=second),
            _rev("response.output_text.done", 3, text="Hello there", logprobs=[]),
        ]
    )
    done = None
    with _client(gw).responses.with_streaming_response.create(model="gpt-test", input="hi", stream=True) as r:
        for line in r.iter_lines():
            assert EMAIL not in line
            if line.startswith("data: {"):
                event = orjson.loads(line[6:])
                if event["type"] == "response.output_text.done":
                    done = event
    assert done is not None and done["text"] == "Hello there"
    assert done["logprobs"] == ([*HONEST[:1], *second] if kept else [])
