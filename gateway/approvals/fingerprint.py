"""A normalised hash of what a request asks, so a re-send can prove it is the same ask.

Everything in the body counts except the stream flags (``stream``, ``stream_options``), so
a caller may re-send as a stream what it first asked as a plain call, and nothing else may
differ: a changed ``temperature``, ``max_tokens`` or ``metadata`` is another request, which
a reviewer did not see and an approval must not cover. ``None`` values are dropped and keys
sorted, so SDKs that serialise ``"content": null`` and those that omit it agree.

The hash is taken from ``call.body`` after input redaction and the request policy's effects
(the approval stages run after both); both are deterministic, so the same request hashes
the same. The model is ``call.model`` (what the client asked for), not the body's, which
routing may rewrite.

``field_digests`` keeps a short digest per top-level field beside the hash, so a mismatch
can name the fields that changed (``temperature``) instead of only saying "something did".
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.call import Call

#: The only fields a re-send may change: how the answer is delivered, not what it is.
STREAM_FLAGS = frozenset({"stream", "stream_options"})
_IGNORED = STREAM_FLAGS | {"model"}


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _doc(endpoint: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"endpoint": endpoint, "model": model}
    for name, value in body.items():
        if name not in _IGNORED and value is not None:
            doc[str(name)] = _normalise(value)
    return doc


def fingerprint_body(endpoint: str, model: str, body: dict[str, Any]) -> str:
    digest = hashlib.sha256(_dump(_doc(endpoint, model, body))).hexdigest()
    return "sha256:" + digest


def field_digests(endpoint: str, model: str, body: dict[str, Any]) -> dict[str, str]:
    """``{field: 16 hex digits}`` per top-level field (the model and endpoint included)."""
    return {k: hashlib.sha256(_dump(v)).hexdigest()[:16] for k, v in _doc(endpoint, model, body).items()}


def fingerprint(call: Call) -> str:
    return fingerprint_body(call.endpoint.value, call.model, call.body)


def changed_fields(call: Call, recorded: dict[str, str]) -> list[str]:
    """The fields of this request that differ from the recorded digests (added, removed, changed)."""
    now = field_digests(call.endpoint.value, call.model, call.body)
    return sorted(k for k in now.keys() | recorded.keys() if now.get(k) != recorded.get(k))
