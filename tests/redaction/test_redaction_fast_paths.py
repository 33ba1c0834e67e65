"""Each C-speed shortcut of the pre-filter finds exactly what the regex or check it replaces
finds, on random text built from the characters that matter to it, and the edges where a
shortcut says "not mine" still reach the recognizers (a number the fast path rejects that
phonenumbers accepts in context is still found)."""

from __future__ import annotations

import random
import re

import pytest

from gateway.redaction.accepts import _SSN, ssn_within
from gateway.redaction.config import RedactionSettings
from gateway.redaction.fastphones import FastPhones, ValidPrefixes, _digit_trie
from gateway.redaction.normalize import _WS_IN_NUMBER, _may_join
from gateway.redaction.phones import label_before
from gateway.redaction.prefilter import build_families, digit_chain
from gateway.redaction.redactor import Redactor
from gateway.redaction.scan import (
    ChainScanner,
    Scan,
    any_literal,
    any_of,
    chains_after_labels,
    find_chains,
    in_alnum_runs,
    letters_then_digits,
)
from tests.redaction.dense import AREAS, contacts_csv


def _texts(alphabet: str, n: int, seed: int, longest: int = 60) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(n)]


def _scan(text: str) -> Scan:
    return Scan(text, ChainScanner(digit_chain(6)))


def test_the_number_joining_gate_never_hides_a_match() -> None:
    for text in _texts("0123 \t\n\r\f\vab,-", 40_000, 1, 14):
        if _WS_IN_NUMBER.search(text):
            assert _may_join(text), repr(text)


def test_the_iban_trigger_finder_equals_its_regex() -> None:
    trigger = re.compile(r"\d\d(?<=[A-Za-z]{2}\d\d)")
    for text in _texts("aZ0919 .-", 20_000, 2):
        assert letters_then_digits(_scan(text)) == [m.span() for m in trigger.finditer(text)], text


def test_the_crypto_trigger_finder_equals_its_regex() -> None:
    trigger = re.compile(r"(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25}")
    find = in_alnum_runs(trigger, 26)
    rng = random.Random(3)
    for _ in range(5_000):
        text = " ".join(
            "".join(rng.choice("13bcIOl0aZ9") for _ in range(rng.randint(1, 40)))
            for _ in range(rng.randint(1, 4))
        )
        assert find(_scan(text)) == [m.span() for m in trigger.finditer(text)], text


def test_the_ip_trigger_finder_equals_the_alternation() -> None:
    ipv4, ipv6 = r"\.\d{1,3}\.\d{1,3}\.\d", r":[0-9A-Fa-f]{0,4}:"
    both = re.compile(f"{ipv4}|{ipv6}")
    find = any_of(re.compile(ipv4), re.compile(ipv6))
    for text in _texts("0123.:aFg ", 20_000, 4):
        assert find(_scan(text)) == [m.span() for m in both.finditer(text)], text


@pytest.mark.parametrize("fewest", [6, 7, 9])
def test_chains_on_the_class_string_equal_the_regex(fewest: int) -> None:
    regex = digit_chain(fewest)
    for text in _texts("0123456789 -.()x/[]~+a,:\n\t", 20_000, fewest, 40):
        fast = find_chains(text, regex)
        slow = find_chains(text + "\u00e9", regex)  # not ASCII: the regex itself
        assert fast == slow, text


def test_a_scan_reads_the_chains_of_its_text() -> None:
    scanner = ChainScanner(digit_chain(6))
    text = "call 415 555 2671 or 212-736-5000"
    assert Scan(text, scanner).chains == find_chains(text, digit_chain(6))
    assert len(Scan(text, scanner).chains) == 2


def test_label_subset_holds_every_chain_a_label_precedes() -> None:
    rng = random.Random(5)
    words = ["call", "phone:", "my number is", "Tel", "x", "no", "ring", "text me", "id", "ref"]
    subset = chains_after_labels(48)
    for _ in range(400):
        parts = []
        for _ in range(200):
            parts.append(rng.choice(words) if rng.random() < 0.2 else str(rng.randint(10**6, 10**10)))
        text = ", ".join(parts)  # "," ends a chain
        scan = _scan(text)
        chosen = subset(scan)
        assert chosen is not None, "dense enough for the key scan"
        for i, (a, b, _, _) in enumerate(scan.chains):
            if label_before(text, a, b):
                assert i in chosen, (text[max(0, a - 50) : b], i)


