"""Where the text is in request and response bodies of the three endpoints.

Each walker yields ``Slot``s: one string, where it is (``messages[3].content[0].text``, the
path the ``pii`` summary reports) and whether it is JSON source (tool-call arguments, whose
escapes matter when a span is replaced). Parts the gateway cannot read (images, audio, files,
token arrays, encrypted reasoning, item types it does not know) are counted as unscanned and
passed through untouched. Nothing recurses, so no nesting depth can exhaust the stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.call import Endpoint

#: Content-part types whose text is under ``text``.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "summary_text", "reasoning_text"})
#: Response-API items that carry no content (nothing to scan, nothing unscanned).
_EMPTY_ITEMS = frozenset({"item_reference"})


@dataclass(slots=True)
class Slot:
    path: str
    container: Any  # dict or list holding the string
    key: Any
    json: bool = False

    @property
    def text(self) -> str:
        return self.container[self.key]

    def set(self, value: str) -> None:
        self.container[self.key] = value


@dataclass(slots=True)
class Walk:
    slots: list[Slot]
    unscanned: int = 0


def _parts(walk: Walk, parts: list[Any], path: str) -> None:
    for j, part in enumerate(parts):
        p = f"{path}[{j}]"
        if isinstance(part, str):
            walk.slots.append(Slot(p, parts, j))
            continue
        if not isinstance(part, dict):
            walk.unscanned += 1
            continue
        ptype = part.get("type")
        if ptype in _TEXT_PARTS and isinstance(part.get("text"), str):
            walk.slots.append(Slot(f"{p}.text", part, "text"))
        elif ptype == "refusal" and isinstance(part.get("refusal"), str):
            walk.slots.append(Slot(f"{p}.refusal", part, "refusal"))
        else:
            walk.unscanned += 1  # image_url, input_audio, file, input_image, unknown ...


def _content(walk: Walk, holder: dict[str, Any], key: str, path: str) -> None:
    value = holder.get(key)
    if isinstance(value, str):
        walk.slots.append(Slot(f"{path}.{key}", holder, key))
    elif isinstance(value, list):
        _parts(walk, value, f"{path}.{key}")
    elif value is not None:
        walk.unscanned += 1


def _arguments(walk: Walk, holder: Any, path: str) -> None:
    if isinstance(holder, dict) and isinstance(holder.get("arguments"), str):
        walk.slots.append(Slot(f"{path}.arguments", holder, "arguments", json=True))


def _chat_message(walk: Walk, msg: Any, path: str) -> None:
    if not isinstance(msg, dict):
        walk.unscanned += 1
        return
    _content(walk, msg, "content", path)
    if isinstance(msg.get("refusal"), str):
        walk.slots.append(Slot(f"{path}.refusal", msg, "refusal"))
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for k, call in enumerate(calls):
            if isinstance(call, dict):
                _arguments(walk, call.get("function"), f"{path}.tool_calls[{k}].function")
    _arguments(walk, msg.get("function_call"), f"{path}.function_call")


def _response_item(walk: Walk, item: Any, path: str) -> None:
    """One item of a responses-API ``input`` or ``output`` list."""
    if not isinstance(item, dict):
        walk.unscanned += 1
        return
    itype = item.get("type", "message")
    if not isinstance(itype, str):  # an odd item type is left alone, and counted
        walk.unscanned += 1
        return
    if itype == "message":
        _content(walk, item, "content", path)
    elif itype in ("function_call", "mcp_call"):
        _arguments(walk, item, path)
        if itype == "mcp_call" and isinstance(item.get("output"), str):
            walk.slots.append(Slot(f"{path}.output", item, "output"))
    elif itype in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
        _content(walk, item, "output", path)
    elif itype == "custom_tool_call":
        if isinstance(item.get("input"), str):
            walk.slots.append(Slot(f"{path}.input", item, "input"))
    elif itype == "reasoning":
        for key in ("summary", "content"):
            if isinstance(item.get(key), list):
                _parts(walk, item[key], f"{path}.{key}")
        if item.get("encrypted_content"):
            walk.unscanned += 1
    elif itype not in _EMPTY_ITEMS:
        walk.unscanned += 1  # computer_call, web_search_call, image_generation_call, ...


def _response_items(walk: Walk, items: list[Any], name: str) -> None:
    for i, item in enumerate(items):
        if isinstance(item, str):
            walk.slots.append(Slot(f"{name}[{i}]", items, i))
        else:
            _response_item(walk, item, f"{name}[{i}]")


def request_slots(endpoint: Endpoint, body: dict[str, Any]) -> Walk:
    walk = Walk([])
    if endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        if isinstance(messages, list):
            for i, msg in enumerate(messages):
                _chat_message(walk, msg, f"messages[{i}]")
        prediction = body.get("prediction")
        if isinstance(prediction, dict):
            _content(walk, prediction, "content", "prediction")
    elif endpoint is Endpoint.RESPONSES:
        if isinstance(body.get("instructions"), str):
            walk.slots.append(Slot("instructions", body, "instructions"))
        inp = body.get("input")
        if isinstance(inp, str):
            walk.slots.append(Slot("input", body, "input"))
        elif isinstance(inp, list):
            _response_items(walk, inp, "input")
        prompt = body.get("prompt")
        if isinstance(prompt, dict) and isinstance(prompt.get("variables"), dict):
            variables = prompt["variables"]
            for name, value in variables.items():
                if isinstance(value, str):
                    walk.slots.append(Slot(f"prompt.variables.{name}", variables, name))
                elif value is not None:
                    walk.unscanned += 1
    elif endpoint is Endpoint.EMBEDDINGS:
        inp = body.get("input")
        if isinstance(inp, str):
            walk.slots.append(Slot("input", body, "input"))
        elif isinstance(inp, list):
            for i, item in enumerate(inp):
                if isinstance(item, str):
                    walk.slots.append(Slot(f"input[{i}]", inp, i))
                else:
                    walk.unscanned += 1  # token ids
    return walk


def response_slots(endpoint: Endpoint, body: Any) -> Walk:
    walk = Walk([])
    if not isinstance(body, dict):
        return walk
    if endpoint is Endpoint.CHAT:
        choices = body.get("choices")
        if isinstance(choices, list):
            for i, choice in enumerate(choices):
                if isinstance(choice, dict):
                    _chat_message(walk, choice.get("message"), f"choices[{i}].message")
    elif endpoint is Endpoint.RESPONSES:
        output = body.get("output")
        if isinstance(output, list):
            _response_items(walk, output, "output")
        if isinstance(body.get("output_text"), str):
            walk.slots.append(Slot("output_text", body, "output_text"))
    return walk
