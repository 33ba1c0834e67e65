"""Hostile and odd input never crashes the stage: it gets a decision or a clear 4xx, quickly,
and one long prompt does not stall the event loop for everyone else."""

from __future__ import annotations

import asyncio
import os
import random
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.stage import RedactInStage
from tests.redaction.conftest import chat_call


async def test_a_one_megabyte_prompt_is_scanned_in_bounded_time(stages) -> None:
    text = ("The quick brown fox jumps over the lazy dog. " * 25_000)[:1_000_000] + " mail bob@example.com"
    call = chat_call([{"role": "user", "content": text}])
    t0 = time.perf_counter()
    await stages[0].on_request(call)
    assert time.perf_counter() - t0 < 5
    assert call.body["messages"][0]["content"].endswith("mail <EMAIL_ADDRESS_1>")


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(200_000).decode("latin-1"),  # binary-looking
        "abc \ud800 def bob@example.com \udfff ghi",  # lone surrogates (legal in a str from "\ud800")
        "\x00\x01\x02 4111 1111 1111 1111 \x7f\x1b[31m",  # control characters around a card
        "٤١١١ ١١١١ ١١١١ ١١١١ and ＋４４ ２０ ７９４６ ０９５８",  # non-ASCII digits
        "@" * 5000 + "." * 5000 + ":" * 5000,  # trigger characters only
        "",
    ],
)
async def test_odd_text_gets_a_decision(stages, content: str) -> None:
    call = chat_call([{"role": "user", "content": content}])
    await stages[0].on_request(call)
    assert call.decisions[-1].stage == "redact_in" and call.decisions[-1].outcome == "allow"
    assert "4111 1111" not in str(call.body)


async def test_unknown_and_nested_shapes_pass_through_counted_as_unscanned(stages) -> None:
    nested: list = ["deep"]
    for _ in range(2000):
        nested = [nested]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {"type": "file", "file": {"file_id": "file-1"}},
                {"type": "hologram", "payload": {"x": 1}},
                nested,
                42,
                {"type": "text", "text": "mail bob@example.com"},
            ],
        },
        {"role": "user", "content": {"unexpected": "mail carol@example.com"}},
        "not a message, from dave@example.com",
        {"role": "user", "content": 12345},
    ]
    call = chat_call(messages)
    await stages[0].on_request(call)
    # the audio data, the number part and the number content; every string the table does not
    # know is scanned (unknown_fields: scan), so none of them passes unscanned
    assert call.pii["unscanned"] == 3
    assert call.body["messages"][1]["content"] == {"unexpected": "mail <EMAIL_ADDRESS_2>"}
    assert call.body["messages"][2] == "not a message, from <EMAIL_ADDRESS_3>"
    assert call.body["messages"][0]["content"][3] is nested
    assert call.body["messages"][0]["content"][5]["text"] == "mail <EMAIL_ADDRESS_1>"


async def test_a_text_over_the_limit_is_refused_with_413() -> None:
    redactor = build(RedactionSettings(max_text_chars=1000))
    call = chat_call([{"role": "user", "content": "x" * 1001}])
    with pytest.raises(PayloadTooLarge) as info:
        await RedactInStage(redactor).on_request(call)
    assert info.value.status == 413 and info.value.code == "content_too_large"
    redactor.engine.close()


async def test_a_megabyte_of_random_digits_is_refused_fast_not_scanned_for_half_a_minute(stages) -> None:
    rng = random.Random(1)
    digits = "".join(rng.choice("0123456789 -.") for _ in range(1_000_000))
    t0 = time.perf_counter()
    with pytest.raises(BadRequest) as info:
        await stages[0].on_request(chat_call([{"role": "user", "content": digits}]))
    assert time.perf_counter() - t0 < 5
    assert info.value.code == "content_too_complex" and info.value.status == 400


