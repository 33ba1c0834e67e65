"""The view detection runs on: ordinary formatting undone, with a map back to the original.

Recognizers are regexes over code points, so text that a human reads as a card number or an
e-mail address slips past them when it is written with other code points: fullwidth digits
(``４１１１``), a fullwidth ``＠``, a zero-width space inside an address, card groups separated
by a no-break space, two spaces or a line break. Detection therefore runs on a normalised
view, and every span is mapped back so that the characters replaced are the original ones
(zero-width characters inside a value included):

1. outside ASCII only, per character: a letter of another script drawn like a Latin one
   (Cyrillic ``а``, Greek ``Ο``: ``_CONFUSABLE``) is read as that Latin letter; format
   characters (category ``Cf``: zero-width space and joiners, soft hyphen, BOM, bidi
   controls) and the other invisible ones (combining
   grapheme joiner, variation selectors, Hangul fillers) are removed; other whitespace
   becomes a space (a line or paragraph separator a line break); a decimal digit of any
   script becomes its ASCII digit (``٤١١١``, ``۴۱۱۱``, ``४१५``: cards and phone numbers
   written in Arabic-Indic, Persian or Devanagari digits), a dash (en dash, non-breaking
   hyphen, minus sign) ``-``, an ideographic full stop ``.`` (IDNA reads it as one in a
   domain); everything else is NFKC-normalised (fullwidth forms, superscripts, ligatures,
   the no-break space);
2. a whitespace run between two digit *groups* that is not a single space (two spaces, a tab,
   one line break with any indentation) becomes one space, so the groups read as one number
   (``4111  1111⏎1111 1111``). A group is 3-4 digits on the left and 1-4 on the right, not
   glued to a word, ``-`` or a delimiter: a phone number ending a CSV record
   (``…555-2671⏎2,Jane``) or a TSV cell is not joined to the next record's first field (that
   made phonenumbers reject it). A blank line always separates.

ASCII text with no such run (the common case) is its own view: ``text.isascii()`` and one
regex scan, no copy. Case is left alone: the recognizers that must ignore case (IBAN) do so
themselves, and case carries meaning for the rest (``AKIA`` keys, base64).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from functools import lru_cache

from gateway.policy.textkey import INVISIBLE_EXTRA

_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
#: Between two digits: a run with one line break, or 2+ blanks, or one tab-like character.
#: (The leading digit is matched, not looked behind at: 3x faster on text without digits.)
_WS_IN_NUMBER = re.compile(r"\d(?:[ \t\f\v]{0,8}(?:\r\n|[\r\n])[ \t\f\v]{0,8}|[ \t\f\v]{2,8}|[\t\f\v])(?=\d)")
_DIGITS = "0123456789"
#: ASCII text as character classes for a C-speed necessary condition of ``_WS_IN_NUMBER``:
#: digits -> "0", a space -> " ", any other whitespace it allows -> "\n", the rest -> "x".
_WS_CLASSES = bytes(
    ord("0") if 48 <= i <= 57 else ord(" ") if i == 32 else 10 if chr(i) in "\t\f\v\r\n" else ord("x")
    for i in range(256)
)
#: A match is digit, whitespace run, digit, where the run is a line break (with blanks
#: around), two blanks or more, or one tab-like character: so it starts with one of these
#: after its digit, and ends with one of these before the next.
_WS_LEFT = (b"0\n", b"0  ", b"0 \n")
_WS_RIGHT = (b"\n0", b"  0", b"\n 0")


def _may_join(text: str) -> bool:
    """Could ``_WS_IN_NUMBER`` match? ASCII text is checked on its class string (two C
    passes and six ``in``: ~20 us for 50 KB, where the regex costs ~1 us per 10 digits, and
    a CSV or a JSON of ids is nearly all digits); other text always says yes."""
    if not text.isascii():
        return True
    classes = text.encode("ascii").translate(_WS_CLASSES)
    return any(w in classes for w in _WS_LEFT) and any(w in classes for w in _WS_RIGHT)


def has_digit(text: str) -> bool:
    """``str.__contains__`` ten times: ~30x faster than ``re.search(r"\\d")`` on prose."""
    return any(d in text for d in _DIGITS)


#: Invisible characters outside category Cf, removed like the Cf ones: the policy's keys
#: remove the same set (combining grapheme joiner, Hangul fillers, Khmer inherent vowels,
#: Mongolian free variation selectors, variation selectors and their supplement), so a
#: character that hides a tool name from a rule hides no entity from detection either.
_INVISIBLE = frozenset(map(chr, INVISIBLE_EXTRA))
#: Dots NFKC leaves alone that a domain name reads as ``.`` (IDNA maps them: ``example。com``).
_DOTS = frozenset("\u3002\uff61")


#: Cyrillic, Greek and other letters drawn like a Latin one (Unicode's confusables, one to
#: one), read as that letter: ``pаssword:`` with a Cyrillic ``а`` is the label ``password:``,
#: ``АKIA…`` an AWS key, ``jаne@exаmple.com`` an address. NFKC leaves them alone (they are
#: letters of their own scripts), so without this a label spelled with one passed unseen.
_CONFUSABLE = {
    **dict(zip("аеіјорсухѕһԁԛԝӏкүԍ", "aeijopcyxshdqwlkyg", strict=True)),
    **dict(zip("АВЕКМНОРСТХУЅІЈԚԜҮ", "ABEKMHOPCTXYSIJQWY", strict=True)),
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧ", "ABEZHIKMNOPTYX", strict=True)),
    **dict(zip("οναικρυχı", "ovaikpuxi", strict=True)),
    **dict(zip("օսհ", "ouh", strict=True)),  # Armenian
}


@lru_cache(maxsize=4096)
def _char(ch: str) -> str:
    confusable = _CONFUSABLE.get(ch)
    if confusable is not None:
        return confusable
    cat = unicodedata.category(ch)
    if cat == "Cf" or ch in _INVISIBLE:
        return ""
    if cat in ("Zl", "Zp"):
        return "\n"
    if ch.isspace():
        return " "
    if cat == "Nd":  # a decimal digit of any script (Arabic-Indic ٤, Devanagari ४, ...)
        return str(unicodedata.decimal(ch))
    if cat == "Pd" or ch == "\u2212":  # hyphen, en dash, non-breaking hyphen, minus sign, ...
        return "-"
    if ch in _DOTS:
        return "."
    return unicodedata.normalize("NFKC", ch)


class _Edits:
    """Replacements ``original[a:b] -> view[c:d]``, sorted; identity in between."""

    __slots__ = ("a", "b", "c", "d")

    def __init__(self) -> None:
        self.a: list[int] = []
        self.b: list[int] = []
        self.c: list[int] = []
        self.d: list[int] = []

    def add(self, a: int, b: int, c: int, d: int) -> None:
        self.a.append(a)
        self.b.append(b)
        self.c.append(c)
        self.d.append(d)

    def start(self, p: int) -> int:
        """A span starting at view position ``p`` starts here in the original."""
        k = bisect.bisect_right(self.c, p) - 1
        if k < 0:
            return p
        if p >= self.d[k]:
            return self.b[k] + p - self.d[k]
        return self.a[k]  # inside a replacement: take the whole original piece

    def end(self, p: int) -> int:
        """A span ending at view position ``p`` (exclusive) ends here in the original."""
        k = bisect.bisect_left(self.c, p) - 1
        if k < 0:
            return p
        if p <= self.d[k]:
            return self.b[k]
        return self.b[k] + p - self.d[k]


def _unicode_pass(text: str) -> tuple[str, _Edits | None]:
    edits = _Edits()
    parts: list[str] = []
    last = 0
    shift = 0  # len(view) - len(original) so far
    for m in _NON_ASCII.finditer(text):
        for i in range(m.start(), m.end()):
            ch = text[i]
            out = _char(ch)
            if out == ch:
                continue
            parts.append(text[last:i])
            parts.append(out)
            c = i + shift
            edits.add(i, i + 1, c, c + len(out))
            shift += len(out) - 1
            last = i + 1
    if not edits.a:
        return text, None
    parts.append(text[last:])
    return "".join(parts), edits


_GLUE = frozenset("-_,;|")


def _groups_around(text: str, start: int, end: int) -> bool:
    """3-4 digits end at ``start`` and 1-4 begin at ``end``, each a group on its own."""
    a = start
    while a > 0 and start - a < 5 and text[a - 1].isdigit():
        a -= 1
    if not 3 <= start - a <= 4 or (a > 0 and (text[a - 1].isalnum() or text[a - 1] in _GLUE)):
        return False
    b = end
    n = len(text)
    while b < n and b - end < 5 and text[b].isdigit():
        b += 1
    return 1 <= b - end <= 4 and not (b < n and (text[b].isalnum() or text[b] in _GLUE))


def _number_pass(text: str) -> tuple[str, _Edits | None]:
    edits: _Edits | None = None
    parts: list[str] = []
    last = 0
    shift = 0
    if not has_digit(text) or not _may_join(text):
        return text, None
    for m in _WS_IN_NUMBER.finditer(text):
        a, b = m.start() + 1, m.end()
        if not _groups_around(text, a, b):
            continue
        if edits is None:
            edits = _Edits()
        parts.append(text[last:a])
        parts.append(" ")
        c = a + shift
        edits.add(a, b, c, c + 1)
        shift += 1 - (b - a)
        last = b
    if edits is None:
        return text, None
    parts.append(text[last:])
    return "".join(parts), edits


class View:
    """``text`` as the recognizers see it, and ``span`` to map a match back."""

    __slots__ = ("_first", "_second", "original", "text")

    def __init__(self, original: str) -> None:
        self.original = original
        text, self._first = (original, None) if original.isascii() else _unicode_pass(original)
        self.text, self._second = _number_pass(text)

    @property
    def identity(self) -> bool:
        return self._first is None and self._second is None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """A view span -> the original characters it covers (format characters inside included)."""
        for edits in (self._second, self._first):
            if edits is not None:
                start, end = edits.start(start), edits.end(end)
        return start, end
