"""OpenAI's ``obfuscation`` pad, on every chunk of a real stream: text the client receives,
so it never passes as the upstream wrote it. A string becomes a fresh random pad of the same
length (``gateway/redaction/pad.py``), on the unparsed path (``chat_splice``, where a
different pad in every chunk must not push each chunk to the parsed path) exactly as on the
parsed path; anything else is scanned. The streamed text is still the whole-text redaction at
any read cut, and a secret or PII put in the pad never reaches the client."""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint, ModelResponse
from gateway.errors import UpstreamError
from gateway.pipeline import Pipeline
from gateway.redaction.chat_events import ChatRewriter
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactOutStage
from gateway.sse import EventSplitter, RawRead, SSEEvent
from tests.redaction.conftest import chat_call
from tests.redaction.test_redaction_stream_fastpath import ANSWER as FAST_ANSWER
from tests.redaction.test_redaction_stream_fastpath import _run
from tests.redaction.test_redaction_stream_reads import (
    ANSWER,
    USAGE,
    _assert_stream,
    _pieces,
    _through_pipeline,
)

ENVELOPE = {
    "id": "chatcmpl-o",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "gpt-test",
    "service_tier": "default",
    "system_fingerprint": "fp_o",
}
SECRET_PADS = [
    "AKIAIOSFODNN7EXAMPLE",
    "4111 1111 1111 1111",
    "ana.lopez@example.com",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1w",
]
_OBF = re.compile(rb'"obfuscation":"([^"]*)"')


def _pads(rng: random.Random, n: int) -> list[str]:
    """What OpenAI sends (random letters and digits, 1-12 long), an empty pad, a non-ASCII one."""
    out = ["".join(rng.choices(string.ascii_letters + string.digits, k=rng.randint(1, 12))) for _ in range(n)]
    if n > 4:
        out[2], out[4] = "", "é—😀x"
    return out


def _real_chunks(text: str, size: int, pads: list[str]) -> list[dict[str, Any]]:
    """Chunks as OpenAI writes them: full envelope, ``logprobs: null``, a pad on each."""

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    out = [{**ENVELOPE, "choices": choice({"role": "assistant", "content": "", "refusal": None})}]
    out += [
        {**ENVELOPE, "choices": choice({"content": text[i : i + size]})} for i in range(0, len(text), size)
    ]
    out.append({**ENVELOPE, "choices": choice({}, "stop")})
    out.append({**ENVELOPE, "choices": [], "usage": USAGE})
    for n, chunk in enumerate(out):
        chunk["obfuscation"] = pads[n % len(pads)]
    return out


def _raw(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def _written_pads(events: list[SSEEvent] | bytes) -> list[bytes]:
    raw = events if isinstance(events, bytes) else b"".join(e.raw for e in events)
    return _OBF.findall(raw)


def _assert_fresh(written: list[bytes], upstream: list[str]) -> None:
    """Every pad written is letters and digits, and none is one the upstream sent."""
    sent = {p.encode() for p in upstream if len(p) >= 6}
    for pad in written:
        assert pad == b"" or pad.isalnum(), pad
        assert pad not in sent


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    size=st.sampled_from([1, 3, 7]),
    cuts=st.lists(st.integers(min_value=0, max_value=60_000), max_size=80),
)
@pytest.mark.parametrize("lines", [False, True], ids=["events", "raw-reads"])
async def test_real_chunks_at_any_read_cut_read_as_whole_text_redaction(
    redactor: Redactor, lines: bool, size, cuts
) -> None:
    pads = _pads(random.Random(size), 40)
    raw = _raw(_real_chunks(ANSWER, size, pads))
    events = await _through_pipeline(redactor, _pieces(raw, cuts), lines)
    _assert_stream(redactor, events)
    _assert_fresh(_written_pads(events), pads)


async def test_a_read_of_real_chunks_is_released_as_one_event(redactor: Redactor) -> None:
    """A different pad in every chunk must not defeat the splice: one read, one event."""
    chunks = _real_chunks(ANSWER, 3, _pads(random.Random(1), 50))
    events = await _through_pipeline(redactor, [_raw(chunks)])
    _assert_stream(redactor, events)
    assert len(events) < 10 < len(chunks)


