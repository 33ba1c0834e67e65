"""A call's cost upper bound before it runs, and its loop-detection fingerprint. No network.

Input: byte-level BPE tokenizers (OpenAI's, Llama's, ...) emit at least one UTF-8 byte per
token, so the byte count of the request's text bounds its tokens. We count the bytes of every
string in the body (keys included: they cover the chat template's role markers and the tool
schema rendering), add a per-message allowance, replace images/audio/files by configured flat
amounts, and clamp by the model's context window (a longer prompt is rejected upstream).
A prompt stored upstream (``previous_response_id``, ``conversation``) is bounded by the
context window.

Output: the client's ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens``, else
the model's maximum output, else a default that the gateway then *enforces* by writing it
into the forwarded body (so the reservation is a real bound, not a guess). A configured cap
lowers larger values the same way. ``n`` choices multiply it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from gateway.call import Call, Endpoint
from gateway.limits.config import EstimateSettings

_IMAGE = frozenset({"image_url", "input_image", "image"})
_AUDIO = frozenset({"input_audio", "audio"})
_FILE = frozenset({"file", "input_file"})
_OUTPUT_FIELDS = {
    Endpoint.CHAT: ("max_completion_tokens", "max_tokens"),
    Endpoint.RESPONSES: ("max_output_tokens",),
}
#: Fields that do not change what is being asked (excluded from the loop fingerprint).
_VOLATILE = frozenset({"id", "tool_call_id", "call_id", "stream", "stream_options", "user", "metadata",
                       "store", "seed", "service_tier", "request_id"})  # fmt: skip


def _size(obj: Any, cfg: EstimateSettings) -> int:
    if isinstance(obj, str):
        return len(obj) if obj.isascii() else len(obj.encode("utf-8"))
    if isinstance(obj, dict):
        kind = obj.get("type")
        if kind in _IMAGE:
            return cfg.image_tokens
        if kind in _AUDIO:
            return cfg.audio_tokens
        if kind in _FILE:
            return cfg.file_tokens
        return sum(len(k) + _size(v, cfg) for k, v in obj.items())
    if isinstance(obj, list):
        return sum(_size(v, cfg) for v in obj)
    if obj is None or isinstance(obj, bool):
        return 4
    return len(str(obj))


def prompt_upper_bound(call: Call, cfg: EstimateSettings, context_window: int | None) -> int:
    """Upper bound of the call's input tokens."""
    body = call.body
    if body.get("previous_response_id") or body.get("conversation"):
        return context_window or cfg.stored_context_tokens
    items = 0
    for name in ("messages", "input", "tools", "functions"):
        value = body.get(name)
        if isinstance(value, list):
            items += len(value)
    bound = _size(body, cfg) + cfg.message_overhead_tokens * (items + 1)
    if context_window:
        return min(bound, context_window)
    return bound


def _positive_int(v: Any) -> int | None:
    if isinstance(v, int) and not isinstance(v, bool) and v > 0:
        return v
    return None


def output_upper_bound(call: Call, cfg: EstimateSettings, model_max: int | None) -> int:
    """Upper bound of the call's output tokens; may set the enforced limit in ``call.body``."""
    fields = _OUTPUT_FIELDS.get(call.endpoint)
    if not fields:
        return 0  # embeddings
    body = call.body
    choices = _positive_int(body.get("n")) or 1
    cap = cfg.max_output_tokens_cap
    asked = [(f, v) for f in fields if (v := _positive_int(body.get(f))) is not None]
    if asked:
        bound = max(v for _, v in asked)
        if cap is not None and bound > cap:
            for f, v in asked:
                if v > cap:
                    body[f] = cap
            bound = cap
        return bound * choices
    if model_max is not None:
        if cap is None or model_max <= cap:
            return model_max * choices
        bound = cap
    else:
        bound = cfg.default_output_tokens if cap is None else min(cfg.default_output_tokens, cap)
    body[cfg.chat_output_field if call.endpoint is Endpoint.CHAT else "max_output_tokens"] = bound
    return bound * choices


def _normalize(obj: Any) -> Any:
    if isinstance(obj, str):
        return " ".join(obj.split())
    if isinstance(obj, dict):
        return {k: _normalize(v) for k, v in obj.items() if k not in _VOLATILE}
    if isinstance(obj, list):
        return [_normalize(v) for v in obj]
    return obj


def fingerprint(call: Call, last_messages: int) -> str:
    """A short hash of what the request asks, for "same request N times in a run".

    Ids (tool call ids, response ids) and transport fields are dropped and whitespace is
    collapsed. With ``last_messages`` > 0 only the tail of the conversation counts, so an agent
    that repeats the same tool call and gets the same result is caught even though its history
    grows each turn.
    """
    body = call.body
    if call.endpoint is Endpoint.CHAT:
        items: Any = body.get("messages")
    else:
        items = body.get("input")
    if last_messages and isinstance(items, list):
        items = items[-last_messages:]
    tools = body.get("tools")
    tool_names = sorted(
        str((t.get("function") or t).get("name", "")) for t in tools if isinstance(t, dict)
    ) if isinstance(tools, list) else []
    doc = {"e": str(call.endpoint), "m": call.model, "i": _normalize(items), "t": tool_names,
           "s": _normalize(body.get("instructions"))}  # fmt: skip
    return hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
