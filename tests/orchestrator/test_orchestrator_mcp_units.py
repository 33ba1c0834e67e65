"""How the orchestrator's MCP client reads the gateway's JSON-RPC refusals (no server needed)."""

from __future__ import annotations

import httpx2
from mcp.shared.exceptions import MCPError

from orchestrator.errors import BadCall, CallFailed, PolicyDenied
from orchestrator.mcp_client import _first, refusal


def test_json_rpc_refusals_map_to_the_orchestrators_refusals():
    denied = refusal(MCPError(-32003, "team not allowed", {"type": "forbidden", "source": "wardgate"}))
    assert isinstance(denied, PolicyDenied) and denied.status == 403 and denied.reasons == []
    read = refusal(MCPError(-32003, "no", {"type": "policy_denied", "reasons": ["r1"], "source": "wardgate"}))
    assert isinstance(read, PolicyDenied) and read.reasons == ["r1"] and read.code == "policy_denied"
    for code in (-32029, -32010, -32011):  # rate limited, upstream down, policy engine unavailable
        assert isinstance(refusal(MCPError(code, "later", {"source": "wardgate"})), CallFailed)
    for code in (-32001, -32004, -32600):  # bad key, unknown server or session, invalid request
        assert isinstance(refusal(MCPError(code, "no", None)), BadCall)


def test_the_first_mcp_or_http_error_is_found_inside_the_sdks_task_group_errors():
    inner = MCPError(-32001, "bad key")
    nested = BaseExceptionGroup("outer", [BaseExceptionGroup("inner", [RuntimeError("x"), inner])])
    assert _first(nested) is inner
    broken = httpx2.ConnectError("refused")
    assert _first(ExceptionGroup("g", [broken])) is broken
    plain = ValueError("v")
    assert _first(plain) is plain
