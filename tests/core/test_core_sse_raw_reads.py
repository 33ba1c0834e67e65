"""``EventSplitter(raw=True)``: a read of one-line ``data:`` events comes back as a ``RawRead``
(event objects made only when asked for), and whatever the reads, the events a stage gets
from it are byte for byte the ones the plain splitter makes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sse import EventSplitter, LastBatch, RawRead, SSEEvent, is_last, last_batch

#: Events of every framing the splitter knows: one-line data (the raw reads), named events,
#: comments, multi-line data, an extra blank line, a part of spaces, CRLF.
KINDS = [
    b'data: {"id":"1","choices":[{"delta":{"content":"Hel"}}]}\n\n',
    b'data: {"id":"2","choices":[{"delta":{"content":"lo \\"x\\""}}]}\n\n',
    b"data: [DONE]\n\n",
    b"event: ping\ndata: {}\n\n",
    b": keep-alive\n\n",
    b'data: {"multi":\ndata: "line"}\n\n',
    b"\n",
    b" \n\n",
    b'data: {"crlf":1}\r\n\r\n',
]


def _view(e: SSEEvent) -> tuple[bytes, str | None, bytes]:
    return e.raw, e.event, e.data


def _cut(stream: bytes, sizes: list[int]) -> list[bytes]:
    chunks, pos = [], 0
    for size in sizes:
        chunks.append(stream[pos : pos + size])
        pos += size
    return [c for c in [*chunks, stream[pos:]] if c]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(KINDS))), min_size=1, max_size=30),
    st.lists(st.integers(min_value=1, max_value=90), max_size=40),
)
def test_raw_reads_hold_the_events_the_plain_splitter_makes(kinds, sizes) -> None:
    stream = b"".join(KINDS[k] for k in kinds)
    plain, raw = EventSplitter(), EventSplitter(raw=True)
    for chunk in _cut(stream, sizes):
        want = plain.feed(chunk)
        got = raw.feed(chunk)
        if type(got) is RawRead:
            assert got.parts is not None and len(got) == len(want) > 0
            assert all(p.startswith(b"data: ") and b"\n" not in p for p in got.parts)
            for needle in (b'"content"', b"[DONE]", b"keep-alive", b'"multi"'):
                assert got.contains(needle) == any(needle in e.raw for e in want)
        assert [_view(e) for e in got] == [_view(e) for e in want]
        if type(got) is RawRead:
            assert got.parts is None  # made once: from now on the events are the truth
            assert got[0] is got.events[0] and got[-1:] == got.events[-1:]


def test_a_read_with_anything_but_one_line_data_events_is_a_plain_list() -> None:
    for other in (b": ping\n\n", b"event: x\ndata: {}\n\n", b'data: {"a":\ndata: 1}\n\n', b"\n\n"):
        batch = EventSplitter(raw=True).feed(b'data: {"a":1}\n\n' + other)
        assert type(batch) is list
    assert type(EventSplitter(raw=True).feed(b'data: {"a":1}\n\ndata: {"b"')) is RawRead


def test_a_changed_event_is_what_contains_sees() -> None:
    read = EventSplitter(raw=True).feed(b'data: {"a":"secret"}\n\ndata: {"b":2}\n\n')
    assert type(read) is RawRead and read.contains(b"secret")
    read[0].set_json({"a": "<REDACTED>"})
    assert read.parts is None and not read.contains(b"secret") and read.contains(b"<REDACTED>")


def test_the_last_read_is_marked_whatever_its_kind() -> None:
    read = EventSplitter(raw=True).feed(b'data: {"a":1}\n\n')
    assert not is_last(read)
    assert last_batch(read) is read and is_last(read) and read.parts is not None
    events = [SSEEvent.done()]
    marked = last_batch(events)
    assert type(marked) is LastBatch and is_last(marked) and list(marked) == events
    assert not is_last(events)
