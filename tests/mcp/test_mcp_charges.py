"""A priced MCP tool call is charged to the caller's budgets like a model call, atomically, on
the memory and the Redis limits store: reserved before it runs, refused with the chat path's
``budget_exceeded`` when the budget cannot cover it (the server never called), settled after
(what it cost is in the live spend, the spend report, the run timeline and its audit event)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.errors import BudgetExceeded
from tests.harness import ADMIN_KEY, AUDITOR_KEY, PASS_THROUGH
from tests.mcp.conftest import mcp_client, mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer

pytestmark = pytest.mark.asyncio

PRICE = 0.4
RUN_BUDGET = 1.0  # two transfers fit, the third does not


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(
    request: pytest.FixtureRequest,
    tool_server: tuple[ToolServer, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    _, url = tool_server

    def prepare(policies: Path) -> None:
        pricing = policies / "pricing.yaml"
        priced = yaml.safe_load(pricing.read_text())
        priced["mcp_tools"] = {"payments/transfer_funds": PRICE}
        pricing.write_text(yaml.safe_dump(priced))
        limits = policies / "limits.yaml"
        doc = yaml.safe_load(limits.read_text()) if limits.exists() else {}
        doc = doc or {}
        doc.setdefault("scopes", {})["run"] = {"budget_usd": {"total": RUN_BUDGET}}
        limits.write_text(yaml.safe_dump(doc))

    limits: dict[str, Any] = {"enabled": True, "backend": request.param}
    if request.param == "redis":
        limits["key_prefix"] = f"wgtest-mcpcharge-{os.getpid()}"
    overrides = {**PASS_THROUGH, "limits": limits, "audit": {"enabled": True}}
    with start_gateway(
        tmp_path_factory.mktemp(f"mcp-charges-{request.param}"), mcp_yaml(url), prepare, **overrides
    ) as gw:
        gw.backend = request.param
        yield gw


async def _get(gateway: Any, path: str, key: str = AUDITOR_KEY) -> Any:
    async with httpx.AsyncClient() as http:
        resp = await http.get(gateway.url + path, headers={"authorization": f"Bearer {key}"})
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_priced_call_is_charged_to_the_run_budget_atomically(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    server, _ = tool_server
    run = f"run-charged-{gateway.backend}"
    before = server.calls["transfer_funds"]
    async with mcp_client(f"{gateway.url}/mcp/payments", headers={"x-run-id": run}) as client:
        results = await asyncio.gather(
            *(client.call_tool("transfer_funds", {"amount": 5, "to": f"acct-{i}"}) for i in range(4))
        )
        free = await client.call_tool("get_balance", {"account": "A"})  # not priced: not charged
        after = await client.call_tool("transfer_funds", {"amount": 5, "to": "acct-9"})
    assert not free.is_error
    ran = [r for r in results if not r.is_error]
    refused = [r for r in results if r.is_error]
    assert len(ran) == 2 and len(refused) == 2  # exactly what the budget covers, concurrently
    # While the first two were in flight their reservations held the budget (retryable); once
    # settled, the budget is spent (not retryable).
    assert {r.meta["io.wardgate/error"]["code"] for r in refused} <= {"budget_reserved", "budget_exceeded"}
    assert after.is_error
    assert server.calls["transfer_funds"] == before + 2  # a refused call never reached the server
    error = after.meta["io.wardgate/error"]
    assert (
        error["code"] == "budget_exceeded" and error["type"] == BudgetExceeded.type and error["status"] == 429
    )
    assert error["scope"] == "run" and error["scope_id"] == run
    assert "Budget exceeded for run" in after.content[0].text

    spend = await _get(gateway, f"/admin/spend?scope=run&id={run}&team=test")
    total = (
        next(w for w in spend["windows"] if w.get("window") == "total")
        if isinstance(spend["windows"], list)
        else spend["windows"]["total"]
    )
    assert total["spent_usd"] == pytest.approx(2 * PRICE) and spend["reserved_usd"] == 0

    report = await _get(gateway, f"/admin/spend/report?group_by=run&run={run}")
    (row,) = report["data"]
    assert row["cost_usd"] == pytest.approx(2 * PRICE) and row["calls"] == 0  # no model call
    assert row["mcp"] == {"tool_calls": 2, "cost_usd": pytest.approx(2 * PRICE)}

    timeline = await _get(gateway, f"/admin/runs/{run}")
    assert timeline["summary"]["cost_usd"] == pytest.approx(2 * PRICE)
    calls = [
        s for s in timeline["steps"] if s.get("kind") == "mcp" and s["data"]["mcp"]["method"] == "tools/call"
    ]
    charged = [s for s in calls if s["data"]["mcp"].get("cost_usd")]
    assert len(charged) == 2 and all(s["cost"]["settled_usd"] == PRICE for s in charged)
    denied = [s for s in calls if s["decision"] in ("budget_exceeded", "rate_limited")]
    assert len(denied) == 3 and all("cost" not in s for s in denied)


async def test_a_runtime_budget_on_the_key_refuses_before_the_server(
    gateway: Any, tool_server: tuple[ToolServer, str]
) -> None:
    """The same budgets as model calls: an admin's runtime budget on the team applies at once."""
    server, _ = tool_server
    async with httpx.AsyncClient() as http:
        put = await http.put(
            gateway.url + "/admin/budgets/team/test",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            json={"day": 0.01},
        )
        assert put.status_code == 200, put.text
        try:
            before = server.calls["transfer_funds"]
            async with mcp_client(
                f"{gateway.url}/mcp/payments", headers={"x-run-id": "run-team-cap"}
            ) as client:
                result = await client.call_tool("transfer_funds", {"amount": 1, "to": "x"})
            assert result.is_error and result.meta["io.wardgate/error"]["scope"] == "team"
            assert server.calls["transfer_funds"] == before
        finally:
            await http.put(
                gateway.url + "/admin/budgets/team/test",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
                json={"day": None},
            )
