"""Delta fields no rule names, nested below the first level: a value split across chunks is
joined before it is analysed (as a client joins it), at any split offset; deeper than the
bound, the stream is refused rather than passed unjoined."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from gateway.errors import UpstreamError
from gateway.pipeline import Pipeline
from gateway.redaction.chat_events import MAX_NESTED_DEPTH
from gateway.sse import SSEEvent
from tests.redaction.conftest import chat_call

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
TEXT = f"the key {KEY} was in the logs"
EXPECTED = "the key <OPENAI_API_KEY_1> was in the logs"
#: Keys a client keeps rather than concatenates (they repeat in every chunk).
_STRUCTURE = ("index", "type")


def _chunk(delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return SSEEvent.parse(b"data: " + orjson.dumps(body) + b"\n\n")


def _join(acc: Any, value: Any) -> Any:
    """What a client makes of a field's deltas: strings appended, objects joined key by key,
    list elements joined by their ``index`` (else by position)."""
    if isinstance(value, str):
        return (acc if isinstance(acc, str) else "") + value
    if isinstance(value, dict):
        acc = acc if isinstance(acc, dict) else {}
        for k, v in value.items():
            if k in _STRUCTURE and not isinstance(v, (dict, list)):
                acc.setdefault(k, v)
            else:
                acc[k] = _join(acc.get(k), v)
        return acc
    if isinstance(value, list):
        acc = acc if isinstance(acc, list) else []
        for pos, el in enumerate(value):
            slot = el.get("index", pos) if isinstance(el, dict) else pos
            for i, have in enumerate(acc):
                if (have.get("index", i) if isinstance(have, dict) else i) == slot:
                    acc[i] = _join(have, el)
                    break
            else:
                acc.append(_join(None, el))
        return acc
    return value


async def _client_view(stages, deltas: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": "hi"}], stream=True)
    await redact_in.on_request(call)
    events = [*(_chunk(d) for d in deltas), _chunk({}, "stop")]

    async def gen() -> AsyncIterator[SSEEvent]:
        for e in [*events, SSEEvent.done()]:
            yield e

    out = [e async for e in Pipeline([redact_out]).iter_stream(call, gen())]
    joined: dict[str, Any] = {}
    for e in out:
        if not e.is_done:
            for k, v in e.json["choices"][0]["delta"].items():
                joined[k] = _join(joined.get(k), v)
    return joined, b"".join(e.raw for e in out)


#: (shape: text -> the delta carrying it, path from the delta to the joined text)
SHAPES: list[tuple[Callable[[str], dict[str, Any]], Callable[[dict[str, Any]], Any]]] = [
    (lambda t: {"provider_meta": {"trace": {"note": t}}}, lambda d: d["provider_meta"]["trace"]["note"]),
    (
        lambda t: {"x_details": [{"index": 0, "type": "t", "body": {"text": t}}]},
        lambda d: d["x_details"][0]["body"]["text"],
    ),
    (lambda t: {"x_lines": {"lines": [t]}}, lambda d: d["x_lines"]["lines"][0]),
    (
        lambda t: {"x_deep": {"a": [{"index": 3, "b": {"c": t}}]}},
        lambda d: d["x_deep"]["a"][0]["b"]["c"],
    ),
]


@pytest.mark.parametrize("shape", range(len(SHAPES)))
async def test_a_value_split_at_every_offset_below_the_first_level_never_leaks(stages, shape: int) -> None:
    make, read = SHAPES[shape]
    for cut in range(len(TEXT) + 1):
        pieces = [p for p in (TEXT[:cut], TEXT[cut:]) if p]
        joined, raw = await _client_view(stages, [make(p) for p in pieces])
        assert KEY[8:20].encode() not in raw, cut
        assert read(joined) == EXPECTED, (cut, joined)


async def test_one_character_chunks_below_the_first_level(stages) -> None:
    make, read = SHAPES[1]
    joined, raw = await _client_view(stages, [make(c) for c in TEXT])
    assert KEY[8:20].encode() not in raw
    assert read(joined) == EXPECTED
    assert joined["x_details"][0]["type"] == "t", "structure keys go out with the flushed text"


async def test_deeper_structure_keys_are_scanned_whole_not_held(stages) -> None:
    joined, raw = await _client_view(stages, [{"x_meta": {"a": {"type": f"k {KEY}", "id": "abc"}}}])
    assert KEY.encode() not in raw
    assert joined["x_meta"]["a"]["id"] == "abc"


async def test_nesting_past_the_bound_is_refused(stages) -> None:
    deep: Any = "x"
    for _ in range(MAX_NESTED_DEPTH + 1):
        deep = {"k": deep}
    with pytest.raises(UpstreamError, match="nested deeper"):
        await _client_view(stages, [{"x_deep": deep}])
    shallow: Any = "the key is fine"
    for _ in range(MAX_NESTED_DEPTH - 1):
        shallow = {"k": shallow}
    joined, _ = await _client_view(stages, [{"x_ok": shallow}])
    assert orjson.dumps(joined["x_ok"]).count(b"the key is fine") == 1
