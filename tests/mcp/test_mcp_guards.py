"""The guards on MCP calls, driven with the official SDK client against a real SDK server:
list filtering, allowed and denied calls, held calls approved and denied by a reviewer, defer
and a re-send that runs exactly once, argument and answer redaction, injection markers, the
policy on reads and prompts, audit events in the run timeline, a policy engine that fails."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from mcp.shared.exceptions import MCPError

from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, LIMITED_KEY, TEST_KEY
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer
from tests.waiting import wait_until_async

pytestmark = pytest.mark.asyncio

SERVERS = {
    "payments": {"tools": ["get_balance", "transfer_funds", "echo", "slow", "weather"]},
    "crm": {
        "tools": ["lookup_customer", "read_ticket", "issue_refund", "delete_customer"],
        "resources": ["kb://*"],
        "prompts": ["summarize"],
    },
}


def with_mcp_policy(policies: Path) -> None:
    path = policies / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["mcp"] = {"servers": SERVERS}
    path.write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    root = tmp_path_factory.mktemp("mcp-guards")
    overrides = {
        "limits": {"enabled": False},
        "policy": {"watch": False},
        "approvals": {"tools": {"issue_refund": {"mode": "defer", "approvers": "finance"}}, "hold_s": 30},
        "mcp": {"approval_progress_s": 0.2},
    }
    with start_gateway(root, mcp_yaml(url), with_mcp_policy, **overrides) as gw:
        yield gw


def _url(gateway: Any, server: str = "payments") -> str:
    return f"{gateway.url}/mcp/{server}"


async def test_tools_list_shows_only_what_the_caller_may_call(gateway: Any) -> None:
    async with mcp_client(_url(gateway, "crm")) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    assert {"lookup_customer", "read_ticket", "issue_refund"} <= names
    assert "delete_customer" not in names  # high_stakes deny: true
    assert "get_balance" not in names  # not on crm's allow list
    async with mcp_client(_url(gateway)) as client:
        names = {t.name for t in (await client.list_tools()).tools}
    # weather is on the allow list, but its description carries an injection marker.
    assert names == {"get_balance", "transfer_funds", "echo", "slow"}


async def test_an_allowed_call_runs_and_a_denied_one_never_reaches_the_server(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["delete_customer"]
    async with mcp_client(_url(gateway, "crm"), mode="auto") as client:
        ok = await client.call_tool("lookup_customer", {"customer_id": "c-7"})
        assert not ok.is_error
        denied = await client.call_tool("Delete_Customer", {"customer_id": "c-7"})
        assert denied.is_error
        assert (
            "never allowed" in denied.content[0].text
            and "deleting customer records" in denied.content[0].text
        )
        off_list = await client.call_tool("get_balance", {"account": "x"})
        assert off_list.is_error and "not on the allow list" in off_list.content[0].text
    assert server.calls["delete_customer"] == before


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_held_call_runs_once_approved_and_never_once_denied(
    gateway: Any, tool_server: tuple[ToolServer, str], mode: str
) -> None:
    server, _ = tool_server
    before = server.calls["transfer_funds"]
    progress: list[str] = []

    async def on_progress(p: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with mcp_client(_url(gateway), mode=mode, headers={"x-run-id": f"run-held-{mode}"}) as client:
        call = asyncio.create_task(
            client.call_tool(
                "transfer_funds",
                {"amount": 1500, "to": "acme bob@example.org"},
                progress_callback=on_progress,
            )
        )
        approval = await _pending_approval(gateway, "transfer_funds")
        assert approval["tool_calls"][0]["arguments"]["amount"] == 1500
        assert "bob@example.org" not in json.dumps(approval)  # the list shows placeholders
        async with httpx.AsyncClient() as http:
            seen = await http.get(
                f"{gateway.url}/admin/approvals/{approval['id']}",
                headers={"authorization": f"Bearer {APPROVER_KEY}"},
            )
        assert (
            seen.json()["values"] == "real" and "bob@example.org" in seen.text
        )  # its reviewer sees the value
        await wait_until_async(lambda: bool(progress), within=20)
        assert "waiting for approval" in progress[0]
        assert server.calls["transfer_funds"] == before
        await _decide(gateway, approval["id"], "approve", APPROVER_KEY)
        result = await asyncio.wait_for(call, 30)
        assert not result.is_error and "transferred 1500" in result.content[0].text
        assert server.calls["transfer_funds"] == before + 1

        call = asyncio.create_task(client.call_tool("transfer_funds", {"amount": 2500, "to": "acme"}))
        approval = await _pending_approval(gateway, "transfer_funds")
        await _decide(gateway, approval["id"], "deny", APPROVER_KEY, comment="not this week")
        result = await asyncio.wait_for(call, 30)
        assert (
            result.is_error
            and "denied" in result.content[0].text
            and "not this week" in result.content[0].text
        )
    assert server.calls["transfer_funds"] == before + 1


async def test_defer_then_a_resend_with_the_id_runs_exactly_once(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    before = server.calls["issue_refund"]
    args = {"order_id": "o-1", "amount": 450}
    async with mcp_client(_url(gateway, "crm")) as client:
        first = await client.call_tool("issue_refund", args)
        assert first.is_error and "pending" in first.content[0].text
        approval_id = first.meta["io.wardgate/approval"]["id"]  # type: ignore[index]
        again = await client.call_tool("issue_refund", args, meta={"io.wardgate/approval_id": approval_id})
        assert again.is_error and "pending" in again.content[0].text
        await _decide(gateway, approval_id, "approve", APPROVER_KEY)
        other = await client.call_tool(
            "issue_refund", {**args, "amount": 45000}, meta={"io.wardgate/approval_id": approval_id}
        )
        assert other.is_error and "another call" in other.content[0].text
        async with mcp_client(_url(gateway, "crm"), key=LIMITED_KEY) as thief:
            stolen = await thief.call_tool(
                "issue_refund", args, meta={"io.wardgate/approval_id": approval_id}
            )
        assert stolen.is_error and "no approval" in stolen.content[0].text
        done = await client.call_tool("issue_refund", args, meta={"io.wardgate/approval_id": approval_id})
        assert not done.is_error and "refunded 450" in done.content[0].text
        twice = await client.call_tool("issue_refund", args, meta={"io.wardgate/approval_id": approval_id})
        assert twice.is_error and "already used" in twice.content[0].text
    assert server.calls["issue_refund"] == before + 1


async def test_arguments_and_answers_are_redacted(gateway: Any, tool_server: tuple[ToolServer, str]) -> None:
    server, _ = tool_server
    secret = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0" * 2
    async with mcp_client(_url(gateway)) as client:
        echoed = await client.call_tool("echo", {"text": f"key {secret} mail bob@example.org"})
    sent = [args for name, args in server.seen if name == "echo"][-1]["text"]
    # The secret never reaches the tool; the agent's own e-mail does (a type restored into
    # tool-call arguments on the chat path reaches an MCP tool as sent: send_email needs it).
    assert secret not in sent and "bob@example.org" in sent
    # The agent gets its own e-mail back (restored), never the secret.
    assert "bob@example.org" in echoed.content[0].text and secret not in echoed.content[0].text
    async with mcp_client(_url(gateway, "crm")) as client:
        looked = await client.call_tool("lookup_customer", {"customer_id": "c-1"})
    assert "jane.roe@example.com" not in looked.content[0].text
    assert "EMAIL_ADDRESS" in looked.content[0].text


async def test_the_audit_record_keeps_the_redaction_summary_never_the_values(gateway: Any) -> None:
    secret = "sk-proj-" + "Z9y8X7w6V5u4T3s2R1q0" * 2
    async with mcp_client(_url(gateway), headers={"x-run-id": "run-mcp-redaction"}) as client:
        await client.call_tool("echo", {"text": f"key {secret} mail bob@example.org"})
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            gateway.url + "/admin/runs/run-mcp-redaction", headers={"authorization": f"Bearer {AUDITOR_KEY}"}
        )
    assert resp.status_code == 200, resp.text
    steps = [s["data"]["mcp"] for s in resp.json()["steps"] if s.get("kind") == "mcp"]
    [call] = [m for m in steps if m["method"] == "tools/call"]
    # The summary of what redaction found in the arguments survives the audit scrub (counts
    # and paths); the values never reach the record.
    summary = call["redaction"]["args"]
    assert summary["entities"].get("EMAIL_ADDRESS") == 1 and len(summary["entities"]) == 2, summary
    assert secret not in resp.text and "bob@example.org" not in resp.text


async def test_an_answer_with_an_injection_marker_is_withheld(gateway: Any) -> None:
    async with mcp_client(_url(gateway, "crm")) as client:
        result = await client.call_tool("read_ticket", {"ticket_id": "t-9"})
    assert result.is_error and "prompt injection" in result.content[0].text
    assert "wire the funds" not in result.content[0].text


async def test_reads_and_prompts_go_through_policy(gateway: Any, tool_server: tuple[ToolServer, str]) -> None:
    server, _ = tool_server
    before = server.calls["vault"]
    async with mcp_client(_url(gateway, "crm")) as client:
        listed = await client.list_resources()
        assert "secret://vault" not in {str(r.uri) for r in listed.resources}
        article = await client.read_resource("kb://articles/reset")
        assert article.contents[0].text == "article reset"  # type: ignore[union-attr]
        with pytest.raises(MCPError, match="not on the allow list"):
            await client.read_resource("secret://vault")
        prompt = await client.get_prompt("summarize", {"topic": "refunds"})
        assert "Summarize refunds" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert server.calls["vault"] == before


async def test_every_request_is_in_the_run_timeline(gateway: Any) -> None:
    async with mcp_client(
        _url(gateway), headers={"x-run-id": "run-mcp-audit", "x-agent-id": "agent-a"}
    ) as client:
        await client.call_tool("get_balance", {"account": "A-1"})
        await client.call_tool("delete_customer", {"customer_id": "x"})
    async with httpx.AsyncClient() as http:
        resp = await http.get(
            gateway.url + "/admin/runs/run-mcp-audit", headers={"authorization": f"Bearer {AUDITOR_KEY}"}
        )
    assert resp.status_code == 200, resp.text
    steps = [s for s in resp.json()["steps"] if s.get("kind") == "mcp"]
    calls = [s["data"]["mcp"] for s in steps if s["data"]["mcp"]["method"] == "tools/call"]
    assert [(c["target"], c["outcome"]) for c in calls] == [
        ("get_balance", "allow"),
        ("delete_customer", "deny"),
    ]
    assert all(s["agent_id"] == "agent-a" and s["key_id"] == "test" for s in steps)
    assert "latency_ms" in calls[0] and calls[1]["reasons"]
    assert TEST_KEY not in json.dumps(resp.json())


async def _pending_approval(gateway: Any, tool: str) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def pending() -> bool:
        async with httpx.AsyncClient() as http:
            resp = await http.get(
                gateway.url + "/admin/approvals",
                params={"status": "pending"},
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
        for item in resp.json()["data"]:
            if item["tool_calls"] and item["tool_calls"][0]["name"] == tool and item["endpoint"] == "mcp":
                found.update(item)
                return True
        return False

    await wait_until_async(pending, within=20)
    return found


async def _decide(gateway: Any, approval_id: str, verb: str, key: str, comment: str | None = None) -> None:
    async with httpx.AsyncClient() as http:
        resp = await http.post(
            f"{gateway.url}/admin/approvals/{approval_id}/{verb}",
            headers={"authorization": f"Bearer {key}"},
            json={"comment": comment} if comment else {},
        )
    assert resp.status_code == 200, resp.text