def test_ssn_pre_check_equals_the_search() -> None:
    for text in _texts("0123456789 -.x", 20_000, 6, 30):
        for a, b, _, _ in find_chains(text, digit_chain(6)):
            assert ssn_within(text, a, b) == (_SSN.search(text, a, b) is not None), text


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # The fast path says "not mine" (invalid area code): the labelled recognizer finds it.
        ("Call me at (355) 852-9749 today", "(355) 852-9749"),
        # A "+" then a line break before the number: left to the matcher, which finds it.
        ("+\n415-555-2671 is the desk", "415-555-2671"),
        # One digit run after "+": not a bare id, the matcher decides.
        ("dial +14155552671 now", "+14155552671"),
        # An extension after the number: the matcher's span is longer than the fast path's.
        ("office (212) 736-5000 ext. 12 ask for Kim", "(212) 736-5000 ext. 12"),
        # A bracket before: the matcher's span starts with it, so the fast path passes.
        ("row [415-555-2671] now", "[415-555-2671"),
        ("a [+1 415 555 2671] b", "[+1 415 555 2671"),
        # A UK number never takes the fast path.
        ("call +44 20 7946 0958 if urgent", "+44 20 7946 0958"),
        # Among 200 ids with a "+" elsewhere in the text, a labelled bare run is still found.
        (
            "a+b " + ",".join(str(4_000_000_000 + i) for i in range(200)) + ' {"phone":4155552671}',
            "4155552671",
        ),
    ],
)
def test_what_a_fast_path_passes_on_is_still_found(redactor: Redactor, text: str, value: str) -> None:
    spans = redactor.engine.detect(text)
    found = [text[s.start : s.end] for s in spans if s.entity == "PHONE_NUMBER"]
    assert found == [value]
    assert spans == redactor.engine.detect(text, prefilter=False)


def test_ids_beside_a_plus_sign_stay_ids(redactor: Redactor) -> None:
    text = "total +3 items: " + ",".join(str(4_155_552_671 + i) for i in range(300))
    assert redactor.engine.detect(text) == () == redactor.engine.detect(text, prefilter=False)


def test_recognizers_called_directly_answer_as_presidios_analyzer(
    redactor: Redactor, corpus: list[dict[str, object]]
) -> None:
    """``RedactionEngine._presidio`` skips ``AnalyzerEngine.analyze`` with the no-model engine:
    same spans, every family, every corpus line (and the phone recognizer's own ``analyze``
    without Presidio's re-parse of each match)."""
    engine = redactor.engine
    assert engine._direct, "the no-model engine calls recognizers directly"
    texts = [str(c["text"]) for c in corpus] + ["call +44 20 7946 0958 or (212) 736-5000 / 4155552671"]
    for key in engine._direct:
        for text in texts:
            direct = engine._presidio(text, list(key), 0)
            engine._direct, saved = None, engine._direct
            try:
                via_analyzer = engine._presidio(text, list(key), 0)
            finally:
                engine._direct = saved
            assert sorted(direct) == sorted(via_analyzer), (key, text)


@pytest.mark.parametrize("ssn", ["219-09-9999", "219 09 9999", "SSN: 219099999"])
def test_an_ssn_inside_a_dense_contact_list_is_found(redactor: Redactor, ssn: str) -> None:
    """The SSN family's dense-text subset (no 9-digit run: only chains with a 2-digit group)."""
    csv, _ = contacts_csv(300, seed=4)
    lines = csv.splitlines()
    lines.insert(150, f"Kim Wu,{ssn}")
    text = "\n".join(lines)
    spans = redactor.engine.detect(text)
    value = ssn.removeprefix("SSN: ")
    assert ("US_SSN", value) in [(s.entity, text[s.start : s.end]) for s in spans]
    assert spans == redactor.engine.detect(text, prefilter=False)


@pytest.mark.parametrize("min_digits,no_single", [(6, False), (6, True), (10, True)])
def test_settling_many_chains_equals_settling_each(min_digits: int, no_single: bool) -> None:
    """``FastPhones.settle_chains`` (one loop over a contact list's chains) answers exactly as
    the pre-filter's loop over ``settle`` did, chain by chain: the same spans, the same chains
    left for the matcher, the same count settled."""
    fast = FastPhones(("US", "GB"), 2)
    csv, _ = contacts_csv(300, seed=4)
    shapes = _texts("0123456789 ()-.+x,\n1", 400, 5, 40)
    for text in [csv, *shapes, " ".join(shapes)]:
        chains = _scan(text).chains
        direct: list[tuple[int, int]] = []
        rest, shaped, verified = fast.settle_chains(text, chains, min_digits, no_single, direct)
        settled = shaped + verified
        want_direct, want_rest, want_settled = [], [], 0
        for chain in chains:
            a, b, digits, blocks = chain
            if digits < min_digits or (blocks == 1 and no_single):
                continue
            found = fast.settle(text, a, b) if blocks > 1 else None
            if found is None:
                want_rest.append(chain)
            else:
                want_settled += 1
                want_direct.append(found)
        assert (direct, rest, settled) == (want_direct, want_rest, want_settled)


