"""Rendering a ``Plan`` as a Responses API answer: a ``response`` object, or its event stream.

Field names follow the openai SDK's types (``openai/types/responses``): the SDK's stream
accumulator asserts the item and content types it sees, so each event must name its
``item_id``, ``output_index`` and ``content_index`` exactly as OpenAI does, and every event
carries a ``sequence_number`` that grows by one from ``response.created``.
"""

from __future__ import annotations

from typing import Any

from gateway.sse import SSEEvent
from wardgate_mock.chat import fragments, text_pieces
from wardgate_mock.conversation import Conversation
from wardgate_mock.planner import Plan


def responses_usage(p: Plan) -> dict[str, Any]:
    return {
        "input_tokens": p.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": p.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": p.total_tokens,
    }


def _message_item(p: Plan, status: str) -> dict[str, Any]:
    return {
        "id": "msg_" + p.seed,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": p.text or "", "annotations": [], "logprobs": []}],
    }


def output_items(p: Plan) -> list[dict[str, Any]]:
    if p.tool_calls:
        return [
            {
                "id": f"fc_{p.seed}{i:02d}",
                "type": "function_call",
                "status": "completed",
                "arguments": c.arguments,
                "call_id": c.id,
                "name": c.name,
            }
            for i, c in enumerate(p.tool_calls)
        ]
    return [_message_item(p, "incomplete" if p.finish_reason == "length" else "completed")]


def response_object(
    body: dict[str, Any], conv: Conversation, p: Plan, created: int, *, final: bool
) -> dict[str, Any]:
    """The ``response`` object: in progress (empty output) or final (output and usage)."""
    incomplete = final and p.finish_reason == "length"
    text = body.get("text")
    return {
        "id": "resp_" + p.seed,
        "object": "response",
        "created_at": created,
        "status": ("incomplete" if incomplete else "completed") if final else "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "max_tool_calls": body.get("max_tool_calls"),
        "model": conv.model,
        "output": output_items(p) if final else [],
        "parallel_tool_calls": conv.parallel,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text if isinstance(text, dict) else {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": responses_usage(p) if final else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


class _Sequencer:
    """Numbers events in order, as OpenAI's ``sequence_number`` does."""

    def __init__(self) -> None:
        self.events: list[SSEEvent] = []

    def emit(self, kind: str, **fields: Any) -> None:
        obj = {"type": kind, "sequence_number": len(self.events), **fields}
        self.events.append(SSEEvent.from_json(obj, event=kind))


def responses_events(body: dict[str, Any], conv: Conversation, p: Plan, created: int) -> list[SSEEvent]:
    seq = _Sequencer()
    seq.emit("response.created", response=response_object(body, conv, p, created, final=False))
    seq.emit("response.in_progress", response=response_object(body, conv, p, created, final=False))
    for index, item in enumerate(output_items(p)):
        if item["type"] == "function_call":
            opened = {**item, "status": "in_progress", "arguments": ""}
            seq.emit("response.output_item.added", output_index=index, item=opened)
            for frag in fragments(item["arguments"]):
                seq.emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=frag,
                )
            seq.emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=item["arguments"],
            )
        else:
            opened = {**item, "status": "in_progress", "content": []}
            ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
            seq.emit("response.output_item.added", output_index=index, item=opened)
            empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            seq.emit("response.content_part.added", **ids, part=empty_part)
            for piece in text_pieces(p.text or ""):
                seq.emit("response.output_text.delta", **ids, delta=piece, logprobs=[])
            seq.emit("response.output_text.done", **ids, text=p.text or "", logprobs=[])
            seq.emit("response.content_part.done", **ids, part=item["content"][0])
        seq.emit("response.output_item.done", output_index=index, item=item)
    final = response_object(body, conv, p, created, final=True)
    seq.emit(
        "response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final
    )
    return seq.events
