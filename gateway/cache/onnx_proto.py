"""Just enough of the ONNX protobuf format to write the encoder's graph (``onnx_encoder``).

Why not the ``onnx`` package: it would be imported by every worker that loads the model for
one call at start, for ~20 MB of resident memory (its extension, protobuf, ml_dtypes), and
its ``TensorProto`` copies of the weights made loading peak at ~590 MB per worker. The
subset here (a model of one graph: nodes with int, float and int-list attributes, raw float,
uint8 and int64 tensors, typed inputs and outputs) is a few protobuf fields; the weights go into
the serialised bytes straight from their numpy arrays, copied once.

Field numbers are onnx.proto's (ModelProto, GraphProto, NodeProto, AttributeProto,
TensorProto, ValueInfoProto, TypeProto); ``tests/cache/test_cache_semantic_units.py`` reads
the result back with ONNX Runtime, which rejects any malformed field.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

#: A piece of a serialised message: bytes, or a numpy array written as its raw bytes.
Piece = bytes | np.ndarray[Any, Any]
FLOAT, UINT8, INT64 = 1, 2, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType
_IR_VERSION = 8  # the IR of opset 17


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # an int64 field: negatives as two's complement, ten bytes
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _size(piece: Piece) -> int:
    return piece.nbytes if isinstance(piece, np.ndarray) else len(piece)


def _field(number: int, pieces: Sequence[Piece]) -> list[Piece]:
    """A length-delimited field (a string, bytes or an embedded message)."""
    return [_varint(number << 3 | 2) + _varint(sum(_size(p) for p in pieces)), *pieces]


def _int(number: int, n: int) -> bytes:
    return _varint(number << 3) + _varint(n)


def _bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _str(number: int, s: str) -> bytes:
    return _bytes(number, s.encode())


def _attribute(name: str, value: float | int | list[int]) -> list[Piece]:
    if isinstance(value, list):
        body = [_str(1, name), *(_int(8, v) for v in value), _int(20, _ATTR_INTS)]
    elif isinstance(value, int):
        body = [_str(1, name), _int(3, value), _int(20, _ATTR_INT)]
    else:
        body = [_str(1, name), _varint(2 << 3 | 5) + struct.pack("<f", value), _int(20, _ATTR_FLOAT)]
    return _field(5, body)


def node(
    op: str, inputs: Sequence[str], outputs: Sequence[str], domain: str = "", **attrs: Any
) -> list[Piece]:
    """A NodeProto (GraphProto field 1)."""
    body: list[Piece] = [*(_str(1, i) for i in inputs), *(_str(2, o) for o in outputs), _str(4, op)]
    for name, value in attrs.items():
        body += _attribute(name, value)
    if domain:
        body.append(_str(7, domain))
    return _field(1, body)


def tensor(name: str, value: np.ndarray[Any, Any]) -> list[Piece]:
    """A TensorProto of float32, uint8 or int64, its data raw little-endian (GraphProto field 5)."""
    kind = {np.dtype(np.float32): FLOAT, np.dtype(np.uint8): UINT8, np.dtype(np.int64): INT64}[value.dtype]
    data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    head = [*(_int(1, d) for d in value.shape), _int(2, kind), _str(8, name)]
    return _field(5, [*head, *_field(9, [data.reshape(-1).view(np.uint8)])])


def value_info(number: int, name: str, kind: int, shape: Sequence[int | str]) -> list[Piece]:
    """A graph input (``number`` 11) or output (12): name, element type, dims or dim names."""
    dims = [_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape]
    tensor_type = _field(1, [_int(1, kind), *_field(2, dims)])
    return _field(number, [_str(1, name), *_field(2, tensor_type)])


def model(graph: Sequence[Piece], name: str, opsets: Sequence[tuple[str, int]]) -> bytes:
    """A ModelProto of one graph (its nodes, initializers, inputs and outputs, in any order)."""
    pieces: list[Piece] = [_int(1, _IR_VERSION)]
    for domain, version in opsets:
        pieces += _field(8, [_str(1, domain), _int(2, version)] if domain else [_int(2, version)])
    pieces += _field(7, [_str(2, name), *graph])
    return b"".join(pieces)  # type: ignore[arg-type]
