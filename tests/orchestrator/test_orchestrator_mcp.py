"""The support scenario with the workers' tools behind the gateway's ``/mcp/crm``.

The sample ``crm`` MCP server (orchestrator/mcp_servers/) runs in this process on a free port
over the scenario's own backend; the gateway's ``mcp.yaml`` names it and the test team's
high-stakes tools are judged where they run (``high_stakes_at: mcp``): the $250 refund waits
at the MCP ``tools/call`` for the reviewer (hold: the call stays open; defer: an error result
with the approval id, polled, then the same call re-sent with it), ``delete_customer`` is
refused there with the policy's reason and never reaches the server, and every call that is
allowed reaches it exactly once (counted at the server).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.admin_client import AdminClient
from orchestrator.config import OrchestratorConfig
from orchestrator.events import Listener
from orchestrator.mcp_servers import ToolBoxServer, crm_server
from orchestrator.scenario import get_scenario
from tests.harness import RunningGateway, gateway_settings, running_gateway
from tests.orchestrator.conftest import ORCH_ADMIN_KEY, PRICE, TEAM, _keys, make_config, run_reviewed


@pytest.fixture(scope="module")
def crm() -> Iterator[ToolBoxServer]:
    server = crm_server()
    with server.serve() as url:
        server.url = url  # type: ignore[attr-defined]
        yield server


def _gateway(
    root: Path, upstream_url: str, mode: str, crm_url: str, tool_prices: dict[str, float] | None = None
) -> Iterator[RunningGateway]:
    settings = gateway_settings(
        root,
        upstream_url,
        approvals={"hold_s": 20, "tools": {"issue_refund": {"mode": mode}}},
        policy={"watch": False, "test_on_reload": False},
    )
    policies = settings.policies_dir
    (policies / "keys.yaml").write_text(yaml.safe_dump(_keys()))
    pricing: dict[str, Any] = {"models": {"mock-chat": PRICE}}
    if tool_prices:
        pricing["mcp_tools"] = tool_prices
        (policies / "limits.yaml").write_text(
            yaml.safe_dump({"scopes": {"run": {"budget_usd": {"total": 0.3}}}})
        )
    (policies / "pricing.yaml").write_text(yaml.safe_dump(pricing))
    servers = {"servers": {"crm": {"url": crm_url, "timeout_s": 10, "teams": [TEAM]}}}
    (policies / "mcp.yaml").write_text(yaml.safe_dump(servers))
    policy = yaml.safe_load((policies / "policy.yaml").read_text())
    policy.setdefault("teams", {})[TEAM] = {"high_stakes_at": "mcp"}
    (policies / "policy.yaml").write_text(yaml.safe_dump(policy))
    with running_gateway(settings) as gw:
        yield gw


@pytest.fixture(scope="module")
def mcp_hold_gateway(fake_upstream: Any, crm: Any, tmp_path_factory: pytest.TempPathFactory):
    yield from _gateway(tmp_path_factory.mktemp("orch-mcp-hold"), fake_upstream.base_url, "hold", crm.url)


@pytest.fixture(scope="module")
def mcp_defer_gateway(fake_upstream: Any, crm: Any, tmp_path_factory: pytest.TempPathFactory):
    yield from _gateway(tmp_path_factory.mktemp("orch-mcp-defer"), fake_upstream.base_url, "defer", crm.url)


class Approvals(Listener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    async def approval_pending(self, run_id: str, agent: str, approval_id: str, mode: str) -> None:
        self.seen.append(("pending", agent, mode))

    async def approval_decided(self, run_id: str, agent: str, approval_id: str, outcome: str) -> None:
        self.seen.append(("decided", agent, outcome))


async def _run(gw: RunningGateway, crm: ToolBoxServer, tmp_path: Path) -> tuple[Any, Approvals]:
    crm.reset()
    crm.backend.refunds.clear()
    config: OrchestratorConfig = make_config(gw, tmp_path / "o.db", mcp_server="crm")
    listener = Approvals()
    report, _, approver = await run_reviewed(
        config, scenario=get_scenario("support", crm.backend), listener=listener
    )
    assert [d["status"] for d in approver.decided] == ["approved"]
    return report, listener


def _assert_held_at_the_call_and_denied_at_the_call(report: Any, crm: ToolBoxServer, mode: str) -> None:
    assert report.status == "completed", report.to_dict()
    assert {s.id: s.status for s in report.steps} == {
        "research": "done",
        "refund": "done",
        "account": "denied",
        "reply": "done",
    }
    (denial,) = report.denials
    assert denial["step"] == "account" and denial["tool"] == "delete_customer"
    assert any("never done by an agent" in r for r in denial["reasons"])
    assert crm.count("delete_customer") == 0 and "CUST-1042" in crm.backend.customers
    (approval,) = report.approvals
    assert approval["outcome"] == "approved" and approval["mode"] == mode
    assert approval["tools"] == ["issue_refund"] and approval["comment"]
    assert [r["amount"] for r in crm.backend.refunds.values()] == [250.0]
    # Each allowed call reached the server exactly once; the model calls never went there.
    assert {t: crm.count(t) for t in ("lookup_order", "search_kb", "issue_refund", "send_email")} == {
        "lookup_order": 1,
        "search_kb": 1,
        "issue_refund": 1,
        "send_email": 1,
    }
    assert all(t.executions == 1 for t in report.tools)
    assert not any(ORCH_ADMIN_KEY in a or "wg-orch-test" in a for a in crm.authorizations)


async def test_through_mcp_the_refund_is_held_at_the_call_and_the_deletion_refused_there(
    mcp_hold_gateway, crm, tmp_path: Path
):
    report, listener = await _run(mcp_hold_gateway, crm, tmp_path)
    _assert_held_at_the_call_and_denied_at_the_call(report, crm, "hold")
    assert listener.seen == [("pending", "billing", "hold"), ("decided", "billing", "approved")]
    # The MCP calls are in the run's audit timeline beside the model calls.
    admin = AdminClient(mcp_hold_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        timeline = await admin.run_timeline(report.run_id)
    finally:
        await admin.close()
    kinds = {s.get("kind") for s in timeline["steps"]}
    assert {"call", "mcp"} <= kinds, kinds
    # One MCP session per agent of the run (one initialize each, the SDK's one tools/list for
    # its schema cache), not one per tool call.
    mcp = [s["data"]["mcp"] for s in timeline["steps"] if s.get("kind") == "mcp"]
    agents = {s["agent_id"] for s in timeline["steps"] if s.get("kind") == "mcp"}
    calls = [m for m in mcp if m["method"] == "tools/call"]
    assert len([m for m in mcp if m["method"] == "initialize"]) == len(agents) < len(calls), mcp
    assert len([m for m in mcp if m["method"] == "tools/list"]) <= len(agents), mcp
    assert {m["method"] for m in mcp} <= {"initialize", "tools/list", "tools/call"}, mcp


async def test_through_mcp_a_deferred_refund_is_polled_and_resent_with_its_id(
    mcp_defer_gateway, crm, tmp_path: Path
):
    report, listener = await _run(mcp_defer_gateway, crm, tmp_path)
    _assert_held_at_the_call_and_denied_at_the_call(report, crm, "defer")
    assert listener.seen == [("pending", "billing", "defer"), ("decided", "billing", "approved")]


async def test_the_demo_goes_through_mcp_by_default(tmp_path: Path):
    """``python -m orchestrator demo``: local gateway, crm sample in process, tools through /mcp."""
    import io

    from rich.console import Console

    from orchestrator.demo import run_demo

    out = io.StringIO()
    code = await run_demo(console=Console(file=out, width=200))
    text = out.getvalue()
    assert code == 0, text
    assert "tools through /mcp/crm" in text
    assert "billing waits for approval" in text and "(hold: the call waits at the gateway)" in text
    assert "step account denied: tool 'delete_customer' is never allowed" in text
    assert "mcp tools/call" in text  # the audit timeline shows the calls at the point of action


async def test_a_call_retried_after_a_lost_answer_pays_once_at_the_server(
    mcp_hold_gateway, crm, tmp_path: Path
):
    """The answer of a refund is lost after the server ran it (the connection broke): the call
    stays ``started`` and the step's retry sends it again with the same tool context in
    ``_meta``, through the gateway, so the server recognises it and does not pay twice."""
    from orchestrator.errors import CallFailed
    from orchestrator.gateway_client import GatewayClient
    from orchestrator.identity import RunIdentity, new_run_id, new_trace_id
    from orchestrator.ledger import ToolLedger
    from orchestrator.runtime import RunContext
    from orchestrator.store import CheckpointStore, RunRecord
    from orchestrator.tools import Tool, ToolContext

    crm.reset()
    crm.backend.refunds.clear()  # the module's scenario runs refunded ORD-1001 in full
    config = make_config(mcp_hold_gateway, tmp_path / "o.db", mcp_server="crm")
    scenario = get_scenario("support", crm.backend)
    identity = RunIdentity(new_run_id(), new_trace_id())
    store = await CheckpointStore.open(config.db_path)
    client = GatewayClient(config)
    try:
        await store.create_run(
            RunRecord(identity.run_id, "support", scenario.task, "running", identity.trace_id)
        )
        rc = RunContext(config, client, store, scenario, identity)
        runner = rc.tool_runner("billing", "refund")
        assert runner is not None

        async def answer_lost(tool: Tool, args: dict[str, Any], ctx: ToolContext) -> tuple[str, bool]:
            await runner(tool, args, ctx)  # the server ran it ...
            raise CallFailed("connection lost before the answer", code="connection")  # ... we never heard

        ledger = ToolLedger(store, scenario.tools)
        call = (
            "refund",
            "call_lost_1",
            "issue_refund",
            '{"order_id": "ORD-1001", "amount": 40, "reason": "jar"}',
        )
        with pytest.raises(CallFailed):
            await ledger.execute(identity.run_id, *call, ("issue_refund",), answer_lost)
        retried = await ledger.execute(identity.run_id, *call, ("issue_refund",), runner)
        again = await ledger.execute(
            identity.run_id, *call, ("issue_refund",), runner
        )  # replayed from the ledger
    finally:
        await client.close()
        await store.close()
    assert retried.ok and "RF-" in retried.content and again.replayed and again.content == retried.content
    assert crm.count("issue_refund") == 2  # sent twice through the gateway ...
    assert [r["amount"] for r in crm.backend.refunds.values()] == [40.0]  # ... paid once


async def test_a_tool_call_over_the_run_budget_halts_the_run_like_a_model_call(
    fake_upstream: Any, crm: ToolBoxServer, tmp_path: Path
):
    """A priced tool (pricing.yaml mcp_tools) is charged to the run's budget at the gateway; the
    call the budget cannot cover comes back as the chat path's budget_exceeded, which stops the
    run (RunHalted), and never reaches the server. Both calls share the agent's one MCP session."""
    from orchestrator.errors import RunHalted
    from orchestrator.gateway_client import GatewayClient
    from orchestrator.identity import RunIdentity, new_run_id, new_trace_id
    from orchestrator.tools import ToolContext

    crm.reset()
    for gw in _gateway(tmp_path / "gw", fake_upstream.base_url, "hold", crm.url, {"crm/lookup_order": 0.2}):
        client = GatewayClient(make_config(gw, tmp_path / "o.db", mcp_server="crm"))
        identity = RunIdentity(new_run_id(), new_trace_id())
        try:
            first = await client.mcp.call(
                "researcher",
                identity,
                "crm",
                "lookup_order",
                {"order_id": "ORD-1001"},
                ToolContext(identity.run_id, "s", "c1"),
            )
            assert not first.is_error, first.text
            with pytest.raises(RunHalted) as halted:
                await client.mcp.call(
                    "researcher",
                    identity,
                    "crm",
                    "lookup_order",
                    {"order_id": "ORD-1001"},
                    ToolContext(identity.run_id, "s", "c2"),
                )
            assert halted.value.code == "budget_exceeded" and halted.value.status == 429
            assert "Budget exceeded for run" in halted.value.message
            assert crm.count("lookup_order") == 1
        finally:
            await client.end_run(identity.run_id)
            await client.close()
