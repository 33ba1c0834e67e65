"""Streams are judged on what was streamed: the upstream's events must add up.

The guards after this stage (redaction, policy, approvals) read a stream as it passes: the
deltas and items, and for the Responses API also the terminal event's ``response.output``,
which is what an SDK's ``get_final_response()`` returns. An upstream (or anything between it
and us) that makes the two disagree could have a guard judge one answer while the client
runs another: ``response.completed`` with ``output: []`` after a streamed ``shell`` call, a
``function_call_arguments.done`` unlike its deltas, events after the end. This stage keeps,
per output item, what was actually streamed, and refuses the stream with an
``UpstreamError`` (the client gets an SSE ``error`` event and nothing after it; the call is
audited as an upstream error) when:

- any event follows the terminal event (chat: ``[DONE]``; responses: ``response.completed``,
  ``.incomplete``, ``.failed`` or ``error``, after which only a bare ``[DONE]`` is tolerated);
- an event names an output item that was never added (an ``output_item.done`` may bring an
  item whole), or a delta of one kind targets an item of another (arguments for a message, text for a function call), or its ``event:``
  line contradicts the type in its data;
- a ``*.done`` event or ``response.output_item.done`` contradicts the deltas streamed for it;
- the terminal event's ``output`` is not the items streamed: same count, order, types, ids,
  names, arguments / input / action, message text.

It runs first in the chunk chain, right after ``forward``, on the upstream's own events, and
only when a guard reads streams (a pure pass-through does not pay for it). Chat streams cost
one comparison per event: their deltas are what every client and guard accumulates, and only
their end needs watching. Responses events are parsed once here; later stages reuse the parse.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from gateway.call import Call, Endpoint
from gateway.callstate import Slot
from gateway.errors import UpstreamError
from gateway.pipeline import Stage
from gateway.sse import RawRead, SSEEvent

#: A chat stream's ``[DONE]`` has been seen.
_DONE: Slot[bool] = Slot("stream_trust.done")
#: The data of a chat stream's ``[DONE]`` event (``SSEEvent.is_done``).
_DONE_DATA = SSEEvent.done().data
_DONE_LINE = b"data: " + _DONE_DATA
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: Delta events: (the item type they belong to, the item field the deltas build, the field of
#: their ``.done`` event that must equal the deltas joined).
_DELTAS: dict[str, tuple[str, str]] = {
    "response.function_call_arguments": ("function_call", "arguments"),
    "response.custom_tool_call_input": ("custom_tool_call", "input"),
    "response.mcp_call_arguments": ("mcp_call", "arguments"),
    "response.code_interpreter_call_code": ("code_interpreter_call", "code"),
}
_TEXT_DELTAS = {"response.output_text": "text", "response.refusal": "refusal"}
#: The fields of a non-message item that decide what it does (compared with the terminal event).
_ITEM_KEYS = (
    "type",
    "id",
    "call_id",
    "name",
    "arguments",
    "input",
    "action",
    "code",
    "server_label",
    "namespace",
)


class StreamMismatch(UpstreamError):
    """The upstream's stream contradicts itself; the message says where (never the content)."""


#: A name an upstream wrote that a refusal may quote: letters, ``_`` and ``.`` (every event
#: and item type OpenAI sends). Anything else is the upstream's text, which no refusal echoes
#: (an ``event:`` name or item type could carry an address or a key past redaction).
_QUOTABLE = re.compile(r"[A-Za-z_.]{1,64}")


def _shown(name: object) -> str:
    """``name`` quoted in a refusal if it is a plain name, else a mention that it is not."""
    return repr(name) if isinstance(name, str) and _QUOTABLE.fullmatch(name) else "[a name not shown]"


def _refuse(what: str) -> StreamMismatch:
    return StreamMismatch(
        f"The upstream stream is inconsistent ({what}); the answer was refused.",
        code="upstream_stream_inconsistent",
    )


class _Item:
    __slots__ = ("deltas", "done", "item", "kinds", "parts")

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = _copy(item)
        self.done: dict[str, Any] | None = None
        self.deltas: list[str] = []
        self.parts: dict[Any, list[str]] = {}  # content_index → text deltas
        self.kinds: dict[Any, str] = {}  # content_index → part type (content_part.added)

    def streamed(self) -> dict[str, Any]:
        """The item as the events streamed it: the ``done`` item, else the added one plus its deltas."""
        if self.done is not None:
            return self.done
        item = dict(self.item)
        for _, (kind, field) in _DELTAS.items():
            if item.get("type") == kind and self.deltas:
                item[field] = "".join(self.deltas)
        if item.get("type") == "message" and self.parts:
            content = [dict(p) for p in item.get("content") or [] if isinstance(p, dict)]
            for ci, texts in sorted(self.parts.items(), key=_by_index):
                if isinstance(ci, int) and ci == len(content):
                    content.append({"type": self.kinds.get(ci, "output_text")})
                if isinstance(ci, int) and 0 <= ci < len(content):
                    key = "refusal" if content[ci].get("type") == "refusal" else "text"
                    content[ci][key] = "".join(texts)
            item["content"] = content
        return item


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    """A snapshot: later stages rewrite the parsed event in place (redaction restores values)."""
    return orjson.loads(orjson.dumps(item))


