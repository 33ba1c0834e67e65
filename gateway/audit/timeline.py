"""The run timeline: every event of an agent run in order, shaped for "why did it do that".

Each step keeps what an operator needs to follow the run (the decisions and their reasons,
tool calls requested, approvals, retries, tokens, cost, latency, error) and drops chain
bookkeeping; the totals come from the store's aggregate, so they cover the whole run even
when the steps are paged.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.capture import verified
from gateway.audit.schema import NANO

_STEP_KEYS = (
    "id",
    "time",
    "kind",
    "request_id",
    "trace_id",
    "endpoint",
    "stream",
    "model",
    "decision",
    "decisions",
    "tool_calls",
    "approval",
    "redaction",
    "usage",
    "cost",
    "latency_ms",
    "upstream",
    "status",
    "error",
    "finish_reason",
    "data",
)


def step(ev: dict[str, Any], captures: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    out = {k: ev[k] for k in _STEP_KEYS if ev.get(k) is not None}
    capture = verified(ev, (captures or {}).get(ev.get("id", "")))
    if capture is not None:
        out["capture"] = capture
    agent = ev.get("agent") or {}
    out["agent_id"] = agent.get("id")
    out["parent_run_id"] = agent.get("parent_run_id")
    principal = ev.get("principal") or {}
    out["key_id"] = principal.get("key_id")
    out["team"] = principal.get("team")
    return out


def capture_ids(events: list[dict[str, Any]]) -> list[str]:
    """Ids of the events that reference a stored capture (to fetch them in one query)."""
    return [ev["id"] for ev in events if isinstance(ev.get("capture"), dict) and "hash" in ev["capture"]]


def timeline(
    run_id: str,
    events: list[dict[str, Any]],
    totals: list[dict[str, Any]],
    next_cursor: str | None,
    captures: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Any]:
    steps = [step(ev, captures) for ev in events]
    total = totals[0] if totals else {"calls": 0, "input_tokens": 0, "output_tokens": 0, "cost_nusd": 0}
    calls = [s for s in steps if s.get("kind") == "call"]
    return {
        "object": "run",
        "run_id": run_id,
        "agent_ids": sorted({s["agent_id"] for s in steps if s.get("agent_id")}),
        "parent_run_ids": sorted({s["parent_run_id"] for s in steps if s.get("parent_run_id")}),
        "summary": {
            "calls": total["calls"],
            "input_tokens": total["input_tokens"],
            "output_tokens": total["output_tokens"],
            "cost_usd": total["cost_nusd"] / NANO,
            "first": steps[0]["time"] if steps else None,
            "last": steps[-1]["time"] if steps else None,
            "denied": sum(1 for s in calls if s.get("decision") == "deny"),
            "errors": sum(1 for s in calls if s.get("decision") == "error"),
            "tool_calls": sum(len(s.get("tool_calls") or ()) for s in calls),
            "retries": sum((s.get("upstream") or {}).get("retries") or 0 for s in calls),
        },
        "steps": steps,
        "next_cursor": next_cursor,
    }
