"""Server-sent events, kept byte-exact.

The gateway must hand the client the provider's SSE framing unchanged unless a stage changes
an event's content, so every event keeps its raw bytes; the data is parsed as JSON only when a
stage asks for it (``event.json``), and re-rendered only when a stage sets new content.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

_DONE = b"[DONE]"
_MISSING = object()


class SSEEvent:
    """One SSE event: its raw bytes (terminator included), its ``event:`` name and ``data``."""

    __slots__ = ("_json", "boundary", "data", "event", "raw")

    def __init__(self, raw: bytes, event: str | None, data: bytes) -> None:
        self.raw = raw
        self.event = event
        self.data = data
        self._json: Any = _MISSING
        #: False while more events of the same network read follow at once: the HTTP layer
        #: then writes them to the client together, one write instead of one per event.
        self.boundary = True

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
        ev = cls(_render(event, data), event, data)
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
        """The parsed data (None for ``[DONE]``, comments, or data that is not JSON)."""
        if self._json is _MISSING:
            if not self.data or self.data == _DONE:
                self._json = None
            else:
                try:
                    self._json = orjson.loads(self.data)
                except orjson.JSONDecodeError:
                    self._json = None
        return self._json

    def set_json(self, obj: Any) -> None:
        """Replace the content; the raw bytes are re-rendered in the provider's framing style."""
        self._json = obj
        self.data = orjson.dumps(obj)
        self.raw = _render(self.event, self.data)

    def __repr__(self) -> str:
        return f"SSEEvent({self.raw[:80]!r})"


def _render(event: str | None, data: bytes) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + data + b"\n\n"


class SSEParseError(Exception):
    """The upstream stream is not valid SSE (or ended in the middle of an event)."""


async def iter_events(chunks: AsyncIterator[bytes], max_event_bytes: int = 8 << 20) -> AsyncIterator[SSEEvent]:
    """Split a byte stream into events at blank lines (``\\n\\n`` or ``\\r\\n\\r\\n``)."""
    buf = b""
    async for chunk in chunks:
        buf = buf + chunk if buf else chunk
        found: list[SSEEvent] = []
        while True:
            i = buf.find(b"\n\n")
            j = buf.find(b"\r\n\r\n")
            if i < 0 and j < 0:
                break
            if j >= 0 and (i < 0 or j < i):
                cut = j + 4
            else:
                cut = i + 2
            raw, buf = buf[:cut], buf[cut:]
            if raw.strip():
                found.append(SSEEvent.parse(raw))
        for event in found[:-1]:
            event.boundary = False
        for event in found:
            yield event
        if len(buf) > max_event_bytes:
            raise SSEParseError("upstream SSE event exceeds the size limit")
    if buf.strip():
        raise SSEParseError("upstream stream ended in the middle of an event")
