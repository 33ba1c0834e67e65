"""A fast pre-filter: which parts of a text can contain which entity at all.

Presidio costs grow with text length, dominated by python-phonenumbers trying every digit
group (~76 ms for 20 KB of text with numbers, even with 2 regions). Each recognizer family
below has a *trigger*, a necessary condition much cheaper than the recognizers: a literal
the text must contain (the prefix of a secret, a deny-listed word: one ``str.find``), a
short regex ("@" for e-mail, three dots for IPv4, two colons for IPv6), or a *digit chain*
(digits separated by at most four phone-number punctuation characters, exactly how
phonenumbers connects digit blocks; one scan serves phone numbers, cards and SSNs). A family
with no trigger in a text is skipped. A family whose matches need only local context runs
on small *windows* around its triggers instead of the whole text; phone chains are first
checked against phonenumbers' own validity rules (``phones.py``), which drops dates, IP
addresses and timestamps before the expensive matcher sees them.

Windows are widened by a margin longer than the family's longest pattern and then to the next
whitespace (phone windows: to the end of adjacent digits), so each match sees the same
neighbourhood as in the whole text. The corpus test proves recall is unchanged
(pre-filtered analysis == full analysis on every corpus line and on long mixed texts).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from gateway.redaction import accepts
from gateway.redaction.accepts import CARD, Accept, ip_start_ok, label_near, plus_starts, ssn_within, within
from gateway.redaction.edges import left_digits, left_edge, right_digits, right_edge
from gateway.redaction.fastphones import FastPhones
from gateway.redaction.literals import LiteralIndex, words_in_lower
from gateway.redaction.phonelen import min_phone_digits
from gateway.redaction.phones import (
    LABEL_KEYS,
    LABEL_LOOKBACK,
    LABELLED_PHONE,
    MIN_LABELLED_DIGITS,
    PhonePrecheck,
)
from gateway.redaction.scan import (
    ChainScanner,
    ChainSubset,
    Finder,
    Scan,
    any_of,
    chains_after_labels,
    digit_chain,
    in_alnum_runs,
    letters_then_digits,
    ssn_chains,
)
from gateway.redaction.secrets import LABELLED_SECRET, SECRET_LABEL_HEAD, SECRET_LABEL_KEYS, SECRET_PATTERNS
from gateway.redaction.wholechains import fused_chains

#: Windows closer than this are merged.
_MERGE_GAP = 16
#: When windows cover more than this share of the text, analyse the whole text once.
_WHOLE_TEXT_SHARE = 0.6
#: phonenumbers takes at most this many digit blocks into one candidate: a longer chain is
#: several candidates, each validated on its own (the budget counts them).
_BLOCKS_PER_CANDIDATE = 20
_END = operator.itemgetter(1)  # a span's end

#: ``accept`` of a chain family that also reads the chain's digit and block counts.
ChainAccept = Callable[[Scan, int, int, int, int], bool]
Direct = Callable[[str, int, int], "tuple[int, int] | bool | None"]
Chain = tuple[int, int, int, int]
#: ``Direct`` over many chains at once (``FastPhones.settle_chains``).
DirectMany = Callable[[str, Iterable[Chain], int, bool, list[tuple[int, int]]], tuple[list[Chain], int, int]]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    entities: frozenset[str]
    #: "always" (whole text), "literal" (whole text if a literal occurs), "regex" or "chain"
    #: (windows around regex matches / digit chains).
    kind: str
    literals: tuple[str, ...] = ()
    #: ``literals`` split once: compared with the text as is, and with its lower-cased form.
    cs_literals: tuple[str, ...] = ()
    ci_literals: tuple[str, ...] = ()
    trigger: re.Pattern[str] | None = None
    #: "chain" families: fewest digits a chain needs, and an optional finer check of it.
    min_digits: int = 0
    accept: Accept | None = None
    #: "chain" families: ``accept`` given the chain's digit and block counts too (used instead).
    accept_chain: ChainAccept | None = None
    pad_left: int = 0
    pad_right: int = 0
    #: Widen windows to whitespace (token-shaped entities) or only over adjacent digits (phones).
    to_whitespace: bool = True
    #: Analyse the whole text instead when windows cover most of it (regex recognizers cost
    #: per character); never for phones (the matcher costs per digit group: windows are
    #: always cheaper).
    collapse: bool = True
    #: No match without a digit: skipped on text without one (no regex scan at all).
    needs_digit: bool = False
    #: "chain" families: settle a chain without the recognizer when its shape is unambiguous
    #: (``fastphones.FastPhones``): a span, ``False`` (certainly none), or ``None`` (ask it).
    direct: Direct | None = None
    #: ``direct`` as one loop over the chains (the same answers, without a call per chain).
    direct_many: DirectMany | None = None
    #: "regex" families: the trigger's matches found faster (``scan.py``), or None (use it).
    finder: Finder | None = None
    #: "chain" families: the indexes of the only chains ``accept`` can take (``scan.py``),
    #: or None (every chain).
    subset: ChainSubset | None = None
    #: A whole-text necessary condition checked before any trigger, its answers shared by
    #: several families and computed once per text (``literals.LiteralIndex``: which secret,
    #: deny-list and phone-label literals occur, one pass for all).
    precondition: Callable[[Scan], bool] | None = None
    #: "chain" families: a chain of one digit block is accepted only after a "+" (phones:
    #: a bare run is an id), so none is when the text has no "+" (a JSON of 2,500 ids).
    single_needs_plus: bool = False
    #: "chain" families: a chain ``accept`` took is dropped when the fast path settles it as
    #: a number (found anyway, the same span): read from what the phone family settled in
    #: this text (``Scan.settled``), else asked of this function (``FastPhones.settle``).
    unless_settled: Direct | None = None


class Charge(Protocol):
    """Where a family's candidate count is charged (``budget.WorkBudget``)."""

    def take(self, family: str, settled: int, checked: int) -> None: ...


