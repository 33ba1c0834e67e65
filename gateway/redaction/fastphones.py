"""The fast path for the common North American shapes: settled without phonenumbers' matcher.

A 2,500-row contact list cost 2.8 s through python-phonenumbers' matcher (~220-770 us a
number). The shapes a CSV export or a signature writes, ``(415) 555-2671``,
``415-555-2671``, ``415.555.2671``, ``415 555 2671``, with ``1`` or ``+1`` before, between
whitespace or delimiters, are settled here from phonenumbers' own metadata and type check:
the matcher would find exactly the written span when (and only when) the national number is
*valid*. Anything else (another shape, an extension, an odd neighbour) is left to the matcher,
so this never finds what the matcher would not; the property tests compare both on random
numbers and contexts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from phonenumbers import PhoneNumberMatcher
from phonenumbers.phonenumbermatcher import _LEAD_CLASS_CHARS, _PATTERN, _SECOND_NUMBER_START_PATTERN  # type: ignore[attr-defined]  # private, absent from the stubs
from phonenumbers.phonenumberutil import (
    _EXTN_PATTERNS_FOR_MATCHING,
    _VALID_PUNCTUATION,
    COUNTRY_CODE_TO_REGION_CODE,
)

from gateway.redaction.phones import PhonePrecheck, _rules

#: Characters around a number that phonenumbers' matcher accepts without looking further.
#: Not "[" before: it opens a bracket, and the matcher's span then starts with it.
SAFE_BEFORE = " \t\n\r,;:{\"'=|>"
SAFE_AFTER = " \t\n\r,;)]}\"'|<!?"
#: Area code and exchange start with 2-9 (NANP), so the grouping is the one phonenumbers
#: formats US numbers with. One regex decides the shape *and* the neighbours (a safe
#: character or the text's edge on each side; a full stop only before a space, a line break or
#: the end; no extension after, which makes the matcher's span longer): ~1.5 us a number
#: instead of ~4 us of Python checks.
_BEFORE = (
    "(?<![^" + re.escape(SAFE_BEFORE) + "])"
    # no "+" in the 4 characters before ("+ 1 …", "+ +1 …": the matcher reads those its own way)
    r"(?s:(?<!\+)(?<!\+.)(?<!\+..)(?<!\+...))"
)
#: phonenumbers' own extension patterns (``;ext=12``, `` int 5``, `` anexo 12``…), groups made
#: non-capturing: a number followed by one is left to the matcher (its span takes the extension).
_EXTENSION = re.sub(r"\((?=\\d\{)", "(?:", _EXTN_PATTERNS_FOR_MATCHING)
AFTER_IN_FULL = (
    r"(?:\Z|(?=[" + re.escape(SAFE_AFTER) + r"]|\.(?:[ \n]|\Z))"
    r"(?![ \t,]{0,3}(?i:[#x]|e?xt|extension|ext\.))(?!(?i:" + _EXTENSION + ")))"
)
#: The safe neighbours no extension starts with (each of phonenumbers' extension patterns,
#: and the look-ahead for ``x``/``ext`` before them, starts with one of " \t,;-", a letter, a
#: digit or a symbol such as "#"): after one, as after the line break that ends a CSV row,
#: ``AFTER_IN_FULL`` holds without its two extension look-aheads being tried (they were half
#: of what settling a contact list's number cost: 2,500 numbers, ~0.9 ms).
QUICK_AFTER = "".join(c for c in SAFE_AFTER if c not in " \t,;")
_AFTER = "(?:(?=[" + re.escape(QUICK_AFTER) + "])|" + AFTER_IN_FULL + ")"
_SETTLE = re.compile(
    _BEFORE + r"(\+ ?1[ .-]?|1[ .-])?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d)[ .-])([2-9]\d\d)[ .-](\d{4})" + _AFTER
)


def _digit_trie(codes: list[str]) -> str:
    """A regex for exactly these three-digit codes, as a trie (``2(?:0[1-5]|1[2-9])|…``):
    ``re`` tries alternatives in order, so 444 flat alternatives would cost ~400 tests."""
    tree: dict[str, dict[str, str]] = {}
    for code in sorted(codes):
        tree.setdefault(code[0], {}).setdefault(code[1], "")
        tree[code[0]][code[1]] += code[2]
    return "|".join(
        first + "(?:" + "|".join(f"{second}[{thirds}]" for second, thirds in seconds.items()) + ")"
        for first, seconds in tree.items()
    )


def settled_shape(areas: list[str]) -> re.Pattern[str] | None:
    """``_SETTLE`` with the area code limited to ``areas`` and no groups: a match is a number
    the fast path settles without reading its digits (every number of such an area code with
    an exchange of 2-9 is valid). ``_SETTLE`` has one parse at a position (its docstring), so
    where this matches, ``_SETTLE`` matches the same span."""
    if not areas:
        return None
    trie = _digit_trie(areas)
    return re.compile(
        _BEFORE
        + rf"(?:\+ ?1[ .-]?|1[ .-])?(?:\((?:{trie})\) ?|(?:{trie})[ .-])[2-9]\d\d[ .-]\d{{4}}"
        + _AFTER
    )


#: What may stand between a matcher candidate's lead (``(``, ``[``, ``+``) and the ``+`` of a
#: number: if one of the leads occurs in the run of these before it, the matcher's candidate
#: starts earlier (``( +44 …``), and the plus path leaves the chain to the matcher.
_LEADS = frozenset(_LEAD_CLASS_CHARS)
_BEFORE_RUN = frozenset(_VALID_PUNCTUATION) | _LEADS


#: A character ``\d`` matches and no other atom of the validity regex does (ARABIC-INDIC
#: DIGIT ZERO): a wildcard digit for ``ValidPrefixes``.
_ANY_DIGIT = "\u0660"
#: The length proofs are made for (a NANP national number as the fast path reads it).
_PROVEN_LENGTH = 10
#: Prefixes remembered at most (each is a few bytes: ~1 MB when full).
_MAX_PREFIXES = 50_000


class ValidPrefixes:
    r"""Validity of a national number decided by its first digits where that is *proven*.

    The regex (``_Rules.valid_by_type_regex``) has only positive constructs (digits, classes,
    ``\d``, groups, alternation, repetition, lookaheads; ``proof_holds`` checks that), so it
    is monotone: if it fullmatches ``prefix`` followed by wildcard digits that only ``\d``
    accepts, it fullmatches the prefix followed by *any* digits (the same path reads each of
    them through the same ``\d``). NANP validity is mostly decided by the area code and the
    exchange's first digit (``212`` + ``[2-9]``), so after one proof per such prefix a number
    costs two dictionary lookups instead of a ~14 KB alternation (~0.5 us). Where no prefix
    is proven valid, the regex answers; the result is the regex's in every case (tested
    against it on generated numbers, and against phonenumbers through the fast-path tests)."""

    __slots__ = ("_known", "_regex", "heads")

    def __init__(self, regex: re.Pattern[str]) -> None:
        self._regex = regex
        self._known: dict[str, bool] = {}
        #: First four digits -> every ten-digit number starting with them is proven valid
        #: (by its first three or all four); read directly by ``FastPhones.settle_chains``.
        self.heads: dict[str, bool] = {}

    @staticmethod
    def proof_holds(regex: re.Pattern[str]) -> bool:
        r"""The regex has no construct that could reject a digit ``\d`` accepts."""
        p = regex.pattern
        return not any(
            tok in p for tok in ("[^", "(?!", "(?<!", ".", "\\D", "\\W", "\\w", "\\S", "\\s", "\\b", "\\B")
        )

    def _proof(self, prefix: str) -> bool:
        known = self._known
        ok = known.get(prefix)
        if ok is None:
            ok = self._regex.fullmatch(prefix + _ANY_DIGIT * (_PROVEN_LENGTH - len(prefix))) is not None
            if len(known) < _MAX_PREFIXES:
                known[prefix] = ok
        return ok

    def proven(self, head: str) -> bool:
        """Every ten-digit number that starts with the four digits ``head`` is valid."""
        ok = self.heads.get(head)
        if ok is None:
            ok = self._proof(head[:3]) or self._proof(head)
            if len(self.heads) < _MAX_PREFIXES:
                self.heads[head] = ok
        return ok

    def fullmatch(self, nsn: str) -> bool:
        """``regex.fullmatch(nsn)``; proofs are made and kept for ten-digit numbers only (a
        proof holds for one length)."""
        if len(nsn) == _PROVEN_LENGTH and self.proven(nsn[:4]):
            return True
        return self._regex.fullmatch(nsn) is not None


class FastPhones:
    """``settle(text, start, end)``: the span of the number the chain ``text[start:end]`` is,
    or ``None`` when the matcher must decide."""

    def __init__(self, regions: tuple[str, ...], leniency: int) -> None:
        nanp = _rules(1)
        #: Only where "valid, grouped as the region groups" is the rule (leniency 1-2) and
        #: a region of +1 is configured (or a +1 number can be found anywhere).
        self.enabled = leniency in (1, 2) and nanp is not None
        #: ``_Rules.valid_by_type`` as one regex (the lengths, the general pattern as a
        #: lookahead, then the type patterns): one C call a number.
        regex = nanp.valid_by_type_regex() if nanp is not None else None
        if regex is not None and not ValidPrefixes.proof_holds(regex):  # pragma: no cover - metadata change
            regex = None
        self._valid = regex
        self._prefixes = ValidPrefixes(regex) if regex is not None else None
        self._national = any(r in COUNTRY_CODE_TO_REGION_CODE.get(1, ()) for r in regions)
        self._leniency = leniency
        #: Any configured region serves ``settle_plus`` (a ``+`` number ignores the region).
        self._plus_region = regions[0] if regions and self.enabled else None
        #: The pre-filter's validity pre-check, first: a "+99 …" it rejects costs no parse.
        self._possible = PhonePrecheck(regions, leniency).possible
        #: Area codes whose every number with an exchange of 2-9 is proven valid (444 of 800
        #: today; 8,000 proofs, ~12 ms once), as one regex: such a number is settled by one
        #: C call, without its digits read into Python (a contact list: ~0.5 us a number).
        #: National shapes only: without a +1 region a number needs its "+1" lead checked.
        self._whole: re.Pattern[str] | None = None
        #: Those area codes (``wholechains.py`` settles such numbers in the chain scan itself).
        self.whole_areas: list[str] = []
        if self._prefixes is not None and self._national and self.enabled:
            proven = self._prefixes.proven
            self.whole_areas = [
                str(a) for a in range(200, 1000) if all(proven(f"{a}{d}") for d in range(2, 10))
            ]
            self._whole = settled_shape(self.whole_areas)

    def settle_plus(self, text: str, start: int, end: int) -> tuple[int, int] | None:
        """A number written with ``+`` (``+44 20 7946 0958``) settled by phonenumbers' own
        check of the exact candidate its matcher would take, instead of one matcher scan per
        configured region (~0.2 ms each). The candidate is the matcher's own ``_PATTERN`` match
        at the ``+``, trimmed as ``PhoneNumberMatcher._find`` trims it, and only when no lead
        character before the ``+`` could start it earlier; ``_extract_match`` then applies the
        same date, time-stamp, neighbour and leniency checks. A number with ``+`` is parsed
        without its default region, so the answer is every region's; only the whole candidate
        is accepted (an inner match is region-dependent: the matcher decides it). Each call
        parses a number (~0.1 ms), so it is charged as a matcher candidate (issue 18)."""
        s = start - 1
        if s < 0 or text[s] != "+" or self._plus_region is None or not self._possible(text, start, end):
            return None
        k = s - 1
        while k >= 0 and text[k] in _BEFORE_RUN:
            if text[k] in _LEADS:
                return None
            k -= 1
        m = _PATTERN.match(text, s)
        if m is None:
            return None
        matcher = PhoneNumberMatcher(text, self._plus_region, leniency=self._leniency)
        candidate = matcher._trim_after_first_match(_SECOND_NUMBER_START_PATTERN, text[s : m.end()])
        if s + len(candidate) != end:
            return None
        if len(candidate) < matcher._min_candidate_length:
            return None
        found = matcher._extract_match(candidate, s)
        if found is None or found.start != s or found.end != end:
            return None
        return (s, end)

    def settle(self, text: str, start: int, end: int) -> tuple[int, int] | None:
        s = start
        if s and text[s - 1] == "(":
            s -= 1
        if s and text[s - 1] == "+":
            s -= 1
        # One parse only (a leading "1" or "+" can only be the lead; the space after ")" is
        # taken when present), so the first match is the full match when it ends at ``end``.
        m = _SETTLE.match(text, s)
        if m is None or m.end() != end:
            return self.settle_plus(text, start, end)
        lead, area, area2, exchange, line = m.groups()
        if not (self._national or (lead and "+" in lead)):
            return None
        if self._valid is None or self._valid.fullmatch((area or area2) + exchange + line) is None:
            return None
        return (s, end)

    def settle_chains(
        self,
        text: str,
        chains: Iterable[tuple[int, int, int, int]],
        min_digits: int,
        no_single: bool,
        direct: list[tuple[int, int]],
    ) -> tuple[list[tuple[int, int, int, int]], int, int]:
        """``settle`` over many chains in one loop (a contact list: 2,500 of them; a Python
        call and its lookups per chain were a third of the phone family's cost): chains with
        fewer than ``min_digits`` digits, or of one block when ``no_single``, are dropped;
        the spans settled are appended to ``direct``; returns the chains left for the
        matcher, how many were settled from their shape, and how many by ``settle_plus``
        (charged as matcher candidates). Exactly ``settle``, chain by chain (tested)."""
        match = _SETTLE.match
        prefixes, valid = self._prefixes, self._valid
        if prefixes is None or valid is None:  # pragma: no cover - metadata change: nothing is settled
            return [c for c in chains if c[2] >= min_digits and not (c[3] == 1 and no_single)], 0, 0
        # ``prefixes.fullmatch`` inlined: a number whose first four digits are proven valid
        # (nearly every number of a contact list) costs one dictionary lookup.
        heads, proven, regex = prefixes.heads, prefixes.proven, valid.fullmatch
        whole = self._whole.match if self._whole is not None else None
        national = self._national
        rest: list[tuple[int, int, int, int]] = []
        keep = rest.append
        add = direct.append
        before = len(direct)
        verified = 0
        plus = self.settle_plus
        for chain in chains:
            start, end, digits, blocks = chain
            if digits < min_digits:
                continue
            if blocks == 1:  # one block has no grouping to settle
                if not no_single:
                    keep(chain)
                continue
            s = start
            m = None
            if digits == 10 or digits == 11:  # the shapes' digits (and a lead "1"): dates, amounts skip
                if s:  # a "(" before the chain, a "+" before that, or a "+" alone
                    c = text[s - 1]
                    if c == "(":
                        s -= 1
                        if s and text[s - 1] == "+":
                            s -= 1
                    elif c == "+":
                        s -= 1
                if whole is not None:
                    m = whole(text, s)
                    if m is not None and m.end() == end:
                        add((s, end))
                        continue
                m = match(text, s)
            if m is None or m.end() != end:
                if start and text[start - 1] == "+":
                    span = plus(text, start, end)
                    if span is not None:
                        verified += 1
                        add(span)
                        continue
                keep(chain)
                continue
            lead, area, area2, exchange, line = m.groups()
            if not national and not (lead and "+" in lead):
                keep(chain)
                continue
            area = area or area2
            head = area + exchange[0]
            ok = heads.get(head)
            if ok is None:
                ok = proven(head)
            if not ok and regex(area + exchange + line) is None:
                keep(chain)
                continue
            add((s, end))
        return rest, len(direct) - before - verified, verified
