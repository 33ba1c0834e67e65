"""Finer checks of a pre-filter family's trigger matches (``Family.accept``): cheap
necessary conditions of the recognizers' own patterns, so a trigger that cannot become a
match costs no window. Each is looser than the pattern it stands for, never stricter (the
corpus test compares the pre-filtered analysis with the full one)."""

from __future__ import annotations

import re
from collections.abc import Callable

from gateway.redaction.scan import Scan

Accept = Callable[[str, int, int], bool]

#: Looser than the recognizers' own patterns (no word boundaries), so never stricter.
CARD = re.compile(r"\d(?:[- ]?\d){12}")
_SSN = re.compile(r"(?<!\d)(?:\d{3}[- .]\d{2}[- .]\d{4}|\d{9})(?!\d)")


_HEX = frozenset("0123456789abcdefABCDEF")


def ip_start_ok(text: str, start: int, end: int) -> bool:
    r"""Drop colon pairs no IPv6 pattern can start at (``T10:22:00Z``, ``std::vector``).

    Every Presidio IPv6 pattern begins with ``(?<![\w:])`` and then hex groups or ``::``. The
    address holding this colon pair starts at the hex run just before it (at most 4 digits), so
    that run must be preceded by neither a word character nor a colon.
    """
    if text[start] != ":":
        return True  # the IPv4 alternative
    p = start
    while p > 0 and text[p - 1] in _HEX and start - p < 5:
        p -= 1
    if start - p > 4:
        return False
    return p == 0 or not (text[p - 1].isalnum() or text[p - 1] in "_:")


def within(pattern: re.Pattern[str]) -> Accept:
    def accept(text: str, start: int, end: int) -> bool:
        return pattern.search(text, start, end) is not None

    return accept


def ssn_within(text: str, start: int, end: int) -> bool:
    """``_SSN`` in the chain; a chain of one digit run holds one only if it is 9 digits (a
    JSON of 2,500 ten-digit ids: no search at all)."""
    if text[start:end].isdigit():
        return end - start == 9
    return _SSN.search(text, start, end) is not None


def near(pattern: re.Pattern[str], before: int, after: int) -> Accept:
    """``pattern`` occurs from ``before`` characters before the trigger to ``after`` past it:
    for a pattern whose every match begins that close to one of its triggers."""

    def accept(text: str, start: int, end: int) -> bool:
        return pattern.search(text, max(0, start - before), min(len(text), end + after)) is not None

    return accept


_PLUSES = ("+", "\uff0b")
_PLUS_REACH = 12  # phones._plus_before's look-back


def plus_starts(scan: Scan) -> frozenset[int]:
    """The positions ``p`` where ``phones._plus_before(text, p)`` holds at a digit: the first
    digit at most 12 characters after a ``+``. Found from the few ``+`` of a text (memchr)
    instead of two look-backs before each of ~100 chains (~1 us each); kept in ``scan.memo``."""
    found = scan.memo.get(_PLUSES)
    if isinstance(found, frozenset):
        return found
    text, out = scan.text, set()
    for plus in _PLUSES:
        k = text.find(plus)
        while k >= 0:
            for d in range(k + 1, min(len(text), k + _PLUS_REACH + 1)):
                if text[d].isdigit():
                    out.add(d)
                    break
            k = text.find(plus, k + 1)
    found = scan.memo[_PLUSES] = frozenset(out)
    return found
