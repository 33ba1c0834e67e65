"""Semantic mode's parts: the model on the labelled set (tests/cache/paraphrases.py), what is
compared (the last turn; the context hash with the turn's literals), the word-order guard,
and the index (grouped by context, bounded, expiring, brute force then HNSW)."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from gateway.cache.config import CacheSettings
from gateway.cache.embedder import Embedder, normalise
from gateway.cache.key import CacheKey, cache_key
from gateway.cache.onnx_int8 import quantise
from gateway.cache.semantic import query
from gateway.cache.semantic_cache import SemanticCache
from gateway.cache.vectors import Indexed, VectorIndex
from gateway.call import Call, Endpoint, Principal
from tests.cache.paraphrases import HIT, MISS, MISS_GUARDED
from tests.waiting import FakeClock

ALICE = Principal(key_id="k-alice", team="red", user="alice")
THRESHOLD = CacheSettings().semantic_threshold


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def _call(content: Any, endpoint: Endpoint = Endpoint.CHAT, **extra: Any) -> Call:
    if endpoint is Endpoint.CHAT:
        body = {"model": "gpt-test", "messages": [{"role": "user", "content": content}], "temperature": 0}
    else:
        body = {"model": "gpt-test", "input": content, "temperature": 0}
    body.update(extra)
    return Call(request_id="r", endpoint=endpoint, body=body, headers={}, principal=ALICE, model="gpt-test")


def _similar(embedder: Embedder, a: str, b: str) -> tuple[float, bool]:
    """The similarity of two turns and whether a lookup may match them (context, order)."""
    qa, qb = (query(c, cache_key(c, "team:red")) for c in (_call(a), _call(b)))
    assert qa is not None and qb is not None
    va, vb = embedder.embed(qa.text), embedder.embed(qb.text)
    assert va is not None and vb is not None
    comparable = qa.context == qb.context and not (
        qa.bag_hash == qb.bag_hash and qa.text_hash != qb.text_hash
    )
    return float(va @ vb), comparable


def test_the_labelled_set_at_the_default_threshold(embedder: Embedder) -> None:
    hits = [_similar(embedder, a, b) for a, b in HIT]
    assert all(comparable for _, comparable in hits)
    recall = sum(sim >= THRESHOLD for sim, _ in hits) / len(hits)
    assert recall >= 0.35, recall  # measured 11/28 (docs/architecture.md §10)
    for a, b in MISS:
        sim, comparable = _similar(embedder, a, b)
        assert not (comparable and sim >= THRESHOLD), (a, b, sim)
    for a, b in MISS_GUARDED:  # however similar, never comparable
        assert not _similar(embedder, a, b)[1], (a, b)


def test_the_embedding_is_a_unit_vector_and_long_turns_are_not_embedded(embedder: Embedder) -> None:
    v = embedder.embed("how do i exit vim?")
    assert v is not None and v.shape == (384,) and abs(float(np.linalg.norm(v)) - 1) < 1e-5
    assert embedder.embed("word " * 200) is None  # past 128 tokens: exact only


def test_onnx_runtime_runs_the_model_and_gives_the_numpy_reference_vectors(embedder: Embedder) -> None:
    """The shipped engine is int8 (within ~0.997 of the reference on turns, 0.992 on a lone
    "?"); the float32 graph gives the reference's vectors."""
    assert embedder.engine == "onnx-int8"  # the fast path loaded (a failure falls back to numpy)
    exact, reference = Embedder(engine="onnx"), Embedder(engine="numpy")
    assert (exact.engine, reference.engine) == ("onnx", "numpy")
    turns = [normalise(t) for pair in (*HIT, *MISS, *MISS_GUARDED) for t in pair]
    for text in [*turns, "?", "word " * 120]:  # one token; the longest turn embedded
        slow = reference.embed(text)
        assert slow is not None
        for fast, least in ((exact.embed(text), 0.999), (embedder.embed(text), 0.99)):
            assert fast is not None
            assert float(fast @ slow) >= least, text
            assert abs(float(np.linalg.norm(fast)) - 1) < 1e-5


def test_semantic_int8_false_loads_the_float32_graph() -> None:
    async def engine() -> object:
        cache = SemanticCache(CacheSettings(semantic_int8=False))
        await cache.load()
        await cache.close()
        return cache.stats()["engine"]

    assert asyncio.run(engine()) == "onnx"


