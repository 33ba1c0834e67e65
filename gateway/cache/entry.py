"""A stored answer: what is kept, what may never be kept, and how a hit is served.

An entry is the provider's complete answer as it came back (placeholders and all: the
caller's values are restored by ``redact_out`` from the *current* caller's vault, never
stored), with the model that answered and what the call was booked at. A stream is stored
assembled into the complete answer it adds up to, so either form can serve either form.

Never stored (``refusal``): an error, a truncated answer (``length``, an incomplete
response), a content-filtered one, anything that is not a complete answer. (Answers whose
tool calls needed an approval, and answers the output redaction found new values in, are
refused by the stage, which knows the call.)

A hit is the stored answer with a new id and creation time, its usage marked as all cached
(``cached_tokens`` = the prompt's tokens); on a stream, a well-formed SSE stream of it (the
usage chunk only when the client asked for it).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.approvals.stream_answers import assemble, json_to_events
from gateway.call import Call, Endpoint, ModelResponse
from gateway.sse import EventBatches, LastBatch, SSEEvent

_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream; charset=utf-8"}
_CHAT_DONE = frozenset({"stop", "tool_calls", "function_call"})
VERSION = 1
#: Answer ids only need to be unique, not secret: a PRNG seeded once from the OS costs ~0.3 µs
#: per id where ``secrets`` costs a syscall (~5-20 µs here) per hit (as the proxy's request ids).
_IDS = random.Random(os.urandom(32))


@dataclass(slots=True)
class Entry:
    answer: dict[str, Any]
    model: str | None
    cost_usd: float | None
    stored_at: float

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "v": VERSION,
                "answer": self.answer,
                "model": self.model,
                "cost_usd": self.cost_usd,
                "stored_at": self.stored_at,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        """The entry, or None for anything unreadable (an older format, a torn value)."""
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict) or doc.get("v") != VERSION or not isinstance(doc.get("answer"), dict):
            return None
        cost = doc.get("cost_usd")
        model = doc.get("model")
        return cls(
            doc["answer"],
            model if isinstance(model, str) else None,
            float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
            float(doc.get("stored_at") or 0.0),
        )


def assemble_events(endpoint: Endpoint, raws: Iterable[bytes]) -> dict[str, Any] | None:
    """The complete answer the captured raw SSE events of a stream add up to."""
    try:
        return assemble(endpoint.value, [SSEEvent.parse(raw) for raw in raws])
    except Exception:  # an event that does not parse is no answer to store
        return None


def refusal(endpoint: Endpoint, answer: Any) -> str | None:
    """Why ``answer`` may not be stored (None: it may)."""
    if not isinstance(answer, dict) or answer.get("error"):
        return "error"
    if endpoint is Endpoint.RESPONSES:
        if answer.get("status") != "completed" or answer.get("incomplete_details"):
            return "incomplete"
        return None if isinstance(answer.get("output"), list) and answer["output"] else "empty"
    choices = answer.get("choices")
    if not isinstance(choices, list) or not choices:
        return "empty"
    for choice in choices:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        if reason == "content_filter":
            return "content_filtered"
        if reason not in _CHAT_DONE:
            return "truncated"
    return None


def _all_cached(usage: Any, endpoint: Endpoint) -> Any:
    if not isinstance(usage, dict):
        return usage
    if endpoint is Endpoint.RESPONSES:
        details = usage.get("input_tokens_details")
        tokens = usage.get("input_tokens", 0)
        name = "input_tokens_details"
    else:
        details = usage.get("prompt_tokens_details")
        tokens = usage.get("prompt_tokens", 0)
        name = "prompt_tokens_details"
    return {**usage, name: {**(details if isinstance(details, dict) else {}), "cached_tokens": tokens}}


def fresh_answer(call: Call, entry: Entry) -> dict[str, Any]:
    """The stored answer as a new one: new id and time, usage all cached."""
    answer = dict(entry.answer)
    now = int(time.time())
    if call.endpoint is Endpoint.RESPONSES:
        answer["id"] = f"resp_wgc{_IDS.getrandbits(160):040x}"
        answer["created_at"] = now
    else:
        answer["id"] = f"chatcmpl-wgc{_IDS.getrandbits(96):024x}"
        answer["created"] = now
    if "usage" in answer:
        answer["usage"] = _all_cached(answer["usage"], call.endpoint)
    return answer


async def _one_batch(events: list[SSEEvent]) -> EventBatches:
    yield LastBatch(events)


def hit_response(call: Call, entry: Entry) -> ModelResponse:
    """The answer a hit sends, in the form the call asked for."""
    answer = fresh_answer(call, entry)
    if call.stream:
        options = call.body.get("stream_options")
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        call.client_wants_usage = usage
        events = json_to_events(call.endpoint.value, answer, include_usage=usage)
        return ModelResponse(200, dict(_SSE), events=_one_batch(events))
    return ModelResponse(200, dict(_JSON), body=orjson.dumps(answer), json=answer)
