"""Which groups of literals occur in a text, found in one pass (Hyperscan) for all of them.

The pre-filter asks "does any of these literals occur?" for many groups: each secret family's
prefixes (``sk-``, ``AKIA``, ``eyJ`` …, as written), its words in any case (``secret``,
``bearer``, ``pass`` …), each deny list, and the phone labels (``call``, ``tel``, ``no`` …). In
``re`` that was a shared alternation, ``in`` tests per family and word, and the label
alternation over the lower-cased text: ~65 us of a new 2 KB message's ~260 us of detection,
~350 us of a 20 KB one's ~1.7 ms (in process, load ~4). Hyperscan matches every literal of
every group in one pass over the lower-cased text (~3 and ~12 us), each literal reported at
most once (``HS_FLAG_SINGLEMATCH``).

A case-sensitive literal is matched lower-cased (``lit in text`` implies ``lit.lower() in
text.lower()``: ``str.lower`` maps each character on its own) and then confirmed with ``in``
on the text, so every group's answer is exactly the ``in`` tests it replaces (tested).

Hyperscan needs an x86-64 CPU (its wheels exist for nothing else): without the module, each
group is answered by ``re`` (``scan.any_literal``) as before, behind one shared search when
there are several groups (most texts hold no secret literal at all).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence

from gateway.redaction import scan as _scan
from gateway.redaction.scan import Finder, Scan, Spots, any_literal

try:  # pragma: no cover - which branch runs depends on the platform
    import hyperscan
except ImportError:  # pragma: no cover
    hyperscan = None  # type: ignore[assignment]  # no Hyperscan here: the `re` engine answers

#: A few words in any case: ``in`` each on the lowered text (~20 us a word for 20 KB) beats a
#: pass of their alternation in ``re`` (~160 us: its first letters are common ones).
_FEW_WORDS = 8

#: A group: (literals compared as written, literals compared in any case).
Group = tuple[Sequence[str], Sequence[str]]


class LiteralIndex:
    """The groups of literals that occur in a text, computed once per ``Scan`` (``scan.memo``)."""

    def __init__(self, groups: Sequence[Group], *, engine: str = "auto") -> None:
        self._cs = [tuple(cs) for cs, _ in groups]
        self._ci = [tuple(w.lower() for w in ci) for _, ci in groups]
        self._key = object()
        use = hyperscan is not None if engine == "auto" else engine == "hyperscan"
        self.engine = "hyperscan" if use else "re"
        self._db: hyperscan.Database | None = None
        if use:
            self._build()
        else:
            self._res = [
                (any_literal(list(cs)), _words(ci)) for cs, ci in zip(self._cs, self._ci, strict=True)
            ]
            every_cs = [lit for cs in self._cs for lit in cs]
            every_ci = [w for ci in self._ci for w in ci]
            self._any = (any_literal(every_cs), _words(every_ci)) if len(groups) > 1 else None

    def gate(self, group: int) -> Callable[[Scan], bool]:
        """``scan -> bool``: does any literal of ``group`` occur in the scan's text?"""

        def occurs(scan: Scan) -> bool:
            return group in self.found(scan)

        return occurs

    def found(self, scan: Scan) -> frozenset[int]:
        """The indexes of the groups with a literal in ``scan.text`` (memoised on the scan)."""
        hit = scan.memo.get(self._key)
        if not isinstance(hit, frozenset):
            db = self._db
            hit = scan.memo[self._key] = self._hyperscan(db, scan) if db is not None else self._re(scan)
        return hit

    # -- Hyperscan ---------------------------------------------------------------------------

    def _build(self) -> None:
        #: Each distinct lower-cased literal once; what each stands for: (group, literal or
        #: None): a literal to confirm as written, None when the match itself is the answer.
        patterns: dict[str, list[tuple[int, str | None]]] = {}
        self._always: set[int] = set()
        for g, (cs, ci) in enumerate(zip(self._cs, self._ci, strict=True)):
            for lit in cs:
                patterns.setdefault(lit.lower(), []).append((g, lit))
            for word in ci:
                patterns.setdefault(word, []).append((g, None))
        for pat, users in list(patterns.items()):
            if not pat:  # the empty literal occurs in every text
                self._always.update(g for g, _ in users)
                del patterns[pat]
        self._meaning = list(patterns.values())
        if not patterns:
            return
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        db.compile(
            expressions=[p.encode("utf-8", "surrogatepass") for p in patterns],
            ids=list(range(len(patterns))),
            flags=hyperscan.HS_FLAG_SINGLEMATCH,
            literal=True,
        )
        self._db = db
        self._local = threading.local()  # a scratch space is one scan's at a time

    def _hyperscan(self, db: hyperscan.Database, scan: Scan) -> frozenset[int]:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(db)
        ids: list[int] = []
        db.scan(
            scan.lower.encode("utf-8", "surrogatepass"),
            match_event_handler=lambda i, _a, _b, _f, _c: ids.append(i),
            scratch=scratch,
        )
        found = set(self._always)
        text = scan.text
        for i in ids:
            for g, lit in self._meaning[i]:
                if g not in found and (lit is None or lit in text):
                    found.add(g)
        return frozenset(found)

    # -- re (no Hyperscan) -------------------------------------------------------------------

    def _re(self, scan: Scan) -> frozenset[int]:
        if self._any is not None and not _occurs(scan, *self._any):
            return frozenset()
        return frozenset(g for g, (cs, ci) in enumerate(self._res) if _occurs(scan, cs, ci))


def words_in_lower(words: tuple[str, ...]) -> Finder:
    """``scan.words_in_lower`` (every occurrence of each word, in any case) with all words
    found in one Hyperscan pass over an ASCII text's lower-cased copy instead of a
    ``str.find`` loop per word (the labelled-secret family's five key words in a 20 KB
    message: ~74 us of finds). Other texts, and without Hyperscan, take the loops."""
    slow = _scan.words_in_lower(words)
    if hyperscan is None or not words or not all(w and w.isascii() and w == w.lower() for w in words):
        return slow
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[w.encode() for w in words], ids=list(range(len(words))), flags=0, literal=True)
    lengths = [len(w) for w in words]
    local = threading.local()  # a scratch space is one scan's at a time

    def find(scan: Scan) -> Spots | None:
        if not scan.ascii:
            return slow(scan)
        scratch = getattr(local, "scratch", None)
        if scratch is None:
            scratch = local.scratch = hyperscan.Scratch(db)
        spots: Spots = []
        add = spots.append
        db.scan(
            scan.lower.encode("ascii"),
            match_event_handler=lambda i, _a, end, _f, _c: add((end - lengths[i], end)),
            scratch=scratch,
        )
        spots.sort()
        return spots

    return find


#: Words in any case: a few as a tuple (``in`` each), many as one alternation, none as None.
Words = tuple[str, ...] | re.Pattern[str] | None


def _words(words: Sequence[str]) -> Words:
    """A few words as a tuple for ``in`` tests, many as one alternation, none as None."""
    if not words:
        return None
    distinct = tuple(sorted(set(words)))
    return distinct if len(distinct) <= _FEW_WORDS else any_literal(list(distinct))


def _occurs(scan: Scan, cs: re.Pattern[str] | None, ci: Words) -> bool:
    if cs is not None and cs.search(scan.text) is not None:
        return True
    if isinstance(ci, tuple):
        lower = scan.lower
        return any(word in lower for word in ci)
    return ci is not None and ci.search(scan.lower) is not None
