"""Per-direction actions, the tool-argument restore switch, JSON-valid placeholders, logprobs and
reasoning fields, URL and unknown fields: through the two stages, whole answers and streams."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response
from pydantic import ValidationError

from gateway.call import Call, Endpoint, ModelResponse
from gateway.errors import BadRequest
from gateway.pipeline import Pipeline
from gateway.redaction.component import build
from gateway.redaction.config import Action, DirectionalAction, RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage, RedactOutStage
from gateway.sse import SSEEvent
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
SUPPORT = "support@corp.example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
PHONE = "4155552671"


@pytest.fixture(scope="module")
def directed() -> Redactor:
    actions = {
        **RedactionSettings().actions,
        "EMAIL_ADDRESS": {"prompt": "restore", "answer": "allow"},
        "PHONE_NUMBER": "restore",
    }
    redactor = build(RedactionSettings(hash_salt="test-salt-0123456789", actions=actions))
    yield redactor
    redactor.engine.close()


def _stages(redactor: Redactor) -> tuple[RedactInStage, RedactOutStage]:
    return RedactInStage(redactor), RedactOutStage(redactor)


def _answer(message: dict[str, Any], **choice: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", **message}, **choice}
        ],
    }


def _chunk(delta: dict[str, Any], finish: str | None = None, **choice: Any) -> SSEEvent:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, **choice}],
    }
    return SSEEvent.parse(b"data: " + orjson.dumps(body) + b"\n\n")


async def _stream(stage: RedactOutStage, call: Call, events: list[SSEEvent]) -> list[ChatCompletionChunk]:
    async def gen() -> AsyncIterator[SSEEvent]:
        for e in [*events, SSEEvent.done()]:
            yield e

    out = [e async for e in Pipeline([stage]).iter_stream(call, gen())]
    return [ChatCompletionChunk.model_validate(e.json) for e in out if not e.is_done]


def _split(text: str, how: str, rng: random.Random) -> list[str]:
    if how == "1":
        return list(text)
    if how == "3":
        return [text[i : i + 3] for i in range(0, len(text), 3)]
    cuts = sorted(rng.sample(range(1, len(text)), k=min(len(text) - 1, rng.randint(1, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


# -- configuration --------------------------------------------------------------------------------


def test_the_short_form_means_both_directions_and_the_long_form_is_validated() -> None:
    s = RedactionSettings(
        actions={"EMAIL_ADDRESS": "restore", "PHONE_NUMBER": {"prompt": "redact", "answer": "allow"}}
    )
    assert s.actions["EMAIL_ADDRESS"] is Action.RESTORE
    assert s.actions["PHONE_NUMBER"] == DirectionalAction(prompt=Action.REDACT, answer=Action.ALLOW)
    with pytest.raises(ValidationError, match=r"actions\.EMAIL_ADDRESS\.answer: 'alow' is not an action"):
        RedactionSettings(actions={"EMAIL_ADDRESS": {"prompt": "restore", "answer": "alow"}})
    with pytest.raises(ValidationError, match=r"actions\.EMAIL_ADDRESS: unknown keys \['anwser'\]"):
        RedactionSettings(actions={"EMAIL_ADDRESS": {"prompt": "restore", "anwser": "allow"}})
    with pytest.raises(ValidationError, match=r"actions\.EMAIL_ADDRESS: 'prompt' is required"):
        RedactionSettings(actions={"EMAIL_ADDRESS": {"answer": "allow"}})
    with pytest.raises(ValidationError, match=r"actions\.CARD: 'restor' is not an action"):
        RedactionSettings(actions={"CARD": "restor"})
    with pytest.raises(ValidationError, match="tool_arguments must be true or false"):
        RedactionSettings(actions={"CREDIT_CARD": {"prompt": "restore", "tool_arguments": "yes"}})


# -- per direction and tool arguments ------------------------------------------------------------


async def test_a_public_address_in_the_answer_is_allowed_while_the_callers_comes_back_and_secrets_go(
    directed: Redactor,
) -> None:
    redact_in, redact_out = _stages(directed)
    call = chat_call([{"role": "user", "content": f"I am {EMAIL}, card {CARD}"}])
    await redact_in.on_request(call)
    assert EMAIL not in orjson.dumps(call.body).decode()
    answer = _answer(
        {
            "content": f"Write to {SUPPORT} about <EMAIL_ADDRESS_1>; key {KEY}; card <CREDIT_CARD_1>",
            "tool_calls": [
                {
                    "id": "t1",
                    "type": "function",
                    "function": {
                        "name": "send_email",
                        "arguments": orjson.dumps(
                            {"to": "<EMAIL_ADDRESS_1>", "body": "card <CREDIT_CARD_1>", "cc": SUPPORT}
                        ).decode(),
                    },
                }
            ],
        }
    )
    response = ModelResponse(200, {}, json=answer)
    await redact_out.on_response(call, response)
    message = ChatCompletion.model_validate(response.json).choices[0].message
    assert message.content == f"Write to {SUPPORT} about {EMAIL}; key <OPENAI_API_KEY_1>; card {CARD}"
    args = orjson.loads(message.tool_calls[0].function.arguments)
    # the caller's address goes into the tool call, the caller's card does not (default)
    assert args == {"to": EMAIL, "body": "card <CREDIT_CARD_1>", "cc": SUPPORT}
    assert call.pii["response"]["entities"] == {"EMAIL_ADDRESS": 2, "OPENAI_API_KEY": 1}


@pytest.mark.parametrize("how", ["1", "3", "random"])
async def test_streamed_tool_calls_get_no_card_back_unless_allowed(directed: Redactor, how: str) -> None:
    rng = random.Random(how)
    allowed = build(
        RedactionSettings(
            hash_salt="test-salt-0123456789",
            actions={
                **RedactionSettings().actions,
                "CREDIT_CARD": {"prompt": "restore", "tool_arguments": True},
            },
        )
    )
    try:
        for redactor, expect_card in ((directed, False), (allowed, True)):
            redact_in, redact_out = _stages(redactor)
            call = chat_call([{"role": "user", "content": f"I am {EMAIL}, card {CARD}"}], stream=True)
            await redact_in.on_request(call)
            args = orjson.dumps({"to": "<EMAIL_ADDRESS_1>", "card": "<CREDIT_CARD_1>"}).decode()
            events = [
                _chunk(
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "t",
                                "type": "function",
                                "function": {"name": "f", "arguments": ""},
                            }
                        ],
                    }
                )
            ]
            events += [
                _chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]})
                for a in _split(args, how, rng)
            ]
            events.append(_chunk({}, "tool_calls"))
            chunks = await _stream(redact_out, call, events)
            joined = "".join(
                tc.function.arguments or ""
                for c in chunks
                for tc in (c.choices[0].delta.tool_calls or [] if c.choices else [])
            )
            assert orjson.loads(joined) == {"to": EMAIL, "card": CARD if expect_card else "<CREDIT_CARD_1>"}
    finally:
        allowed.engine.close()


# -- JSON stays JSON -------------------------------------------------------------------------------


async def test_a_redacted_number_becomes_a_string_placeholder_and_comes_back_a_number(
    directed: Redactor,
) -> None:
    redact_in, redact_out = _stages(directed)
    args = '{"phone":4155552671,"ids":[4155552671, 12],"note":"call 4155552671","n":-1.5e3}'
    tool_result = '{"phone": 4155552671, "contact": {"mobile": 4155552672}}'
    call = chat_call(
        [
            {"role": "user", "content": "find my phone"},
            {
                "role": "assistant",
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}],
            },
            {"role": "tool", "tool_call_id": "c", "content": tool_result},
        ]
    )
    await redact_in.on_request(call)
    sent_args = call.body["messages"][1]["tool_calls"][0]["function"]["arguments"]
    sent_result = call.body["messages"][2]["content"]
    assert PHONE not in sent_args + sent_result
    assert orjson.loads(sent_args) == {
        "phone": "<PHONE_NUMBER_1>",
        "ids": ["<PHONE_NUMBER_1>", 12],
        "note": "call <PHONE_NUMBER_1>",
        "n": -1.5e3,
    }
    assert orjson.loads(sent_result) == {
        "phone": "<PHONE_NUMBER_1>",
        "contact": {"mobile": "<PHONE_NUMBER_2>"},
    }
    # the model repeats the placeholders: numbers come back as numbers, inside text as digits
    answer_args = '{"phone": "<PHONE_NUMBER_1>", "text": "ring <PHONE_NUMBER_2>", "alt": "<PHONE_NUMBER_2>"}'
    response = ModelResponse(
        200,
        {},
        json=_answer(
            {
                "content": None,
                "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "call", "arguments": answer_args}}
                ],
            }
        ),
    )
    await redact_out.on_response(call, response)
    back = response.json["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
    assert orjson.loads(back) == {"phone": 4155552671, "text": "ring 4155552672", "alt": 4155552672}


@pytest.mark.parametrize("how", ["1", "3", "random"])
async def test_json_mode_content_stays_json_in_a_stream_and_equals_the_whole_answer(
    directed: Redactor, how: str
) -> None:
    rng = random.Random(how)
    redact_in, redact_out = _stages(directed)
    content = (
        '{"name": "x", "phone": 4155552671, "mobile": [4155552672], "mail": "' + SUPPORT + '", "ok": true}'
    )
    outs = []
    for stream in (False, True):
        call = chat_call(
            [{"role": "user", "content": "json please"}],
            stream=stream,
            response_format={"type": "json_object"},
        )
        await redact_in.on_request(call)
        if stream:
            chunks = await _stream(
                redact_out,
                call,
                [_chunk({"content": c}) for c in _split(content, how, rng)] + [_chunk({}, "stop")],
            )
            outs.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        else:
            response = ModelResponse(200, {}, json=_answer({"content": content}))
            await redact_out.on_response(call, response)
            outs.append(response.json["choices"][0]["message"]["content"])
    assert outs[0] == outs[1]
    assert orjson.loads(outs[0]) == {
        "name": "x",
        "phone": "<PHONE_NUMBER_1>",
        "mobile": ["<PHONE_NUMBER_2>"],
        "mail": SUPPORT,
        "ok": True,
    }


# -- logprobs and reasoning -------------------------------------------------------------------------


def _logprobs(tokens: list[str]) -> dict[str, Any]:
    return {
        "content": [
            {"token": t, "logprob": -0.1, "bytes": list(t.encode()), "top_logprobs": []} for t in tokens
        ]
    }


async def test_logprobs_go_when_redaction_changed_the_text_and_stay_when_it_did_not(stages) -> None:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": "hello"}])
    await redact_in.on_request(call)
    leaky = ModelResponse(
        200, {}, json=_answer({"content": f"key {KEY}"}, logprobs=_logprobs(["key ", KEY[:9], KEY[9:]]))
    )
    await redact_out.on_response(call, leaky)
    assert leaky.json["choices"][0]["logprobs"] is None
    assert KEY not in orjson.dumps(leaky.json).decode() and KEY[9:] not in orjson.dumps(leaky.json).decode()
    clean = ModelResponse(
        200, {}, json=_answer({"content": "all fine"}, logprobs=_logprobs(["all", " fine"]))
    )
    await redact_out.on_response(call, clean)
    assert [t.token for t in ChatCompletion.model_validate(clean.json).choices[0].logprobs.content] == [
        "all",
        " fine",
    ]


async def test_streamed_logprobs_are_held_and_dropped_when_the_text_changed(stages) -> None:
    redact_in, redact_out = stages
    for text, expect in ((f"the key is {KEY} ok", None), ("nothing to see here", "nothing to see here")):
        call = chat_call([{"role": "user", "content": "hello"}], stream=True)
        await redact_in.on_request(call)
        pieces = _split(text, "3", random.Random(1))
        events = [_chunk({"content": p}, logprobs=_logprobs([p])) for p in pieces] + [_chunk({}, "stop")]
        chunks = await _stream(redact_out, call, events)
        raw = orjson.dumps([c.model_dump() for c in chunks]).decode()
        tokens = [
            t.token
            for c in chunks
            if c.choices and c.choices[0].logprobs
            for t in c.choices[0].logprobs.content or []
        ]
        if expect is None:
            assert tokens == [] and KEY[4:] not in raw and "bH" not in "".join(tokens)
        else:
            assert "".join(tokens) == expect, "clean logprobs all go out with the last chunk"


async def test_reasoning_and_unknown_delta_fields_are_streamed_through_redaction(stages) -> None:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": f"I am {EMAIL}"}], stream=True)
    await redact_in.on_request(call)
    thought = f"the user wrote {KEY} and card {CARD}, reply to <EMAIL_ADDRESS_1>"
    events = [_chunk({"reasoning_content": p}) for p in _split(thought, "3", random.Random(2))]
    events += [_chunk({"thinking_v2": p}) for p in _split(f"also {KEY} here", "1", random.Random(3))]
    events += [_chunk({"content": "ok"}), _chunk({}, "stop")]

    async def gen() -> AsyncIterator[SSEEvent]:
        for e in [*events, SSEEvent.done()]:
            yield e

    out = [e async for e in Pipeline([redact_out]).iter_stream(call, gen())]
    deltas = [e.json["choices"][0]["delta"] for e in out if not e.is_done and e.json.get("choices")]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    other = "".join(d.get("thinking_v2") or "" for d in deltas)
    assert reasoning == f"the user wrote <OPENAI_API_KEY_1> and card <CREDIT_CARD_1>, reply to {EMAIL}"
    assert other == "also <OPENAI_API_KEY_1> here"
    assert KEY.encode() not in b"".join(e.raw for e in out)


async def test_whole_answer_reasoning_and_responses_logprobs(stages) -> None:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": "hi"}])
    await redact_in.on_request(call)
    response = ModelResponse(
        200,
        {},
        json=_answer({"content": "fine", "reasoning_content": f"card {CARD}", "reasoning": f"key {KEY}"}),
    )
    await redact_out.on_response(call, response)
    message = response.json["choices"][0]["message"]
    assert (
        message["reasoning_content"] == "card <CREDIT_CARD_1>"
        and message["reasoning"] == "key <OPENAI_API_KEY_1>"
    )
    rcall = Call("r", Endpoint.RESPONSES, {"model": "m", "input": "hi"}, {})
    await redact_in.on_request(rcall)
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "m",
        "status": "completed",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [
            {
                "type": "message",
                "id": "m1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {
                        "type": "output_text",
                        "text": f"key {KEY}",
                        "annotations": [
                            {
                                "type": "url_citation",
                                "start_index": 0,
                                "end_index": 1,
                                "url": f"https://docs.example.com/?key={KEY}",
                                "title": f"mail {EMAIL}",
                            }
                        ],
                        "logprobs": [{"token": KEY, "logprob": -0.1, "bytes": [], "top_logprobs": []}],
                    }
                ],
            }
        ],
    }
    response = ModelResponse(200, {}, json=body)
    await redact_out.on_response(rcall, response)
    part = Response.model_validate(response.json).output[0].content[0]
    assert part.text == "key <OPENAI_API_KEY_1>" and part.logprobs == []
    assert part.annotations[0].url == "https://docs.example.com/?key=<OPENAI_API_KEY_1>"
    assert part.annotations[0].title == "mail <EMAIL_ADDRESS_1>"


# -- request fields ---------------------------------------------------------------------------------


async def test_every_request_field_of_the_issue_is_scanned(stages) -> None:
    redact_in, _ = stages
    body = {
        "model": "m",
        "user": EMAIL,
        "safety_identifier": EMAIL,
        "metadata": {"customer": EMAIL, "card": CARD},
        "messages": [
            {
                "role": "user",
                "name": EMAIL,
                "content": [
                    {"type": "text", "text": "see image"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"https://img.example.com/a.png?sig={KEY}&u={EMAIL}"},
                    },
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": f"ask {EMAIL}",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "card": {
                                "type": "string",
                                "description": f"e.g. {CARD}",
                                "enum": [CARD],
                                "default": KEY,
                            }
                        },
                    },
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "x",
                "description": f"for {EMAIL}",
                "schema": {"description": f"key {KEY}"},
            },
        },
        "some_future_field": {"deep": [f"mail {EMAIL}"]},
    }
    call = Call("r", Endpoint.CHAT, body, {})
    await redact_in.on_request(call)
    sent = orjson.dumps(call.body).decode()
    for value in (EMAIL, CARD, KEY, "4111111111111111"):
        assert value not in sent
    assert call.body["messages"][0]["content"][1]["image_url"]["url"].startswith(
        "https://img.example.com/a.png?sig=<"
    )
    assert call.body["tools"][0]["function"]["name"] == "lookup"
    assert call.pii["unscanned"] == 1  # the data: URL


async def test_refuse_settings_for_unknown_and_opaque_fields() -> None:
    redactor = build(RedactionSettings(unknown_fields="refuse", opaque_fields="refuse"))
    try:
        redact_in = RedactInStage(redactor)
        with pytest.raises(BadRequest, match="some_future_field") as exc:
            await redact_in.on_request(chat_call([{"role": "user", "content": "hi"}], some_future_field="x"))
        assert exc.value.code == "unscannable_content"
        image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        with pytest.raises(BadRequest, match=r"messages\[0\]\.content\[0\]\.image_url\.url"):
            await redact_in.on_request(chat_call([{"role": "user", "content": [image]}]))
        await redact_in.on_request(chat_call([{"role": "user", "content": "plain"}], user="u1"))
    finally:
        redactor.engine.close()


async def test_structured_reasoning_details_are_streamed_per_channel_and_never_leak(stages) -> None:
    """OpenRouter-style ``reasoning_details`` deltas: a key split over 1-character chunks is
    still caught, and what is held comes out in the last chunk with its ``type`` and ``index``."""
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": "hi"}], stream=True)
    await redact_in.on_request(call)
    text = f"the key {KEY} was in the logs"
    events = [
        _chunk({"reasoning_details": [{"type": "reasoning.text", "index": 0, "text": c, "format": "x"}]})
        for c in text
    ]
    events.append(
        _chunk({"reasoning_details": [{"type": "reasoning.encrypted", "index": 1, "data": "gAAAA=="}]})
    )
    events.append(_chunk({}, "stop"))

    async def gen() -> AsyncIterator[SSEEvent]:
        for e in [*events, SSEEvent.done()]:
            yield e

    out = [e async for e in Pipeline([redact_out]).iter_stream(call, gen())]
    assert KEY[10:20].encode() not in b"".join(e.raw for e in out)
    details = [
        d for e in out if not e.is_done for d in e.json["choices"][0]["delta"].get("reasoning_details", [])
    ]
    joined = "".join(d.get("text", "") for d in details if d.get("index") == 0)
    assert joined == "the key <OPENAI_API_KEY_1> was in the logs"
    assert all(d["type"] == "reasoning.text" for d in details if d.get("index") == 0 and d.get("text"))
    assert any(d.get("data") == "gAAAA==" for d in details), "encrypted reasoning passes untouched"


async def test_a_policy_may_set_actions_per_direction(directed: Redactor) -> None:
    call = chat_call([{"role": "user", "content": f"I am {EMAIL}"}])
    call.policy_redact = {
        "EMAIL_ADDRESS": {"prompt": "redact", "answer": "mask"},
        "CREDIT_CARD": "nonsense",
    }
    actions = directed.actions_for(call)
    assert actions.prompt["EMAIL_ADDRESS"] is Action.REDACT and actions.answer["EMAIL_ADDRESS"] is Action.MASK
    assert actions.prompt["CREDIT_CARD"] is Action.REDACT, "an unknown policy action fails closed"
    assert directed.actions_for(chat_call([])) is directed.actions_for(chat_call([])), (
        "config actions are shared"
    )
    with pytest.raises(TypeError):
        directed.actions_for(chat_call([])).prompt["EMAIL_ADDRESS"] = Action.ALLOW  # type: ignore[index]


async def test_logprobs_a_client_sends_back_go_when_their_text_was_redacted(stages) -> None:
    redact_in, _ = stages
    part = {
        "type": "output_text",
        "text": f"key {KEY}",
        "annotations": [],
        "logprobs": [{"token": KEY, "logprob": -0.1, "bytes": [], "top_logprobs": []}],
    }
    clean = {
        "type": "output_text",
        "text": "fine",
        "annotations": [],
        "logprobs": [{"token": "fine", "logprob": -0.1, "bytes": [], "top_logprobs": []}],
    }
    body = {"model": "m", "input": [{"type": "message", "role": "assistant", "content": [part, clean]}]}
    call = Call("r", Endpoint.RESPONSES, body, {})
    await redact_in.on_request(call)
    sent = call.body["input"][0]["content"]
    assert sent[0]["logprobs"] == [] and KEY not in orjson.dumps(call.body).decode()
    assert sent[1]["logprobs"][0]["token"] == "fine"


async def test_extra_chunk_and_choice_fields_of_a_stream_are_scanned(stages) -> None:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": "hi"}], stream=True)
    await redact_in.on_request(call)
    first = _chunk({"content": "ok"}, content_filter_results={"note": f"saw {KEY}"})
    body = first.json
    body["prompt_filter_results"] = [{"prompt_index": 0, "detail": f"card {CARD}"}]
    events = [SSEEvent.from_json(body), _chunk({}, "stop")]

    async def gen() -> AsyncIterator[SSEEvent]:
        for e in [*events, SSEEvent.done()]:
            yield e

    out = [e async for e in Pipeline([redact_out]).iter_stream(call, gen())]
    raw = b"".join(e.raw for e in out)
    assert KEY.encode() not in raw and CARD.encode() not in raw
    assert out[0].json["choices"][0]["content_filter_results"] == {"note": "saw <OPENAI_API_KEY_1>"}
