"""What the pre-filter's families share about one text, computed once; C-speed finders.

Python's ``re`` has no fast path for a pattern that starts with a character class or an
alternation: it tries the pattern at every character that could begin it, ~50-100 ns each.
On a 57 KB contact list or a JSON of 2,500 ids, where nearly every character is a digit,
the IBAN, crypto and number-joining triggers cost 1-3 ms each and found nothing. ASCII text
is therefore also read as a *class string* (``bytes.translate``: ~20 us for 50 KB), on which
a necessary condition is a plain substring search, and the trigger regex runs only where
that condition holds. Every finder here returns exactly what the regex it replaces finds
(the corpus and property tests compare the pre-filtered analysis with plain Presidio).
"""

from __future__ import annotations

import bisect
import operator
import re
from collections.abc import Callable
from functools import lru_cache
from itertools import accumulate, repeat

from phonenumbers.phonenumberutil import _VALID_PUNCTUATION

from gateway.redaction.normalize import has_digit
from gateway.redaction.phones import LABEL_KEY
from gateway.redaction.wholechains import split_chains

_BLOCK = re.compile(r"\d+")


def _table(classes: dict[str, str], default: str) -> bytes:
    out = bytearray(default.encode() * 256)
    for chars, cls in classes.items():
        for ch in chars:
            out[ord(ch)] = ord(cls)
    return bytes(out)


_DIGITS = "0123456789"
_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: letters -> "a", digits -> "0", the rest -> "."
LETTERS_DIGITS = _table({_LETTERS: "a", _DIGITS: "0"}, ".")
#: letters and digits -> "a", the rest -> " "
ALNUM = _table({_LETTERS + _DIGITS: "a"}, " ")
_PUNCT = re.compile("[" + _VALID_PUNCTUATION + "]")
#: digits -> "0", phone punctuation (the ASCII part of phonenumbers' class) -> "-", the rest -> "."
CHAIN = _table({_DIGITS: "0", "".join(chr(i) for i in range(128) if _PUNCT.fullmatch(chr(i))): "-"}, ".")
_MIN_REPEAT = re.compile(r"\{(\d+),\}$")


@lru_cache(maxsize=8)
def _chain_on_classes(pattern: str) -> re.Pattern[bytes]:
    """``digit_chain``'s regex for the ``CHAIN`` class string: same matches on ASCII
    text, ~2x faster (one byte compare per step instead of a class lookup), and the digit and
    block counts of a match are two ``bytes.count``."""
    m = _MIN_REPEAT.search(pattern)
    if m is None:
        raise ValueError(f"not a digit-chain pattern: {pattern!r}")
    # "0(?:-{0,4}0){n,}", written so that re steps through digit runs, not single digits: a
    # lookahead for the minimum, then whole runs, possessively (a shorter run of "-" never
    # helps: what follows it is another "-"). Same matches (tested), ~25% faster on dense text.
    return re.compile(rb"0(?=(?:-{0,4}+0){%d})0*+(?:-{1,4}+0++)*+" % int(m.group(1)))


def digit_chain(min_digits: int) -> re.Pattern[str]:
    """phonenumbers' candidate shape: digit blocks separated by at most 4 punctuation chars."""
    punct = "[" + _VALID_PUNCTUATION + "]"  # already a character-class body in phonenumbers
    return re.compile(rf"\d(?:{punct}{{0,4}}\d){{{max(0, min_digits - 1)},}}")


def find_chains(text: str, regex: re.Pattern[str]) -> list[tuple[int, int, int, int]]:
    """(start, end, digit count, digit-block count) of every match of the digit-chain regex."""
    if not has_digit(text):
        return []
    if text.isascii():
        return _chains_of_classes(text.encode("ascii").translate(CHAIN), regex)
    chains: list[tuple[int, int, int, int]] = []
    append = chains.append
    for m in regex.finditer(text):
        group = m.group()
        if group.isdigit():  # one block (ids, amounts): no findall
            append((m.start(), m.end(), len(group), 1))
            continue
        blocks = _BLOCK.findall(group)
        append((m.start(), m.end(), sum(map(len, blocks)), len(blocks)))
    return chains


