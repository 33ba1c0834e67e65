"""One run: plan → workers (concurrently, as dependencies allow) → review, checkpointed.

Robustness, each in one place here:

* **bounded concurrency**: a semaphore per run caps the steps in flight;
* **per-step timeouts**: each step attempt runs under ``asyncio.timeout(step_timeout_s)``;
* **transient failures** (``CallFailed``: still rate limited after the SDK's retries, 5xx,
  network) retry the step from its checkpoint, up to ``step_attempts``;
* **a failing worker does not take the run down**: any error in a step (a bug included)
  marks that step failed; siblings go on unless the step's ``on_failure`` is ``stop``;
* **budget_exceeded / loop_detected** (``RunHalted``) stop the whole run: running steps
  are cancelled and marked ``stopped`` (resumable), the report says why;
* **resume**: steps already done, failed, denied, skipped or cancelled stay as they are; the
  others continue from their saved conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from orchestrator.errors import CallFailed, GatewayRefusal, RunHalted
from orchestrator.ledger import ToolLedger
from orchestrator.plan import Plan, PlanStep
from orchestrator.roles import make_plan, review
from orchestrator.runtime import RunContext, is_mock
from orchestrator.store import StepRecord
from orchestrator.worker import Worker

log = logging.getLogger("orchestrator.runner")

FINAL = frozenset({"done", "failed", "denied", "skipped", "cancelled"})
RETRY_BACKOFF_S = 0.5


class RunStopped(Exception):
    """Internal: a step hit a run-level refusal; carries it up to the scheduler."""

    def __init__(self, refusal: RunHalted) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class Runner:
    def __init__(self, rc: RunContext) -> None:
        self.rc = rc
        self.worker = Worker(rc, ToolLedger(rc.store, rc.scenario.tools))
        self.semaphore = asyncio.Semaphore(rc.config.max_concurrency)

    async def execute(self) -> str:
        """Run (or continue) the run to its end; returns the final run status."""
        try:
            return await self._execute()
        finally:
            await self.rc.client.end_run(self.rc.run_id)  # its MCP sessions end with it

    async def _execute(self) -> str:
        store, run_id = self.rc.store, self.rc.run_id
        run = await store.get_run(run_id)
        if run is None:
            raise KeyError(run_id)
        await store.update_run(run_id, status="running")
        try:
            plan = Plan.from_json(run.plan) if run.plan else await self._plan()
            if plan is None:
                return "failed"
            steps = await self._steps(plan)
            await self._schedule(plan, steps)
            if run.review is None:
                verdict = await self._review(plan, steps)
                await store.update_run(run_id, review=verdict)
        except RunStopped as stop:
            await store.update_run(
                run_id, status="stopped", outcome={"reason": stop.refusal.code, **stop.refusal.to_dict()}
            )
            return "stopped"
        blocking = [s.id for s in plan.steps if s.on_failure == "stop" and steps[s.id].status != "done"]
        if blocking:
            await store.update_run(
                run_id,
                status="failed",
                outcome={"reason": "a step marked stop did not succeed", "steps": blocking},
            )
            return "failed"
        await store.update_run(run_id, status="completed", outcome=None)
        return "completed"

    async def _plan(self) -> Plan | None:
        for attempt in range(1, self.rc.config.step_attempts + 1):
            try:
                plan = await make_plan(self.rc)
            except RunHalted as exc:
                raise RunStopped(exc) from exc
            except CallFailed as exc:
                if attempt < self.rc.config.step_attempts:
                    await asyncio.sleep(RETRY_BACKOFF_S * attempt)
                    continue
                await self._fail_run("planner", exc.to_dict())
                return None
            except GatewayRefusal as exc:
                await self._fail_run("planner", exc.to_dict())
                return None
            await self.rc.store.update_run(self.rc.run_id, plan=plan.to_json().decode())
            return plan
        return None

    async def _fail_run(self, where: str, error: dict[str, object]) -> None:
        await self.rc.store.update_run(
            self.rc.run_id, status="failed", outcome={"reason": f"{where} failed", **error}
        )

    async def _steps(self, plan: Plan) -> dict[str, StepRecord]:
        steps = await self.rc.store.steps(self.rc.run_id)
        for s in plan.steps:
            if s.id not in steps:
                steps[s.id] = StepRecord(self.rc.run_id, s.id, s.agent, "pending")
                await self.rc.store.save_step(steps[s.id])
        return steps

    async def _review(self, plan: Plan, steps: dict[str, StepRecord]) -> dict[str, object]:
        try:
            return await review(self.rc, plan, steps)
        except RunHalted as exc:
            raise RunStopped(exc) from exc
        except GatewayRefusal as exc:
            return {"verdict": "unavailable", "notes": exc.message, "error": exc.to_dict()}

    # -- scheduling ------------------------------------------------------------------
    async def _schedule(self, plan: Plan, steps: dict[str, StepRecord]) -> None:
        running: dict[asyncio.Task[None], PlanStep] = {}
        try:
            while True:
                for s in plan.steps:
                    rec = steps[s.id]
                    if rec.status in FINAL or s in running.values():
                        continue
                    if all(steps[d].status in FINAL for d in s.depends_on):
                        task = asyncio.create_task(
                            self._run_step(s, rec, self._context(s, steps), self._script(s, steps)), name=s.id
                        )
                        running[task] = s
                if not running:
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    step = running.pop(task)
                    rec = steps[step.id]
                    try:
                        task.result()  # crashes (BaseException) propagate as they are
                    except RunStopped as stop:
                        rec.status, rec.error = "stopped", stop.refusal.to_dict()
                        await self.rc.store.save_step(rec)
                        raise
                    self.rc.client.listener.step_changed(
                        self.rc.run_id, step.id, rec.status, {"error": rec.error, "agent": step.agent}
                    )
                    if rec.status != "done" and step.on_failure == "stop":
                        await self._stop_siblings(step, running, steps)
        except RunStopped:
            await self._cancel(running, steps, "stopped")
            raise
        finally:
            await self._cancel(running, steps, None)

    async def _stop_siblings(
        self, failed: PlanStep, running: dict[asyncio.Task[None], PlanStep], steps: dict[str, StepRecord]
    ) -> None:
        reason: dict[str, object] = {
            "kind": "cancelled",
            "message": f"step {failed.id!r} did not succeed and its plan says stop",
        }
        await self._cancel(running, steps, "cancelled", reason)
        for rec in steps.values():
            if rec.status not in FINAL:
                rec.status, rec.error = "skipped", reason
                await self.rc.store.save_step(rec)

    async def _cancel(
        self,
        running: dict[asyncio.Task[None], PlanStep],
        steps: dict[str, StepRecord],
        status: str | None,
        error: dict[str, object] | None = None,
    ) -> None:
        """Cancel running steps; ``status`` None leaves their checkpoints as they are (a crash)."""
        for task in running:
            task.cancel()
        for task, step in list(running.items()):
            with contextlib.suppress(asyncio.CancelledError, RunStopped, Exception):
                await task
            if status is not None:
                rec = steps[step.id]
                rec.status, rec.error = status, error or {"kind": status}
                await self.rc.store.save_step(rec)
        running.clear()

    def _context(self, step: PlanStep, steps: dict[str, StepRecord]) -> str:
        chars = self.rc.config.context_chars
        lines = []
        for dep in step.depends_on:
            rec = steps[dep]
            text = rec.result or (rec.error or {}).get("message") or ""
            reasons = (rec.error or {}).get("reasons") or []
            if reasons:
                text = f"{text} (reasons: {'; '.join(map(str, reasons))})"
            lines.append(f"- {dep} ({rec.status}): {text[:chars]}")
        return "\n".join(lines)

    def _script(self, step: PlanStep, steps: dict[str, StepRecord]) -> str | None:
        script = self.rc.scenario.mock_script
        if script is None or not is_mock(self.rc.config.model_for(step.agent)):
            return None
        return script(step, {d: (steps[d].status, steps[d].result) for d in step.depends_on})

    # -- one step --------------------------------------------------------------------
    async def _run_step(self, step: PlanStep, rec: StepRecord, context: str, script: str | None) -> None:
        config = self.rc.config
        async with self.semaphore:
            while True:
                rec.attempts += 1
                rec.status, rec.error = "running", None
                await self.rc.store.save_step(rec)
                self.rc.client.listener.step_changed(
                    self.rc.run_id, step.id, "running", {"agent": step.agent}
                )
                try:
                    async with asyncio.timeout(config.step_timeout_s):
                        await self.worker.run(step, rec, context, script)
                except TimeoutError:
                    rec.status = "failed"
                    rec.error = {
                        "kind": "timeout",
                        "message": f"step timed out after {config.step_timeout_s:g}s",
                    }
                except RunHalted as exc:
                    raise RunStopped(exc) from exc
                except CallFailed as exc:
                    rec.status, rec.error = "failed", exc.to_dict()
                    if rec.attempts < config.step_attempts:
                        await self.rc.store.save_step(rec)
                        await asyncio.sleep(RETRY_BACKOFF_S * rec.attempts)
                        continue
                except GatewayRefusal as exc:
                    rec.status, rec.error = "failed", exc.to_dict()
                except Exception as exc:  # a crashing worker fails its step, not the run
                    log.exception("step %s of run %s crashed", step.id, self.rc.run_id)
                    rec.status = "failed"
                    rec.error = {"kind": "crash", "message": f"{type(exc).__name__}: {exc}"}
                await self.rc.store.save_step(rec)
                return
