"""The dense-text shortcuts (a contact list of 2,500 numbers, issue 16 case d) answer exactly
as the paths they shorten: the chain scan in C loops as the chain regex itself, the number
shape's quick neighbour check as the full one, extensions included, and placeholders written
with names made once per process as one value at a time through the operator."""

from __future__ import annotations

import random
import re

from gateway.redaction import placeholders
from gateway.redaction.anonymize import anonymize
from gateway.redaction.config import Action
from gateway.redaction.fastphones import _AFTER, _BEFORE, AFTER_IN_FULL, QUICK_AFTER, SAFE_AFTER
from gateway.redaction.prefilter import digit_chain
from gateway.redaction.scan import find_chains
from gateway.redaction.vault import Vault, VaultOperator
from tests.redaction.dense import contacts_csv, phone

_SHAPE = r"(\+ ?1[ .-]?|1[ .-])?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d)[ .-])([2-9]\d\d)[ .-](\d{4})"
#: What may follow a number: every safe neighbour, then extensions in phonenumbers' spellings
#: (and near misses), words, digits, more numbers.
_TAILS = [
    "",
    " ext. 12",
    " x 5",
    "x5",
    ";ext=77",
    " #12",
    ",,, 12",
    " int 4",
    " anexo 3",
    " EXT 9",
    "-12#",
    " - 12#",
    " ～ 4",
    " and more",
    " 5",
    "\n415-555-2671",
    ". Then",
    ".5",
    ", 12",
    "\tx 7",
]


def _neighbourhoods(rng: random.Random, count: int) -> list[str]:
    texts = []
    for _ in range(count):
        after = rng.choice(SAFE_AFTER + "x#.~-a5")
        texts.append(rng.choice(["", " ", "\n", "(", "+", ","]) + phone(rng) + after + rng.choice(_TAILS))
    return texts


def test_quick_neighbours_are_the_safe_ones_no_extension_starts_with() -> None:
    assert set(QUICK_AFTER) <= set(SAFE_AFTER)
    assert not set(QUICK_AFTER) & set(" \t,;-#xX")


def test_the_quick_neighbour_check_equals_the_full_one() -> None:
    """``_AFTER`` (a quick look-ahead for the neighbours no extension starts with, else the full
    check) matches exactly where ``AFTER_IN_FULL`` matches, in the number shape and alone."""
    quick = re.compile(_BEFORE + _SHAPE + _AFTER)
    full = re.compile(_BEFORE + _SHAPE + AFTER_IN_FULL)
    quick_alone, full_alone = re.compile(_AFTER), re.compile(AFTER_IN_FULL)
    rng = random.Random(23)
    for text in _neighbourhoods(rng, 6_000):
        for i in range(len(text) + 1):
            q, f = quick.match(text, i), full.match(text, i)
            assert (q and q.span()) == (f and f.span()), (text, i)
            assert (quick_alone.match(text, i) is None) == (full_alone.match(text, i) is None), (text, i)


def test_chains_of_a_dense_list_equal_the_chain_regex() -> None:
    """The C-loop chain scan (ASCII) gives what the regex gives on the same text made
    non-ASCII at its end (where the regex itself runs): a contact list, the list with odd
    neighbours, and numbers glued by separators."""
    csv, _ = contacts_csv(2500, seed=9)
    rng = random.Random(29)
    mixed = "".join(
        rng.choice(["\n", " ", "-", ".", "(", ")", "+", "x", "/", "  ", "     "]) + phone(rng)
        for _ in range(800)
    )
    for fewest in (6, 7, 9):
        regex = digit_chain(fewest)
        for text in (csv, mixed, "no digits at all", "12", csv[:1] + "1" * 30):
            fast = find_chains(text, regex)
            want = [
                (m.start(), m.end(), len(re.sub(r"\D", "", m.group())), len(re.findall(r"\d+", m.group())))
                for m in regex.finditer(text)
            ]
            assert fast == want
            assert find_chains(text + "\u00e9", regex) == want


class _Operator(VaultOperator):
    """Any operator but ours takes the generic path: one ``Vault.placeholder`` per value."""


def test_placeholder_names_are_their_numbers_up_to_the_cap() -> None:
    first = placeholders.names("DENSE_TEST", 3)
    assert first[1:4] == ["<DENSE_TEST_1>", "<DENSE_TEST_2>", "<DENSE_TEST_3>"]
    grown = placeholders.names("DENSE_TEST", 5000)
    assert len(grown) == placeholders.CAP
    assert all(name == f"<DENSE_TEST_{n}>" for n, name in enumerate(grown))
    assert first == [f"<DENSE_TEST_{n}>" for n in range(len(first))], "a list handed out never changes"


def test_a_dense_list_past_the_cached_names_is_written_as_one_value_at_a_time() -> None:
    """Thousands of values of two types, in runs and alternating, repeated, non-ASCII, past
    the names made once (``placeholders.CAP``), in chunks and in a vault that already numbered
    some: the same text, numbering and restorable values as the generic operator path."""
    rng = random.Random(31)
    pool = {
        "PHONE_NUMBER": [phone(rng) for _ in range(5200)],
        "EMAIL_ADDRESS": ["ä@x.io", "b@y.io", "ç@z.io"],
    }
    parts, spans, pos = [], [], 0
    for i in range(6000):
        kind = "EMAIL_ADDRESS" if i % 7 == 3 or 2000 < i < 2010 else "PHONE_NUMBER"
        value = rng.choice(pool[kind][:40]) if i % 11 == 0 else pool[kind][i % len(pool[kind])]
        parts.append(f"ü{i},")
        pos += len(parts[-1])
        spans.append((pos, pos + len(value), kind))
        parts.append(value)
        pos += len(value)
    text = "".join(parts) + "\nend"
    actions = {"PHONE_NUMBER": Action.RESTORE, "EMAIL_ADDRESS": Action.REDACT}
    fast, slow = Vault(b"s"), Vault(b"s")
    for vault in (fast, slow):  # numbers already taken in this call
        vault.placeholder("PHONE_NUMBER", "+1 212 555 0100", True)
    out_fast = anonymize(text, spans, actions, fast, json=False, restorable=True)
    out_slow = anonymize(text, spans, actions, slow, json=False, restorable=True, operator=_Operator())
    assert out_fast == out_slow
    assert f"<PHONE_NUMBER_{placeholders.CAP + 10}>" in out_fast, "numbered past the cached names"
    assert repr(fast) == repr(slow) and fast.restorable == slow.restorable
    restored, count = fast.restore(out_fast)
    assert (restored, count) == slow.restore(out_slow)
    assert "<PHONE_NUMBER_" not in restored and count == sum(
        1 for _, _, kind in spans if kind == "PHONE_NUMBER"
    )