async def test_an_analysis_error_fails_closed_with_a_4xx(monkeypatch) -> None:
    redactor = build(RedactionSettings())

    def broken(text: str, **_: object) -> tuple:
        raise UnicodeError("bob@example.com made the validator choke")

    # Below the recognizers: the inline (sliced) and the threaded analysis both go through it.
    monkeypatch.setattr(redactor.engine, "_detect_view", broken)
    with pytest.raises(GatewayError) as info:
        await RedactInStage(redactor).on_request(chat_call([{"role": "user", "content": "bob@example.com"}]))
    assert info.value.status == 400 and "bob@" not in info.value.message
    redactor.engine.close()


async def test_tool_arguments_with_escapes_stay_valid_json(stages) -> None:
    args = (
        '{"body": "line one\\nbob@example.com\\tsk-ant-api03-'
        + "A1b2" * 10
        + '\\u00e9 caf\\u00e9@exampl\\u00e9.com"}'
    )
    call = chat_call(
        [
            {
                "role": "assistant",
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": args}}],
            }
        ]
    )
    await stages[0].on_request(call)
    out = call.body["messages"][0]["tool_calls"][0]["function"]["arguments"]
    decoded = orjson.loads(out)["body"]
    assert "bob@" not in decoded and "sk-ant" not in decoded
    assert decoded.startswith("line one\n<EMAIL_ADDRESS_1>\t<ANTHROPIC_API_KEY_1>")


@pytest.mark.parametrize("entries", [400, 1600])
async def test_a_long_prompt_does_not_stall_the_event_loop(redactor, entries: int) -> None:
    """400 entries (~17 KB): analysed on the loop, in slices between recognizer families;
    1,600 (~67 KB): in a worker thread. Either way the loop keeps running."""
    text = " ".join(f"user{i}@example.com, call +1 415 555 {2000 + i:04d}" for i in range(entries))
    assert (len(text) >= redactor.settings.offload_chars) == (entries == 1600)
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    [spans] = await redactor.engine.analyze_many([text])
    elapsed = time.perf_counter() - t0
    done.set()
    await task
    assert len(spans) == 2 * entries
    assert max(gaps) < max(0.25, elapsed / 3), (
        f"loop stalled {max(gaps):.3f}s during a {elapsed:.3f}s analysis"
    )


async def test_responses_and_embeddings_with_odd_shapes(stages) -> None:
    call = Call(
        "r",
        Endpoint.RESPONSES,
        {"model": "m", "input": [None, 7, {"type": "message", "content": None}, "plain bob@example.com"]},
        {},
    )
    await stages[0].on_request(call)
    assert call.body["input"][3] == "plain <EMAIL_ADDRESS_1>"
    emb = Call("e", Endpoint.EMBEDDINGS, {"model": "e", "input": [[1, 2], None, "x"]}, {})
    await stages[0].on_request(emb)
    assert emb.pii["unscanned"] == 1  # the token ids; None carries nothing


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["bob@example.com", "+44 20 7946 0958", "4111 1111 1111 1111", "text", "input_text"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "role",
                    "content",
                    "type",
                    "text",
                    "tool_calls",
                    "function",
                    "arguments",
                    "input",
                    "output",
                    "instructions",
                    "summary",
                    "messages",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(list(Endpoint)),
    field=st.sampled_from(["messages", "input", "instructions"]),
    value=_JSON,
)
async def test_any_json_shape_gets_a_decision_or_a_4xx(stages, endpoint: Endpoint, field: str, value) -> None:
    call = Call("fuzz", endpoint, {"model": "m", field: value}, {})
    try:
        await stages[0].on_request(call)
    except GatewayError as exc:
        assert 400 <= exc.status < 500
        return
    assert call.decisions[-1].stage == "redact_in" and call.decisions[-1].outcome == "allow"
    orjson.dumps(call.body)  # still serialisable for the upstream


async def test_a_responses_item_whose_type_is_not_a_string_still_has_its_text_scanned() -> None:
    from gateway.redaction.locations import request_slots

    body = {"input": [{"type": ["message"], "content": "a@b.co"}, {"type": {"x": 1}}]}
    walk = request_slots(Endpoint.RESPONSES, body)
    assert [s.path for s in walk.slots if s.text == "a@b.co"] == ["input[0].content"]
