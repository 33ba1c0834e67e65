"""The unparsed path for content-only chat chunks (``chat_splice.first_chunk``) must write
exactly what the parsed path writes, event for event, and fall back for any other shape."""

from __future__ import annotations

import json
import re

from gateway.call import Call, Endpoint
from gateway.redaction.chat_events import ChatRewriter
from gateway.redaction.chat_splice import CONTENT_CHUNK
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.sse import EventSplitter, RawRead, SSEEvent

ANSWER = (
    "Sure. Write to ana.lopez@example.com or call +44 20 7946 0958,\nthe card is 4111 1111 1111 1111. "
    'Quotes " and \\ backslashes, tabs\tand é 😀 stay; my key is AKIAIOSFODNN7EXAMPLE ok.\n'
    "Reach <EMAIL_ADDRESS_1> today. Done."
)
HEAD = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1700000000, "model": "m-1"}


def _chunks(extra: dict, choice_extra: dict, step: int) -> list[dict]:
    out = [
        {
            **HEAD,
            **extra,
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    **choice_extra,
                    "finish_reason": None,
                }
            ],
        }
    ]
    for i in range(0, len(ANSWER), step):
        out.append(
            {
                **HEAD,
                **extra,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": ANSWER[i : i + step]},
                        **choice_extra,
                        "finish_reason": None,
                    }
                ],
            }
        )
    out.append({**HEAD, **extra, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    return out


def _rewriter(redactor: Redactor) -> ChatRewriter:
    call = Call("fast", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    state = redactor.new_state(call)
    state.vault.placeholder("EMAIL_ADDRESS", "own@example.org", restorable=True)
    return ChatRewriter(lambda j, p, t=False: redactor.new_channel(state, json=j, path=p, tool=t))


def _run(redactor: Redactor, raw: bytes, parse_first: bool) -> bytes:
    rw = _rewriter(redactor)
    out = []
    for ev in [*EventSplitter().feed(raw), SSEEvent.done()]:
        if parse_first:
            _ = ev.json  # forces the parsed path
        out.extend(e.raw for e in rw.on_event(ev))
    return b"".join(out)


def test_fast_path_writes_what_the_parsed_path_writes() -> None:
    redactor = build(RedactionSettings())
    try:
        shapes = [
            ({}, {}),
            ({"system_fingerprint": None}, {"logprobs": None}),
            ({"service_tier": "default", "system_fingerprint": "fp_1"}, {"logprobs": None}),
        ]
        for extra, choice_extra in shapes:
            for step in (1, 3, 17):
                for compact in (True, False):
                    events = _chunks(extra, choice_extra, step)
                    if compact:
                        raw = b"".join(
                            b"data: "
                            + json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode()
                            + b"\n\n"
                            for e in events
                        )
                    else:
                        raw = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
                    fast = _run(redactor, raw, parse_first=False)
                    slow = _run(redactor, raw, parse_first=True)
                    assert fast == slow, (extra, step, compact)
                    assert b"ana.lopez" not in fast and b"4111" not in fast and b"AKIAIOSFODNN7" not in fast
                    assert b"own@example.org" in fast  # the caller's placeholder restored
    finally:
        redactor.engine.close()


def test_other_shapes_take_the_parsed_path() -> None:
    others = [
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x","content":"y"},"finish_reason":null}]}',
        '{"id":"a","id":"b","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}],"extra":"4111 1111 1111 1111"}',
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null},{"index":1,"delta":{"content":"y"},"finish_reason":null}]}',
        '{"id":"a\\u0041","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',
        '{"id":"a","object":"chat.completion.chunk","created":01,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}',
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x\n"},"finish_reason":null}]}',
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"refusal":"x"},"finish_reason":null}]}',
    ]
    for data in others:
        assert CONTENT_CHUNK.fullmatch(data) is None, data
    rw = _rewriter(build(RedactionSettings()))
    bad_escape = SSEEvent.parse(
        b'data: {"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"\\ud800"},"finish_reason":null}]}\n\n'
    )
    assert rw._content_chunk(bad_escape) is None
    not_utf8 = SSEEvent.parse(
        b'data: {"id":"\xff","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n'
    )
    assert rw._content_chunk(not_utf8) is None


def test_changing_shapes_mid_stream_match_the_parsed_path() -> None:
    """Chunks whose envelope changes (an occasional ``obfuscation``, a second choice, a refusal)
    between same-shape chunks. (An escape orjson cannot decode is refused: see
    test_redaction_unparseable_stream_events.py.)"""
    redactor = build(RedactionSettings())
    try:
        events = []
        for n, i in enumerate(range(0, len(ANSWER), 4)):
            piece = ANSWER[i : i + 4]
            chunk = {
                **HEAD,
                "choices": [{"index": n % 2, "delta": {"content": piece}, "finish_reason": None}],
            }
            if n % 7 == 3:
                chunk["obfuscation"] = "x" * (n % 5)
            if n % 11 == 5:
                chunk["choices"][0]["delta"] = {"refusal": piece}
            events.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
        events.append(
            b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"m-1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
        )
        raw = b"".join(events)
        # Every pad is written fresh (same length): compare the rest byte for byte.
        pads = re.compile(rb'"obfuscation":"[^"]*"')
        fast, slow = (_run(redactor, raw, parse_first=p) for p in (False, True))
        assert pads.findall(fast) != pads.findall(raw) or not pads.findall(raw)
        assert pads.sub(b"", fast) == pads.sub(b"", slow)
    finally:
        redactor.engine.close()


def _run_read(redactor: Redactor, raw: bytes, lines: bool) -> bytes:
    """``raw`` as one upstream read through ``on_batch``: ``RawRead`` lines, or events."""
    rw = _rewriter(redactor)
    out: list[SSEEvent] = []
    read = EventSplitter(raw=lines).feed(raw + b"data: [DONE]\n\n")
    assert (type(read) is RawRead) == lines
    assert rw.on_batch(read, out)
    return b"".join(e.raw for e in out)


def test_raw_read_lines_write_what_events_write() -> None:
    """Every shape above, and shapes changing mid-stream, in one read: spliced from the
    lines or from the events, the same bytes (pads aside)."""
    redactor = build(RedactionSettings())
    pads = re.compile(rb'"obfuscation":"[^"]*"')
    try:
        for extra, choice_extra in [
            ({}, {}),
            ({"service_tier": "default", "system_fingerprint": "fp_1"}, {"logprobs": None}),
        ]:
            for step in (1, 3, 17):
                for sep in ((",", ":"), (", ", ": ")):
                    raw = b"".join(
                        b"data: " + json.dumps(e, separators=sep, ensure_ascii=False).encode() + b"\n\n"
                        for e in _chunks(extra, choice_extra, step)
                    )
                    lines = _run_read(redactor, raw, True)
                    assert lines == _run_read(redactor, raw, False)
                    assert b"ana.lopez" not in lines and b"4111" not in lines and b"own@example.org" in lines
        mixed = []
        for n, i in enumerate(range(0, len(ANSWER), 4)):
            chunk = {**HEAD, "choices": [{"index": n % 2, "delta": {"content": ANSWER[i : i + 4]}}]}
            if n % 7 == 3:
                chunk["obfuscation"] = "x" * (n % 5)
            if n % 11 == 5:
                chunk["choices"][0]["delta"] = {"refusal": ANSWER[i : i + 4]}
            mixed.append(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
        raw = b"".join(mixed)
        assert pads.sub(b"", _run_read(redactor, raw, True)) == pads.sub(b"", _run_read(redactor, raw, False))
    finally:
        redactor.engine.close()
