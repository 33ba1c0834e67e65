"""Reading a request into one conversation shape, whatever API it came from.

Chat completions and the Responses API describe the same things (turns, tool calls, tool
results, tools on offer, how tools may be chosen, an output schema) in different shapes; the
mock decides on this one shape so its behaviour is identical on both endpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


class MockRequestError(ValueError):
    """The request is malformed in a way a real provider answers with a 400."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(slots=True)
class ToolCallRef:
    id: str
    name: str
    arguments: str


@dataclass(slots=True)
class Turn:
    role: str  # system | developer | user | assistant | tool
    text: str = ""
    tool_calls: list[ToolCallRef] = field(default_factory=list)
    tool_call_id: str | None = None


@dataclass(slots=True, frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class Conversation:
    model: str
    turns: list[Turn]
    tools: list[ToolSpec]
    #: "none" | "auto" | "required" | "function" (then ``forced_tool`` names it).
    tool_choice: str
    forced_tool: str | None = None
    parallel: bool = True
    max_output_tokens: int | None = None
    #: JSON schema of a structured answer (``json_schema`` format), ``{}`` for ``json_object``.
    output_schema: dict[str, Any] | None = None
    tool_tokens: int = 0


def _text_of(content: Any) -> str:
    """Text of a message's content: a string or a list of text parts (other parts skipped)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                elif isinstance(part.get("refusal"), str):
                    parts.append(part["refusal"])
        return "\n".join(parts)
    return str(content)


def _tool_tokens(tools: list[ToolSpec]) -> int:
    if not tools:
        return 0
    return sum((len(t.name) + len(t.description) + len(orjson.dumps(t.parameters))) // 4 + 1 for t in tools)


def _max_tokens(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _tool_choice(choice: Any, tools: list[ToolSpec]) -> tuple[str, str | None, list[ToolSpec]]:
    """Normalise ``tool_choice`` (both APIs' shapes) to (mode, forced tool, tools allowed)."""
    if choice is None:
        return ("auto" if tools else "none"), None, tools
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise MockRequestError(f"Invalid value for 'tool_choice': {choice!r}.", "tool_choice")
        return choice, None, tools
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            fn = choice.get("function")
            name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
            if not isinstance(name, str) or not name:
                raise MockRequestError("tool_choice function needs a name.", "tool_choice")
            return "function", name, tools
        if kind == "allowed_tools":
            spec = _v if isinstance(_v := choice.get("allowed_tools"), dict) else choice
            names = set()
            for t in spec.get("tools") or []:
                if isinstance(t, dict):
                    fn = t.get("function")
                    names.add(fn.get("name") if isinstance(fn, dict) else t.get("name"))
            mode = "required" if spec.get("mode") == "required" else "auto"
            return mode, None, [t for t in tools if t.name in names]
    raise MockRequestError("Invalid value for 'tool_choice'.", "tool_choice")


def _output_schema(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {}
    if fmt.get("type") == "json_schema":
        inner = _v if isinstance(_v := fmt.get("json_schema"), dict) else fmt
        schema = inner.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def from_chat(body: dict[str, Any]) -> Conversation:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise MockRequestError("'messages' must be a non-empty array.", "messages")
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise MockRequestError(f"Invalid message at messages[{i}].", f"messages[{i}]")
        turn = Turn(m["role"], _text_of(m.get("content")))
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") if isinstance(tc, dict) else None
            if isinstance(fn, dict):
                turn.tool_calls.append(
                    ToolCallRef(
                        str(tc.get("id", "")), str(fn.get("name", "")), str(fn.get("arguments") or "")
                    )
                )
        if turn.role == "tool":
            turn.tool_call_id = str(m.get("tool_call_id", ""))
        turns.append(turn)
    tools = []
    for t in body.get("tools") or ():
        fn = t.get("function") if isinstance(t, dict) and t.get("type", "function") == "function" else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            params = fn.get("parameters")
            tools.append(
                ToolSpec(
                    fn["name"], str(fn.get("description") or ""), params if isinstance(params, dict) else {}
                )
            )
    mode, forced, allowed = _tool_choice(body.get("tool_choice"), tools)
    return Conversation(
        model=str(body.get("model", "")),
        turns=turns,
        tools=allowed,
        tool_choice=mode,
        forced_tool=forced,
        parallel=body.get("parallel_tool_calls") is not False,
        max_output_tokens=_max_tokens(body, "max_completion_tokens", "max_tokens"),
        output_schema=_output_schema(body.get("response_format")),
        tool_tokens=_tool_tokens(tools),
    )


def _responses_items(items: list[Any]) -> list[Turn]:
    turns: list[Turn] = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            turns.append(Turn("user", item))
            continue
        if not isinstance(item, dict):
            raise MockRequestError(f"Invalid input item at input[{i}].", f"input[{i}]")
        kind = item.get("type") or "message"
        if kind == "message":
            turns.append(Turn(str(item.get("role", "user")), _text_of(item.get("content"))))
        elif kind == "function_call":
            ref = ToolCallRef(
                str(item.get("call_id", "")), str(item.get("name", "")), str(item.get("arguments") or "")
            )
            # Consecutive calls are one assistant turn, as in chat completions.
            if turns and turns[-1].role == "assistant" and turns[-1].tool_calls and not turns[-1].text:
                turns[-1].tool_calls.append(ref)
            else:
                turns.append(Turn("assistant", "", [ref]))
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else _text_of(output)
            turns.append(Turn("tool", text, tool_call_id=str(item.get("call_id", ""))))
        # reasoning, item_reference and built-in tool items carry nothing the mock reads.
    return turns


def from_responses(body: dict[str, Any]) -> Conversation:
    raw = body.get("input")
    turns: list[Turn] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        turns.append(Turn("developer", instructions))
    if isinstance(raw, str):
        turns.append(Turn("user", raw))
    elif isinstance(raw, list):
        turns.extend(_responses_items(raw))
    elif raw is not None:
        raise MockRequestError("'input' must be a string or an array of items.", "input")
    if not turns:
        raise MockRequestError("Missing required parameter: 'input'.", "input")
    tools = []
    for t in body.get("tools") or ():
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str):
            params = t.get("parameters")
            tools.append(
                ToolSpec(
                    t["name"], str(t.get("description") or ""), params if isinstance(params, dict) else {}
                )
            )
    mode, forced, allowed = _tool_choice(body.get("tool_choice"), tools)
    text = body.get("text")
    return Conversation(
        model=str(body.get("model", "")),
        turns=turns,
        tools=allowed,
        tool_choice=mode,
        forced_tool=forced,
        parallel=body.get("parallel_tool_calls") is not False,
        max_output_tokens=_max_tokens(body, "max_output_tokens"),
        output_schema=_output_schema(text.get("format") if isinstance(text, dict) else None),
        tool_tokens=_tool_tokens(tools),
    )
