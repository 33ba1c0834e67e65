"""The "why" of a policy decision, as the audit event keeps it: effects and the input's summary.

An auditor asking "why did the support agent refund this customer?" needs more than the
outcome and its reasons (the messages of the rules that fired): which revision decided, what
the decision did besides allowing (route, token cap, redaction overrides, approvals asked,
capture), and what the policy was looking at. The input document itself holds the messages and
tool arguments, so only a summary of it is kept: identities, the model, tool *names*, counts
of messages and tool results, the ``pii`` counts by type, the cost estimate and the budgets
left, the run's tally, the clock the policy saw, and in the response phase the answer's tool
call ids and names. Never a text, never an argument value.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.scrub import scrub

#: Tools or tool calls listed per decision at most (a request may offer hundreds of tools).
_MAX_TOOLS = 50
_APPROVAL_ITEM_KEYS = ("reason", "tool_call_id", "approvers", "ttl_s", "mode", "approvals_required")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(items: Any, key: str = "name") -> list[str]:
    if not isinstance(items, list):
        return []
    return [str(i.get(key, "")) for i in items[:_MAX_TOOLS] if isinstance(i, dict)]


def _numbers(value: Any) -> dict[str, float]:
    return {
        str(k): v for k, v in _dict(value).items() if isinstance(v, int | float) and not isinstance(v, bool)
    }


def input_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """What the policy saw, without a word of content."""
    principal = _dict(doc.get("principal"))
    request = _dict(doc.get("request"))
    pii = _dict(doc.get("pii"))
    cost = _dict(doc.get("cost"))
    out: dict[str, Any] = {
        "principal": {
            "key_id": principal.get("key_id"),
            "team": principal.get("team"),
            "user": principal.get("user"),
            "roles": [str(r) for r in principal.get("roles") or ()][:20],
        },
        "endpoint": request.get("endpoint"),
        "model": request.get("model") if isinstance(request.get("model"), str) else None,
        "messages": len(request.get("messages") or ()),
        "tools": _names(request.get("tools")),
        "tool_results": len(request.get("tool_results") or ()),
        "pii": {str(k): int(v) for k, v in _numbers(pii.get("entities")).items()},
        "cost": {
            "estimate_usd": cost.get("estimate_usd"),
            "remaining_usd": _numbers(cost.get("remaining_usd")),
        },
        "run": _numbers(doc.get("run")) or None,
        "time": _dict(doc.get("time")).get("now"),
    }
    response = doc.get("response")
    if isinstance(response, dict):
        calls = response.get("tool_calls")
        out["response_tool_calls"] = [
            {"id": str(c.get("id", "")), "name": str(c.get("name", ""))}
            for c in (calls if isinstance(calls, list) else [])[:_MAX_TOOLS]
            if isinstance(c, dict)
        ]
    return out


def effects(decision: dict[str, Any]) -> dict[str, Any]:
    """What the decision did besides allow/deny (the reasons are kept beside it already)."""
    out: dict[str, Any] = {}
    for key in ("route", "limits", "redact", "tags"):
        value = decision.get(key)
        if isinstance(value, dict) and value:
            out[key] = value
    items = decision.get("require_approval")
    if isinstance(items, list) and items:
        out["require_approval"] = [
            {k: i[k] for k in _APPROVAL_ITEM_KEYS if k in i} for i in items if isinstance(i, dict)
        ]
    if decision.get("capture") is True:
        out["capture"] = True
    return out


def why(detail: dict[str, Any]) -> dict[str, Any] | None:
    """The ``why`` of one policy ``Decision``'s detail (None for other stages' decisions)."""
    doc = detail.get("input")
    decision = detail.get("decision")
    if not isinstance(doc, dict) and not isinstance(decision, dict):
        return None
    out: dict[str, Any] = {"engine": detail.get("engine")}
    if isinstance(decision, dict):
        out["effects"] = effects(decision)
    if isinstance(doc, dict):
        out["input"] = input_summary(doc)
    if "error" in detail:
        out["error"] = str(detail["error"])[:500]
    return scrub(out)