def _chains_of_classes(classes: bytes, regex: re.Pattern[str]) -> list[tuple[int, int, int, int]]:
    """The chains of a class string in C loops (a contact list has 2,500: a Python step
    each, ~0.8 us, was most of the scan): one ``split`` on the chain regex as a group gives
    the gaps and the chains in turn, so their offsets are the running sum of the parts'
    lengths; a chain's digits are its "0"s and its blocks one more than its "-0"s."""
    parts = _split_on_chains(regex.pattern).split(classes)
    if len(parts) == 1:
        return []
    offsets = list(accumulate(map(len, parts), initial=0))
    runs = parts[1::2]
    return list(
        zip(
            offsets[1:-1:2],
            offsets[2::2],
            map(bytes.count, runs, repeat(b"0")),
            map(operator.add, map(bytes.count, runs, repeat(b"-0")), repeat(1)),
            strict=True,
        )
    )


@lru_cache(maxsize=8)
def _split_on_chains(pattern: str) -> re.Pattern[bytes]:
    """``_chain_on_classes`` as one group, for ``split`` (it has no group of its own)."""
    return re.compile(b"(" + _chain_on_classes(pattern).pattern + b")")


class ChainScanner:
    """The digit-chain regex, as the work budget's pre-check (``count``) and the families
    (``split``, through ``Scan``) use it. It keeps nothing about the texts it saw.

    The pre-check does not build the chain list the analysis reads: that is a Python step per
    match (~0.5 us), and building it for the texts of a request about to be refused cost ~1.2
    ms a text of 1,999 numbers (10x1999 numbers: 8-14x a normal call instead of 3-6x). It
    charges a bound (a text's digits over the fewest a chain has: no scan) while that fits
    the allowance, and counts exactly, at C speed (``findall``), only when it does not: a
    contact list that fits is still scanned once, by its analysis.

    With ``fused`` (``wholechains.fused_chains``), the chains of ASCII text whose digits are
    mostly in the whole phone shapes (a contact list) are found by it, those numbers settled
    in the same scan (``split``).
    """

    __slots__ = ("fewest", "fused", "pattern", "regex")

    def __init__(self, regex: re.Pattern[str], fused: re.Pattern[str] | None = None) -> None:
        self.regex = regex
        self.fused = fused
        self.pattern = regex.pattern
        m = _MIN_REPEAT.search(regex.pattern)
        #: Digits in the shortest chain.
        self.fewest = int(m.group(1)) + 1 if m is not None else 1

    def count(self, text: str, allowance: int) -> tuple[int, bool]:
        """(chains, exact): an upper bound on ``text``'s chains when it is within
        ``allowance`` (exact False), else the exact count."""
        if not has_digit(text):
            return 0, True
        if not text.isascii():  # \d is any digit here: bound by the length
            if len(text) // self.fewest <= allowance:
                return len(text) // self.fewest, False
            return len(self.regex.findall(text)), True
        classes = text.encode("ascii").translate(CHAIN)
        bound = classes.count(b"0") // self.fewest
        if bound <= allowance:
            return bound, False
        return len(_chain_on_classes(self.pattern).findall(classes)), True

    def split(self, scan: Scan) -> tuple[list[tuple[int, int, int, int]], list[tuple[int, int]]]:
        """``Scan.chains`` and ``Scan.whole``. The fused scan costs ~0.4 us more per chain that
        is no whole shape and saves ~1 us per one that is: it runs where 16 shapes (``-000-0000``)
        or more hold 40% of the first 8 KB's digits (a contact list; prose pays ~4 us)."""
        classes = scan.classes(CHAIN)
        if classes is None:
            return find_chains(scan.text, self.regex), []
        if self.fused is not None:
            shaped = classes.count(b"-000-0000", 0, 8192)
            if shaped >= 16 and shaped * 25 >= classes.count(b"0", 0, 8192):
                return split_chains(scan.text, self.fused, classes)
        return _chains_of_classes(classes, self.regex), []

    def search(self, text: str) -> re.Match[str] | None:
        return self.regex.search(text)


