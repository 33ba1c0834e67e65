"""Sample MCP servers for Wardgate's ``/mcp/{server}``: ``crm`` (the support scenario's tools)
and ``payments`` (transfers and balances), built with the official ``mcp`` SDK's server.

Run one on a port (Streamable HTTP, endpoint ``/mcp``)::

    python -m orchestrator.mcp_servers crm --port 8101
    python -m orchestrator.mcp_servers payments --port 8102

and point ``policies/mcp.yaml`` at ``http://127.0.0.1:8101/mcp``. Tests start them in-process
with ``crm_server().serve()`` (a free port) and read ``server.calls`` to count tool calls.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.mcp_servers.crm import crm_server
from orchestrator.mcp_servers.payments import PaymentsBackend, payments_server
from orchestrator.mcp_servers.toolbox_server import MCP_PATH, TOOL_CONTEXT_META, ToolBoxServer

#: The sample servers by name, each a fresh server over fresh fake systems.
SERVERS: dict[str, Callable[[], ToolBoxServer]] = {"crm": crm_server, "payments": payments_server}

__all__ = [
    "MCP_PATH",
    "SERVERS",
    "TOOL_CONTEXT_META",
    "PaymentsBackend",
    "ToolBoxServer",
    "crm_server",
    "payments_server",
]
