"""Keys of tool names and texts: what a rule compares instead of the raw spelling.

An agent (or a prompt-injected model) can spell a tool name or an injection marker so that
it reads the same to a person, a tokenizer or a runtime, yet differs byte for byte:
``Shell``, ``"shell "``, ``sh\\u200bell``, ``ｓｈｅｌｌ`` (fullwidth), ``ѕһеll`` (Cyrillic). Rules
therefore match *keys*:

    name_key(s)  invisible characters removed → NFKC → confusable fold → case fold →
                 confusable fold → surrounding whitespace stripped
    text_key(s)  the same, and every run of whitespace (NBSP, tabs, newlines, ...) one space

- *Invisible characters*: every format character (Unicode category ``Cf``: zero-width
  space/joiners, soft hyphen, word joiner, BOM, bidi controls, tag characters), plus the
  invisible ones outside ``Cf`` (combining grapheme joiner, variation selectors, Hangul
  fillers, Mongolian variation selectors). Removed first, so they cannot block an NFKC
  composition.
- *Confusable fold*: each non-ASCII character that Unicode TR39 (``confusables.txt``) lists
  as a look-alike of a Latin character is replaced by its prototype (Cyrillic ``а`` → ``a``,
  Greek ``ο`` → ``o``, ``ӏ`` → ``l``). The table is TR39 as packaged by ``disarm``
  (Unicode 17); the fold runs again after the case fold because some look-alikes are listed
  under their lower-case form only. ASCII characters are never rewritten (only case-folded):
  TR39 also pairs ``m``/``rn``, ``l``/``I``/``1``, ``0``/``O`` and ``|``/``l``, but folding
  those would rewrite the operator's own patterns and markers and ordinary words ("Ignore"
  would become "lgnore"); two different ASCII spellings are two names to every runtime.
  So a key of plain lower-case ASCII is itself, and policy data written in lower-case ASCII
  compares with keys directly (``derived.rego`` lower-cases it and collapses whitespace).

Both are pure functions; ``text_key`` memoises texts up to ``_CACHE_MAX_CHARS`` (agents
re-send the same tool results on every turn of a conversation). ASCII input takes a fast
path (``str.lower`` and ``str.split``), so the usual case costs well under a microsecond.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache, lru_cache

import disarm

#: Invisible characters outside category Cf (removed like the Cf ones; redaction's detection
#: view removes the same, gateway/redaction/normalize.py).
INVISIBLE_EXTRA = (
    0x034F,
    0x115F,
    0x1160,
    0x17B4,
    0x17B5,
    0x3164,
    0xFFA0,
    *range(0x180B, 0x1810),  # Mongolian free variation selectors (and vowel separator)
    *range(0xFE00, 0xFE10),  # variation selectors
    *range(0xE0100, 0xE01F0),  # variation selectors supplement
)
#: ASCII characters TR39 folds (to ``''``, ``'``, ``l``) that a key keeps as they are.
_ASCII_FOLDED = ('"', "`", "|")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_CACHE_MAX_CHARS = 16 * 1024


@cache
def _invisible() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Character classes of every invisible character: (in the BMP, beyond it); built once.

    Two classes because ``re`` tests a BMP-only class with a bitmap, while one holding astral
    ranges costs ~4x as much per character; most texts have no astral character at all.
    """
    category = unicodedata.category
    points = sorted(
        {*INVISIBLE_EXTRA, *(cp for cp in range(0x80, sys.maxunicode + 1) if category(chr(cp)) == "Cf")}
    )
    ranges: list[list[int]] = []
    for cp in points:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])

    def char_class(spans: list[list[int]]) -> re.Pattern[str]:
        return re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in spans) + "]")

    return char_class([r for r in ranges if r[1] <= 0xFFFF]), char_class([r for r in ranges if r[0] > 0xFFFF])


def _strip_invisible(s: str) -> str:
    bmp, astral = _invisible()
    s = bmp.sub("", s)
    return astral.sub("", s) if max(s, default="") > "\uffff" else s


def warm() -> None:
    """Build the invisible-character classes now (at startup) rather than on the first call."""
    _invisible()


def _confusable_fold(s: str) -> str:
    """Non-ASCII TR39 look-alikes → their Latin prototype (``disarm``, Unicode 17 data)."""
    if s.isascii():
        return s
    if any(c in s for c in _ASCII_FOLDED):
        return _NON_ASCII_RUN.sub(lambda m: disarm.normalize_confusables(m.group()), s)
    return disarm.normalize_confusables(s)


def _fold_text(s: str) -> str:
    s = unicodedata.normalize("NFKC", _strip_invisible(s))
    # Case fold once more at the end: some look-alikes fold to an upper-case prototype (the
    # Cherokee small letters case-fold to their capitals, whose prototypes are ``B``, ``D``,
    # ``H``, ...), and a key must be its own key.
    return _confusable_fold(_confusable_fold(s).casefold()).casefold()


def name_key(name: str) -> str:
    """The key a rule matches a tool name by (see the module docstring)."""
    if name.isascii():
        return name.strip().lower()
    return _fold_text(name).strip()


def text_key(text: str) -> str:
    """The key a content rule reads a text by: ``name_key`` with whitespace runs collapsed."""
    if len(text) <= _CACHE_MAX_CHARS:
        return _cached_text_key(text)
    return _text_key(text)


@lru_cache(maxsize=1024)
def _cached_text_key(text: str) -> str:
    return _text_key(text)


def _text_key(text: str) -> str:
    if text.isascii():
        return " ".join(text.lower().split())
    return " ".join(_fold_text(text).split())