def test_int8_products_keep_the_product_with_outlier_channels() -> None:
    """SmoothQuant moves an outlier input channel's range into the weights: the uint8 form
    (per-column scale and zero point) times the smoothed input is the float32 product."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((64, 48)) * 0.05).astype(np.float32)
    x = rng.standard_normal((10, 64)).astype(np.float32)
    x[:, 5] *= 30.0  # one outlier channel, as BERT's
    p = quantise(w, np.abs(x).max(0))
    assert p.weights.dtype == np.uint8 and p.zero_point.dtype == np.uint8
    dequantised = (p.weights.astype(np.float32) - p.zero_point) * p.scale
    approx = (x * p.inverse) @ dequantised
    exact = x @ w
    assert np.abs(approx - exact).max() < 0.02 * np.abs(exact).max()


def test_what_is_compared_and_what_is_hashed() -> None:
    base = _call("Plan the release")
    key = cache_key(base, "team:red")
    q = query(base, key)
    assert q is not None and q.text == "plan the release"
    # Case and spacing are normalised; other parameters, the scope, earlier turns are context.
    assert query(_call("  PLAN the   release "), key) == q
    assert query(_call("Plan the release", max_tokens=5), key).context != q.context  # type: ignore[union-attr]
    assert query(base, CacheKey("team:blue", key.model, key.digest)).context != q.context  # type: ignore[union-attr]
    system = {"model": "gpt-test", "temperature": 0}
    system["messages"] = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Plan the release"},
    ]
    other = Call(
        request_id="r", endpoint=Endpoint.CHAT, body=system, headers={}, principal=ALICE, model="gpt-test"
    )
    assert query(other, key).context != q.context  # type: ignore[union-attr]
    # Text parts are text; an image is not comparable; a last turn that is not the user's neither.
    parts = [{"type": "text", "text": "Plan the release"}]
    assert query(_call(parts), key) == q
    assert query(_call([{"type": "image_url", "image_url": {"url": "x"}}]), key) is None
    body = {
        "model": "gpt-test",
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    }
    assert (
        query(
            Call(request_id="r", endpoint=Endpoint.CHAT, body=body, headers={}, principal=ALICE, model="m"),
            key,
        )
        is None
    )
    # Responses: a string input, or a last user message of input_text.
    r = query(_call("Plan the release", Endpoint.RESPONSES), key)
    assert r is not None and r.text == q.text and r.context != q.context
    items = [{"role": "user", "content": [{"type": "input_text", "text": "Plan the release"}]}]
    assert query(_call(items, Endpoint.RESPONSES), key) is not None


def _entry(key: str, context: str = "c", expires: float = 1e12) -> Indexed:
    return Indexed(CacheKey("team:red", "m", key), context, "t" + key, "b" + key, expires)


def _unit(seed: int) -> Any:
    v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("ann_min", [10_000, 4])
def test_the_index_searches_one_context_is_bounded_and_expires(ann_min: int) -> None:
    clock = FakeClock()
    index = VectorIndex(max_entries=6, ann_min=ann_min, clock=clock)
    for i in range(5):
        index.add(_unit(i), _entry(f"k{i}", expires=clock() + 10 * (i + 1)))
    index.add(_unit(2), _entry("other", context="elsewhere"))
    [found] = index.search("c", _unit(3), 0.99)
    assert found.entry.key.digest == "k3" and found.similarity == pytest.approx(1.0, abs=1e-3)
    assert [c.entry.key.digest for c in index.search("elsewhere", _unit(3), 0.5)] == []
    assert index.search("c", _unit(99), 0.5) == []  # nothing that similar
    clock.advance(15)  # k0 expired
    assert index.search("c", _unit(0), 0.99) == [] and "team:red|m|k0" not in index
    index.add(_unit(7), _entry("k7"))
    index.add(_unit(8), _entry("k8"))  # over the bound: the oldest (k1) goes
    assert len(index) == 6 and "team:red|m|k1" not in index
    assert index.search("c", _unit(8), 0.99)[0].entry.key.digest == "k8"
    index.purge("team:red", None)
    assert len(index) == 0
