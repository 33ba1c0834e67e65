"""An upstream that crafts its chunks to slip text past the raw-read path (``sse.RawRead``,
``Stage.passes_read``, ``Splice.take_lines``): the splice learns a shape from a plain
content-only chunk, then later chunks of nearly that shape carry a secret somewhere else (a
second choice, ``tool_calls``, ``reasoning_content``, ``refusal``, ``logprobs``, an escaped or
duplicated key, other spacing, a split or multi-line ``data:`` event, CRLF framing). Whatever
the trick, through the real gateway with the openai SDK the client must never read the secret:
either it is redacted or the stream is refused (logprobs whose tokens do not spell the answer
are dropped: ``logprob_check.py``)."""

from __future__ import annotations

from typing import Any

import openai
import orjson
import pytest

from tests.harness import TEST_KEY

EMAIL = "ana.lopez@example.com"
HEAD = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-test"}


def _chunk(choice: dict[str, Any], **extra: Any) -> bytes:
    return orjson.dumps({**HEAD, "choices": [choice], **extra})


def _content(text: str, index: int = 0) -> bytes:
    return _chunk({"index": index, "delta": {"content": text}, "finish_reason": None})


def _plain_line(text: str) -> bytes:
    return b"data: " + _content(text) + b"\n\n"


#: What each attack sends after a few plain content chunks (which teach the splice its shape).
_SHAPE = _content("abc")
_PRE, _POST = _SHAPE.split(b"abc")
ATTACKS: dict[str, bytes] = {
    "second choice": b"data: "
    + orjson.dumps(
        {
            **HEAD,
            "choices": [
                {"index": 0, "delta": {"content": "ok "}, "finish_reason": None},
                {"index": 1, "delta": {"content": EMAIL}, "finish_reason": None},
            ],
        }
    )
    + b"\n\n",
    "choice index 1 alone": b"data: " + _content(EMAIL, index=1) + b"\n\n",
    "tool_calls arguments": b"data: "
    + _chunk(
        {
            "index": 0,
            "delta": {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "send", "arguments": '{"to":"' + EMAIL + '"}'},
                    }
                ]
            },
            "finish_reason": None,
        }
    )
    + b"\n\n",
    "reasoning_content": b"data: "
    + _chunk({"index": 0, "delta": {"reasoning_content": EMAIL}, "finish_reason": None})
    + b"\n\n",
    "refusal": b"data: " + _chunk({"index": 0, "delta": {"refusal": EMAIL}, "finish_reason": None}) + b"\n\n",
    "content and a sibling key": b"data: "
    + _chunk({"index": 0, "delta": {"content": "x", "reasoning": EMAIL}, "finish_reason": None})
    + b"\n\n",
    "escaped key": b"data: "
    + _PRE.replace(b'"content"', b'"cont\\u0065nt"')
    + EMAIL.encode()
    + _POST
    + b"\n\n",
    "escaped content chars": b"data: "
    + _PRE
    + EMAIL.replace("@", "\\u0040").replace(".", "\\u002e").encode()
    + _POST
    + b"\n\n",
    "duplicate content key": b"data: " + _PRE + b'x","content":"' + EMAIL.encode() + _POST + b"\n\n",
    "extra whitespace": b"data:  " + _PRE + EMAIL.encode() + _POST + b"\n\n",
    "space inside": b"data: " + _PRE.replace(b'"delta":', b'"delta" :') + EMAIL.encode() + _POST + b"\n\n",
    "logprobs": b"data: "
    + _chunk(
        {
            "index": 0,
            "delta": {"content": "y"},
            "logprobs": {"content": [{"token": EMAIL, "logprob": -0.1, "bytes": None, "top_logprobs": []}]},
            "finish_reason": None,
        }
    )
    + b"\n\n",
    "obfuscation holds it": b"data: " + _SHAPE[:-1] + b',"obfuscation":"' + EMAIL.encode() + b'"}\n\n',
    "multi-line data event": b"data: "
    + _PRE
    + EMAIL[:8].encode()
    + b"\ndata: "
    + EMAIL[8:].encode()
    + _POST
    + b"\n\n",
    "CRLF framing": b"data: " + _PRE + EMAIL.encode() + _POST + b"\r\n\r\n",
    "trailing garbage after object": b"data: " + _SHAPE + b" " + EMAIL.encode() + b"\n\n",
    "id field line": b"id: " + EMAIL.encode() + b"\ndata: " + _content("z") + b"\n\n",
    "event name": b"event: " + EMAIL.encode() + b"\ndata: " + _content("z") + b"\n\n",
    "no choices, a field of its own": b"data: " + orjson.dumps({**HEAD, "note": EMAIL}) + b"\n\n",
    "choices null": b"data: " + orjson.dumps({**HEAD, "choices": None, "note": EMAIL}) + b"\n\n",
    "choices a string": b"data: " + orjson.dumps({**HEAD, "choices": EMAIL}) + b"\n\n",
    "data a JSON string": b"data: " + orjson.dumps(EMAIL) + b"\n\n",
    "data a JSON list": b"data: " + orjson.dumps([{"content": EMAIL}]) + b"\n\n",
    "escaped error key": b'data: {"err\\u006fr":{"message":"' + EMAIL.encode() + b'","type":"x"}}\n\n',
    "usage-only chunk with text": b"data: "
    + orjson.dumps({**HEAD, "choices": [], "usage": {"total_tokens": 1, "note": EMAIL}})
    + b"\n\n",
    # A value split across its choice's end: the first half goes out at the finish; the rest
    # must not complete it (the client's SDK user joins the deltas).
    "text after the finish": _plain_line(EMAIL[:13])
    + b"data: "
    + _chunk({"index": 0, "delta": {}, "finish_reason": "stop"})
    + b"\n\n"
    + _plain_line(EMAIL[13:]),
}


