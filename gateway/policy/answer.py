"""The ``response`` part of the policy input: what the model answered.

    {"content": str, "tool_calls": [{id, type, name, arguments, choice?}],
     "finish_reason": str | null, "usage": {...} | null}

``arguments`` are parsed JSON with numbers normalised (``numbers.parse_arguments``);
arguments that are not JSON become ``{"_invalid_json": true, "raw": "<first 8 KiB>"}`` so a
policy can still decide (and the call never fails on them). ``build_input`` adds each call's
``kind`` and ``name_key``. Non-stream answers are read whole; streams are accumulated
chunk by chunk (``ChatStreamView``, ``ResponsesStreamView``), which also tell the policy
stage which events may stream ahead (plain text) and which must wait for the decision.
"""

from __future__ import annotations

from typing import Any

from gateway.call import Endpoint
from gateway.policy.numbers import MAX_RAW_ARGUMENTS, parse_arguments
from gateway.sse import SSEEvent

__all__ = ["FINAL", "HOLD", "MAX_RAW_ARGUMENTS", "RELEASE", "answer_view", "parse_arguments", "stream_view"]

# What a stream view says about an event.
RELEASE = "release"  # plain text: may stream ahead of the decision
HOLD = "hold"  # tool calls, finish, usage: wait for the decision
FINAL = "final"  # the stream's last event: decide now


def answer_view(endpoint: Endpoint, body: Any) -> dict[str, Any]:
    """The response view of a complete (non-stream) answer body."""
    if not isinstance(body, dict):
        return {"content": "", "tool_calls": [], "finish_reason": None, "usage": None}
    if endpoint is Endpoint.RESPONSES:
        return responses_view(body)
    if endpoint is Endpoint.EMBEDDINGS:
        return {"content": "", "tool_calls": [], "finish_reason": None, "usage": body.get("usage")}
    return chat_view(body)


def chat_view(body: dict[str, Any]) -> dict[str, Any]:
    contents: list[str] = []
    calls: list[dict[str, Any]] = []
    finish = None
    choices = body.get("choices")
    for position, choice in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        message = _v if isinstance(_v := choice.get("message"), dict) else {}
        text = _text(message.get("content"))
        if text:
            contents.append(text)
        tool_calls = message.get("tool_calls")
        for tc in tool_calls if isinstance(tool_calls, list) else ():
            if isinstance(tc, dict):
                calls.append(_chat_tool_call(tc, index))
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            calls.append(
                {
                    "id": "",
                    "type": "function",
                    "name": _str(legacy.get("name")),
                    "arguments": parse_arguments(legacy.get("arguments")),
                    "choice": index,
                }
            )
        if finish is None:
            finish = choice.get("finish_reason")
    return {
        "content": "\n".join(contents),
        "tool_calls": calls,
        "finish_reason": finish,
        "usage": body.get("usage"),
    }


def _chat_tool_call(tc: dict[str, Any], choice: Any) -> dict[str, Any]:
    kind = _str(tc.get("type")) or "function"
    if kind == "custom" and isinstance(tc.get("custom"), dict):
        custom = tc["custom"]
        return {
            "id": _str(tc.get("id")),
            "type": kind,
            "name": _str(custom.get("name")),
            "arguments": {"input": custom.get("input")},
            "choice": choice,
        }
    fn = _v if isinstance(_v := tc.get("function"), dict) else {}
    return {
        "id": _str(tc.get("id")),
        "type": kind,
        "name": _str(fn.get("name")),
        "arguments": parse_arguments(fn.get("arguments")),
        "choice": choice,
    }


def responses_view(body: dict[str, Any]) -> dict[str, Any]:
    contents: list[str] = []
    calls: list[dict[str, Any]] = []
    output = body.get("output")
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        kind = _str(item.get("type"))
        if kind == "message":
            text = _text(item.get("content"))
            if text:
                contents.append(text)
        elif kind == "reasoning":
            continue
        else:
            calls.append(responses_tool_call(item))
    finish = body.get("status")
    details = body.get("incomplete_details")
    if isinstance(details, dict) and details.get("reason"):
        finish = details["reason"]
    return {
        "content": "\n".join(contents),
        "tool_calls": calls,
        "finish_reason": finish,
        "usage": body.get("usage"),
    }


def responses_tool_call(item: dict[str, Any]) -> dict[str, Any]:
    """A ``function_call``, ``custom_tool_call`` or built-in ``*_call`` output item."""
    kind = _str(item.get("type"))
    call_id = _str(item.get("call_id") or item.get("id"))
    if kind == "function_call":
        return {
            "id": call_id,
            "type": "function",
            "name": _str(item.get("name")),
            "arguments": parse_arguments(item.get("arguments")),
        }
    if kind == "custom_tool_call":
        return {
            "id": call_id,
            "type": "custom",
            "name": _str(item.get("name")),
            "arguments": {"input": item.get("input")},
        }
    if "arguments" in item:
        arguments = parse_arguments(item.get("arguments"))
    else:
        action = item.get("action")
        arguments = action if isinstance(action, dict) else {}
    return {"id": call_id, "type": kind, "name": _str(item.get("name")) or kind, "arguments": arguments}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                text = _v if isinstance(_v := part.get("text"), str) else part.get("refusal")
                if isinstance(text, str):
                    parts.append(text)
        return "".join(parts)
    return ""


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


