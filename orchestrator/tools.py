"""Function tools: what an agent may do, described for the model and run locally.

A tool says whether it has a side effect and whether it honours an idempotency key. The
orchestrator uses both to keep its promise that a side effect happens at most once per
tool-call id (see ``ledger.py``): completed calls are never run again, and a call that was
interrupted mid-way is only retried when the tool can recognise the retry by its key.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolContext:
    """What a tool knows about the call that runs it."""

    run_id: str
    step_id: str
    tool_call_id: str

    @property
    def idempotency_key(self) -> str:
        """Stable across retries and resumes of the same tool call, unique across runs."""
        return f"{self.run_id}:{self.tool_call_id}"

    def meta(self) -> dict[str, Any]:
        """This context as an MCP request's ``_meta`` entry (``TOOL_CONTEXT_META``)."""
        return {
            TOOL_CONTEXT_META: {
                "run_id": self.run_id,
                "step_id": self.step_id,
                "tool_call_id": self.tool_call_id,
            }
        }


#: ``_meta`` key of an MCP ``tools/call`` carrying the caller's ``ToolContext`` fields, so the
#: server behind Wardgate's ``/mcp`` sees the same idempotency key as a local run (orchestrator/mcp_servers/).
TOOL_CONTEXT_META = "dev.wardgate/tool-context"


ToolFn = Callable[[dict[str, Any], ToolContext], Any | Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]
    fn: ToolFn
    #: Changes the world (a refund, an email): must not run twice for one tool call.
    side_effect: bool = False
    #: Deduplicates by ``ToolContext.idempotency_key``, so an interrupted call may be retried.
    idempotent: bool = False

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def __call__(self, args: dict[str, Any], ctx: ToolContext) -> Any:
        result = self.fn(args, ctx)
        if inspect.isawaitable(result):
            result = await result
        return result


class ToolError(Exception):
    """A tool refused its arguments; the message goes back to the model as the tool result."""


class ToolBox:
    """The tools of a scenario, by name."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = {t.name: t for t in tools}

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def specs(self, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
        chosen = self._tools if names is None else {n: self._tools[n] for n in names if n in self._tools}
        return [t.spec() for t in chosen.values()]


def params(required: Iterable[str] | None = None, **props: dict[str, Any]) -> dict[str, Any]:
    """A JSON-schema ``object`` for tool parameters (all properties required unless said)."""
    return {
        "type": "object",
        "properties": props,
        "required": list(required) if required is not None else list(props),
        "additionalProperties": False,
    }
