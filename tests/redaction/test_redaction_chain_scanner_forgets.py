"""The digit-chain pre-check keeps raw request texts only until their analysis: a request
refused by the work budget (or analysed) leaves none of its text in the shared engine."""

from __future__ import annotations

import pytest

from gateway.errors import GatewayError
from gateway.redaction.config import RedactionSettings
from gateway.redaction.engine import RedactionEngine


def _engine(**overrides: object) -> RedactionEngine:
    return RedactionEngine(RedactionSettings(**overrides))


async def test_a_refused_requests_texts_are_not_kept() -> None:
    engine = _engine(max_candidates=50)
    dense = " ".join(f"415-555-{i:04d}" for i in range(400))
    with pytest.raises(GatewayError):
        await engine.analyze_many([dense, dense + " x"])
    assert engine.chain._found == {}


async def test_analysed_texts_are_not_kept() -> None:
    engine = _engine()
    texts = [f"call me at 415-555-{i:04d} please" for i in range(40)]
    spans = await engine.analyze_many(texts)
    assert all(s for s in spans)
    assert engine.chain._found == {}
