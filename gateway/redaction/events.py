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
import re
from collections.abc import Callable
from typing import Any

import orjson

from gateway.call import Endpoint
from gateway.redaction.fields import Treat
from gateway.redaction.locations import (
    Slot,
    Walk,
    drop_logprobs,
    every_string,
    response_slots,
    table,
    walk_body,
)
from gateway.redaction.stream import Channel
from gateway.sse import SSEEvent

#: (json, path, tool) -> a new stream channel of the answer.
NewChannel = Callable[[bool, str, bool], Channel]
#: (text, json, path, tool[, url]) -> the text redacted and restored.
WholeText = Callable[..., str]

#: Responses-API ``.done`` events: the field holding the complete text.
_DONE_FIELDS = ("text", "refusal", "arguments", "input", "transcript", "code")
_JSON_KINDS = ("response.function_call_arguments", "response.mcp_call_arguments")
#: Tool calls the model writes: restored only for types with ``tool_arguments``.
_TOOL_KINDS = (*_JSON_KINDS, "response.custom_tool_call_input")
#: ``*.delta`` events whose delta is base64, not text.
_OPAQUE_DELTAS = ("response.audio.delta",)
_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


#: Chat delta keys that are structure, not text (everything else that is a string is text).
_CHAT_DELTA_KEEP = frozenset({"role", "type", "id", "name", "index", "obfuscation"})
#: Chunk and choice fields that are structure or handled by name; any other is scanned whole.
_CHUNK_KNOWN = frozenset(
    {
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "choices",
        "usage",
        "service_tier",
        "obfuscation",
    }
)
_CHOICE_KNOWN = frozenset({"index", "delta", "finish_reason", "logprobs"})
#: The same inside an unknown structured delta field (``reasoning_details[].type``...);
#: ``signature`` and ``data`` are opaque (signed or encrypted reasoning).
_NESTED_KEEP = frozenset({"type", "id", "index", "format", "signature", "data"})


_STR = r'[^"\\\x00-\x1f]*'
#: The chunk nearly every token of a chat stream is: one choice whose delta is only
#: ``content``, with the envelope fields OpenAI and compatible servers send, in their order,
#: compact or with ``json.dumps`` spacing. Every key is fixed and distinct (no duplicate can
#: hide in it) and every string but the content is escape-free, so the object is known from
#: the match alone; anything else (other fields, order, spacing, escapes) takes the parsed path.
_CONTENT_CHUNK = re.compile(
    rf'\{{"id": ?"(?P<id>{_STR})", ?"object": ?"chat\.completion\.chunk", ?'
    rf'"created": ?(?P<created>0|[1-9][0-9]{{0,17}}), ?"model": ?"(?P<model>{_STR})"'
    rf'(?:, ?"service_tier": ?"(?P<tier>{_STR})")?'
    rf'(?P<fp_key>, ?"system_fingerprint": ?(?:"(?P<fp>{_STR})"|null))?'
    r', ?"choices": ?\[\{"index": ?(?P<index>0|[1-9][0-9]{0,8}), ?'
    rf'"delta": ?\{{"content": ?"(?P<content>{_STR}(?:\\["\\/bfnrtu]{_STR})*)"\}}'
    r'(?P<lp>, ?"logprobs": ?null)?, ?"finish_reason": ?null\}\]'
    rf'(?:, ?"obfuscation": ?"(?P<obf>{_STR})")?\}}'
)

#: A JSON string's body (between its quotes), for a chunk whose envelope bytes are those of
#: the last matched chunk (``ChatRewriter._same_shape``).
_STRING_BODY = re.compile(rb'[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*')


