"""The planner and the reviewer: one structured-output call each.

The planner answers in the strict JSON schema of ``plan.plan_schema``; an answer that does
not parse or names unknown agents falls back to the scenario's own plan (and the report
says so), because a run should degrade, not die, on a sloppy plan. With the built-in mock
model the planner's prompt carries the scenario's plan as a ``[[mock:text=...]]`` script.
The reviewer returns ``{"verdict": "approve"|"revise", "notes": ...}``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from orchestrator.plan import Plan, PlanError, parse_plan, plan_schema
from orchestrator.runtime import RunContext, is_mock
from orchestrator.store import StepRecord

REVIEW_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["approve", "revise"]},
        "notes": {"type": "string"},
    },
    "required": ["verdict", "notes"],
    "additionalProperties": False,
}


def _structured(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}


def _mock_plan_script(plan: Plan) -> str:
    doc = orjson.loads(plan.to_json())
    return "\n[[mock:text=" + orjson.dumps({"steps": doc["steps"]}).decode() + "]]"


async def make_plan(rc: RunContext) -> Plan:
    scenario = rc.scenario
    task = scenario.task
    if is_mock(rc.config.model_for("planner")):
        task += _mock_plan_script(scenario.default_plan)
    messages = [
        {"role": "system", "content": scenario.planner_instructions},
        {"role": "user", "content": task},
    ]
    reply = await rc.chat(
        "planner", "plan", messages, response_format=_structured("plan", plan_schema(scenario.roster))
    )
    try:
        plan = parse_plan(reply.content, scenario.roster)
    except PlanError as exc:
        plan = dataclasses.replace(
            scenario.default_plan,
            notes=[f"the planner's plan was unusable ({exc}); using the scenario's default plan"],
        )
    await rc.event("plan", source=plan.source, steps=[s.id for s in plan.steps], notes=plan.notes)
    return plan


def outcome_summary(plan: Plan, steps: dict[str, StepRecord], chars: int) -> str:
    """One paragraph per step: what it was asked, how it ended, what it produced."""
    lines = []
    for s in plan.steps:
        rec = steps.get(s.id)
        status = rec.status if rec else "pending"
        text = (rec.result if rec and rec.result else "") or _error_text(rec)
        lines.append(f"- {s.id} ({s.agent}, {status}): {s.instruction}\n  -> {text[:chars]}")
    return "\n".join(lines)


def _error_text(rec: StepRecord | None) -> str:
    if rec is None or not rec.error:
        return "(no result)"
    reasons = rec.error.get("reasons") or []
    return f"{rec.error.get('message', '')} {'; '.join(reasons)}".strip()


async def review(rc: RunContext, plan: Plan, steps: dict[str, StepRecord]) -> dict[str, Any]:
    content = (
        f"Ticket:\n{rc.scenario.task}\n\nOutcome of each step:\n"
        f"{outcome_summary(plan, steps, rc.config.context_chars)}\n\nGive your verdict."
    )
    messages = [
        {"role": "system", "content": rc.scenario.reviewer_instructions},
        {"role": "user", "content": content},
    ]
    reply = await rc.chat(
        "reviewer", "review", messages, response_format=_structured("review", REVIEW_SCHEMA)
    )
    try:
        doc = orjson.loads(reply.content or "")
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or doc.get("verdict") not in ("approve", "revise"):
        return {"verdict": "unclear", "notes": reply.content or ""}
    return {"verdict": doc["verdict"], "notes": str(doc.get("notes") or "")}
