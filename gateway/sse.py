"""Server-sent events, kept byte-exact.

The gateway must hand the client the provider's SSE framing unchanged unless a stage changes
an event's content, so every event keeps its raw bytes; the data is parsed as JSON only when a
stage asks for it (``event.json``), and re-rendered only when a stage sets new content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, overload

import orjson

from gateway import dupkeys
from gateway.errors import UpstreamError

_DONE = b"[DONE]"
_MISSING = object()


class SSEEvent:
    """One SSE event: its raw bytes (terminator included), its ``event:`` name and ``data``."""

    __slots__ = ("_json", "data", "event", "raw")

    def __init__(self, raw: bytes, event: str | None, data: bytes) -> None:
        self.raw = raw
        self.event = event
        self.data = data
        self._json: Any = _MISSING

    @classmethod
    def parse(cls, raw: bytes) -> SSEEvent:
        # Fast path: the common OpenAI chunk is exactly "data: {...}\n\n".
        if raw.startswith(b"data: ") and raw.count(b"\n") <= 2 and b"\r" not in raw:
            return cls(raw, None, raw[6:].rstrip(b"\n"))
        event: str | None = None
        data_lines: list[bytes] = []
        for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
            if not line or line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                data_lines.append(value)
            elif field == b"event":
                event = value.decode("utf-8", "replace")
        return cls(raw, event, b"\n".join(data_lines))

    @classmethod
    def from_json(cls, obj: Any, event: str | None = None) -> SSEEvent:
        data = orjson.dumps(obj)
        ev = cls(render(event, data), event, data)
        ev._json = obj
        return ev

    @classmethod
    def done(cls) -> SSEEvent:
        return cls(b"data: [DONE]\n\n", None, _DONE)

    @property
    def is_done(self) -> bool:
        return self.data == _DONE

    @property
    def json(self) -> Any:
        """The parsed data (None for ``[DONE]`` and comments).

        Data that is not JSON orjson accepts, or whose objects repeat a key, raises
        ``UpstreamError``: whatever a stage decides on an event must be what every client
        parser reads from it. A lone surrogate escape (``"\\ud800 card 4111..."``) is refused
        by orjson but read by Python's and JavaScript's parsers, so such an event must never
        pass a guard as "not JSON, nothing to check" (``gateway.dupkeys`` for repeated keys).
        Events no stage parses pass byte-for-byte, unparsed and unchecked: nothing is decided
        on them (``gateway.dupkeys``, "Stream events", says which those are and why)."""
        if self._json is _MISSING:
            if not self.data or self.data == _DONE:
                self._json = None
            else:
                try:
                    parsed = orjson.loads(self.data)
                except orjson.JSONDecodeError:
                    raise UpstreamError(
                        "The model provider sent a stream event that is not valid JSON."
                    ) from None
                if dupkeys.has_duplicate(self.data, parsed):
                    raise UpstreamError(
                        "The model provider sent a stream event with a duplicate key in a JSON object."
                    )
                self._json = parsed
        return self._json

    @property
    def parsed(self) -> bool:
        """``json`` has been read (or set): a stage may hold the object, so work from it."""
        return self._json is not _MISSING

    def set_json(self, obj: Any) -> None:
        """Replace the content; the raw bytes are re-rendered in the provider's framing style."""
        self._json = obj
        self.data = orjson.dumps(obj)
        self.raw = render(self.event, self.data)

    def set_data(self, data: bytes, raw: bytes | None = None) -> None:
        """Replace the content with JSON ``data`` the caller wrote (parsed again if asked);
        ``raw``: the event as ``render(self.event, data)`` writes it, when the caller has it."""
        self._json = _MISSING
        self.data = data
        self.raw = raw if raw is not None else render(self.event, data)

    def __repr__(self) -> str:
        return f"SSEEvent({self.raw[:80]!r})"


def render(event: str | None, data: bytes) -> bytes:
    """An event's bytes in the framing the gateway writes."""
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


#: A stream as providers hand it over: the events of each network read, in order (a list, a
#: ``LastBatch`` or a ``RawRead``).
EventBatches = AsyncIterator[Sequence["SSEEvent"]]


class LastBatch(list["SSEEvent"]):
    """A batch after which the upstream sends nothing more (the stream ended within the same
    network read). The HTTP layer may then write it together with the end of the response:
    one write instead of two for a short answer. A plain list promises nothing."""

    __slots__ = ()


