"""``redact_out`` on whole answers and streams: new PII in the answer is redacted, the caller's
own placeholders come back, and every event stays a valid OpenAI event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from gateway.call import Call, Endpoint, ModelResponse
from gateway.pipeline import Pipeline
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.sse import SSEEvent
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
STREAM_EVENT = TypeAdapter(ResponseStreamEvent)


async def _request(stages, call: Call) -> Call:
    await stages[0].on_request(call)
    return call


async def _events(items: list[SSEEvent]) -> AsyncIterator[SSEEvent]:
    for item in items:
        yield item


async def _run_stream(stages, call: Call, events: list[SSEEvent]) -> list[SSEEvent]:
    pipeline = Pipeline([stages[1]])
    return [e async for e in pipeline.iter_stream(call, _events(events))]


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> SSEEvent:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return SSEEvent.parse(b"data: " + orjson.dumps(body) + b"\n\n")


async def test_whole_chat_answer_restores_placeholders_and_redacts_new_pii(stages) -> None:
    call = await _request(stages, chat_call([{"role": "user", "content": f"I am {EMAIL}, key {KEY}"}]))
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": "Mailing <EMAIL_ADDRESS_1>; <OPENAI_API_KEY_1> stays hidden. Our desk: +44 20 7946 0958.",
                    "tool_calls": [
                        {
                            "id": "t1",
                            "type": "function",
                            "function": {
                                "name": "send",
                                "arguments": '{"to": "<EMAIL_ADDRESS_1>", "cc": "ops@corp.example.com"}',
                            },
                        }
                    ],
                },
            }
        ],
    }
    response = ModelResponse(200, {}, json=answer)
    await stages[1].on_response(call, response)
    assert response.dirty
    message = ChatCompletion.model_validate(response.json).choices[0].message
    assert message.content == f"Mailing {EMAIL}; <OPENAI_API_KEY_1> stays hidden. Our desk: <PHONE_NUMBER_1>."
    args = orjson.loads(message.tool_calls[0].function.arguments)
    assert args == {"to": EMAIL, "cc": "<EMAIL_ADDRESS_2>"}, "new e-mails in the answer are not restorable"
    out = call.pii["response"]
    assert out["entities"] == {"PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1} and out["restored"] == 2
    assert call.decisions[-1].stage == "redact_out"


async def test_whole_responses_answer_is_restored_and_redacted(stages) -> None:
    call = await _request(stages, Call("r", Endpoint.RESPONSES, {"model": "m", "input": f"I am {EMAIL}"}, {}))
    body = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "gpt-test",
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
                        "text": "Hi <EMAIL_ADDRESS_1>, call +1 415 555 2671",
                        "annotations": [],
                    }
                ],
            },
            {
                "type": "function_call",
                "id": "f1",
                "call_id": "c1",
                "name": "f",
                "status": "completed",
                "arguments": '{"email":"<EMAIL_ADDRESS_1>"}',
            },
        ],
    }
    response = ModelResponse(200, {}, json=body)
    await stages[1].on_response(call, response)
    parsed = Response.model_validate(response.json)
    assert parsed.output_text == f"Hi {EMAIL}, call <PHONE_NUMBER_1>"
    assert orjson.loads(parsed.output[1].arguments) == {"email": EMAIL}


async def test_chat_stream_restores_split_placeholders_and_keeps_chunks_valid(stages) -> None:
    call = await _request(
        stages, chat_call([{"role": "user", "content": f"I am {EMAIL}, key {KEY}"}], stream=True)
    )
    content = [
        "Sure, I will write to <EMAIL_",
        "ADDRESS_1> and the key <OPENAI",
        "_API_KEY_1> stays secret. ",
        "Call +1 415 ",
        "555 2671 now",
        ".",
    ]
    args = ['{"to": "<EMA', 'IL_ADDRESS_1>", "phone": "+44 20', ' 7946 0958"}']
    events = [_chunk({"role": "assistant", "content": ""})]
    events += [_chunk({"content": c}) for c in content]
    events.append(
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "send", "arguments": ""},
                    }
                ]
            }
        )
    )
    events += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": a}}]}) for a in args]
    events.append(_chunk({}, "tool_calls"))
    events.append(
        SSEEvent.from_json(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-test",
                "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
            }
        )
    )
    events.append(SSEEvent.done())
    out = await _run_stream(stages, call, events)
    assert out[-1].is_done and len(out) == len(events), "one event out per event in, no extra chunk"
    chunks = [ChatCompletionChunk.model_validate(e.json) for e in out[:-1]]
    assert {c.id for c in chunks} == {"chatcmpl-1"}
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert (
        text
        == f"Sure, I will write to {EMAIL} and the key <OPENAI_API_KEY_1> stays secret. Call <PHONE_NUMBER_1> now."
    )
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "call_9" and calls[0].function.name == "send"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert orjson.loads(arguments) == {"to": EMAIL, "phone": "<PHONE_NUMBER_2>"}
    raw = b"".join(e.raw for e in out)
    assert b"7946" not in raw and b"555 2671" not in raw and KEY.encode() not in raw
    assert call.pii["response"]["entities"] == {"PHONE_NUMBER": 2}
    assert call.pii["response"]["restored"] == 2


async def test_chat_stream_cut_short_is_flushed_at_the_end(stages) -> None:
    call = await _request(stages, chat_call([{"role": "user", "content": f"I am {EMAIL}"}], stream=True))
    events = [
        _chunk({"content": "Reach me at +44 20 79"}),
        _chunk({"content": "46 0958 or <EMAIL_ADDRESS_1>"}),
    ]
    out = await _run_stream(stages, call, events)  # no finish_reason, no [DONE]
    text = "".join(ChatCompletionChunk.model_validate(e.json).choices[0].delta.content or "" for e in out)
    assert text == f"Reach me at <PHONE_NUMBER_1> or {EMAIL}"


async def test_chat_stream_flushes_before_done_without_a_finish_chunk(stages) -> None:
    call = await _request(stages, chat_call([{"role": "user", "content": "hello"}], stream=True))
    out = await _run_stream(stages, call, [_chunk({"content": "mail ops@corp.example.com"}), SSEEvent.done()])
    assert out[-1].is_done
    text = "".join(e.json["choices"][0]["delta"].get("content") or "" for e in out[:-1])
    assert text == "mail <EMAIL_ADDRESS_1>"


def _rev(kind: str, seq: int, **fields: Any) -> SSEEvent:
    return SSEEvent.from_json({"type": kind, "sequence_number": seq, **fields}, event=kind)


async def test_responses_stream_done_events_carry_exactly_what_the_client_saw(stages) -> None:
    call = await _request(
        stages,
        Call(
            "r", Endpoint.RESPONSES, {"model": "m", "input": f"I am {EMAIL}", "stream": True}, {}, stream=True
        ),
    )
    deltas = [
        "Hello <EMAIL_ADD",
        "RESS_1>, the desk is +1 415",
        " 555 2671 and ",
        "GB82 WEST 1234 5698 7654 32",
        " ok",
    ]
    raw_text = "".join(deltas)
    args = ['{"iban": "GB82 WEST ', '1234 5698 7654 32"}']
    raw_args = "".join(args)
    msg = {
        "type": "message",
        "id": "m1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": raw_text, "annotations": []}],
    }
    fc = {
        "type": "function_call",
        "id": "f1",
        "call_id": "c1",
        "name": "pay",
        "status": "completed",
        "arguments": raw_args,
    }
    base = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "model": "gpt-test",
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    seq = iter(range(100))
    events = [
        _rev("response.created", next(seq), response={**base, "status": "in_progress", "output": []}),
        _rev(
            "response.output_item.added",
            next(seq),
            output_index=0,
            item={**msg, "status": "in_progress", "content": []},
        ),
        _rev(
            "response.content_part.added",
            next(seq),
            item_id="m1",
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": "", "annotations": []},
        ),
    ]
    events += [
        _rev(
            "response.output_text.delta",
            next(seq),
            item_id="m1",
            output_index=0,
            content_index=0,
            delta=d,
            logprobs=[],
        )
        for d in deltas
    ]
    events += [
        _rev(
            "response.output_text.done",
            next(seq),
            item_id="m1",
            output_index=0,
            content_index=0,
            text=raw_text,
            logprobs=[],
        ),
        _rev(
            "response.content_part.done",
            next(seq),
            item_id="m1",
            output_index=0,
            content_index=0,
            part={"type": "output_text", "text": raw_text, "annotations": []},
        ),
        _rev("response.output_item.done", next(seq), output_index=0, item=msg),
        _rev(
            "response.output_item.added",
            next(seq),
            output_index=1,
            item={**fc, "arguments": "", "status": "in_progress"},
        ),
    ]
    events += [
        _rev("response.function_call_arguments.delta", next(seq), item_id="f1", output_index=1, delta=a)
        for a in args
    ]
    events += [
        _rev(
            "response.function_call_arguments.done",
            next(seq),
            item_id="f1",
            output_index=1,
            arguments=raw_args,
        ),
        _rev("response.output_item.done", next(seq), output_index=1, item=fc),
        _rev("response.completed", next(seq), response={**base, "status": "completed", "output": [msg, fc]}),
    ]
    out = await _run_stream(stages, call, events)
    parsed = [STREAM_EVENT.validate_python(e.json) for e in out]
    seqs = [p.sequence_number for p in parsed]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "sequence numbers stay strictly increasing"
    streamed = "".join(p.delta for p in parsed if p.type == "response.output_text.delta")
    expected = f"Hello {EMAIL}, the desk is <PHONE_NUMBER_1> and <IBAN_CODE_1> ok"
    assert streamed == expected
    assert next(p for p in parsed if p.type == "response.output_text.done").text == expected
    assert next(p for p in parsed if p.type == "response.content_part.done").part.text == expected
    streamed_args = "".join(p.delta for p in parsed if p.type == "response.function_call_arguments.delta")
    assert orjson.loads(streamed_args) == {"iban": "<IBAN_CODE_1>"}
    completed = next(p for p in parsed if p.type == "response.completed").response
    assert completed.output_text == expected and completed.output[1].arguments == streamed_args
    raw = b"".join(e.raw for e in out)
    assert b"7654" not in raw and b"555 2671" not in raw


async def test_nothing_to_do_on_the_answer_passes_events_through_untouched() -> None:
    redactor = build(RedactionSettings(scan_output=False))
    from gateway.redaction.stage import RedactInStage, RedactOutStage

    stages = (RedactInStage(redactor), RedactOutStage(redactor))
    call = await _request(stages, chat_call([{"role": "user", "content": "no pii here"}], stream=True))
    event = _chunk({"content": "call +1 415 555 2671"})
    raw = event.raw
    out = await _run_stream(stages, call, [event])
    assert out == [event] and out[0].raw == raw
    redactor.engine.close()


@pytest.mark.parametrize("restore", [True, False])
async def test_restore_switch(restore: bool) -> None:
    redactor = build(RedactionSettings(restore=restore))
    from gateway.redaction.stage import RedactInStage, RedactOutStage

    stages = (RedactInStage(redactor), RedactOutStage(redactor))
    call = await _request(stages, chat_call([{"role": "user", "content": f"I am {EMAIL}"}]))
    response = ModelResponse(
        200,
        {},
        json={"choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi <EMAIL_ADDRESS_1>"}}]},
    )
    await stages[1].on_response(call, response)
    assert response.json["choices"][0]["message"]["content"] == (
        f"Hi {EMAIL}" if restore else "Hi <EMAIL_ADDRESS_1>"
    )
    redactor.engine.close()


async def test_a_policy_redact_decided_after_redact_in_applies_to_the_answer(stages) -> None:
    call = await _request(stages, chat_call([{"role": "user", "content": "hello"}]))
    call.policy_redact = {"PHONE_NUMBER": "mask"}  # set by policy_request, after redact_in
    response = ModelResponse(
        200,
        {},
        json={
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Call +44 20 7946 0958 or ops@corp.example.com",
                    },
                }
            ]
        },
    )
    await stages[1].on_response(call, response)
    assert response.json["choices"][0]["message"]["content"] == "Call " + "*" * 16 + " or <EMAIL_ADDRESS_1>"


def test_the_vault_operator_plugs_into_presidios_own_anonymizer_engine() -> None:
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    from gateway.redaction.config import Action
    from gateway.redaction.vault import OPERATOR_NAME, Vault, VaultOperator

    engine = AnonymizerEngine()
    engine.add_anonymizer(VaultOperator)
    vault = Vault(b"s" * 16)
    text = "a@example.com wrote to b@example.com and a@example.com"
    results = [RecognizerResult("EMAIL_ADDRESS", s, s + 13, 1.0) for s in (0, 23, 41)]
    config = {
        "EMAIL_ADDRESS": OperatorConfig(
            OPERATOR_NAME, {"vault": vault, "action": Action.RESTORE, "json": False, "restorable": True}
        )
    }
    out = engine.anonymize(text, results, config, merge_entities_with_spaces=False).text
    assert out.count("<EMAIL_ADDRESS_") == 3 and len(set(out.split())) == 5  # two distinct placeholders
    assert vault.restore(out)[0] == text


def test_a_private_key_is_held_by_its_markers_however_long_and_never_leaks(redactor) -> None:
    state = redactor.new_state(chat_call([]))
    channel = redactor.new_channel(state, json=False, path="p")
    body = "\n".join("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC" + f"{i:04d}" for i in range(200))
    text = (
        f"key:\n-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\nthat was it, bye now friends."
    )
    out = [channel.feed(text[i : i + 7]) for i in range(0, len(text), 7)]
    assert "".join(out) == "key:\n"  # everything after the BEGIN marker is held until it can be judged
    final = "".join(out) + channel.flush()
    assert final == "key:\n<PRIVATE_KEY_1>\nthat was it, bye now friends."
    assert "MIIEv" not in final


def test_a_huge_run_without_whitespace_is_released_with_bounded_memory(redactor) -> None:
    state = redactor.new_state(chat_call([]))
    channel = redactor.new_channel(state, json=False, path="p")
    blob = "ab" * 30_000  # 60 KB with no whitespace and no entity
    released = sum(len(channel.feed(blob[i : i + 100])) for i in range(0, len(blob), 100))
    assert released > 0 and channel.redactor is not None
    assert channel.redactor.held <= redactor.settings.stream_max_pending + 200
    assert released + len(channel.flush()) == len(blob)