def _by_index(kv: tuple[Any, Any]) -> tuple[int, int]:
    return (0, kv[0]) if isinstance(kv[0], int) else (1, 0)


def _part_text(part: dict[str, Any]) -> Any:
    return part.get("refusal") if part.get("type") == "refusal" else part.get("text")


def _check_done(entry: _Item, item: dict[str, Any]) -> None:
    """``output_item.done`` may complete an item (an ``action`` that had no deltas), never
    contradict what was streamed for it: its added fields, its deltas, its text."""
    added = entry.item
    for key in _ITEM_KEYS:
        value = added.get(key)
        if value not in (None, "", [], {}) and item.get(key) != value:
            raise _refuse(f"an output item whose {key} changed between added and done")
    for kind, field in _DELTAS.values():
        if added.get("type") == kind and entry.deltas and item.get(field) != "".join(entry.deltas):
            raise _refuse(f"an output item whose {field} differs from its deltas")
    if added.get("type") == "message" and entry.parts:
        content = _v if isinstance(_v := item.get("content"), list) else []
        for ci, texts in entry.parts.items():
            part = content[ci] if isinstance(ci, int) and 0 <= ci < len(content) else None
            if not isinstance(part, dict) or _part_text(part) != "".join(texts):
                raise _refuse("a message item whose text differs from its deltas")


def _essence(item: Any) -> Any:
    if not isinstance(item, dict):
        return ("?", orjson.dumps(item, option=orjson.OPT_SORT_KEYS))
    kind = item.get("type")
    if kind == "message":
        texts = [(p.get("type"), _part_text(p)) for p in item.get("content") or [] if isinstance(p, dict)]
        return ("message", item.get("id"), item.get("role"), texts)
    if kind == "reasoning":
        return ("reasoning", item.get("id"))
    return tuple(orjson.dumps(item.get(k), option=orjson.OPT_SORT_KEYS) for k in _ITEM_KEYS)


