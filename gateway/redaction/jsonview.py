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

_ESC = re.compile(r'\\(?:u[0-9a-fA-F]{4}|["\\/bfnrt])')
_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class JsonView:
    __slots__ = ("_dec", "_src", "decoded", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._dec: list[int] = [0]
        self._src: list[int] = [0]
        if "\\" not in source:
            self.decoded = source
            return
        parts: list[str] = []
        last = dpos = 0
        for m in _ESC.finditer(source):
            segment = source[last : m.start()]
            parts.append(segment)
            dpos += len(segment)
            esc = m.group()
            parts.append(chr(int(esc[2:], 16)) if esc[1] == "u" else _SIMPLE[esc[1]])
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
