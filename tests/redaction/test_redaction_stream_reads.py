"""A streamed answer is redacted per upstream read (``Pipeline.release`` → ``on_batch``): the
content-only chunks of one read go through their channel as one text and come out as one
event. Whatever the reads (cut at any byte, inside a multi-byte UTF-8 character, inside a
label like ``"SecretAccessKey":``, one event per read or the whole stream in one), the client
must read exactly the whole-text redaction, nothing leaks, and the finish and usage chunks and
``[DONE]`` come through in order. Checked in-process for arbitrary cuts, and through the real
gateway with the openai SDK for a few."""

from __future__ import annotations

import itertools
import random
from typing import Any

import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint
from gateway.errors import UpstreamError
from gateway.pipeline import Pipeline
from gateway.providers.stream_trust import StreamTrustStage
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactOutStage
from gateway.sse import EventSplitter, SSEEvent
from tests.harness import TEST_KEY
from tests.redaction.conftest import chat_call

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
EMAIL = "ana.lopez@example.com"
CARD = "4111 1111 1111 1111"
ANSWER = (
    "Déjà vu 😀: the config is "
    f'{{"AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"{AWS_SECRET}","région":"eu-west-3"}}'
    f" — write to {EMAIL} or pay with {CARD}; ssn: 219-09-9999.\n"
    "Nothing else here, just a few more words so the answer spans several releases. "
    "Ünïcödé ✓ at the end."
)
SECRETS = (AWS_SECRET, "AKIAIOSFODNN7EXAMPLE", EMAIL, CARD, "219-09-9999")
HEAD = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-test"}
USAGE = {"prompt_tokens": 9, "completion_tokens": 120, "total_tokens": 129}