def _numbers_of_every_area(rng: random.Random, count: int) -> str:
    """Numbers of every area code 200-999 (valid, unassigned and reserved alike), exchanges
    of any first digit, in every shape the fast path reads and some it does not, between
    neighbours it accepts and ones it refuses."""
    shapes = ["({a}) {e}-{n}", "({a}){e}-{n}", "{a}-{e}-{n}", "{a}.{e}.{n}", "{a} {e} {n}", "+1 {a} {e} {n}"]
    shapes += ["1-{a}-{e}-{n}", "+1 ({a}) {e}-{n}", "+1{a}{e}{n}", "{a}-{e}-{n} ext. 7", "+ 1 {a} {e} {n}"]
    around = [
        " ",
        "\n",
        ",",
        ";",
        "x",
        "(",
        ")",
        ".",
        ". ",
        "#",
        "+",
        "-",
        "/",
        ":30",
        "'",
        "=",
        "$",
        "1 ",
        "[",
        "]",
    ]
    parts = []
    for _ in range(count):
        number = rng.choice(shapes).format(
            a=rng.randint(200, 999), e=f"{rng.randint(0, 999):03d}", n=f"{rng.randint(0, 9999):04d}"
        )
        parts.append(rng.choice(around) + number + rng.choice(around))
    return "".join(parts)


def test_settling_a_whole_shape_equals_settling_by_digits() -> None:
    """``settle_chains`` settles a number of an area code whose every number is proven valid
    with one regex (``FastPhones._whole``) before reading digits: it answers exactly as
    ``settle`` (shape regex, then validity) on numbers of every area code."""
    fast = FastPhones(("US", "GB"), 2)
    assert fast._whole is not None, "the whole-shape regex is built for national regions"
    rng = random.Random(17)
    for _ in range(40):
        text = _numbers_of_every_area(rng, 300)
        chains = _scan(text).chains
        direct: list[tuple[int, int]] = []
        rest, settled, verified = fast.settle_chains(text, chains, 6, True, direct)
        want = [c for c in chains if c[2] >= 6 and c[3] > 1]
        settled_each = [fast.settle(text, a, b) for a, b, _, _ in want]
        assert direct == [s for s in settled_each if s is not None]
        assert settled + verified == len(direct) and settled > 0
        assert rest == [c for c, s in zip(want, settled_each, strict=True) if s is None]


def test_the_area_code_trie_holds_exactly_its_codes() -> None:
    rng = random.Random(19)
    for _ in range(200):
        codes = sorted({f"{rng.randint(0, 999):03d}" for _ in range(rng.randint(1, 300))})
        trie = re.compile(f"(?:{_digit_trie(codes)})")
        assert [f"{n:03d}" for n in range(1000) if trie.fullmatch(f"{n:03d}")] == codes


def test_validity_by_proven_prefix_equals_the_regex() -> None:
    """``ValidPrefixes`` answers as the NANP validity regex on every number: random ten-digit
    strings (mostly invalid), numbers of in-service area codes, and every area code with
    exchanges of each first digit; the regex has no construct that breaks the proof."""
    fast = FastPhones(("US", "GB"), 2)
    assert fast._valid is not None and ValidPrefixes.proof_holds(fast._valid)
    prefixes = ValidPrefixes(fast._valid)
    rng = random.Random(11)
    numbers = [f"{rng.randrange(10**10):010d}" for _ in range(20_000)]
    numbers += [
        f"{rng.choice(AREAS)}{rng.randint(200, 999)}{rng.randrange(10**4):04d}" for _ in range(20_000)
    ]
    numbers += [f"{area}{d}{rng.randrange(10**6):06d}" for area in range(1000) for d in range(10)]
    for nsn in numbers:
        assert prefixes.fullmatch(nsn) == (fast._valid.fullmatch(nsn) is not None), nsn
    assert prefixes._known  # proofs were made (and reused)


def test_the_rare_first_literal_search_equals_the_alternation() -> None:
    """``any_literal`` (each literal written from its rarest character, the rest in a
    lookbehind) answers as ``lit in text`` for every secret literal, on random texts made of
    the literals' own characters and on texts with a literal cut, spliced or whole."""
    families, _ = build_families(set(RedactionSettings().actions), {"CODENAME": ["Blue-bird", "x_y"]})
    for lits in (
        sorted({lit for f in families for lit in f.cs_literals}),
        sorted({lit for f in families for lit in f.ci_literals}),
    ):
        regex = any_literal(lits)
        assert regex is not None
        alphabet = "".join(sorted(set("".join(lits)))) + " \n"
        rng = random.Random(13)
        texts = _texts(alphabet, 3000, 14, 40)
        for _ in range(3000):
            lit = rng.choice(lits)
            a, b = sorted((rng.randint(0, len(lit)), rng.randint(0, len(lit))))
            texts.append(rng.choice(texts[:100]) + lit[a:b] + rng.choice(lits)[: rng.randint(0, 4)])
            texts.append(rng.choice(alphabet) + lit + rng.choice(alphabet))
        for text in texts:
            assert (regex.search(text) is not None) == any(lit in text for lit in lits), (lits, text)
