"""One scan that finds the digit chains of ASCII text and settles the common phone shapes among them.

A contact list's numbers each cost, before this, a chain from the class-string split
(``scan._chains_of_classes``), then a call of the whole-shape regex at the chain
(``FastPhones._whole``: ~0.5 us of call and match object, however fast the match) and a
Python step to compare its end with the chain's: ~1.5 us a number, 2,500 of them. Here one
``finditer`` over the text finds each chain and, in the same match, whether it is such a
number: the pattern branches on the chain's first character (a literal each, so ``re`` skips
to the next ``+``, ``(`` or digit at C speed) into the whole shape, anchored to be exactly
one chain, or else the plain chain.

The whole shape is ``FastPhones._whole`` (``fastphones.settled_shape``) at the position
``FastPhones.settle_chains`` tries it: the chain's first digit, or the ``(`` or ``+`` just
before it. So that a match is exactly what that loop settles there:

* it is one whole chain: no digit within four punctuation characters after it (the chain
  would go on), and none before it (``finditer`` reaches a chain at its first digit, where
  the plain-chain branch takes all of it, before any later start inside it);
* a ``+`` lead is ``+1`` without a space: after ``+ 1`` the loop tries the shape at the ``1``,
  where a ``+`` that close before refuses it;
* the shape's own neighbour checks (``_BEFORE``) are read one character later, behind the
  character the branch consumed.

A test compares the chains and settled spans with the class-string chains and
``settle_chains`` on generated texts of every shape and neighbour.
"""

from __future__ import annotations

import operator
import re
from itertools import compress, repeat

from phonenumbers.phonenumberutil import _VALID_PUNCTUATION

from gateway.redaction.fastphones import _AFTER, SAFE_BEFORE, _digit_trie

Chain = tuple[int, int, int, int]

_P = "[" + _VALID_PUNCTUATION + "]"  # phonenumbers' punctuation: a chain's separators
#: ``fastphones._BEFORE`` at the number's start, read one character further on (the branch
#: consumed the number's first character): a safe character or the text's edge before it,
#: no ``+`` in the four characters before it.
_BEFORE_1 = "(?<![^" + re.escape(SAFE_BEFORE) + "].)(?s:(?<!\\+.)(?<!\\+..)(?<!\\+...)(?<!\\+....))"
_REST = r"[2-9][0-9][0-9][ .-][0-9]{4}"  # exchange and line, as in ``fastphones._SETTLE``
#: The chain ends here (no digit within four punctuation characters), then the shape's own end.
_END = f"(?!{_P}{{0,4}}[0-9])" + _AFTER
_SPAN = re.Match.span
_KIND = operator.attrgetter("lastindex")


def fused_chains(areas: list[str], fewest: int) -> re.Pattern[str] | None:
    """The chain-or-number regex for ASCII text: chains of ``fewest`` digits or more (as
    ``scan.digit_chain``: digits joined by at most four punctuation characters), where a
    chain that ``FastPhones`` settles by its whole shape (area codes ``areas``) matches with a
    group of its own (``lastindex`` is set). ``[0-9]`` is ``\\d`` on ASCII text only. None
    without area codes (no national +1 region, or the fast path off)."""
    if not areas:
        return None
    trie = _digit_trie(areas)
    area = rf"(?:\((?:{trie})\) ?|(?:{trie})[ .-])"
    chain = f"(?=(?:{_P}{{0,4}}+[0-9]){{{max(0, fewest - 1)}}})[0-9]*+(?:{_P}{{1,4}}+[0-9]++)*+"
    tails: dict[str, list[str]] = {}
    for code in sorted(areas):
        tails.setdefault(code[0], []).append(code[1:])
    branches = [
        rf"\+{_BEFORE_1}1[ .-]?{area}{_REST}{_END}()",
        rf"\({_BEFORE_1}(?:{trie})\) ?{_REST}{_END}()",
        f"0{chain}",
        rf"1(?:{_BEFORE_1}[ .-]{area}{_REST}{_END}()|{chain})",
    ]
    for first in "23456789":
        if first in tails:
            rest = _digit_trie([f"{first}{tail}" for tail in tails[first]])[1:]  # "2(?:…)" -> "(?:…)"
            branches.append(f"{first}(?:{_BEFORE_1}{rest}[ .-]{_REST}{_END}()|{chain})")
        else:
            branches.append(f"{first}{chain}")
    return re.compile("|".join(branches))


def split_chains(
    text: str, fused: re.Pattern[str], classes: bytes
) -> tuple[list[Chain], list[tuple[int, int]]]:
    """(chains, numbers): the digit chains of ASCII ``text`` that are not whole-shape numbers,
    as (start, end, digit count, block count), and the spans of those that are, in C loops:
    counts are read from ``classes`` (the text through ``scan.CHAIN``)."""
    matches = list(fused.finditer(text))
    kinds = list(map(_KIND, matches))
    numbers = list(map(_SPAN, compress(matches, kinds)))
    if len(numbers) == len(matches):
        return [], numbers
    spans = list(map(_SPAN, compress(matches, map(operator.not_, kinds))))
    starts = list(map(operator.itemgetter(0), spans))
    ends = list(map(operator.itemgetter(1), spans))
    digits = map(classes.count, repeat(b"0"), starts, ends)
    blocks = map(operator.add, map(classes.count, repeat(b"-0"), starts, ends), repeat(1))
    return list(zip(starts, ends, digits, blocks, strict=True)), numbers
