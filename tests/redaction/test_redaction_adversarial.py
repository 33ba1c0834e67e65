"""Every kind in every carrier field, both directions, stream and non-stream, through the real
gateway with the openai SDK against a recording upstream (``tests/redaction/adversarial.py``).

Asserted: no value reaches the provider (what the fake upstream recorded) or the client (what
the SDK parsed, extra provider fields included), except the caller's own values where they are
restored (never a card, IBAN, SSN or secret into a tool call); look-alikes reach both as they
were; every JSON text still parses.
"""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from gateway.redaction.config import NO_TOOL_RESTORE_TYPES, PII_TYPES
from tests.harness import TEST_KEY
from tests.redaction.adversarial import (
    KINDS,
    LOOKALIKES,
    Kind,
    chat_answer,
    chat_chunks,
    chat_request,
    embeddings_requests,
    responses_answer,
    responses_events,
    responses_request,
)

_SDK_CHAT = {
    "model",
    "messages",
    "user",
    "metadata",
    "tools",
    "response_format",
    "stop",
    "prediction",
    "safety_identifier",
}
_SDK_RESPONSES = {"model", "instructions", "user", "metadata", "input", "tools", "text", "prompt_cache_key"}


@pytest.fixture
def client(gw, upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _split(body: dict[str, Any], known: set[str]) -> dict[str, Any]:
    """SDK keyword arguments, with the fields the SDK does not know in ``extra_body``."""
    kwargs = {k: v for k, v in body.items() if k in known}
    extra = {k: v for k, v in body.items() if k not in known}
    return {**kwargs, "extra_body": extra} if extra else kwargs


def _assert_clean(where: str, text: str, kind: Kind) -> None:
    for needle in kind.needles:
        assert needle not in text, f"{kind.entity} reached the {where}"


def _json_texts_parse(obj: Any) -> None:
    """Every string that looks like a JSON document still is one."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str) and node[:1] in "{[" and node[-1:] in "}]":
            orjson.loads(node)


IDS = [k.entity for k in KINDS]
#: Stream chunk sizes, one per kind in turn: every size is covered, the suite stays fast.
SIZES = (1, 3, 7)


def _size(kind: Kind) -> int:
    return SIZES[KINDS.index(kind) % len(SIZES)]


# -- requests: nothing reaches the provider --------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_no_value_reaches_the_provider_from_any_request_field(client, upstream, kind: Kind) -> None:
    client.chat.completions.create(**_split(chat_request(kind), _SDK_CHAT))
    client.responses.create(**_split(responses_request(kind), _SDK_RESPONSES))
    for body in embeddings_requests(kind):
        client.embeddings.create(**body)
    sent = upstream.requests
    assert len(sent) == 4
    for record in sent:
        text = record.body.decode()
        _assert_clean("provider", text, kind)
        assert kind.own not in text
        assert f"<{kind.entity}_" in text
        _json_texts_parse(record.json)
    chat = sent[0].json
    # structure kept: tool names, roles, the image host
    assert chat["tools"][0]["function"]["name"] == "lookup" and chat["messages"][0]["role"] == "system"
    assert chat["messages"][1]["content"][1]["image_url"]["url"].startswith(
        "https://img.example.com/p.png?q="
    )


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_look_alikes_reach_provider_and_client_untouched(client, upstream, stream: bool) -> None:
    text = "\n".join(LOOKALIKES)
    upstream.script_text(text)
    args = {"model": "gpt-test", "messages": [{"role": "user", "content": text}], "user": LOOKALIKES[0]}
    if stream:
        got = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(stream=True, **args)
            if c.choices
        )
    else:
        got = client.chat.completions.create(**args).choices[0].message.content
    sent = upstream.requests[-1].json
    assert sent["messages"][0]["content"] == text and sent["user"] == LOOKALIKES[0]
    assert got == text


# -- answers: nothing new reaches the client; the caller's own values come back -------------------


def _own_request(kind: Kind) -> dict[str, Any]:
    return {"model": "gpt-test", "messages": [{"role": "user", "content": f"mine is {kind.own} ok"}]}


def _expect_own(kind: Kind, *, tool: bool) -> str:
    """What the caller sees where the model repeated its own value's placeholder."""
    restored = kind.entity in PII_TYPES and not (tool and kind.entity in NO_TOOL_RESTORE_TYPES)
    return kind.own if restored else f"<{kind.entity}_1>"


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_chat_answer_carries_no_new_value_in_any_field_whole_and_streamed(
    client, upstream, kind: Kind
) -> None:
    placeholder = f"<{kind.entity}_1>"
    body, _ = chat_answer(kind, placeholder)
    upstream.script_answer(body)
    whole = client.chat.completions.create(**_own_request(kind), logprobs=True)
    upstream.script_answer(events=chat_chunks(kind, placeholder, _size(kind)))
    chunks = list(client.chat.completions.create(**_own_request(kind), logprobs=True, stream=True))
    for record in upstream.requests:
        assert kind.own not in record.body.decode()

    dumped = orjson.dumps(whole.model_dump()).decode()
    _assert_clean("client (whole answer)", dumped, kind)
    message = whole.choices[0].message
    assert whole.choices[0].logprobs is None, "the tokens would spell the value"
    assert message.content == f"Here: <{kind.entity}_2>. Yours: {_expect_own(kind, tool=False)}."
    args = orjson.loads(message.tool_calls[0].function.arguments)
    assert args == {"new": f"<{kind.entity}_2>", "own": _expect_own(kind, tool=True)}

    raw = orjson.dumps([c.model_dump() for c in chunks]).decode()
    _assert_clean("client (stream)", raw, kind)
    deltas = [c.choices[0] for c in chunks if c.choices]
    assert "".join(d.delta.content or "" for d in deltas) == message.content, "stream equals whole"
    reasoning = "".join(getattr(d.delta, "reasoning_content", None) or "" for d in deltas)
    assert reasoning == message.reasoning_content  # type: ignore[attr-defined]
    streamed_args = "".join(tc.function.arguments or "" for d in deltas for tc in d.delta.tool_calls or [])
    assert orjson.loads(streamed_args) == args
    assert all(d.logprobs is None for d in deltas), "logprobs of a changed stream are dropped"


@pytest.mark.parametrize("kind", KINDS, ids=IDS)
def test_responses_answer_carries_no_new_value_whole_and_streamed(client, upstream, kind: Kind) -> None:
    placeholder = f"<{kind.entity}_1>"
    request = {"model": "gpt-test", "input": f"mine is {kind.own} ok"}
    upstream.script_answer(responses_answer(kind, placeholder))
    whole = client.responses.create(**request)
    upstream.script_answer(events=responses_events(kind, placeholder, _size(kind) + 1))
    events = list(client.responses.create(stream=True, **request))

    _assert_clean("client (whole answer)", orjson.dumps(whole.model_dump()).decode(), kind)
    expect = f"Here: <{kind.entity}_2>. Yours: {_expect_own(kind, tool=False)}."
    assert whole.output_text == expect
    assert whole.output[1].content[0].logprobs == []
    assert orjson.loads(whole.output[2].arguments) == {
        "new": f"<{kind.entity}_2>",
        "own": _expect_own(kind, tool=True),
    }

    _assert_clean("client (stream)", orjson.dumps([e.model_dump() for e in events]).decode(), kind)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expect
    done = next(e for e in events if e.type == "response.output_text.done")
    assert done.text == expect and done.logprobs == []
    final = events[-1]
    assert final.type == "response.completed" and final.response.output_text == expect
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert orjson.loads(args) == orjson.loads(final.response.output[2].arguments)
