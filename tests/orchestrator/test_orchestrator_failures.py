"""Failures the orchestrator must survive: 429s, budgets, loops, slow and crashing workers.

Depends on: limits (run budgets via PUT /admin/budgets, loop_detected via the team's run
guards); the 429 test only on the core (the fake upstream answers 429 with retry-after).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest

import orchestrator.worker as worker_module
from orchestrator.admin_client import AdminClient
from orchestrator.config import AgentConfig
from orchestrator.events import CallRecord, Listener
from orchestrator.identity import new_run_id
from orchestrator.scenario import get_scenario
from orchestrator.service import Orchestrator
from orchestrator.tools import ToolBox
from tests.orchestrator.conftest import (
    LOOP_KEY,
    LOOP_TEAM,
    ORCH_ADMIN_KEY,
    TEAM,
    make_config,
    resume_reviewed,
    run_reviewed,
)


class FaultAfterFirstWriterCall(Listener):
    """Once the writer asked for send_email, the upstream starts answering 429 (three times)."""

    def __init__(self, upstream: Any) -> None:
        self.upstream = upstream
        self.records: list[CallRecord] = []

    def call_finished(self, record: CallRecord) -> None:
        self.records.append(record)
        if record.agent == "writer" and sum(r.agent == "writer" for r in self.records) == 1:
            self.upstream.fault("429", times=3, retry_after_ms="300", retry_after="1")


async def test_429s_are_retried_after_retry_after_and_the_side_effecting_tool_runs_once(
    hold_gateway, upstream, tmp_path: Path
):
    # The writer uses the fake upstream (gpt-test); everyone else the built-in mock.
    config = make_config(hold_gateway, tmp_path / "o.db", max_retries=1, step_attempts=3)
    config.agents["writer"] = AgentConfig(key=config.agents["writer"].key, model="gpt-test")
    listener = FaultAfterFirstWriterCall(upstream)
    report, scenario, _ = await run_reviewed(config, listener=listener)

    assert report.status == "completed", report.to_dict()
    # Call 2 of the writer: 429, SDK retry 429 → the step retries from its checkpoint: 429, SDK retry 200.
    assert report.step("reply").attempts == 2 and report.step("reply").status == "done"
    statuses = [r.status for r in listener.records if r.agent == "writer"]
    assert statuses == [200, 429, 200], statuses
    sent = [r for r in upstream.requests if r.path == "/v1/chat/completions"]
    assert len(sent) == 5  # 1 ok + 3 refused + 1 ok
    # The SDK waited the 300 ms of retry-after-ms before sending the refused request again.
    assert sent[2].at - sent[1].at >= 0.28, [r.at for r in sent]
    # The email went out exactly once although the conversation after it was re-sent 3 times.
    assert scenario.backend.ran("send_email") == 1 and len(scenario.backend.sent) == 1
    assert [t.executions for t in report.tool_runs("send_email")] == [1]


async def test_a_run_whose_budget_runs_out_stops_cleanly_and_resumes_once_raised(
    hold_gateway, tmp_path: Path
):
    config = make_config(hold_gateway, tmp_path / "o.db")
    run_id = new_run_id()
    scenario = get_scenario("support")
    admin = AdminClient(hold_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        # Enough for the planner's reservation (~$0.0029 up front) and not much more: a call that
        # only waits for others in flight hears budget_reserved and retries, so the run stops when
        # the real spend leaves less than one reservation (budget_exceeded).
        assert await admin._call(
            "PUT", f"/admin/budgets/run/{run_id}", params={"team": TEAM}, body={"total": 0.0031}
        )
        report, _, _ = await run_reviewed(config, scenario=scenario, run_id=run_id)

        assert report.status == "stopped"
        assert report.outcome and report.outcome["reason"] == "budget_exceeded"
        assert report.review is None  # no reviewer call after the stop
        assert report.step("reply").status == "pending"
        assert {s.status for s in report.steps} <= {"done", "denied", "stopped", "pending"}
        assert any(s.status == "stopped" for s in report.steps)
        assert scenario.backend.ran("send_email") == 0

        assert await admin._call(
            "PUT", f"/admin/budgets/run/{run_id}", params={"team": TEAM}, body={"total": 1.0}
        )
    finally:
        await admin.close()
    resumed = await resume_reviewed(config, run_id, scenario)
    assert resumed.status == "completed", resumed.to_dict()
    # The halt cancels the steps still running: a tool it interrupted (found ``started``) runs
    # again on resume when that is safe by design (read-only, or idempotent: the same
    # idempotency key, so the backend recognises the repeat); any other side-effecting tool
    # never runs twice. Whether the refund was caught mid-way depends on timing, so both are
    # allowed, but the money moves exactly once.
    interrupted = {t.id for t in report.tools if t.status == "started"}
    for t in resumed.tools:
        tool = scenario.tools.get(t.name)
        assert tool is not None
        rerun_ok = not tool.side_effect or tool.idempotent
        assert t.executions == 1 or (t.executions == 2 and t.id in interrupted and rerun_ok), t
    refund_keys = {key for (name, key) in scenario.backend.invocations if name == "issue_refund"}
    assert len(refund_keys) == 1, scenario.backend.invocations
    assert len(scenario.backend.refunds) == 1


async def test_loop_detected_stops_the_run_with_a_report(hold_gateway, upstream, tmp_path: Path):
    admin = AdminClient(hold_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        assert await admin._call(
            "PUT", f"/admin/limits/team/{LOOP_TEAM}", body={"run_max_identical_requests": 1}
        )
    finally:
        await admin.close()
    config = make_config(
        hold_gateway, tmp_path / "o.db", api_key=LOOP_KEY, agents={"writer": {"model": "gpt-test"}}
    )
    upstream.fault("429", times=1, retry_after_ms="10")  # the writer's first call: the SDK sends it again
    report, scenario, _ = await run_reviewed(config)

    assert report.status == "stopped"
    assert report.outcome and report.outcome["reason"] == "loop_detected"
    assert scenario.backend.ran("send_email") == 0


async def test_a_slow_step_times_out_and_a_crashing_worker_fails_alone(
    hold_gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scenario = get_scenario("support")
    lookup = scenario.tools.get("lookup_order")

    async def slow(args: dict[str, Any], ctx: Any) -> Any:
        await asyncio.sleep(5)
        return await lookup(args, ctx)

    tools = [
        dataclasses.replace(lookup, fn=slow) if n == "lookup_order" else scenario.tools.get(n)
        for n in scenario.tools.names()
    ]
    scenario = dataclasses.replace(scenario, tools=ToolBox(tools))  # type: ignore[arg-type]
    settle = worker_module.Worker._settle

    async def crash_for_billing(self: Any, step: Any, rec: Any, allowed: Any) -> None:
        if step.agent == "billing" and any(m.get("role") == "assistant" for m in rec.messages):
            raise RuntimeError("worker bug")
        await settle(self, step, rec, allowed)

    monkeypatch.setattr(worker_module.Worker, "_settle", crash_for_billing)
    config = make_config(hold_gateway, tmp_path / "o.db", step_timeout_s=1.0)
    report, _, _ = await run_reviewed(config, scenario=scenario)

    assert report.status == "completed"
    research, refund = report.step("research"), report.step("refund")
    assert research.status == "failed" and research.error and research.error["kind"] == "timeout"
    assert refund.status == "failed" and refund.error and refund.error["kind"] == "crash"
    # Siblings and dependants went on; the reply step was told what failed.
    assert report.step("account").status == "denied" and report.step("reply").status == "done"
    assert report.review is not None


async def test_a_failed_step_marked_stop_cancels_its_running_siblings_and_skips_the_rest(
    hold_gateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    scenario = get_scenario("support")
    research = dataclasses.replace(scenario.default_plan.step("research"), on_failure="stop")
    plan = dataclasses.replace(scenario.default_plan, steps=(research, *scenario.default_plan.steps[1:]))
    scenario = dataclasses.replace(scenario, default_plan=plan)
    settle = worker_module.Worker._settle

    async def crash_for_research(self: Any, step: Any, rec: Any, allowed: Any) -> None:
        if step.id == "research" and any(m.get("role") == "assistant" for m in rec.messages):
            await asyncio.sleep(0.3)  # the refund is waiting for its reviewer by now
            raise RuntimeError("worker bug")
        await settle(self, step, rec, allowed)

    monkeypatch.setattr(worker_module.Worker, "_settle", crash_for_research)
    # No reviewer: the refund stays held at the gateway until the failure cancels it.
    async with Orchestrator(make_config(hold_gateway, tmp_path / "o.db")) as orch:
        report = await orch.start(scenario)

    assert report.status == "failed" and report.outcome and report.outcome["steps"] == ["research"]
    statuses = {s.id: s.status for s in report.steps}
    assert statuses["research"] == "failed" and statuses["refund"] == "cancelled"
    assert statuses["reply"] == "skipped" and statuses["account"] in ("denied", "cancelled")
    assert scenario.backend.ran("issue_refund") == 0 and scenario.backend.ran("send_email") == 0
