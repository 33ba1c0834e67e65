"""A call's cost upper bound before it runs, and its loop-detection fingerprint. No network.

Input: byte-level BPE tokenizers (OpenAI's, Llama's, ...) emit at least one UTF-8 byte per
token, so the byte count of the request's text bounds its tokens. We count the bytes of every
string in the body (keys included: they cover the chat template's role markers and the tool
schema rendering), add a per-message allowance, replace the media of image/audio/file parts
by configured flat amounts, and clamp by the model's context window (a longer prompt is
rejected upstream). Any JSON shape is counted (a ``type`` that is a list or an object, any
depth): the body reaches the estimator before anything checks fields the gateway does not use.
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

#: The ``type`` of a media part → the setting with its flat token amount.
_MEDIA = {
    **dict.fromkeys(("image_url", "input_image", "image"), "image_tokens"),
    **dict.fromkeys(("input_audio", "audio"), "audio_tokens"),
    **dict.fromkeys(("file", "input_file"), "file_tokens"),
}
#: Keys of a media part that carry the media itself (bytes, URL or id), replaced by the flat
#: amount. The part's other keys (type, detail, filename, or text a client slips in) count as
#: text, so a media ``type`` cannot hide text from the bound.
_MEDIA_PAYLOAD = frozenset(
    {"image_url", "input_audio", "audio", "file", "file_data", "file_url", "file_id", "data", "url"}
)
#: Integers beyond this are counted from their bit length (``str`` refuses huge ones).
_SMALL_INT = 10**18
_OUTPUT_FIELDS = {
    Endpoint.CHAT: ("max_completion_tokens", "max_tokens"),
    Endpoint.RESPONSES: ("max_output_tokens",),
}
#: Fields that do not change what is being asked (excluded from the loop fingerprint).
_VOLATILE = frozenset(
    {
        "id",
        "tool_call_id",
        "call_id",
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "seed",
        "service_tier",
        "request_id",
    }
)


def _text_bytes(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))  # a lone surrogate is 3 bytes, never an error


def _size(obj: Any, cfg: EstimateSettings) -> int:
    """Upper bound of the bytes ``obj`` renders to (media parts: their flat amounts).

    Iterative, so no nesting depth can exhaust the stack.
    """
    total = 0
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += _text_bytes(item)
        elif isinstance(item, dict):
            kind = item.get("type")
            media = _MEDIA.get(kind) if isinstance(kind, str) else None
            if media is not None:
                total += getattr(cfg, media)
            for key, value in item.items():
                total += _text_bytes(key) if isinstance(key, str) else len(str(key))
                if media is None or key not in _MEDIA_PAYLOAD:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        elif item is None or isinstance(item, bool):
            total += 4
        elif isinstance(item, int) and not -_SMALL_INT < item < _SMALL_INT:
            total += item.bit_length() // 3 + 3  # digits ≤ bits·log10(2) + 1, plus a sign
        else:
            total += len(str(item))
    return total


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


def _tool_name(tool: dict[str, Any]) -> str:
    """A tool's name in either API's shape (chat nests it under ``function``); any shape is read."""
    fn = tool.get("function")
    return str((fn if isinstance(fn, dict) and fn else tool).get("name", ""))


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
    tool_names = (
        sorted(_tool_name(t) for t in tools if isinstance(t, dict)) if isinstance(tools, list) else []
    )
    doc = {
        "e": str(call.endpoint),
        "m": call.model,
        "i": _normalize(items),
        "t": tool_names,
        "s": _normalize(body.get("instructions")),
    }
    return hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()