def build_families(
    entities: set[str],
    deny_lists: dict[str, list[str]],
    phone_regions: tuple[str, ...] = ("US", "GB"),
    phone_leniency: int = 2,
) -> tuple[list[Family], ChainScanner]:
    """The families for the configured entity types, and the digit-chain regex they share."""
    families: list[Family] = []

    def add(name: str, members: set[str], kind: str, **kw: object) -> None:
        present = frozenset(members & entities)
        if present:
            families.append(Family(name, present, kind, **kw))  # type: ignore[arg-type]  # the keywords are Family's optional fields

    add("email", {"EMAIL_ADDRESS"}, "regex", trigger=re.compile("@"))
    with_plus, without = min_phone_digits(phone_regions)
    precheck = PhonePrecheck(phone_regions, phone_leniency)
    # Without a "+", a *valid* number is written with at least ``without`` digits (the
    # configured regions' shortest national number, or an international prefix and the
    # shortest "+" number): an amount "1234.56" is none, before its blocks are read (a
    # fresh amount missed the pre-check's cache: ~6 us). Not at POSSIBLE leniency (local-only
    # lengths count there), nor for a region whose national prefix rule rewrites digits.
    unsigned_min = without if precheck.enabled and not precheck.transforms else 0

    def phone_accept(scan: Scan, start: int, end: int, digits: int, blocks: int) -> bool:
        # A bare digit run (one block: a chain starts and ends with a digit) is found only
        # after a label (the "phone_label" family), unless a "+" leads it.
        plus = start in plus_starts(scan)  # phones._plus_before(text, start)
        if not plus and (blocks == 1 or digits < unsigned_min):
            return False
        return precheck.possible_chain(scan.text, start, end, plus)

    fast = FastPhones(phone_regions, phone_leniency)
    add(
        "phone",
        {"PHONE_NUMBER"},
        "chain",
        min_digits=with_plus,  # with a "+"; the pre-check knows the national minimum
        accept_chain=phone_accept,
        single_needs_plus=True,
        direct=fast.settle if fast.enabled else None,
        direct_many=fast.settle_chains if fast.enabled else None,
        needs_digit=True,
        pad_left=12,  # lead characters "+ (" and the character before the number
        pad_right=24,  # extensions ("ext. 12345") and the timestamp check (":30")
        to_whitespace=False,
        collapse=False,
    )
    if "PHONE_NUMBER" in entities:
        # A possible number just after "call", "phone:", "tel" … (phones.LabelledPhoneRecognizer):
        # triggered by a digit chain with a label shortly before it.
        families.append(
            Family(
                "phone_label",
                frozenset({LABELLED_PHONE}),
                "chain",
                min_digits=MIN_LABELLED_DIGITS,
                # A chain the fast path settles as a valid number is found anyway (same span):
                # the labelled recognizer (python-phonenumbers at POSSIBLE, ~1 ms) skips it.
                accept_chain=accepts.label_chain,  # phones.label_before
                unless_settled=fast.settle if fast.enabled else None,
                subset=chains_after_labels(LABEL_LOOKBACK),
                pad_left=48,
                pad_right=24,
                needs_digit=True,
                # A JSON of ids has no label anywhere: no per-chain test.
                precondition=LiteralIndex([((), LABEL_KEYS)]).gate(0),
            )
        )
    # Presidio's card pattern: 13-17 digits with single "-" or " " between groups.
    add(
        "card",
        {"CREDIT_CARD"},
        "chain",
        min_digits=13,
        accept=within(CARD),
        pad_right=8,
        needs_digit=True,
    )
    # Presidio's separated SSN (its weaker patterns score below the threshold) and our
    # labelled one ("SSN: 123456789", the label within 48 characters before).
    add(
        "ssn",
        {"US_SSN"},
        "chain",
        min_digits=9,
        accept=ssn_within,
        subset=ssn_chains,
        pad_left=48,
        pad_right=8,
        needs_digit=True,
    )
    # Two letters and two digits, found from the digits (rare in prose: 3x faster than from the letters).
    add(
        "iban",
        {"IBAN_CODE"},
        "regex",
        trigger=re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)"),
        finder=letters_then_digits,
        pad_left=2,
        pad_right=48,
        needs_digit=True,
    )
    # Literal-led patterns: Python's regex engine scans for the literal first.
    add(
        "ip",
        {"IP_ADDRESS"},
        "regex",
        trigger=re.compile(r"\.\d{1,3}\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:"),
        finder=any_of(re.compile(r"\.\d{1,3}\.\d{1,3}\.\d"), re.compile(r":[0-9A-Fa-f]{0,4}:")),
        accept=ip_start_ok,
        pad_left=24,  # "section 4.2.1.3": the recognizer reads the word before
    )
    crypto = re.compile(r"(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25}")
    add(
        "crypto",
        {"CRYPTO"},
        "regex",
        trigger=crypto,
        finder=in_alnum_runs(crypto, 26),
        pad_right=72,
        needs_digit=True,
    )
    if "PASSWORD" in entities:  # "api_key: …", "token=…": around the label words, the value after
        keys, label = SECRET_LABEL_KEYS, frozenset({LABELLED_SECRET})
        trigger, finder = re.compile("|".join(keys), re.IGNORECASE), words_in_lower(keys)
        families.append(
            Family(
                "secret_label",
                label,
                "regex",
                trigger=trigger,
                finder=finder,
                # A label and its end around the key word (api_key:, secret is): "the public
                # API" costs no window (case c, 20 KB: ~12 windows, ~0.5 ms).
                accept=label_near(SECRET_LABEL_HEAD, 24, 48),
                pad_left=24,
                pad_right=176,
            )
        )
    secret_literals: dict[str, list[str]] = {}
    for p in SECRET_PATTERNS:  # the labelled SSN is found by digit chain, a labelled secret above
        if p.entity not in ("US_SSN", LABELLED_SECRET):
            secret_literals.setdefault(p.entity, []).extend(p.literals)
    for entity, literals in secret_literals.items():
        add(f"secret:{entity}", {entity}, "literal", literals=tuple(literals))
    for name, terms in deny_lists.items():
        add(f"deny:{name}", {name}, "literal", literals=tuple("i:" + t for t in terms))
    # "i:" literals are compared with the lower-cased text
    families = [
        f
        if f.kind != "literal"
        else replace(
            f,
            literals=tuple("i:" + lit[2:].lower() if lit.startswith("i:") else lit for lit in f.literals),
            cs_literals=tuple(lit for lit in f.literals if not lit.startswith("i:")),
            ci_literals=tuple(lit[2:].lower() for lit in f.literals if lit.startswith("i:")),
        )
        for f in families
    ]
    index = LiteralIndex([(f.cs_literals, f.ci_literals) for f in families if f.kind == "literal"])
    gates = iter(range(len(families)))
    families = [
        replace(f, precondition=index.gate(next(gates))) if f.kind == "literal" else f for f in families
    ]
    covered = set().union(*(f.entities for f in families)) if families else set()
    rest = entities - covered
    if rest:
        # URL, NER types and anything else without a cheap necessary condition: always run.
        families.append(Family("always", frozenset(rest), "always"))
    fewest = min((f.min_digits for f in families if f.kind == "chain"), default=6)
    fused = fused_chains(fast.whole_areas if "PHONE_NUMBER" in entities else [], fewest)  # wholechains.py
    return families, ChainScanner(digit_chain(fewest), fused)