class Scan:
    """One text as the families see it: lower-cased, digit chains, class strings."""

    __slots__ = (
        "_chains",
        "_classes",
        "_lower",
        "_scanner",
        "_starts",
        "_whole",
        "ascii",
        "digits",
        "memo",
        "settled",
        "text",
    )

    def __init__(self, text: str, chain: ChainScanner) -> None:
        self.text = text
        self._scanner = chain
        self._lower: str | None = None
        self._chains: list[tuple[int, int, int, int]] | None = None
        self._whole: list[tuple[int, int]] = []
        self._starts: list[int] | None = None
        self._classes: dict[bytes, bytes] = {}
        #: Answers several families share, computed by the first that asks (``literals.LiteralIndex``).
        self.memo: dict[object, object] = {}
        self.digits = has_digit(text)
        self.ascii = text.isascii()
        #: (n, ends): the phone family's fast path asked about every chain of n digits or more
        #: and more than one block, and settled those ending at ``ends``; None before it ran.
        #: The labelled family takes these answers instead of settling a chain again (a
        #: ``+44`` number was parsed twice: ~0.1-0.2 ms a number).
        self.settled: tuple[int, set[int]] | None = None

    @property
    def lower(self) -> str:
        if self._lower is None:
            self._lower = self.text.lower()
        return self._lower

    @property
    def chains(self) -> list[tuple[int, int, int, int]]:
        """(start, end, digit count, digit-block count) of every digit chain, but those in
        ``whole``."""
        if self._chains is None:
            self._chains, self._whole = self._scanner.split(self) if self.digits else ([], [])
        return self._chains

    @property
    def whole(self) -> list[tuple[int, int]]:
        """The chains the scanner settled as whole phone shapes (``ChainScanner.split``): the
        phone family's spans; no other chain family takes such a chain (10-11 digits in
        blocks of 1, 3, 3 and 4: no card, no SSN, a label's phone settled anyway)."""
        _ = self.chains  # found together
        return self._whole

    @property
    def chain_starts(self) -> list[int]:
        if self._starts is None:
            self._starts = [c[0] for c in self.chains]
        return self._starts

    def classes(self, table: bytes) -> bytes | None:
        """The text through ``table`` (ASCII text only: offsets are then the same)."""
        if not self.ascii:
            return None
        out = self._classes.get(table)
        if out is None:
            out = self._classes[table] = self.text.encode("ascii").translate(table)
        return out


Spots = list[tuple[int, int]]
Finder = Callable[[Scan], "Spots | None"]
ChainSubset = Callable[[Scan], "list[int] | None"]


def letters_then_digits(scan: Scan) -> Spots | None:
    r"""What ``\d\d(?<=[A-Za-z]{2}\d\d)`` finds (two digits after two letters: an IBAN's
    country and check digits), from a substring search on the class string."""
    classes = scan.classes(LETTERS_DIGITS)
    if classes is None:
        return None
    spots = []
    i = classes.find(b"aa00")
    while i >= 0:
        spots.append((i + 2, i + 4))
        i = classes.find(b"aa00", i + 3)
    return spots


def in_alnum_runs(pattern: re.Pattern[str], shortest: int) -> Finder:
    """``pattern``'s matches, for a pattern whose every match is ``shortest`` or more ASCII
    letters and digits: searched only in such runs (a crypto address is 26+)."""
    need = b"a" * shortest

    def find(scan: Scan) -> Spots | None:
        classes = scan.classes(ALNUM)
        if classes is None:
            return None
        spots: Spots = []
        i = classes.find(need)
        while i >= 0:
            end = classes.find(b" ", i)
            end = len(classes) if end < 0 else end
            spots.extend(m.span() for m in pattern.finditer(scan.text, i, end))
            i = classes.find(need, end)
        return spots

    return find


def any_of(*patterns: re.Pattern[str]) -> Finder:
    """The matches of ``a|b``, when no match of one can overlap a match of the other: each
    alone starts with a literal class ``re`` scans for fast (``\\.`` and ``:`` for IPv4 and
    IPv6: 10-50 us for 20 KB instead of 120-700 us for the alternation)."""

    def find(scan: Scan) -> Spots:
        spots = [m.span() for p in patterns for m in p.finditer(scan.text)]
        spots.sort()
        return spots

    return find


