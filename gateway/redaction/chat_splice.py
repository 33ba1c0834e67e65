"""Content-only chat chunks, rewritten without parsing them: the hot path of a streamed answer.

A 2 KB answer in 3-character deltas is ~700 chunks, nearly all of one shape: one choice whose
delta is only ``content``, in the same envelope. Parsing each (and checking it for duplicate
keys) cost more than redacting the answer, so:

* the first such chunk is recognised by a strict match of its bytes (``CONTENT_CHUNK``) and
  rewritten as the parsed path would write it (``first_chunk`` builds the same
  object and writes it through ``set_json``);
* every later chunk whose bytes around the content equal that chunk's is a *splice*: only
  the content is new. The chunks of one upstream read that are splices in a row (``Splice.take``)
  go through the channel as one text, and are released as one chunk: the first chunk's object
  with what the channel released, byte for byte what ``set_json`` writes for it. While the
  channel holds the text back, that is the same bytes every time, computed once.

Real OpenAI chunks end in an ``obfuscation`` pad of random length and content, different in
every chunk: a shape ends just before its value, and the splice checks the pad on its own (a
string body without escapes) and writes a fresh pad of the same length in its place, as the
parsed path does (``pad.py``).

Anything else (other fields, order, spacing, escapes in the envelope, a second choice) takes
the parsed path; the tests compare both paths byte for byte (pads aside).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

import orjson

from gateway.redaction.pad import pad_bytes
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
#: A content body ``Splice.take`` joins undecoded: characters and the escapes other than
#: ``\\u`` (whose surrogates must pair within the one string: checked by ``string_body``).
_PLAIN_BODY = rb'([^"\\\x00-\x1f]*(?:\\["\\/bfnrt][^"\\\x00-\x1f]*)*)'
#: An ``obfuscation`` value's body, as ``CONTENT_CHUNK`` takes it: no escape, no quote.
_PAD_BODY = re.compile(rb'[^"\\\x00-\x1f]*')


def pad_length(body: bytes) -> int:
    """The length in characters of an ``obfuscation`` value (its bytes between the quotes),
    or -1 if ``CONTENT_CHUNK`` would not take it."""
    if body.isalnum():  # ASCII letters and digits: what OpenAI sends
        return len(body)
    if _PAD_BODY.fullmatch(body) is None:
        return -1
    try:
        return len(body.decode())
    except UnicodeDecodeError:
        return -1


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
    """The bytes around the last matched chunk's content (read and written) and its channel.

    With ``pad``, the shape's bytes after the content stop at the ``obfuscation`` value's
    opening quote: what follows is a pad (``pad_length``) and the closing ``"}``."""

    __slots__ = (
        "channel",
        "empty_data",
        "empty_raw",
        "head",
        "index",
        "out_post",
        "out_pre",
        "pad",
        "plain",
        "shortest",
        "tail",
        "trim",
    )

    def __init__(
        self,
        pre: bytes,
        post: bytes,
        out_pre: bytes,
        out_post: bytes,
        channel: Channel,
        pad: bool = False,
        index: int = 0,
    ) -> None:
        #: What a chunk of this shape starts and ends with, around its content.
        self.head = pre
        self.tail = post
        self.trim = len(post)
        self.pad = pad
        self.shortest = len(pre) + len(post) + (2 if pad else 0)
        #: The common chunk of this shape after ``head``, in one match: content without
        #: ``\\u`` escapes, a pad of letters and digits (anything else is checked step by step).
        self.plain = re.compile(
            _PLAIN_BODY + re.escape(post) + (rb'([0-9A-Za-z]*)"\}' if pad else b"")
        ).fullmatch
        self.out_pre = out_pre
        self.out_post = out_post
        self.channel = channel
        #: The choice index of this shape's chunks (``ends_choice``).
        self.index = index
        #: What is written while the channel holds everything back: the same every time.
        self.empty_data = out_pre + b'""' + out_post
        self.empty_raw = render(None, self.empty_data)

    def _plain_run(
        self, datas: Sequence[bytes], head: bytes
    ) -> tuple[int, list[bytes], re.Match[bytes] | None]:
        """How many of ``datas`` from the start are plain chunks of this shape (``head`` then a
        ``plain`` match, valid UTF-8), their content bodies (empty ones left out) and the last
        one's match. Each check runs over the whole run at C level (``map``), not chunk by
        chunk in Python: ~700 chunks of a 2 KB answer in 3-character deltas cost less than the
        analysis of their text."""
        k = len(datas)
        heads = list(map(bytes.startswith, datas, repeat(head)))
        if False in heads:
            k = heads.index(False)
        matches = list(map(self.plain, datas[:k] if k < len(datas) else datas, repeat(len(head))))
        if None in matches:
            k = matches.index(None)
            del matches[k:]
        bodies = [m[1] for m in matches]  # type: ignore[index]
        if not b"".join(bodies).isascii():
            for n, body in enumerate(bodies):
                try:
                    body.decode()
                except UnicodeDecodeError:
                    k = n
                    del matches[k:], bodies[k:]
                    break
        return k, [b for b in bodies if b], matches[-1] if matches else None

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
        deltas of one read arrive as one (with the last one's pad length, freshly drawn)."""
        name = events[i].event
        run = events[i:] if i else events
        datas = [ev.data for ev in run]
        odd = [n for n, ev in enumerate(run) if ev.event != name or ev.parsed]
        if odd:  # a named event or one a stage parsed: the parsed path
            del datas[odd[0] :]
        n, data = self._take(datas, self.head)
        if not n:
            return i
        last = events[i + n - 1]
        if data is not None:
            last.set_data(data, self.empty_raw if data is self.empty_data and name is None else None)
        out.append(last)
        return i + n

    def take_lines(self, lines: list[bytes], i: int, out: list[SSEEvent]) -> int:
        """``take`` for the ``data:`` lines of a raw read (``sse.RawRead.parts``), from
        ``lines[i]``: the run becomes one event, and no event is made for the others."""
        run = lines[i:] if i else lines
        n, data = self._take(run, b"data: " + self.head)
        if not n:
            return i
        if data is None:
            data = run[n - 1][6:]
        out.append(SSEEvent(self.empty_raw if data is self.empty_data else render(None, data), None, data))
        return i + n

    def _take(self, datas: Sequence[bytes], head: bytes) -> tuple[int, bytes | None]:
        """How many of ``datas`` (each starting with ``head``: an event's data, or a raw
        ``data:`` line) are a run of this shape, and the data the run's one event carries
        (None: the last one's, as it is)."""
        tail, padded = self.tail, self.pad
        start, trim = len(head), self.trim  # the tail is never empty: "}]}" at least
        shortest = self.shortest + start - len(self.head)
        j, texts, last_plain = self._plain_run(datas, head)
        append = texts.append
        pad_len = n = 0
        for data in datas[j:]:
            if len(data) < shortest or not data.startswith(head):
                break
            if padded:
                # The pad holds no quote, so the last occurrence of the tail is the shape's.
                if not data.endswith(b'"}'):
                    break
                stop = data.rfind(tail, start, len(data) - 2)
                if stop < 0:
                    break
                n = pad_length(data[stop + trim : -2])
                if n < 0:
                    break
            elif data.endswith(tail):
                stop = len(data) - trim
            else:
                break
            body = data[start:stop]
            if body:
                if string_body(body) is None:  # \\u escapes, or bytes the match above refuses
                    break
                append(body)
            pad_len, last_plain = n, None
            j += 1
        if not j:
            return 0, None
        if padded and last_plain is not None:  # the run ended with a plain chunk: its pad
            pad_len = last_plain.end(2) - last_plain.start(2)
        if not texts and not padded:
            return j, None  # the parsed path leaves an empty delta as it is
        # Each body is a whole JSON string body (no escape cut in two, no lone surrogate), so
        # their concatenation is one, decoded once.
        joined = b"".join(texts)
        text = (orjson.loads(b'"' + joined + b'"') if b"\\" in joined else joined.decode()) if texts else ""
        if j < len(datas) and self.ends_choice(datas[j], start - len(self.head)):
            released = self.channel.feed(text, final=True)
        else:
            released = self.channel.feed(text) if text else ""
        if padded:  # what the parsed path writes: the object again, with a fresh pad
            written = orjson.dumps(released) if released else b'""'
            return j, self.out_pre + written + self.out_post + pad_bytes(pad_len) + b'"}'
        if released:
            return j, self.out_pre + orjson.dumps(released) + self.out_post
        return j, self.empty_data

    def ends_choice(self, data: bytes, skip: int) -> bool:
        """Whether the event after a run (its data from ``skip``) finishes this choice with no
        content of its own: then the channel's last text goes out with the run, in one
        analysis, instead of held back for the finish event's flush to analyse it again (a
        burst's last read holds both). It is what that flush would release, and no text can
        follow it for the choice (a ``finish_reason`` ends it, as a flush does)."""
        if b'"finish_reason"' not in data:
            return False
        try:
            obj = orjson.loads(data[skip:] if skip else data)
        except orjson.JSONDecodeError:
            return False
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not isinstance(choices, list) or len(choices) != 1 or not isinstance(choices[0], dict):
            return False
        choice = choices[0]
        delta = choice.get("delta")
        return (
            type(choice.get("index")) is int
            and choice["index"] == self.index
            and isinstance(choice.get("finish_reason"), str)
            and isinstance(delta, dict)
            and not delta.get("content")
        )


def first_chunk(
    ev: SSEEvent, channel: Callable[[int], Channel]
) -> tuple[dict[str, Any], Splice | None] | None:
    """The first content-only chunk of a shape, from a strict match of its bytes: rewritten
    in place (``channel``: the content channel of a choice index), and its envelope and the
    ``Splice`` later chunks of the same shape are checked against (None: an empty delta,
    passed as is). None: not one, take the parsed path.

    What is written is exactly what the parsed path writes: the same object, through
    ``set_json``; its bytes around the content become the splice."""
    try:
        data = ev.data.decode()
    except UnicodeDecodeError:
        return None
    m = CONTENT_CHUNK.fullmatch(data)
    if m is None:
        return None
    raw = m["content"]
    content = string_body(raw.encode()) if "\\" in raw else raw
    if content is None:
        return None
    envelope: dict[str, Any] = {
        "id": m["id"],
        "object": "chat.completion.chunk",
        "created": int(m["created"]),
        "model": m["model"],
    }
    if m["fp_key"] is not None:
        envelope["system_fingerprint"] = m["fp"]
    obf = m["obf"]
    if not content:  # the parsed path leaves an empty delta as it is (and repads)
        return (envelope, None) if obf is None else None
    idx = int(m["index"])
    ch = channel(idx)
    obj: dict[str, Any] = {k: envelope[k] for k in ("id", "object", "created", "model")}
    if m["tier"] is not None:
        obj["service_tier"] = m["tier"]
    if m["fp_key"] is not None:
        obj["system_fingerprint"] = m["fp"]
    delta = {"content": ""}
    choice: dict[str, Any] = {"index": idx, "delta": delta}
    if m["lp"] is not None:
        choice["logprobs"] = None
    choice["finish_reason"] = None
    obj["choices"] = [choice]
    if obf is not None:  # a fresh pad of its length (pad.py)
        obj["obfuscation"] = pad_bytes(len(obf)).decode()
    # The bytes around the content, read and written: no other string of this shape can hold
    # a quote, so '"content":""' occurs once in what is written. With a pad, the shape stops
    # before its value (which changes from chunk to chunk) and '"}'.
    written = orjson.dumps(obj)
    at = written.index(b'"content":""') + len(b'"content":')
    source = ev.data
    start = len(data[: m.start("content")].encode())
    end = len(source) - len(data[m.end("content") :].encode())
    if obf is None:
        splice = Splice(source[:start], source[end:], written[:at], written[at + 2 :], ch, index=idx)
    else:
        cut_in, cut_out = len(source) - len(obf.encode()) - 2, len(written) - len(obf) - 2
        splice = Splice(
            source[:start], source[end:cut_in], written[:at], written[at + 2 : cut_out], ch, True, idx
        )
    delta["content"] = ch.feed(content)
    ev.set_json(obj)
    return envelope, splice
