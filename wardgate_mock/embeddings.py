"""Deterministic embeddings: the same text always gets the same unit vector.

Vectors come from SHAKE-256 of the input (so different texts differ), are L2-normalised (as
OpenAI's are) and rounded to float32, so the ``float`` and ``base64`` encodings of one input
decode to exactly the same numbers (base64 is little-endian float32, as OpenAI sends it).
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from wardgate_mock.conversation import MockRequestError

DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 4096


def _inputs(raw: Any) -> list[str | list[int]]:
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw:
        if all(isinstance(x, int) and not isinstance(x, bool) for x in raw):
            return [raw]  # one token array
        if all(isinstance(x, str) for x in raw):
            return list(raw)
        if all(isinstance(x, list) and x and all(isinstance(t, int) for t in x) for x in raw):
            return list(raw)
    raise MockRequestError("'input' must be a string, an array of strings or of token arrays.", "input")


def vector(item: str | list[int], dimensions: int) -> tuple[float, ...]:
    key = item.encode() if isinstance(item, str) else b"tokens:" + ",".join(map(str, item)).encode()
    raw = struct.unpack(f"<{dimensions}H", hashlib.shake_256(key).digest(2 * dimensions))
    values = [(x - 32767.5) / 32767.5 for x in raw]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(v / norm for v in values)))


def embeddings_body(body: dict[str, Any], usage: tuple[int, int] | None = None) -> dict[str, Any]:
    items = _inputs(body.get("input"))
    if any(item == "" for item in items):
        raise MockRequestError("'input' cannot contain an empty string.", "input")
    dimensions = body.get("dimensions", DEFAULT_DIMENSIONS)
    if (
        not isinstance(dimensions, int)
        or isinstance(dimensions, bool)
        or not 1 <= dimensions <= MAX_DIMENSIONS
    ):
        raise MockRequestError(f"'dimensions' must be an integer from 1 to {MAX_DIMENSIONS}.", "dimensions")
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise MockRequestError("'encoding_format' must be 'float' or 'base64'.", "encoding_format")
    data = []
    tokens = 0
    for index, item in enumerate(items):
        vec = vector(item, dimensions)
        tokens += len(item.encode()) // 4 + 1 if isinstance(item, str) else len(item)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vec)).decode() if fmt == "base64" else list(vec)
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    if usage is not None:
        tokens = usage[0]
    return {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "")),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