def _masked(raw: bytes) -> bytes:
    return _OBF.sub(lambda m: b'"obfuscation":"' + b"#" * len(m[1]) + b'"', raw)


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("step", [1, 3, 17])
def test_fast_path_writes_what_the_parsed_path_writes_with_a_pad_per_chunk(step: int, compact: bool) -> None:
    """Event for event: the same bytes but for the pads, which are fresh, of the upstream's
    length (in characters) each, on both paths."""
    redactor = build(RedactionSettings())
    try:
        pads = _pads(random.Random(step), 30)
        chunks = _real_chunks(FAST_ANSWER, step, pads)
        sep = (",", ":") if compact else (", ", ": ")
        raw = b"".join(
            b"data: " + json.dumps(c, separators=sep, ensure_ascii=False).encode() + b"\n\n" for c in chunks
        )
        fast = _run(redactor, raw, parse_first=False)
        slow = _run(redactor, raw, parse_first=True)
        assert _masked(fast) == _masked(slow)
        want = [len(c["obfuscation"]) for c in chunks]
        assert [len(p) for p in _written_pads(fast)] == want == [len(p) for p in _written_pads(slow)]
        _assert_fresh(_written_pads(fast), pads)
        assert b"ana.lopez" not in fast and b"4111" not in fast and b"AKIAIOSFODNN7" not in fast
    finally:
        redactor.engine.close()


@pytest.mark.parametrize("lines", [False, True], ids=["events", "raw-reads"])
@pytest.mark.parametrize("one_read", [True, False])
async def test_a_secret_in_the_pad_never_reaches_the_client(
    redactor: Redactor, one_read: bool, lines: bool
) -> None:
    chunks = _real_chunks("Nothing to see here, just words. " * 8, 3, SECRET_PADS)
    raw = _raw(chunks)
    reads = [raw] if one_read else [e + b"\n\n" for e in raw.split(b"\n\n") if e]
    events = await _through_pipeline(redactor, reads, lines)
    out = b"".join(e.raw for e in events)
    for secret in SECRET_PADS:
        assert secret.encode() not in out
    for pad in _written_pads(out):
        assert pad.isalnum() and len(pad) in {len(p) for p in SECRET_PADS}


