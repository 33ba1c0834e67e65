"""Detection on JSON source (tool-call arguments): analyse the decoded text, map spans back.

In the source ``{"cmd": "echo\\nsk-…"}`` a key follows the two characters ``\\n``; a pattern
that requires a word boundary before the key would see the letter ``n`` and miss it, and
``ensure_ascii`` encoders write ``ü`` as ``\\u00fc``, which breaks e-mail domains. So the
recognizers run on the decoded text, and each span is mapped back to source offsets, where
it starts and ends on whole escape sequences (a replacement never leaves half an escape).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson

_ESC = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class JsonView:
    """JSON source with its escapes decoded, and the offset map back (see the module doc)."""

    __slots__ = ("_dec", "_src", "decoded", "source")

    #: What an escape looks like, and the character it stands for.
    _pattern = _ESC
    _marker = "\\"

    @staticmethod
    def _decode(esc: str) -> str:
        return chr(int(esc[2:], 16)) if esc[1] == "u" else _SIMPLE[esc[1]]

    def __init__(self, source: str) -> None:
        self.source = source
        self._dec: list[int] = [0]
        self._src: list[int] = [0]
        if self._marker not in source:
            self.decoded = source
            return
        parts: list[str] = []
        last = dpos = 0
        for m in self._pattern.finditer(source):
            segment = source[last : m.start()]
            parts.append(segment)
            dpos += len(segment)
            parts.append(self._decode(m.group()))
            self._dec += (dpos, dpos + 1)
            self._src += (m.start(), m.end())
            dpos += 1
            last = m.end()
        parts.append(source[last:])
        self.decoded = "".join(parts)

    def to_source(self, i: int) -> int:
        """A boundary in the decoded text -> the same boundary in the source."""
        k = bisect.bisect_right(self._dec, i) - 1
        return self._src[k] + (i - self._dec[k])


class PercentView(JsonView):
    """A URL with its ``%XX`` escapes decoded (``jane%40example.com`` is an e-mail address),
    spans mapped back to whole escapes. Built on ``url_view``, whose offsets are
    the URL's."""

    __slots__ = ()
    _pattern = re.compile(r"%[0-9A-Fa-f]{2}")
    _marker = "%"

    @staticmethod
    def _decode(esc: str) -> str:
        return chr(int(esc[1:], 16))


