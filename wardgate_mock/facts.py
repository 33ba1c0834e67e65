"""What a user's message offers to fill tool arguments with: emails, ids, numbers, names...

Each fact is extracted once per answer, on first use, by a regex that runs in linear time on
any text: a match can only start where its first run of characters starts (a lookbehind says
so) or at a fixed opener (``<``, ``#``, a quote) whose body cannot contain another opener, so
no character is rescanned from every position of a long unbroken word. (``[\\w.+-]+@`` alone
retried each of the 40,000 positions of one 40,000-character word: 11 s.) The regexes read
the message's first ``SCAN_CHARS`` characters: linear is not free on a 4 MB message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: The local part starts a run (no ``[\w.+-]`` before it): one attempt per run, not per character.
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+|<EMAIL[A-Z_]*_\d+>")
#: A redaction placeholder (``<EMAIL_ADDRESS_1>``): copied into arguments so the gateway restores it.
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
_PHONE = re.compile(r"<PHONE[A-Z_]*_\d+>|\+?\d[\d\s().-]{7,}\d")
_URL = re.compile(r"https?://[^\s)\]>\"']+")
_ID = re.compile(r"\b(?:[A-Za-z]{1,8}[-_]\d+|[A-Za-z]{1,8}\d{2,})\b|#\d+")
_NUMBER = re.compile(r"(?<![\w.])([$€£]\s?)?(-?\d+(?:[.,]\d+)?)(\s?(?:usd|eur|gbp|dollars?|euros?))?", re.I)
#: A curly quote's body excludes the opener too, or ``““““...`` rescans the rest from each one.
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']{2,})'|“([^“”]+)”")
_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_AFTER_PREP = re.compile(r"\b(?:in|to|for|at|from|about|of)\s+([A-Za-z][\w-]*)")
_CURRENCY = re.compile(r"\b(USD|EUR|GBP|JPY|CHF|CAD|AUD)\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_WORD = re.compile(r"\S+")
#: Characters of the message the fact regexes read (all of them together: ~60 ms at worst).
SCAN_CHARS = 50_000
_NOT_NAMES = frozenset({"I", "Please", "What", "The", "Can", "Could", "Would", "Then", "And", "Use", "Call"})


@dataclass(slots=True)
class TextFacts:
    """What the user's message offers to fill arguments with (extracted once, lazily)."""

    text: str
    _cache: dict[str, Any] = field(default_factory=dict)

    def _get(self, key: str) -> Any:
        if key not in self._cache:
            self._cache[key] = _EXTRACT[key](self.text[:SCAN_CHARS] if key in _SCANNED else self.text)
        return self._cache[key]

    @property
    def emails(self) -> list[str]:
        return self._get("emails")

    @property
    def phones(self) -> list[str]:
        return self._get("phones")

    @property
    def urls(self) -> list[str]:
        return self._get("urls")

    @property
    def ids(self) -> list[str]:
        return self._get("ids")

    @property
    def id_number(self) -> float | None:
        """The digits of the first id that has some (``ORD-1001`` → 1001)."""
        return self._get("id_number")

    @property
    def numbers(self) -> list[tuple[float, bool]]:
        """(value, looks like money) for every finite number in the text."""
        return self._get("numbers")

    @property
    def quoted(self) -> list[str]:
        return self._get("quoted")

    @property
    def names(self) -> list[str]:
        return self._get("names")

    @property
    def dates(self) -> list[str]:
        return self._get("dates")

    @property
    def currencies(self) -> list[str]:
        return self._get("currencies")

    @property
    def lowered(self) -> str:
        return self._get("lowered")

    @property
    def stripped(self) -> str:
        return self._get("stripped")

    @property
    def first_words(self) -> str:
        """The first eight words, space-separated (a subject line)."""
        return self._get("first_words")

    def words(self) -> Iterator[str]:
        """The message's words in order, produced one at a time (a message may hold millions)."""
        return (m.group(0) for m in _WORD.finditer(self.text))


def _plain(text: str) -> str:
    """The text without emails and placeholders, whose digits are not numbers or ids."""
    return _PLACEHOLDER.sub(" ", _EMAIL.sub(" ", text))


def _numbers(text: str) -> list[tuple[float, bool]]:
    out = []
    for m in _NUMBER.finditer(_ID.sub(" ", _plain(text))):
        raw = m.group(2).replace(",", ".")
        value = float(raw)
        if math.isfinite(value):  # 400 digits are a float overflow: inf, which no JSON carries
            out.append((value, bool(m.group(1) or m.group(3) or "." in raw)))
    return out


def _names(text: str) -> list[str]:
    found = [m.group(0) for m in _CAPITAL.finditer(text) if m.group(0).split()[0] not in _NOT_NAMES]
    found += [m.group(1) for m in _AFTER_PREP.finditer(text) if not m.group(1).isdigit()]
    return found


def _id_number(text: str) -> float | None:
    for m in _ID.finditer(_plain(text)):
        digits = re.search(r"\d+", m.group(0))
        if digits:
            value = float(digits.group(0))
            return value if math.isfinite(value) else None
    return None


#: The facts read by regexes from the first ``SCAN_CHARS`` characters (the others read all).
_SCANNED = frozenset(
    {"emails", "phones", "urls", "ids", "id_number", "numbers", "quoted", "names", "dates", "currencies"}
)
_EXTRACT: dict[str, Callable[[str], Any]] = {
    "emails": lambda t: _EMAIL.findall(t),
    "phones": lambda t: _PHONE.findall(t),
    "urls": lambda t: _URL.findall(t),
    "ids": lambda t: [m.group(0).lstrip("#") for m in _ID.finditer(_plain(t))],
    "id_number": _id_number,
    "numbers": _numbers,
    "quoted": lambda t: [next(g for g in m.groups() if g) for m in _QUOTED.finditer(t)],
    "names": _names,
    "dates": lambda t: _DATE.findall(t),
    "currencies": lambda t: _CURRENCY.findall(t),
    "lowered": str.lower,
    "stripped": str.strip,
    "first_words": lambda t: " ".join(m.group(0) for m, _ in zip(_WORD.finditer(t), range(8), strict=False)),
}