def words_in_lower(words: tuple[str, ...]) -> Finder:
    """Where ``words`` (lower case) occur in any case, by C substring searches; None (use the
    regex) when lowering changed the length (``İ`` lowers to two characters)."""

    def find(scan: Scan) -> Spots | None:
        low = scan.lower
        if len(low) != len(scan.text):
            return None
        spots: Spots = []
        for word in words:
            i = low.find(word)
            while i >= 0:
                spots.append((i, i + len(word)))
                i = low.find(word, i + 1)
        return sorted(spots)

    return find


#: Fewer chains than this, or fewer than one per ``_DENSE`` characters: ``accept`` looks
#: before each of them (cheaper than a scan for keys, which prose is full of).
_FEW_CHAINS = 64
_DENSE = 64


def chains_after_labels(reach: int) -> ChainSubset:
    """Indexes of the chains that may follow a phone label (``phones.label_before``: a whole
    label at most ``reach`` characters before the chain), found from the label keys of the
    whole (lower-cased ASCII) text instead of a look before each of 2,500 chains.

    Every label holds a key that starts at its first character or after a space inside it
    (``call``, ``my number``), where no earlier key match can overlap it, and that key ends
    within the label: so a chain after a label starts within [key end, key start + reach]
    of some key match. ``accept`` still checks each of these exactly.
    """

    def subset(scan: Scan) -> list[int] | None:
        chains = scan.chains
        if len(chains) < _FEW_CHAINS or len(chains) * _DENSE < len(scan.text) or not scan.ascii:
            return None  # few chains for the keys prose has ("no", "ring", "text")
        starts = scan.chain_starts
        out: set[int] = set()
        for m in LABEL_KEY.finditer(scan.lower):
            lo = bisect.bisect_left(starts, m.end())
            hi = bisect.bisect_right(starts, m.start() + reach)
            out.update(range(lo, hi))
        return sorted(out)

    return subset


#: Rough frequency of ASCII characters in prose, code and JSON (higher: more common); a
#: character not listed counts as rare.
_COMMON = dict(
    zip(
        ' etaoinsrhldc-u"mfpg,wyb.:0123456789v/k_ATSICE',
        range(60, 0, -1),
        strict=False,
    )
)


def any_literal(literals: list[str]) -> re.Pattern[str] | None:
    """A regex whose ``search`` finds whether any of ``literals`` occurs, as fast as ``re``
    can: each literal is written from its rarest character, with the characters before it
    in a lookbehind (``sk-`` -> ``k(?<=sk)-``). ``re`` skips ahead to a character that can
    start a branch; with each branch starting at its rarest character (``k``, ``_``, ``J``,
    ``x``) instead of its first (``s``, ``e``, ``g``: in every other word), it stops far less
    often (a 20 KB message: ~2-3x faster). Same answer as the plain alternation (tested)."""
    branches = []
    for lit in sorted(set(literals)):
        if not lit:
            return re.compile("")  # the empty literal occurs everywhere
        i = min(range(len(lit)), key=lambda k: (_COMMON.get(lit[k], 0), k))
        before = f"(?<={re.escape(lit[: i + 1])})" if i else ""
        branches.append(re.escape(lit[i]) + before + re.escape(lit[i + 1 :]))
    return re.compile("|".join(branches)) if branches else None


def ssn_chains(scan: Scan) -> list[int] | None:
    """On dense ASCII text without a run of 9 digits, the chains that may hold a separated
    SSN (``ddd-dd-dddd``: a 2-digit run between single separators): a contact list of 2,500
    phone numbers has none, so no chain is searched. Otherwise None (every chain)."""
    chains = scan.chains
    if len(chains) < _FEW_CHAINS or len(chains) * _DENSE < len(scan.text) or not scan.ascii:
        return None
    classes = scan.classes(CHAIN)
    if classes is None or classes.find(b"000000000") >= 0:
        return None  # a 9-digit run may be an unseparated SSN: ask each chain
    starts = scan.chain_starts
    out: list[int] = []
    i = classes.find(b"-00-")
    while i >= 0:
        k = bisect.bisect_right(starts, i) - 1
        if k >= 0 and chains[k][1] > i + 2 and (not out or out[-1] != k):
            out.append(k)
        i = classes.find(b"-00-", i + 3)
    return out
