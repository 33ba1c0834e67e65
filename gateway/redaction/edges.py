"""Window edges for ``prefilter.windows``: a window around a trigger grows to whitespace (so a
recognizer sees whole tokens) and never starts or ends inside a digit group (a cut group
could look like a number), within a cap."""

from __future__ import annotations

#: How far a window may grow to reach whitespace before it is cut anyway.
_EXPAND_CAP = 1024
_WS = (" ", "\n", "\t", "\r")


def left_edge(text: str, a: int) -> int:
    """Move ``a`` left to just after a whitespace character (or the start, or the cap)."""
    lo = a - _EXPAND_CAP if a > _EXPAND_CAP else 0
    # Four calls spelled out, not a generator over _WS: a contact list asks ~2,600 times a text.
    w = max(text.rfind(" ", lo, a), text.rfind("\n", lo, a), text.rfind("\t", lo, a), text.rfind("\r", lo, a))
    return w + 1 if w >= 0 else lo


def right_edge(text: str, b: int) -> int:
    """Move ``b`` right to a whitespace character (exclusive end), or the end, or the cap."""
    hi = min(len(text), b + _EXPAND_CAP)
    end = hi
    for ch in _WS:
        i = text.find(ch, b, end)  # only before the nearest found so far
        if i >= 0:
            end = i
    return end


def left_digits(text: str, a: int) -> int:
    """Never start a window inside a digit group: a cut group could look like a number."""
    lo = max(0, a - _EXPAND_CAP)
    while lo < a < len(text) and text[a - 1].isdigit() and text[a].isdigit():
        a -= 1
    return a


def right_digits(text: str, b: int) -> int:
    hi = min(len(text), b + _EXPAND_CAP)
    while 0 < b < hi and text[b - 1].isdigit() and text[b].isdigit():
        b += 1
    return b