class _Utf8View(JsonView):
    """Percent-decoded bytes (one character each) read as UTF-8: ``%EF%BC%A0`` is ``＠``."""

    __slots__ = ()
    _pattern = re.compile("[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
    _marker = ""  # every text is looked at (only URLs with escapes get here)

    @staticmethod
    def _decode(esc: str) -> str:
        try:
            return esc.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:  # an overlong form or a surrogate: not a character
            return "\ufffd"


#: URL delimiters: seen as spaces by detection, so a pattern never runs from the path into the
#: query or across ``&`` (an e-mail pattern would otherwise swallow ``a.png?u=jane@…`` whole).
_URL_DELIMS = str.maketrans(dict.fromkeys("/?&=#;,+:", " "))


def url_view(url: str) -> str:
    """``url`` as detection sees it: the same length (offsets stay valid). The scheme and the
    authority (``https://user:password@host:port``) are kept as written, so the URL-password,
    e-mail and IP recognizers read them as they would in prose (an address spanning userinfo
    and host, ``https://jane@example.com``, an IP host, a key as a subdomain); after it,
    delimiters are spaces, so each path segment and query value is a token of its own. A host
    that is an entity is replaced like any other value: the URL then no longer fetches, which
    is the operator's choice (``actions``), not a blind spot."""
    view = url.translate(_URL_DELIMS)
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return view
    start = url.find("//")
    if netloc and start >= 0 and url[start + 2 : start + 2 + len(netloc)] == netloc:
        end = start + 2 + len(netloc)
        view = url[:end] + view[end:]
    return view


class UrlView(JsonView):
    """A URL (``url_view``) as detection reads it: percent escapes decoded, their
    UTF-8 sequences read as characters, and decoded once more when the URL was encoded twice
    (``jane%2540example.com``: a client that encoded an encoded value; the fetcher decodes it
    once, the page it reaches may decode it again). Spans map back through each step, to
    whole escapes."""

    __slots__ = ("_chain",)

    def __init__(self, source: str) -> None:  # not super's: a chain of views
        self.source = source
        chain: list[JsonView] = []
        text = source
        for _ in range(2):
            if "%" not in text:
                break
            step: JsonView = PercentView(text)
            if step.decoded is text:
                break
            chain.append(step)
            text = step.decoded
            if not text.isascii():
                step = _Utf8View(text)
                if step.decoded != text:
                    chain.append(step)
                    text = step.decoded
        self._chain = chain
        self.decoded = text

    def to_source(self, i: int) -> int:
        for step in reversed(self._chain):
            i = step.to_source(i)
        return i


class LabelView(JsonView):
    """A value read after its member name (``locations.Slot.label``): ``phone: 4155552671``.
    Spans map back into the value; one inside the name maps to an empty span (dropped)."""

    __slots__ = ("_skip",)

    #: How much of a member name is kept (every recognizer's label window is shorter).
    MAX_LABEL = 48

    def __init__(self, label: str, source: str) -> None:  # not super's: nothing to decode
        head = f"{label[-self.MAX_LABEL :]}: "
        self.source = source
        self.decoded = head + source
        self._skip = len(head)

    def to_source(self, i: int) -> int:
        return max(i - self._skip, 0)


#: The rest of a string token after its opening quote (tolerates a token cut by the end).
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*("|\Z)', re.S)
_NUMBER_CHARS = frozenset("-+0123456789.eE")
_STRUCTURE = frozenset("[]{},: \t\r\n")


def looks_like_json(text: str) -> bool:
    """Cheap first test for JSON-mode content and JSON tool results: an object or an array."""
    head = text.lstrip()[:1]
    return head == "{" or head == "["


def is_json(text: str) -> bool:
    """An object or array that parses: replaced JSON-aware, so it still parses afterwards."""
    if not looks_like_json(text):
        return False
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


class JsonPieces:
    """Where the strings are in (a stretch of) JSON source, so a replacement keeps it valid.

    A value found inside a string is replaced inside it (placeholders need no escapes); a
    value that is a number token (``{"phone":4155552671}``) is replaced by a JSON *string*
    placeholder, so the result parses wherever the input parsed. ``in_string`` carries the
    lexer state from one stream segment to the next (a stream releases consecutive stretches).
    """

    __slots__ = ("in_string",)

    def __init__(self) -> None:
        self.in_string = False

    def regions(self, source: str) -> list[tuple[int, int]]:
        """String contents (between the quotes) in ``source``; advances ``in_string``."""
        if not source.endswith("\\"):
            return self._found_regions(source)
        return self._escaped_regions(source)

    def _escaped_regions(self, source: str) -> list[tuple[int, int]]:
        """``regions`` of a source that may hold escapes: a regex match per string."""
        out: list[tuple[int, int]] = []
        pos = 0
        n = len(source)
        if self.in_string:
            m = _STRING_REST.match(source, 0)
            assert m is not None  # the pattern matches the empty string
            closed = bool(m.group(1))
            out.append((0, m.end() - 1 if closed else m.end()))
            pos = m.end()
            self.in_string = not closed
        while not self.in_string:
            q = source.find('"', pos)
            if q < 0:
                break
            m = _STRING_REST.match(source, q + 1)
            assert m is not None
            closed = bool(m.group(1))
            out.append((q + 1, m.end() - 1 if closed else m.end()))
            pos = m.end()
            if not closed:
                self.in_string = pos >= n
                break
        return out

    def _found_regions(self, source: str, upto: int | None = None) -> list[tuple[int, int]]:
        """``regions`` found with ``str.find``: a quote closes the string unless an odd run of
        backslashes (counted from the string's start) stands before it. The same answer as the
        regex loop, which costs a regex match per string (a tool's JSON answer of 17 strings
        spent ~100k instructions there on every MCP call); a source ending in a backslash (a
        stream segment cut inside an escape) keeps the regex loop, so it fails as it did.
        ``upto``: no string opening at or after it is looked for (``split(whole=False)``)."""
        out: list[tuple[int, int]] = []
        n = len(source)
        if upto is None:
            upto = n
        find = source.find
        escapes = "\\" in source
        pos = 0
        q = -1  # the opening quote (-1: a string carried over from the previous segment)
        if not self.in_string:
            q = find('"', 0, upto)
            if q < 0:
                return out
        while True:
            c = find('"', q + 1)
            while escapes and c >= 0:
                k = c
                while k > q + 1 and source[k - 1] == "\\":
                    k -= 1
                if not (c - k) % 2:
                    break
                c = find('"', c + 1)
            if c < 0:  # cut by the end: the string goes on in the next segment
                out.append((q + 1, n))
                self.in_string = True
                return out
            out.append((q + 1, c))
            self.in_string = False
            pos = c + 1
            q = find('"', pos, upto)
            if q < 0:
                return out

    def split(
        self, source: str, spans: Iterable[tuple[int, int, str]], *, whole: bool = True
    ) -> list[tuple[int, int, str, bool]]:
        """``(start, end, entity, number)`` pieces: each span cut to the strings it overlaps and
        the tokens between them; a piece outside strings made only of number characters is
        widened to its whole number token and flagged ``number``.

        A span inside one string (nearly every finding of a tool's JSON answer) is its own
        piece, found by a bisect on the string starts; the stretches between strings are built
        only for a span that leaves its string (an MCP answer of 17 strings spent ~40k
        instructions building them on every call). ``whole=False`` (a one-off lexer, not a
        stream's): the strings opening past the last span are not looked for, and ``in_string``
        is not advanced past them."""
        carried = self.in_string
        spans = list(spans)
        if whole or not spans or source.endswith("\\"):
            regions = self.regions(source)
        else:
            regions = self._found_regions(source, max(s[1] for s in spans))
        starts = [a for a, _ in regions]
        out: list[tuple[int, int, str, bool]] = []
        for start, end, entity in spans:
            k = bisect.bisect_right(starts, start) - 1
            if k < 0 or end > regions[k][1]:  # not inside string k (starts[k] <= start)
                return _disjoint(self._stretched(source, regions, carried, spans))
            if start < end:
                out.append((start, end, entity, False))
        return _disjoint(out)

    @staticmethod
    def _stretched(
        source: str, regions: list[tuple[int, int]], carried: bool, spans: list[tuple[int, int, str]]
    ) -> list[tuple[int, int, str, bool]]:
        """``split``'s pieces when a span leaves its string: cut along the stretches."""
        # Alternating stretches, quote characters excluded: (start, end, inside a string).
        stretches: list[tuple[int, int, bool]] = []
        pos = 0
        for j, (a, b) in enumerate(regions):
            opening = a if j == 0 and carried else a - 1
            if opening > pos:
                stretches.append((pos, opening, False))
            stretches.append((a, b, True))
            pos = b + 1
        if pos < len(source):
            stretches.append((pos, len(source), False))
        starts = [st[0] for st in stretches]
        out: list[tuple[int, int, str, bool]] = []
        for start, end, entity in spans:
            k = max(bisect.bisect_right(starts, start) - 1, 0)
            while k < len(stretches) and stretches[k][0] < end:
                a, b, inside = stretches[k]
                lo, hi = max(a, start), min(b, end)
                if lo < hi:
                    out.append((lo, hi, entity, False) if inside else _outside(source, lo, hi, entity))
                k += 1
        return out


def _outside(source: str, start: int, end: int, entity: str) -> tuple[int, int, str, bool]:
    """A piece between strings: structure at its ends is never replaced; what is left is a
    number token (widened to the whole token) or other bare text (JSON that did not parse)."""
    while start < end and source[start] in _STRUCTURE:
        start += 1
    while end > start and source[end - 1] in _STRUCTURE:
        end -= 1
    piece = source[start:end]
    if not piece or any(c not in _NUMBER_CHARS for c in piece):
        return (start, end, entity, False)
    while start > 0 and source[start - 1] in _NUMBER_CHARS:
        start -= 1
    while end < len(source) and source[end] in _NUMBER_CHARS:
        end += 1
    return (start, end, entity, True)


def _disjoint(pieces: list[tuple[int, int, str, bool]]) -> list[tuple[int, int, str, bool]]:
    """Widened number tokens may now touch or overlap a neighbour: merge into the first."""
    out: list[tuple[int, int, str, bool]] = []
    for p in pieces:
        if p[1] <= p[0]:
            continue
        if out and p[0] < out[-1][1]:
            last = out[-1]
            out[-1] = (last[0], max(last[1], p[1]), last[2], last[3] or p[3])
            continue
        out.append(p)
    return out
