"""SSE framing survives any network chunking and reaches the client byte-for-byte."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sse import SSEEvent, iter_event_batches
from tests.harness import TEST_KEY

EVENTS = [
    b'data: {"id":"1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'event: response.output_text.delta\ndata: {"delta":"lo","sequence_number":3}\n\n',
    b": keep-alive comment\n\n",
    b'data: {"multi":\ndata: "line"}\r\n\r\n',
    b"data: [DONE]\n\n",
]


async def _collect(chunks: list[bytes]) -> list[SSEEvent]:
    async def gen():
        for c in chunks:
            yield c

    return [e async for batch in iter_event_batches(gen()) for e in batch]


def _cut(stream: bytes, sizes: list[int]) -> list[bytes]:
    """``stream`` as network reads of these sizes (the rest in one last read)."""
    chunks, pos = [], 0
    for size in sizes:
        if pos >= len(stream):
            break
        chunks.append(stream[pos : pos + size])
        pos += size
    if pos < len(stream):
        chunks.append(stream[pos:])
    return chunks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
async def test_any_chunking_yields_the_same_events_with_the_same_raw_bytes(cuts):
    stream = b"".join(EVENTS)
    events = await _collect(_cut(stream, cuts))
    assert [e.raw for e in events] == EVENTS
    assert events[1].event == "response.output_text.delta"
    assert events[3].data == b'{"multi":\n"line"}'
    assert events[-1].is_done


LF_EVENTS = [
    b'data: {"id":"1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'\ndata: {"after":"an extra blank line"}\n\n',
    b'event: response.output_text.delta\ndata: {"delta":"lo"}\n\n',
    b": keep-alive comment\n\n",
    b"data: [DONE]\n\n",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60))
async def test_lf_framing_split_at_any_read_boundary_yields_the_same_events(cuts):
    stream = b"".join(LF_EVENTS)
    events = await _collect(_cut(stream, cuts))
    assert [e.raw for e in events] == LF_EVENTS
    assert events[1].json == {"after": "an extra blank line"}
    assert events[2].event == "response.output_text.delta"
    assert events[-1].is_done


async def test_a_stream_ending_mid_event_is_an_error():
    import pytest

    from gateway.sse import SSEParseError

    with pytest.raises(SSEParseError):
        await _collect([b'data: {"a":1}\n\n', b'data: {"cut'])


def test_stream_bytes_through_the_gateway_equal_what_the_upstream_sends(gateway, upstream):
    body = {
        "model": "gpt-test",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "byte exact please"}],
    }
    headers = {"authorization": f"Bearer {TEST_KEY}"}
    for _ in range(3):  # `created` is the wall clock: retry if a second boundary fell between
        through = httpx.post(gateway.base_url + "/chat/completions", json=body, headers=headers).content
        sent = upstream.requests[-1].json
        direct = httpx.post(
            upstream.base_url + "/chat/completions", json=sent, headers={"authorization": "Bearer x"}
        ).content
        if through == direct:
            break
    assert through == direct
    assert through.endswith(b"data: [DONE]\n\n")


ONE_LINE_EVENTS = [
    b'data: {"id":"1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b": keep-alive comment\n\n",
    b"event: ping\n\n",
    b'data: {"id":"2","choices":[{"delta":{"content":"lo"}}]}\n\n',
    b"data: [DONE]\n\n",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=60), min_size=1, max_size=40))
async def test_reads_of_one_line_events_only_yield_the_same_events(cuts):
    """A read whose only line breaks are the separators takes the splitter's counted branch:
    the same events, byte for byte, as a read with a multi-line event in it (above); a part
    of only spaces is no event."""
    stream = b"".join(ONE_LINE_EVENTS[:2]) + b" \n\n" + b"".join(ONE_LINE_EVENTS[2:])
    events = await _collect(_cut(stream, cuts))
    assert [e.raw for e in events] == ONE_LINE_EVENTS
    assert events[2].event == "ping" and events[2].data == b""
    assert events[0].data == ONE_LINE_EVENTS[0][6:-2] and events[-1].is_done
