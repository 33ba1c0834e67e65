"""The policy input document (``input.version`` 1), built once per phase from a ``Call``.

    {"version": 1,
     "principal": {key_id, team, user, roles, tags} | null,
     "agent": {id, run_id, parent_run_id},
     "request": {endpoint, model, messages, tools, params[, input]},
     "pii": call.state["pii"], "cost": call.state["cost"], "run": call.state["run"],
     "response": {content, tool_calls, finish_reason, usage},      (response phase only)
     "time": {now, weekday, hour}}

``request`` is what would leave the gateway: ``call.body`` as it is when the phase runs
(after input redaction, after a routed model). Both chat-completions and responses-API
bodies give ``messages`` in the chat shape, so one rule covers both endpoints: responses
``instructions`` become a system message, ``function_call_output`` items ``role: "tool"``
messages, ``function_call`` items assistant ``tool_calls``; other items pass as they are.
Embeddings carry their ``input`` and no messages. ``tools`` is ``[{type, name}]`` for every
tool shape (function, custom, built-in). ``params`` is every other body field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.call import Call, Endpoint

INPUT_VERSION = 1
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NOT_PARAMS = frozenset({"model", "messages", "input", "tools", "instructions"})


def build_input(call: Call, response: dict[str, Any] | None = None, now: datetime | None = None) -> dict[str, Any]:
    """The input for the request phase, or the response phase when ``response`` is given."""
    doc: dict[str, Any] = {
        "version": INPUT_VERSION,
        "principal": call.principal.as_input() if call.principal is not None else None,
        "agent": {"id": call.agent_id, "run_id": call.run_id, "parent_run_id": call.parent_run_id},
        "request": request_view(call),
        "pii": call.state.get("pii"),
        "cost": call.state.get("cost"),
        "run": call.state.get("run"),
        "time": time_view(now),
    }
    if response is not None:
        doc["response"] = response
    return doc


def time_view(now: datetime | None = None) -> dict[str, Any]:
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "now": f"{now.year:04d}-{now.month:02d}-{now.day:02d}T{now.hour:02d}:{now.minute:02d}:{now.second:02d}Z",
        "weekday": WEEKDAYS[now.weekday()],
        "hour": now.hour,
    }


def request_view(call: Call) -> dict[str, Any]:
    body = call.body if isinstance(call.body, dict) else {}
    model = body.get("model")
    view: dict[str, Any] = {
        "endpoint": call.endpoint.value,
        "model": model if isinstance(model, str) else (call.model or None),
        "messages": [],
        "tools": tools_view(body.get("tools")),
        "params": {k: v for k, v in body.items() if k not in _NOT_PARAMS},
    }
    if call.endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        view["messages"] = messages if isinstance(messages, list) else []
    elif call.endpoint is Endpoint.RESPONSES:
        view["messages"] = responses_messages(body.get("instructions"), body.get("input"))
    else:
        view["input"] = body.get("input")
    return view


def tools_view(tools: Any) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    if not isinstance(tools, list):
        return out
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type") if isinstance(tool.get("type"), str) else "function"
        name = tool.get("name")
        nested = tool.get(kind)
        if not isinstance(name, str) and isinstance(nested, dict):
            name = nested.get("name")  # chat shape: {"type": "function", "function": {"name": ...}}
        out.append({"type": kind, "name": name if isinstance(name, str) else kind})
    return out


def responses_messages(instructions: Any, items: Any) -> list[Any]:
    """A responses-API ``input`` in the chat-messages shape (see the module docstring)."""
    messages: list[Any] = []
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    if not isinstance(items, list):
        return messages
    for item in items:
        if not isinstance(item, dict):
            messages.append(item)
            continue
        kind = item.get("type")
        if kind == "function_call_output" or kind == "custom_tool_call_output":
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": _output_text(item)})
        elif kind == "function_call" or kind == "custom_tool_call":
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            messages.append({
                "role": "assistant",
                "tool_calls": [{
                    "id": item.get("call_id"),
                    "type": "function",
                    "function": {"name": item.get("name"), "arguments": arguments},
                }],
            })
        elif "role" in item and (kind is None or kind == "message"):
            messages.append({"role": item.get("role"), "content": _content_text(item.get("content"))})
        else:
            messages.append(item)
    return messages


def _output_text(item: dict[str, Any]) -> Any:
    output = item.get("output")
    return _content_text(output) if isinstance(output, list) else output


def _content_text(content: Any) -> Any:
    """Responses content parts (``input_text``, ``output_text``) as chat text parts."""
    if not isinstance(content, list):
        return content
    parts: list[Any] = []
    for part in content:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        else:
            parts.append(part)
    return parts
