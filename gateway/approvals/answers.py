"""Reading and rewriting complete answers (chat completions and Responses API shapes).

- ``tool_calls_of``: the tool calls an answer asks for, arguments parsed, for the reviewer.
- ``deny_json``: the denial rewrite. The tool calls are removed and the assistant message
  says why (``Action transfer_funds was denied by a reviewer: <comment>``) with
  ``finish_reason: "stop"``, so an agent loop sees an ordinary final answer and continues
  instead of crashing on an error it was never written to handle. All tool calls of an
  affected choice go: the reviewer judged the answer as a whole, and a sibling call (say,
  "send the receipt") may only make sense if the denied one ran.
- ``synth_json``: an answer made from nothing, for request-phase approvals (the model was
  never asked).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

#: Responses API output items that are tool calls the agent would execute.
TOOL_ITEM_TYPES = frozenset(
    {
        "function_call",
        "custom_tool_call",
        "computer_call",
        "mcp_call",
        "local_shell_call",
        "shell_call",
        "apply_patch_call",
    }
)


def parse_arguments(raw: Any) -> Any:
    """Arguments as JSON when they parse, else the raw string (the reviewer still sees them)."""
    if not isinstance(raw, str):
        return raw
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw


def tool_calls_of(endpoint: str, body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        return []
    if endpoint == "responses":
        out = []
        for item in body.get("output") or []:
            if isinstance(item, dict) and item.get("type") in TOOL_ITEM_TYPES:
                args = item.get("arguments", item.get("input", item.get("action")))
                out.append(
                    {
                        "id": item.get("call_id") or item.get("id"),
                        "name": item.get("name") or item["type"],
                        "arguments": parse_arguments(args),
                    }
                )
        return out
    out = []
    for choice in body.get("choices") or []:
        message = (choice or {}).get("message") or {}
        for call in message.get("tool_calls") or []:
            fn = (call or {}).get("function") or (call or {}).get("custom") or {}
            out.append(
                {
                    "id": call.get("id"),
                    "name": fn.get("name"),
                    "arguments": parse_arguments(fn.get("arguments", fn.get("input"))),
                }
            )
        legacy = message.get("function_call")
        if isinstance(legacy, dict):
            out.append(
                {
                    "id": None,
                    "name": legacy.get("name"),
                    "arguments": parse_arguments(legacy.get("arguments")),
                }
            )
    return out


def denial_text(tool_names: list[str], comment: str | None, *, by_reviewer: bool, phase: str) -> str:
    """The sentence an agent reads instead of its tool call (or instead of an answer)."""
    why = (comment or "").strip() or ("no reason given" if by_reviewer else "approval denied")
    verb = "was denied by a reviewer" if by_reviewer else "was denied"
    if phase == "request" or not tool_names:
        return f"The request {verb}: {why}"
    return "\n".join(f"Action {name} {verb}: {why}" for name in dict.fromkeys(tool_names))


def pending_text(tool_names: list[str], approval_id: str) -> str:
    """Said mid-stream when a 409 is no longer possible (text already went out)."""
    what = ", ".join(dict.fromkeys(tool_names)) or "The request"
    return (
        f"Action {what} is waiting for a reviewer's approval ({approval_id}). Re-send the same request "
        f"with the header X-Wardgate-Approval-Id: {approval_id} to get the outcome."
    )


def _join(existing: Any, text: str) -> str:
    return f"{existing}\n\n{text}" if isinstance(existing, str) and existing.strip() else text


def message_item(text: str, item_id: str | None = None) -> dict[str, Any]:
    return {
        "id": item_id or "msg_wg" + secrets.token_hex(12),
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def deny_json(endpoint: str, body: Any, text: str) -> Any:
    """Rewrite a complete answer in place (and return it)."""
    if not isinstance(body, dict):
        return body
    if endpoint == "responses":
        output = [
            i
            for i in body.get("output") or []
            if not (isinstance(i, dict) and i.get("type") in TOOL_ITEM_TYPES)
        ]
        output.append(message_item(text))
        body["output"] = output
        body.pop("output_text", None)
        if body.get("status") in (None, "in_progress"):
            body["status"] = "completed"
        return body
    choices = body.get("choices") or []
    touched = False
    for choice in choices:
        message = (choice or {}).get("message")
        if not isinstance(message, dict) or not (message.get("tool_calls") or message.get("function_call")):
            continue
        message.pop("tool_calls", None)
        message.pop("function_call", None)
        message["content"] = _join(message.get("content"), text)
        choice["finish_reason"] = "stop"
        touched = True
    if not touched and choices and isinstance(choices[0], dict):
        message = choices[0].setdefault("message", {"role": "assistant"})
        message["content"] = _join(message.get("content"), text)
        choices[0]["finish_reason"] = "stop"
    return body


def synth_json(endpoint: str, model: str, text: str) -> dict[str, Any]:
    """A complete answer saying ``text``, for calls the model never saw."""
    now = int(time.time())
    if endpoint == "responses":
        return {
            "id": "resp_wg" + secrets.token_hex(12),
            "object": "response",
            "created_at": now,
            "status": "completed",
            "model": model,
            "output": [message_item(text)],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
    return {
        "id": "chatcmpl-wg" + secrets.token_hex(12),
        "object": "chat.completion",
        "created": now,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
