"""Gateways for the orchestrator's end-to-end tests: every guard on, real HTTP, mock models.

Two gateways live for the session, one per approval mode for ``issue_refund`` (``hold`` and
``defer``). They run the repository's own policies and Rego (the $200 refund threshold, the
``delete_customer`` ban) with test keys: one virtual key per agent (team ``cs-test``), a key
of team ``cs-loop`` for the loop test, and an admin key that may review every group.
``mock-chat`` (built-in mock) and ``gpt-test`` (the fake upstream, for injected faults) are
priced so budgets apply.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from orchestrator.config import AgentConfig, OrchestratorConfig
from orchestrator.events import Listener
from orchestrator.identity import new_run_id
from orchestrator.report import RunReport
from orchestrator.scenario import Scenario, get_scenario
from orchestrator.service import Orchestrator
from tests.harness import RunningGateway, _sha, default_keys, gateway_settings, running_gateway

TEAM = "cs-test"
AGENTS = ("planner", "researcher", "billing", "accounts", "writer", "reviewer")
AGENT_KEYS = {a: f"wg-orch-test-{a}-{'0' * (24 - len(a))}" for a in AGENTS}
LOOP_TEAM = "cs-loop"
LOOP_KEY = "wg-orch-test-loop-0000000000000000000"
ORCH_ADMIN_KEY = "wg-orch-test-admin-000000000000000000"
PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.60}


def _keys() -> dict[str, Any]:
    doc = default_keys()
    doc["keys"] += [
        {"id": f"orch-{a}", "sha256": _sha(k), "team": TEAM, "user": f"{a}-bot", "models": ["*"]}
        for a, k in AGENT_KEYS.items()
    ]
    doc["keys"].append(
        {"id": "orch-loop", "sha256": _sha(LOOP_KEY), "team": LOOP_TEAM, "user": "loop-bot", "models": ["*"]}
    )
    doc["admin_keys"].append(
        {
            "id": "orch-lead",
            "sha256": _sha(ORCH_ADMIN_KEY),
            "user": "support-lead",
            "roles": ["admin"],
            "groups": ["*"],
        }
    )
    return doc


def _gateway(root: Path, upstream_url: str, mode: str) -> Iterator[RunningGateway]:
    settings = gateway_settings(
        root,
        upstream_url,
        approvals={"hold_s": 20, "tools": {"issue_refund": {"mode": mode}}},
        policy={"watch": False, "test_on_reload": False},
    )
    (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(_keys()))
    (settings.policies_dir / "pricing.yaml").write_text(
        yaml.safe_dump({"models": {"mock-chat": PRICE, "gpt-test": PRICE}})
    )
    with running_gateway(settings) as gw:
        yield gw


@pytest.fixture(scope="session")
def hold_gateway(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from _gateway(tmp_path_factory.mktemp("orch-hold"), fake_upstream.base_url, "hold")


@pytest.fixture(scope="session")
def defer_gateway(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    yield from _gateway(tmp_path_factory.mktemp("orch-defer"), fake_upstream.base_url, "defer")


def make_config(gw: RunningGateway, db: Path, **overrides: Any) -> OrchestratorConfig:
    base: dict[str, Any] = {
        "base_url": gw.base_url,
        "admin_key": ORCH_ADMIN_KEY,
        "model": "mock-chat",
        "agents": {a: AgentConfig(key=k) for a, k in AGENT_KEYS.items()},
        "db_path": str(db),
        "step_timeout_s": 30,
        "call_timeout_s": 30,
        "approval_poll_s": 0.05,
        "approval_wait_s": 20,
        "max_retries": 2,
    }
    return OrchestratorConfig(**{**base, **overrides})


@contextlib.asynccontextmanager
async def reviewer(
    config: OrchestratorConfig, run_id: str, *, deny: bool = False
) -> AsyncIterator[AutoApprover]:
    """A reviewer deciding the run's approvals through the admin API while the block runs."""
    admin = AdminClient(config.base_url, config.admin_key)
    approver = AutoApprover(admin, run_id=run_id, deny=deny, poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(approver.run(stop))
    try:
        yield approver
    finally:
        stop.set()
        await task
        await admin.close()


async def run_reviewed(
    config: OrchestratorConfig,
    *,
    scenario: Scenario | None = None,
    deny: bool = False,
    listener: Listener | None = None,
    run_id: str | None = None,
    parent_run_id: str | None = None,
) -> tuple[RunReport, Scenario, AutoApprover]:
    """Run the support scenario while a reviewer decides its approvals."""
    scenario = scenario or get_scenario("support")
    run_id = run_id or new_run_id()
    async with (
        reviewer(config, run_id, deny=deny) as approver,
        Orchestrator(config, listener=listener) as orch,
    ):
        report = await orch.start(scenario, run_id=run_id, parent_run_id=parent_run_id)
    return report, scenario, approver


async def resume_reviewed(config: OrchestratorConfig, run_id: str, scenario: Scenario) -> RunReport:
    async with reviewer(config, run_id), Orchestrator(config) as orch:
        return await orch.resume(run_id, scenario)
