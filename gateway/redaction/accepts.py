"""Finer checks of a pre-filter family's trigger matches (``Family.accept``): cheap
necessary conditions of the recognizers' own patterns, so a trigger that cannot become a
match costs no window. Each is looser than the pattern it stands for, never stricter (the
corpus test compares the pre-filtered analysis with the full one)."""

from __future__ import annotations

import re
from collections.abc import Callable

from gateway.redaction.phones import LABEL_KEY, LABEL_LOOKBACK, PHONE_LABEL, label_before
from gateway.redaction.scan import Scan
from gateway.redaction.secrets import LABEL_END_HINT

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


def near(
    pattern: re.Pattern[str], before: int, after: int, hint: re.Pattern[str] | None = None, reach: int = 0
) -> Accept:
    """``pattern`` occurs from ``before`` characters before the trigger to ``after`` past it:
    for a pattern whose every match begins that close to one of its triggers. With ``hint``:
    first a cheaper necessary condition, found within ``reach`` past the trigger (a short
    regex over a few characters instead of an alternation over ~70)."""

    def accept(text: str, start: int, end: int) -> bool:
        if hint is not None and hint.search(text, end, min(len(text), end + reach)) is None:
            return False
        return pattern.search(text, max(0, start - before), min(len(text), end + after)) is not None

    return accept


#: What ends a secret's label (``secrets.LABEL_END_HINT``) lies <= 4 + 12 characters past the
#: label's last key word (its label tail, ``_key``, is <= 4): at least that key word's trigger
#: finds it within ``LABEL_END_REACH``.
LABEL_END_REACH = 16


def label_near(head: re.Pattern[str], before: int, after: int) -> Accept:
    """``near`` for a secret's label and its end (``secrets.SECRET_LABEL_HEAD``)."""
    return near(head, before, after, LABEL_END_HINT, LABEL_END_REACH)


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


def label_chain(scan: Scan, start: int, end: int, digits: int, blocks: int) -> bool:
    """``phones.label_before`` for a chain, reading the text's lower-cased copy (ASCII: same
    positions) instead of lowering a copy of the 48 characters before each chain."""
    if not scan.ascii:
        return label_before(scan.text, start, end)
    lo = max(0, start - LABEL_LOOKBACK)
    if LABEL_KEY.search(scan.lower, lo, start) is None:
        return False
    return PHONE_LABEL.search(scan.text, lo, start) is not None
