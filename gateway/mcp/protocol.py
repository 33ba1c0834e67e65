"""What the gateway rewrites of the MCP protocol itself: capabilities and routing headers.

**Capabilities** (``initialize`` and the 2026-07-28 ``server/discover``): the agent is told
only what the gateway relays *and guards*. A server's ``tools``, ``resources``, ``prompts``,
``logging`` and ``completions`` pass; ``tasks`` (a call whose result arrives later, outside
the result guards), ``experimental`` and ``extensions`` (anything the gateway cannot read)
are dropped. The client's own capabilities sent upstream keep only ``roots``: ``sampling``
(the server asks the agent's model) and ``elicitation`` (the server asks the agent's user)
would let the server reach a model or a person around the gateway's policy, redaction and
budgets, so they are refused by not being offered (``initialize``, ``server/discover`` and the
2026-07-28 per-request ``_meta`` capabilities alike). A server that asks anyway is refused
(``REFUSED_SERVER_REQUESTS``: the relay drops such a request and answers the server with an
error; an ``input_required`` result embedding one becomes an error for the agent).

**Routing headers** (2026-07-28): ``Mcp-Method`` and ``Mcp-Name`` mirror the body's method
and tool name / prompt name / resource URI. The gateway judges the body, so it writes these
from the body; a client header that disagrees is refused (``-32020``, as the SDK's servers
do), since a router upstream may read the header and not the body. ``Mcp-Param-*`` headers
mirror tool arguments: each must mirror an argument of the body as the agent sent it (else
``-32020``), and is rebuilt from the arguments actually sent (after redaction), so a value
redaction replaced never reaches the server in a header.
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
CLIENT_CAPABILITIES = frozenset({"roots"})
#: Server-to-client requests the gateway cannot judge (a model call or a question to a person
#: outside its guards): never relayed to the agent.
REFUSED_SERVER_REQUESTS = frozenset({"sampling/createMessage", "elicitation/create"})
#: The 2026-07-28 per-request client capabilities (``params._meta``).
CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities"
PARAM_PREFIX = "mcp-param-"
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
    changed = _keep_capabilities(message.params, "capabilities")
    meta = message.params.get("_meta")
    if isinstance(meta, dict):
        changed = _keep_capabilities(meta, CAPABILITIES_META) or changed
    return changed


def _keep_capabilities(holder: dict[str, Any], key: str) -> bool:
    caps = holder.get(key)
    if not isinstance(caps, dict):
        return False
    kept = {k: v for k, v in caps.items() if k in CLIENT_CAPABILITIES}
    if len(kept) == len(caps):
        return False
    holder[key] = kept
    return True


def refused_input_requests(result: Any) -> list[str]:
    """The methods an ``input_required`` result (2026-07-28) asks the agent for that the gateway
    refuses to relay (sampling, elicitation); empty when there are none."""
    if not isinstance(result, dict) or result.get("resultType") != "input_required":
        return []
    asks = result.get("inputRequests")
    if not isinstance(asks, dict):
        return []
    methods = (a.get("method") for a in asks.values() if isinstance(a, dict))
    return sorted({m for m in methods if isinstance(m, str) and m not in ("roots/list",)})


def _render(value: Any) -> str | None:
    """An argument as a client mirrors it into a header (the SDK's rendering), None: it cannot be."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        out: list[tuple[tuple[str, ...], Any]] = []
        for key, item in value.items():
            out.extend(_leaves(item, (*path, str(key))))
        return out
    return [(path, value)] if path else []


def _at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def param_paths(message: Message, headers: Mapping[str, str]) -> dict[str, list[tuple[str, ...]]] | None:
    """Which arguments each ``Mcp-Param-*`` header of a ``tools/call`` mirrors (None: no such
    header). Raises ``McpError`` (-32020) for a header that mirrors no argument of the body:
    it could carry a value the guards never saw."""
    found: dict[str, list[tuple[str, ...]]] | None = None
    arguments = message.params.get("arguments")
    for name, value in headers.items():
        if not name.lower().startswith(PARAM_PREFIX):
            continue
        decoded = decode_header(value)
        paths = [
            path
            for path, leaf in _leaves(arguments)
            if decoded is not None and _render(leaf) == decoded and leaf is not None
        ]
        if message.method != "tools/call" or not paths:
            raise McpError(
                400,
                HEADER_MISMATCH,
                f"{name} header does not mirror an argument of the body.",
                id=message.id,
                kind="header_mismatch",
            )
        found = found if found is not None else {}
        found[name.lower()] = paths
    return found


def param_headers(paths: dict[str, list[tuple[str, ...]]], arguments: Any) -> dict[str, str]:
    """The ``Mcp-Param-*`` headers rebuilt from the arguments sent upstream (after redaction);
    a header whose arguments now differ from each other is left out (the server then refuses
    the call: fail closed, and no raw value travels in a header)."""
    out: dict[str, str] = {}
    for name, where in paths.items():
        rendered = {_render(_at(arguments, path)) for path in where}
        if len(rendered) == 1 and (value := rendered.pop()) is not None:
            out[name] = encode_header(value)
    return out


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
