"""Wardgate's reference orchestrator: a planner, concurrent workers with tools and a reviewer,
every model call through the gateway (see the "Reference orchestrator" section of README.md).

The public API::

    from orchestrator import Orchestrator, load_config
    async with Orchestrator(load_config(api_key="wg-...")) as orch:
        report = await orch.start("support")

Names are imported on first use, so ``python -m orchestrator --help`` does not pay for
importing the openai SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentConfig": "orchestrator.config",
    "OrchestratorConfig": "orchestrator.config",
    "load_config": "orchestrator.config",
    "ApprovalUnresolved": "orchestrator.errors",
    "BadCall": "orchestrator.errors",
    "CallFailed": "orchestrator.errors",
    "GatewayRefusal": "orchestrator.errors",
    "PolicyDenied": "orchestrator.errors",
    "RunHalted": "orchestrator.errors",
    "CallRecord": "orchestrator.events",
    "Listener": "orchestrator.events",
    "RunReport": "orchestrator.report",
    "Orchestrator": "orchestrator.service",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