class ChatRewriter:
    """Chat chunks: one channel per text of a choice (``content``, ``refusal``, reasoning
    fields, ``audio.transcript``, each tool call's arguments or custom input, and any other
    string a provider puts in the delta: never passed unscanned). A choice's logprobs are
    held until it finishes and go out with its last chunk only if nothing was changed."""

    def __init__(self, new_channel: NewChannel, whole_text: WholeText | None = None) -> None:
        self._new = new_channel
        self._whole = whole_text
        self._channels: dict[tuple[Any, ...], Channel] = {}
        self._envelope: dict[str, Any] | None = None
        #: choice index -> {"content": [...], "refusal": [...]} held logprobs.
        self._logprobs: dict[Any, dict[str, list[Any]]] = {}
        #: nested channel key -> (the field is a list, the element's structure keys).
        self._nested: dict[tuple[Any, ...], tuple[bool, dict[str, Any]]] = {}
        #: The last content-only chunk's bytes around its content, what the parsed path writes
        #: around it, and its channel: the next chunk of the same shape is a splice.
        self._shape: tuple[bytes, bytes, bytes, bytes, Channel] | None = None

    def _channel(self, key: tuple[Any, ...], json: bool, path: str, tool: bool = False) -> Channel:
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = self._new(json, path, tool)
        return ch

    def on_event(self, ev: SSEEvent) -> list[SSEEvent]:
        if ev.is_done:
            return [*self.flush_all(), ev]
        if not ev.parsed:
            fast = self._content_chunk(ev)
            if fast is not None:
                return fast
        obj = ev.json
        if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
            return [ev]
        self._envelope = {
            k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in obj
        }
        changed = False
        if not obj.keys() <= _CHUNK_KNOWN:  # a provider's extra chunk field: scanned whole
            for key in obj.keys() - _CHUNK_KNOWN:
                changed |= self._scan_whole(obj, key, key)
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            idx = choice.get("index", 0)
            if not choice.keys() <= _CHOICE_KNOWN:
                for key in choice.keys() - _CHOICE_KNOWN:
                    changed |= self._scan_whole(choice, key, f"choices[{idx}].{key}")
            delta = choice.get("delta")
            if isinstance(delta, dict):
                changed |= self._delta(idx, delta)
            if choice.get("logprobs") is not None:
                changed |= self._hold_logprobs(idx, choice)
            if choice.get("finish_reason") is not None:
                if not isinstance(delta, dict):
                    delta = choice["delta"] = {}
                changed |= self._merge(delta, self._flush_choice(idx))
                changed |= self._release_logprobs(idx, choice)
        if changed:
            ev.set_json(obj)
        return [ev]

    def _content_chunk(self, ev: SSEEvent) -> list[SSEEvent] | None:
        """A content-only chunk without parsing it (None: not one, take the parsed path).

        A 2 KB answer in 3-character deltas is ~700 such chunks; parsing each (and checking it
        for duplicate keys) cost more than redacting the answer. The result is exactly what
        the parsed path produces: the same object, built from the match, through
        ``set_json``."""
        shape = self._shape
        if shape is not None:
            source = ev.data
            pre, post, out_pre, out_post, channel = shape
            if len(source) >= len(pre) + len(post) and source.startswith(pre) and source.endswith(post):
                body = source[len(pre) : len(source) - len(post)]
                return self._same_shape(ev, body, out_pre, out_post, channel)
        try:
            data = ev.data.decode()
        except UnicodeDecodeError:
            return None
        m = _CONTENT_CHUNK.fullmatch(data)
        if m is None:
            return None
        raw = m["content"]
        if "\\" in raw:
            try:
                content = orjson.loads('"' + raw + '"')
            except orjson.JSONDecodeError:
                return None
        else:
            content = raw
        envelope: dict[str, Any] = {
            "id": m["id"],
            "object": "chat.completion.chunk",
            "created": int(m["created"]),
            "model": m["model"],
        }
        if m["fp_key"] is not None:
            envelope["system_fingerprint"] = m["fp"]
        self._envelope = envelope
        if not content:
            return [ev]  # the parsed path leaves an empty delta as it is
        idx = int(m["index"])
        ch = self._channels.get((idx, "content"))
        if ch is None:
            ch = self._channel((idx, "content"), False, f"choices[{idx}].message.content")
        obj: dict[str, Any] = {k: envelope[k] for k in ("id", "object", "created", "model")}
        if m["tier"] is not None:
            obj["service_tier"] = m["tier"]
        if m["fp_key"] is not None:
            obj["system_fingerprint"] = m["fp"]
        delta = {"content": ""}
        choice: dict[str, Any] = {"index": idx, "delta": delta}
        if m["lp"] is not None:
            choice["logprobs"] = None
        choice["finish_reason"] = None
        obj["choices"] = [choice]
        if m["obf"] is not None:
            obj["obfuscation"] = m["obf"]
        # The bytes around the content, read and written: no other string of this shape can
        # hold a quote, so '"content":""' occurs once in what is written.
        written = orjson.dumps(obj)
        at = written.index(b'"content":""') + len(b'"content":')
        source = ev.data
        start = len(data[: m.start("content")].encode())
        end = len(source) - len(data[m.end("content") :].encode())
        self._shape = (source[:start], source[end:], written[:at], written[at + 2 :], ch)
        delta["content"] = ch.feed(content)
        ev.set_json(obj)
        return [ev]

    @staticmethod
    def _same_shape(
        ev: SSEEvent, body: bytes, out_pre: bytes, out_post: bytes, channel: Channel
    ) -> list[SSEEvent] | None:
        """A chunk whose bytes around the content are those of the last matched chunk: only
        the content is new (a JSON string body, or the parsed path decides), and what is
        written is that chunk's object with this content, as ``set_json`` writes it."""
        if not body:
            return [ev]
        if _STRING_BODY.fullmatch(body) is None:
            return None
        try:
            content = orjson.loads(b'"' + body + b'"') if b"\\" in body else body.decode()
        except (orjson.JSONDecodeError, UnicodeDecodeError):
            return None
        if not content:
            return [ev]
        ev.set_data(out_pre + orjson.dumps(channel.feed(content)) + out_post)
        return [ev]

    def _delta(self, idx: Any, delta: dict[str, Any]) -> bool:
        changed = False
        base = f"choices[{idx}].message"
        for field, value in delta.items():
            if field in _CHAT_DELTA_KEEP or field in ("tool_calls", "function_call"):
                continue
            if type(value) is str:
                if value:
                    ch = self._channels.get((idx, field))
                    if ch is None:
                        ch = self._channel((idx, field), False, f"{base}.{field}")
                    delta[field] = ch.feed(value)
                    changed = True
            elif field == "audio" and isinstance(value, dict):
                t = value.get("transcript")
                if isinstance(t, str) and t:
                    path = f"{base}.audio.transcript"
                    value["transcript"] = self._channel((idx, "audio"), False, path).feed(t)
                    changed = True
            elif value is not None and self._whole is not None:
                changed |= self._unknown(idx, delta, field, f"{base}.{field}")
        calls = delta.get("tool_calls")
        for tc in calls if isinstance(calls, list) else ():
            if not isinstance(tc, dict):
                continue
            t = tc.get("index", 0)
            for kind, sub, json in (("function", "arguments", True), ("custom", "input", False)):
                holder = tc.get(kind)
                if isinstance(holder, dict) and isinstance(holder.get(sub), str) and holder[sub]:
                    path = f"{base}.tool_calls[{t}].{kind}.{sub}"
                    key = (idx, "tool", t, kind)
                    holder[sub] = self._channel(key, json, path, True).feed(holder[sub])
                    changed = True
        fc = delta.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str) and fc["arguments"]:
            path = f"{base}.function_call.arguments"
            fc["arguments"] = self._channel((idx, "function_call"), True, path, True).feed(fc["arguments"])
            changed = True
        return changed

    def _unknown(self, idx: Any, holder: dict[str, Any], field: str, path: str) -> bool:
        """A structured delta field no rule names (``reasoning_details`` and whatever a provider
        adds): each string one level down (in an object, or in the objects of a list, keyed by
        their ``index``) is a stream channel of its own; deeper strings are scanned chunk by
        chunk as whole texts (a value split across chunks there is not joined)."""
        assert self._whole is not None
        value = holder[field]
        elements = (
            [(None, value)]
            if isinstance(value, dict)
            else list(enumerate(value))
            if isinstance(value, list)
            else []
        )
        changed = False
        for pos, element in elements:
            if not isinstance(element, dict):
                continue
            slot = element.get("index", pos) if pos is not None else None
            for key, text in element.items():
                if not isinstance(text, str) or key in _NESTED_KEEP or not text:
                    continue
                where = f"{path}[{slot}].{key}" if slot is not None else f"{path}.{key}"
                ch_key = (idx, "nested", field, slot, key)
                if ch_key not in self._channels:
                    skeleton = {k: v for k, v in element.items() if k in _NESTED_KEEP}
                    self._nested[ch_key] = (isinstance(value, list), skeleton)
                element[key] = self._channel(ch_key, False, where).feed(text)
                changed = True
            for key, inner in element.items():
                if isinstance(inner, (dict, list)):
                    walk = Walk([])
                    every_string(walk, inner, f"{path}.{key}")
                    for s in walk.slots:
                        new = self._whole(s.text, False, s.path, False, s.url)
                        if new != s.text:
                            s.set(new)
                            changed = True
        return changed

    def _scan_whole(self, holder: dict[str, Any], key: str, path: str) -> bool:
        """Every string of a field outside the deltas, as a whole text (not streamed)."""
        if self._whole is None or holder.get(key) is None:
            return False
        value = holder[key]
        walk = Walk([])
        if isinstance(value, str):
            walk.slots.append(Slot(path, holder, key, url=key == "url" or key.endswith("_url")))
        else:
            every_string(walk, value, path)
        changed = False
        for slot in walk.slots:
            new = self._whole(slot.text, False, slot.path, False, slot.url)
            if new != slot.text:
                slot.set(new)
                changed = True
        return changed

    def _hold_logprobs(self, idx: Any, choice: dict[str, Any]) -> bool:
        held = self._logprobs.setdefault(idx, {})
        lp = choice["logprobs"]
        if isinstance(lp, dict):
            for key, entries in lp.items():
                if isinstance(entries, list):
                    held.setdefault(key, []).extend(entries)
        choice["logprobs"] = None
        return True

    def _release_logprobs(self, idx: Any, choice: dict[str, Any]) -> bool:
        held = self._logprobs.pop(idx, None)
        if not held:
            return False
        if any(ch.changed for key, ch in self._channels.items() if key[0] == idx):
            choice["logprobs"] = None  # the tokens would spell what redaction took out
        else:
            choice["logprobs"] = held
        return True

    def _flush_choice(self, idx: Any) -> dict[tuple[Any, ...], str]:
        out = {}
        for key, ch in self._channels.items():
            if key[0] == idx:
                rest = ch.flush()
                if rest:
                    out[key] = rest
        return out

    def _merge(self, delta: dict[str, Any], flushed: dict[tuple[Any, ...], str]) -> bool:
        nested = self._nested
        for key, rest in flushed.items():
            if key[1] == "function_call":
                fc = delta.setdefault("function_call", {})
                fc["arguments"] = (fc.get("arguments") or "") + rest
            elif key[1] == "audio":
                audio = delta.setdefault("audio", {})
                audio["transcript"] = (audio.get("transcript") or "") + rest
            elif key[1] == "nested":
                is_list, skeleton = nested[key]
                entry: dict[str, Any] = {**skeleton, key[4]: rest}
                if is_list:
                    delta.setdefault(key[2], []).append(entry)
                else:
                    delta.setdefault(key[2], {}).update(entry)
            elif key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                found = next((c for c in calls if isinstance(c, dict) and c.get("index", 0) == key[2]), None)
                if found is None:
                    found = {"index": key[2]}
                    calls.append(found)
                holder = found.setdefault(key[3], {})
                field = "input" if key[3] == "custom" else "arguments"
                holder[field] = (holder.get(field) or "") + rest
            else:
                delta[key[1]] = (delta.get(key[1]) or "") + rest
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
        self._logprobs.clear()  # never finished: nothing says the tokens are clean
        return events


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
        changed = False
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
            if self._changed and part.get("logprobs"):
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
                clean = ch is None or not ch.changed
                obj["logprobs"] = (held if held is not None else obj["logprobs"]) if clean else []
                changed = True
        elif etype in _TERMINAL:
            out.extend(self.flush_all())
            response = obj.get("response")
            if isinstance(response, dict) and isinstance(response.get("output"), list):
                for i, item in enumerate(response["output"]):
                    if isinstance(item, dict):
                        self._item(item, i)
                changed = True
        else:  # annotation added, error, created, in progress, ...: their strings, whole
            changed = self._other(obj)
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
        drop_logprobs(walk, self._changed)

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


def rewrite_body(endpoint: Endpoint, body: Any, whole_text: WholeText, unknown: Treat = Treat.SCAN) -> bool:
    """A complete (non-stream) answer: each text through ``whole_text``; True if changed.
    Logprobs beside a text that changed are dropped (their tokens spell the raw text)."""
    walk: Walk = response_slots(endpoint, body, unknown)
    changed: list[str] = []
    for slot in walk.slots:
        text = slot.text
        if not text:
            continue
        new = whole_text(text, slot.json, slot.path, slot.tool, slot.url)
        if new != text:
            slot.set(new)
            changed.append(slot.path)
    drop_logprobs(walk, changed)
    return bool(changed)