class RawRead(Sequence[SSEEvent]):
    """The events of one network read, kept as the ``data:`` lines they were cut from until a
    stage asks for event objects (``EventSplitter(raw=True)``).

    A streamed chat answer is ~700 events for 2 KB of text; with redaction on, its stage joins
    the content-only ones of a read into one event anyway (``chat_splice``), so making an
    object per event first was most of what the read cost. A stage that can decide on the
    read's bytes (``Stage.passes_read``: no usage, no ``[DONE]``) lets it pass whole; one that
    reads ``parts`` (redaction) works on the lines; anything else (iterating, indexing, ``len``
    aside) gets the events, made once, exactly as ``EventSplitter`` makes them: from then on
    ``parts`` is None, since a stage may have changed an event."""

    __slots__ = ("_buf", "_end", "_events", "_parts", "last")

    def __init__(self, parts: list[bytes], buf: bytes, end: int) -> None:
        #: Each a whole ``data: ...`` line, without its blank line; ``buf[:end]`` is all of them.
        self._parts = parts
        self._buf = buf
        self._end = end
        self._events: list[SSEEvent] | None = None
        #: The upstream sends nothing after this read (``LastBatch``'s promise).
        self.last = False

    @property
    def parts(self) -> list[bytes] | None:
        """The ``data:`` lines, or None once the events were made (use those)."""
        return self._parts if self._events is None else None

    def contains(self, needle: bytes) -> bool:
        """Whether ``needle`` (no line break in it) occurs in some event's bytes as read."""
        if self._events is not None:
            return any(needle in ev.raw for ev in self._events)
        return self._buf.find(needle, 0, self._end) >= 0

    @property
    def events(self) -> list[SSEEvent]:
        if self._events is None:
            self._events = [SSEEvent(part + b"\n\n", None, part[6:]) for part in self._parts]
        return self._events

    def __len__(self) -> int:
        return len(self._parts)

    @overload
    def __getitem__(self, index: int) -> SSEEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[SSEEvent]: ...

    def __getitem__(self, index: int | slice) -> SSEEvent | list[SSEEvent]:
        return self.events[index]

    def __iter__(self) -> Iterator[SSEEvent]:
        return iter(self.events)


def last_batch(batch: Sequence[SSEEvent]) -> Sequence[SSEEvent]:
    """``batch``, marked as the stream's last read (``LastBatch``, or ``RawRead.last``)."""
    if type(batch) is RawRead:
        batch.last = True
        return batch
    return LastBatch(batch)


def is_last(batch: Sequence[SSEEvent]) -> bool:
    """The upstream sends nothing after ``batch`` (``last_batch``)."""
    return isinstance(batch, LastBatch) or (type(batch) is RawRead and batch.last)


class SSEParseError(Exception):
    """The upstream stream is not valid SSE (or ended in the middle of an event)."""


class EventSplitter:
    """Cuts a byte stream into SSE events at blank lines (``\\n\\n`` or ``\\r\\n\\r\\n``).

    Fed one network read at a time, it returns that read's complete events as one batch: the
    stream path then pays its per-step costs (stages, ``send``) once per read, not per event.
    With ``raw``, a read whose events are all one ``data:`` line each (what OpenAI-compatible
    servers send) comes back as a ``RawRead``, its event objects made only if asked for.
    """

    __slots__ = ("_buf", "_max", "_raw")

    def __init__(self, max_event_bytes: int = 8 << 20, raw: bool = False) -> None:
        self._buf = b""
        self._max = max_event_bytes
        self._raw = raw

    def feed(self, chunk: bytes) -> Sequence[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            found = self._feed_crlf(buf)
        else:
            # LF framing (what OpenAI-compatible servers send): one C-level split; the last
            # part is the incomplete tail (empty when the read ended on an event boundary).
            parts = buf.split(b"\n\n")
            tail = self._buf = parts.pop()
            if buf.count(b"\n") - tail.count(b"\n") == 2 * len(parts):
                # Only the separators break lines (the common stream, counted in C): every
                # part is one line, a data line or else a comment or field of its own.
                end = len(buf) - len(tail)
                if (
                    self._raw
                    and parts
                    and buf.startswith(b"data: ")
                    # a part starts after each separator: all of them are data lines
                    and buf.count(b"\n\ndata: ", 0, end) == len(parts) - 1
                ):
                    if len(self._buf) > self._max:
                        raise SSEParseError("upstream SSE event exceeds the size limit")
                    return RawRead(parts, buf, end)
                found = [
                    SSEEvent(part + b"\n\n", None, part[6:]) if data else SSEEvent.parse(part + b"\n\n")
                    for part in parts
                    if (data := part.startswith(b"data: ")) or part.strip()
                ]
            else:
                found = []
                for part in parts:
                    if part.startswith(b"data: ") and b"\n" not in part:
                        found.append(SSEEvent(part + b"\n\n", None, part[6:]))
                    elif part.strip():
                        found.append(SSEEvent.parse(part + b"\n\n"))
        if len(self._buf) > self._max:
            raise SSEParseError("upstream SSE event exceeds the size limit")
        return found

    def _feed_crlf(self, buf: bytes) -> list[SSEEvent]:
        """Mixed or CRLF framing: cut at whichever blank line comes first."""
        found: list[SSEEvent] = []
        pos = 0
        while True:
            i = buf.find(b"\n\n", pos)
            j = buf.find(b"\r\n\r\n", pos)
            if i < 0 and j < 0:
                break
            cut = j + 4 if j >= 0 and (i < 0 or j < i) else i + 2
            raw = buf[pos:cut]
            pos = cut
            if raw.strip():
                found.append(SSEEvent.parse(raw))
        self._buf = buf[pos:] if pos else buf
        return found

    def close(self) -> None:
        """The byte stream ended: anything left over is an event cut in half."""
        if self._buf.strip():
            raise SSEParseError("upstream stream ended in the middle of an event")


async def iter_event_batches(chunks: AsyncIterator[bytes], max_event_bytes: int = 8 << 20) -> EventBatches:
    """The events of a byte stream, one (non-empty) batch per chunk that completed any."""
    splitter = EventSplitter(max_event_bytes)
    async for chunk in chunks:
        batch = splitter.feed(chunk)
        if batch:
            yield batch
    splitter.close()
