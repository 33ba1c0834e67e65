"""A normalised hash of what a request asks, so a ``defer`` re-send can prove it is the same ask.

Only the fields that decide the model's answer count (the model, the conversation, the tools
on offer and how they may be chosen, the output format). Transport and bookkeeping fields
(``stream``, ``stream_options``, ``metadata``, ``user``, sampling knobs) are left out, so a
caller may re-send as a stream what it first asked as a plain call. ``None`` values are
dropped and keys sorted, so SDKs that serialise ``"content": null`` and those that omit it
agree.

The hash is taken from ``call.body`` after input redaction (the approval stages run after
``redact_in``); redaction is deterministic, so the same request hashes the same. The model
is ``call.model`` (what the client asked for), not the body's, which routing may rewrite.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.call import Call

_FIELDS = (
    "messages",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "functions",
    "function_call",
    "response_format",
    "text",
    "previous_response_id",
    "prompt",
)


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


def fingerprint_body(endpoint: str, model: str, body: dict[str, Any]) -> str:
    doc = {"endpoint": endpoint, "model": model}
    for name in _FIELDS:
        value = body.get(name)
        if value is not None:
            doc[name] = _normalise(value)
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return "sha256:" + digest


def fingerprint(call: Call) -> str:
    return fingerprint_body(call.endpoint.value, call.model, call.body)
