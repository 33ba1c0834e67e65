"""A held MCP call (approval ``hold``) at its edges: the hold times out (the configured outcome,
the client told, the tool never run), the client leaves during the hold (nothing runs after it
is gone, even once approved; no hold left behind), and the gateway drains while a hold is
pending (the client told the approval is still pending, with its id; nothing run, nothing
expired). Real HTTP, the official SDK client and server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import APPROVER_KEY, AUDITOR_KEY, TEST_KEY
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer
from tests.mcp.test_mcp_guards import _decide, _pending_approval, with_mcp_policy
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio

HOLD_S = 1.5


def _overrides(hold_s: float, timeout_outcome: str = "deny") -> dict[str, Any]:
    return {
        "limits": {"enabled": False},
        "redaction": {"enabled": False},
        "policy": {"watch": False},
        "approvals": {"hold_s": hold_s, "timeout_outcome": timeout_outcome},
        "mcp": {"approval_progress_s": 0.2},
    }


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    root = tmp_path_factory.mktemp("mcp-holds")
    with start_gateway(root, mcp_yaml(url), with_mcp_policy, **_overrides(HOLD_S)) as gw:
        yield gw


def _headers(session: str | None = None) -> dict[str, str]:
    out = {"authorization": f"Bearer {TEST_KEY}", "accept": "application/json, text/event-stream"}
    if session:
        out["mcp-session-id"] = session
    return out


async def _session(http: httpx.AsyncClient, url: str) -> str:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    resp = await http.post(url, headers=_headers(), json=init)
    assert resp.status_code == 200, resp.text
    session = resp.headers["mcp-session-id"]
    note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert (await http.post(url, headers=_headers(session), json=note)).status_code == 202
    return session


def _transfer(amount: int, id_: int = 5) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": id_,
        "method": "tools/call",
        "params": {
            "name": "transfer_funds",
            "arguments": {"amount": amount, "to": "acme"},
            "_meta": {"progressToken": 1},
        },
    }


async def _approval(gateway: Any, approval_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            f"{gateway.url}/admin/approvals/{approval_id}", headers={"authorization": f"Bearer {AUDITOR_KEY}"}
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def _held_gauge(gateway: Any) -> float:
    async with httpx.AsyncClient() as http:
        text = (await http.get(gateway.url + "/metrics")).text
    found = re.search(r"^wardgate_approvals_held_requests(?:\{[^}]*\})? ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, "wardgate_approvals_held_requests not exported"
    return float(found.group(1))


async def test_a_hold_that_times_out_is_denied_and_the_client_told(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["transfer_funds"]
    async with mcp_client(gateway.url + "/mcp/payments") as client:
        result = await asyncio.wait_for(
            client.call_tool("transfer_funds", {"amount": 1700, "to": "acme"}), 20
        )
    assert result.is_error
    text = result.content[0].text
    assert "expired" in text and "approval timed out" in text and "the tool did not run" in text, text
    note = result.meta["io.wardgate/approval"]
    assert note["status"] == "expired"
    assert (await _approval(gateway, note["id"]))["status"] == "expired"  # timeout_outcome: deny
    assert server.calls["transfer_funds"] == before


async def test_a_client_that_leaves_during_a_hold_never_has_its_call_run(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["transfer_funds"]
    url = gateway.url + "/mcp/payments"
    async with httpx.AsyncClient(timeout=10) as http:
        session = await _session(http, url)
        async with http.stream("POST", url, headers=_headers(session), json=_transfer(1800)) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            async for line in resp.aiter_lines():
                if "waiting for approval" in line:
                    break  # one progress notification, then the client is gone
    approval = await _pending_approval(gateway, "transfer_funds")
    # The hold ends with its client (the progress write fails): no waiter left behind.
    await wait_until_async(lambda: _zero(gateway), within=10)
    assert (await _approval(gateway, approval["id"]))["status"] == "pending"  # not expired by the exit
    await _decide(gateway, approval["id"], "approve", APPROVER_KEY)
    await asyncio.sleep(0.5)
    assert server.calls["transfer_funds"] == before  # approved after the client left: never run
    assert (await _approval(gateway, approval["id"]))["status"] == "approved"  # and never consumed
    async with httpx.AsyncClient() as http:
        events = await http.get(
            gateway.url + "/admin/audit",
            params={"kind": "mcp", "limit": "200"},
            headers={"authorization": f"Bearer {AUDITOR_KEY}"},
        )
    assert any(
        (e.get("data") or {}).get("mcp", {}).get("approval", {}).get("id") == approval["id"]
        for e in events.json()["data"]
    ), events.text  # the request that left is audited with its approval


async def _zero(gateway: Any) -> bool:
    return await _held_gauge(gateway) == 0


async def test_a_drain_tells_a_held_client_its_approval_is_pending(
    tool_server: tuple[ToolServer, str], tmp_path: Path
) -> None:
    """SIGTERM's drain (``ctx.drain.begin``, as ``wardgate serve`` runs it) hands a hold back:
    the client gets the approval id to re-send with, the approval stays pending, nothing runs."""
    server, url = tool_server
    before = server.calls["transfer_funds"]
    with start_gateway(tmp_path, mcp_yaml(url), with_mcp_policy, **_overrides(60)) as gw:
        async with mcp_client(gw.url + "/mcp/payments") as client:
            call = asyncio.create_task(client.call_tool("transfer_funds", {"amount": 1900, "to": "acme"}))
            approval = await _pending_approval(gw, "transfer_funds")
            loop = gw.ctx.drain.loop
            assert loop is not None
            loop.call_soon_threadsafe(gw.ctx.drain.begin)
            result = await asyncio.wait_for(call, 30)
        assert (await _approval(gw, approval["id"]))["status"] == "pending"  # not expired by the drain
    assert result.is_error
    text = result.content[0].text
    assert "pending" in text and approval["id"] in text and "x-wardgate-approval-id" in text.lower(), text
    assert result.meta["io.wardgate/approval"]["status"] == "pending"
    assert server.calls["transfer_funds"] == before


async def test_a_hold_that_times_out_with_outcome_defer_leaves_the_approval_pending(
    tool_server: tuple[ToolServer, str], tmp_path: Path
) -> None:
    """``timeout_outcome: defer``: the client is told the approval is pending, with the id to
    re-send with; once approved, the re-send runs the call exactly once."""
    server, url = tool_server
    before = server.calls["transfer_funds"]
    args = {"amount": 2100, "to": "acme"}
    with start_gateway(tmp_path, mcp_yaml(url), with_mcp_policy, **_overrides(1.0, "defer")) as gw:
        async with mcp_client(gw.url + "/mcp/payments") as client:
            first = await asyncio.wait_for(client.call_tool("transfer_funds", args), 20)
            assert first.is_error and "pending" in first.content[0].text, first.content
            note = first.meta["io.wardgate/approval"]
            assert note["status"] == "pending"
            assert (await _approval(gw, note["id"]))["status"] == "pending"
            assert server.calls["transfer_funds"] == before
            await _decide(gw, note["id"], "approve", APPROVER_KEY)
            again = await client.call_tool(
                "transfer_funds", args, meta={"io.wardgate/approval_id": note["id"]}
            )
            assert not again.is_error and "transferred 2100" in again.content[0].text
    assert server.calls["transfer_funds"] == before + 1