def _finish() -> bytes:
    return b"data: " + _chunk({"index": 0, "delta": {}, "finish_reason": "stop"}) + b"\n\n"


@pytest.mark.parametrize("split", ["one read", "attack in its own read", "byte by byte"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_crafted_chunk_never_carries_a_secret_past_redaction(gw, upstream, attack: str, split: str) -> None:
    plain = b"".join(_plain_line(t) for t in ("Hel", "lo ", "the", "re "))
    evil = ATTACKS[attack]
    after = _plain_line(" bye") + _finish() + b"data: [DONE]\n\n"
    if split == "one read":
        pieces = [plain + evil + after]
    elif split == "attack in its own read":
        pieces = [plain, evil, after]
    else:
        whole = plain + evil + after
        pieces = [whole[i : i + 1] for i in range(len(whole))]
    upstream.script_answer(events=pieces, done=False, delay_s=0.0005 if split != "byte by byte" else 0.0)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    seen: list[str] = []
    joined: dict[int, str] = {}  # what the client's SDK user reads: each choice's deltas joined
    try:  # the wire as the SDK reads it: a chunk the SDK's model could not hold is seen too
        with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        ) as response:
            for line in response.iter_lines():
                seen.append(line)
                chunk = orjson.loads(line[6:]) if line.startswith("data: {") else None
                choices = chunk.get("choices") if isinstance(chunk, dict) else None
                for choice in choices if isinstance(choices, list) else []:
                    delta = choice.get("delta") if isinstance(choice, dict) else None
                    text = delta.get("content") if isinstance(delta, dict) else None
                    if isinstance(text, str):
                        joined[choice.get("index", 0)] = joined.get(choice.get("index", 0), "") + text
    except openai.APIError as exc:  # refused: fine, as long as nothing leaked before or in it
        seen.append(str(exc))
    read = "".join(seen) + "\n".join(joined.values())
    assert EMAIL not in read and EMAIL.replace("@", "\\u0040") not in read, (
        f"{attack} / {split}: {read[:2000]}"
    )


def test_a_refusal_never_quotes_the_upstreams_text(gw, upstream) -> None:
    """Stream trust refuses a Responses event whose ``event:`` name is not its type, a delta for
    an item of another type, or an event of any type for an item never added; its message names what was wrong, never the upstream's own
    text (an address as the name reached the client in the error, past redaction)."""
    delta = {"type": "response.output_text.delta", "item_id": "m", "output_index": 0, "content_index": 0}
    raw = b"event: " + EMAIL.encode() + b"\ndata: " + orjson.dumps({**delta, "delta": "hi"}) + b"\n\n"
    added = {"type": "response.output_item.added", "output_index": 0, "item": {"type": EMAIL, "id": "m"}}
    odd_item = b"".join(
        b"event: " + ev["type"].encode() + b"\ndata: " + orjson.dumps(ev) + b"\n\n"  # type: ignore[attr-defined]
        for ev in (added, {**delta, "delta": "hi"})
    )
    typed = {"type": "response." + EMAIL, "output_index": 7}  # any response.* type, no such item
    unknown = b"data: " + orjson.dumps(typed) + b"\n\n"
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    for events in ([raw], [odd_item], [unknown]):
        upstream.script_answer(events=events, done=False)
        seen: list[str] = []
        try:
            with client.responses.with_streaming_response.create(
                model="gpt-test", input="hi", stream=True
            ) as r:
                seen.extend(r.iter_lines())
        except openai.APIError as exc:
            seen.append(str(exc))
        read = "\n".join(seen)
        assert "inconsistent" in read and EMAIL not in read, read
