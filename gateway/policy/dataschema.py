"""The keys of ``policies/policy.yaml`` the shipped Rego reads: a typo there refuses the set.

``policy.yaml`` is data for Rego (``data.wardgate.policy``), and Rego reads a missing key as
undefined: ``teams: {demo: {max_token: 4096}}`` or ``high_stake:`` used to load, pass every
test and quietly drop the token cap or every high-stakes approval. So the sections the shipped
modules read (``rego/*.rego``, ``gateway.policy.derived``) are walked like the other
``policies/*.yaml`` files (``gateway.strict``): an unknown key at any depth is named with its
dotted path and the closest known spelling, and the set is refused (at start, on a reload and
by ``wardgate config check``).

Data of your own for your own Rego stays free: any key that starts with ``x_`` is accepted at
any depth (``teams.demo.x_cost_centre``), and any other file in ``policies/`` becomes
``data.wardgate.<file stem>`` unchecked. The models below list keys only; the Rego judges the
values as it always did.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.strict import UnknownKey, unknown_keys

#: Keys of one's own: accepted anywhere in policy.yaml (documented in rego/README.md).
CUSTOM_PREFIX = "x_"


class _CacheKeys(BaseModel):
    mode: Any = None
    scope: Any = None
    ttl_s: Any = None
    always: Any = None
    threshold: Any = None


class _TeamKeys(BaseModel):
    """``defaults`` and each ``teams.<team>`` (a team's keys override the defaults')."""

    models: Any = None
    max_tokens: Any = None
    pii_blocked: Any = None
    capture: Any = None
    redact: Any = None
    cache: _CacheKeys | None = None
    high_stakes_at: Any = None


class _ToolRuleKeys(BaseModel):
    tools: Any = None
    kinds: Any = None
    unless_roles: Any = None
    reason: Any = None


class _HighStakesKeys(BaseModel):
    argument: Any = None
    above: Any = None
    approvers: Any = None
    ttl_s: Any = None
    reason: Any = None
    deny: Any = None


class _McpServerKeys(BaseModel):
    tools: Any = None
    resources: Any = None
    prompts: Any = None


class _McpKeys(BaseModel):
    servers: dict[str, _McpServerKeys] | None = None


class _InjectionKeys(BaseModel):
    markers: Any = None


class _RoutingKeys(BaseModel):
    low_budget_usd: Any = None
    cheaper: Any = None


class _BusinessHoursKeys(BaseModel):
    teams: Any = None
    tags: Any = None
    weekdays: Any = None
    start_hour: Any = None
    end_hour: Any = None


class PolicyDataKeys(BaseModel):
    """The top level of ``policy.yaml``."""

    defaults: _TeamKeys | None = None
    teams: dict[str, _TeamKeys] | None = None
    capture_keys: Any = None
    tool_rules: list[_ToolRuleKeys] | None = None
    approval_ttl_s: Any = None
    high_stakes: dict[str, _HighStakesKeys] | None = None
    mcp: _McpKeys | None = None
    injection: _InjectionKeys | None = None
    routing: _RoutingKeys | None = None
    business_hours: _BusinessHoursKeys | None = None


def unknown_policy_keys(doc: Any) -> list[UnknownKey]:
    """Every key of a ``policy.yaml`` document no shipped rule reads, ``x_`` keys excepted."""
    return [
        found
        for found in unknown_keys(doc, PolicyDataKeys)
        if not found.path.rsplit(".", 1)[-1].startswith(CUSTOM_PREFIX)
    ]
