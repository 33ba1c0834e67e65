"""Rewrite the answer's SSE events: chat-completion chunks and responses-API events.

Every text delta goes through its channel (``stream.Channel``) and is replaced by what the
channel releases; the event keeps its id, index and framing (``SSEEvent.set_json``), and a
delta that released nothing stays as an empty string, so chunk and tool-call indexes stay
valid. What is still held is flushed into the choice's ``finish_reason`` chunk (chat), into a
synthetic delta just before the ``*.done`` event (responses API, whose ``*.done`` events and
``response.completed`` then carry exactly the text the client saw), or, if the upstream ends
without either, before ``[DONE]`` / at the end.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from gateway.call import Endpoint
from gateway.redaction.locations import Walk, response_slots
from gateway.redaction.stream import Channel
from gateway.sse import SSEEvent

NewChannel = Callable[[bool, str], Channel]
WholeText = Callable[[str, bool, str], str]

#: Responses-API ``.done`` events: the field holding the complete text.
_DONE_FIELDS = ("text", "refusal", "arguments", "input", "transcript")
_JSON_KINDS = ("response.function_call_arguments", "response.mcp_call_arguments")
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class ChatRewriter:
    def __init__(self, new_channel: NewChannel) -> None:
        self._new = new_channel
        self._channels: dict[tuple[Any, ...], Channel] = {}
        self._envelope: dict[str, Any] | None = None

    def _channel(self, key: tuple[Any, ...], json: bool, path: str) -> Channel:
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = self._new(json, path)
        return ch

    def on_event(self, ev: SSEEvent) -> list[SSEEvent]:
        if ev.is_done:
            return [*self.flush_all(), ev]
        obj = ev.json
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            return [ev]
        self._envelope = {
            k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in obj
        }
        changed = False
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            idx = choice.get("index", 0)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                changed |= self._delta(idx, delta)
            if choice.get("finish_reason") is not None:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                changed |= self._merge(delta, self._flush_choice(idx))
        if changed:
            ev.set_json(obj)
        return [ev]

    def _delta(self, idx: Any, delta: dict[str, Any]) -> bool:
        changed = False
        for field in ("content", "refusal"):
            value = delta.get(field)
            if isinstance(value, str) and value:
                delta[field] = self._channel((idx, field), False, f"choices[{idx}].message.{field}").feed(
                    value
                )
                changed = True
        calls = delta.get("tool_calls")
        for tc in calls if isinstance(calls, list) else ():
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str) and fn["arguments"]:
                t = tc.get("index", 0)
                path = f"choices[{idx}].message.tool_calls[{t}].function.arguments"
                fn["arguments"] = self._channel((idx, "tool", t), True, path).feed(fn["arguments"])
                changed = True
        fc = delta.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str) and fc["arguments"]:
            path = f"choices[{idx}].message.function_call.arguments"
            fc["arguments"] = self._channel((idx, "function_call"), True, path).feed(fc["arguments"])
            changed = True
        return changed

    def _flush_choice(self, idx: Any) -> dict[tuple[Any, ...], str]:
        out = {}
        for key, ch in self._channels.items():
            if key[0] == idx:
                rest = ch.flush()
                if rest:
                    out[key] = rest
        return out

    @staticmethod
    def _merge(delta: dict[str, Any], flushed: dict[tuple[Any, ...], str]) -> bool:
        for key, rest in flushed.items():
            if key[1] in ("content", "refusal"):
                delta[key[1]] = (delta.get(key[1]) or "") + rest
            elif key[1] == "function_call":
                fc = delta.setdefault("function_call", {})
                fc["arguments"] = (fc.get("arguments") or "") + rest
            else:
                calls = delta.setdefault("tool_calls", [])
                entry = next((c for c in calls if isinstance(c, dict) and c.get("index", 0) == key[2]), None)
                if entry is None:
                    calls.append({"index": key[2], "function": {"arguments": rest}})
                else:
                    fn = entry.setdefault("function", {})
                    fn["arguments"] = (fn.get("arguments") or "") + rest
        return bool(flushed)

    def flush_all(self) -> list[SSEEvent]:
        """Synthetic chunks for choices the upstream never finished (cut-short streams)."""
        events = []
        for idx in sorted({k[0] for k in self._channels}, key=str):
            flushed = self._flush_choice(idx)
            if flushed:
                delta: dict[str, Any] = {}
                self._merge(delta, flushed)
                chunk = dict(self._envelope or {"object": "chat.completion.chunk"})
                chunk["choices"] = [{"index": idx, "delta": delta, "finish_reason": None}]
                events.append(SSEEvent.from_json(chunk))
        return events


class ResponsesRewriter:
    def __init__(self, new_channel: NewChannel, whole_text: WholeText) -> None:
        self._new = new_channel
        self._whole = whole_text
        self._channels: dict[tuple[Any, ...], Channel] = {}
        self._last_delta: dict[tuple[Any, ...], tuple[str | None, dict[str, Any]]] = {}
        self._seq_shift = 0
        self._last_seq: int | None = None

    def on_event(self, ev: SSEEvent) -> list[SSEEvent]:
        obj = ev.json
        if not isinstance(obj, dict):
            return [*self.flush_all(), ev] if ev.is_done else [ev]
        etype = str(obj.get("type") or ev.event or "")
        out: list[SSEEvent] = []
        changed = False
        if etype.endswith(".delta") and isinstance(obj.get("delta"), str):
            kind = etype[: -len(".delta")]
            key = _key(kind, obj)
            ch = self._channels.get(key)
            if ch is None:
                ch = self._channels[key] = self._new(kind in _JSON_KINDS, _path(kind, obj))
            self._last_delta[key] = (ev.event, obj)
            obj["delta"] = ch.feed(obj["delta"])
            changed = True
        elif etype == "response.content_part.done" and isinstance(obj.get("part"), dict):
            out.extend(self._flush_index(obj.get("output_index")))
            self._part(obj["part"], obj.get("output_index"), obj.get("content_index"))
            changed = True
        elif etype in ("response.output_item.done", "response.output_item.added") and isinstance(
            obj.get("item"), dict
        ):
            if etype.endswith(".done"):
                out.extend(self._flush_index(obj.get("output_index")))
            self._item(obj["item"], obj.get("output_index"))
            changed = True
        elif etype.endswith(".done") and etype not in _TERMINAL:
            kind = etype[: -len(".done")]
            key = _key(kind, obj)
            ch = self._channels.get(key)
            if ch is not None:
                out.extend(self._flush(key))
            for field in _DONE_FIELDS:
                value = obj.get(field)
                if isinstance(value, str):
                    obj[field] = (
                        ch.text
                        if ch is not None
                        else self._whole(value, kind in _JSON_KINDS, _path(kind, obj))
                    )
                    changed = True
        elif etype in _TERMINAL:
            out.extend(self.flush_all())
            response = obj.get("response")
            if isinstance(response, dict) and isinstance(response.get("output"), list):
                for i, item in enumerate(response["output"]):
                    if isinstance(item, dict):
                        self._item(item, i)
                changed = True
        if self._renumber(obj) or changed:
            ev.set_json(obj)
        out.append(ev)
        return out

    def _renumber(self, obj: dict[str, Any]) -> bool:
        seq = obj.get("sequence_number")
        if not isinstance(seq, int):
            return False
        obj["sequence_number"] = self._last_seq = seq + self._seq_shift
        return self._seq_shift != 0

    def _flush(self, key: tuple[Any, ...]) -> list[SSEEvent]:
        rest = self._channels[key].flush()
        if not rest or key not in self._last_delta:
            return []
        event_name, template = self._last_delta[key]
        synthetic = copy.copy(template)
        synthetic["delta"] = rest
        if isinstance(template.get("sequence_number"), int):
            self._seq_shift += 1
            synthetic["sequence_number"] = self._last_seq = (self._last_seq or 0) + 1
        return [SSEEvent.from_json(synthetic, event=event_name)]

    def flush_all(self) -> list[SSEEvent]:
        return [e for key in list(self._channels) for e in self._flush(key)]

    def _flush_index(self, oi: Any) -> list[SSEEvent]:
        """An output item is complete: nothing more will arrive on its channels."""
        return [e for key in list(self._channels) if key[1] == oi for e in self._flush(key)]

    def _text(self, kind: str, oi: Any, ci: Any, value: str, json: bool, path: str) -> str:
        ch = self._channels.get((kind, oi, ci))
        if ch is not None:
            return ch.text
        return self._whole(value, json, path) if value else value

    def _part(self, part: dict[str, Any], oi: Any, ci: Any) -> None:
        if isinstance(part.get("text"), str):
            kind = (
                "response.reasoning_text" if part.get("type") == "reasoning_text" else "response.output_text"
            )
            part["text"] = self._text(kind, oi, ci, part["text"], False, f"output[{oi}].content[{ci}].text")
        if isinstance(part.get("refusal"), str):
            part["refusal"] = self._text(
                "response.refusal", oi, ci, part["refusal"], False, f"output[{oi}].content[{ci}].refusal"
            )

    def _item(self, item: dict[str, Any], oi: Any) -> None:
        itype = item.get("type")
        if itype == "message" and isinstance(item.get("content"), list):
            for ci, part in enumerate(item["content"]):
                if isinstance(part, dict):
                    self._part(part, oi, ci)
        elif itype in ("function_call", "mcp_call") and isinstance(item.get("arguments"), str):
            kind = (
                "response.function_call_arguments"
                if itype == "function_call"
                else "response.mcp_call_arguments"
            )
            item["arguments"] = self._text(kind, oi, 0, item["arguments"], True, f"output[{oi}].arguments")
        elif itype == "custom_tool_call" and isinstance(item.get("input"), str):
            item["input"] = self._text(
                "response.custom_tool_call_input", oi, 0, item["input"], False, f"output[{oi}].input"
            )
        elif itype == "reasoning" and isinstance(item.get("summary"), list):
            for si, part in enumerate(item["summary"]):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    part["text"] = self._text(
                        "response.reasoning_summary_text",
                        oi,
                        si,
                        part["text"],
                        False,
                        f"output[{oi}].summary[{si}].text",
                    )


def _key(kind: str, obj: dict[str, Any]) -> tuple[Any, ...]:
    sub = obj.get("content_index", obj.get("summary_index", 0))
    return (kind, obj.get("output_index"), sub)


def _path(kind: str, obj: dict[str, Any]) -> str:
    oi = obj.get("output_index")
    if kind == "response.function_call_arguments":
        return f"output[{oi}].arguments"
    if kind == "response.reasoning_summary_text":
        return f"output[{oi}].summary[{obj.get('summary_index', 0)}].text"
    field = "refusal" if kind == "response.refusal" else "text"
    return f"output[{oi}].content[{obj.get('content_index', 0)}].{field}"


def rewrite_body(endpoint: Endpoint, body: Any, whole_text: WholeText) -> bool:
    """A complete (non-stream) answer: each text through ``whole_text``; True if changed."""
    walk: Walk = response_slots(endpoint, body)
    changed = False
    for slot in walk.slots:
        text = slot.text
        if text:
            new = whole_text(text, slot.json, slot.path)
            if new != text:
                slot.set(new)
                changed = True
    return changed
