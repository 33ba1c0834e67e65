"""Window edges (gateway/redaction/edges.py) against their plain definition: the nearest
whitespace within the cap, on random texts sparse and dense in whitespace."""

from __future__ import annotations

import random

import pytest

from gateway.redaction.edges import _EXPAND_CAP, left_edge, right_edge

WS = (" ", "\n", "\t", "\r")


def _left(text: str, a: int) -> int:
    lo = max(0, a - _EXPAND_CAP)
    return next((i + 1 for i in range(a - 1, lo - 1, -1) if text[i] in WS), lo)


def _right(text: str, b: int) -> int:
    hi = min(len(text), b + _EXPAND_CAP)
    return next((i for i in range(b, hi) if text[i] in WS), hi)


@pytest.mark.parametrize("density", [0.0, 0.0005, 0.01, 0.3])
def test_edges_are_the_nearest_whitespace_within_the_cap(density: float) -> None:
    rng = random.Random(int(density * 10_000))
    for _ in range(60):
        n = rng.randint(0, 2600)
        text = "".join(rng.choice(WS) if rng.random() < density else "x" for _ in range(n))
        for a in {0, n, *(rng.randint(0, n) for _ in range(25))}:
            assert left_edge(text, a) == _left(text, a)
            assert right_edge(text, a) == _right(text, a)
