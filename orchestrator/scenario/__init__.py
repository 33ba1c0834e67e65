"""Scenarios the orchestrator can run by name (``--scenario``); ``support`` is the reference one."""

from __future__ import annotations

from typing import Any

from orchestrator.scenario.base import AgentSpec, Scenario
from orchestrator.scenario.support import support_scenario
from orchestrator.scenario.support_data import SupportBackend

__all__ = ["AgentSpec", "Scenario", "SupportBackend", "get_scenario", "scenario_names"]


def scenario_names() -> list[str]:
    return ["support"]


def get_scenario(name: str, backend: Any = None) -> Scenario:
    """A fresh scenario (fresh fake systems unless ``backend`` is given)."""
    if name == "support":
        return support_scenario(backend)
    raise KeyError(f"unknown scenario {name!r}; known: {scenario_names()}")
