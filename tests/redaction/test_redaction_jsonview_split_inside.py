"""``JsonPieces.split`` cuts a span that lies inside one string without building the stretches
between strings (the common case of a tool's JSON answer): its pieces and lexer state must be
exactly those of the full stretch walk (the previous implementation, kept here as the
reference) on generated sources with escapes, unicode and numbers, and for any spans (inside
strings, across quotes and structure, over number tokens, empty, overlapping); the same for
a one-off lexer (``whole=False``) that stops looking for strings after the last span."""

from __future__ import annotations

import bisect
import random

import orjson

from gateway.redaction.jsonview import JsonPieces, _disjoint, _outside


def _reference(
    pieces: JsonPieces, source: str, spans: list[tuple[int, int, str]]
) -> list[tuple[int, int, str, bool]]:
    """``split`` as it was before the inside-a-string fast path."""
    carried = pieces.in_string
    regions = pieces.regions(source)
    stretches: list[tuple[int, int, bool]] = []
    pos = 0
    for j, (a, b) in enumerate(regions):
        opening = a if j == 0 and carried else a - 1
        if opening > pos:
            stretches.append((pos, opening, False))
        stretches.append((a, b, True))
        pos = b + 1
    if pos < len(source):
        stretches.append((pos, len(source), False))
    starts = [st[0] for st in stretches]
    out: list[tuple[int, int, str, bool]] = []
    for start, end, entity in spans:
        k = max(bisect.bisect_right(starts, start) - 1, 0)
        while k < len(stretches) and stretches[k][0] < end:
            a, b, inside = stretches[k]
            lo, hi = max(a, start), min(b, end)
            if lo < hi:
                out.append((lo, hi, entity, False) if inside else _outside(source, lo, hi, entity))
            k += 1
    return _disjoint(out)


def _same(source: str, spans: list[tuple[int, int, str]], in_string: bool = False) -> None:
    new, old = JsonPieces(), JsonPieces()
    new.in_string = old.in_string = in_string
    expected = _reference(old, source, spans)
    assert new.split(source, spans) == expected, (source, spans, in_string)
    assert new.in_string == old.in_string
    one_off = JsonPieces()  # anonymize's own lexer: strings past the last span not looked for
    one_off.in_string = in_string
    assert one_off.split(source, spans, whole=False) == expected, (source, spans, in_string)


def _value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.randrange(6 if depth < 3 else 4)
    if kind == 0:
        return rng.choice([4111111111111111, -12, 3.5e10, 0, 250.0, 4155552671])
    if kind <= 2:
        alphabet = ["a", "é", "😀", '"', "\\", "\n", "\u2028", "@", ".", "4", " ", "<", "/"]
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
    if kind == 3:
        return rng.choice([True, None, "jane.doe@example.com", "4111 1111 1111 1111"])
    if kind == 4:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return {f"k{i}": _value(rng, depth + 1) for i in range(rng.randrange(0, 4))}


def _spans(rng: random.Random, source: str, inside: bool) -> list[tuple[int, int, str]]:
    n = len(source)
    if inside:  # spans within the strings, sorted and disjoint: the fast path
        regions = JsonPieces().regions(source)
        out = []
        for a, b in regions:
            if b > a and rng.random() < 0.5:
                lo = rng.randrange(a, b)
                out.append((lo, rng.randrange(lo, b) + 1, rng.choice(["EMAIL_ADDRESS", "CREDIT_CARD"])))
        return out
    cuts = sorted(rng.randrange(0, n + 1) for _ in range(2 * rng.randrange(0, 4)))
    return [(cuts[i], cuts[i + 1], "PHONE_NUMBER") for i in range(0, len(cuts), 2)]


def test_split_equals_the_stretch_walk_on_generated_answers() -> None:
    rng = random.Random(2112)
    for _ in range(4000):
        value = _value(rng)
        source = orjson.dumps(value).decode()
        if rng.random() < 0.3:
            source = source.encode("ascii", "backslashreplace").decode()  # \\u escapes as text
        for inside in (True, False):
            _same(source, _spans(rng, source, inside))


def test_split_equals_the_stretch_walk_on_stream_segments() -> None:
    rng = random.Random(7)
    source = orjson.dumps(
        {"order_id": "ORD-1001", "email": "jane.doe@example.com", "card": 4111111111111111, "n": 'say "hi"\\'}
    ).decode()
    for cut in range(len(source) + 1):
        head, tail = source[:cut], source[cut:]
        if head.endswith("\\"):
            continue
        for in_string in (False, True):
            for piece in (head, tail):
                for inside in (True, False):
                    _same(piece, _spans(rng, piece, inside), in_string)


def test_unsorted_and_overlapping_spans_take_the_stretch_walk() -> None:
    source = '{"a": "jane.doe@example.com", "b": 4155552671, "c": "x"}'
    for spans in (
        [(7, 27, "EMAIL_ADDRESS"), (7, 12, "PERSON")],
        [(36, 46, "PHONE_NUMBER"), (7, 27, "EMAIL_ADDRESS")],
        [(3, 3, "X"), (7, 27, "EMAIL_ADDRESS"), (30, 50, "Y")],
    ):
        _same(source, spans)