def windows(
    family: Family,
    scan: Scan,
    budget: Charge | None = None,
    direct: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """Where ``family`` must be analysed: [] (nowhere) or sorted, disjoint (start, end).

    Its trigger matches are charged to ``budget`` (which raises when it is spent) before any
    recognizer runs. With ``direct`` (a list), a family that can settle chains itself appends
    the spans it found there instead of returning windows for them.
    """
    text = scan.text
    n = len(text)
    if not n or (family.needs_digit and not scan.digits):
        return []
    if family.precondition is not None and not family.precondition(scan):
        return []
    if family.kind == "always":
        return [(0, n)]
    if family.kind == "literal":
        hit = any(lit in text for lit in family.cs_literals) or (
            bool(family.ci_literals) and any(lit in scan.lower for lit in family.ci_literals)
        )
        return [(0, n)] if hit else []
    if family.kind == "chain":
        accept = family.accept
        settle = family.direct if direct is not None else None
        spots = []
        settled = checked = 0
        chains = scan.chains
        subset = family.subset(scan) if family.subset is not None else None
        no_single = family.single_needs_plus and "+" not in text
        todo: Iterable[Chain] = chains if subset is None else (chains[i] for i in subset)
        if settle is not None and family.direct_many is not None and direct is not None:
            # The whole shapes the chain scan settled itself, then the rest (``settle_plus``'s
            # spans count in ``checked``, as matcher candidates).
            direct.extend(scan.whole)
            todo, settled, checked = family.direct_many(text, todo, family.min_digits, no_single, direct)
            settled += len(scan.whole)
            settle = None
            if subset is None:  # every chain was asked: the labelled family may reuse the answers
                scan.settled = (family.min_digits, set(map(_END, direct)))
        unless, accept_chain, known = family.unless_settled, family.accept_chain, scan.settled
        for a, b, digits, blocks in todo:
            if digits < family.min_digits or (blocks == 1 and no_single):
                continue
            if settle is not None and blocks > 1:  # one block has no grouping to settle
                found = settle(text, a, b)
                if found is not None:
                    settled += 1
                    if found is not False:
                        direct.append(found)  # type: ignore[union-attr, arg-type]  # found is a span here: None and False were excluded
                    continue
            if accept_chain is not None:
                ok = accept_chain(scan, a, b, digits, blocks)
            else:
                ok = accept is None or accept(text, a, b)
            if ok:
                if unless is not None:  # a settled span ends where its chain ends
                    if known is not None and blocks > 1 and digits >= known[0]:
                        if b in known[1]:
                            continue
                    elif isinstance(unless(text, a, b), tuple):
                        continue
                spots.append((a, b))
                checked += -(-blocks // _BLOCKS_PER_CANDIDATE)
        if budget is not None:
            budget.take(family.name, settled, checked)
    else:
        accept = family.accept
        hits = family.finder(scan) if family.finder is not None else None
        if hits is None:
            hits = [m.span() for m in family.trigger.finditer(text)] if family.trigger is not None else []
        spots = [(a, b) for a, b in hits if accept is None or accept(text, a, b)]
        if budget is not None:
            budget.take(family.name, 0, len(spots))
    spans: list[tuple[int, int]] = []
    for start, end in spots:
        a, b = max(0, start - family.pad_left), min(n, end + family.pad_right)
        if family.to_whitespace:
            # A start within reach of the last window merges into it wherever its edge is.
            a = a if spans and a <= spans[-1][1] + _MERGE_GAP else left_edge(text, a)
            b = right_edge(text, b)
        else:
            a, b = left_digits(text, a), right_digits(text, b)
        if spans and a <= spans[-1][1] + _MERGE_GAP:
            spans[-1] = (spans[-1][0], max(spans[-1][1], b))
        else:
            spans.append((a, b))
    if family.collapse and spans and sum(b - a for a, b in spans) > _WHOLE_TEXT_SHARE * n:
        return [(0, n)]
    return spans
