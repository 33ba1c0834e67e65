"""Run each tool call at most once, keyed by the model's tool-call id.

Before a tool runs its call is written as ``started``; after, as ``done`` with the result.
When the same tool-call id comes up again (an SDK retry replayed the answer, a step was
retried, the run was resumed after a crash) the stored result is returned and the tool is
not touched. A call found ``started`` but never finished was interrupted mid-way: a tool
without side effects simply runs again; an idempotent tool runs again with the same
idempotency key (the system behind it recognises the retry); any other side-effecting tool
is *not* run again, and the model is told its outcome is unknown.

A call may be carried out elsewhere (``runner``: through the gateway's ``/mcp``, see
``mcp_client.py``). Then the gateway may refuse it: a policy denial or an approval that was
not given is recorded as the call's final outcome (it will not be tried again) and raised to
the worker; a transient failure leaves the call ``started`` and is raised, so the step's
retry settles it by the rules above (the MCP server deduplicates by the same key).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from orchestrator.errors import ApprovalUnresolved, GatewayRefusal, PolicyDenied
from orchestrator.store import CheckpointStore
from orchestrator.tools import Tool, ToolBox, ToolContext, ToolError

log = logging.getLogger("orchestrator.ledger")

UNKNOWN_OUTCOME = (
    "error: this call was interrupted before its result was recorded and the tool cannot detect a "
    "repeat, so it was not run again; its outcome is unknown. Tell the user instead of retrying."
)


#: Carries out a tool call somewhere else; returns (content for the model, ok).
ToolRunner = Callable[[Tool, dict[str, Any], ToolContext], Awaitable[tuple[str, bool]]]


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    tool_call_id: str
    name: str
    content: str  # what goes back to the model as the tool message
    ok: bool
    replayed: bool  # came from the ledger, the tool did not run now


def _content(result: Any) -> str:
    if isinstance(result, str):
        return result
    return orjson.dumps(result, default=str).decode()


class ToolLedger:
    def __init__(self, store: CheckpointStore, tools: ToolBox) -> None:
        self.store = store
        self.tools = tools

    async def execute(
        self,
        run_id: str,
        step_id: str,
        call_id: str,
        name: str,
        arguments: str,
        allowed: tuple[str, ...],
        runner: ToolRunner | None = None,
    ) -> ToolOutcome:
        previous = await self.store.tool_call(run_id, call_id)
        if previous is not None and previous.status in ("done", "failed", "unknown"):
            return ToolOutcome(call_id, name, previous.result or "", previous.status == "done", True)
        tool = self.tools.get(name) if name in allowed else None
        if tool is None:
            return ToolOutcome(
                call_id, name, f"error: tool {name!r} is not available to this agent", False, False
            )
        if previous is not None and tool.side_effect and not tool.idempotent:
            await self.store.tool_unknown(run_id, call_id, step_id, name, arguments, UNKNOWN_OUTCOME)
            return ToolOutcome(call_id, name, UNKNOWN_OUTCOME, False, False)
        try:
            args = orjson.loads(arguments or "{}")
        except orjson.JSONDecodeError as exc:
            return ToolOutcome(
                call_id, name, f"error: the arguments are not valid JSON ({exc})", False, False
            )
        if not isinstance(args, dict):
            return ToolOutcome(call_id, name, "error: the arguments must be a JSON object", False, False)
        return await self._run(tool, args, ToolContext(run_id, step_id, call_id), arguments, runner)

    async def _run(
        self, tool: Tool, args: dict[str, Any], ctx: ToolContext, arguments: str, runner: ToolRunner | None
    ) -> ToolOutcome:
        await self.store.tool_started(ctx.run_id, ctx.tool_call_id, ctx.step_id, tool.name, arguments)
        try:
            if runner is not None:
                content, ok = await runner(tool, args, ctx)
                status = "done" if ok else "failed"
            else:
                content, status = _content(await tool(args, ctx)), "done"
        except (PolicyDenied, ApprovalUnresolved) as exc:  # refused where it acts: final, never retried
            reasons = f" ({'; '.join(exc.reasons)})" if exc.reasons else ""
            await self.store.tool_finished(
                ctx.run_id, ctx.tool_call_id, "failed", f"error: {exc.message}{reasons}"
            )
            raise
        except GatewayRefusal:  # transient or a configuration error: the call stays ``started``
            raise
        except ToolError as exc:
            content, status = f"error: {exc}", "failed"
        except Exception as exc:  # a broken tool is news for the model, not the end of the run
            log.warning("tool %s failed in run %s: %r", tool.name, ctx.run_id, exc)
            content, status = f"error: the tool failed ({type(exc).__name__}: {exc})", "failed"
        await self.store.tool_finished(ctx.run_id, ctx.tool_call_id, status, content)
        return ToolOutcome(ctx.tool_call_id, tool.name, content, status == "done", False)
