"""Turning the policy's ``require_approval`` items into one approval's parameters.

The policy stage puts ``call.approval_ask = ApprovalAsk(phase, items, decision)``; each item is
``{"reason", "tool_call_id"?, "approvers"?, "ttl_s"?, "mode"?, "hold_s"?, "approvals_required"?}``.
All items of one phase make one approval (a reviewer judges the answer as a whole). Where
an item is silent, the per-tool rule of ``approvals.yaml`` speaks, then the settings.

How items combine, and why:
- ``mode``: ``defer`` if any item or rule asks for it (the caller opted into re-sending),
  else ``hold`` if any asks, else ``default_mode``.
- ``ttl_s`` / ``hold_s``: the shortest asked for (the most cautious wins); ``hold_s`` never
  outlives the approval.
- ``approvals_required``: the largest of items, tool rules, groups and the default.
- ``groups``: every group named; a reviewer from any one of them may decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.approvals.config import MAX_HOLD_S, ApprovalSettings, ToolRule
from gateway.callstate import ApprovalAsk


@dataclass(slots=True)
class ApprovalSpec:
    mode: str
    ttl_s: float
    hold_s: float
    approvals_required: int
    groups: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _names(value: Any) -> list[str]:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return []


def _num(value: Any) -> float | None:
    return (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else None
    )


def items_of(ask: ApprovalAsk) -> list[dict[str, Any]]:
    """The ask's items; an ask without any is one item asking for the whole call."""
    return [i for i in ask.items if isinstance(i, dict)] or [{}]


def resolve(settings: ApprovalSettings, ask: ApprovalAsk, tool_calls: list[dict[str, Any]]) -> ApprovalSpec:
    items = items_of(ask)
    targeted = {str(i["tool_call_id"]) for i in items if i.get("tool_call_id")}
    whole_answer = any(not i.get("tool_call_id") for i in items)
    calls = (
        tool_calls
        if whole_answer or not targeted
        else [c for c in tool_calls if str(c.get("id")) in targeted]
    )
    rules: list[ToolRule] = [settings.tools[c["name"]] for c in calls if c.get("name") in settings.tools]

    modes = [i.get("mode") for i in items] + [r.mode for r in rules]
    mode = "defer" if "defer" in modes else "hold" if "hold" in modes else settings.default_mode

    groups: list[str] = []
    for source in [i.get("approvers") for i in items] + [r.approvers for r in rules]:
        for g in _names(source):
            if g not in groups:
                groups.append(g)
    if not groups and settings.default_group:
        groups = [settings.default_group]

    ttls = [t for t in [_num(i.get("ttl_s")) for i in items] + [r.ttl_s for r in rules] if t]
    ttl_s = min(ttls) if ttls else settings.ttl_s
    holds = [h for h in [_num(i.get("hold_s")) for i in items] + [r.hold_s for r in rules] if h]
    hold_s = min(min(holds) if holds else settings.hold_s, ttl_s, MAX_HOLD_S)

    required = [settings.approvals_required]
    required += [int(n) for n in (_num(i.get("approvals_required")) for i in items) if n]
    required += [r.approvals_required for r in rules if r.approvals_required]
    required += [
        grp.approvals_required
        for name in groups
        if (grp := settings.groups.get(name)) and grp.approvals_required
    ]

    reasons = list(dict.fromkeys(str(i["reason"]) for i in items if i.get("reason")))
    return ApprovalSpec(
        mode=mode,
        ttl_s=ttl_s,
        hold_s=hold_s,
        approvals_required=max(required),
        groups=groups,
        reasons=reasons or ["approval required by policy"],
        tool_calls=calls,
    )
