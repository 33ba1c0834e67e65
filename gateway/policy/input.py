"""The policy input document (``input.version`` 1), built once per phase from a ``Call``.

    {"version": 1,
     "principal": {key_id, team, user, roles, tags} | null,
     "agent": {id, run_id, parent_run_id},
     "request": {endpoint, model, messages, tools, params[, input]},
     "pii": call.pii, "cost": call.budget, "run": call.run,         (written by redaction, limits)
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

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from gateway.call import Call, Endpoint
from gateway.callstate import Slot
from gateway.policy.textkey import name_key, text_key

INPUT_VERSION = 1
#: The request's keyed tools and tool results, computed once per call (policy only).
_KEYS: Slot[tuple[dict[str, Any], list[dict[str, str]], list[dict[str, Any]]]] = Slot("policy.request_keys")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_NOT_PARAMS = frozenset({"model", "messages", "input", "tools", "instructions", "functions"})
#: Built-in tool types under another name than their kind.
_KIND_ALIASES = {
    "computer": "computer_use",
    "computer_use_preview": "computer_use",
    "mcp_approval_request": "mcp",
    "mcp_list_tools": "mcp",
    "mcp_approval_response": "mcp",
}
_DATED = re.compile(r"(?:_preview)?(?:_\d{4}_\d{2}_\d{2})?$")


def build_input(
    call: Call, response: dict[str, Any] | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The input for the request phase, or the response phase when ``response`` is given."""
    doc: dict[str, Any] = {
        "version": INPUT_VERSION,
        "principal": call.principal.as_input() if call.principal is not None else None,
        "agent": {"id": call.agent_id, "run_id": call.run_id, "parent_run_id": call.parent_run_id},
        "request": request_view(call),
        "pii": call.pii,
        "cost": call.budget.as_input() if call.budget is not None else None,
        "run": call.run.as_input() if call.run is not None else None,
        "time": time_view(now),
    }
    if response is not None:
        doc["response"] = {
            **response,
            "tool_calls": [_keyed_call(c) for c in response.get("tool_calls") or ()],
        }
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
        "tools": [],
        "tool_results": [],
        "params": {k: v for k, v in body.items() if k not in _NOT_PARAMS},
    }
    if call.endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        view["messages"] = messages if isinstance(messages, list) else []
    elif call.endpoint is Endpoint.RESPONSES:
        view["messages"] = responses_messages(body.get("instructions"), body.get("input"))
    else:
        view["input"] = body.get("input")
    if call.endpoint is not Endpoint.EMBEDDINGS:
        view["tools"], view["tool_results"] = _keyed_request(call, body)
    return view


