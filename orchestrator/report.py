"""The report of a run, rebuilt from its checkpoints, so it is complete after a resume too.

It answers what an operator asks after a run: what was planned, how each step ended and
why, which calls a policy denied (with the gateway's reasons), which approvals were asked
and how they were decided, which tools ran and how often, what each agent consumed, and
why the run stopped if it did.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.plan import Plan
from orchestrator.store import CheckpointStore


@dataclass(slots=True)
class ToolRun:
    id: str
    name: str
    step: str
    status: str
    executions: int


@dataclass(slots=True)
class StepReport:
    id: str
    agent: str
    status: str
    attempts: int
    instruction: str
    depends_on: list[str]
    result: str | None
    error: dict[str, Any] | None


@dataclass(slots=True)
class AgentUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    refused: int = 0


@dataclass
class RunReport:
    run_id: str
    scenario: str
    status: str
    trace_id: str
    parent_run_id: str | None
    plan_source: str | None
    plan_notes: list[str]
    steps: list[StepReport]
    tools: list[ToolRun]
    denials: list[dict[str, Any]]
    approvals: list[dict[str, Any]]
    usage: dict[str, AgentUsage]
    review: dict[str, Any] | None
    outcome: dict[str, Any] | None
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return sum(u.calls for u in self.usage.values())

    def step(self, step_id: str) -> StepReport:
        return next(s for s in self.steps if s.id == step_id)

    def tool_runs(self, name: str) -> list[ToolRun]:
        return [t for t in self.tools if t.name == name]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["calls"] = self.calls
        doc.pop("events")
        return doc


def _approvals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per approval id, the latest news winning."""
    by_id: dict[str, dict[str, Any]] = {}
    for ev in events:
        if ev["kind"] != "approval" or not ev.get("id"):
            continue
        entry = by_id.setdefault(ev["id"], {})
        entry.update({k: v for k, v in ev.items() if v is not None and k not in ("kind", "ts")})
    return list(by_id.values())


async def load_report(store: CheckpointStore, run_id: str) -> RunReport:
    run = await store.get_run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r} in the checkpoint store")
    plan = Plan.from_json(run.plan) if run.plan else None
    records = await store.steps(run_id)
    events = await store.events(run_id)
    steps = []
    for s in plan.steps if plan else ():
        rec = records.get(s.id)
        steps.append(
            StepReport(
                s.id,
                s.agent,
                rec.status if rec else "pending",
                rec.attempts if rec else 0,
                s.instruction,
                list(s.depends_on),
                rec.result if rec else None,
                rec.error if rec else None,
            )
        )
    usage: dict[str, AgentUsage] = defaultdict(AgentUsage)
    for ev in events:
        if ev["kind"] != "call":
            continue
        u = usage[ev["agent"]]
        u.calls += 1
        tokens = ev.get("usage") or {}
        u.prompt_tokens += int(tokens.get("prompt_tokens") or 0)
        u.completion_tokens += int(tokens.get("completion_tokens") or 0)
        u.refused += ev.get("status") != 200
    tools = [
        ToolRun(t.tool_call_id, t.name, t.step_id, t.status, t.executions)
        for t in await store.tool_calls(run_id)
    ]
    denials = [{k: v for k, v in ev.items() if k != "kind"} for ev in events if ev["kind"] == "denied"]
    return RunReport(
        run_id=run.run_id,
        scenario=run.scenario,
        status=run.status,
        trace_id=run.trace_id,
        parent_run_id=run.parent_run_id,
        plan_source=plan.source if plan else None,
        plan_notes=plan.notes if plan else [],
        steps=steps,
        tools=tools,
        denials=denials,
        approvals=_approvals(events),
        usage=dict(usage),
        review=run.review,
        outcome=run.outcome,
        events=events,
    )