class ChatStreamView:
    """Accumulates chat-completions chunks into the response view."""

    __slots__ = ("_calls", "_content", "_finish", "_usage")

    def __init__(self) -> None:
        self._content: dict[Any, list[str]] = {}
        self._calls: dict[tuple[Any, Any], dict[str, Any]] = {}
        self._finish: dict[Any, Any] = {}
        self._usage: Any = None

    def feed(self, event: SSEEvent) -> str:
        if event.is_done:
            return FINAL
        chunk = event.json
        if not isinstance(chunk, dict):
            return RELEASE
        hold = False
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
            hold = True
        choices = chunk.get("choices")
        for position, choice in enumerate(choices if isinstance(choices, list) else ()):
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", position)
            delta = _v if isinstance(_v := choice.get("delta"), dict) else {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                self._content.setdefault(index, []).append(text)
            tool_calls = delta.get("tool_calls")
            if isinstance(tool_calls, list) and tool_calls:
                hold = True
                for n, tc in enumerate(tool_calls):
                    if isinstance(tc, dict):
                        self._add_call(index, tc, n)
            if isinstance(delta.get("function_call"), dict):
                hold = True
                self._add_call(index, {"function": delta["function_call"]}, "legacy")
            if choice.get("finish_reason") is not None:
                self._finish.setdefault(index, choice["finish_reason"])
                hold = True
        return HOLD if hold else RELEASE

    def _add_call(self, choice: Any, tc: dict[str, Any], fallback: Any) -> None:
        key = (choice, tc.get("index", fallback))
        acc = self._calls.get(key)
        if acc is None:
            acc = self._calls[key] = {"id": "", "type": "function", "name": "", "args": [], "choice": choice}
        if isinstance(tc.get("id"), str) and not acc["id"]:
            acc["id"] = tc["id"]
        if isinstance(tc.get("type"), str):
            acc["type"] = tc["type"]
        fn = _v if isinstance(_v := tc.get("function"), dict) else {}
        name = fn.get("name")
        if isinstance(name, str) and name:
            # Concatenated, as the openai SDK (and the approval stage's assembly) read a name
            # split over deltas: a guard must judge the name the client will call.
            acc["name"] += name
        args = fn.get("arguments")
        if isinstance(args, str):
            acc["args"].append(args)

    def view(self) -> dict[str, Any]:
        calls = [
            {
                "id": c["id"],
                "type": c["type"],
                "name": c["name"],
                "arguments": parse_arguments("".join(c["args"])),
                "choice": c["choice"],
            }
            for c in self._calls.values()
        ]
        content = "\n".join(
            "".join(parts) for _, parts in sorted(self._content.items(), key=lambda kv: str(kv[0]))
        )
        finish = next(iter(self._finish.values()), None)
        return {"content": content, "tool_calls": calls, "finish_reason": finish, "usage": self._usage}


#: Responses-API stream events that carry only text (or lifecycle) and may stream ahead.
_RESPONSES_TEXT_EVENTS = frozenset(
    {
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        "response.output_text.annotation.added",
        "response.refusal.delta",
        "response.refusal.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
    }
)
_RESPONSES_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})
_TEXT_ITEMS = frozenset({"message", "reasoning"})


class ResponsesStreamView:
    """Accumulates responses-API stream events; the terminal event carries the whole answer."""

    __slots__ = ("_args", "_final", "_items", "_text")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._items: dict[Any, dict[str, Any]] = {}
        self._args: dict[Any, list[str]] = {}
        self._final: dict[str, Any] | None = None

    def feed(self, event: SSEEvent) -> str:
        if event.is_done:
            return FINAL
        data = event.json
        kind = data.get("type") if isinstance(data, dict) else None
        kind = kind if isinstance(kind, str) else event.event
        if not isinstance(data, dict) or kind is None:
            return RELEASE
        if kind in _RESPONSES_FINAL_EVENTS:
            if isinstance(data.get("response"), dict):
                self._final = data["response"]
            return FINAL
        if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
            self._text.append(data["delta"])
        if kind in _RESPONSES_TEXT_EVENTS:
            return RELEASE
        item = data.get("item")
        if kind.startswith("response.output_item.") and isinstance(item, dict):
            if item.get("type") in _TEXT_ITEMS:
                return RELEASE
            self._items[data.get("output_index", item.get("id"))] = item
        elif kind == "response.function_call_arguments.delta" and isinstance(data.get("delta"), str):
            self._args.setdefault(data.get("output_index"), []).append(data["delta"])
        return HOLD

    def view(self) -> dict[str, Any]:
        if self._final is not None:
            return responses_view(self._final)
        calls = []
        for key, item in self._items.items():
            item = dict(item)
            if item.get("type") == "function_call" and not item.get("arguments") and key in self._args:
                item["arguments"] = "".join(self._args[key])
            calls.append(responses_tool_call(item))
        return {"content": "".join(self._text), "tool_calls": calls, "finish_reason": None, "usage": None}


def stream_view(endpoint: Endpoint) -> ChatStreamView | ResponsesStreamView:
    return ResponsesStreamView() if endpoint is Endpoint.RESPONSES else ChatStreamView()
