"""The ``crm`` sample MCP server: the support scenario's tools over its fake systems.

It serves ``orchestrator.scenario.support.support_tools`` (lookup_customer, lookup_order,
search_kb, issue_refund, delete_customer, send_email) over a ``SupportBackend``: the same
functions and data the orchestrator runs locally, so the scenario behaves the same when its
workers reach their tools through Wardgate's ``/mcp/crm``. Wardgate's shipped policy holds
``issue_refund`` above $200 for a support lead and refuses ``delete_customer`` before the
call gets here.
"""

from __future__ import annotations

from orchestrator.mcp_servers.toolbox_server import ToolBoxServer
from orchestrator.scenario.support import support_tools
from orchestrator.scenario.support_data import SupportBackend


def crm_server(backend: SupportBackend | None = None) -> ToolBoxServer:
    """A ``crm`` server over ``backend`` (a fresh one unless given: pass the scenario's to share it)."""
    backend = backend or SupportBackend()
    return ToolBoxServer(
        "crm",
        support_tools(backend),
        backend,
        instructions="Customer support systems: orders, customers, knowledge base, refunds, email.",
    )