def _rewrite(redactor: Redactor, raw: bytes, parse_first: bool) -> bytes:
    call = Call("o", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    state = redactor.new_state(call)
    rw = ChatRewriter(
        lambda j, p, t=False: redactor.new_channel(state, json=j, path=p, tool=t),
        lambda text, j, p, t=False, u=False: redactor.redact_output_text(text, state, json=j, path=p),
    )
    out = []
    for ev in [*EventSplitter().feed(raw), SSEEvent.done()]:
        if parse_first:
            _ = ev.json
        out.extend(e.raw for e in rw.on_event(ev))
    return b"".join(out)


def _rewrite_read(redactor: Redactor, raw: bytes, lines: bool) -> bytes:
    """``raw`` as one upstream read (``ChatRewriter.on_batch``), as ``RawRead`` lines or events."""
    call = Call("o", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    state = redactor.new_state(call)
    rw = ChatRewriter(
        lambda j, p, t=False: redactor.new_channel(state, json=j, path=p, tool=t),
        lambda text, j, p, t=False, u=False: redactor.redact_output_text(text, state, json=j, path=p),
    )
    out: list[SSEEvent] = []
    read = EventSplitter(raw=lines).feed(raw + b"data: [DONE]\n\n")
    assert (type(read) is RawRead) == lines
    assert rw.on_batch(read, out)
    return b"".join(e.raw for e in out)


def test_a_pad_that_is_not_a_string_is_scanned() -> None:
    redactor = build(RedactionSettings())
    try:
        chunks = _real_chunks("Plain words only. " * 4, 3, ["abc"])
        chunks[3]["obfuscation"] = {"note": "card 4111 1111 1111 1111"}
        chunks[5]["choices"][0]["delta"]["obfuscation"] = "AKIAIOSFODNN7EXAMPLE"
        raw = _raw(chunks)
        for parse_first in (False, True):
            out = _rewrite(redactor, raw, parse_first)
            assert b"4111 1111 1111 1111" not in out and b"AKIAIOSFODNN7EXAMPLE" not in out
            assert b"<CREDIT_CARD_1>" in out
    finally:
        redactor.engine.close()


@pytest.mark.parametrize(
    "pad",
    [b'a\\"b', b"a\\u0041b", b"a\\\\b", b"tab\\tx"],
)
def test_a_pad_with_an_escape_takes_the_parsed_path_and_is_replaced(pad: bytes) -> None:
    """The splice takes pads without escapes only; any other goes to the parsed path, which
    writes a fresh pad of the decoded length."""
    redactor = build(RedactionSettings())
    try:
        raw = _raw(_real_chunks(FAST_ANSWER, 3, ["abcdef", "x1", "Q"]))
        events = raw.split(b"\n\n")
        events[6] = events[6].replace(b'"obfuscation":"', b'"obfuscation":"' + pad + b"", 1)
        raw = b"\n\n".join(events)
        fast, slow = _rewrite(redactor, raw, False), _rewrite(redactor, raw, True)
        assert _masked(fast) == _masked(slow)
        assert pad not in fast
        lines, events = _rewrite_read(redactor, raw, True), _rewrite_read(redactor, raw, False)
        assert _masked(lines) == _masked(events) and pad not in lines
    finally:
        redactor.engine.close()


def test_a_pad_that_is_not_utf8_is_refused_on_both_paths() -> None:
    redactor = build(RedactionSettings())
    try:
        raw = _raw(_real_chunks(FAST_ANSWER, 3, ["abcdef", "x1", "Q"]))
        events = raw.split(b"\n\n")
        events[7] = events[7].replace(b'"obfuscation":"', b'"obfuscation":"\xff', 1)
        raw = b"\n\n".join(events)
        for parse_first in (False, True):
            with pytest.raises(UpstreamError):
                _rewrite(redactor, raw, parse_first)
        for lines in (False, True):
            with pytest.raises(UpstreamError):
                _rewrite_read(redactor, raw, lines)
    finally:
        redactor.engine.close()


async def test_responses_events_get_a_fresh_pad(redactor: Redactor) -> None:
    call = Call("r", Endpoint.RESPONSES, {"model": "m", "input": "hi"}, {}, stream=True)
    pipeline = Pipeline([RedactOutStage(redactor)])
    text = "Reach me at ana.lopez@example.com any time, or not at all, as you like it."
    events = []
    for n, i in enumerate(range(0, len(text), 4)):
        pad = SECRET_PADS[n % len(SECRET_PADS)]
        delta = {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": text[i : i + 4],
            "sequence_number": n + 1,
            "obfuscation": pad,
        }
        events.append(b"event: response.output_text.delta\ndata: " + orjson.dumps(delta) + b"\n\n")
    done = {
        "type": "response.output_text.done",
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "text": text,
        "sequence_number": 99,
    }
    events.append(b"event: response.output_text.done\ndata: " + orjson.dumps(done) + b"\n\n")
    out: list[SSEEvent] = []
    await pipeline.release(call, EventSplitter().feed(b"".join(events)), out)
    await pipeline.end_stream(call, out)
    raw = b"".join(e.raw for e in out)
    for secret in SECRET_PADS:
        assert secret.encode() not in raw
    assert all(p.isalnum() for p in _written_pads(raw)) and _written_pads(raw)


async def test_a_pad_in_a_whole_answer_is_scanned(redactor: Redactor) -> None:
    """No whole answer carries a pad; one that does has it scanned like any text (the table's
    ``pad`` rows: repadded in streams, scanned elsewhere)."""
    answer = {
        "id": "chatcmpl-w",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "obfuscation": "card 4111 1111 1111 1111",
    }
    response = ModelResponse(200, {}, json=answer)
    await RedactOutStage(redactor).on_response(chat_call([{"role": "user", "content": "hi"}]), response)
    assert response.json["obfuscation"] == "card <CREDIT_CARD_1>"