class _ResponsesTrust:
    __slots__ = ("ended", "items")

    def __init__(self) -> None:
        self.items: dict[int, _Item] = {}
        self.ended = False

    def feed(self, event: SSEEvent) -> None:
        if self.ended:
            if event.is_done:
                return  # carries nothing; some servers end every stream with it
            raise _refuse("an event after the terminal event")
        if event.is_done:
            self.ended = True
            return
        data = event.json
        kind = data.get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str):
            if event.data.strip():
                raise _refuse("an event without a type")
            return
        if event.event is not None and event.event != kind:
            raise _refuse(f"an event named {_shown(event.event)} carrying {_shown(kind)}")
        if kind in _TERMINAL or kind == "error":
            self.ended = True
            if kind != "error":
                self._terminal(data)
            return
        if any(
            isinstance(data.get(k), (list, dict)) for k in ("output_index", "content_index", "summary_index")
        ):
            raise _refuse("an index that is not a number")  # it keys the items (was a TypeError: 500)
        self._event(kind, data)

    def _item(self, data: dict[str, Any], kind: str) -> _Item:
        entry = self.items.get(data.get("output_index"))  # type: ignore[arg-type]  # any JSON value: a missing or odd index finds no item
        if entry is None:
            raise _refuse(f"{_shown(kind)} for an output item that was never added")
        return entry

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "response.output_item.added":
            index, item = data.get("output_index"), data.get("item")
            if not isinstance(index, int) or isinstance(index, bool) or not isinstance(item, dict):
                raise _refuse("an output item without an index or a body")
            if index in self.items:
                raise _refuse("an output item added twice")
            self.items[index] = _Item(item)
            return
        if kind == "response.output_item.done":
            index, item = data.get("output_index"), data.get("item")
            if index not in self.items and isinstance(index, int) and isinstance(item, dict):
                self.items[index] = _Item(item)  # an item streamed whole, without ``added`` first
            entry = self._item(data, kind)
            if not isinstance(item, dict) or item.get("type") != entry.item.get("type"):
                raise _refuse("an output item whose type changed")
            _check_done(entry, item)
            entry.done = _copy(item)
            return
        if kind in ("response.content_part.added", "response.content_part.done"):
            entry = self._item(data, kind)
            if entry.item.get("type") != "message":
                raise _refuse(f"{kind} for a {_shown(entry.item.get('type'))} item")
            part = data.get("part")
            if isinstance(part, dict) and isinstance(part.get("type"), str):
                entry.kinds.setdefault(data.get("content_index"), part["type"])
            texts = entry.parts.get(data.get("content_index"))
            if (
                kind.endswith(".done")
                and texts
                and isinstance(part, dict)
                and _part_text(part) != "".join(texts)
            ):
                raise _refuse(f"{kind} unlike its deltas")
            return
        base, _, phase = kind.rpartition(".")
        if base in _DELTAS and phase in ("delta", "done"):
            entry = self._item(data, kind)
            item_kind, field = _DELTAS[base]
            if entry.item.get("type") != item_kind:
                raise _refuse(f"{kind} for a {_shown(entry.item.get('type'))} item")
            if phase == "delta":
                delta = data.get("delta")
                if not isinstance(delta, str):
                    raise _refuse(f"{kind} without a text delta")
                entry.deltas.append(delta)
            else:
                value = data.get(field)
                if entry.deltas and value != "".join(entry.deltas):
                    raise _refuse(f"{kind} unlike its deltas")
                if not entry.deltas and isinstance(value, str):
                    entry.deltas.append(value)
            return
        if base in _TEXT_DELTAS and phase in ("delta", "done"):
            entry = self._item(data, kind)
            if entry.item.get("type") != "message":
                raise _refuse(f"{kind} for a {_shown(entry.item.get('type'))} item")
            texts = entry.parts.setdefault(data.get("content_index"), [])
            if phase == "delta":
                delta = data.get("delta")
                if not isinstance(delta, str):
                    raise _refuse(f"{kind} without a text delta")
                texts.append(delta)
            else:
                value = data.get(_TEXT_DELTAS[base])
                if texts and value != "".join(texts):
                    raise _refuse(f"{kind} unlike its deltas")
                if not texts and isinstance(value, str):
                    texts.append(value)
            return
        if "output_index" in data and kind.startswith("response."):
            self._item(data, kind)

    def _terminal(self, data: dict[str, Any]) -> None:
        response = data.get("response")
        output = response.get("output") if isinstance(response, dict) else None
        if not isinstance(output, list):
            if self.items:
                raise _refuse("a terminal event without the output that was streamed")
            return
        if len(output) != len(self.items) or sorted(self.items) != list(range(len(output))):
            raise _refuse(
                f"a terminal event with {len(output)} output items after {len(self.items)} were streamed"
            )
        for index, item in enumerate(output):
            if _essence(item) != _essence(self.items[index].streamed()):
                raise _refuse(f"a terminal event whose output item {index} differs from the one streamed")


#: A Responses stream's record of what was streamed.
_RESPONSES: Slot[_ResponsesTrust] = Slot("stream_trust.responses")


class StreamTrustStage(Stage):
    """Refuses a stream whose events contradict each other (see the module docstring)."""

    name: ClassVar[str] = "stream_trust"

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        if call.replayed:
            return (event,)  # the gateway's own answer (a stored or rewritten one), not the upstream's
        if call.endpoint is Endpoint.RESPONSES:
            state = _RESPONSES.get(call)
            if state is None:
                state = _RESPONSES.put(call, _ResponsesTrust())
            state.feed(event)
            return (event,)
        if _DONE.get(call):  # chat: [DONE] was the end
            raise _refuse("an event after [DONE]")
        if event.is_done:
            _DONE.put(call, True)
        return (event,)

    def passes_read(self, call: Call, read: RawRead) -> bool:
        """A chat read without ``[DONE]``, before it: nothing to check or note."""
        if call.replayed or call.endpoint is not Endpoint.CHAT or _DONE.get(call):
            return False
        return _DONE_LINE not in read.parts  # type: ignore[operator]  # passes_read gets parts

    async def on_batch(self, call: Call, events: Sequence[SSEEvent], out: list[SSEEvent]) -> None:
        """A chat read's events at once: ``on_chunk``'s check, as one search for ``[DONE]``."""
        if call.replayed or call.endpoint is Endpoint.RESPONSES:
            await super().on_batch(call, events, out)
            return
        if _DONE.get(call):
            raise _refuse("an event after [DONE]")
        datas = [event.data for event in events]
        if _DONE_DATA not in datas:
            out.extend(events)
            return
        end = datas.index(_DONE_DATA) + 1
        _DONE.put(call, True)
        out.extend(events[:end])
        if end < len(events):
            raise _refuse("an event after [DONE]")
