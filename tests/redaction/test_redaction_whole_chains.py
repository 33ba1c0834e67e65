"""The fused chain scan (``wholechains.py``) finds exactly the digit chains of the class-string
scan and settles exactly the numbers ``FastPhones.settle_chains`` settles by their whole shape:
on generated texts of every shape and neighbour, the phone family's spans, the chains left to
the other families and the matcher, and the budget's counts are the same; through the engine,
detection is the same with and without it."""

from __future__ import annotations

import random

import pytest

from gateway.redaction.config import RedactionSettings
from gateway.redaction.engine import RedactionEngine
from gateway.redaction.fastphones import FastPhones
from gateway.redaction.scan import CHAIN, ChainScanner, Scan, digit_chain, find_chains
from gateway.redaction.wholechains import fused_chains, split_chains
from tests.redaction.dense import contacts_csv, contacts_emails_csv, ids_json

#: Shapes the whole-shape regex takes, shapes it does not, and digit runs that are no phone.
_SHAPES = [
    "({a}) {e}-{n}",
    "({a}){e}-{n}",
    "({a})  {e}-{n}",
    "{a}-{e}-{n}",
    "{a}.{e}.{n}",
    "{a} {e} {n}",
    "{a}-{e}.{n}",
    "1-{a}-{e}-{n}",
    "1 ({a}) {e}-{n}",
    "1.{a}.{e}.{n}",
    "1{a}-{e}-{n}",
    "+1 {a} {e} {n}",
    "+1{a}-{e}-{n}",
    "+1-{a}-{e}-{n}",
    "+1 ({a}) {e}-{n}",
    "+ 1 {a} {e} {n}",
    "+1 1 {a} {e} {n}",
    "{a}/{e}/{n}",
    "{a}-{e}-{n} ext. 7",
    "{a}-{e}-{n}x12",
    "+44 20 7946 0958",
    "{a}{e}{n}",
    "{a}-{e}-{n}-{n}",
    "{a}-{e}",
    "123-45-6789",
    "4111 1111 1111 1111",
    "2024-05-06",
    "12:30",
]
_AROUND = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    ",",
    ";",
    ":",
    "=",
    "'",
    '"',
    "|",
    ">",
    "<",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "+",
    "+ ",
    "++",
    "x",
    "a",
    "5",
    "5 ",
    "1-",
    "-",
    ".",
    ". ",
    ".x",
    "/",
    "~",
    "#",
    "!",
    "?",
    ":30",
    " ext 12",
    ";ext=5",
    " int 5",
    ", ext. 7",
    "$",
]


def _text(rng: random.Random, count: int) -> str:
    parts = []
    for _ in range(count):
        number = rng.choice(_SHAPES).format(
            a=rng.choice([rng.randint(200, 999), rng.randint(0, 199), 212, 415, 808]),
            e=f"{rng.randint(0, 999):03d}",
            n=f"{rng.randint(0, 9999):04d}",
        )
        parts.append(rng.choice(_AROUND) + number + rng.choice(_AROUND))
    return "".join(parts)


@pytest.fixture(scope="module")
def fast() -> FastPhones:
    return FastPhones(("US", "GB"), 2)


@pytest.mark.parametrize("seed", range(8))
def test_the_fused_scan_settles_what_settle_chains_settles(fast: FastPhones, seed: int) -> None:
    fused = fused_chains(fast.whole_areas, 6)
    assert fused is not None
    regex = digit_chain(6)
    rng = random.Random(seed)
    for _ in range(60):
        text = _text(rng, rng.randint(1, 40))
        chains = find_chains(text, regex)
        rest, whole = split_chains(text, fused, text.encode("ascii").translate(CHAIN))
        ends = {end for _, end in whole}
        assert rest == [c for c in chains if c[1] not in ends], text
        assert len(rest) + len(whole) == len(chains), text
        for min_digits, no_single in [(6, False), (6, True), (10, True)]:
            want: list[tuple[int, int]] = []
            want_rest, want_shaped, want_verified = fast.settle_chains(
                text, chains, min_digits, no_single, want
            )
            got = list(whole)
            got_rest, shaped, verified = fast.settle_chains(text, rest, min_digits, no_single, got)
            assert sorted(got) == sorted(want), text
            assert (got_rest, shaped + len(whole), verified) == (want_rest, want_shaped, want_verified), text


def test_a_whole_shape_is_settled_only_as_exactly_one_chain(fast: FastPhones) -> None:
    fused = fused_chains(fast.whole_areas, 6)
    assert fused is not None

    def whole(text: str) -> list[str]:
        return [text[a:b] for a, b in split_chains(text, fused, text.encode("ascii").translate(CHAIN))[1]]

    assert whole("call (415) 555-2671.") == ["(415) 555-2671"]
    assert whole("+1 415 555 2671\n1-212-555-0100") == ["+1 415 555 2671", "1-212-555-0100"]
    assert whole("5 415-555-2671") == []  # the chain starts at the 5
    assert whole("415-555-2671 5") == []  # and goes on after the number
    assert whole("+ 1 415 555 2671") == []  # the loop tries the 1, a "+" that close refuses it
    assert whole("+(415) 555-2671") == whole("x415-555-2671") == whole("415-555-2671x") == []


def test_the_scanner_takes_the_fused_scan_where_it_pays() -> None:
    engine = RedactionEngine(RedactionSettings())
    csv, _ = contacts_csv()
    scan = Scan(f"batch 1\n{csv}", engine.chain)
    assert len(scan.whole) == 2500 and scan.chains == []
    ids, _ = ids_json()
    scan = Scan(ids, engine.chain)
    assert scan.whole == [] and len(scan.chains) == 2500  # no whole shape: the class-string scan
    assert ChainScanner(digit_chain(6)).fused is None


def _texts() -> list[str]:
    rng = random.Random(23)
    csv, _ = contacts_csv(400, seed=8)
    emails, _ = contacts_emails_csv(200, seed=9)
    lines = csv.splitlines()
    for i in range(0, 400, 7):  # noise inside a contact list: the fused scan still runs
        lines[i] = lines[i] + rng.choice([" ext. 12", " call 555 0100", ",123-45-6789", ",+44 20 7946 0958"])
    return ["\n".join(lines), emails, *(_text(rng, 300) for _ in range(6))]


def test_detection_is_the_same_with_and_without_the_fused_scan() -> None:
    engine = RedactionEngine(RedactionSettings())
    assert engine.chain.fused is not None
    plain = RedactionEngine(RedactionSettings())
    plain._chain = ChainScanner(engine.chain.regex)
    fused_runs = 0
    for text in _texts():
        fused_runs += bool(Scan(text, engine.chain).whole)
        assert engine.detect(text) == plain.detect(text)
    assert fused_runs >= 3
