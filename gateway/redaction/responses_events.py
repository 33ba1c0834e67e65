"""Rewrite the events of a streamed responses-API answer (see events.py for the common rules).

Each ``*.delta`` text goes through its channel (keyed by kind, output index and content or
summary index); what is still held is flushed as a synthetic delta just before the matching
``*.done`` event, whose text is then exactly what the client saw, as are the output items and
``response.completed``. Every other string of an event goes through the field table, whole.
Sequence numbers are shifted past each synthetic delta.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.call import Endpoint
from gateway.redaction.events import NewChannel, WholeText, index_of, rewrite_body
from gateway.redaction.fields import Treat
from gateway.redaction.locations import drop_logprobs, table, walk_body
from gateway.redaction.logprob_check import entries_ok, holder_ok
from gateway.redaction.pad import repad
from gateway.redaction.stream import Channel
from gateway.sse import SSEEvent

#: Responses-API ``.done`` events: the field holding the complete text.
_DONE_FIELDS = ("text", "refusal", "arguments", "input", "transcript", "code")
_JSON_KINDS = ("response.function_call_arguments", "response.mcp_call_arguments")
#: Tool calls the model writes: restored only for types with ``tool_arguments``.
_TOOL_KINDS = (*_JSON_KINDS, "response.custom_tool_call_input")
#: ``*.delta`` events whose delta is base64, not text.
_OPAQUE_DELTAS = ("response.audio.delta",)
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class ResponsesRewriter:
    def __init__(self, new_channel: NewChannel, whole_text: WholeText, unknown: Treat = Treat.SCAN) -> None:
        self._new = new_channel
        self._whole = whole_text
        self._unknown = unknown
        self._table = table(Endpoint.RESPONSES, "answer")
        self._events = table(Endpoint.RESPONSES, "events")
        self._channels: dict[tuple[Any, ...], Channel] = {}
        self._last_delta: dict[tuple[Any, ...], tuple[str | None, dict[str, Any]]] = {}
        self._logprobs: dict[tuple[Any, ...], list[Any]] = {}
        self._changed: list[str] = []
        self._seq_shift = 0
        self._last_seq: int | None = None

    def on_event(self, ev: SSEEvent) -> list[SSEEvent]:
        obj = ev.json
        if not isinstance(obj, dict):
            return [*self.flush_all(), ev] if ev.is_done else [ev]
        etype = str(obj.get("type") or ev.event or "")
        out: list[SSEEvent] = []
        changed = "obfuscation" in obj and self._obfuscation(obj)
        if etype in _OPAQUE_DELTAS:
            pass  # base64 audio: not text
        elif etype.endswith(".delta") and isinstance(obj.get("delta"), str):
            kind = etype[: -len(".delta")]
            key = _key(kind, obj)
            ch = self._channels.get(key)
            if ch is None:
                ch = self._channels[key] = self._new(
                    kind in _JSON_KINDS, _path(kind, obj), kind in _TOOL_KINDS
                )
            self._last_delta[key] = (ev.event, obj)
            obj["delta"] = ch.feed(obj["delta"])
            if isinstance(obj.get("logprobs"), list) and obj["logprobs"]:
                self._logprobs.setdefault(key, []).extend(obj["logprobs"])
                obj["logprobs"] = []  # held: they go out with the .done event if nothing changed
            changed = True
        elif etype == "response.content_part.done" and isinstance(obj.get("part"), dict):
            out.extend(self._flush_index(obj.get("output_index")))
            self._changed = []
            part = obj["part"]
            self._part(part, obj.get("output_index"), obj.get("content_index"), set())
            if part.get("logprobs") and (self._changed or not holder_ok(part, part["logprobs"], self._finds)):
                part["logprobs"] = []
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
                        else self._whole(value, kind in _JSON_KINDS, _path(kind, obj), kind in _TOOL_KINDS)
                    )
                    changed = True
            if isinstance(obj.get("logprobs"), list):
                held = self._logprobs.pop(key, None)
                lp = held if held is not None else obj["logprobs"]
                text = obj.get("text") if ch is None else ch.text
                text = text if isinstance(text, str) else ""
                clean = (ch is None or not ch.changed) and entries_ok(lp, text, self._finds)
                obj["logprobs"] = lp if clean else []
                changed = True
        elif etype in _TERMINAL:
            out.extend(self.flush_all())
            response = obj.get("response")
            if isinstance(response, dict):
                changed |= self._response(response)
        else:  # annotation added, error, created, in progress, ...: their strings, whole
            response = obj.get("response")
            if isinstance(response, dict):
                rest = {k: v for k, v in obj.items() if k != "response"}
                changed |= self._response(response)
                if self._other(rest):
                    obj.update(rest)  # key order kept: ``response`` is not in ``rest``
                    changed = True
            else:
                changed |= self._other(obj)
        if self._renumber(obj) or changed:
            ev.set_json(obj)
        out.append(ev)
        return out

    def _obfuscation(self, obj: dict[str, Any]) -> bool:
        """A string: a fresh pad of its length (``pad.py``); anything else: its strings,
        whole, as the field table says."""
        return repad(obj) or (
            obj["obfuscation"] is not None and self._other({"obfuscation": obj["obfuscation"]})
        )

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

    def _text(
        self, kind: str, oi: Any, ci: Any, value: str, json: bool, path: str, tool: bool = False
    ) -> str:
        ch = self._channels.get((kind, oi, ci))
        if ch is not None:
            if ch.changed:
                self._changed.append(path)
            return ch.text
        new = self._whole(value, json, path, tool) if value else value
        if new != value:
            self._changed.append(path)
        return new

    def _part(self, part: dict[str, Any], oi: Any, ci: Any, done: set[tuple[int, Any]]) -> None:
        if isinstance(part.get("text"), str):
            kind = (
                "response.reasoning_text" if part.get("type") == "reasoning_text" else "response.output_text"
            )
            part["text"] = self._text(kind, oi, ci, part["text"], False, f"output[{oi}].content[{ci}].text")
            done.add((id(part), "text"))
        if isinstance(part.get("refusal"), str):
            part["refusal"] = self._text(
                "response.refusal", oi, ci, part["refusal"], False, f"output[{oi}].content[{ci}].refusal"
            )
            done.add((id(part), "refusal"))

    def _item(self, item: dict[str, Any], oi: Any) -> None:
        """An output item, whole: its streamed texts are what the client saw; every other
        string of it goes through the field table (annotations, code, search queries...), and
        logprobs beside a changed text are dropped."""
        self._changed = []
        done: set[tuple[int, Any]] = set()
        itype = item.get("type")
        if itype in ("message", "reasoning") and isinstance(item.get("content"), list):
            for ci, part in enumerate(item["content"]):
                if isinstance(part, dict):
                    self._part(part, oi, ci, done)
        if itype in ("function_call", "mcp_call") and isinstance(item.get("arguments"), str):
            kind = (
                "response.function_call_arguments"
                if itype == "function_call"
                else "response.mcp_call_arguments"
            )
            path = f"output[{oi}].arguments"
            item["arguments"] = self._text(kind, oi, 0, item["arguments"], True, path, True)
            done.add((id(item), "arguments"))
        elif itype == "custom_tool_call" and isinstance(item.get("input"), str):
            item["input"] = self._text(
                "response.custom_tool_call_input", oi, 0, item["input"], False, f"output[{oi}].input", True
            )
            done.add((id(item), "input"))
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
                    done.add((id(part), "text"))
        walk = walk_body(self._table, item, self._unknown, shape="output[]", path=f"output[{oi}]")
        for slot in walk.slots:
            if (id(slot.container), slot.key) in done or not slot.text:
                continue
            new = self._whole(slot.text, slot.json, slot.path, slot.tool, slot.url)
            if new != slot.text:
                slot.set(new)
                self._changed.append(slot.path)
        drop_logprobs(walk, self._changed, self._finds)

    def _finds(self, text: str) -> bool:
        """Redaction would change ``text`` (logprobs' alternatives, ``logprob_check``)."""
        return self._whole(text, False, "logprobs", False) != text

    def _response(self, response: dict[str, Any]) -> bool:
        """The whole response an event carries (``response.created`` ... ``response.failed``):
        its output items as streamed (``_item``), every other field (``error.message``,
        ``output_text``, ``instructions``, ``metadata``, ...) as the answer table says. Only
        the output items were read before, so a failed response's error message, or the
        ``output_text`` some servers add to ``response.completed``, reached the client raw."""
        changed = False
        output = response.get("output")
        if isinstance(output, list):
            for i, item in enumerate(output):
                if isinstance(item, dict):
                    self._item(item, i)
            changed = bool(output)
        rest = {k: v for k, v in response.items() if k != "output"}
        if rewrite_body(Endpoint.RESPONSES, rest, self._whole, self._unknown):
            response.update(rest)  # a top-level string was rewritten in the copy
            changed = True
        return changed

    def _other(self, obj: dict[str, Any]) -> bool:
        """An event no branch above streams (annotation added, error, ...): its strings, whole."""
        walk = walk_body(self._events, obj, self._unknown)
        changed = False
        for slot in walk.slots:
            if slot.text:
                new = self._whole(slot.text, slot.json, slot.path, slot.tool, slot.url)
                if new != slot.text:
                    slot.set(new)
                    changed = True
        return changed


def _key(kind: str, obj: dict[str, Any]) -> tuple[Any, ...]:
    sub = index_of(obj, "content_index", index_of(obj, "summary_index"))
    return (kind, index_of(obj, "output_index", None), sub)


def _path(kind: str, obj: dict[str, Any]) -> str:
    oi = obj.get("output_index")
    if kind == "response.function_call_arguments":
        return f"output[{oi}].arguments"
    if kind == "response.reasoning_summary_text":
        return f"output[{oi}].summary[{obj.get('summary_index', 0)}].text"
    field = "refusal" if kind == "response.refusal" else "text"
    return f"output[{oi}].content[{obj.get('content_index', 0)}].{field}"
