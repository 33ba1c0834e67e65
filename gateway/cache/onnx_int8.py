"""The encoder's 24 products in int8 (``onnx_encoder``): the same vectors to ~0.997, ~0.6x the CPU.

Why int8 (measured, bench/cache.py --semantic, docs/architecture.md §10): for a 10-20-token
turn the float32 products stream 42 MB of weights per embedding, more than this machine's
L3; as uint8 they are 10.6 MB, and ONNX Runtime's ``DynamicQuantizeMatMul`` (the activations
quantised per call, one scale for the tensor) runs the turn in ~0.57x the float32 graph's CPU.

Why not plainly: BERT's activations have a few outlier channels (an input channel of the
first feed-forward product reaches 28 where the median is 1.3), and one scale per tensor
spends the 8 bits on them: cosine 0.988 to float32 at worst, paraphrases lost at 0.93-0.94.
So, SmoothQuant (Xiao et al., 2022): each input channel k of a product is divided by
``s_k = max|x_k|**alpha / max|w_k|**(1 - alpha)`` and the weight's row k multiplied by it
(the product is unchanged in exact arithmetic), which moves the outliers' range into the
weights, quantised per column. ``alpha`` 0.7 measured best (cosine at worst on the labelled
set's turns: 0.6: 0.9966, 0.7: 0.9972, 0.8: 0.9943; 0.5: 0.989 simulated in numpy). The ``max|x_k|`` come from a forward pass of the
float32 reference over ``CALIBRATION`` when the model loads (~60 ms; sentences unrelated to
the labelled set, so the table is not fitted to it).

Why uint8 weights with a zero point (per column), not int8: on AVX2 without VNNI, ONNX
Runtime's uint8 x int8 kernel adds pairs of products in 16 bits and saturates (cosine 0.92
at worst with 8-bit weights, 0.995 with 7-bit ones); uint8 x uint8 widens first, exact.

Measured and not taken: activations quantised per row (MatMulInteger with the row's scale
and zero point applied around it; cosine 0.998 but ~20 more small nodes per product: 0.72x
the CPU); ``MatMulNBits`` 8-bit blocks (0.9992, no faster than float32) and 4-bit blocks
(0.935).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]

ALPHA = 0.7
#: What the activations' ranges are measured on: ordinary questions and requests, none from
#: the labelled set (tests/cache/paraphrases.py).
CALIBRATION = (
    "hello there, how are you doing today?",
    "explain the difference between tcp and udp.",
    "write a python function that sorts a list of numbers.",
    "what is the weather like in paris in spring?",
    "summarise this report in three bullet points.",
    "the meeting is moved to thursday at 3 pm.",
)
#: The products of a layer, in the order ``embedder._Layer`` computes them.
PRODUCTS = ("qkv", "o", "i", "o2")


@dataclass(frozen=True)
class Int8Product:
    """``x @ w + b`` as ``DynamicQuantizeMatMul(x * inverse, weights, scale, zero_point, b)``."""

    inverse: Vector  # 1 / s_k per input channel
    weights: npt.NDArray[np.uint8]  # [K, N]
    scale: Vector  # per output column
    zero_point: npt.NDArray[np.uint8]  # per output column


def quantise(w: Vector, act_max: Vector, alpha: float = ALPHA) -> Int8Product:
    """The smoothed, per-column asymmetric uint8 form of ``w`` ([K, N]) for inputs whose
    channels reached ``act_max`` ([K]) on the calibration set."""
    smooth = np.maximum(act_max, 1e-5) ** alpha / np.maximum(np.abs(w).max(1), 1e-5) ** (1 - alpha)
    smoothed = w * smooth[:, None]
    low = np.minimum(smoothed.min(0), 0.0)
    high = np.maximum(smoothed.max(0), 0.0)
    scale = np.maximum((high - low) / 255.0, 1e-12)
    zero = np.round(-low / scale)
    q = np.clip(np.round(smoothed / scale) + zero, 0, 255)
    return Int8Product(
        inverse=(1.0 / smooth).astype(np.float32),
        weights=np.ascontiguousarray(q, dtype=np.uint8),
        scale=scale.astype(np.float32),
        zero_point=zero.astype(np.uint8),
    )
