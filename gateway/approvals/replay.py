"""Answers the approval stages hand out instead of calling the model.

A held answer is stored as the caller would have received it, in the form it came in:
``{"kind": "json", "json": {...}}`` for a plain call, ``{"kind": "events", "events": [raw
SSE event, ...]}`` for a stream. A re-send may ask for the other form (the fingerprint
ignores ``stream``), so either form can be served as either: events are assembled into a
complete answer, a complete answer is cut into the events its endpoint streams.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.approvals.answers import denial_text, deny_json, synth_json
from gateway.approvals.model import Approval, Status
from gateway.approvals.stream_answers import TEXT, assemble, classify, deny_events, json_to_events
from gateway.call import Call, ModelResponse
from gateway.sse import EventBatches, LastBatch, SSEEvent

_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream; charset=utf-8"}


def stored_json(body: Any) -> dict[str, Any]:
    return {"kind": "json", "json": body}


def stored_events(events: list[SSEEvent]) -> dict[str, Any]:
    return {"kind": "events", "events": [e.raw.decode("utf-8", "replace") for e in events]}


def _events_of(stored: dict[str, Any]) -> list[SSEEvent]:
    return [SSEEvent.parse(raw.encode("utf-8")) for raw in stored.get("events") or []]


def _body_of(call: Call, stored: dict[str, Any]) -> Any:
    if stored.get("kind") == "events":
        return assemble(call.endpoint.value, _events_of(stored))
    return stored.get("json")


def wants_usage(call: Call) -> bool:
    options = call.body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


async def _iterate(events: list[SSEEvent]) -> EventBatches:
    if events:
        yield LastBatch(events)


def response_from_json(call: Call, body: Any) -> ModelResponse:
    if call.stream:
        events = json_to_events(call.endpoint.value, body, include_usage=wants_usage(call))
        return ModelResponse(200, dict(_SSE), events=_iterate(events))
    return ModelResponse(200, dict(_JSON), body=orjson.dumps(body), json=body)


def _response_from_events(call: Call, events: list[SSEEvent]) -> ModelResponse:
    if call.stream:
        return ModelResponse(200, dict(_SSE), events=_iterate(events))
    return response_from_json(call, assemble(call.endpoint.value, events))


def approved_response(call: Call, stored: dict[str, Any]) -> ModelResponse:
    """The held answer, unchanged, in the form this re-send asks for."""
    if stored.get("kind") == "events":
        return _response_from_events(call, _events_of(stored))
    return response_from_json(call, stored.get("json"))


def outcome_text(approval: Approval) -> str:
    if approval.status is Status.DENIED:
        return denial_text(approval.tool_names(), approval.comment, by_reviewer=True, phase=approval.phase)
    reason = approval.outcome_reason or approval.status.value
    return denial_text(approval.tool_names(), reason, by_reviewer=False, phase=approval.phase)


def denied_response(call: Call, approval: Approval, stored: dict[str, Any] | None) -> ModelResponse:
    """The answer a denied (or expired, or withdrawn) approval gives the caller."""
    endpoint = call.endpoint.value
    text = outcome_text(approval)
    if stored is None:
        return response_from_json(call, synth_json(endpoint, call.model, text))
    if stored.get("kind") == "events" and call.stream:
        events = _events_of(stored)
        had_text = any(classify(endpoint, e) == TEXT for e in events)
        return _response_from_events(call, deny_events(endpoint, events, text, text_before=had_text))
    return response_from_json(call, deny_json(endpoint, _body_of(call, stored), text))
