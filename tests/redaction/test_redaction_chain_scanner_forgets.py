"""The digit-chain scanner is shared by every request of the engine, so it keeps no text: a
request refused by the work budget (or analysed) leaves none of its text in it (it has no
per-text state at all: ``__slots__``, regexes and its minimum only)."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.redaction.config import RedactionSettings
from gateway.redaction.engine import RedactionEngine

_STATE = {"fewest": "int", "fused": "Pattern", "pattern": "str", "regex": "Pattern"}


def _engine(**overrides: object) -> RedactionEngine:
    return RedactionEngine(RedactionSettings(**overrides))


async def test_a_refused_requests_texts_are_not_kept() -> None:
    engine = _engine(max_candidates=50)
    dense = " ".join(f"415-555-{i:04d}" for i in range(400))
    with pytest.raises(GatewayError):
        await engine.analyze_many([dense, dense + " x"])
    assert not hasattr(engine.chain, "__dict__")
    assert {s: type(getattr(engine.chain, s)).__name__ for s in engine.chain.__slots__} == _STATE


async def test_analysed_texts_are_not_kept() -> None:
    engine = _engine()
    texts = [f"call me at 415-555-{i:04d} please" for i in range(40)]
    spans = await engine.analyze_many(texts)
    assert all(s for s in spans)
    assert not hasattr(engine.chain, "__dict__")
    assert {s: type(getattr(engine.chain, s)).__name__ for s in engine.chain.__slots__} == _STATE