def _chunks(text: str, size: int = 3) -> list[dict[str, Any]]:
    first = {"role": "assistant", "content": ""}
    out = [{**HEAD, "choices": [{"index": 0, "delta": first, "finish_reason": None}]}]
    for i in range(0, len(text), size):
        delta = {"content": text[i : i + size]}
        out.append({**HEAD, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    out.append({**HEAD, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append({**HEAD, "choices": [], "usage": USAGE})
    return out


def _stream_bytes(text: str, size: int = 3) -> bytes:
    """Raw UTF-8 in the JSON (orjson), so a byte cut can fall inside a character."""
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in _chunks(text, size)) + b"data: [DONE]\n\n"


def _pieces(raw: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    return [raw[a:b] for a, b in itertools.pairwise(points) if b > a]


def _whole(redactor: Redactor, text: str) -> str:
    state = redactor.new_state(Call("whole", Endpoint.CHAT, {"model": "m", "messages": []}, {}))
    return redactor.redact_output_text(text, state, json=False, path="choices[0].message.content")


async def _through_pipeline(redactor: Redactor, reads: list[bytes], raw: bool = False) -> list[SSEEvent]:
    """``raw``: the reads come as ``RawRead`` where they can (what the provider hands over
    when redaction reads the stream), stream trust letting them pass whole."""
    pipeline = Pipeline([StreamTrustStage(), RedactOutStage(redactor)])
    call = chat_call([{"role": "user", "content": "hello"}], stream=True)
    splitter = EventSplitter(raw=raw)
    out: list[SSEEvent] = []
    for read in reads:
        batch = splitter.feed(read)
        if batch:
            await pipeline.release(call, batch, out)
    splitter.close()
    await pipeline.end_stream(call, out)
    return out


def _client_view(events: list[SSEEvent]) -> tuple[str, list[Any], list[Any]]:
    """What a client accumulates: the content, the finish reasons, the usage objects."""
    text, finishes, usages = [], [], []
    for ev in events:
        if ev.is_done:
            continue
        obj = orjson.loads(ev.data)
        for choice in obj["choices"]:
            text.append(choice["delta"].get("content") or "")
            if choice.get("finish_reason"):
                finishes.append(choice["finish_reason"])
        if obj.get("usage"):
            usages.append(obj["usage"])
    return "".join(text), finishes, usages


def _assert_clean(text: str) -> None:
    for value in SECRETS:
        assert value not in text
    for i in range(len(AWS_SECRET) - 5):
        assert AWS_SECRET[i : i + 6] not in text, "a 6-character slice of the secret leaked"


def _assert_stream(redactor: Redactor, events: list[SSEEvent]) -> None:
    text, finishes, usages = _client_view(events)
    assert text == _whole(redactor, ANSWER)
    _assert_clean(text)
    assert finishes == ["stop"]
    assert usages == [USAGE]
    assert events[-1].is_done and sum(e.is_done for e in events) == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([1, 3, 7]),
    cuts=st.lists(st.integers(min_value=0, max_value=50_000), max_size=80),
)
@pytest.mark.parametrize("lines", [False, True], ids=["events", "raw-reads"])
async def test_any_cut_of_the_byte_stream_reads_as_whole_text_redaction(
    redactor: Redactor, lines: bool, size, cuts
) -> None:
    raw = _stream_bytes(ANSWER, size)
    _assert_stream(redactor, await _through_pipeline(redactor, _pieces(raw, cuts), lines))


@pytest.mark.parametrize("lines", [False, True], ids=["events", "raw-reads"])
@pytest.mark.parametrize("step", [1, 2, 5, 4096, 1 << 20])
async def test_every_fixed_read_size_reads_as_whole_text_redaction(
    redactor: Redactor, step: int, lines: bool
) -> None:
    """Step 1 and 2 cut inside every multi-byte character and every label; 1 MB is one read."""
    raw = _stream_bytes(ANSWER)
    reads = _pieces(raw, list(range(0, len(raw), step)))
    _assert_stream(redactor, await _through_pipeline(redactor, reads, lines))


async def test_raw_reads_write_what_event_reads_write(redactor: Redactor) -> None:
    """The same reads, as ``RawRead`` lines or as events: the same bytes out (pads aside:
    ``_stream_bytes`` has none), and the content-only chunks of a read become one event."""
    raw = _stream_bytes(ANSWER)
    for reads in ([raw], _pieces(raw, list(range(0, len(raw), 700))), _pieces(raw, [5, 99, 1000, 1001])):
        lines = await _through_pipeline(redactor, reads, raw=True)
        events = await _through_pipeline(redactor, reads)
        assert [e.raw for e in lines] == [e.raw for e in events]
    assert len(await _through_pipeline(redactor, [raw], raw=True)) < 10


async def test_a_read_of_many_deltas_is_released_as_one_event(redactor: Redactor) -> None:
    raw = _stream_bytes(ANSWER)
    one_read = await _through_pipeline(redactor, [raw])
    per_event = await _through_pipeline(redactor, [e + b"\n\n" for e in raw.split(b"\n\n") if e])
    assert _client_view(one_read) == _client_view(per_event)
    assert len(one_read) < 10 < len(_chunks(ANSWER)) <= len(per_event)


async def test_a_stage_failing_mid_read_still_sends_what_came_before(redactor: Redactor) -> None:
    """An event after ``[DONE]`` in the same read: stream trust refuses it, but the answer
    before it (flushed by redaction into the finish chunk) and ``[DONE]`` are still released."""
    raw = _stream_bytes(ANSWER)
    late = b"data: " + orjson.dumps(_chunks("late text")[1]) + b"\n\n"
    pipeline = Pipeline([StreamTrustStage(), RedactOutStage(redactor)])
    call = chat_call([{"role": "user", "content": "hello"}], stream=True)
    for lines in (False, True):
        out: list[SSEEvent] = []
        with pytest.raises(UpstreamError):
            await pipeline.release(call, EventSplitter(raw=lines).feed(raw + late), out)
        _assert_stream(redactor, out)
        call = chat_call([{"role": "user", "content": "hello"}], stream=True)


# -- through the real gateway ---------------------------------------------------------------


def _label_cuts(raw: bytes) -> list[int]:
    """Inside the label, inside the secret, and inside each multi-byte character."""
    at = raw.index(b"Acc")  # the first delta of "SecretAccessKey" that starts with it
    cuts = [at + 1, at + 2]
    for ch in "éà😀—ÜïöéΩ✓":
        i = raw.find(ch.encode())
        if i >= 0:
            cuts += [i + k for k in range(1, len(ch.encode()))]
    return cuts


@pytest.mark.parametrize(
    ("how", "delay_s"),
    [("one write", 0.0), ("13-byte writes", 0.0005), ("cuts in labels and characters", 0.001)],
)
def test_the_sdk_reads_whole_text_redaction_whatever_the_upstream_writes(gw, upstream, how, delay_s) -> None:
    raw = _stream_bytes(ANSWER)
    if how == "one write":
        pieces = [raw]
    elif how == "13-byte writes":
        pieces = _pieces(raw, list(range(0, len(raw), 13)))
    else:
        rng = random.Random(16)
        pieces = _pieces(raw, _label_cuts(raw) + [rng.randrange(len(raw)) for _ in range(30)])
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    upstream.script_answer(events=pieces, done=False, delay_s=delay_s)
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "the config?"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    upstream.script_answer(
        {
            "id": "chatcmpl-w",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-test",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
            ],
            "usage": USAGE,
        }
    )
    whole = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "again"}])
    assert text == whole.choices[0].message.content
    _assert_clean(text)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == USAGE["total_tokens"]


