"""Rendering a ``Plan`` as a chat completion: one JSON body, or OpenAI's chunk stream.

The stream follows what OpenAI sends, because clients (the openai SDK's accumulator, the
Agents SDK, LangChain) depend on its details: a first chunk carrying only the role, content
in several chunks, each tool call opened by a chunk with its ``index``, ``id``, ``type`` and
function ``name`` and then continued by argument fragments under the same ``index``, a chunk
with an empty delta and the ``finish_reason``, then (only with
``stream_options.include_usage``) a chunk with ``choices: []`` and the usage, then ``[DONE]``.
With ``include_usage`` every earlier chunk carries ``"usage": null``, as OpenAI's do.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.sse import SSEEvent
from wardgate_mock.planner import Plan

FINGERPRINT = "fp_wardgate_mock"
#: Words per content chunk and fragments per tool-call argument string in a stream.
WORDS_PER_CHUNK = 3
ARG_FRAGMENTS = 3

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def chat_usage(p: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "total_tokens": p.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def chat_body(model: str, p: Plan, created: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": p.text, "refusal": None, "annotations": []}
    if p.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in p.tool_calls
        ]
    return {
        "id": "chatcmpl-" + p.seed,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": p.finish_reason}],
        "usage": chat_usage(p),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }


def text_pieces(text: str, words_per_piece: int = WORDS_PER_CHUNK) -> list[str]:
    """Split text into chunks of a few words each, keeping every character."""
    words = _WORDS.findall(text)
    if not words:
        return [text] if text else []
    return ["".join(words[i : i + words_per_piece]) for i in range(0, len(words), words_per_piece)]


def fragments(arguments: str, count: int = ARG_FRAGMENTS) -> list[str]:
    """Split a JSON argument string into ``count`` pieces (fewer for short strings)."""
    if not arguments:
        return [""]
    size = max(1, -(-len(arguments) // count))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def chat_events(model: str, p: Plan, created: int, include_usage: bool) -> list[SSEEvent]:
    base = {
        "id": "chatcmpl-" + p.seed,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> SSEEvent:
        obj = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            obj["usage"] = None
        return SSEEvent.from_json(obj)

    events = [chunk({"role": "assistant", "content": "" if p.text is not None else None, "refusal": None})]
    for piece in text_pieces(p.text or ""):
        events.append(chunk({"content": piece}))
    for index, call in enumerate(p.tool_calls):
        opening = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.append(chunk({"tool_calls": [opening]}))
        for frag in fragments(call.arguments):
            events.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]}))
    events.append(chunk({}, p.finish_reason))
    if include_usage:
        events.append(SSEEvent.from_json({**base, "choices": [], "usage": chat_usage(p)}))
    events.append(SSEEvent.done())
    return events
