"""What a scenario gives the orchestrator: a task, a roster of worker agents, tools, a plan.

The roster fixes which tools each worker agent gets, so a planner can assign work but can
never hand a worker a tool it should not have. ``default_plan`` is what a good planner
makes of the task: it is used when the planner's answer is unusable, and it is the script
the built-in mock model answers with (the mock cannot plan; it can call tools). Likewise
``mock_script`` gives the mock the one piece of prose a step needs (the writer's email).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.plan import Plan, PlanStep
from orchestrator.tools import ToolBox


@dataclass(frozen=True, slots=True)
class AgentSpec:
    name: str
    instructions: str
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class Scenario:
    name: str
    task: str
    roster: dict[str, AgentSpec]
    tools: ToolBox
    default_plan: Plan
    planner_instructions: str
    reviewer_instructions: str
    #: The fake systems behind the tools (for reports and tests), e.g. ``SupportBackend``.
    backend: Any = None
    #: For the mock model only: extra text for a step's prompt (``[[mock:...]]`` directives) where
    #: a real model would write prose the mock cannot, given the step and its dependencies'
    #: (status, result). Real models never see it.
    mock_script: Callable[[PlanStep, Mapping[str, tuple[str, str | None]]], str | None] | None = None

    def agent(self, name: str) -> AgentSpec:
        return self.roster[name]
