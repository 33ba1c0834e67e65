"""A worker agent: a tool loop over one plan step, checkpointed after every move.

The step's conversation is saved after each model answer and after its tool results, so a
resumed step continues exactly where it stopped: tool calls the model asked for but whose
results were not recorded are settled first (through the ledger, which replays completed
calls instead of running them again), then the loop goes on.

Outcomes: ``done`` (the model answered in text), ``denied`` (a policy refused a call, the
model's or, with tools through the gateway's ``/mcp``, a tool call where it acts: the step
ends and reports the reasons, the run goes on), ``failed`` (no answer after
``max_rounds``). Refusals that concern the run or are transient propagate to the runner.
"""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator.errors import PolicyDenied
from orchestrator.ledger import ToolLedger, ToolOutcome
from orchestrator.plan import PlanStep
from orchestrator.runtime import RunContext
from orchestrator.store import StepRecord


def _pending_calls(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool calls of the last assistant message that have no tool result yet."""
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg.get("role") == "assistant":
            answered = {m.get("tool_call_id") for m in messages[i + 1 :] if m.get("role") == "tool"}
            return [c for c in msg.get("tool_calls") or () if c["id"] not in answered]
    return []


class Worker:
    def __init__(self, rc: RunContext, ledger: ToolLedger) -> None:
        self.rc = rc
        self.ledger = ledger

    async def run(self, step: PlanStep, rec: StepRecord, context: str, script: str | None = None) -> None:
        """Run the step to its end; ``script`` is appended to the prompt (mock-model directives)."""
        spec = self.rc.scenario.agent(step.agent)
        if not rec.messages:
            user = step.instruction + (f"\n\nResults of earlier steps:\n{context}" if context else "")
            if script:
                user += "\n" + script
            rec.messages = [
                {"role": "system", "content": spec.instructions},
                {"role": "user", "content": user},
            ]
            await self.rc.store.save_step(rec)
        tools = self.rc.scenario.tools.specs(spec.tools)
        rounds = sum(1 for m in rec.messages if m.get("role") == "assistant")
        while True:
            try:
                await self._settle(step, rec, spec.tools)
            except PolicyDenied as exc:
                rec.status = "denied"
                rec.error = exc.to_dict()
                return
            if rounds >= self.rc.config.max_rounds:
                rec.status = "failed"
                rec.error = {"kind": "max_rounds", "message": f"no final answer after {rounds} model calls"}
                return
            try:
                reply = await self.rc.chat(step.agent, step.id, rec.messages, tools=tools or None)
            except PolicyDenied as exc:
                rec.status = "denied"
                rec.error = exc.to_dict()
                return
            rounds += 1
            rec.messages.append(reply.message())
            await self.rc.store.save_step(rec)
            if not reply.tool_calls:
                rec.status = "done"
                rec.result = reply.content or ""
                return

    async def _settle(self, step: PlanStep, rec: StepRecord, allowed: tuple[str, ...]) -> None:
        pending = _pending_calls(rec.messages)
        if not pending:
            return
        runner = self.rc.tool_runner(step.agent, step.id)
        outcomes = await asyncio.gather(
            *(
                self.ledger.execute(
                    self.rc.run_id,
                    step.id,
                    c["id"],
                    c["function"]["name"],
                    c["function"].get("arguments") or "{}",
                    allowed,
                    runner,
                )
                for c in pending
            ),
            return_exceptions=True,
        )
        # Every call ran to its end (none is left running behind a sibling's refusal); the
        # settled ones are kept, then the first refusal (or crash) ends the settling.
        for outcome in outcomes:
            if isinstance(outcome, ToolOutcome):
                rec.messages.append(
                    {"role": "tool", "tool_call_id": outcome.tool_call_id, "content": outcome.content}
                )
        await self.rc.store.save_step(rec)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
