"""Opt-in content capture: "what the agent saw", stored beside the call's audit event.

A policy decision with ``capture: true`` (per team or key, off by default) asks for the call's
*redacted* request messages and answer to be kept. They go to their own table
(``audit_captures``, own retention: ``audit.capture_retention_days``), keyed by the event id;
the chained event carries only ``capture: {hash, bytes}``, the SHA-256 of the stored body.
Pruning captures therefore never touches the chain (``wardgate audit verify`` stays green),
and a capture that was edited no longer matches the hash its event was sealed with.

Never raw PII or secrets. What is stored is what the model was sent (the request after
redaction, placeholders in place) and the answer as the caller got it with every value
restored from the vault put back to its placeholder (``Concealer.conceal``). The capture is
refused, its reason recorded in the event (``capture: {refused}``) and logged, whenever that
cannot be promised: redaction did not run on the call, part of the request was not scanned,
an entity found was left as is (action ``allow``), or the answer was not scanned.

The ``capture`` stage only assembles a streamed answer (chat deltas, or a Responses terminal
event) for calls whose decision asked for it; every other call pays one attribute test per
event. It sits after every stage that rewrites events, so it sees what the client got.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.audit.schema import canonical_json
from gateway.call import Call, Endpoint
from gateway.callstate import Slot
from gateway.errors import GatewayError
from gateway.pipeline import Stage
from gateway.sse import SSEEvent

if TYPE_CHECKING:
    from gateway.audit.store.base import AuditStore

log = logging.getLogger("wardgate.audit")
CAPTURE_VERSION = 1


@dataclass(slots=True)
class _Streamed:
    """A streamed answer as far as it went: text, tool calls by index, finish reason."""

    text: list[str] = field(default_factory=list)
    tools: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    final: dict[str, Any] | None = None  # a Responses terminal event's ``response``


_STREAM: Slot[_Streamed] = Slot("audit.capture_stream")


class CaptureStage(Stage):
    name = "capture"

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        if call.capture:
            acc = _STREAM.get(call) or _STREAM.put(call, _Streamed())
            try:
                _feed(acc, event.json)
            except GatewayError:  # not JSON: nothing to assemble (the relay judges it)
                pass
        return (event,)


def _feed(acc: _Streamed, doc: Any) -> None:
    if not isinstance(doc, dict):
        return
    kind = doc.get("type")
    if isinstance(kind, str):  # Responses API events
        if kind == "response.output_text.delta" and isinstance(doc.get("delta"), str):
            acc.text.append(doc["delta"])
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = doc.get("response")
            if isinstance(response, dict):
                acc.final = response
        return
    for choice in doc.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if isinstance(delta.get("content"), str):
                acc.text.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                if not isinstance(tc, dict):
                    continue
                slot = acc.tools.setdefault(
                    int(tc.get("index") or 0), {"id": "", "name": "", "arguments": ""}
                )
                fn: dict[str, Any] = tc["function"] if isinstance(tc.get("function"), dict) else {}
                if tc.get("id"):
                    slot["id"] = str(tc["id"])
                if fn.get("name"):
                    slot["name"] = str(fn["name"])
                if isinstance(fn.get("arguments"), str):
                    slot["arguments"] += fn["arguments"]
        if choice.get("finish_reason"):
            acc.finish_reason = str(choice["finish_reason"])


# -- what is stored ----------------------------------------------------------------------------


def _responses_answer(output: Any, status: Any) -> dict[str, Any]:
    text: list[str] = []
    tools: list[dict[str, Any]] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    text.append(part["text"])
        elif item.get("type") == "function_call":
            tools.append(
                {
                    "id": item.get("call_id", ""),
                    "name": item.get("name", ""),
                    "arguments": item.get("arguments"),
                }
            )
    return {"content": "".join(text) or None, "tool_calls": tools, "finish_reason": status}


def _chat_answer(doc: dict[str, Any]) -> dict[str, Any]:
    choices = doc.get("choices")
    choice: dict[str, Any] = (
        choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    )
    message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
    tools = [
        {
            "id": tc.get("id", ""),
            "name": (tc.get("function") or {}).get("name", ""),
            "arguments": (tc.get("function") or {}).get("arguments"),
        }
        for tc in message.get("tool_calls") or ()
        if isinstance(tc, dict)
    ]
    return {
        "content": message.get("content"),
        "tool_calls": tools,
        "finish_reason": choice.get("finish_reason"),
    }


def answer_of(call: Call) -> dict[str, Any] | None:
    """The answer as the caller got it, in one shape for both APIs and both modes."""
    if call.stream:
        acc = _STREAM.get(call)
        if acc is None:
            return None
        if acc.final is not None:
            return _responses_answer(acc.final.get("output"), acc.final.get("status"))
        tools = [acc.tools[i] for i in sorted(acc.tools)]
        return {"content": "".join(acc.text) or None, "tool_calls": tools, "finish_reason": acc.finish_reason}
    doc = call.response.json if call.response is not None else None
    if not isinstance(doc, dict) or (call.response is not None and call.response.status >= 400):
        return None
    if call.endpoint is Endpoint.RESPONSES:
        return _responses_answer(doc.get("output"), doc.get("status"))
    if call.endpoint is Endpoint.CHAT:
        return _chat_answer(doc)
    return None  # embeddings: vectors are not content anyone reads


def request_of(call: Call) -> dict[str, Any]:
    body = call.body if isinstance(call.body, dict) else {}
    if call.endpoint is Endpoint.CHAT:
        out: dict[str, Any] = {"messages": body.get("messages")}
    elif call.endpoint is Endpoint.RESPONSES:
        out = {"instructions": body.get("instructions"), "input": body.get("input")}
    else:
        out = {"input": body.get("input")}
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [_tool_name(t) for t in tools if isinstance(t, dict)]
    return out


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
    return str(name or tool.get("type") or "")


def _left_raw(summary: Any) -> list[str]:
    """Entity types found and left as they were (action ``allow``)."""
    if not isinstance(summary, dict):
        return []
    actions = summary.get("actions") or {}
    entities = summary.get("entities") or {}
    return sorted(e for e, n in entities.items() if n and actions.get(e) == "allow")


def refusal(call: Call, answer: dict[str, Any] | None) -> str | None:
    """Why this call's content may not be stored, or None when it is safe to."""
    pii = call.pii
    if not isinstance(pii, dict) or call.vault is None:
        return "redaction is off for this call"
    if pii.get("unscanned"):
        return "part of the request was not scanned for PII"
    raw = _left_raw(pii)
    if raw:
        return f"the request holds unredacted {', '.join(raw)} (action allow)"
    if answer is not None:
        out = pii.get("response")
        if not isinstance(out, dict) or out.get("scanned") is False:
            return "the answer was not scanned for PII (redaction.scan_output is off)"
        raw = _left_raw(out)
        if raw:
            return f"the answer holds unredacted {', '.join(raw)} (action allow)"
    return None


