"""``resolve``'s shortcut (ranges that overlap only the same range) keeps what the greedy
ranking keeps: checked against that ranking on random span sets, duplicates included."""

from __future__ import annotations

import bisect
import random

from gateway.redaction.engine import Span, resolve


def _greedy(spans: list[Span]) -> tuple[Span, ...]:
    if len(spans) <= 1:
        return tuple(spans)
    ranked = sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start, s.entity))
    starts: list[int] = []
    kept: list[Span] = []
    for s in ranked:
        i = bisect.bisect_right(starts, s.start)
        if (i > 0 and kept[i - 1].end > s.start) or (i < len(kept) and kept[i].start < s.end):
            continue
        starts.insert(i, s.start)
        kept.insert(i, s)
    return tuple(kept)


def test_resolve_equals_the_greedy_ranking() -> None:
    rng = random.Random(5)
    for _ in range(20000):
        spans: list[Span] = []
        for _ in range(rng.randint(0, 8)):
            if spans and rng.random() < 0.4:  # the same range from another family
                other = rng.choice(spans)
                a, b = other.start, other.end
            else:
                a = rng.randint(0, 60)
                b = a + rng.randint(0, 6)
            spans.append(Span(a, b, rng.choice("ABC"), rng.choice([0.5, 0.85, 1.0])))
        assert resolve(list(spans)) == _greedy(list(spans)), spans
