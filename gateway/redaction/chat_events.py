"""Rewrite the chunks of a streamed chat completion (see events.py for the common rules).

One channel per text of a choice: ``content``, ``refusal``, reasoning fields,
``audio.transcript``, each tool call's arguments or custom input, and every string of a delta
field no rule names, at any depth (``_unknown``): a value split across chunks is joined before
it is analysed, wherever it is. A choice's logprobs are held until it finishes and go out with
its last chunk only if nothing was changed. Content-only chunks take ``chat_splice``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import UpstreamError
from gateway.redaction.chat_splice import Splice, first_chunk
from gateway.redaction.events import NewChannel, WholeText, index_of
from gateway.redaction.locations import Slot, Walk, every_string
from gateway.redaction.logprob_check import Finds, chat_ok, hold_chat
from gateway.redaction.pad import repad
from gateway.redaction.stream import Channel
from gateway.sse import RawRead, SSEEvent, render

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
#: The same inside an unknown structured delta field (``reasoning_details[].type``...):
#: passed as is one level down (``signature`` and ``data``: signed or encrypted reasoning);
#: deeper, scanned chunk by chunk as whole texts (structure, not streamed prose).
_NESTED_KEEP = frozenset({"type", "id", "index", "format", "signature", "data"})
#: Levels of objects and lists below an unknown delta field that are streamed; a string
#: deeper than this is refused (``UpstreamError``), never passed unjoined.
MAX_NESTED_DEPTH = 8

#: (container kind, key or slot, structure keys of that object) from the field to a string.
Levels = tuple[tuple[str, Any, dict[str, Any]], ...]


class ChatRewriter:
    def __init__(self, new_channel: NewChannel, whole_text: WholeText | None = None) -> None:
        self._new = new_channel
        self._whole = whole_text
        self._channels: dict[tuple[Any, ...], Channel] = {}
        self._envelope: dict[str, Any] | None = None
        #: choice index -> {"content": [...], "refusal": [...]} held logprobs.
        self._logprobs: dict[Any, dict[str, list[Any]]] = {}
        #: nested channel key -> where its string is below the delta (to merge a flush).
        self._nested: dict[tuple[Any, ...], Levels] = {}
        #: The last content-only chunk's shape: the next chunk of the same shape is a splice.
        self.splice: Splice | None = None

    def _channel(self, key: tuple[Any, ...], json: bool, path: str, tool: bool = False) -> Channel:
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = self._new(json, path, tool)
        return ch

    def on_event(self, ev: SSEEvent) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        self.on_batch((ev,), out)
        return out

    def on_batch(self, events: Sequence[SSEEvent], out: list[SSEEvent]) -> bool:
        """The events of one upstream read, in order, what they release appended to ``out``
        as it goes; True if ``[DONE]`` was among them. A run of content-only chunks of the
        last matched shape is one splice (``Splice.take``); any other event is parsed."""
        lines = events.parts if type(events) is RawRead else None
        if lines is not None:
            return self._on_lines(lines, out)
        done = False
        i, n = 0, len(events)
        for ev in events:
            if ev.event is not None:  # a chat stream names no event: a name is text, scanned
                self._scan_name(ev)
        while i < n:
            splice = self.splice
            if splice is not None:
                j = splice.take(events, i, out)
                if j > i:
                    i = j
                    continue
            ev = events[i]
            out.extend(self.on_other_event(ev))
            done = done or ev.is_done
            i += 1
        return done

    def _scan_name(self, ev: SSEEvent) -> None:
        name = self._whole(ev.event, False, "event", False, False) if self._whole and ev.event else ev.event
        if name != ev.event:
            ev.event, ev.raw = name, render(name, ev.data)

    def _on_lines(self, lines: list[bytes], out: list[SSEEvent]) -> bool:
        """``on_batch`` for a raw read's ``data:`` lines (``sse.RawRead``): a run of content-only
        chunks is spliced from the lines (``Splice.take_lines``); an event is made, as the
        splitter makes it, only for the others."""
        done = False
        i, n = 0, len(lines)
        while i < n:
            splice = self.splice
            if splice is not None:
                j = splice.take_lines(lines, i, out)
                if j > i:
                    i = j
                    continue
            line = lines[i]
            ev = SSEEvent(line + b"\n\n", None, line[6:])
            out.extend(self.on_other_event(ev))
            done = done or ev.is_done
            i += 1
        return done

    def on_other_event(self, ev: SSEEvent) -> list[SSEEvent]:
        """``on_event`` for an event the splice did not take."""
        if ev.is_done:
            return [*self.flush_all(), ev]
        if not ev.parsed:
            fast = self._content_chunk(ev)
            if fast is not None:
                return fast
        obj = ev.json
        if not isinstance(obj, dict):  # not a chunk (a bare string, a list): its strings, whole
            holder = {"data": obj}
            if self._scan_whole(holder, "data", "data"):
                ev.set_json(holder["data"])
            return [ev]
        changed = "obfuscation" in obj and self._obfuscation(obj)
        if not obj.keys() <= _CHUNK_KNOWN:  # a provider's extra chunk field: scanned whole
            for key in obj.keys() - _CHUNK_KNOWN:
                changed |= self._scan_whole(obj, key, key)
        if not isinstance(obj.get("choices"), list):  # none to stream: any text in it, whole
            changed |= self._scan_whole(obj, "choices", "choices")
            if changed:
                ev.set_json(obj)
            return [ev]
        self._envelope = {
            k: obj[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in obj
        }
        for choice in obj["choices"]:
            if not isinstance(choice, dict):
                continue
            idx = index_of(choice, "index")
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

    def _obfuscation(self, holder: dict[str, Any], path: str = "obfuscation") -> bool:
        """A string: a fresh pad of its length (``pad.py``); anything else: scanned whole."""
        return repad(holder) or self._scan_whole(holder, "obfuscation", path)

    def _content_chunk(self, ev: SSEEvent) -> list[SSEEvent] | None:
        """The first content-only chunk of a shape (``chat_splice.first_chunk``); None: not
        one, take the parsed path."""
        found = first_chunk(ev, self._content_channel)
        if found is None:
            return None
        self._envelope, splice = found
        if splice is not None:
            self.splice = splice
        return [ev]

    def _content_channel(self, idx: int) -> Channel:
        return self._channel((idx, "content"), False, f"choices[{idx}].message.content")

    def _delta(self, idx: Any, delta: dict[str, Any]) -> bool:
        changed = False
        base = f"choices[{idx}].message"
        for field, value in delta.items():
            if field in _CHAT_DELTA_KEEP or field in ("tool_calls", "function_call"):
                if field == "obfuscation":
                    changed |= self._obfuscation(delta, f"{base}.obfuscation")
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
            t = index_of(tc, "index")
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
        adds): every string below it is a stream channel of its own, keyed by where it is
        (object keys; list elements by their ``index``, else by position), so a value split
        across chunks is analysed joined at any depth, as clients join it. Structure keys
        (``_NESTED_KEEP``) pass one level down and are scanned whole deeper. More than
        ``MAX_NESTED_DEPTH`` levels is refused. Iterative: no depth can exhaust the stack."""
        changed = False
        stack: list[tuple[Any, Any, tuple[Any, ...], str, Levels]] = [(holder, field, (field,), path, ())]
        while stack:
            container, key, where, here, levels = stack.pop()
            value = container[key]
            if isinstance(value, str):
                if not value:
                    continue
                structure = isinstance(key, str) and key in _NESTED_KEEP
                if structure and len(levels) == 1 and levels[0][0] == "dict":
                    continue  # a structure key of the field's own object
                if structure and len(levels) == 2 and levels[0][0] == "list":
                    continue  # a structure key of one of the field's list elements
                if structure:
                    new = self._whole(value, False, here, False, False)  # type: ignore[misc]
                    if new != value:
                        container[key] = new
                        changed = True
                    continue
                ch_key = (idx, "nested", where)
                if ch_key not in self._channels:
                    self._nested[ch_key] = levels
                container[key] = self._channel(ch_key, False, here).feed(value)
                changed = True
                continue
            if not isinstance(value, (dict, list)):
                continue
            if len(levels) >= MAX_NESTED_DEPTH:
                raise UpstreamError(
                    f"The model provider streamed a field nested deeper than {MAX_NESTED_DEPTH} "
                    f"levels ({path}), which redaction does not follow."
                )
            if isinstance(value, dict):
                skeleton = {
                    k: v for k, v in value.items() if k in _NESTED_KEEP and not isinstance(v, (dict, list))
                }
                for k in reversed(list(value)):
                    stack.append((value, k, (*where, k), f"{here}.{k}", (*levels, ("dict", k, skeleton))))
            else:
                for pos in range(len(value) - 1, -1, -1):
                    element = value[pos]
                    slot = element.get("index", pos) if isinstance(element, dict) else pos
                    if not isinstance(slot, (int, str)):
                        slot = pos
                    step = (*levels, ("list", slot, {}))
                    stack.append((value, pos, (*where, ("[]", slot)), f"{here}[{slot}]", step))
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
        hold_chat(self._logprobs.setdefault(idx, {}), choice["logprobs"])
        choice["logprobs"] = None
        return True

    def _release_logprobs(self, idx: Any, choice: dict[str, Any]) -> bool:
        held = self._logprobs.pop(idx, None)
        if not held:
            return False
        chans = [(key[1], ch) for key, ch in self._channels.items() if key[0] == idx]
        texts = {name: ch.text for name, ch in chans if name in ("content", "refusal")}
        whole = self._whole  # none (unit tests only): alternatives cannot be judged, dropped
        finds: Finds = lambda t: whole is None or whole(t, False, f"choices[{idx}].logprobs", False) != t  # noqa: E731
        if any(ch.changed for _, ch in chans) or not chat_ok(held, texts, finds):
            choice["logprobs"] = None  # they would spell what redaction took out, or other text
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
        for key, rest in flushed.items():
            if key[1] == "function_call":
                fc = delta.setdefault("function_call", {})
                fc["arguments"] = (fc.get("arguments") or "") + rest
            elif key[1] == "audio":
                audio = delta.setdefault("audio", {})
                audio["transcript"] = (audio.get("transcript") or "") + rest
            elif key[1] == "nested":
                _merge_nested(delta, key[2][0], self._nested[key], rest)
            elif key[1] == "tool":
                calls = delta.setdefault("tool_calls", [])
                entry = next((c for c in calls if isinstance(c, dict) and c.get("index", 0) == key[2]), None)
                if entry is None:
                    entry = {"index": key[2]}
                    calls.append(entry)
                holder = entry.setdefault(key[3], {})
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


def _merge_nested(delta: dict[str, Any], field: str, levels: Levels, rest: str) -> None:
    """Put a nested channel's flushed text where its string was, as a client joins deltas: an
    object on the way is joined key by key (its structure keys, ``index``, ``type``..., filled
    in), a list gets a new element carrying them, a string is appended to. A chunk whose field
    has another shape than the channel saw gets the text in that shape instead of its own
    value there (the upstream changed the field's type mid-stream)."""
    target: dict[str, Any] = delta
    name: Any = field
    for i, (kind, key, skeleton) in enumerate(levels):
        current = target.get(name)
        if kind == "list" and isinstance(current, list):
            current.append(_build(levels[i + 1 :], rest))
            return
        if kind != "dict" or not isinstance(current, dict):
            target[name] = _build(levels[i:], rest)
            return
        for k, v in skeleton.items():
            current.setdefault(k, v)
        target, name = current, key
    current = target.get(name)
    target[name] = current + rest if isinstance(current, str) else rest


def _build(levels: Levels, rest: str) -> Any:
    value: Any = rest
    for kind, key, skeleton in reversed(levels):
        value = {**skeleton, key: value} if kind == "dict" else [value]
    return value