def test_raw_reads_keep_the_usage_rules_and_the_provider_error(gw, upstream) -> None:
    """Redaction has the provider hand reads over raw (``sse.RawRead``): the usage-only chunk
    is still read and dropped for a client that did not ask for it, and an error event from
    the provider after some text still ends the stream with the gateway's error."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    raw = _stream_bytes(ANSWER)
    upstream.script_answer(events=[raw], done=False)
    chunks = list(
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "the config?"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    _assert_clean("".join(c.choices[0].delta.content or "" for c in chunks))
    text = raw[: raw.index(b"data: ", 2000)]
    error = b'data: {"error":{"message":"overloaded 4111 1111 1111 1111","type":"server_error"}}\n\n'
    upstream.script_answer(events=[text + error], done=False)
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for c in client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "again?"}], stream=True
        ):
            seen.append(c.choices[0].delta.content or "" if c.choices else "")
    assert "4111" not in str(caught.value) and "4111" not in "".join(seen)


@pytest.mark.parametrize("lines", [False, True], ids=["events", "raw-reads"])
async def test_the_last_text_goes_out_with_its_read_when_the_finish_follows(
    redactor: Redactor, lines: bool
) -> None:
    """A read whose content run is followed by its choice's finish chunk releases the rest with
    the run (one analysis, not a second for the finish chunk's flush); a finish chunk with text
    of its own, or another choice's, does not end the run's channel."""
    raw = _stream_bytes(ANSWER)
    events = await _through_pipeline(redactor, [raw], lines)
    _assert_stream(redactor, events)
    finish = next(e for e in events if b'"finish_reason":"stop"' in e.data)
    assert orjson.loads(finish.data)["choices"][0]["delta"] == {}
    chunks = _chunks(ANSWER)
    chunks[-2]["choices"][0]["delta"] = {"content": " and 4111 1111 1111 1111"}  # text with the finish
    tail = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
    for last in (chunks[-2], {**chunks[-2], "choices": [{"index": 1, "delta": {}, "finish_reason": "stop"}]}):
        body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in [*chunks[:-2], last, chunks[-1]])
        out = await _through_pipeline(redactor, [body + b"data: [DONE]\n\n"], lines)
        text = _client_view(out)[0]
        if last is chunks[-2]:
            assert text == _whole(redactor, tail) and "4111" not in text
        else:
            assert text == _whole(redactor, ANSWER)
