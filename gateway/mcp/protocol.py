"""What the gateway rewrites of the MCP protocol itself: capabilities and routing headers.

**Capabilities** (``initialize`` and the 2026-07-28 ``server/discover``): the agent is told
only what the gateway relays *and guards*. A server's ``tools``, ``resources``, ``prompts``,
``logging`` and ``completions`` pass; ``tasks`` (a call whose result arrives later, outside
the result guards), ``experimental`` and ``extensions`` (anything the gateway cannot read)
are dropped. The client's own capabilities sent upstream keep ``roots``, ``sampling`` and
``elicitation``, for the same reason.

**Routing headers** (2026-07-28): ``Mcp-Method`` and ``Mcp-Name`` mirror the body's method
and tool name / prompt name / resource URI. The gateway judges the body, so it writes these
from the body; a client header that disagrees is refused (``-32020``, as the SDK's servers
do), since a router upstream may read the header and not the body.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from typing import Any

from gateway.mcp.jsonrpc import McpError, Message

HEADER_MISMATCH = -32020
#: Versions of the ``initialize`` era; any other ``Mcp-Protocol-Version`` is the stateless
#: envelope (2026-07-28 on), whose results say ``resultType``.
HANDSHAKE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
SERVER_CAPABILITIES = frozenset({"tools", "resources", "prompts", "logging", "completions"})
CLIENT_CAPABILITIES = frozenset({"roots", "sampling", "elicitation"})
#: Method → the params key its ``Mcp-Name`` header mirrors.
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
_SENTINEL = re.compile(r"^=\?base64\?(.*)\?=$")


def filter_server_capabilities(answer: dict[str, Any]) -> dict[str, Any]:
    """An ``initialize`` / ``server/discover`` answer with only the capabilities the gateway guards."""
    result = answer.get("result")
    if isinstance(result, dict) and isinstance(result.get("capabilities"), dict):
        caps = result["capabilities"]
        result["capabilities"] = {k: v for k, v in caps.items() if k in SERVER_CAPABILITIES}
    return answer


def filter_client_capabilities(message: Message) -> bool:
    """Drop the client capabilities the gateway does not relay (in place); True if any was."""
    caps = message.params.get("capabilities")
    if not isinstance(caps, dict):
        return False
    kept = {k: v for k, v in caps.items() if k in CLIENT_CAPABILITIES}
    if len(kept) == len(caps):
        return False
    message.params["capabilities"] = kept
    return True


def encode_header(value: str) -> str:
    if _HEADER_SAFE.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode()).decode("ascii") + "?="


def decode_header(value: str) -> str | None:
    match = _SENTINEL.fullmatch(value)
    if match is None:
        return value
    try:
        return base64.b64decode(match.group(1), validate=True).decode()
    except ValueError:
        return None


def routing_headers(message: Message, headers: Mapping[str, str]) -> dict[str, str]:
    """``Mcp-Method`` / ``Mcp-Name`` for the upstream, when the client speaks that era (it
    sent ``Mcp-Method``); raises ``McpError`` when the client's headers disagree with its body."""
    sent_method = headers.get("mcp-method")
    if sent_method is None:
        return {}
    assert message.method is not None
    if sent_method != message.method:
        raise McpError(
            400,
            HEADER_MISMATCH,
            "Mcp-Method header does not match the body's method.",
            id=message.id,
            kind="header_mismatch",
        )
    out = {"mcp-method": message.method}
    key = NAME_BEARING.get(message.method)
    value = message.params.get(key) if key is not None else None
    if isinstance(value, str):
        sent_name = headers.get("mcp-name")
        if sent_name is not None and decode_header(sent_name) != value:
            raise McpError(
                400,
                HEADER_MISMATCH,
                f"Mcp-Name header does not match the body's {key!r}.",
                id=message.id,
                kind="header_mismatch",
            )
        out["mcp-name"] = encode_header(value)
    return out
