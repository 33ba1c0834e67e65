"""``Orchestrator``: start a run of a scenario, or resume one from its checkpoint.

    async with Orchestrator(config) as orch:
        report = await orch.start("support")
        ...
        report = await orch.resume(run_id)        # after a crash, in a new process

One ``Orchestrator`` holds the gateway client (pooled connections, one openai client per
virtual key) and the checkpoint store, and can drive many runs concurrently (load mode).
"""

from __future__ import annotations

import dataclasses

from orchestrator.config import OrchestratorConfig
from orchestrator.events import Listener
from orchestrator.gateway_client import GatewayClient
from orchestrator.identity import RunIdentity, new_run_id, new_trace_id
from orchestrator.report import RunReport, load_report
from orchestrator.runner import Runner
from orchestrator.runtime import RunContext
from orchestrator.scenario import Scenario, get_scenario
from orchestrator.store import CheckpointStore, RunRecord


class Orchestrator:
    def __init__(
        self,
        config: OrchestratorConfig,
        *,
        listener: Listener | None = None,
        store: CheckpointStore | None = None,
    ) -> None:
        self.config = config
        self.client = GatewayClient(config, listener)
        self._store = store
        self._own_store = store is None

    @property
    def store(self) -> CheckpointStore:
        if self._store is None:
            raise RuntimeError("use 'async with Orchestrator(...)' or call open() first")
        return self._store

    async def open(self) -> Orchestrator:
        if self._store is None:
            self._store = await CheckpointStore.open(self.config.db_path)
        return self

    async def close(self) -> None:
        await self.client.close()
        if self._own_store and self._store is not None:
            await self._store.close()
            self._store = None

    async def __aenter__(self) -> Orchestrator:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(
        self,
        scenario: str | Scenario = "support",
        *,
        task: str | None = None,
        run_id: str | None = None,
        parent_run_id: str | None = None,
    ) -> RunReport:
        """Plan and run ``scenario`` (a name or a built ``Scenario``) to its end."""
        sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
        if task is not None:
            sc = _with_task(sc, task)
        for agent in ("planner", "reviewer", *sc.roster):
            self.config.key_for(agent)  # a missing key is a config error, said before anything runs
        run = RunRecord(
            run_id=run_id or new_run_id(),
            scenario=sc.name,
            task=sc.task,
            status="running",
            trace_id=new_trace_id(),
            parent_run_id=parent_run_id,
        )
        await self.store.create_run(run)
        return await self._execute(run, sc)

    async def resume(self, run_id: str, scenario: Scenario | None = None) -> RunReport:
        """Continue a run from its checkpoint; completed tool calls are not run again."""
        run = await self.store.get_run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r} in {self.config.db_path}")
        if run.status == "completed":
            return await self.report(run_id)
        sc = scenario or get_scenario(run.scenario)
        if sc.task != run.task:
            sc = _with_task(sc, run.task)
        await self.store.add_event(run_id, "resumed", {"previous_status": run.status})
        return await self._execute(run, sc)

    async def report(self, run_id: str) -> RunReport:
        return await load_report(self.store, run_id)

    async def _execute(self, run: RunRecord, sc: Scenario) -> RunReport:
        identity = RunIdentity(run.run_id, run.trace_id, run.parent_run_id)
        rc = RunContext(self.config, self.client, self.store, sc, identity)
        await Runner(rc).execute()
        return await self.report(run.run_id)


def _with_task(sc: Scenario, task: str) -> Scenario:
    return dataclasses.replace(sc, task=task)
