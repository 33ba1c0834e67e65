"""A necessary condition for ``RedactionEngine.detect`` to find anything, at about half its cost.

A streamed answer is analysed in overlapping windows (``stream.StreamRedactor``): a 2 KB answer
in 3-character deltas is ~17 windows of ~320 characters, and most of them hold nothing that
could start a match. ``detect`` skips the recognizers for such a window too, but only after
every family has asked its own pre-filter question, one by one (~20 of them). ``Gate`` asks
them derived from the very same families (``prefilter.Family``), so it can only be looser,
never stricter:

* ``literal`` families (secret prefixes, deny lists): one combined search for their
  case-sensitive literals, one on the lower-cased text for the others (each family's extra
  ``gate`` is ignored: looser);
* ``regex`` families: their own question (``prefilter.windows``: the trigger's matches through
  the family's fast finder, then ``accept``), which is exact;
* ``chain`` families: only when the text has a digit chain (``Scan.chains``, the very chains
  ``windows`` reads), their own question: a 6-digit id or an amount is a chain no family
  takes;
* any other kind (``always``: URL, NER types, or a kind added later): always "maybe".

It runs on the normalised view (``normalize.View``), as ``detect`` does. ``False`` means
``detect(text) == ()`` (a test checks this on the corpus and on random windows); ``True``
means only "ask ``detect``".
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.redaction.normalize import View
from gateway.redaction.prefilter import Family, Scan, windows
from gateway.redaction.scan import ChainScanner, any_literal


class Gate:
    __slots__ = ("_always", "_chain", "_chain_families", "_ci", "_cs", "_regex_families")

    def __init__(self, families: Sequence[Family], chain: ChainScanner) -> None:
        cs: list[str] = []
        ci: list[str] = []
        regex_families: list[Family] = []
        chain_families: list[Family] = []
        always = False
        for f in families:
            if f.kind == "literal":
                cs.extend(f.cs_literals)
                ci.extend(f.ci_literals)
            elif f.kind == "regex":
                regex_families.append(f)
            elif f.kind == "chain":
                chain_families.append(f)
            else:  # "always", or a kind this gate does not know: never skip
                always = True
        self._always = always
        self._cs = any_literal(cs)
        self._ci = any_literal(ci)
        # The cheapest first: "@" before the dotted-number, IBAN and crypto finders.
        self._regex_families = tuple(sorted(regex_families, key=lambda f: f.needs_digit))
        self._chain = chain
        self._chain_families = tuple(chain_families)

    def may_find(self, text: str) -> bool:
        """False only when ``detect(text)`` is certainly empty."""
        if self._always:
            return True
        if not text:
            return False
        view = View(text).text
        if self._cs is not None and self._cs.search(view) is not None:
            return True
        if self._ci is not None and self._ci.search(view.lower()) is not None:
            return True
        # Regex families: their own question straight away (``windows`` finds the trigger's
        # matches with the family's fast finder, then applies ``accept``).
        scan = Scan(view, self._chain)
        for family in self._regex_families:
            if self._fires(family, scan):
                return True
        if self._chain_families and (scan.chains or scan.whole):  # the chains windows() itself reads
            return any(self._fires(f, scan) for f in self._chain_families)
        return False

    @staticmethod
    def _fires(family: Family, scan: Scan) -> bool:
        """The family's own pre-filter question: windows to analyse, or spans it settles."""
        direct: list[tuple[int, int]] | None = [] if family.direct is not None else None
        return bool(windows(family, scan, None, direct)) or bool(direct)
