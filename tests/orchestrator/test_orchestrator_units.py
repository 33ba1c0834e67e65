"""The orchestrator's own rules, without a gateway: plans, the tool ledger, config, headers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.config import AgentConfig, OrchestratorConfig
from orchestrator.identity import RunIdentity
from orchestrator.ledger import UNKNOWN_OUTCOME, ToolLedger
from orchestrator.plan import PlanError, parse_plan
from orchestrator.scenario import get_scenario
from orchestrator.scenario.support import writer_script
from orchestrator.store import CheckpointStore
from orchestrator.tools import Tool, ToolBox, params

AGENTS = {"researcher", "billing"}


def _plan(*steps: dict[str, Any]) -> str:
    return orjson.dumps({"steps": list(steps)}).decode()


def _step(sid: str, agent: str = "researcher", deps: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "id": sid,
        "agent": agent,
        "instruction": "do it",
        "depends_on": list(deps),
        "on_failure": "continue",
    }


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", "not JSON"),
        (_plan(), "no steps"),
        (_plan(_step("a", agent="hacker")), "unknown agent"),
        (_plan(_step("a"), _step("a")), "duplicate"),
        (_plan(_step("a", deps=("zz",))), "unknown steps"),
        (_plan(_step("a", deps=("b",)), _step("b", deps=("a",))), "cycle"),
    ],
)
def test_unusable_plans_are_refused_with_the_reason(text: str, why: str):
    with pytest.raises(PlanError, match=why):
        parse_plan(text, AGENTS)


def test_the_scenario_plan_is_valid_and_runs_independent_steps_in_parallel():
    sc = get_scenario("support")
    plan = parse_plan(
        orjson.dumps({"steps": orjson.loads(sc.default_plan.to_json())["steps"]}).decode(), sc.roster
    )
    assert [s.id for s in plan.steps if not s.depends_on] == ["research", "refund", "account"]
    assert plan.step("reply").depends_on == ("research", "refund", "account")


async def test_an_interrupted_non_idempotent_side_effect_is_not_run_again(tmp_path: Path):
    ran: list[str] = []
    tool = Tool(
        "charge",
        "charge a card",
        params(amount={"type": "number"}),
        lambda args, ctx: ran.append(ctx.idempotency_key) or "charged",
        side_effect=True,
    )
    store = await CheckpointStore.open(tmp_path / "l.db")
    try:
        ledger = ToolLedger(store, ToolBox([tool]))
        # A previous process wrote "started" and died before "done".
        await store.tool_started("run-1", "call_1", "s", "charge", "{}")
        outcome = await ledger.execute("run-1", "s", "call_1", "charge", '{"amount": 5}', ("charge",))
        assert ran == [] and outcome.content == UNKNOWN_OUTCOME and not outcome.ok
        again = await ledger.execute("run-1", "s", "call_1", "charge", '{"amount": 5}', ("charge",))
        assert again.replayed and ran == []
        fresh = await ledger.execute("run-1", "s", "call_2", "charge", '{"amount": 5}', ("charge",))
        replay = await ledger.execute("run-1", "s", "call_2", "charge", '{"amount": 5}', ("charge",))
        assert fresh.ok and replay.replayed and replay.content == fresh.content and ran == ["run-1:call_2"]
        refused = await ledger.execute("run-1", "s", "call_3", "charge", "{}", ("other",))
        assert not refused.ok and "not available" in refused.content and ran == ["run-1:call_2"]
    finally:
        await store.close()


def test_every_call_carries_agent_run_parent_and_a_fresh_span_of_one_trace():
    ident = RunIdentity("run-1", "0af7651916cd43dd8448eb211c80319c", "parent-9")
    a, b = ident.headers("planner"), ident.headers("billing")
    assert (a["X-Agent-Id"], a["X-Run-Id"], a["X-Parent-Run-Id"]) == ("planner", "run-1", "parent-9")
    pattern = re.compile(r"^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$")
    assert pattern.match(a["traceparent"]) and pattern.match(b["traceparent"])
    assert a["traceparent"] != b["traceparent"]
    assert "X-Parent-Run-Id" not in RunIdentity("run-2", "0" * 31 + "1").headers("x")


def test_each_agent_uses_its_own_key_and_falls_back_to_the_default():
    cfg = OrchestratorConfig(
        api_key="wg-default", agents={"billing": AgentConfig(key="wg-billing", model="m2")}, model="m1"
    )
    assert (cfg.key_for("billing"), cfg.model_for("billing")) == ("wg-billing", "m2")
    assert (cfg.key_for("planner"), cfg.model_for("planner")) == ("wg-default", "m1")
    with pytest.raises(ValueError, match="no virtual key"):
        OrchestratorConfig().key_for("planner")


def test_the_writer_script_tells_the_customer_what_really_happened():
    step = get_scenario("support").default_plan.step("reply")
    done = writer_script(step, {"refund": ("done", '{"refund_id": "RF-1"}'), "account": ("denied", None)})
    held = writer_script(
        step, {"refund": ("done", "a reviewer denied the refund"), "account": ("denied", None)}
    )
    assert done and "we refunded $250.00" in done and "privacy team" in done
    assert held and "could not be issued yet" in held
    assert "]]" not in done[:-2]  # one directive, nothing that would end it early