def _keyed_request(call: Call, body: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The request's keyed tools and tool results, computed once per call: the response phase
    reuses the request phase's (the body object is the same; ``forget_keys`` drops them when a
    stage rewrites the body's texts in place, as a policy-driven re-redaction does)."""
    cached = _KEYS.get(call)
    if cached is not None and cached[0] is body:
        return cached[1], cached[2]
    tools = tools_view(body)
    if call.endpoint is Endpoint.CHAT:
        messages = body.get("messages")
        results = chat_tool_results(messages) if isinstance(messages, list) else []
    else:
        results = responses_tool_results(body.get("input"))
    _KEYS.put(call, (body, tools, results))
    return tools, results


def forget_keys(call: Call) -> None:
    """Drop the cached keys of the request (its texts were rewritten in place)."""
    _KEYS.clear(call)


def tool_kind(kind: str) -> str:
    """A tool or output-item type as its kind: ``local_shell_call`` → ``local_shell``,
    ``computer_use_preview`` → ``computer_use``, ``web_search_preview_2025_03_11`` → ``web_search``."""
    known = _KINDS.get(kind)
    return known if known is not None else _kind_of(kind)


@lru_cache(maxsize=256)
def _kind_of(kind: str) -> str:
    key = name_key(kind)
    key = _KIND_ALIASES.get(key, key)
    key = _DATED.sub("", key) or key
    key = key.removesuffix("_call")
    return _KIND_ALIASES.get(key, key)


#: The kinds of the types every request and answer uses, looked up without a function call.
_KINDS = {
    kind: _kind_of(kind)
    for kind in (
        "function",
        "custom",
        "function_call",
        "custom_tool_call",
        "web_search",
        "web_search_preview",
        "file_search",
        "computer_use_preview",
        "computer",
        "code_interpreter",
        "mcp",
        "image_generation",
        "local_shell",
        "shell",
        "apply_patch",
        "web_search_call",
        "file_search_call",
        "computer_call",
        "code_interpreter_call",
        "mcp_call",
        "image_generation_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
    )
}


def _tool(kind: str, name: Any) -> dict[str, str]:
    name = name if isinstance(name, str) else kind
    known = _KINDS.get(kind)
    return {
        "type": kind,
        "kind": known if known is not None else _kind_of(kind),
        "name": name,
        "name_key": name.strip().lower() if name.isascii() else name_key(name),
    }


def tools_view(body: dict[str, Any]) -> list[dict[str, str]]:
    """Every tool the request offers or forces, in one list (see the module docstring)."""
    out: list[dict[str, str]] = []
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else ():
        if not isinstance(tool, dict):
            continue
        kind = _v if isinstance(_v := tool.get("type"), str) else "function"
        name = tool.get("name")
        nested = tool.get(kind)
        if isinstance(nested, dict) and isinstance(nested.get("name"), str):
            name = nested["name"]  # chat shape: {"type": "function", "function": {"name": ...}}
        elif not isinstance(name, str) and isinstance(tool.get("server_label"), str):
            name = tool["server_label"]  # mcp: the server stands for its tools
        out.append(_tool(kind, name))
    functions = body.get("functions")  # legacy chat: [{"name": ...}]
    if isinstance(functions, list):
        out.extend(_tool("function", fn.get("name")) for fn in functions if isinstance(fn, dict))
    for field in ("tool_choice", "function_call"):
        choice = body.get(field)
        forced = _forced_tool(choice) if isinstance(choice, dict) else None
        if forced is not None and all(
            t["name"] != forced["name"] or t["kind"] != forced["kind"] for t in out
        ):
            out.append(forced)
    return out


def _forced_tool(choice: Any) -> dict[str, str] | None:
    """The tool a ``tool_choice`` (or legacy ``function_call``) names, if it names one."""
    if not isinstance(choice, dict):
        return None
    kind = _v if isinstance(_v := choice.get("type"), str) else "function"
    nested = choice.get(kind)
    name = nested.get("name") if isinstance(nested, dict) else choice.get("name")
    if not isinstance(name, str):
        return None
    return _tool(kind, name)


def chat_tool_results(messages: list[Any]) -> list[dict[str, Any]]:
    """The chat messages that carry a tool's output: ``tool`` and legacy ``function``."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") in ("tool", "function"):
            out.append(
                _result(
                    message["role"], message.get("tool_call_id"), message.get("name"), message.get("content")
                )
            )
    return out


def responses_tool_results(items: Any) -> list[dict[str, Any]]:
    """The responses input items that carry a tool's output (``*_call_output``, ``mcp_call``)."""
    out: list[dict[str, Any]] = []
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if not isinstance(kind, str):
            continue
        if kind.endswith("_output"):
            out.append(
                _result(kind, item.get("call_id") or item.get("id"), item.get("name"), item.get("output"))
            )
        elif kind == "mcp_call":  # an MCP server's answer (or error) travels inside the call item
            texts = [t for t in (item.get("output"), item.get("error")) if isinstance(t, str)]
            out.append(_result(kind, item.get("id"), item.get("name"), "\n".join(texts)))
        elif kind == "mcp_list_tools":  # tool descriptions an MCP server wrote: text the model reads
            tools = _v if isinstance(_v := item.get("tools"), list) else []
            descriptions = [t.get("description") for t in tools if isinstance(t, dict)]
            out.append(
                _result(
                    kind,
                    item.get("id"),
                    item.get("server_label"),
                    "\n".join(t for t in descriptions if isinstance(t, str)),
                )
            )
    return out


def _result(role: str, call_id: Any, name: Any, content: Any) -> dict[str, Any]:
    return {
        "role": role,
        "tool_call_id": call_id if isinstance(call_id, str) else "",
        "name": name if isinstance(name, str) else "",
        "text": text_key(_joined_text(content)),
    }


def _joined_text(content: Any) -> str:
    """All text of a content: a string, or its text parts joined with nothing between them,
    so a marker split over two parts is one marker again."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _keyed_call(call: Any) -> Any:
    """A response tool call with its ``kind`` and ``name_key``."""
    if not isinstance(call, dict):
        return call
    name = call.get("name")
    kind = call.get("type")
    return {
        **call,
        "kind": tool_kind(kind) if isinstance(kind, str) else "function",
        "name_key": name_key(name) if isinstance(name, str) else "",
    }


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
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": _output_text(item)}
            )
        elif kind == "function_call" or kind == "custom_tool_call":
            arguments = item.get("arguments") if kind == "function_call" else item.get("input")
            messages.append(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": item.get("call_id"),
                            "type": "function",
                            "function": {"name": item.get("name"), "arguments": arguments},
                        }
                    ],
                }
            )
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
