"""The plan: steps for worker agents, their dependencies and what a failure means.

A planner model writes it as JSON (``PLAN_SCHEMA`` is sent as a strict structured-output
schema). ``parse_plan`` checks it against the roster before anything runs: unknown agents,
duplicate ids, unknown or circular dependencies are refused, so a bad plan fails early and
visibly instead of deadlocking the scheduler.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import orjson

OnFailure = Literal["continue", "stop"]
MAX_STEPS = 12


class PlanError(ValueError):
    """The planner's answer is not a usable plan; the message says why."""


@dataclass(frozen=True, slots=True)
class PlanStep:
    id: str
    agent: str
    instruction: str
    depends_on: tuple[str, ...] = ()
    #: ``continue``: dependants still run and are told about the failure; ``stop``: running
    #: siblings are cancelled and the steps not started yet are skipped.
    on_failure: OnFailure = "continue"


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[PlanStep, ...]
    source: str = "planner"  # planner | default (the scenario's plan, when the planner's was unusable)
    notes: list[str] = field(default_factory=list)

    def step(self, step_id: str) -> PlanStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"steps": [_step_doc(s) for s in self.steps], "source": self.source, "notes": self.notes}
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> Plan:
        doc = orjson.loads(raw)
        steps = tuple(_step(s) for s in doc["steps"])
        return cls(steps, doc.get("source", "planner"), list(doc.get("notes") or []))


def _step_doc(step: PlanStep) -> dict[str, Any]:
    doc = asdict(step)
    doc["depends_on"] = list(step.depends_on)
    return doc


def _step(doc: dict[str, Any]) -> PlanStep:
    given = doc.get("on_failure") or "continue"
    if given not in ("continue", "stop"):
        raise PlanError(f"step {doc.get('id')!r}: on_failure must be 'continue' or 'stop'")
    on_failure: Literal["continue", "stop"] = "stop" if given == "stop" else "continue"
    return PlanStep(
        id=str(doc["id"]),
        agent=str(doc["agent"]),
        instruction=str(doc["instruction"]),
        depends_on=tuple(str(d) for d in doc.get("depends_on") or ()),
        on_failure=on_failure,
    )


def plan_schema(agents: Iterable[str]) -> dict[str, Any]:
    """The strict JSON schema the planner answers in (OpenAI structured outputs)."""
    step = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "description": "short unique id, e.g. 'refund'"},
            "agent": {"type": "string", "enum": sorted(agents)},
            "instruction": {"type": "string", "description": "what the agent must do, self-contained"},
            "depends_on": {"type": "array", "items": {"type": "string"}},
            "on_failure": {"type": "string", "enum": ["continue", "stop"]},
        },
        "required": ["id", "agent", "instruction", "depends_on", "on_failure"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": step}},
        "required": ["steps"],
        "additionalProperties": False,
    }


def parse_plan(text: str | None, agents: Iterable[str]) -> Plan:
    """Parse and check a planner answer; raises ``PlanError``."""
    if not text:
        raise PlanError("the planner answered nothing")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise PlanError(f"the planner's answer is not JSON: {exc}") from exc
    raw_steps = doc.get("steps") if isinstance(doc, dict) else None
    if not isinstance(raw_steps, list) or not raw_steps:
        raise PlanError("the plan has no steps")
    if len(raw_steps) > MAX_STEPS:
        raise PlanError(f"the plan has {len(raw_steps)} steps; at most {MAX_STEPS} are allowed")
    try:
        steps = tuple(_step(s) for s in raw_steps)
    except (KeyError, TypeError, AttributeError) as exc:
        raise PlanError(f"a step is missing a field: {exc}") from exc
    check(steps, set(agents))
    return Plan(steps)


def check(steps: tuple[PlanStep, ...], agents: set[str]) -> None:
    ids = [s.id for s in steps]
    if len(set(ids)) != len(ids):
        raise PlanError(f"duplicate step ids in {ids}")
    for s in steps:
        if s.agent not in agents:
            raise PlanError(f"step {s.id!r} names unknown agent {s.agent!r} (known: {sorted(agents)})")
        unknown = [d for d in s.depends_on if d not in ids]
        if unknown:
            raise PlanError(f"step {s.id!r} depends on unknown steps {unknown}")
    order = topological(steps)
    if len(order) != len(steps):
        raise PlanError("the plan's dependencies form a cycle")


def topological(steps: tuple[PlanStep, ...]) -> list[str]:
    """Step ids in an order that respects dependencies (cyclic steps are left out)."""
    done: list[str] = []
    remaining = {s.id: set(s.depends_on) for s in steps}
    while remaining:
        ready = sorted(i for i, deps in remaining.items() if deps <= set(done))
        if not ready:
            break
        done.extend(ready)
        for i in ready:
            del remaining[i]
    return done
