"""Content-only chat chunks, rewritten without parsing them: the hot path of a streamed answer.

A 2 KB answer in 3-character deltas is ~700 chunks, nearly all of one shape: one choice whose
delta is only ``content``, in the same envelope. Parsing each (and checking it for duplicate
keys) cost more than redacting the answer, so:

* the first such chunk is recognised by a strict match of its bytes (``CONTENT_CHUNK``) and
  rewritten as the parsed path would write it (``ChatRewriter._content_chunk`` builds the same
  object and writes it through ``set_json``);
* every later chunk whose bytes around the content equal that chunk's is a *splice*: only
  the content is new. The chunks of one upstream read that are splices in a row (``Splice.take``)
  go through the channel as one text, and are released as one chunk: the first chunk's object
  with what the channel released, byte for byte what ``set_json`` writes for it. While the
  channel holds the text back, that is the same bytes every time, computed once.

Anything else (other fields, order, spacing, escapes in the envelope, a second choice) takes
the parsed path; the tests compare both paths byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import orjson

from gateway.redaction.stream import Channel
from gateway.sse import SSEEvent, render

_STR = r'[^"\\\x00-\x1f]*'
#: The chunk nearly every token of a chat stream is: one choice whose delta is only
#: ``content``, with the envelope fields OpenAI and compatible servers send, in their order,
#: compact or with ``json.dumps`` spacing. Every key is fixed and distinct (no duplicate can
#: hide in it) and every string but the content is escape-free, so the object is known from
#: the match alone; anything else (other fields, order, spacing, escapes) takes the parsed path.
CONTENT_CHUNK = re.compile(
    rf'\{{"id": ?"(?P<id>{_STR})", ?"object": ?"chat\.completion\.chunk", ?'
    rf'"created": ?(?P<created>0|[1-9][0-9]{{0,17}}), ?"model": ?"(?P<model>{_STR})"'
    rf'(?:, ?"service_tier": ?"(?P<tier>{_STR})")?'
    rf'(?P<fp_key>, ?"system_fingerprint": ?(?:"(?P<fp>{_STR})"|null))?'
    r', ?"choices": ?\[\{"index": ?(?P<index>0|[1-9][0-9]{0,8}), ?'
    rf'"delta": ?\{{"content": ?"(?P<content>{_STR}(?:\\["\\/bfnrtu]{_STR})*)"\}}'
    r'(?P<lp>, ?"logprobs": ?null)?, ?"finish_reason": ?null\}\]'
    rf'(?:, ?"obfuscation": ?"(?P<obf>{_STR})")?\}}'
)

#: A JSON string's body (between its quotes).
_STRING_BODY = re.compile(rb'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*')


def string_body(body: bytes) -> str | None:
    """The text of a JSON string body (the bytes between its quotes), or None if it is not one.

    The common delta (no quote, backslash or control character: ``isprintable`` is false for
    every character below U+0020) is decoded as is; anything else is checked strictly and
    decoded by orjson (which refuses a lone surrogate escape, as the parsed path does)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        return None
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    if _STRING_BODY.fullmatch(body) is None:
        return None
    if b"\\" not in body:
        return text
    try:
        decoded: str = orjson.loads(b'"' + body + b'"')
    except orjson.JSONDecodeError:
        return None
    return decoded


class Splice:
    """The bytes around the last matched chunk's content (read and written) and its channel."""

    __slots__ = (
        "channel",
        "empty_data",
        "empty_raw",
        "head",
        "out_post",
        "out_pre",
        "shortest",
        "tail",
        "trim",
    )

    def __init__(self, pre: bytes, post: bytes, out_pre: bytes, out_post: bytes, channel: Channel) -> None:
        #: What a chunk of this shape starts and ends with, around its content.
        self.head = pre
        self.tail = post
        self.trim = len(post)
        self.shortest = len(pre) + len(post)
        self.out_pre = out_pre
        self.out_post = out_post
        self.channel = channel
        #: What is written while the channel holds everything back: the same every time.
        self.empty_data = out_pre + b'""' + out_post
        self.empty_raw = render(None, self.empty_data)

    def take(self, events: Sequence[SSEEvent], i: int, out: list[SSEEvent]) -> int:
        """The run of events from ``events[i]`` whose bytes around the content are this shape's
        (and whose content is a plain JSON string body): their contents joined go through the
        channel once, and the run is released as one event, its last, carrying what the
        channel released (or nothing). Returns the index after the run; ``i``: ``events[i]``
        is not of this shape, take the parsed path.

        One pass per upstream read, not per delta: a 2 KB answer in 3-character deltas is
        ~700 chunks, most arriving several to a read, and the channel's analysis and the
        written event are paid once per run. What the client reads is the same text (the
        channel's output does not depend on how its input was cut, ``stream.py``); only the
        deltas of one read arrive as one."""
        head, tail, shortest = self.head, self.tail, self.shortest
        start, stop = len(head), -self.trim  # the tail is never empty: "}]}" at least
        name = events[i].event
        texts: list[str] = []
        append = texts.append
        j = i
        for ev in events[i:] if i else events:
            data = ev.data
            if (
                ev.event != name
                or len(data) < shortest
                or not data.startswith(head)
                or not data.endswith(tail)
                or ev.parsed
            ):
                break
            body = data[start:stop]
            if body:
                try:
                    content = body.decode()
                except UnicodeDecodeError:
                    break
                if '"' in content or "\\" in content or not content.isprintable():
                    decoded = string_body(body)
                    if decoded is None:
                        break
                    content = decoded
                if content:
                    append(content)
            j += 1
        if j == i:
            return i
        last = events[j - 1]
        if not texts:
            out.append(last)  # the parsed path leaves an empty delta as it is
            return j
        released = self.channel.feed(texts[0] if len(texts) == 1 else "".join(texts))
        if released:
            last.set_data(self.out_pre + orjson.dumps(released) + self.out_post)
        elif name is None:
            last.set_data(self.empty_data, self.empty_raw)
        else:
            last.set_data(self.empty_data)
        out.append(last)
        return j
