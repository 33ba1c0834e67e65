"""JSON-RPC 2.0 as MCP uses it: one message per HTTP POST, checked before anything else runs.

Every refusal is a JSON-RPC error object (never an OpenAI-shaped one: the caller is an MCP
client) with an HTTP status that says the same thing to a proxy or a log:

    not JSON                          400  -32700 parse error
    not one message (batch, scalar)   400  -32600 invalid request
    bad jsonrpc/id/method/params      400  -32600 invalid request
    an object repeating a key         400  -32600 (parsers disagree on which value counts)
    unknown method                    200  -32601 method not found  (a JSON-RPC answer)
    over ``mcp.max_body_bytes``       413  -32600

Batches are refused outright: the current MCP specification (2025-06-18 on) removed JSON-RPC
batching, and a batch is how one HTTP request would smuggle many tool calls past per-call
limits, approvals and audit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway import dupkeys

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
#: Implementation-defined server errors (-32000..-32099): the gateway's own refusals.
UNAUTHORIZED = -32001
FORBIDDEN = -32003
NOT_FOUND = -32004
UPSTREAM_ERROR = -32010
POLICY_UNAVAILABLE = -32011
RATE_LIMITED = -32029
APPROVAL_PENDING = -32040

#: Client → server requests the gateway relays (and guards where it has a guard).
REQUEST_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        # 2026-07-28 (stateless, no handshake): the era probe and the notifications stream.
        "server/discover",
        "subscriptions/listen",
    }
)
NOTIFICATION_METHODS = frozenset(
    {
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
_MAX_ID_CHARS = 256


class McpError(Exception):
    """A JSON-RPC error answered by the gateway itself."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        id: Any = None,
        kind: str = "invalid_request",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.id = id
        #: A short word for audit, metrics and the error's ``data.type``.
        self.kind = kind
        self.headers = headers or {}

    def body(self) -> bytes:
        return error_body(self.id, self.code, self.message, self.kind)


def error_body(id: Any, code: int, message: str, kind: str, extra: dict[str, Any] | None = None) -> bytes:
    data: dict[str, Any] = {"type": kind, "source": "wardgate"}
    if extra:
        data.update(extra)
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message, "data": data}}
    )


@dataclass(slots=True)
class Message:
    """One client message: a request (``id`` and ``method``), a notification (``method``) or a
    response to a server's request (``id`` and ``result``/``error``)."""

    raw: dict[str, Any]
    kind: str  # "request" | "notification" | "response"
    method: str | None = None
    id: Any = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_request(self) -> bool:
        return self.kind == "request"


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and len(value) <= _MAX_ID_CHARS


def parse(body: bytes) -> Message:
    """The message of a POST body; raises ``McpError`` for anything that is not one valid message."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise McpError(
            400, PARSE_ERROR, "Parse error: the body is not valid JSON.", kind="parse_error"
        ) from None
    if dupkeys.has_duplicate(body, doc):
        # {"name": "get_balance", "name": "transfer_funds"}: the gateway reads the last, a
        # first-wins server would run the other (gateway/dupkeys.py).
        where = dupkeys.locate(body)
        raise McpError(
            400,
            INVALID_REQUEST,
            f"Invalid request: a JSON object repeats a key{f' ({where})' if where else ''}.",
            kind="duplicate_keys",
        )
    if isinstance(doc, list):
        raise McpError(
            400,
            INVALID_REQUEST,
            "JSON-RPC batches are not accepted: MCP (2025-06-18 and later) sends one message per request.",
            kind="batch_refused",
        )
    if not isinstance(doc, dict):
        raise McpError(400, INVALID_REQUEST, "Invalid request: a JSON-RPC message is an object.")
    raw_id = doc.get("id")
    has_id = "id" in doc
    id_ = raw_id if has_id and _valid_id(raw_id) else None
    if doc.get("jsonrpc") != "2.0":
        raise McpError(400, INVALID_REQUEST, "Invalid request: 'jsonrpc' must be \"2.0\".", id=id_)
    if has_id and not _valid_id(raw_id):
        raise McpError(
            400,
            INVALID_REQUEST,
            f"Invalid request: 'id' must be a string (<= {_MAX_ID_CHARS}) or an integer.",
        )
    method = doc.get("method")
    params = doc.get("params", {})
    if params is None:
        params = {}
    if method is None:
        if not has_id or ("result" in doc) == ("error" in doc):
            raise McpError(
                400,
                INVALID_REQUEST,
                "Invalid request: no 'method', and not a response (id + result or error).",
                id=id_,
            )
        return Message(doc, "response", id=raw_id)
    if not isinstance(method, str) or not method:
        raise McpError(400, INVALID_REQUEST, "Invalid request: 'method' must be a non-empty string.", id=id_)
    if not isinstance(params, dict):
        raise McpError(400, INVALID_REQUEST, "Invalid request: 'params' must be an object.", id=id_)
    if not has_id:
        if method not in NOTIFICATION_METHODS:
            raise McpError(
                400, METHOD_NOT_FOUND, f"Unknown notification: {method[:100]!r}.", kind="unknown_method"
            )
        return Message(doc, "notification", method=method, params=params)
    if method not in REQUEST_METHODS:
        raise McpError(
            200, METHOD_NOT_FOUND, f"Method not found: {method[:100]!r}.", id=raw_id, kind="unknown_method"
        )
    return Message(doc, "request", method=method, id=raw_id, params=params)
