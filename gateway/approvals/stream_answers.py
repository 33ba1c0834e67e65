"""Streamed answers: which events carry what, and how to assemble, rewrite and replay them.

``classify`` sorts an event into ``text`` (visible text the client may get at once),
``tool`` (part of a tool call), ``final`` (finish reason, usage, ``[DONE]``, the Responses
API's terminal events) or ``lead`` (role chunks, ``response.created`` and other events with
nothing to show yet). The approval stage holds ``tool`` and ``final`` events until the
answer is complete, and ``lead`` events until the first text: a tool-call-only answer then
sends nothing before the decision, so a ``defer`` can still answer with a real HTTP 409 and
a denial can still set its response header.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from gateway.approvals.answers import TOOL_ITEM_TYPES, message_item
from gateway.sse import SSEEvent

TEXT, TOOL, FINAL, LEAD = "text", "tool", "final", "lead"

_RESP_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
_RESP_TOOL_EVENTS = frozenset(
    {
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
    }
)
_RESP_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
_RESP_ITEM_EVENTS = frozenset({"response.output_item.added", "response.output_item.done"})


def _type(event: SSEEvent) -> str | None:
    obj = event.json
    return obj.get("type") if isinstance(obj, dict) else event.event


def classify(endpoint: str, event: SSEEvent) -> str:
    """Only the parsed event decides: a byte pattern cannot tell ``"tool_calls"`` from
    ``"tool\\u005fcalls"``, which every JSON parser reads as the same key. The parse is cached
    on the event, so the policy stage before this one has usually paid for it already."""
    return classify_parsed(endpoint, event)


def classify_parsed(endpoint: str, event: SSEEvent) -> str:
    if event.is_done:
        return FINAL
    obj = event.json
    if not isinstance(obj, dict):
        return LEAD
    if endpoint == "responses":
        kind = obj.get("type") or event.event
        if kind in _RESP_TEXT:
            return TEXT
        if kind in _RESP_FINAL:
            return FINAL
        if kind in _RESP_TOOL_EVENTS:
            return TOOL
        if kind in _RESP_ITEM_EVENTS and (obj.get("item") or {}).get("type") in TOOL_ITEM_TYPES:
            return TOOL
        return LEAD
    choices = obj.get("choices") or []
    if not choices:
        return FINAL if obj.get("usage") else LEAD
    result = LEAD
    for choice in choices:
        delta = (choice or {}).get("delta") or {}
        if delta.get("tool_calls") or delta.get("function_call"):
            return TOOL
        if choice.get("finish_reason"):
            result = FINAL
        elif result == LEAD and (delta.get("content") or delta.get("refusal")):
            result = TEXT
    return result


def assemble(endpoint: str, events: Iterable[SSEEvent]) -> dict[str, Any]:
    """The complete (non-stream) answer these events add up to."""
    if endpoint == "responses":
        return _assemble_responses(events)
    return _assemble_chat(events)


def _assemble_chat(events: Iterable[SSEEvent]) -> dict[str, Any]:
    head: dict[str, Any] = {}
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for event in events:
        obj = event.json
        if not isinstance(obj, dict):
            continue
        if not head:
            head = {k: obj.get(k) for k in ("id", "created", "model", "system_fingerprint", "service_tier")}
        if obj.get("usage"):
            usage = obj["usage"]
        for choice in obj.get("choices") or []:
            index = int(choice.get("index") or 0)
            acc = choices.setdefault(
                index,
                {
                    "index": index,
                    "message": {"role": "assistant", "content": None},
                    "logprobs": None,
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta") or {}
            message = acc["message"]
            for field in ("content", "refusal"):
                if delta.get(field):
                    message[field] = (message.get(field) or "") + delta[field]
            for tc in delta.get("tool_calls") or []:
                calls = message.setdefault("tool_calls", [])
                i = int(tc.get("index") or 0)
                while len(calls) <= i:
                    calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                slot = calls[i]
                slot["id"] = tc.get("id") or slot["id"]
                slot["type"] = tc.get("type") or slot["type"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason"):
                acc["finish_reason"] = choice["finish_reason"]
    return {
        **{k: v for k, v in head.items() if v is not None},
        "object": "chat.completion",
        "choices": [choices[i] for i in sorted(choices)],
        "usage": usage,
    }


def _assemble_responses(events: Iterable[SSEEvent]) -> dict[str, Any]:
    base: dict[str, Any] = {}
    items: dict[int, dict[str, Any]] = {}
    for event in events:
        obj = event.json
        if not isinstance(obj, dict):
            continue
        kind = obj.get("type")
        if kind in _RESP_FINAL and isinstance(obj.get("response"), dict):
            return obj["response"]
        if kind == "response.created" and isinstance(obj.get("response"), dict):
            base = dict(obj["response"])
        if kind == "response.output_item.done" and isinstance(obj.get("item"), dict):
            items[int(obj.get("output_index") or 0)] = obj["item"]
    return {**base, "status": "completed", "output": [items[i] for i in sorted(items)]}


# -- rewriting ---------------------------------------------------------------------------


def deny_events(
    endpoint: str, events: list[SSEEvent], text: str, *, text_before: bool, next_seq: int | None = None
) -> list[SSEEvent]:
    """Rewrite held (or all) events of a denied answer: tool parts out, the denial text in.

    ``text_before``: text already reached the client, so the denial starts a new paragraph.
    ``next_seq``: Responses API sequence number to continue from (None: keep the first one).
    """
    if endpoint == "responses":
        return _deny_responses(events, text, next_seq)
    return _deny_chat(events, ("\n\n" + text) if text_before else text)


def _deny_chat(events: list[SSEEvent], text: str) -> list[SSEEvent]:
    out: list[SSEEvent] = []
    template: dict[str, Any] | None = None
    inserted = False
    for event in events:
        obj = event.json
        if event.is_done or not isinstance(obj, dict) or not obj.get("choices"):
            if not inserted and template is not None and (event.is_done or isinstance(obj, dict)):
                out.append(_text_chunk(template, text))
                inserted = True
            out.append(event)
            continue
        template = template or obj
        changed = finished = False
        choices = []
        for choice in obj["choices"]:
            choice = dict(choice)
            delta = dict(choice.get("delta") or {})
            if delta.pop("tool_calls", None) is not None or delta.pop("function_call", None) is not None:
                changed = True
            choice["delta"] = delta
            if choice.get("finish_reason"):
                changed = finished = True
                choice["finish_reason"] = None
            if delta:
                choices.append(choice)
        if not changed:
            out.append(event)
        elif choices:
            out.append(SSEEvent.from_json({**obj, "choices": choices}))
        elif obj.get("usage"):
            out.append(SSEEvent.from_json({**obj, "choices": []}))
        if finished and not inserted:
            out.append(_text_chunk(obj, text))
            inserted = True
    if not inserted and template is not None:
        out.append(_text_chunk(template, text))
    return out


def _text_chunk(template: dict[str, Any], text: str) -> SSEEvent:
    head = {k: template.get(k) for k in ("id", "object", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    return SSEEvent.from_json(
        {
            **head,
            "choices": [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": "stop"}],
        }
    )


def _deny_responses(events: list[SSEEvent], text: str, next_seq: int | None) -> list[SSEEvent]:
    kept: list[dict[str, Any] | SSEEvent] = []
    final: dict[str, Any] | None = None
    for event in events:
        kind = classify("responses", event)
        obj = event.json
        if kind == TOOL:
            continue
        if kind == FINAL and isinstance(obj, dict):
            final = obj
            continue
        kept.append(obj if isinstance(obj, dict) else event)
    response = dict((final or {}).get("response") or {})
    remaining = [
        i
        for i in response.get("output") or []
        if not (isinstance(i, dict) and i.get("type") in TOOL_ITEM_TYPES)
    ]
    item = message_item(text)
    index = len(remaining)
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
    kept += [
        {
            "type": "response.output_item.added",
            "output_index": index,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **ids, "part": part},
        {"type": "response.output_text.delta", **ids, "delta": text, "logprobs": []},
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": index, "item": item},
    ]
    if final is not None:
        response["output"] = [*remaining, item]
        if final.get("type") == "response.incomplete":
            response["status"] = "completed"
            response.pop("incomplete_details", None)
        kept.append(
            {
                **final,
                "type": final.get("type") if final.get("type") == "response.failed" else "response.completed",
                "response": response,
            }
        )
    seq = next_seq
    out: list[SSEEvent] = []
    for entry in kept:
        if isinstance(entry, SSEEvent):
            out.append(entry)
            continue
        if seq is None:
            seq = int(entry.get("sequence_number") or 0)
        out.append(SSEEvent.from_json({**entry, "sequence_number": seq}, event=entry["type"]))
        seq += 1
    return out


# -- replaying a stored complete answer as a stream ---------------------------------------


def json_to_events(endpoint: str, body: dict[str, Any], *, include_usage: bool) -> list[SSEEvent]:
    if endpoint == "responses":
        return _responses_events(body)
    return _chat_events(body, include_usage)


def _chat_events(body: dict[str, Any], include_usage: bool) -> list[SSEEvent]:
    head = {
        "id": body.get("id") or "chatcmpl-wg" + secrets.token_hex(12),
        "object": "chat.completion.chunk",
        "created": body.get("created"),
        "model": body.get("model"),
    }
    if body.get("system_fingerprint"):
        head["system_fingerprint"] = body["system_fingerprint"]
    out: list[SSEEvent] = []
    for choice in body.get("choices") or []:
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        first: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
        if message.get("refusal"):
            first["refusal"] = message["refusal"]
        out.append(
            SSEEvent.from_json({**head, "choices": [{"index": index, "delta": first, "finish_reason": None}]})
        )
        calls = [{"index": i, **c} for i, c in enumerate(message.get("tool_calls") or [])]
        if calls:
            out.append(
                SSEEvent.from_json(
                    {
                        **head,
                        "choices": [{"index": index, "delta": {"tool_calls": calls}, "finish_reason": None}],
                    }
                )
            )
        out.append(
            SSEEvent.from_json(
                {
                    **head,
                    "choices": [
                        {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason") or "stop"}
                    ],
                }
            )
        )
    if include_usage and body.get("usage"):
        out.append(SSEEvent.from_json({**head, "choices": [], "usage": body["usage"]}))
    out.append(SSEEvent.done())
    return out


def _responses_events(body: dict[str, Any]) -> list[SSEEvent]:
    seq = 0
    out: list[SSEEvent] = []

    def emit(obj: dict[str, Any]) -> None:
        nonlocal seq
        out.append(SSEEvent.from_json({**obj, "sequence_number": seq}, event=obj["type"]))
        seq += 1

    emit({"type": "response.created", "response": {**body, "status": "in_progress", "output": []}})
    for index, item in enumerate(body.get("output") or []):
        emit({"type": "response.output_item.added", "output_index": index, "item": item})
        if item.get("type") == "message":
            for ci, part in enumerate(item.get("content") or []):
                if part.get("type") != "output_text":
                    continue
                ids = {"item_id": item.get("id"), "output_index": index, "content_index": ci}
                emit({"type": "response.content_part.added", **ids, "part": {**part, "text": ""}})
                emit(
                    {
                        "type": "response.output_text.delta",
                        **ids,
                        "delta": part.get("text", ""),
                        "logprobs": [],
                    }
                )
                emit(
                    {"type": "response.output_text.done", **ids, "text": part.get("text", ""), "logprobs": []}
                )
                emit({"type": "response.content_part.done", **ids, "part": part})
        elif item.get("type") == "function_call":
            ids = {"item_id": item.get("id"), "output_index": index}
            emit(
                {
                    "type": "response.function_call_arguments.done",
                    **ids,
                    "arguments": item.get("arguments", ""),
                }
            )
        emit({"type": "response.output_item.done", "output_index": index, "item": item})
    emit({"type": "response.completed", "response": body})
    return out