def _conceal(value: Any, conceal: Any) -> Any:
    if isinstance(value, str):
        return conceal(value)
    if isinstance(value, dict):
        return {k: _conceal(v, conceal) for k, v in value.items()}
    if isinstance(value, list):
        return [_conceal(v, conceal) for v in value]
    return value


def build(call: Call, event: dict[str, Any]) -> tuple[bytes | None, str | None]:
    """The capture body for ``event``'s call, or why it is refused."""
    answer = answer_of(call)
    reason = refusal(call, answer)
    if reason is not None:
        return None, reason
    vault = call.vault
    assert vault is not None  # refusal() checked it
    doc = {
        "v": CAPTURE_VERSION,
        "event_id": event["id"],
        "request_id": call.request_id,
        "endpoint": call.endpoint.value,
        "request": request_of(call),
        # Values the vault restored for the caller go back to their placeholders.
        "answer": _conceal(answer, vault.conceal) if answer is not None else None,
    }
    return canonical_json(doc), None


async def attach(store: AuditStore, call: Call, event: dict[str, Any], max_bytes: int) -> None:
    """Store the call's capture and reference it from ``event`` (or record why not)."""
    body: bytes | None = None
    if not store.queryable:
        reason: str | None = f"the {store.name} audit backend cannot hold captures"
    else:
        body, reason = build(call, event)
        if body is not None and len(body) > max_bytes:
            reason = f"the capture is {len(body)} bytes, over audit.capture_max_bytes"
            body = None
    if body is not None:
        digest = hashlib.sha256(body).hexdigest()
        agent = event.get("agent") or {}
        try:
            await store.put_capture(event["id"], event["ts"], agent.get("run_id"), digest, body.decode())
        except Exception as exc:  # the call is still audited; its capture is lost, and says so
            reason = f"the capture could not be stored ({type(exc).__name__})"
        else:
            event["capture"] = {"hash": digest, "bytes": len(body)}
            return
    event["capture"] = {"refused": reason}
    log.warning("content capture of request %s refused: %s", call.request_id, reason)


def verified(event: dict[str, Any], stored: tuple[str, str] | None) -> dict[str, Any] | None:
    """A stored capture checked against the hash its event was sealed with (for readers)."""
    ref = event.get("capture")
    if not isinstance(ref, dict):
        return None
    if "refused" in ref:
        return {"refused": ref["refused"]}
    if stored is None:
        return {"pruned": True, "hash": ref.get("hash")}
    body = stored[1].encode()
    ok = hashlib.sha256(body).hexdigest() == ref.get("hash")
    return {"hash": ref.get("hash"), "intact": ok, "content": orjson.loads(body) if ok else None}
